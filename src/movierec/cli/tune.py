"""``movierec tune``: search a model's settings with Optuna on the validation part of a split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from movierec.cli.common import DataArg, JsonOpt, Reporter, console, kv_table, print_json
from movierec.errors import MovieRecError

if TYPE_CHECKING:
    from movierec.tuning import TrialRow, TuneResult

SPLITS = ("loo", "vae-cf")  # the splits with a validation part (cold-items has none)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _trial_line(row: TrialRow, result: TuneResult, trials: int) -> str:
    """One line per trial, e.g. ``trial #2 (3/20) complete: NDCG@10 0.4123 (best 0.4301 at #0); k=120 (4.1 s)``
    (``#`` is Optuna's trial number, from 0, as in trials.csv)."""
    state = "failed" if row.state == "FAIL" else row.state.lower()
    head = f"trial #{row.number}{' (the defaults)' if row.defaults else ''} ({len(result.trials)}/{trials}) {state}"
    if row.state == "COMPLETE":
        head += f": NDCG@10 {row.value:.4f}"
    elif row.state == "PRUNED":
        head += f" after epoch {row.epochs}" + (
            f" (valid NDCG@10 {row.last_intermediate:.4f})" if row.last_intermediate is not None else "")
    elif row.error:
        head += f": {row.error}"
    best = result.best
    if best is not None:
        head += f" (best {best.value:.4f} at #{best.number})"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in row.params.items())
    return f"{head}; {params} ({row.seconds:.1f} s)" if params else f"{head} ({row.seconds:.1f} s)"


