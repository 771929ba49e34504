"""The study at ml-20m's size on one machine: what each run of configs/study-20m.toml costs to fit and evaluate.

Synthetic data of ml-20m's shape (138,493 users, 26,744 movies, 20M ratings; ``--quick``: 1M ratings) is
loaded and split once (leave-one-out, seed 42, as the study splits) in a child process and saved with
``Split.save``. Then each run, one at a time and each in its own process, loads the data and that split and
fits the model with the config's settings, except that a model trained in epochs (a hybrid's parts too) runs
one epoch: its seconds per epoch (training plus the validation that picks the epoch) give the projected fit
time at the configured epochs (an upper bound: early stopping may end sooner). The peak RSS (VmHWM) is then
reset and every test user is evaluated under full ranking (``evaluate_full``, with the genre features, as the
study does) and sampled-100 (``evaluate_sampled``). Fit and evaluation peaks are reported separately.

The parent watches each child: one whose RSS passes ``--mem-limit-gb`` (16) or that runs past ``--limit``
seconds (1500) is killed and recorded as such, with whatever it had measured (an epoch's seconds, or the
share of the first epoch done). Results merge into benchmarks/results/bench_study20m.json by run name
(``--quick``: bench_study20m_quick.json), so runs measured at different times share one file.

    python benchmarks/bench_study20m.py [--quick] [--models NAME,NAME] [--limit 1500] [--cpu-shared]

``--models`` selects runs by run name ("MLP-3 + diversity") or model name (``mlp``: every MLP run); run it
alone on the machine (``--cpu-shared`` records that it was not). Torch keeps its default thread count.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

CONFIG = U.REPO_ROOT / "configs" / "study-20m.toml"
SEED = 42
POLL_S = 0.5


# --------------------------------------------------------------------------------------------- child side


def _vm(field: str, pid: str = "self") -> float | None:
    """A /proc/PID/status memory field (VmHWM, VmRSS) in GB, or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError):
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Status:
    """What a child has done so far, rewritten atomically to a JSON file the parent reads if it kills it."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {"phase": "starting", "trainers": []}
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, force: bool = True, **kv: Any) -> None:
        self.data.update(kv)
        now = time.perf_counter()
        if not force and now - self._last < 5:
            return
        self._last = now
        self.data["elapsed_s"] = round(now - self.t0, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, default=float))
        tmp.replace(self.path)


def _instrument_trainer(status: _Status, configured_epochs: dict[type, int], epoch_budget: float | None) -> None:
    """Time every Trainer's epochs, validations and batches (benchmark only: wraps the class in this process).

    Each trainer gets a record in ``status.data["trainers"]``: its config class, the configured epoch count,
    and per epoch the training seconds (the trainer's own), the validation seconds and the epoch's wall time;
    while an epoch runs, the batches done out of the epoch's (for a partial figure if the child is killed).
    With ``epoch_budget`` the epoch stops after that many seconds of training; the record then says how many
    of its batches ran, and the full epoch's training time is extrapolated from them.
    """
    from movierec.training import trainer as trainer_mod

    cls = trainer_mod.Trainer
    original_init = cls.__init__

    def init(self, net, step, cfg, context, validate=None, *args, **kwargs):
        rec: dict[str, Any] = {"config": type(cfg).__name__, "configured_epochs": configured_epochs.get(type(cfg)),
                               "epochs": [], "valid_s": []}
        status.data["trainers"].append(rec)
        clock: dict[str, Any] = {"start": None, "batches": 0, "total": None, "truncated": False, "first": None}

        def timed_validate():
            t = time.perf_counter()
            out = validate()
            rec["valid_s"].append(time.perf_counter() - t)
            status.update()
            return out

        user_cb = context.on_epoch_end

        def on_epoch_end(record: dict[str, Any]) -> bool | None:
            wall = time.perf_counter() - clock["start"] if clock["start"] else None
            e = {"epoch": record.get("epoch"), "train_s": record.get("seconds"), "wall_s": wall,
                 "batches": clock["batches"], "batches_per_epoch": clock["total"]}
            if clock["truncated"] and clock["total"] and clock["batches"]:
                # the epoch's preparation (drawing its negatives, windows) before the first batch, then its batches
                prep = clock["first"] or 0.0
                e.update(truncated=True, prepare_s=prep, train_s_extrapolated=prep + (
                    record.get("seconds") - prep) * clock["total"] / clock["batches"])
            else:
                e.update(samples=record.get("samples"), samples_per_s=record.get("samples_per_s"))
            rec["epochs"].append(e)
            clock.update(start=None, batches=0, truncated=False, first=None)
            rec.pop("partial", None)
            status.update()
            return user_cb(record) if user_cb is not None else None

        class TimedStep:
            def __init__(self, inner: Any) -> None:
                self._inner = inner
                windows = getattr(inner, "_windows", None)
                if windows is not None:  # SASRec: a batch is `batch_size` windows, not samples
                    def counted(*a: Any, **k: Any) -> Any:
                        out = windows(*a, **k)
                        clock["rows"] = len(out[0])
                        return out
                    inner._windows = counted

            def batches(self, generator: Any, batch_size: int, *a: Any, **k: Any) -> Any:
                clock["start"] = time.perf_counter()
                clock["rows"] = None
                for n, batch in enumerate(self._inner.batches(generator, batch_size, *a, **k)):
                    if n == 0:
                        rows = clock["rows"] or int(self._inner.samples_per_epoch())
                        clock["total"] = -(-rows // max(int(batch_size), 1))
                        clock["first"] = time.perf_counter() - clock["start"]
                    elif (epoch_budget is not None and n >= 5
                          and time.perf_counter() - clock["start"] - clock["first"] > epoch_budget):
                        clock["truncated"] = True  # the budget counts batches, not the epoch's preparation
                        return
                    yield batch

            def loss(self, *a: Any, **k: Any) -> Any:
                out = self._inner.loss(*a, **k)
                clock["batches"] += 1
                if clock["batches"] % 10 == 0:
                    elapsed = time.perf_counter() - clock["start"]
                    prep = clock["first"] or 0.0
                    partial = {"batches_done": clock["batches"], "seconds": round(elapsed, 1),
                               "prepare_s": round(prep, 1), "batches_per_epoch": clock["total"]}
                    if clock["total"]:
                        partial["epoch_s_estimate"] = round(
                            prep + (elapsed - prep) * clock["total"] / clock["batches"], 1)
                    rec["partial"] = partial
                    status.update(force=False)
                return out

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

        context = dataclasses.replace(context, on_epoch_end=on_epoch_end)
        original_init(self, net, TimedStep(step), cfg, context, timed_validate if validate else None,
                      *args, **kwargs)

    cls.__init__ = init


def _spec(config_path: str, run: str):
    from movierec.experiments import load_config
    from movierec.runs import expand_runs

    for spec in expand_runs(load_config(config_path)):
        if spec.name == run:
            return spec
    raise SystemExit(f"no run {run!r} in {config_path}")


def _one_epoch(model: str, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[type, int]]:
    """``settings`` with epochs = 1 for the model and for a hybrid's parts; {config class: configured epochs}."""
    from movierec.models import get_model_class

    cfg_cls = get_model_class(model).config_class
    names = set(cfg_cls.names())
    out, epochs = dict(settings), {}
    if "epochs" in names:
        epochs[cfg_cls] = int(settings.get("epochs", cfg_cls().flat()["epochs"]))
        out["epochs"] = 1
    for part, part_settings in (("a", "a_settings"), ("b", "b_settings")):
        if part_settings in names:
            part_name = settings.get(part, cfg_cls().flat()[part])
            sub, sub_epochs = _one_epoch(part_name, settings.get(part_settings, {}))
            out[part_settings] = sub
            epochs.update(sub_epochs)
    return out, epochs


def phase_prepare(args: list[str]) -> dict:
    """Load the data (parsing it into the run's cache) and save the study's leave-one-out split."""
    from movierec.data import load_dataset
    from movierec.data.splits import make_split

    data, split_dir = args
    t0 = time.perf_counter()
    ds = load_dataset(data)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    split = make_split(ds, "loo", seed=SEED)
    split_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    split.save(split_dir)
    return {"parse_s": load_s, "split_s": split_s, "split_save_s": time.perf_counter() - t0,
            "split": split.summary(), "ratings": len(ds.interactions)}


def phase_run(args: list[str]) -> dict:
    """Fit one run (epoch models: one epoch), then evaluate every test user under both protocols."""
    import torch

    import movierec
    from movierec.data import load_dataset
    from movierec.data.splits import Split
    from movierec.evaluation.protocols import evaluate_full, evaluate_sampled
    from movierec.fitting import fit_model
    from movierec.study.pipeline import STUDY_KS

    data, split_dir, config_path, run, status_path, budget = args
    status = _Status(Path(status_path))
    spec = _spec(config_path, run)
    settings, configured = _one_epoch(spec.model, spec.settings)
    _instrument_trainer(status, configured, None if budget == "none" else float(budget))
    out: dict[str, Any] = {"run": run, "model": spec.model, "settings": spec.settings,
                           "measured_settings": settings, "torch_threads": torch.get_num_threads(),
                           "movierec": str(Path(movierec.__file__).parent)}

    status.update(phase="loading")
    t0 = time.perf_counter()
    ds = load_dataset(data)
    out["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    split = Split.load(split_dir)
    out["split_load_s"] = time.perf_counter() - t0
    feats = ds.genre_features()
    out["load_peak_gb"] = _vm("VmHWM")

    gc.collect()
    out["peak_reset"] = _reset_peak()
    out["rss_before_fit_gb"] = _vm("VmRSS")
    status.update(phase="fit", **{k: out[k] for k in ("load_s", "split_load_s", "load_peak_gb")})
    t0 = time.perf_counter()
    model, report = fit_model(spec.model, settings, split, ds.catalog, where=f"run {run!r}")
    out["fit_s"] = time.perf_counter() - t0
    out["fit_peak_gb"] = _vm("VmHWM")
    out["fit_report"] = {"epochs": report.epochs, "best_epoch": report.best_epoch, "chosen": report.chosen,
                         "samples_per_s": report.samples_per_s}
    out["trainers"] = status.data["trainers"]
    status.update(phase="evaluating", fit_s=out["fit_s"], fit_peak_gb=out["fit_peak_gb"])

    gc.collect()
    _reset_peak()
    out["rss_before_eval_gb"] = _vm("VmRSS")
    t0 = time.perf_counter()
    full = evaluate_full(model, split, "test", STUDY_KS, feats)
    out["eval_full_s"] = time.perf_counter() - t0
    out["eval_full_peak_gb"] = _vm("VmHWM")
    status.update(eval_full_s=out["eval_full_s"], eval_full_peak_gb=out["eval_full_peak_gb"])
    gc.collect()
    _reset_peak()
    t0 = time.perf_counter()
    sampled = evaluate_sampled(model, split, "test", STUDY_KS)
    out["eval_sampled_s"] = time.perf_counter() - t0
    out["eval_s"] = out["eval_full_s"] + out["eval_sampled_s"]
    out["eval_sampled_peak_gb"] = _vm("VmHWM")
    out["eval_peak_gb"] = max(out["eval_full_peak_gb"] or 0.0, out["eval_sampled_peak_gb"] or 0.0) or None
    out["eval_users"] = len(full.users)
    out["metrics"] = {"full": {k: full.metrics[k] for k in ("HR@10", "NDCG@10") if k in full.metrics},
                      "sampled-100": {k: sampled.metrics[k] for k in ("HR@10", "NDCG@10")}}
    return out


# --------------------------------------------------------------------------------------------- parent side


def _projection(res: dict) -> dict:
    """Seconds per epoch and the projected fit at the configured epochs, from the trainers' records.

    Per trainer: s/epoch = its first epoch's training seconds (extrapolated to the whole epoch when the epoch
    was cut short by --epoch-budget) plus its validation seconds; projected fit = the measured fit + what the
    cut-short part of the first epoch would have taken + (configured epochs - 1) x s/epoch. Several trainers (a
    hybrid's parts): s/epoch and the additions are summed.
    """
    trainers = res.get("trainers") or []
    per_epoch, extra, partial, truncated = 0.0, 0.0, None, False
    for t in trainers:
        if t.get("epochs"):
            e = t["epochs"][0]
            valid = t["valid_s"][0] if t.get("valid_s") else 0.0
            train = e.get("train_s") or 0.0
            full_train = e.get("train_s_extrapolated", train)
            truncated |= bool(e.get("truncated"))
            epoch = full_train + valid if e.get("truncated") or not e.get("wall_s") else e["wall_s"]
            per_epoch += epoch
            extra += (full_train - train) + max((t.get("configured_epochs") or 1) - 1, 0) * epoch
        elif t.get("partial"):
            partial = t["partial"]
    out: dict[str, Any] = {}
    if any(t.get("epochs") for t in trainers):
        out["s_per_epoch"] = per_epoch
        out["epoch_extrapolated"] = truncated
        out["configured_epochs"] = [t.get("configured_epochs") for t in trainers]
        if res.get("fit_s") is not None and partial is None:
            out["projected_fit_s"] = res["fit_s"] + extra
    if partial is not None:
        out["partial_epoch"] = partial
    return out


def _watch(cmd: list[str], env: dict[str, str], limit: float, mem_gb: float, log: Path) -> dict:
    """Run ``cmd``; kill it past ``limit`` seconds or ``mem_gb`` of RSS. Returns its JSON (or what is known)."""
    t0 = time.perf_counter()
    max_rss, killed = 0.0, None
    with open(log, "w") as err, open(log.with_suffix(".out"), "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        while p.poll() is None:
            rss = _vm("VmRSS", str(p.pid)) or 0.0
            max_rss = max(max_rss, rss)
            if rss > mem_gb:
                killed = f"exceeds {mem_gb:g} GB"
            elif time.perf_counter() - t0 > limit:
                killed = f"did not finish in {limit:g} s"
            if killed:
                p.kill()
                p.wait()
                break
            time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {}
    lines = [ln for ln in log.with_suffix(".out").read_text().splitlines() if ln.strip()]
    if not killed and p.returncode == 0 and lines:
        result = json.loads(lines[-1])
        result["status"] = "ok"
    else:
        result["status"] = killed or f"failed (rc {p.returncode}): " + _last_line(log)
    result["wall_s"] = wall
    result["watchdog_max_rss_gb"] = max_rss
    return result


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][-300:] if lines else "no output"


def _select(specs: list, wanted: str | None) -> list:
    if not wanted:
        return specs
    keys = [w.strip() for w in wanted.split(",") if w.strip()]
    chosen = [s for s in specs if s.name in keys or s.model in keys]
    unknown = [k for k in keys if not any(k in (s.name, s.model) for s in specs)]
    if unknown:
        raise SystemExit(f"--models: {unknown} match no run or model of the config "
                         f"(runs: {', '.join(s.name for s in specs)})")
    return chosen


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _hms(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 600:
        return f"{s:,.0f} s"
    if s < 36_000:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"
    return f"{s / 3600:,.0f} h"


def _peaks(r: dict) -> str:
    full, sampled = r.get("eval_full_peak_gb"), r.get("eval_sampled_peak_gb")
    if full is not None and sampled is not None:
        return f"{full:.2f} / {sampled:.2f}"
    if full is not None:
        return f"{full:.2f} / –"
    return _fmt(r.get("eval_peak_gb"), 2)


def markdown_table(rows: list[dict]) -> str:
    head = ("| run | model | fit s (1 epoch for epoch models) | s/epoch | projected fit (configured epochs) | "
            "fit peak GB | eval s (full + sampled-100) | eval peak GB (full / sampled-100) | status |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        partial = r.get("partial_epoch")
        per_epoch = r.get("s_per_epoch")
        epoch_cell = _fmt(per_epoch, 0) + (" (extrapolated)" if r.get("epoch_extrapolated") else "")
        if per_epoch is None and partial and partial.get("epoch_s_estimate"):
            epoch_cell = (f"~{partial['epoch_s_estimate']:,.0f} (est. from {partial['batches_done']:,} of "
                          f"{partial.get('batches_per_epoch', 0):,} batches)")
        d = 1 if (r.get("eval_s") or 0) < 100 else 0
        eval_cell = "–" if r.get("eval_s") is None else (
            f"{r['eval_s']:,.{d}f} ({r['eval_full_s']:,.{d}f} + {r['eval_sampled_s']:,.{d}f})")
        if r.get("eval_s") is None and r.get("eval_full_s") is not None:
            eval_cell = f"full {r['eval_full_s']:,.0f}, sampled unfinished"
        proj = r.get("projected_fit_s")
        epochs = r.get("configured_epochs")
        proj_cell = "–" if proj is None else f"{_hms(proj)} ({'+'.join(str(e) for e in epochs)} epochs)"
        fit_cell = _fmt(r.get("fit_s"))
        if r.get("epoch_extrapolated") and r.get("fit_s") is not None:
            fit_cell += f" (epoch cut at {r.get('epoch_budget_s') or '?'} s)"
        status = r["status"] if len(r["status"]) <= 120 else r["status"][:117] + "..."
        lines.append(f"| {r['run']} | {r['model']} | {fit_cell} | {epoch_cell} | {proj_cell} | "
                     f"{_fmt(r.get('fit_peak_gb'), 2)} | {eval_cell} | {_peaks(r)} | "
                     f"{status} |")
    return "\n".join(lines)


def _src_info(src: Path | None) -> dict[str, Any]:
    """Which movierec was measured: its folder, and the commit when the folder's parent has a COMMIT file."""
    import movierec

    info: dict[str, Any] = {"package": str(Path(movierec.__file__).parent), "version": movierec.__version__}
    if src is not None and (src.resolve().parent / "COMMIT").is_file():
        info["commit"] = (src.resolve().parent / "COMMIT").read_text().strip()
    return info


def _total_ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return None


def _payload(previous: dict[str, Any], rows: list[dict], session: dict[str, Any], args: argparse.Namespace,
             shape: tuple[int, int, int], data: Path, order: list[str], started: datetime) -> dict[str, Any]:
    """The results file: the earlier file's runs (same shape and config) with this session's replacing theirs."""
    import torch

    merged = {r["run"]: r for r in previous.get("runs", [])}
    for r in rows:
        merged[r["run"]] = r
    all_rows = sorted(merged.values(), key=lambda r: order.index(r["run"]) if r["run"] in order else len(order))
    sessions = [*previous.get("sessions", []), session]
    return {
        "benchmark": "bench_study20m", "config": Path(args.config).name, "shape": list(shape),
        "data": str(data), "quick": args.quick,
        "machine": {"cpu_count": os.cpu_count(), "ram_gb": _total_ram_gb(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "cpu": U.machine_info().get("cpu")},
        "date_utc": started.strftime("%Y-%m-%d"),
        "cpu_shared": any(s["cpu_shared"] for s in sessions),
        "notes": ("epoch models fitted for 1 epoch (hybrid parts too); projected fit = 1-epoch fit + (configured "
                  "epochs - 1) x s/epoch, an upper bound (early stopping may end sooner); peaks are VmHWM of the "
                  "child process, reset before the fit and before the evaluation"),
        "sessions": sessions, "runs": all_rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1M synthetic ratings (a smoke run)")
    ap.add_argument("--models", help="runs to measure, by run name or model name, comma-separated (default: all)")
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--limit", type=float, default=1500.0, help="seconds one run may take before it is killed")
    ap.add_argument("--mem-limit-gb", type=float, default=16.0, help="RSS at which a run is killed")
    ap.add_argument("--cpu-shared", action="store_true", help="record that other work shared the CPU")
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/bench_study20m[_quick].json)")
    ap.add_argument("--fresh", action="store_true", help="replace the results file instead of merging by run")
    ap.add_argument("--epoch-budget", type=float,
                    help="cut each epoch after this many seconds of training and extrapolate the epoch's time "
                         "from the batches done (default: run the whole epoch)")
    ap.add_argument("--src", type=Path, help="measure the movierec package under this folder (e.g. an export of "
                                             "a commit: git archive HEAD src | tar -x -C DIR; pass DIR/src)")
    args = ap.parse_args()
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))

    from movierec.experiments import load_config
    from movierec.runs import expand_runs, validate_config

    config = load_config(args.config)
    validate_config(config, "study", args.config)
    specs = _select(expand_runs(config), args.models)
    shape = U.QUICK_SHAPE if args.quick else U.FULL_SHAPE
    data, wrote = U.ensure_synthetic(shape)
    out_path = args.out or U.RESULTS_DIR / ("bench_study20m_quick.json" if args.quick else "bench_study20m.json")


    previous: dict[str, Any] = {}
    if out_path.exists() and not args.fresh:
        try:
            previous = json.loads(out_path.read_text())
        except ValueError:
            previous = {}
        if previous.get("shape") != list(shape) or previous.get("config") != str(Path(args.config).name):
            previous = {}
    order = [s.name for s in expand_runs(config)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-study20m-"))
    env = {**os.environ, "MOVIEREC_CACHE_DIR": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(args.src.resolve()), env.get("PYTHONPATH")) if p)
    script = str(Path(__file__).resolve())
    started = datetime.now(timezone.utc)
    try:
        print(f"data {data} ({f'written in {wrote:.0f} s' if wrote else 'existing'}); "
              f"{len(specs)} run(s); logs in {tmp}", flush=True)
        prep = _watch([sys.executable, script, "--child", "prepare", str(data), str(tmp / "split")], env,
                      args.limit, args.mem_limit_gb, tmp / "prepare.log")
        if prep["status"] != "ok":
            raise SystemExit(f"preparing the data failed: {prep['status']} (log {tmp / 'prepare.log'})")
        print(f"parse {prep['parse_s']:.1f} s, leave-one-out split {prep['split_s']:.1f} s "
              f"(peak {prep['peak_rss_gb']:.2f} GB)", flush=True)
        src = _src_info(args.src)
        session = {"date_utc": started.strftime("%Y-%m-%d %H:%M UTC"), "runs": [s.name for s in specs],
                   "cpu_shared": args.cpu_shared, "limit_s": args.limit, "mem_limit_gb": args.mem_limit_gb,
                   "epoch_budget_s": args.epoch_budget, "src": src,
                   "prepare": {k: prep.get(k) for k in ("parse_s", "split_s", "split_save_s", "peak_rss_gb",
                                                        "split")}}
        rows: list[dict] = []
        for spec in specs:
            log = tmp / f"run-{len(rows):02d}.log"
            status_path = tmp / f"status-{len(rows):02d}.json"
            print(f"[{time.strftime('%H:%M:%S')}] {spec.name} ({spec.model}) ...", flush=True)
            res = _watch([sys.executable, script, "--child", "run", str(data), str(tmp / "split"), args.config,
                          spec.name, str(status_path), str(args.epoch_budget or "none")],
                         env, args.limit, args.mem_limit_gb, log)
            if res["status"] != "ok":  # what the child had measured before it stopped
                try:
                    known = json.loads(status_path.read_text())
                except (OSError, ValueError):
                    known = {}
                for k in ("load_s", "split_load_s", "load_peak_gb", "fit_s", "fit_peak_gb", "eval_full_s",
                          "eval_full_peak_gb", "trainers", "phase"):
                    if k in known:
                        res[k if k != "phase" else "stopped_in"] = known[k]
            res.setdefault("run", spec.name)
            res.setdefault("model", spec.model)
            res.update(_projection(res))
            res["measured_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            res["src"] = src
            res["epoch_budget_s"] = args.epoch_budget
            rows.append(res)
            payload = _payload(previous, rows, session, args, shape, data, order, started)
            U.write_json(out_path.name, payload, out_path)
            print(f"    {res['status']}: fit {_fmt(res.get('fit_s'))} s, s/epoch {_fmt(res.get('s_per_epoch'))}, "
                  f"projected {_hms(res.get('projected_fit_s'))}, fit peak {_fmt(res.get('fit_peak_gb'), 2)} GB, "
                  f"eval {_fmt(res.get('eval_s'))} s, eval peak {_fmt(res.get('eval_peak_gb'), 2)} GB", flush=True)
    finally:
        shutil.rmtree(tmp / "cache", ignore_errors=True)
        shutil.rmtree(tmp / "split", ignore_errors=True)

    payload = _payload(previous, rows, session, args, shape, data, order, started)
    path = U.write_json(out_path.name, payload, out_path)
    all_rows = payload["runs"]
    m = payload["machine"]
    print(f"\n{m['cpu_count']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, torch {m['torch']}, "
          f"{payload['date_utc']}{', CPU shared with other work' if payload['cpu_shared'] else ''}; "
          f"{shape[2]:,} ratings\n")
    print(markdown_table(all_rows))
    print(f"\n-> {path}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        U.child_main({"prepare": phase_prepare, "run": phase_run})
    else:
        main()
