"""EDA benchmark: `run_eda` end to end on synthetic data shaped like ml-20m (20M ratings).

The synthetic release is written once with ``movierec.data.synthetic.write_synthetic`` under ``--data-dir``
and re-used; its parsed Parquet cache lives next to it (a private MOVIEREC_CACHE_DIR), built by an untimed
warm-up process the first time. The measured process then loads the data set from that cache and runs
``run_eda`` (report into a temporary folder unless ``--report-dir``); it reports the load, the EDA (step by
step, from the progress callback) and the total, plus the process's peak RSS (VmHWM).

    .venv/bin/python benchmarks/bench_eda.py            # full size (ml-20m shape), target < 120 s in total
    .venv/bin/python benchmarks/bench_eda.py --quick    # ~1M ratings smoke run
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

SCRIPT = Path(__file__).resolve()

TARGETS = {"total_s": 120.0}


# --------------------------------------------------------------------------------------------- child phases


def _warm(args: list[str]) -> dict:
    """Parse the release once so that the measured runs load from the Parquet cache."""
    from movierec.data import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(Path(args[0]))
    return {"parse_s": time.perf_counter() - t0, "ratings": len(ds.interactions)}


def _eda(args: list[str]) -> dict:
    from movierec.data import load_dataset
    from movierec.eda import run_eda, summary_lines

    folder, report_dir, sample = Path(args[0]), Path(args[1]), int(args[2])
    t0 = time.perf_counter()
    ds = load_dataset(folder)
    t_load = time.perf_counter() - t0
    marks: list[tuple[str, float]] = []
    t1 = time.perf_counter()
    report = run_eda(ds, report_dir, sample=sample, seed=0, progress=lambda s: marks.append((s, time.perf_counter())))
    t_end = time.perf_counter()
    steps = {}
    for (name, t), nxt in zip(marks, [m[1] for m in marks[1:]] + [t_end], strict=True):
        steps[name] = nxt - t
    return {"load_s": t_load, "eda_s": t_end - t1, "total_s": t_end - t0, "steps": steps,
            "ratings": len(ds.interactions), "users": ds.n_users, "items": ds.n_items,
            "figures": len(report.figures), "html_mb": report.html_path.stat().st_size / 1e6,
            "summary_lines": summary_lines(report)}


PHASES = {"warm": _warm, "eda": _eda}


# --------------------------------------------------------------------------------------------- driver


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1M ratings instead of the ml-20m shape")
    ap.add_argument("--repeat", type=int, default=1, help="measured runs (median reported)")
    ap.add_argument("--data-dir", type=Path, default=U.DATA_ROOT,
                    help=f"where the synthetic data and its parse cache are kept (default {U.DATA_ROOT})")
    ap.add_argument("--sample", type=int, default=1_000_000, help="run_eda's sample (scatter-plot dots)")
    ap.add_argument("--report-dir", type=Path, default=None, help="keep the report here (default: temporary)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/eda.json)")
    args = ap.parse_args()
    shape = U.QUICK_SHAPE if args.quick else U.FULL_SHAPE

    U.DATA_ROOT = args.data_dir  # ensure_synthetic writes under U.DATA_ROOT
    print(f"[{U.stamp()}] synthetic data {shape} under {args.data_dir} ...", flush=True)
    folder, gen_s = U.ensure_synthetic(shape)
    print(f"  {folder} ({f'written in {gen_s:.1f} s' if gen_s else 're-used'})", flush=True)
    cache = {"MOVIEREC_CACHE_DIR": str(folder.with_name(folder.name + ".cache"))}
    warm = U.run_child(SCRIPT, ["--child", "warm", str(folder)], cache)
    print(f"  parse cache ready (warm-up load {warm['parse_s']:.1f} s)", flush=True)

    load_before = _load_average()
    runs = []
    tmp = Path(tempfile.mkdtemp(prefix="movierec-bench-eda-"))
    try:
        for k in range(args.repeat):
            report_dir = args.report_dir or tmp / f"report{k}"
            r = U.run_child(SCRIPT, ["--child", "eda", str(folder), str(report_dir), str(args.sample)], cache)
            runs.append(r)
            print(f"  run {k + 1}: load {r['load_s']:.2f} s + EDA {r['eda_s']:.2f} s = {r['total_s']:.2f} s"
                  f" (process {r['wall_s']:.2f} s), peak {r['peak_rss_gb']:.2f} GB", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = _load_average()

    total = statistics.median(r["total_s"] for r in runs)
    rows = [
        {"what": "load (Parquet cache) + run_eda", "value": total, "unit": "s", "target": TARGETS["total_s"],
         "status": U.status(total, TARGETS["total_s"], args.quick)},
        {"what": "  load_dataset from cache", "value": statistics.median(r["load_s"] for r in runs), "unit": "s",
         "target": None, "status": "info"},
        {"what": "  run_eda", "value": statistics.median(r["eda_s"] for r in runs), "unit": "s", "target": None,
         "status": "info"},
        {"what": "  whole process incl. imports", "value": statistics.median(r["wall_s"] for r in runs),
         "unit": "s", "target": None, "status": "info"},
        {"what": "  peak RSS", "value": max(r["peak_rss_gb"] for r in runs), "unit": "GB", "target": None,
         "status": "info"},
    ]
    last = runs[-1]
    print()
    print(f"ratings: {last['ratings']:,}  users: {last['users']:,}  items: {last['items']:,}"
          f"  ({last['figures']} figures, eda.html {last['html_mb']:.1f} MB)")
    U.print_table(rows, [("what", "measure"), ("value", "value"), ("unit", "unit"), ("target", "target"),
                         ("status", "status")])
    print("\nrun_eda steps (last run, seconds):")
    for name, sec in last["steps"].items():
        print(f"  {name:20s} {sec:7.2f}")
    print("\n" + "\n".join(f"  {ln}" for ln in last["summary_lines"]))
    results = {"date": U.stamp(), "machine": U.machine_info(), "quick": args.quick, "shape": list(shape),
               "folder": str(folder), "generate_s": gen_s, "repeat": args.repeat, "sample": args.sample,
               "targets": TARGETS, "seconds": total, "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
               "load_average_before": load_before, "load_average_after": load_after, "rows": rows, "runs": runs,
               "warm_up": warm}
    path = U.write_json(f"eda{'_quick' if args.quick else ''}.json", results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        U.child_main(PHASES)
    else:
        main()
