"""Evaluation benchmarks: sampled-100 and full ranking, with the model's scoring time separated out.

- ml-latest-small (real data): Popularity and ItemKNN, fit + both protocols; target: full ranking of
  Popularity under 1 s.
- Synthetic data shaped like ml-20m (138,493 users): sampled-100 of all users with Popularity; target:
  evaluation overhead (total - model scoring) under 2 s. Full ranking with Popularity for information.

The model is wrapped in a proxy that times every ``score`` call, so "scoring" is the model's share of the
very same evaluation calls and "overhead" = total - scoring is what the protocol itself costs.

    .venv/bin/python benchmarks/bench_eval.py            # full size
    .venv/bin/python benchmarks/bench_eval.py --quick    # ~1M-rating synthetic set, smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

TARGETS = {"sampled_overhead_s": 2.0, "small_full_pop_s": 1.0}


def timed_eval(fn, model, repeat: int) -> dict:
    """Run ``fn(proxy)`` ``repeat`` times; medians of total, scoring and overhead, plus the last metrics."""
    proxy = U.TimedModel(model)
    totals, scores, overheads, res = [], [], [], None
    for _ in range(repeat):
        proxy.reset()
        t0 = time.perf_counter()
        res = fn(proxy)
        total = time.perf_counter() - t0
        totals.append(total)
        scores.append(proxy.score_time)
        overheads.append(total - proxy.score_time)
    return {"total_s": statistics.median(totals), "scoring_s": statistics.median(scores),
            "overhead_s": statistics.median(overheads), "totals": totals, "scorings": scores,
            "score_calls": proxy.score_calls, "users": len(res.users),
            "metrics": {k: v for k, v in res.metrics.items() if k.endswith("@10")}}


def bench_dataset(label: str, folder: Path, models: list[str], repeat: int, full_repeat: int,
                  sampled_ks: tuple[int, ...]) -> dict:
    from movierec.data import load_dataset
    from movierec.data.splits import leave_one_out
    from movierec.evaluation import evaluate_full, evaluate_sampled
    from movierec.models import ItemKNN, Popularity

    out: dict = {"label": label, "folder": str(folder)}
    t0 = time.perf_counter()
    ds = load_dataset(folder)
    out["load_cold_s"] = time.perf_counter() - t0
    out["dataset"] = {"ratings": len(ds.interactions), "users": ds.n_users, "items": ds.n_items}
    t0 = time.perf_counter()
    split = leave_one_out(ds.interactions, seed=42)
    out["split_s"] = time.perf_counter() - t0
    print(f"  {label}: {out['dataset']} loaded in {out['load_cold_s']:.2f} s, split in {out['split_s']:.2f} s",
          flush=True)
    classes = {"popularity": Popularity, "itemknn": ItemKNN}
    for name in models:
        t0 = time.perf_counter()
        model = classes[name]().fit(split.train)
        fit_s = time.perf_counter() - t0
        m: dict = {"fit_s": fit_s}
        m["sampled"] = timed_eval(lambda p: evaluate_sampled(p, split, "test", ks=sampled_ks), model, repeat)
        print(f"    {name}: fit {fit_s:.2f} s; sampled-100 total {m['sampled']['total_s']:.3f} s, "
              f"scoring {m['sampled']['scoring_s']:.3f} s", flush=True)
        if full_repeat:
            m["full"] = timed_eval(lambda p: evaluate_full(p, split, "test"), model, full_repeat)
            print(f"    {name}: full ranking total {m['full']['total_s']:.3f} s, "
                  f"scoring {m['full']['scoring_s']:.3f} s", flush=True)
        out[name] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1M-rating synthetic set instead of the ml-20m shape")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each timing (median reported)")
    ap.add_argument("--synthetic-full-repeat", type=int, default=1,
                    help="repetitions of full ranking on the synthetic set (0 skips it)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/...)")
    args = ap.parse_args()
    q = args.quick
    shape = U.QUICK_SHAPE if q else U.FULL_SHAPE

    cache = Path(tempfile.mkdtemp(prefix="movierec-bench-cache-"))
    os.environ["MOVIEREC_CACHE_DIR"] = str(cache)
    results: dict = {"date": U.stamp(), "machine": U.machine_info(), "quick": q, "shape": shape,
                     "repeat": args.repeat, "targets": TARGETS}
    try:
        print(f"[{U.stamp()}] ml-latest-small ...", flush=True)
        small = None
        if (U.ML_LATEST_SMALL / "ratings.csv").is_file():
            small = bench_dataset("ml-latest-small", U.ML_LATEST_SMALL, ["popularity", "itemknn"], args.repeat,
                                  args.repeat, (10,))
        else:
            print(f"  skipped: {U.ML_LATEST_SMALL} not found (set MOVIEREC_BENCH_SMALL)")
        print(f"[{U.stamp()}] synthetic {shape} ...", flush=True)
        folder, _ = U.ensure_synthetic(shape)
        synth = bench_dataset("synthetic", folder, ["popularity"], args.repeat, args.synthetic_full_repeat, (10,))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    results["peak_rss_gb"] = U.peak_rss_gb()

    rows = []
    if small is not None:
        for name in ("popularity", "itemknn"):
            m = small[name]
            for proto in ("sampled", "full"):
                e = m[proto]
                target = TARGETS["small_full_pop_s"] if (name, proto) == ("popularity", "full") else None
                rows.append({"data": "ml-latest-small", "model": name, "what": f"{proto} (fit {m['fit_s']:.2f} s)",
                             "users": e["users"], "total": e["total_s"], "scoring": e["scoring_s"],
                             "overhead": e["overhead_s"], "target": target,
                             "status": U.status(e["total_s"], target, False),
                             "HR@10": e["metrics"].get("HR@10")})
    p = synth["popularity"]
    e = p["sampled"]
    rows.append({"data": "synthetic", "model": "popularity", "what": "sampled (target on overhead)",
                 "users": e["users"], "total": e["total_s"], "scoring": e["scoring_s"], "overhead": e["overhead_s"],
                 "target": TARGETS["sampled_overhead_s"],
                 "status": U.status(e["overhead_s"], TARGETS["sampled_overhead_s"], q),
                 "HR@10": e["metrics"].get("HR@10")})
    if "full" in p:
        e = p["full"]
        rows.append({"data": "synthetic", "model": "popularity", "what": "full", "users": e["users"],
                     "total": e["total_s"], "scoring": e["scoring_s"], "overhead": e["overhead_s"], "target": None,
                     "status": "info", "HR@10": e["metrics"].get("HR@10")})
    print()
    print(f"seconds; median of {args.repeat} (synthetic full ranking: {args.synthetic_full_repeat}); "
          f"peak RSS {results['peak_rss_gb']:.2f} GB")
    U.print_table(rows, [("data", "data"), ("model", "model"), ("what", "protocol"), ("users", "users"),
                         ("total", "total"), ("scoring", "scoring"), ("overhead", "overhead"),
                         ("target", "target"), ("status", "status"), ("HR@10", "HR@10")])
    results.update(rows=rows, ml_latest_small=small, synthetic=synth)
    path = U.write_json(f"bench_eval{'_quick' if q else ''}.json", results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
