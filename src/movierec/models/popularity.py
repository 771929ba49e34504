"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.models.base import History, Recommender, RunContext

__all__ = ["Popularity"]


class Popularity(Recommender):
    """score(u, i) = number of training users who interacted with item i (the same for every user)."""

    name = "popularity"
    exact_history = True

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None, context: RunContext) -> None:
        self.counts_ = np.asarray(self.seen_.sum(axis=0), dtype=np.float32).ravel()  # [n_items]

    def _counts_for(self, n: int, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            return np.broadcast_to(self.counts_, (n, len(self.counts_))).copy()
        return self.counts_[np.asarray(items, dtype=np.int64)]

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        return self._counts_for(len(np.atleast_1d(users)), items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        return self._counts_for(history.n, items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"]
