"""Data benchmarks: parsing a 20M-rating ratings.csv (cold and from the Parquet cache) and the leave-one-out split.

Each phase runs in its own process so peak memory (VmHWM, and the child's ru_maxrss from wait4) is per
phase. The ratings file is read once beforehand, so every phase starts with it in the OS page cache
("cold" means an empty MOVIEREC_CACHE_DIR, not a cold disk).

    .venv/bin/python benchmarks/bench_data.py            # full size (ml-20m shape)
    .venv/bin/python benchmarks/bench_data.py --quick    # ~1M ratings smoke run
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

SCRIPT = Path(__file__).resolve()

TARGETS = {"parse_cold_s": 15.0, "parse_cached_s": 1.5, "peak_gb": 3.0, "split_s": 10.0}


# --------------------------------------------------------------------------------------------- child phases


def _load(args: list[str]) -> dict:
    from movierec.data import cache_dir, load_dataset

    folder = Path(args[0])
    parsed = cache_dir() / "parsed"
    had_cache = parsed.is_dir() and any(parsed.iterdir())
    t0 = time.perf_counter()
    ds = load_dataset(folder)
    elapsed = time.perf_counter() - t0
    return {"load_s": elapsed, "had_cache": had_cache, "ratings": len(ds.interactions), "users": ds.n_users,
            "items": ds.n_items}


def _pandas(args: list[str]) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(Path(args[0]) / "ratings.csv")
    return {"load_s": time.perf_counter() - t0, "ratings": len(df)}


def _split(args: list[str]) -> dict:
    from movierec.data import load_dataset
    from movierec.data.splits import leave_one_out

    ds = load_dataset(Path(args[0]))  # from the cache written by the cold phase
    repeat = int(args[1])
    med, times, split = U.median_time(lambda: leave_one_out(ds.interactions, seed=42), repeat)
    return {"split_s": med, "split_times": times, "train": len(split.train), "evaluated_users": len(split.test)}


def _profile(args: list[str]) -> dict:
    """Where the cold load's time goes, phase by phase (uses the loader's internals; best effort)."""
    import numpy as np
    import pyarrow as pa

    from movierec.data import cache, parse
    from movierec.data.dataset import IdMap
    from movierec.data.releases import LAYOUTS

    folder = Path(args[0])
    spec = LAYOUTS["csv"]["ratings"]
    out: dict = {}

    def t(name: str, fn):
        t0 = time.perf_counter()
        r = fn()
        out[name] = time.perf_counter() - t0
        return r

    table = t("read_csv_pyarrow", lambda: parse.read_table(folder / spec.filename, spec, None))
    frame = t("to_pandas", functools.partial(table.to_pandas, split_blocks=True, self_destruct=True))
    del table
    users, u = t("idmap_users", lambda: IdMap.from_raw(frame["userId"].to_numpy(), "user"))
    items, i = t("idmap_items", lambda: IdMap.from_raw(frame["movieId"].to_numpy(), "movie"))
    ts, r = t("column_casts", lambda: (frame["timestamp"].to_numpy(np.int64), frame["rating"].to_numpy(np.float32)))
    tables = t("arrow_tables", lambda: {
        "interactions": pa.table({"user": u, "item": i, "rating": r, "timestamp": ts}),
        "user_ids": pa.table({"id": users.ids}), "item_ids": pa.table({"id": items.ids}),
    })
    with tempfile.TemporaryDirectory(prefix="movierec-bench-prof-") as tmp:
        def write():
            for name, tab in tables.items():
                cache._write_parquet(tab, Path(tmp) / f"{name}.parquet")
        t("parquet_write", write)
        out["parquet_mb"] = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    cat_tables = t("catalog_parse", lambda: parse.parse_catalog(folder, "csv", None))
    t("catalog_to_frames", lambda: parse.catalog_from_tables(cat_tables))
    return out


PHASES = {"load": _load, "pandas": _pandas, "split": _split, "profile": _profile}


# --------------------------------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1M ratings instead of the ml-20m shape")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each timing (median reported)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the pandas.read_csv baseline")
    ap.add_argument("--no-profile", action="store_true", help="skip the phase-by-phase profile of the cold load")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/...)")
    args = ap.parse_args()
    shape = U.QUICK_SHAPE if args.quick else U.FULL_SHAPE

    print(f"[{U.stamp()}] synthetic data {shape} ...", flush=True)
    folder, gen_s = U.ensure_synthetic(shape)
    csv = folder / "ratings.csv"
    print(f"  {folder} ({f'written in {gen_s:.1f} s' if gen_s else 're-used'}; "
          f"ratings.csv {csv.stat().st_size / 1e6:.0f} MB)", flush=True)
    warm_s = U.warm_page_cache(csv)

    results: dict = {"date": U.stamp(), "machine": U.machine_info(), "quick": args.quick, "shape": shape,
                     "folder": str(folder), "csv_mb": csv.stat().st_size / 1e6, "generate_s": gen_s,
                     "page_cache_warm_s": warm_s, "repeat": args.repeat, "targets": TARGETS}
    cache_root = Path(tempfile.mkdtemp(prefix="movierec-bench-cache-"))
    try:
        cold, cached = [], []
        main_cache = None
        for k in range(args.repeat):
            cdir = cache_root / f"cache{k}"
            cdir.mkdir()
            env = {"MOVIEREC_CACHE_DIR": str(cdir)}
            r = U.run_child(SCRIPT, ["--child", "load", str(folder)], env)
            assert not r["had_cache"], "cold phase found a populated cache"
            cold.append(r)
            print(f"  cold load {k + 1}: {r['load_s']:.2f} s, peak {r['peak_rss_gb']:.2f} GB", flush=True)
            if main_cache is None:
                main_cache = env
            else:
                shutil.rmtree(cdir, ignore_errors=True)
        for k in range(args.repeat):
            r = U.run_child(SCRIPT, ["--child", "load", str(folder)], main_cache)
            assert r["had_cache"], "cached phase found no cache"
            cached.append(r)
            print(f"  cached load {k + 1}: {r['load_s']:.2f} s (process {r['wall_s']:.2f} s), "
                  f"peak {r['peak_rss_gb']:.2f} GB", flush=True)
        split = U.run_child(SCRIPT, ["--child", "split", str(folder), str(args.repeat)], main_cache)
        print(f"  leave_one_out: {split['split_s']:.2f} s (median of {split['split_times']})", flush=True)
        baseline = []
        if not args.no_baseline:
            for k in range(args.repeat):
                r = U.run_child(SCRIPT, ["--child", "pandas", str(folder)])
                baseline.append(r)
                print(f"  pandas.read_csv {k + 1}: {r['load_s']:.2f} s, peak {r['peak_rss_gb']:.2f} GB", flush=True)
        profile = None
        if not args.no_profile:
            try:
                profile = U.run_child(SCRIPT, ["--child", "profile", str(folder)])
            except Exception as e:  # the profile uses loader internals that may change
                profile = {"error": str(e)[-500:]}
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)

    def med(rows: list[dict], key: str) -> float | None:
        return statistics.median(r[key] for r in rows) if rows else None

    def peak(rows: list[dict]) -> float | None:
        return max(r["peak_rss_gb"] for r in rows) if rows else None

    q = args.quick
    rows = [
        {"what": "parse cold (load_dataset, empty cache)", "value": med(cold, "load_s"), "unit": "s",
         "target": TARGETS["parse_cold_s"], "status": U.status(med(cold, "load_s"), TARGETS["parse_cold_s"], q)},
        {"what": "  peak RSS, cold", "value": peak(cold), "unit": "GB", "target": TARGETS["peak_gb"],
         "status": U.status(peak(cold), TARGETS["peak_gb"], q)},
        {"what": "parse from Parquet cache (new process)", "value": med(cached, "load_s"), "unit": "s",
         "target": TARGETS["parse_cached_s"],
         "status": U.status(med(cached, "load_s"), TARGETS["parse_cached_s"], q)},
        {"what": "  same, whole process incl. imports", "value": med(cached, "wall_s"), "unit": "s",
         "target": None, "status": "info"},
        {"what": "  peak RSS, cached", "value": peak(cached), "unit": "GB", "target": TARGETS["peak_gb"],
         "status": U.status(peak(cached), TARGETS["peak_gb"], q)},
        {"what": "leave_one_out (+ 2x99 negatives)", "value": split["split_s"], "unit": "s",
         "target": TARGETS["split_s"], "status": U.status(split["split_s"], TARGETS["split_s"], q)},
    ]
    if baseline:
        rows += [
            {"what": "baseline: pandas.read_csv (C engine)", "value": med(baseline, "load_s"), "unit": "s",
             "target": None, "status": "info"},
            {"what": "  peak RSS, pandas baseline", "value": peak(baseline), "unit": "GB", "target": None,
             "status": "info"},
        ]
    print()
    print(f"ratings: {cold[0]['ratings']:,}  users: {cold[0]['users']:,}  items: {cold[0]['items']:,}"
          f"  (ratings.csv {results['csv_mb']:.0f} MB, median of {args.repeat})")
    U.print_table(rows, [("what", "measure"), ("value", "value"), ("unit", "unit"), ("target", "target"),
                         ("status", "status")])
    if profile:
        print("\ncold-load profile (one run, seconds):")
        for k, v in profile.items():
            print(f"  {k:22s} {v:.3f}" if isinstance(v, float) else f"  {k:22s} {v}")
    results.update(rows=rows, cold=cold, cached=cached, split=split, baseline=baseline, profile=profile,
                   dataset={k: cold[0][k] for k in ("ratings", "users", "items")})
    path = U.write_json(f"bench_data{'_quick' if q else ''}.json", results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        U.child_main(PHASES)
    else:
        main()
