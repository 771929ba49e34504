"""Inference-only GMF / MLP / NeuMF in numpy, from a bundle's weights.

Loading torch costs about a second; ``movierec recommend`` and the HTTP service only need a forward pass,
so they score NCF bundles with these few matrix products instead (tests check that the scores match the
torch networks'). Same algebra as :mod:`movierec.models.ncf`: GMF is one product, and the MLP's first
layer splits into a per-user and a per-item projection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from movierec.errors import MovieRecError
from movierec.models.base import History, Recommender
from movierec.models.settings import NoSettings

KINDS = ("gmf", "mlp", "neumf")
_PAIRS_PER_BATCH = 1 << 15  # (user, item) pairs per product: larger batches fall out of the cache


class NumpyNCF(Recommender):
    name = "ncf-numpy"
    config_class = NoSettings
    has_user_vectors = True
    has_item_vectors = True

    def __init__(self, kind: str, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"no numpy engine for {kind!r}")
        self.kind = kind
        self.model_config = config or {}

    def _fit(self, *args: Any) -> None:
        raise TypeError("NumpyNCF only scores trained bundles; train the torch model instead")

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        raise MovieRecError(f"scoring a new history with {self.kind} folds the user in with torch; "
                            "load the bundle with engine='exact'")

    def user_vectors(self) -> np.ndarray | None:
        return np.concatenate([w for k, w in sorted(self.w.items()) if k.endswith("user.weight")], axis=1)

    def item_vectors(self) -> np.ndarray | None:
        return np.concatenate([w for k, w in sorted(self.w.items()) if k.endswith("item.weight")], axis=1)

    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v for k, v in self.w.items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.w = {k[4:]: np.asarray(v, dtype=np.float32) for k, v in state.items() if k.startswith("net.")}
        self._item_projection: dict[str, np.ndarray] = {}

    # -- the algebra -------------------------------------------------------------------------------
    def _gmf(self, p: str, users: np.ndarray, items: np.ndarray | None, w: np.ndarray) -> np.ndarray:
        pu = self.w[p + "user.weight"][users] * w
        q = self.w[p + "item.weight"]
        return pu @ q.T if items is None else np.einsum("bf,bmf->bm", pu, q[items])

    def _mlp(self, p: str, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        pu = self.w[p + "user.weight"][users]
        q = self.w[p + "item.weight"]
        qi = q if items is None else q[items]
        n_layers = sum(1 for k in self.w if k.startswith(p + "hidden.") and k.endswith(".weight"))
        if n_layers == 0:
            pu_b = np.broadcast_to(pu[:, None, :], (len(users), qi.shape[-2], pu.shape[1]))
            qi_b = np.broadcast_to(qi, (len(users), *qi.shape[-2:])) if items is None else qi
            return np.concatenate([pu_b, qi_b], axis=-1)
        w1, b1 = self.w[p + "hidden.0.weight"], self.w[p + "hidden.0.bias"]
        e = pu.shape[1]
        a = pu @ w1[:, :e].T + b1
        if items is None:  # every item's half of the first layer does not depend on the user: computed once
            c = self._item_projection.get(p)
            if c is None:
                c = self._item_projection[p] = q @ w1[:, e:].T
        else:
            c = qi @ w1[:, e:].T
        x = np.maximum(a[:, None, :] + (c[None] if items is None else c), 0)
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # one 2-D product per layer: a stacked 3-D matmul is many times slower
        for k in range(1, n_layers):
            x = x @ self.w[f"{p}hidden.{k}.weight"].T
            x += self.w[f"{p}hidden.{k}.bias"]
            np.maximum(x, 0, out=x)
        return x.reshape(*shape, x.shape[-1])

    def _score_batch(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        w_out, b_out = self.w["out.weight"][0], self.w["out.bias"][0]
        if self.kind == "gmf":
            return self._gmf("", users, items, w_out) + b_out
        if self.kind == "mlp":
            return self._mlp("", users, items) @ w_out + b_out
        f = self.w["gmf.user.weight"].shape[1]
        return self._gmf("gmf.", users, items, w_out[:f]) + self._mlp("mlp.", users, items) @ w_out[f:] + b_out

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        width = self.n_items if items is None else np.asarray(items).shape[1]
        step = max(1, _PAIRS_PER_BATCH // max(width, 1))
        out = np.empty((len(users), width), dtype=np.float32)
        for s in range(0, len(users), step):
            it = None if items is None else np.asarray(items[s: s + step], dtype=np.int64)
            out[s: s + step] = self._score_batch(users[s: s + step], it)
        return out
