"""``movierec train|evaluate|compare``: fit models and score them."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from movierec.cli.common import (
    DataArg,
    JsonOpt,
    Reporter,
    configured_epochs,
    console,
    kv_table,
    print_comparison,
    print_json,
)
from movierec.errors import MovieRecError
from movierec.evaluation.columns import column
from movierec.models.registry import ENTRIES

if TYPE_CHECKING:
    from movierec.data.splits import Split


def train_cmd(
    model: Annotated[str, typer.Argument(help="A registered model (listed below).", show_default=False)],
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (a model bundle plus its split).")],
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A setting key=value (repeatable); `movierec models MODEL` lists them.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Settings from a TOML file: its [[run]] of MODEL (tune's best.toml, an experiment or "
        "study config) or its top-level keys; --set wins.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 42,
    final: Annotated[bool, typer.Option(
        "--final", help="Train on every interaction, nothing held out: a model to serve (settings from --like, "
        "--config or --set).")] = False,
    like: Annotated[Path | None, typer.Option(
        "--like", help="With --final: the settings and validation choices (best epoch, λ, blend weights) an "
        "earlier run recorded (a run folder, or a study's runs/NAME).", show_default=False)] = None,
    refit: Annotated[bool | None, typer.Option(
        "--refit/--no-refit", help="Refit the model on training + validation before the test, its validation "
        "choices kept (the default); --no-refit: a model that scores histories exactly reads them as a history "
        "instead (models with per-user parameters are refitted either way).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run of the same model, settings and data from OUT.ckpt/ (never "
        "replaces a finished run).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the run folder at --out, or discard an interrupted run's checkpoint there.")]
    = False,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")]
    = "auto",
    nproc: Annotated[int | None, typer.Option(
        "--nproc", help="Train data-parallel in N processes on this machine (torchrun; one per GPU with "
        "--device cuda, gloo on CPUs). For several machines run `torchrun ... -m movierec train ...` instead.",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    from movierec.data import load_dataset
    from movierec.runs.folders import check_device, claim_run, like_settings, parse_overrides
    from movierec.training import distributed

    check_device(device)
    if nproc is not None:
        distributed.check_nproc(nproc, device)
    if like is not None and not final:
        raise MovieRecError("--like goes with --final (a final model trained like an evaluated run)")
    if final and refit is not None:
        raise MovieRecError(f"--{'' if refit else 'no-'}refit and --final: a final model is trained on every "
                            "interaction, nothing is held out to test")
    refit = True if refit is None else refit
    overrides = parse_overrides(model, settings or [], config, like_settings(like, model) if like else None)
    claim_run(out, resume=resume, force=force, lock=distributed.holds_output_lock())
    if nproc is not None and nproc > 1:
        load_dataset(data)  # bad data is told once, here, and the processes read the parsed cache
        distributed.launch(nproc, distributed.without_nproc(sys.argv[1:]))
        return
    rank, world = 0, 1
    if distributed.launched():
        rank, world, device = distributed.setup(device)
    _train(model, data, out, overrides, seed, resume, device, as_json, rank, world, final, refit, like)
    distributed.teardown()  # not on an error: torchrun stops the other ranks when one fails


def _train(model: str, data: str, out: Path, overrides: dict, seed: int, resume: bool, device: str,
           as_json: bool, rank: int, world: int, final: bool = False, refit: bool = False,
           like: Path | None = None) -> None:
    from movierec.data import load_dataset
    from movierec.runs.folders import train_run

    rep = Reporter(f"train {model}" + (f" (rank {rank} of {world})" if world > 1 else ""))
    if rank != 0:
        rep.plain = False  # only rank 0 speaks
    ds = load_dataset(data)

    def fit_start(split: Split) -> None:
        s = split.summary()
        if final:
            rep.line(f"fitting a final model on every interaction of {ds.name} ({s['users']:,} users, "
                     f"{s['items']:,} items, {s['train']:,} interactions; nothing held out)"
                     + (f", settings and choices like {like}" if like else "") + (" resuming" if resume else ""))
            return
        rep.line(f"fitting on {ds.name} ({s['users']:,} users, {s['items']:,} items; {s['protocol']} split "
                 f"seed {s['seed']}: {s['train']:,} train, {s['valid']:,} valid, {s['test']:,} test)"
                 + (" resuming" if resume else ""))

    t0 = time.perf_counter()
    result, split = train_run(model, ds, out, overrides, seed=seed, resume=resume,
                              progress=not as_json and not rep.plain and rank == 0, device=device,
                              on_fit_start=fit_start,
                              on_epoch_end=rep.epoch_printer(configured_epochs(model, overrides)),
                              rank=rank, world_size=world, refit=refit, final=final)
    if rank != 0:
        return
    row = result.row
    valid = row.get(column("NDCG@10", "sampled-100", "valid"))
    done = f"done in {time.perf_counter() - t0:.1f} s (fit {row['fit_seconds']:.1f} s"
    if row.get("epochs_run"):
        done += f", {row['epochs_run']} epochs, best epoch {row['best_epoch']}"
    if row.get("refit_seconds") is not None:
        done += f", refit on train + valid {row['refit_seconds']:.1f} s"
    if valid is not None:
        done += f", valid NDCG@10 {valid:.4f}"
    rep.line(f"{done}) -> {out}")
    info = {"model": model, "run": str(out), "split": split.summary(), "final": final, **row,
            "choices": result.choices, **({"processes": world} if world > 1 else {})}
    if result.valid is not None:
        info["valid"] = result.valid.to_json()
    if result.results:
        info["test"] = {p: r.to_json() for p, r in result.results.items()}
    if as_json:
        print_json(info)
        return
    what = "a final model of" if final else ""
    console.print(f"trained {what} {model} on {ds.name} in {row['fit_seconds']:.2f} s → {out}".replace("  ", " "),
                  markup=False)
    if result.valid is not None:
        console.print(kv_table("validation (sampled-100)", result.valid.metrics))
    if result.results:
        test = {f"{k} [{p}]": v for p, r in result.results.items() for k, v in r.metrics.items() if k.endswith("@10")}
        console.print(kv_table(escape(f"test @10 (input: training + validation, {row.get('test_input')})"),
                                test))


train_cmd.__doc__ = "Train MODEL on the leave-one-out split of --data.\n\nModels by family: " + "; ".join(
    f"{family}: {', '.join(e.name for e in ENTRIES if e.family == family)}"
    for family in dict.fromkeys(e.family for e in ENTRIES)) + (
    ". `movierec models MODEL` lists a model's settings.\n\nThe run makes its choices on the validation part, "
    "then is tested from each user's training and validation interactions (refitted on them with its choices "
    "kept; --no-refit reads them as a history where the model allows); --final trains on everything instead, "
    "to serve.\n\nExamples: movierec "
    "train itemknn --data ml-latest-small --out runs/knn --set k=50; movierec train ials --data ml-latest-small "
    "--out runs/ials --config tuned/ials/best.toml; movierec train neumf --data ml-latest-small --out runs/neumf "
    "--resume; movierec train neumf --data ml-latest-small --out runs/neumf-final --final --like runs/neumf")


def evaluate_cmd(
    run_dir: Path,
    protocol: Annotated[str, typer.Option("--protocol", help="full (default) or sampled-100")] = "full",
    k: Annotated[list[int] | None, typer.Option("-k", help="Cutoffs (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a run on its test items under a protocol (each user read from their training and validation
    interactions; a final model is refused: nothing was held out).

    Examples: movierec evaluate runs/knn; movierec evaluate runs/knn --protocol sampled-100 -k 5 -k 10 --json
    """
    from movierec.evaluation import DEFAULT_KS
    from movierec.runs.folders import evaluate_run

    ks = tuple(sorted(set(k))) if k else DEFAULT_KS
    if min(ks) < 1:
        raise MovieRecError("-k must be at least 1")
    res = evaluate_run(run_dir, protocol, ks)
    if as_json:
        print_json({**res.to_json(), "run": str(run_dir)})
    else:
        console.print(kv_table(escape(f"{run_dir} · test · protocol {res.protocol} · {len(res.users)} users"),
                                res.metrics))


