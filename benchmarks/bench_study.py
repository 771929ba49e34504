"""The study end to end: ``movierec study --data ml-latest-small`` as a user runs it (``make run``).

One subprocess, a fresh output folder, the built-in study config (13 models) unless --config is given:
imports, loading the data, the EDA, the split, training and evaluating every model under both protocols,
segments and report.html. Target: under 10 minutes on the project's 2-core CPU. The per-step times
come from the command's own progress lines; the per-model fit times from results.json.

    .venv/bin/python benchmarks/bench_study.py [--config FILE] [--data ml-latest-small]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

TARGET_S = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(U.ML_LATEST_SMALL))
    ap.add_argument("--config", default=None)
    ap.add_argument("--keep", default=None, help="write the study here instead of a temporary folder")
    args = ap.parse_args()

    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-study-")) / "study"
    cmd = [sys.executable, "-m", "movierec.cli", "study", "--data", args.data, "--out", str(out)]
    if args.config:
        cmd += ["--config", args.config]
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"study failed ({proc.returncode}): {proc.stderr[-2000:]}")
    steps = []
    for line in proc.stderr.splitlines():
        m = re.match(r"\s*([\d.]+) s\s+(\d+)%\s+(.*)", line)
        if m:
            steps.append({"at_s": float(m.group(1)), "step": m.group(3).strip()})
    for a, b in itertools.pairwise(steps):
        a["seconds"] = round(b["at_s"] - a["at_s"], 2)
    rows = json.loads((out / "results.json").read_text())
    result = {
        "date": U.stamp(), "machine": U.machine_info(), "command": " ".join(cmd[1:]),
        "config": args.config or "built-in (src/movierec/study/study.toml)", "models": len(rows),
        "wall_seconds": round(wall, 1), "target_seconds": TARGET_S, "pass": wall < TARGET_S,
        "steps": steps, "fit_seconds": {r["model"]: r["fit_seconds"] for r in rows},
    }
    U.print_table(steps, [("step", "step"), ("seconds", "seconds")])
    print(f"\nstudy end to end: {wall:.1f} s for {len(rows)} models (target < {TARGET_S:.0f} s): "
          f"{'PASS' if wall < TARGET_S else 'FAIL'}")
    print(f"report: {out / 'report.html'}")
    U.write_json("bench_study.json", result)


if __name__ == "__main__":
    main()