def tune_cmd(
    model: Annotated[str, typer.Argument(help="A registered model with a search space (`movierec models`).",
                                         show_default=False)],
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for best.toml, trials.csv, optuna.html, study.json.",
                                      show_default=False)],
    trials: Annotated[int, typer.Option("--trials", help="Trials to run (at most).")] = 20,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Start no trial after this many seconds (the running one finishes).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and of the TPE sampler.")] = 42,
    split: Annotated[str, typer.Option("--split", help="Split protocol: loo or vae-cf.")] = "loo",
    metric: Annotated[str, typer.Option(
        "--metric", help="NDCG@10 on the validation part under sampled-100 or full ranking.")] = "sampled-100",
    space: Annotated[Path | None, typer.Option(
        "--space", help="TOML of ranges that override or add to the built-in space; plain values are fixed.",
        show_default=False)] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A fixed setting key=value (repeatable), taken out of the search.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the tuning results at --out.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, ...")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Tune MODEL's settings with Optuna (TPE sampler, median pruning on the per-epoch validation NDCG@10).

    Every trial fits on the training part and is scored on the validation item of each user (NDCG@10,
    sampled-100 unless --metric full); the test part is never used. Writes best.toml (a [[run]] table for
    `movierec experiment` and `movierec study` configs, with the matching `train --set` line), trials.csv,
    optuna.html and study.json.

    Examples: movierec tune itemknn --data ml-latest-small --trials 30 --out out/tune-knn; movierec tune gmf
    --data ml-latest-small --trials 20 --timeout 600 --set epochs=10 --out out/tune-gmf
    """
    from movierec import __version__
    from movierec.data import load_dataset
    from movierec.data.splits import make_split
    from movierec.fsutil import claim_output, mark_output, output_kind
    from movierec.models import model_entry
    from movierec.runs.folders import check_device, parse_overrides
    from movierec.tuning import METRICS, OUTPUT_FILES, SPACES, resolve_space, tune, write_outputs
    from movierec.tuning.search import check_split, require_optuna
    from movierec.tuning.spaces import model_settings

    # -- every input checked before any data is read ---------------------------------------------------
    name = model_entry(model).name  # an unknown model: the registry's one line, with the closest name
    model_settings(name)  # a registered model whose module cannot be imported
    if trials < 1:
        raise MovieRecError(f"--trials {trials}: need at least 1")
    if timeout is not None and not timeout > 0:
        raise MovieRecError(f"--timeout {timeout:g}: need a number of seconds above 0")
    if metric not in METRICS:
        raise MovieRecError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    if split not in SPLITS:
        why = " (it has no validation part)" if split == "cold-items" else ""
        raise MovieRecError(f"--split {split!r}: expected one of {', '.join(SPLITS)}{why}")
    if split == "vae-cf" and metric == "sampled-100":
        raise MovieRecError("--split vae-cf: its validation part has no sampled negatives; add --metric full")
    if seed < 0:
        raise MovieRecError(f"--seed {seed}: must be an integer of 0 or more")
    if name not in SPACES and space is None:
        raise MovieRecError(f"{name} has no built-in search space (models with one: {', '.join(SPACES)}); "
                            "give one with --space FILE.toml")
    fixed = parse_overrides(name, settings or [])
    params, fixed = resolve_space(name, space, fixed)
    if not params:
        raise MovieRecError(f"{name}: nothing left to search (every setting of the space is fixed by --set or "
                            "--space)")
    require_optuna()
    check_device(device)
    claim_output(out, "tune", create=False)
    if output_kind(out) == "tune" and any((out / f).exists() for f in OUTPUT_FILES) and not force:
        raise MovieRecError(f"--out {out}: tuning results are already there; pass --force to replace them")

    rep = Reporter(f"tune {name}")
    err = Console(stderr=True, highlight=False)

    def say(text: str) -> None:  # one plain line: timestamped when stderr is not a terminal
        if rep.plain:
            rep.line(text)
        elif not as_json:
            err.print(text, markup=False, soft_wrap=True)

    ds = load_dataset(data)
    sp = make_split(ds, split, seed)
    check_split(sp, metric)
    s = sp.summary()
    mark_output(out, "tune")
    say(f"{trials} trial{'s' if trials != 1 else ''}" + (f" (at most {timeout:g} s)" if timeout else "")
        + f" on {ds.name} ({s['protocol']} split seed {s['seed']}: {s['train']:,} train, {s['valid']:,} valid), "
        f"NDCG@10 [{metric}] on the validation part; searching "
        + "; ".join(p.describe() for p in params) + (f"; fixed {fixed}" if fixed else "") + f" -> {out}")

    t0 = time.perf_counter()
    result = tune(name, ds, sp, params, fixed, trials=trials, timeout=timeout, seed=seed, metric=metric,
                  device=device, on_trial=lambda row, res: say(_trial_line(row, res, trials)))
    dataset_info = {"name": ds.name, "argument": data, "source": str(ds.source),
                    "fingerprint": ds.fingerprint(), "users": ds.n_users, "items": ds.n_items}
    if result.trials:
        info = write_outputs(out, result, dataset_info, s, __version__)
    if result.interrupted:
        if result.trials:
            say(f"interrupted after {len(result.trials)} trial{'s' if len(result.trials) != 1 else ''}; "
                f"their results are in {out}")
        raise KeyboardInterrupt
    best = result.best
    say(f"done in {time.perf_counter() - t0:.1f} s: {result.count('COMPLETE')} complete, "
        f"{result.count('PRUNED')} pruned, {result.count('FAIL')} failed"
        + (f"; best NDCG@10 {best.value:.4f} [{metric}, validation] at trial #{best.number}" if best else "")
        + f" -> {out / 'best.toml'}")
    if best is None:
        raise MovieRecError(f"tune {name}: no trial finished ({result.count('FAIL')} failed, "
                            f"{result.count('PRUNED')} pruned); see {out / 'trials.csv'}")
    if as_json:
        print_json({**info, "out": str(out)})
        return
    if best.defaults:
        console.print(f"{name}: no trial of {len(result.trials)} beat the defaults (trial #0, NDCG@10 "
                      f"{best.value:.4f} [{metric}, validation part]); best.toml keeps them", markup=False)
    else:
        console.print(f"{name}: best of {len(result.trials)} trials is #{best.number}, NDCG@10 {best.value:.4f} "
                      f"[{metric}, validation part]", markup=False)
    console.print(kv_table("best settings", result.best_settings))
    console.print(f"best settings: {out / 'best.toml'}; all trials: {out / 'trials.csv'}, {out / 'optuna.html'}",
                  markup=False)