def compare_cmd(
    data: DataArg = "ml-latest-small",
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "popularity,itemknn",
    out: Annotated[Path | None, typer.Option("--out", help="Write results.csv / results.md / results.json.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit models on one leave-one-out split and compare them under both protocols.

    Examples: movierec compare --data ml-latest-small --models popularity,itemknn,gmf; movierec compare --data
    ml-1m --models itemknn,neumf --out out/compare
    """
    from movierec.comparison import write_comparison
    from movierec.data import load_dataset
    from movierec.fsutil import claim_output, mark_output
    from movierec.models import model_entry
    from movierec.runs.folders import compare

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise MovieRecError("--models: name at least one model (see `movierec models`)")
    for name in names:
        model_entry(name)  # an unknown name fails here, before any data is loaded
    if out is not None:
        claim_output(out, "compare", create=False)
    rep = Reporter("compare")
    ds = load_dataset(data, progress=not as_json)
    rep.line(f"{len(names)} models on {ds.name} ({ds.n_users:,} users, {ds.n_items:,} items): {', '.join(names)}")
    started: dict[str, float] = {}
    current: list[str] = []  # "NAME (k/n)" of the model being fitted

    def step(what: str, name: str, k: int, n: int) -> None:
        if what == "fitting":
            started[name] = time.perf_counter()
            current[:] = [f"{name} ({k}/{n})"]
        if what == "done":
            rep.line(f"{name} ({k}/{n}) done in {time.perf_counter() - started.get(name, t0):.1f} s")
        else:
            rep.step(f"{what} {name} ({k}/{n})")

    t0 = time.perf_counter()
    with rep.status("fitting and evaluating…", enabled=not as_json):
        rows = compare(ds, names, progress=step,
                       on_epoch_end=lambda name: rep.epoch_printer(configured_epochs(name, None), current))
    rep.line(f"done in {time.perf_counter() - t0:.1f} s")
    if out is not None:
        mark_output(out, "compare")
        write_comparison(rows, out)
    if as_json:
        print_json({"dataset": ds.info(), "split": "loo (seed 42)", "rows": rows})
        return
    console.print(f"[bold]{escape(ds.name)}[/bold]: {ds.info()['ratings']:,} ratings, {ds.n_users:,} users, "
                  f"{ds.n_items:,} items · leave-one-out split, seed 42")
    print_comparison(rows)
