"""Shared helpers for the benchmark scripts: timing, peak memory, subprocess phases, synthetic data, tables.

Not part of the package; the scripts import it as a sibling module (``python benchmarks/bench_*.py``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DATA_ROOT = Path(os.environ.get("MOVIEREC_BENCH_DATA", "/tmp/movierec-bench"))
ML_LATEST_SMALL = Path(os.environ.get("MOVIEREC_BENCH_SMALL", "/work/shared/data/ml-latest-small"))

# (n_users, n_items, n_ratings): the shape of ml-20m, and a 1M-rating smoke size for CI.
FULL_SHAPE = (138_493, 26_744, 20_000_263)
QUICK_SHAPE = (6_040, 3_706, 1_000_209)


# --------------------------------------------------------------------------------------------- timing


def median_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeat`` times; returns (median seconds, all times, last result)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def peak_rss_gb() -> float:
    """This process's peak resident set size (VmHWM) in GB (10^9 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class TimedModel:
    """Proxy around a model that accumulates the wall time spent in ``score``."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.score_time = 0.0
        self.score_calls = 0

    def score(self, users, items=None):
        t0 = time.perf_counter()
        out = self._model.score(users, items)
        self.score_time += time.perf_counter() - t0
        self.score_calls += 1
        return out

    def reset(self) -> None:
        self.score_time, self.score_calls = 0.0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


# --------------------------------------------------------------------------------------------- subprocesses


def run_child(script: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> dict:
    """Run ``python script args`` in a fresh process; it must print one JSON object on its last stdout line.

    Adds ``wall_s`` (the whole process, imports included) and ``maxrss_gb`` (the child's own peak RSS from
    ``wait4``) to that object.
    """
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=full_env, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError(f"child {args} timed out after {timeout} s\n{err[-2000:]}") from None
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"child {args} failed (rc {p.returncode}):\n{err[-4000:]}")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    result = json.loads(lines[-1])
    result["wall_s"] = wall
    return result


def child_main(phases: dict[str, Callable[[list[str]], dict]]) -> None:
    """Entry point of a child process: ``--child PHASE ARGS...``; prints the phase's dict plus peak RSS."""
    i = sys.argv.index("--child")
    phase, rest = sys.argv[i + 1], sys.argv[i + 2:]
    result = phases[phase](rest)
    result["peak_rss_gb"] = peak_rss_gb()
    print(json.dumps(result))


def warm_page_cache(path: Path) -> float:
    """Read ``path`` once so every phase starts with it in the OS page cache; returns seconds taken."""
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- data


def ensure_synthetic(shape: tuple[int, int, int], seed: int = 0) -> tuple[Path, float | None]:
    """Folder holding synthetic ml-20m-format data of ``shape``; written once (atomically) and re-used.

    Returns (folder, seconds spent writing it, or None when it was already there).
    """
    from movierec.data.synthetic import write_synthetic

    n_users, n_items, n_ratings = shape
    out = DATA_ROOT / f"synth-{n_users}u-{n_items}i-{n_ratings}r-s{seed}"
    if (out / "COMPLETE").is_file():
        return out, None
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    write_synthetic(tmp, n_users, n_items, n_ratings, seed=seed)
    elapsed = time.perf_counter() - t0
    (tmp / "COMPLETE").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out, elapsed


# --------------------------------------------------------------------------------------------- reporting


def machine_info() -> dict:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) * 1024 / 1e9, 1)
                break
    except OSError:
        pass
    try:
        info["nproc_available"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    for mod in ("numpy", "pandas", "pyarrow", "scipy", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def status(value: float | None, limit: float | None, quick: bool) -> str:
    """PASS/FAIL against ``limit`` (an upper bound); 'info' without one; 'quick' for smoke runs."""
    if limit is None or value is None:
        return "info"
    if quick:
        return "quick"
    return "PASS" if value <= limit else "FAIL"


def print_table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as a fixed-width table; ``columns`` are (key, header) pairs."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    cells = [[fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[j]) for c in cells)) if cells else len(h) for j, (_, h) in enumerate(columns)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def write_json(name: str, payload: dict, out: Path | None = None) -> Path:
    path = out or RESULTS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
