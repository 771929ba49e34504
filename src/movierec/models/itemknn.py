"""Item-item k-nearest-neighbours on the implicit (binary) user x item matrix.

sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) * sqrt(|U_j|) + shrink)   (cosine with shrinkage)
Each item keeps its ``k`` most similar items; score(u, i) = sum over the user's items j of sim(j, i), for a
trained user and for any history alike (exact: the same items give the same scores).
The co-occurrence matrix is computed in column blocks so memory stays at [n_items, block] floats.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.models.base import History, Recommender, RunContext
from movierec.models.settings import Settings, setting

__all__ = ["ItemKNN", "ItemKNNSettings"]


class ItemKNNSettings(Settings):
    k: int = setting(100, "neighbours kept per item", ge=1)
    shrink: float = setting(0.0, "added to the cosine denominator; damps similarities of rare items", ge=0)
    block_size: int = setting(2048, "items per block when computing similarities (memory, not results)", ge=1)


class ItemKNN(Recommender):
    name = "itemknn"
    exact_history = True
    config_class = ItemKNNSettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None, context: RunContext) -> None:
        x = self.seen_.tocsc().astype(np.float32)  # [n_users, n_items], binary
        xt = x.T.tocsr()
        n_items = x.shape[1]
        norm = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)
        k = min(self.config.k, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n_items, self.config.block_size):
            stop = min(start + self.config.block_size, n_items)
            co = (xt @ x[:, start:stop]).toarray()  # [n_items, block]: co-occurrence counts
            denom = norm[:, None] * norm[None, start:stop] + self.config.shrink
            sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # no self-similarity
            top = np.argpartition(-sim, k - 1, axis=0)[:k] if k < n_items else np.argsort(-sim, axis=0)
            top_vals = np.take_along_axis(sim, top, axis=0)
            keep = top_vals > 0
            rows.append(top[keep])
            cols.append(np.broadcast_to(np.arange(start, stop), top.shape)[keep])
            vals.append(top_vals[keep])
        w = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_items, n_items), dtype=np.float32)
        w.sort_indices()
        self.w_ = w  # w[j, i] = sim(j, i) for j among i's k neighbours

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        full = np.asarray((self.seen_[users] @ self.w_).toarray(), dtype=np.float32)
        return self._gather(full, items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        full = np.asarray((history.matrix(self.n_items) @ self.w_).toarray(), dtype=np.float32)
        return self._gather(full, items)

    def item_similarity(self, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        """The kept item-item weights, either direction: sim(a, b) where a keeps b as a neighbour or b keeps a."""
        items = np.asarray(items, dtype=np.int64)
        cols = slice(None) if others is None else np.asarray(others, dtype=np.int64)
        forward = self.w_[items][:, cols].toarray()
        backward = (self.w_[:, items] if others is None else self.w_[cols][:, items]).T.toarray()
        return np.maximum(forward, backward).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"w.data": self.w_.data, "w.indices": self.w_.indices.astype(np.int32),
                "w.indptr": self.w_.indptr.astype(np.int64)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n = self.seen_.shape[1]
        self.w_ = sp.csr_matrix((state["w.data"], state["w.indices"], state["w.indptr"]), shape=(n, n))
