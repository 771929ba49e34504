"""Vectorised negative sampling that never returns a user's positives.

Positives are encoded as sorted int64 keys ``user * n_items + item``; membership is a ``searchsorted``.
"""

from __future__ import annotations

import numpy as np

from movierec.errors import MovieRecError


class NotEnoughNegativesError(MovieRecError, ValueError):
    """A user has interacted with so much of the catalogue that ``n`` negatives cannot be drawn.

    ``user`` is the dense user index, ``free`` the number of items that user never interacted with.
    """

    def __init__(self, user: int, free: int, n: int, n_items: int) -> None:
        super().__init__(f"user index {user} has only {free} items to sample {n} negatives from")
        self.user, self.free, self.n, self.n_items = user, free, n, n_items


def positive_keys(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted, unique int64 keys ``user * n_items + item`` [n_unique]."""
    keys = np.sort(user.astype(np.int64) * n_items + item.astype(np.int64))
    if len(keys) > 1:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys


def is_positive(keys: np.ndarray, user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean mask (same shape as ``item``) of (user, item) pairs present in ``keys``.

    ``user`` broadcasts against ``item`` (e.g. user [n, 1] with item [n, m]).
    """
    q = np.asarray(user, dtype=np.int64) * n_items + np.asarray(item, dtype=np.int64)
    if len(keys) == 0:
        return np.zeros(q.shape, dtype=bool)
    pos = np.searchsorted(keys, q)
    return keys[np.minimum(pos, len(keys) - 1)] == q


def sample_negatives(
    users: np.ndarray,
    n: int,
    keys: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
    distinct: bool = True,
) -> np.ndarray:
    """Draw ``n`` items per user uniformly from the items that user never interacted with.

    users: int [n_users] (may repeat); keys: the positives from :func:`positive_keys`.
    Returns int32 [len(users), n]. With ``distinct`` a row never repeats an item.
    Raises :class:`NotEnoughNegativesError` (a ValueError) if a user has fewer than ``n`` non-positive items.
    """
    users = np.asarray(users, dtype=np.int64)
    out = np.empty((len(users), n), dtype=np.int32)
    if len(users) == 0 or n == 0:
        return out
    n_pos = np.diff(np.searchsorted(keys, np.stack([users * n_items, (users + 1) * n_items])), axis=0)[0]
    free = n_items - n_pos
    short = free < n if distinct else free < 1
    if short.any():
        u = int(users[short][0])
        raise NotEnoughNegativesError(u, int(free[short][0]), n, n_items)
    # Dense rows (the user owns much of the catalogue, or n is close to what is free): a random
    # permutation of the free items, O(n_items) per row. Sparse rows: rejection sampling, O(n) per row.
    dense = n * 4 > free
    for start in range(0, int(dense.sum()), max(1, (1 << 22) // n_items)):
        rows = np.nonzero(dense)[0][start: start + max(1, (1 << 22) // n_items)]
        noise = rng.random((len(rows), n_items))
        noise[is_positive(keys, users[rows, None], np.arange(n_items)[None, :], n_items)] = np.inf
        out[rows] = np.argsort(noise, axis=1)[:, :n]
    todo = np.nonzero(~dense)[0]
    rounds = 0
    while len(todo):
        rounds += 1
        # Size the draws for (nearly) every row; the few heaviest users are topped up in the next round.
        frac = float(np.quantile(n_pos[todo] / n_items, 0.99))
        m = int(np.ceil(n / max(1e-3, 1.0 - frac) * (1.1 + 0.5 * rounds))) + 8
        draws = rng.integers(0, n_items, size=(len(todo), m), dtype=np.int64)
        # Sort each row once by (item, position): membership lookups then run over sorted keys, and
        # repeated items sit side by side with their earliest draw first.
        packed = np.sort(draws * m + np.arange(m), axis=1)
        items_sorted, position = packed // m, packed % m
        ok_sorted = ~is_positive(keys, users[todo, None], items_sorted, n_items)
        if distinct:
            ok_sorted[:, 1:] &= items_sorted[:, 1:] != items_sorted[:, :-1]
        ok = np.empty_like(ok_sorted)
        np.put_along_axis(ok, position, ok_sorted, axis=1)
        # Keep the first n valid draws of each row, in draw order (so the sample stays uniform).
        rank = np.cumsum(ok, axis=1)
        enough = rank[:, -1] >= n
        rows = np.nonzero(enough)[0]
        take = ok[rows] & (rank[rows] <= n)
        out[todo[rows]] = draws[rows][take].reshape(len(rows), n)
        todo = todo[~enough]
    return out
