"""``movierec experiment|eda|segments|study``: experiment grids, data exploration, user segments, the whole study."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from movierec.cli.common import (
    COMPACT,
    DataArg,
    DataOpt,
    JsonOpt,
    OldDataArg,
    Reporter,
    configured_epochs,
    console,
    dataset_arg,
    epoch_text,
    print_comparison,
    print_json,
    step_printer,
)
from movierec.errors import MovieRecError
from movierec.fsutil import claim_output, mark_output


def experiment_cmd(
    config: Path,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for results.{csv,md,json} and finished runs.")],
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A setting key=value (repeatable) over every run that has it (e.g. epochs=1 for a quick "
        "try); one that no run has is an error.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a TOML experiment grid, such as configs/ncf-paper.toml, and write its results table.

    Examples: movierec experiment configs/content-hybrid.toml --data ml-latest-small --out out/content-hybrid;
    movierec experiment configs/ncf-paper.toml --data ncf-ml-1m --out out/ncf-paper
    """
    from movierec.experiments import REUSED, load_config, run_experiment
    from movierec.models.settings import parse_pairs
    from movierec.runs import RunSpec, expand_runs, validate_config

    cfg = load_config(config)
    validate_config(cfg, "experiment", str(config))  # before any data is loaded
    claim_output(out, "experiment", create=False)
    overrides = parse_pairs(settings or [], "--set")
    n_runs = len(expand_runs(cfg, overrides))
    rep = Reporter("experiment")
    ds = _load_for_config(data, config)
    rep.line(f"{n_runs} run{'s' if n_runs != 1 else ''} of {config} on {ds.name} ({ds.n_users:,} users, "
             f"{ds.n_items:,} items) -> {out}")

    done: list[str] = []
    started: dict[str, float] = {}
    current: dict = {}  # the run being trained: its name and number of epochs
    t_all = time.perf_counter()

    def run_start(spec: RunSpec) -> None:
        started[spec.name] = time.perf_counter()
        current.update(name=spec.name, epochs=configured_epochs(spec.model, spec.settings))
        rep.line(f"run {spec.name!r} ({len(done) + 1}/{n_runs}) started ({spec.model})")

    def epoch_end(record: dict) -> None:
        rep.line(f"run {current.get('name')!r} ({len(done) + 1}/{n_runs}) {epoch_text(record, current.get('epochs'))}")

    def report(name: str, row: dict, note: str) -> None:
        done.append(name)
        where = f"run {name!r} ({len(done)}/{n_runs})"
        if note == REUSED:
            rep.line(f"{where} {note}")
        else:
            rep.line(f"{where} done in {time.perf_counter() - started.get(name, t_all):.1f} s ({note}; "
                     f"NDCG@10 {row.get('NDCG@10 [full]', float('nan')):.4f} [full])")
        if not as_json:
            console.print(f"[{len(done)}/{n_runs}] {name}: HR@10 {row.get('HR@10 [sampled-100]', float('nan')):.4f} "
                          f"NDCG@10 {row.get('NDCG@10 [sampled-100]', float('nan')):.4f} [sampled-100], "
                          f"NDCG@10 {row.get('NDCG@10 [full]', float('nan')):.4f} [full], {row['fit_seconds']:.1f} s"
                          f"; {note}", markup=False, soft_wrap=True)

    mark_output(out, "experiment")
    rows = run_experiment(cfg, ds, out, report, train_progress=not as_json and not rep.plain,
                          on_run_start=run_start, on_epoch_end=epoch_end, overrides=overrides)
    rep.line(f"done in {time.perf_counter() - t_all:.1f} s: {len(done)} runs -> {out / 'results.md'}")
    if as_json:
        print_json({"config": str(config), "rows": rows})
    else:
        print_comparison(rows)
        console.print(f"results: {out / 'results.md'}", markup=False)


def eda_cmd(
    name_or_path: OldDataArg = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for eda.html, figures/ and tables/.",
                                             show_default=False)] = None,
    data: DataOpt = None,
    sample: Annotated[int, typer.Option("--sample", help="Ratings sampled for plots that need raw points.")]
    = 1_000_000,
    as_json: JsonOpt = False,
) -> None:
    """Explore a dataset: sparsity, long tails, ratings over time, genres, multicollinearity, tags, users.

    Examples: movierec eda --data ml-latest-small --out out/eda; movierec eda --data ml-20m --out out/eda-20m
    """
    from movierec.data import load_dataset
    from movierec.eda import run_eda, summary_lines

    name_or_path = dataset_arg(name_or_path, data, "eda")
    if out is None:
        raise MovieRecError("eda: missing option --out (the folder to write)")

    claim_output(out, "eda", create=False)
    ds = load_dataset(name_or_path)
    mark_output(out, "eda")
    report = run_eda(ds, out, sample=sample, progress=None if as_json else step_printer())
    if as_json:
        print_json(report.summary)
        return
    for line in summary_lines(report):
        typer.echo(line)


