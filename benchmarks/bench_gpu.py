"""GPU benchmark: NeuMF training throughput, evaluation, EASE and a 2-GPU torchrun run, in one JSON.

On synthetic data of ml-20m's shape (138,493 users, 26,744 items, ~20M ratings; written once by
``_util.ensure_synthetic``) and its leave-one-out split (``movierec.data.splits.make_split``, seed 42):

1. NeuMF, 64 predictive factors, 3 layers, on the GPU: training samples/s at batch 65,536 and 262,144
   (``batch_size`` = the batch, ``gpu_batch_factor=1`` so it is exact; bf16 autocast and fused Adam as the
   trainer does them), 2 epochs without validation; the figure is the last epoch's ``samples_per_s`` from
   ``fit_report_.train_log`` (the first includes warm-up). Peak GPU memory per fit.
2. On the NeuMF trained last: full-ranking top-10 of all test users (``evaluate_full``) and sampled-100 of
   all test users (``evaluate_sampled``), seconds of the second of two runs (the first warms up).
3. EASE fit seconds with l2 = 250 fixed (one Cholesky inverse, no λ search on validation).
4. With 2 or more GPUs: ``python -m movierec train neumf --nproc 2 --device cuda --set epochs=1 --json``
   (needs the CLI's ``--nproc``; recorded as "skipped: ..." otherwise).
5. Total wall time.

Every step runs in try/except; a failure is recorded under "errors" and the run goes on. The JSON is
rewritten after every step, so even a killed run leaves what it measured. A time budget (``--budget-s``)
skips steps that would not fit, saying so.

    bash benchmarks/gpu.sh                              # the GPU run (< 8 min on an H200)
    .venv/bin/python benchmarks/bench_gpu.py --small    # tiny data on the CPU, for CI (~1 min)

Without ``--small`` it refuses to run without CUDA (exit 2): CPU figures are never labelled as GPU ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
if importlib.util.find_spec("movierec") is None:  # not installed: use the checkout's src/
    sys.path.insert(0, str(REPO_ROOT / "src"))

import _util as U  # noqa: E402

NO_CUDA = "no CUDA GPU: run with --small on a CPU"
SMALL_SHAPE = (1_000, 1_000, 20_000)
FULL_BATCHES = (65_536, 262_144)
SMALL_BATCHES = (4_096, 16_384)
EASE_L2 = 250.0
SPLIT_SEED = 42


class _Terminated(Exception):
    """SIGTERM (e.g. from ``timeout`` in gpu.sh): stop the current step, write the JSON, exit."""


def _on_sigterm(signum, frame):
    raise _Terminated(f"terminated by signal {signum}")


# --------------------------------------------------------------------------------------------- machine


def dependencies() -> dict:
    """The project's runtime dependencies (pyproject.toml) that import here, with versions, and the missing."""
    names: list[str] = []
    try:
        text = (REPO_ROOT / "pyproject.toml").read_text()
        block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)
        if block:
            names = [re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0] for s in re.findall(r'"([^"]+)"', block.group(1))]
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    missing = []
    for name in names:
        mod = name.replace("-", "_").lower()
        if importlib.util.find_spec(mod) is None:
            missing.append(name)
            continue
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = None
    return {"required": names, "versions": versions, "missing": missing}


def machine(small: bool) -> dict:
    info: dict[str, Any] = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                            "hostname": platform.node(), "cpu_count": os.cpu_count(),
                            "python": platform.python_version(), "python_executable": sys.executable}
    try:
        info["cpu_available"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    host = U.machine_info()
    info.update({k: host.get(k) for k in ("cpu", "ram_gb", "platform")})
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        info["cuda_available"] = torch.cuda.is_available()
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        info["gpu_count"] = n
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(n)]
        info["gpu_name"] = info["gpus"][0] if n else None
        if n:
            props = torch.cuda.get_device_properties(0)
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            info["cudnn"] = torch.backends.cudnn.version()
        info["torch_threads"] = torch.get_num_threads()
    except Exception as e:
        info["torch_error"] = f"{type(e).__name__}: {e}"
    info["dependencies"] = dependencies()
    try:
        import movierec

        info["movierec"] = movierec.__version__
        info["movierec_path"] = str(Path(movierec.__file__).parent)
    except Exception as e:
        info["movierec_error"] = f"{type(e).__name__}: {e}"
    if os.environ.get("GPU_SH_SETUP"):
        info["setup"] = os.environ["GPU_SH_SETUP"]
    return info


