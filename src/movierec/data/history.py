"""Histories: what a person did, for scoring people who need not be trained users.

A new person on a web page, a session, and the fold-in users of the vae-cf protocol are all described by
their interactions alone; every model scores them with ``score_history`` (see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Interactions

__all__ = ["History"]


@dataclass
class History:
    """Interaction histories of people who need not be trained users, in the model's index space.

    row: int32 [m], which history (0 .. n-1) each interaction belongs to; item: int32 [m] item indices;
    rating: float32 [m] (1.0 for implicit feedback); timestamp: int64 [m] seconds (0 where unknown).
    Within a history, array order is time order (oldest first): sequential models read it as the session.
    """

    row: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    n: int

    def __post_init__(self) -> None:
        self.row = np.asarray(self.row, dtype=np.int32)
        self.item = np.asarray(self.item, dtype=np.int32)
        self.rating = np.asarray(self.rating, dtype=np.float32)
        self.timestamp = np.asarray(self.timestamp, dtype=np.int64)
        if not len(self.row) == len(self.item) == len(self.rating) == len(self.timestamp):
            raise ValueError("history arrays must have the same length")

    @classmethod
    def of(cls, items: Any, ratings: Any = None, timestamps: Any = None) -> History:
        """One history from item indices in their order (ratings default to 1, timestamps to 0)."""
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        m = len(items)
        return cls(np.zeros(m), items, np.ones(m) if ratings is None else ratings,
                   np.zeros(m) if timestamps is None else timestamps, 1)

    @classmethod
    def from_interactions(cls, inter: Interactions, users: np.ndarray) -> History:
        """The interactions of ``users`` [n] as n histories (row j = users[j]), each in time order
        (ties keep the order of ``inter``)."""
        users = np.asarray(users, dtype=np.int64)
        pos = np.full(inter.n_users, -1, dtype=np.int64)
        pos[users] = np.arange(len(users))
        rows = pos[inter.user]
        keep = np.flatnonzero(rows >= 0)
        order = keep[np.lexsort((keep, inter.timestamp[keep], rows[keep]))]
        return cls(rows[order], inter.item[order], inter.rating[order], inter.timestamp[order], len(users))

    def __len__(self) -> int:
        return len(self.row)

    def lengths(self) -> np.ndarray:
        """Interactions per history, int64 [n]."""
        return np.bincount(self.row, minlength=self.n).astype(np.int64)

    def as_interactions(self, n_items: int) -> Interactions:
        """The histories as interactions whose users are the rows (for code written against training data)."""
        return Interactions(self.row, self.item, self.rating, self.timestamp, self.n, n_items)

    def matrix(self, n_items: int) -> sp.csr_matrix:
        """Binary history x item matrix [n, n_items] (repeated items count once)."""
        return self.as_interactions(n_items).matrix()
