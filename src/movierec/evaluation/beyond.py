"""Beyond-accuracy metrics over all evaluated users' top-K lists (definitions: docs/architecture.md).

``recs``: int [n_users, K] item indices (-1 marks an empty slot); ``item_users``: int [n_items], how many
training users interacted with each item; ``n_train_users``: users with at least one training interaction.
"""

from __future__ import annotations

import numpy as np


def _valid(recs: np.ndarray) -> np.ndarray:
    return recs[recs >= 0]


def catalog_coverage(recs: np.ndarray, item_users: np.ndarray) -> float:
    """Distinct recommended items / items present in train."""
    n_train_items = int((item_users > 0).sum())
    return float(len(np.unique(_valid(recs))) / max(n_train_items, 1))


def intra_list_diversity(recs: np.ndarray, features: np.ndarray) -> float:
    """Mean over users of the mean pairwise (1 - cosine) of the recommended items' feature vectors.

    features: float [n_items, n_features] (genre multi-hot). Items with an all-zero vector have cosine 0
    to everything. Lists with fewer than 2 items are skipped.
    """
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features, dtype=np.float64), where=norms > 0)
    k = recs.shape[1]
    if k < 2:
        return float("nan")
    x = unit[np.maximum(recs, 0)] * (recs >= 0)[..., None]  # [n, K, F]
    sim = np.einsum("nkf,njf->nkj", x, x)
    valid = (recs >= 0).astype(np.float64)
    pair = valid[:, :, None] * valid[:, None, :]
    pair[:, np.arange(k), np.arange(k)] = 0.0
    n_pairs = pair.sum(axis=(1, 2))
    dist = ((1.0 - sim) * pair).sum(axis=(1, 2))
    ok = n_pairs > 0
    return float((dist[ok] / n_pairs[ok]).mean()) if ok.any() else float("nan")


def novelty(recs: np.ndarray, item_users: np.ndarray, n_train_users: int) -> float:
    """Mean over recommended items of -log2(fraction of training users who interacted with the item).

    Items no training user touched count as one user (the most novel possible).
    """
    items = _valid(recs)
    frac = np.maximum(item_users[items], 1) / max(n_train_users, 1)
    return float(-np.log2(frac).mean()) if len(items) else float("nan")


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative ``counts`` [n]: 0 when all are equal, (n - 1) / n when one holds all.

    G = sum_i (2 i - n - 1) x_(i) / (n sum x) with x sorted ascending and i = 1..n (the usual sample Gini,
    half the relative mean absolute difference). Returns 0.0 for an empty or all-zero input.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    n = len(x)
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    if x[0] < 0:
        raise ValueError("gini needs non-negative values")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.dot(2 * i - n - 1, x) / (n * total))


def gini_index(recs: np.ndarray, item_users: np.ndarray) -> float:
    """Gini index of how often each training item is recommended (0 = even, 1 = one item takes all)."""
    train_items = item_users > 0
    counts = np.bincount(_valid(recs), minlength=len(item_users))[train_items].astype(np.float64)
    if len(counts) == 0 or counts.sum() == 0:
        return float("nan")
    return gini(counts)


def average_popularity(recs: np.ndarray, item_users: np.ndarray) -> float:
    """Mean number of training users of the recommended items."""
    items = _valid(recs)
    return float(item_users[items].mean()) if len(items) else float("nan")


def beyond_accuracy_metrics(
    recs: np.ndarray, item_users: np.ndarray, n_train_users: int, features: np.ndarray | None
) -> dict[str, float]:
    k = recs.shape[1]
    out = {
        f"Coverage@{k}": catalog_coverage(recs, item_users),
        f"Novelty@{k}": novelty(recs, item_users, n_train_users),
        f"Gini@{k}": gini_index(recs, item_users),
        f"AvgPop@{k}": average_popularity(recs, item_users),
    }
    if features is not None:
        out[f"ILD@{k}"] = intra_list_diversity(recs, features)
    return out