# --------------------------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out, self.small = args, out, args.small
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + args.budget_s
        self.device = "cpu" if self.small else "cuda"
        self.payload: dict[str, Any] = {
            "machine": {}, "small": self.small, "device": self.device,
            "shape": list(SMALL_SHAPE if self.small else U.FULL_SHAPE), "budget_s": args.budget_s,
            "notes": {
                "throughput": "NeuMF(factors=64, layers=3), batch_size=B, gpu_batch_factor=1, amp (bf16 on CUDA "
                              "only), fused Adam, 2 epochs, valid=None; samples_per_s of the last epoch "
                              "(fit_report_.train_log[-1])",
                "eval": "on the NeuMF trained last (see eval_model); seconds of the 2nd run, the 1st warms up",
                "ease": f"EASE(l2={EASE_L2}): fixed λ, one Cholesky inverse (no λ walk on validation)",
                "split": f"leave-one-out (make_split(ds, 'loo', seed={SPLIT_SEED}))",
            },
            "results": {}, "errors": {}, "skipped": {}, "step_s": {}, "complete": False,
        }
        self.tmp = Path(tempfile.mkdtemp(prefix="movierec-bench-gpu-"))
        self.own_cache = "MOVIEREC_CACHE_DIR" not in os.environ
        if self.own_cache:
            os.environ["MOVIEREC_CACHE_DIR"] = str(self.tmp / "cache")
        self.data_dir: Path | None = None
        self.split = None
        self.model = None

    # -- bookkeeping -------------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def write(self) -> None:
        self.payload["wall_s"] = time.perf_counter() - self.t0
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.payload, indent=2, default=_jsonable) + "\n")
        tmp.replace(self.out)

    def _skip(self, key: str, reason: str) -> None:
        """Record step ``key`` as skipped for ``reason`` (in results and skipped) and rewrite the JSON."""
        self.payload["results"][key] = reason
        self.payload["skipped"][key] = reason
        print(f"[{_now()}] {key}: {reason}", flush=True)
        self.write()

    def step(self, key: str, fn, need_s: float = 0.0, requires: tuple[str, ...] = ()) -> Any:
        """Run ``fn()`` as step ``key``: its result under results[key], or its error under errors[key]."""
        res = self.payload["results"]
        missing = [r for r in requires if not isinstance(res.get(r), dict)]
        if missing:
            return self._skip(key, f"skipped: needs {', '.join(missing)}, which failed or was skipped")
        if self.left() < need_s:
            return self._skip(key, f"skipped: time budget ({self.left():.0f} s left, step needs ~{need_s:.0f} s)")
        print(f"[{_now()}] {key} ...", flush=True)
        t0 = time.perf_counter()
        out = None
        try:
            out = fn()
            res[key] = out
        except _Terminated:
            self.payload["errors"][key] = "terminated (time limit) during this step"
            res[key] = None
            raise
        except Exception as e:  # any failure is recorded and the run goes on
            msg = f"{type(e).__name__}: {e}".strip()
            self.payload["errors"][key] = msg[:2000]
            self.payload.setdefault("tracebacks", {})[key] = traceback.format_exc()[-4000:]
            res[key] = None
            print(f"  {key} failed: {msg[:300]}", flush=True)
        finally:
            self.payload["step_s"][key] = time.perf_counter() - t0
            self.write()
        if out is not None:
            print(f"  {key}: {_brief(out)}", flush=True)
        return out

    # -- steps -------------------------------------------------------------------------------------
    def data(self) -> dict:
        if self.small:
            from movierec.data.synthetic import write_synthetic

            folder = self.tmp / "synth-small"
            t0 = time.perf_counter()
            write_synthetic(folder, *SMALL_SHAPE, seed=0)
            written = time.perf_counter() - t0
        else:
            folder, written = U.ensure_synthetic(U.FULL_SHAPE)
        self.data_dir = folder
        return {"folder": str(folder), "write_s": written, "reused": written is None}

    def load_split(self) -> dict:
        from movierec.data import load_dataset
        from movierec.data.splits import make_split

        t0 = time.perf_counter()
        ds = load_dataset(self.data_dir)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.split = make_split(ds, "loo", seed=SPLIT_SEED)
        split_s = time.perf_counter() - t0
        s = self.split
        return {"load_s": load_s, "split_s": split_s, "ratings": len(ds.interactions), "users": ds.n_users,
                "items": ds.n_items, "train_rows": len(s.train.user), "test_users": len(s.test.user),
                "protocol": s.protocol}

    def train(self, batch: int) -> dict:
        import torch

        from movierec.models import NeuMF, RunContext

        cuda = self.device == "cuda"
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = NeuMF(factors=64, layers=3, epochs=2, patience=0, batch_size=batch)
        t0 = time.perf_counter()
        model.fit(self.split.train, None, None, RunContext(device=self.device, gpu_batch_factor=1, amp=True))
        fit_s = time.perf_counter() - t0
        log = model.fit_report_.train_log
        out = {"batch": batch, "samples_per_s": float(log[-1]["samples_per_s"]),
               "epoch_samples_per_s": [float(r["samples_per_s"]) for r in log],
               "epoch_s": [float(r["seconds"]) for r in log], "samples_per_epoch": int(log[-1]["samples"]),
               "epochs": len(log), "loss": [float(r["loss"]) for r in log], "fit_s": fit_s,
               "net_device": str(model.device)}
        if cuda:
            out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        self.model = model
        return out

    def eval_sampled(self) -> dict:
        from movierec.evaluation import evaluate_sampled

        t0 = time.perf_counter()
        evaluate_sampled(self.model, self.split, "test", ks=(10,))
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = evaluate_sampled(self.model, self.split, "test", ks=(10,))
        return {"seconds": time.perf_counter() - t0, "warmup_s": warm, "users": len(r.users),
                "metrics": {k: float(v) for k, v in r.metrics.items()}}

    def eval_full(self) -> dict:
        from movierec.evaluation import evaluate_full

        t0 = time.perf_counter()
        evaluate_full(self.model, self.split, "test", ks=(10,))
        warm = time.perf_counter() - t0
        out: dict[str, Any] = {"warmup_s": warm}
        if self.left() < 1.3 * warm + 5:  # a second run would not fit: keep the first, labelled as such
            out.update(seconds=None, note=f"second run skipped: time budget ({self.left():.0f} s left); "
                                          "warmup_s is the only (cold) measurement")
            return out
        t0 = time.perf_counter()
        r = evaluate_full(self.model, self.split, "test", ks=(10,))
        out.update(seconds=time.perf_counter() - t0, users=len(r.users),
                   metrics={k: float(v) for k, v in r.metrics.items() if not k.startswith("ILD")})
        return out

    def ease(self) -> dict:
        import torch

        from movierec.models import RunContext
        from movierec.models.ease import EASE

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = EASE(l2=EASE_L2)
        t0 = time.perf_counter()
        model.fit(self.split.train, None, None, RunContext(device=self.device))
        fit_s = time.perf_counter() - t0
        out = {"fit_s": fit_s, "l2": EASE_L2, "chosen": model.fit_report_.chosen,
               "tuned": bool(model.fit_report_.tuned), "items": int(self.split.n_items)}
        if self.device == "cuda":
            out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        del model
        return out

    def torchrun(self) -> dict | str:
        import torch

        if not self.small:
            n = torch.cuda.device_count()
            if n < 2:
                return f"skipped: {n} GPU(s)"
        has, how = nproc_available()
        if not has:
            return f"skipped: --nproc not available ({how})"
        run = self.tmp / "run"
        cmd = [sys.executable, "-m", "movierec", "train", "neumf", "--data", str(self.data_dir), "--out", str(run),
               "--nproc", "2", "--device", self.device, "--set", "epochs=1", "--json"]
        env = _child_env()
        timeout = max(10.0, min(self.args.torchrun_timeout_s, self.left() - 15))
        t0 = time.perf_counter()
        p = _run_group(cmd, env, timeout, self.tmp)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"rc {p.returncode}: {' '.join(cmd[1:])}\n{_tail(p.stderr)}")
        info = _last_json(p.stdout)
        out: dict[str, Any] = {"command": " ".join(["python", *cmd[1:]]), "wall_s": wall, "nproc": 2,
                               "device": self.device, "detected_by": how,
                               "note": "NeuMF's default settings but epochs=1 (not the f64 model above), with "
                                       "validation; wall_s includes start-up, parsing and saving"}
        if info is None:
            out["stdout_tail"] = p.stdout[-1500:]
            out["note"] += "; no JSON object found on stdout"
        else:
            for k in ("fit_seconds", "epochs_run", "best_epoch", "samples_per_s", "processes", "valid"):
                if k in info:
                    out[k] = info[k]
            out["json_keys"] = sorted(info)
        return out

    # -- all ---------------------------------------------------------------------------------------
    def run(self) -> int:
        self.payload["machine"] = machine(self.small)
        self.write()
        batches = SMALL_BATCHES if self.small else FULL_BATCHES
        scale = 0.1 if self.small else 1.0
        try:
            self.step("data", self.data)
            self.step("load_split", self.load_split, requires=("data",))
            for b in batches:
                self.step(f"neumf_train_b{b}", lambda b=b: self.train(b), need_s=40 * scale,
                          requires=("load_split",))
            ok = [b for b in batches if isinstance(self.payload["results"].get(f"neumf_train_b{b}"), dict)]
            last = ok[-1] if ok else batches[-1]  # self.model is the last fit that succeeded
            trained = (f"neumf_train_b{last}",)
            self.payload["notes"]["eval_model"] = f"NeuMF trained at batch {last}"
            self.step("eval_sampled_s100", self.eval_sampled, need_s=15 * scale, requires=trained)
            self.step("ease_fit", self.ease, need_s=30 * scale, requires=("load_split",))
            self.step("eval_full_top10", self.eval_full, need_s=60 * scale, requires=trained)
            self.model = None
            self.step("torchrun_2proc", self.torchrun, need_s=60 * scale, requires=("data",))
            self.payload["complete"] = True
            return 0
        except _Terminated as e:
            self.payload["errors"]["_run"] = str(e)
            return 3
        finally:
            self.payload["results"]["wall_s"] = time.perf_counter() - self.t0
            self.write()
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- helpers


