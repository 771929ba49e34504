"""``movierec similar``: movies like a given one, by content features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli.common import JsonOpt, console, print_json
from movierec.errors import MovieRecError


def similar_cmd(
    query: Annotated[str, typer.Argument(help="Movie title (with or without its year) or movieId.")],
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="Release name, imported name, or folder (content similarity).")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="A run folder, bundle or study: the movies this model finds most alike (its item "
        "vectors or item-item weights) instead of content features.")] = None,
    measure: Annotated[str, typer.Option("--measure", help="dot | cosine | euclidean")] = "dot",
    features: Annotated[str | None, typer.Option(
        "--features", help="genres | weighted-genres | tags | genome | year | all "
        "[default: weighted-genres where the data has ratings, else genres]")] = None,
    k: Annotated[int, typer.Option("-k")] = 10,
    min_ratings: Annotated[int, typer.Option(
        "--min-ratings", help="Where ratings are known, only list movies rated at least this often.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Movies like this one, by content features (--data: a dataset, a movies-only folder, or a run folder) or
    by a trained model (--model RUN).

    Examples: movierec similar "Toy Story" --data ml-latest-small; movierec similar "Heat (1995)" --model out/run
    """
    if (data is None) == (model is None):
        raise MovieRecError("give --data (content similarity) or --model RUN (the model's own), not both"
                            if data is not None else "give --data DATASET (content similarity) or --model RUN")
    if model is not None:
        _similar_by_model(query, model, k, as_json)
        return
    from movierec.data.features import FEATURE_KINDS, MEASURES
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
        print_json({"query": q, "measure": measure, "features": features, "min_ratings": df.attrs["min_ratings"],
                     "note": note or None, "results": df.to_dict(orient="records")})
        return
    label = f"{features} ({note})" if note else features
    t = Table("rank", "movieId", "title", "genres", "score",
              title=escape(f"like {q['title']} [{q['movieId']}] · {measure} · {label}"))
    for r in df.itertuples(index=False):
        t.add_row(str(r.rank), str(r.movieId), escape(str(r.title)), escape(str(r.genres)), f"{r.score:.4g}")
    console.print(t)
    if df.empty:
        console.print("no movie shares a feature with it" + (" (try --min-ratings 0)" if min_ratings else ""))


def _similar_by_model(query: str, run: Path, k: int, as_json: bool) -> None:
    from movierec.serving import Service

    if k < 1:
        raise MovieRecError("-k must be at least 1")
    service = Service.open([run], cache_users=0, warm=False, max_k=None)
    served = service.model(None)
    result = service.similar(service.resolve(query), k, "model")
    rows = [{"rank": r["rank"], "movieId": r["movie_id"], "title": r["title"], "genres": "|".join(r["genres"]),
             "score": r["score"]} for r in result["results"]]
    q = result["movie"]
    if as_json:
        print_json({"query": {"movieId": q["movie_id"], "title": q["title"], "genres": "|".join(q["genres"])},
                     "model": served.model_name, "run": str(run), "results": rows})
        return
    t = Table("rank", "movieId", "title", "genres", "score",
              title=escape(f"like {q['title']} [{q['movie_id']}] · by {served.model_name} ({run})"))
    for r in rows:
        t.add_row(str(r["rank"]), str(r["movieId"]), escape(r["title"]), escape(r["genres"]), f"{r['score']:.4g}")
    console.print(t)
