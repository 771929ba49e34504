"""Accuracy metrics at a cutoff K, computed per user from a ranked hit matrix.

Every function takes ``hits``: bool [n_users, >=K], ``hits[u, p]`` is True when the item at position
``p`` (0-based) of user ``u``'s ranked list is relevant; and ``n_relevant``: int [n_users], the number of
relevant items of the user (held-out items). Each returns float64 [n_users]; the reported figure is the
mean over users. Definitions (docs/architecture.md, "Evaluation protocols"):

- HR@K = 1 if any relevant item is in the top K (sampled-100: P(rank < K))
- Precision@K = hits / K;  Recall@K = hits / |relevant|;  Recall@K (vae-cf) = hits / min(K, |relevant|)
- NDCG@K = DCG / IDCG with binary gains and log2(position + 2) discounts; with one relevant item this is
  1 / log2(rank + 2) if rank < K else 0
- MRR@K = 1 / (first hit position + 1), 0 if none in the top K
- MAP@K = sum over hit positions p of Precision@(p+1), divided by min(K, |relevant|)
"""

from __future__ import annotations

import numpy as np


def _top(hits: np.ndarray, k: int) -> np.ndarray:
    if hits.shape[1] < k:
        raise ValueError(f"hit matrix has {hits.shape[1]} positions, need K={k}")
    return hits[:, :k]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    return _top(hits, k).any(axis=1).astype(np.float64)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    return _top(hits, k).sum(axis=1) / float(k)


def recall(hits: np.ndarray, k: int, n_relevant: np.ndarray) -> np.ndarray:
    return _top(hits, k).sum(axis=1) / np.maximum(n_relevant, 1)


def recall_capped(hits: np.ndarray, k: int, n_relevant: np.ndarray) -> np.ndarray:
    """Recall as Liang et al. 2018 define it for VAE-CF: hits / min(K, |relevant|)."""
    return _top(hits, k).sum(axis=1) / np.maximum(np.minimum(n_relevant, k), 1)


def ndcg(hits: np.ndarray, k: int, n_relevant: np.ndarray) -> np.ndarray:
    disc = _discounts(k)
    dcg = _top(hits, k) @ disc
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal_cum[np.clip(n_relevant, 0, k)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def mrr(hits: np.ndarray, k: int) -> np.ndarray:
    top = _top(hits, k)
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def average_precision(hits: np.ndarray, k: int, n_relevant: np.ndarray) -> np.ndarray:
    top = _top(hits, k).astype(np.float64)
    prec_at = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    return (prec_at * top).sum(axis=1) / np.maximum(np.minimum(n_relevant, k), 1)


def accuracy_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...], protocol: str
) -> dict[str, np.ndarray]:
    """All accuracy metrics at every K, per user, keyed like ``"NDCG@10"``."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(hits, k)
        out[f"NDCG@{k}"] = ndcg(hits, k, n_relevant)
        out[f"MRR@{k}"] = mrr(hits, k)
        if protocol != "sampled-100":
            out[f"Precision@{k}"] = precision(hits, k)
            out[f"Recall@{k}"] = (recall_capped if protocol == "vae-cf" else recall)(hits, k, n_relevant)
            out[f"MAP@{k}"] = average_precision(hits, k, n_relevant)
    return out
