"""A deliberately plain, loop-based reference implementation of the ranking metrics.

Written independently of movierec.evaluation: it sorts each user's candidates with Python's ``sorted``
and applies the textbook formulas item by item. Tests compare the vectorised code against it.
"""

from __future__ import annotations

import math


def ranked_list(scores: dict[int, float]) -> list[int]:
    """Items by descending score; scores here are distinct, so no tie rule is needed."""
    return [i for i, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def metrics_at_k(ranking: list[int], relevant: set[int], k: int) -> dict[str, float]:
    top = ranking[:k]
    hits = [1 if i in relevant else 0 for i in top]
    n_hits = sum(hits)
    dcg = sum(h / math.log2(p + 2) for p, h in enumerate(hits))
    idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(relevant))))
    rr = 0.0
    for p, h in enumerate(hits):
        if h:
            rr = 1 / (p + 1)
            break
    ap, seen = 0.0, 0
    for p, h in enumerate(hits):
        if h:
            seen += 1
            ap += seen / (p + 1)
    return {
        f"HR@{k}": 1.0 if n_hits else 0.0,
        f"Precision@{k}": n_hits / k,
        f"Recall@{k}": n_hits / len(relevant),
        f"NDCG@{k}": dcg / idcg if idcg else 0.0,
        f"MRR@{k}": rr,
        f"MAP@{k}": ap / min(k, len(relevant)),
    }
