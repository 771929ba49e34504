"""The ``movierec`` command. Tables for people, ``--json`` for machines, exit code 2 for user errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from movierec.errors import MovieRecError

app = typer.Typer(help="Movie recommendation on MovieLens.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="List, fetch, import, inspect and synthesise MovieLens data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()

DataArg = Annotated[str, typer.Option("--data", "-d", help="Release name, imported name, or folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _kv_table(title: str, items: dict) -> Table:
    t = Table(title=title, show_header=False)
    for k, v in items.items():
        t.add_row(str(k), f"{v:.4f}" if isinstance(v, float) else str(v))
    return t


# -- data ------------------------------------------------------------------------------------------
@data_app.command("list")
def data_list(as_json: JsonOpt = False) -> None:
    """The MovieLens releases movierec knows, and where each is found on this machine."""
    from movierec.data.movielens import list_releases

    rows = list_releases()
    if as_json:
        _print_json(rows)
        return
    t = Table("name", "description", "size", "local copy")
    for r in rows:
        t.add_row(str(r.get("name")), str(r.get("description", "")), str(r.get("size", "")),
                  str(r.get("location") or r.get("local") or r.get("where") or "not downloaded"))
    console.print(t)


@data_app.command("fetch")
def data_fetch(name: str) -> None:
    """Download a release, verify its checksum and extract it into the cache."""
    from movierec.data.movielens import fetch

    path = fetch(name, progress=True)
    console.print(f"{name}: {path}")


@data_app.command("import")
def data_import(path: Path, name: Annotated[str | None, typer.Option("--name")] = None) -> None:
    """Register an extracted folder (any MovieLens layout, or NCF-format split files) under a name."""
    from movierec.data.movielens import import_folder

    registered = import_folder(path, name)
    console.print(f"imported {path} as {registered}")


@data_app.command("info")
def data_info(name_or_path: str, as_json: JsonOpt = False) -> None:
    """Size and contents of a dataset."""
    from movierec.data.movielens import load_dataset

    info = load_dataset(name_or_path).info()
    if as_json:
        _print_json(info)
    else:
        console.print(_kv_table(name_or_path, info))


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write ratings.csv, movies.csv, tags.csv.")],
    users: Annotated[int, typer.Option("--users")] = 1000,
    items: Annotated[int, typer.Option("--items")] = 2000,
    ratings: Annotated[int, typer.Option("--ratings")] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write a synthetic dataset in ml-20m's csv format (power-law users and items)."""
    from movierec.data.synthetic import write_synthetic

    if min(users, items, ratings) <= 0:
        raise MovieRecError("--users, --items and --ratings must be positive")
    path = write_synthetic(out, users, items, ratings, seed=seed)
    console.print(f"wrote {path}")


