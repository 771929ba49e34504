"""The Recommender contract every model follows, classic or neural.

- ``fit(train, catalog=None, valid=None) -> self``
- ``score(users, items=None)``: ``items=None`` scores every item, float32 [len(users), n_items];
  a 2-D ``items`` [len(users), m] scores each user's own candidate list, float32 [len(users), m].
- ``recommend(users, k, exclude_seen=True) -> (items int64 [n, k], scores float32 [n, k])``; slots with no
  candidate left hold item -1 and score -inf.
- ``save(path)`` / ``Recommender.load(path)`` through :mod:`movierec.artifacts` (no pickle).

A subclass declares ``name`` and ``config_class`` (a dataclass of hyper-parameters), implements ``_fit``,
``score``, ``_state`` (learned arrays by name) and ``_load_state``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut


@dataclasses.dataclass
class NoConfig:
    """A model without hyper-parameters."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of each row's k highest scores, best first; equal scores by ascending index."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (len(scores), 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


class Recommender(ABC):
    """Base class: owns the training-interaction matrix (for ``exclude_seen``) and persistence."""

    name: ClassVar[str]
    config_class: ClassVar[type] = NoConfig

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.config_class()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.seen_: sp.csr_matrix | None = None

    # -- training ----------------------------------------------------------------------------------
    def fit(self, train: Interactions, catalog: Catalog | None = None, valid: HeldOut | None = None) -> Recommender:
        self.seen_ = train.matrix()
        self._fit(train, catalog, valid)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None) -> None: ...

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return self.seen_.shape[0]

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return self.seen_.shape[1]

    def _check_fitted(self) -> None:
        if self.seen_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    # -- scoring -----------------------------------------------------------------------------------
    @abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray: ...

    def recommend(self, users: np.ndarray, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        k = min(k, self.n_items)
        s = np.array(self.score(users, None), dtype=np.float32)
        if exclude_seen:
            rows = self.seen_[users]
            s[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = -np.inf
        idx = top_k(s, k)
        vals = np.take_along_axis(s, idx, axis=1)
        idx[np.isneginf(vals)] = -1
        return idx, vals

    @staticmethod
    def _gather(full: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Per-user candidate scores from full scores [n, n_items]; ``items`` [n, m] or None."""
        if items is None:
            return full
        return np.take_along_axis(full, np.asarray(items, dtype=np.int64), axis=1)

    # -- persistence -------------------------------------------------------------------------------
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        seen = self.seen_
        return {
            "seen.indptr": seen.indptr.astype(np.int64),
            "seen.indices": seen.indices.astype(np.int32),
            "seen.shape": np.array(seen.shape, dtype=np.int64),
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        shape = tuple(int(x) for x in state["seen.shape"])
        indices = state["seen.indices"]
        self.seen_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, state["seen.indptr"]), shape=shape)
        self._load_state({k: v for k, v in state.items() if not k.startswith("seen.")})

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def save(self, path: str | Path, **bundle_kwargs: Any) -> Path:
        from movierec.artifacts import save_bundle

        return save_bundle(path, self, **bundle_kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        from movierec.artifacts import load_bundle

        model = load_bundle(path).model
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
