"""Folding new people into factor models: how close to the trained users, how accurate, how fast.

On ml-latest-small (leave-one-out, seed 42), each model is trained with its default settings; then every
evaluated user's training history is given to ``recommend_history`` as if the user were new. Reported per
model: full-ranking NDCG@10 and HR@10 on the test items for the trained users and for the folded-in
histories, the mean top-10 overlap between the two, and the fold-in seconds for all users, the milliseconds
of one new person with 5 ratings (median of 50), and of 8 people with 3-10 ratings each, asked together as a
server's batch is (median of 20, per person). Each model is folded in three ways, by the same fitted
network: ``numpy`` (movierec.models.fold_in, the item side computed once) and ``torch`` (autograd over a copy
of the network), which optimise the same objective with Adam, and ``solve`` (movierec.models.fold_in.solve, in
closed form on the linearised network: what a server does). solve's ridge is chosen on validation: each
candidate folds in the training histories and ranks the validation items (full ranking, NDCG@10); the best
one then gives the test figures. A model's FOLD_IN_SOLVE_L2 is set from this choice, and its SERVED_FOLD_IN
(which fold-in a server uses) from the engines' validation NDCG@10 and top-10 overlap.

    python benchmarks/bench_fold_in.py [--models gmf,mlp,neumf] [--engines solve,numpy,torch]
                                       [--out benchmarks/results/fold_in.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

from movierec.data import load_dataset
from movierec.data.history import History
from movierec.data.splits import leave_one_out
from movierec.evaluation.metrics import accuracy_metrics
from movierec.models import build_model


def _metrics(recs: np.ndarray, test_items: np.ndarray) -> dict[str, float]:
    hits = recs == test_items[:, None]
    per_user = accuracy_metrics(hits, np.ones(len(recs), np.int64), (10,), "full")
    return {k: float(v.mean()) for k, v in per_user.items() if k in ("HR@10", "NDCG@10")}


def _median_s(recommend, history: History, n: int) -> float:
    """Median seconds of ``n`` calls recommend(history, 10) (after one unmeasured)."""
    recommend(history, 10)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        recommend(history, 10)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="gmf,mlp,neumf")
    ap.add_argument("--data", default=str(U.ML_LATEST_SMALL), help="a release name or folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fold_in.json"))
    ap.add_argument("--engines", default="solve,numpy,torch", help="which fold-ins to measure")
    ap.add_argument("--l2", default="0.3,1,3,10,30", help="solve's ridge candidates (chosen on validation)")
    args = ap.parse_args()
    ds = load_dataset(args.data)
    split = leave_one_out(ds.interactions, seed=42)
    users, test_items = split.test.user.astype(np.int64), split.test.item.astype(np.int64)
    # the validation item is a known interaction: it is excluded from the trained users' candidates too
    history = History.from_interactions(split.train, users)
    rows = []
    for name in args.models.split(","):
        model = build_model(name).fit(split.train, ds.catalog, split.valid)
        valid_seen = np.zeros((len(users), model.n_items), bool)
        valid_seen[np.arange(len(users)), split.valid.item] = True
        trained = model.score(users)
        trained[valid_seen | (model.seen_[users].toarray() > 0)] = -np.inf
        top_t = np.argsort(-trained, axis=1, kind="stable")[:, :10]
        popular = np.argsort(-np.bincount(split.train.item))
        one = History.of(popular[[0, 5, 20, 60, 150]])  # a new person
        rng = np.random.default_rng(0)
        some = [rng.choice(popular[:200], n, replace=False) for n in rng.integers(3, 11, 8)]
        eight = History(np.repeat(np.arange(8), [len(x) for x in some]), np.concatenate(some),
                        np.ones(sum(map(len, some))), np.zeros(sum(map(len, some))), 8)  # a server's batch
        model.FAST_FOLD_IN_MAX_PEOPLE = 1 << 30  # the numpy engines for all 610 at once too (this model only)
        model.fold_in_method = "solve"
        on_valid = {}
        for l2 in [float(x) for x in args.l2.split(",")]:
            model.FOLD_IN_SOLVE_L2 = l2
            scores = model.score_history(history)
            scores[history.matrix(model.n_items).toarray() > 0] = -np.inf
            top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
            on_valid[l2] = _metrics(top, split.valid.item.astype(np.int64))["NDCG@10"]
            print(f"{name} solve l2={l2}: validation NDCG@10 {on_valid[l2]:.4f}", flush=True)
        chosen = max(on_valid, key=on_valid.get)
        model.FOLD_IN_SOLVE_L2 = chosen
        for engine in args.engines.split(","):
            model.fold_in_method = "solve" if engine == "solve" else "adam"
            model.FAST_FOLD_IN = engine == "numpy"
            t0 = time.perf_counter()
            folded = model.score_history(history)
            seconds = time.perf_counter() - t0
            person = _median_s(model.recommend_history, one, 50)
            together = _median_s(model.recommend_history, eight, 20) / 8
            folded[history.matrix(model.n_items).toarray() > 0] = -np.inf
            valid_ndcg = _metrics(np.argsort(-folded, axis=1, kind="stable")[:, :10], split.valid.item)["NDCG@10"]
            folded[valid_seen] = -np.inf
            top_f = np.argsort(-folded, axis=1, kind="stable")[:, :10]
            overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_t, top_f, strict=True)]))
            row = {"model": name, "engine": engine, "fit_s": round(model.fit_report_.seconds, 1),
                   "fold_in_s": round(seconds, 2), "users": len(users), "top10_overlap": round(overlap, 3),
                   "one_person_ms": round(person * 1000, 2), "eight_together_ms_each": round(together * 1000, 2),
                   "validation NDCG@10": round(valid_ndcg, 4),
                   **({"l2": chosen, "validation NDCG@10 by l2": on_valid} if engine == "solve" else {}),
                   **{f"trained {k}": round(v, 4) for k, v in _metrics(top_t, test_items).items()},
                   **{f"folded-in {k}": round(v, 4) for k, v in _metrics(top_f, test_items).items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"data": args.data, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