def nproc_available() -> tuple[bool, str]:
    """Whether ``movierec train`` has ``--nproc``: from the typer command (click params), else its --help."""
    try:
        import typer.main

        from movierec.cli import app

        group = typer.main.get_command(app)
        cmd = group.commands.get("train")  # type: ignore[attr-defined]
        if cmd is not None:
            opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            return "--nproc" in opts, "click params of `movierec train`"
    except Exception:
        pass
    try:
        p = subprocess.run([sys.executable, "-m", "movierec", "train", "--help"], capture_output=True, text=True,
                           env={**_child_env(), "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}, timeout=60)
        return "--nproc" in p.stdout, "`movierec train --help`"
    except Exception as e:
        return False, f"`movierec train --help` failed: {e}"


def _run_group(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a process group of its own, all of it killed on time-out or interruption
    (torchrun's workers included, so none is left holding a GPU)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        out, err = p.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd[1:])}\n{_tail(err)}") from None
        raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _child_env() -> dict[str, str]:
    """This environment with the checkout's src/ first on PYTHONPATH: the child runs the code benchmarked here."""
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    env["PYTHONPATH"] = os.pathsep.join([src, *parts])
    return env


def _last_json(text: str) -> dict | None:
    """The last top-level JSON object in ``text`` (a ``--json`` command's output, maybe after log lines)."""
    dec = json.JSONDecoder()
    found = None
    i = 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return found
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict):
            found = obj
        i = end


def _tail(s: str | bytes | None, n: int = 1500) -> str:
    if s is None:
        return ""
    if isinstance(s, bytes):
        s = s.decode(errors="replace")
    return s[-n:]


def _jsonable(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _brief(out: Any) -> str:
    if not isinstance(out, dict):
        return str(out)
    keys = ("samples_per_s", "seconds", "fit_s", "load_s", "split_s", "write_s", "wall_s", "peak_gpu_memory_gib")
    parts = []
    for k in keys:
        v = out.get(k)
        if isinstance(v, float):
            parts.append(f"{k} {v:,.3f}" if v < 1000 else f"{k} {v:,.0f}")
    return ", ".join(parts) or ", ".join(f"{k}={v}" for k, v in list(out.items())[:4])


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true",
                    help=f"tiny synthetic data {SMALL_SHAPE} on the CPU, batches {SMALL_BATCHES} (CI)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default: $OUT/gpu.json when OUT is set, else benchmarks/results/gpu.json)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="skip steps that would not fit in this many seconds (default 420; 300 with --small)")
    ap.add_argument("--torchrun-timeout-s", type=float, default=None,
                    help="limit of the torchrun subprocess (default 180; 90 with --small)")
    args = ap.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 300.0 if args.small else 420.0
    if args.torchrun_timeout_s is None:
        args.torchrun_timeout_s = 90.0 if args.small else 180.0
    if not args.small:
        try:
            import torch

            cuda = torch.cuda.is_available()
            why = ""
        except Exception as e:
            cuda, why = False, f" (torch did not import: {type(e).__name__}: {e})"
        if not cuda:
            print(NO_CUDA + why.replace("\n", " "), file=sys.stderr)
            return 2
    if args.out is not None:
        out = args.out
    elif os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "gpu.json"
    else:
        out = U.RESULTS_DIR / ("gpu_small.json" if args.small else "gpu.json")
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(args, out.resolve())
    rc = bench.run()
    p = bench.payload
    print(f"\nwrote {out} in {p['wall_s']:.1f} s; errors: {sorted(p['errors']) or 'none'}; "
          f"skipped: {sorted(p['skipped']) or 'none'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