# -- split -----------------------------------------------------------------------------------------
@app.command("split")
def split_cmd(
    name_or_path: str,
    out: Annotated[Path, typer.Option("--out", help="Folder for NCF-format files and Parquet tables.")],
    protocol: Annotated[str, typer.Option("--protocol", help="loo or vae-cf")] = "loo",
    seed: Annotated[int, typer.Option("--seed")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """Split a dataset; write NCF-format files (loo) and Parquet tables with raw ids."""
    from movierec.data.movielens import load_dataset
    from movierec.data.splits import export_ncf, make_split, write_split_parquet

    ds = load_dataset(name_or_path)
    try:
        split = make_split(ds, protocol, seed)
    except ValueError as e:
        raise MovieRecError(str(e)) from None
    files = write_split_parquet(split, out, ds.users, ds.items)
    if split.test.negatives is not None:
        files += export_ncf(split, out, ds.name)
    split.save(out / "split")
    summary = {**split.summary(), "files": [str(f) for f in files]}
    if as_json:
        _print_json(summary)
    else:
        console.print(_kv_table(f"{ds.name} · {protocol} split", {k: v for k, v in summary.items() if k != "files"}))
        for f in files:
            console.print(f"  {f}")


# -- train / evaluate / recommend ------------------------------------------------------------------
@app.command("train")
def train_cmd(
    model: str,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (a model bundle plus its split).")],
    settings: Annotated[list[str] | None, typer.Option("--set", help="Hyper-parameter key=value.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from OUT.ckpt/.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train MODEL (popularity, itemknn, gmf, mlp, neumf) on the leave-one-out split of --data."""
    from movierec.data.movielens import load_dataset
    from movierec.models import get_model_class
    from movierec.runs import parse_overrides, train_run

    overrides = parse_overrides(get_model_class(model), settings or [])
    ds = load_dataset(data)
    _, split, info = train_run(model, ds, out, overrides, seed=seed, resume=resume,
                               progress=not as_json and sys.stderr.isatty())
    result = {"model": model, "run": str(out), "split": split.summary(), **info}
    if as_json:
        _print_json(result)
        return
    console.print(f"trained {model} on {ds.name} in {info['fit_seconds']:.2f} s → {out}")
    if "valid" in info:
        console.print(_kv_table("validation (sampled-100)", info["valid"]["metrics"]))


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Path,
    protocol: Annotated[str, typer.Option("--protocol", help="full (default) or sampled-100")] = "full",
    k: Annotated[list[int] | None, typer.Option("-k", help="Cutoffs (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a run on its test items under a protocol."""
    from movierec.evaluation import DEFAULT_KS
    from movierec.runs import evaluate_run

    ks = tuple(sorted(set(k))) if k else DEFAULT_KS
    if min(ks) < 1:
        raise MovieRecError("-k must be at least 1")
    res = evaluate_run(run_dir, protocol, ks)
    if as_json:
        _print_json({**res.to_json(), "run": str(run_dir)})
    else:
        console.print(_kv_table(f"{run_dir} · test · protocol {res.protocol} · {len(res.users)} users", res.metrics))


@app.command("recommend")
def recommend_cmd(
    run_dir: Path,
    user: Annotated[int, typer.Option("--user", help="Raw MovieLens user id.")],
    k: Annotated[int, typer.Option("-k")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Top-k movies for a known user (raw ids in and out, with titles)."""
    from movierec.artifacts import load_bundle

    if k < 1:
        raise MovieRecError("-k must be at least 1")
    b = load_bundle(run_dir, engine="fast")
    uidx = b.users.index(user)
    items, scores = b.model.recommend(uidx, k)
    items, scores = items[0][items[0] >= 0], scores[0][items[0] >= 0]
    rows = [{"rank": r + 1, "movieId": int(b.items.raw(i)), "title": t, "score": float(s)}
            for r, (i, t, s) in enumerate(zip(items, b.titles(items), scores, strict=True))]
    if as_json:
        _print_json({"user": user, "model": b.config["model"], "recommendations": rows})
        return
    t = Table("rank", "movieId", "title", "score", title=f"{b.config['model']} · user {user}")
    for r in rows:
        t.add_row(str(r["rank"]), str(r["movieId"]), r["title"], f"{r['score']:.4g}")
    console.print(t)


@app.command("experiment")
def experiment_cmd(
    config: Path,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for results.{csv,md,json} and finished runs.")],
    as_json: JsonOpt = False,
) -> None:
    """Run a TOML experiment grid (e.g. configs/ncf-paper.toml) and write its results table."""
    from movierec.data.movielens import load_dataset
    from movierec.experiments import expand_runs, load_config, run_experiment

    cfg = load_config(config)
    n_runs = len(expand_runs(cfg))  # validates the config before any data is loaded
    ds = load_dataset(data)

    done: list[str] = []

    def report(name: str, row: dict) -> None:
        done.append(name)
        if not as_json:
            console.print(f"[{len(done)}/{n_runs}] {name}: HR@10 {row.get('HR@10 [sampled-100]', float('nan')):.4f} "
                          f"NDCG@10 {row.get('NDCG@10 [sampled-100]', float('nan')):.4f} [sampled-100], "
                          f"NDCG@10 {row.get('NDCG@10 [full]', float('nan')):.4f} [full], {row['fit_seconds']:.1f} s")

    rows = run_experiment(cfg, ds, out, report, train_progress=not as_json and sys.stderr.isatty())
    if as_json:
        _print_json({"config": str(config), "rows": rows})
    else:
        _print_comparison(rows)
        console.print(f"results: {out / 'results.md'}")


@app.command("eda")
def eda_cmd(
    name_or_path: str,
    out: Annotated[Path, typer.Option("--out", help="Folder for eda.html, figures/ and tables/.")],
    sample: Annotated[int, typer.Option("--sample", help="Ratings sampled for plots that need raw points.")]
    = 1_000_000,
    as_json: JsonOpt = False,
) -> None:
    """Explore a dataset: sparsity, long tails, ratings over time, genres, multicollinearity, tags, users."""
    from movierec.data.movielens import load_dataset
    from movierec.eda import run_eda, summary_lines

    ds = load_dataset(name_or_path)
    report = run_eda(ds, out, sample=sample, progress=None if as_json else _step_printer())
    if as_json:
        _print_json(report.summary)
        return
    for line in summary_lines(report):
        typer.echo(line)


def _step_printer():
    """A progress callback that prints each step with the time since the command started (stderr)."""
    import time

    err = Console(stderr=True)
    t0 = time.perf_counter()

    def step(what: str, fraction: float | None = None) -> None:
        pct = f"{fraction:4.0%} " if fraction is not None else ""
        err.print(f"[dim]{time.perf_counter() - t0:6.1f} s[/dim] {pct}{what}")

    return step


@app.command("segments")
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
    """Segment users by taste and behaviour (k-means, k by silhouette) on a leave-one-out training split."""
    from movierec.data.movielens import load_dataset
    from movierec.data.splits import make_split
    from movierec.segments import SegmentConfig, segment_names, segment_users, user_embeddings, write_segments

    if not 2 <= k_min <= k_max:
        raise MovieRecError(f"--k-min/--k-max: need 2 <= k-min <= k-max, got {k_min} and {k_max}")
    ds = load_dataset(data)
    split = make_split(ds, "loo", seed)
    emb = user_embeddings(embeddings, ds.users.ids) if embeddings is not None else None
    seg = segment_users(split.train, ds.catalog, SegmentConfig(k_min=k_min, k_max=k_max, seed=seed), emb)
    names = segment_names(seg.profiles)
    if out is not None:
        write_segments(out, ds.users.ids, seg)
    if as_json:
        _print_json({"k": seg.k, "silhouette": seg.silhouette,
                     "profiles": seg.profiles.reset_index().to_dict("records")})
        return
    t = Table("segment", "users", "ratings/user", "mean rating", "top genres", "favourites",
              title=f"{seg.k} segments (silhouette {seg.silhouette[seg.k]:.3f})")
    for s, r in seg.profiles.iterrows():
        t.add_row(names[str(s)], f"{r.users} ({r.share:.0%})", f"{r.ratings_per_user:.0f}", f"{r.mean_rating:.2f}",
                  str(r.get("top_genres", "")), str(r.get("favourites", "")))
    console.print(t)


@app.command("study")
def study_cmd(
    data: DataArg = "ml-latest-small",
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and everything behind it.")]
    = Path("out/study"),
    config: Annotated[Path | None, typer.Option("--config", help="Study TOML (default: the built-in study).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """The whole study: EDA, split, train and compare every model, segments, report.html. Restarts reuse work."""
    from movierec.data.movielens import load_dataset
    from movierec.experiments import expand_runs
    from movierec.study import resolve_config, run_study

    cfg = resolve_config(config)
    expand_runs(cfg)  # validates the config before any data is loaded
    ds = load_dataset(data)
    if as_json or not sys.stderr.isatty():
        ctx = run_study(ds, out, cfg, progress=None if as_json else _step_printer())
    else:  # one live display: the study's bar, with each neural model's epoch bar under it
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True))
        with bar:
            task = bar.add_task("study", total=1.0)
            ctx = run_study(ds, out, cfg, progress=lambda what, frac: bar.update(task, description=what,
                                                                                    completed=frac),
                            train_progress=bar)
    rows = json.loads((out / "results.json").read_text())
    if as_json:
        _print_json({"report": str(out / "report.html"), "seconds": ctx["seconds"], "rows": rows})
        return
    _print_comparison(rows, COMPACT)
    console.print(f"report: {out / 'report.html'} ({ctx['seconds']:.0f} s)")


@app.command("compare")
def compare_cmd(
    data: DataArg = "ml-latest-small",
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "popularity,itemknn",
    out: Annotated[Path | None, typer.Option("--out", help="Write results.csv / results.md / results.json.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit models on one leave-one-out split and compare them under both protocols."""
    from movierec.data.movielens import load_dataset
    from movierec.reports import write_comparison
    from movierec.runs import compare

    ds = load_dataset(data, progress=not as_json)
    names = [m.strip() for m in models.split(",") if m.strip()]
    with console.status("fitting and evaluating…", spinner="dots") if not as_json else _null():
        rows = compare(ds, names)
    if out is not None:
        write_comparison(rows, out)
    if as_json:
        _print_json({"dataset": ds.info(), "split": "loo (seed 42)", "rows": rows})
        return
    console.print(f"[bold]{ds.name}[/bold]: {ds.info()['ratings']:,} ratings, {ds.n_users:,} users, "
                  f"{ds.n_items:,} items · leave-one-out split, seed 42")
    _print_comparison(rows)


@app.command("similar")
def similar_cmd(
    query: Annotated[str, typer.Argument(help="Movie title (with or without its year) or movieId.")],
    data: DataArg,
    measure: Annotated[str, typer.Option("--measure", help="dot | cosine | euclidean")] = "dot",
    features: Annotated[str | None, typer.Option(
        "--features", help="genres | weighted-genres | tags | genome | year | all "
        "[default: weighted-genres where the data has ratings, else genres]")] = None,
    k: Annotated[int, typer.Option("-k")] = 10,
    min_ratings: Annotated[int, typer.Option(
        "--min-ratings", help="Where ratings are known, only list movies rated at least this often.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Movies like this one, by content features (--data: a dataset, a movies-only folder, or a run folder)."""
    from movierec.features import FEATURE_KINDS, MEASURES
    from movierec.similar import SimilarityIndex, default_features, load_source

    if measure not in MEASURES:
        raise MovieRecError(f"unknown measure {measure!r} (expected one of {', '.join(MEASURES)})")
    if features is not None and features not in FEATURE_KINDS:
        raise MovieRecError(f"unknown features {features!r} (expected one of {', '.join(FEATURE_KINDS)})")
    if k < 1:
        raise MovieRecError("-k must be at least 1")
    source = load_source(data)
    note = ""
    if features is None:
        features, note = default_features(source)
    df = SimilarityIndex.build(source, features).query(query, measure, k, min_ratings)
    q = df.attrs["query"]
    if as_json:
        _print_json({"query": q, "measure": measure, "features": features, "min_ratings": df.attrs["min_ratings"],
                     "note": note or None, "results": df.to_dict(orient="records")})
        return
    label = f"{features} ({note})" if note else features
    t = Table("rank", "movieId", "title", "genres", "score",
              title=f"like {q['title']} [{q['movieId']}] · {measure} · {label}")
    for r in df.itertuples(index=False):
        t.add_row(str(r.rank), str(r.movieId), r.title, r.genres, f"{r.score:.4g}")
    console.print(t)
    if df.empty:
        console.print("no movie shares a feature with it" + (" (try --min-ratings 0)" if min_ratings else ""))


def _print_comparison(rows: list[dict], columns: list[str] | None = None) -> None:
    """A rich table on a terminal (``columns``, default the headline set); the markdown table of the headline
    metrics when the output goes to a file or a pipe."""
    if console.is_terminal:
        console.print(comparison_table(rows, columns))
    else:
        from movierec.reports import comparison_markdown

        sys.stdout.write(comparison_markdown(rows) + "\n")


COMPACT = ["HR@10 [sampled-100]", "NDCG@10 [sampled-100]", "HR@10 [full]", "NDCG@10 [full]", "Coverage@10 [full]",
           "ILD@10 [full]", "Novelty@10 [full]", "fit_seconds"]


def comparison_table(rows: list[dict], columns: list[str] | None = None) -> Table:
    """The headline metrics (or ``columns``) as a rich table; each column header names its protocol."""
    from movierec.reports import comparison_frame

    df = comparison_frame(rows, columns)
    t = Table(title="test users, K = 10")
    t.add_column("model")
    for c in df.columns:
        name, _, proto = c.partition(" [")
        t.add_column("fit\ns" if c == "fit_seconds" else f"{name}\n{proto.rstrip(']')}", justify="right")
    for name, r in df.iterrows():
        t.add_row(str(name), *["–" if v is None or v != v else f"{v:.2f}" if c == "fit_seconds" else f"{v:.4f}"
                               for c, v in r.items()])
    return t


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def main() -> None:
    """Entry point: user errors print one line to stderr and exit with code 2."""
    from movierec.data.dataset import UnknownIdError

    try:
        app()  # click handles usage errors itself (exit code 2)
    except (MovieRecError, UnknownIdError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: file not found", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