def segments_cmd(
    data: DataArg,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for segments.parquet and profiles.csv.")] = None,
    k_min: Annotated[int, typer.Option("--k-min")] = 3,
    k_max: Annotated[int, typer.Option("--k-max")] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    embeddings: Annotated[Path | None, typer.Option(
        "--embeddings", help="A trained run folder (GMF/MLP/NeuMF): add its learned user vectors.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Segment users by taste and behaviour (k-means, k by silhouette) on a leave-one-out training split.

    Examples: movierec segments --data ml-latest-small --out out/segments; movierec segments --data
    ml-latest-small --embeddings runs/neumf
    """
    from movierec.data import load_dataset
    from movierec.data.splits import make_split
    from movierec.segments import SegmentConfig, segment_names, segment_users, user_embeddings, write_segments

    if not 2 <= k_min <= k_max:
        raise MovieRecError(f"--k-min/--k-max: need 2 <= k-min <= k-max, got {k_min} and {k_max}")
    if out is not None:
        claim_output(out, "segments", create=False)
    ds = load_dataset(data)
    split = make_split(ds, "loo", seed)
    emb = user_embeddings(embeddings, ds.users.ids) if embeddings is not None else None
    seg = segment_users(split.train, ds.catalog, SegmentConfig(k_min=k_min, k_max=k_max, seed=seed), emb)
    names = segment_names(seg.profiles)
    if out is not None:
        mark_output(out, "segments")
        write_segments(out, ds.users.ids, seg)
    if as_json:
        print_json({"k": seg.k, "silhouette": seg.silhouette,
                     "profiles": seg.profiles.reset_index().to_dict("records")})
        return
    t = Table("segment", "users", "ratings/user", "mean rating", "top genres", "favourites",
              title=f"{seg.k} segments (silhouette {seg.silhouette[seg.k]:.3f})")
    for s, r in seg.profiles.iterrows():
        t.add_row(escape(names[str(s)]), f"{r.users} ({r.share:.0%})", f"{r.ratings_per_user:.0f}",
                  f"{r.mean_rating:.2f}", escape(str(r.get("top_genres", ""))), escape(str(r.get("favourites", ""))))
    console.print(t)


def study_cmd(
    data: DataArg = "ml-latest-small",
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and everything behind it.")]
    = Path("out/study"),
    config: Annotated[Path | None, typer.Option("--config", help="Study TOML (default: the built-in study).")]
    = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the built-in study's TOML, with comments, and exit (a start for --config).")]
    = False,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A setting key=value (repeatable) over every run that has it (e.g. epochs=1 for a quick "
        "try); one that no run has is an error.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The whole study: EDA, split, train and compare every model, segments, report.html. Restarts reuse work.

    Examples: movierec study --data ml-latest-small --out out/study; movierec study --print-config >
    my-study.toml, then movierec study --data ml-latest-small --out out/mine --config my-study.toml
    """
    from movierec.data import load_dataset
    from movierec.models.settings import parse_pairs
    from movierec.runs import validate_config
    from movierec.study import resolve_config, run_study
    from movierec.study.pipeline import study_specs

    if print_config:
        from importlib.resources import files

        sys.stdout.write(files("movierec.study").joinpath("study.toml").read_text())
        return

    cfg = resolve_config(config)
    validate_config(cfg, "study", str(config) if config else "the built-in study")  # before any data is loaded
    overrides = parse_pairs(settings or [], "--set")
    study_specs(cfg, overrides)  # a setting no run has: one line, before any data is loaded
    claim_output(out, "study", create=False)
    ds = load_dataset(data)
    mark_output(out, "study")
    if as_json or not sys.stderr.isatty():
        ctx = run_study(ds, out, cfg, progress=None if as_json else step_printer(), overrides=overrides)
    else:  # one live display: the study's bar, with each neural model's epoch bar under it
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(),
                       TimeElapsedColumn(),
                       console=Console(stderr=True))
        with bar:
            task = bar.add_task("study", total=1.0)
            ctx = run_study(ds, out, cfg, progress=lambda what, frac: bar.update(task, description=what,
                                                                                    completed=frac),
                            train_progress=bar, overrides=overrides)
    rows = json.loads((out / "results.json").read_text())
    if as_json:
        print_json({"report": str(out / "report.html"), "seconds": ctx["seconds"], "rows": rows})
        return
    print_comparison(rows, COMPACT)
    console.print(f"report: {out / 'report.html'} ({ctx['seconds']:.0f} s)", markup=False)


def _load_for_config(data: str, config: Path):
    """The dataset of an experiment; when it is missing, the error quotes the `data import` line that the
    config's own comments give for it (configs/ncf-paper.toml names the NCF paper's files)."""
    from movierec.data import load_dataset
    from movierec.errors import UnknownDatasetError

    try:
        return load_dataset(data)
    except UnknownDatasetError as e:
        lines = [ln.lstrip("# ").split("  #")[0].strip() for ln in config.read_text().splitlines()
                 if ln.lstrip().startswith("#") and "movierec data import" in ln]
        hint = next((ln for ln in lines if f"--name {data}" in ln), lines[0] if lines else None)
        if hint is None:
            raise
        raise MovieRecError(f"{e}; {config} says to get it with: {hint}") from None
