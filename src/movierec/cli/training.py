"""``movierec train|evaluate|compare``: fit models and score them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from movierec.cli.common import DataArg, JsonOpt, _kv_table, _null, _print_comparison, _print_json, console
from movierec.errors import MovieRecError
from movierec.models.registry import ENTRIES


def train_cmd(
    model: Annotated[str, typer.Argument(help="A registered model (listed below).", show_default=False)],
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (a model bundle plus its split).")],
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A setting key=value (repeatable); `movierec models MODEL` lists them.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 42,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from OUT.ckpt/.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the run folder at --out if there is one.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")]
    = "auto",
    as_json: JsonOpt = False,
) -> None:
    from movierec.data import load_dataset
    from movierec.fsutil import claim_output
    from movierec.run_folders import parse_overrides, train_run

    overrides = parse_overrides(model, settings or [])
    claim_output(out, "run", force=force or resume)
    ds = load_dataset(data)
    _, split, info = train_run(model, ds, out, overrides, seed=seed, resume=resume,
                               progress=not as_json and sys.stderr.isatty(), device=device)
    result = {"model": model, "run": str(out), "split": split.summary(), **info}
    if as_json:
        _print_json(result)
        return
    console.print(f"trained {model} on {ds.name} in {info['fit_seconds']:.2f} s → {out}", markup=False)
    if "valid" in info:
        console.print(_kv_table("validation (sampled-100)", info["valid"]["metrics"]))


train_cmd.__doc__ = "Train MODEL on the leave-one-out split of --data.\n\nModels by family: " + "; ".join(
    f"{family}: {', '.join(e.name for e in ENTRIES if e.family == family)}"
    for family in dict.fromkeys(e.family for e in ENTRIES)) + ". `movierec models MODEL` lists a model's settings."


def evaluate_cmd(
    run_dir: Path,
    protocol: Annotated[str, typer.Option("--protocol", help="full (default) or sampled-100")] = "full",
    k: Annotated[list[int] | None, typer.Option("-k", help="Cutoffs (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a run on its test items under a protocol."""
    from movierec.evaluation import DEFAULT_KS
    from movierec.run_folders import evaluate_run

    ks = tuple(sorted(set(k))) if k else DEFAULT_KS
    if min(ks) < 1:
        raise MovieRecError("-k must be at least 1")
    res = evaluate_run(run_dir, protocol, ks)
    if as_json:
        _print_json({**res.to_json(), "run": str(run_dir)})
    else:
        console.print(_kv_table(escape(f"{run_dir} · test · protocol {res.protocol} · {len(res.users)} users"),
                                res.metrics))


def compare_cmd(
    data: DataArg = "ml-latest-small",
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "popularity,itemknn",
    out: Annotated[Path | None, typer.Option("--out", help="Write results.csv / results.md / results.json.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit models on one leave-one-out split and compare them under both protocols."""
    from movierec.comparison import write_comparison
    from movierec.data import load_dataset
    from movierec.fsutil import claim_output, mark_output
    from movierec.models import model_entry
    from movierec.run_folders import compare

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise MovieRecError("--models: name at least one model (see `movierec models`)")
    for name in names:
        model_entry(name)  # an unknown name fails here, before any data is loaded
    if out is not None:
        claim_output(out, "compare", create=False)
    ds = load_dataset(data, progress=not as_json)
    with console.status("fitting and evaluating…", spinner="dots") if not as_json else _null():
        rows = compare(ds, names)
    if out is not None:
        mark_output(out, "compare")
        write_comparison(rows, out)
    if as_json:
        _print_json({"dataset": ds.info(), "split": "loo (seed 42)", "rows": rows})
        return
    console.print(f"[bold]{escape(ds.name)}[/bold]: {ds.info()['ratings']:,} ratings, {ds.n_users:,} users, "
                  f"{ds.n_items:,} items · leave-one-out split, seed 42")
    _print_comparison(rows)
