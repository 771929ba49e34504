"""Finding a movie by title, "movies like this one", and the `movierec similar` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Catalog, build_dataset
from movierec.errors import MovieRecError
from movierec.similar import resolve_title, similar_movies

MOVIES = pd.DataFrame({
    "movieId": [1, 3114, 29, 1411, 1941, 73, 51662, 8195],
    "title": ["Toy Story", "Toy Story 2", "City of Lost Children, The (Cité des enfants perdus, La)", "Hamlet",
              "Hamlet", "Misérables, Les", "300", "Avventura, L' (Adventure, The)"],
    "year": [1995.0, 1999.0, 1995.0, 1996.0, 1948.0, 1995.0, 2007.0, 1960.0],
    "genres": [["Animation", "Comedy"], ["Animation", "Comedy"], ["Fantasy"], ["Drama"], ["Drama"], ["Drama"],
               ["Action"], ["Drama"]],
})


@pytest.mark.parametrize(("query", "expected"), [
    ("Toy Story (1995)", 1), ("toy story", 1), ("TOY STORY", 1), ("  Toy   Story ", 1), ("Toy Story 2", 3114),
    ("The City of Lost Children", 29), ("City of Lost Children, The", 29), ("city of lost children (1995)", 29),
    ("Cité des enfants perdus, La", 29), ("les miserables", 73), ("Misérables, Les (1995)", 73),
    ("L'Avventura", 8195), ("Hamlet (1996)", 1411), ("1941", 1941), ("300 (2007)", 51662), ("300", 300),
])
def test_resolve_title(query: str, expected: int) -> None:
    movies = MOVIES if expected != 300 else pd.concat([MOVIES, pd.DataFrame({
        "movieId": [300], "title": ["Quiz Show"], "year": [1994.0], "genres": [["Drama"]]})])
    assert resolve_title(movies, query) == expected


def test_resolve_title_errors_are_one_line() -> None:
    with pytest.raises(MovieRecError) as e:
        resolve_title(MOVIES, "hamlet")
    msg = str(e.value)
    assert "\n" not in msg and "Hamlet (1948) [1941]" in msg and "Hamlet (1996) [1411]" in msg and "year" in msg
    with pytest.raises(MovieRecError) as e:
        resolve_title(MOVIES, "Toy Stroy")
    assert "\n" not in str(e.value) and "Toy Story (1995) [1]" in str(e.value)
    with pytest.raises(MovieRecError, match="unknown movie id 12345"):
        resolve_title(MOVIES, "12345")
    with pytest.raises(MovieRecError, match="from 1996"):
        resolve_title(MOVIES, "Toy Story (1996)")


def test_resolve_title_on_a_bundle_movie_table() -> None:
    bundle_movies = pd.DataFrame({"index": [0, 1], "raw_id": [1, 3114],
                                  "title": ["Toy Story (1995)", "Toy Story 2 (1999)"],
                                  "genres": ["Animation|Comedy", "Animation|Comedy"]})
    assert resolve_title(bundle_movies, "toy story") == 1
    assert resolve_title(bundle_movies, "Toy Story 2 (1999)") == 3114


def tiny_dataset():
    movies = pd.DataFrame({
        "movieId": [1, 2, 3, 4, 5], "title": ["A", "B", "C", "D", "E"], "year": [1990.0] * 5,
        "genres": [["X", "Y"], ["X", "Y"], ["X"], ["X", "Y"], ["Z"]],
    })
    # movie 2: mean 2 (one rating), 3: mean 5 (x2), 4: mean 4 (x2), 1: mean 3
    ratings = pd.DataFrame({"userId": [1, 1, 1, 2, 2, 2, 3], "movieId": [1, 2, 3, 3, 4, 4, 1],
                            "rating": [3.0, 2.0, 5.0, 5.0, 4.0, 4.0, 3.0], "timestamp": [0] * 7})
    return build_dataset("tiny", ratings, Catalog(movies=movies))


def test_similar_movies_weighted_dot_excludes_query_and_breaks_ties_by_id() -> None:
    ds = tiny_dataset()
    df = similar_movies(ds, "1", k=10, min_ratings=0)
    # query vector 3*(X+Y); scores: 4 -> 3*4*2 = 24, 3 -> 3*5 = 15, 2 -> 3*2*2 = 12; 5 shares nothing
    assert df["movieId"].tolist() == [4, 3, 2]
    np.testing.assert_allclose(df["score"], [24, 15, 12])
    assert df["rank"].tolist() == [1, 2, 3] and df.attrs["query"]["title"] == "A (1990)"
    assert list(df.columns) == ["rank", "movieId", "title", "genres", "score"]
    assert df["genres"].iloc[0] == "X|Y"
    # plain genres: 2 and 4 tie at 2 -> by movieId; min_ratings=2 drops movie 2 (one rating)
    assert similar_movies(ds, "A", features="genres", min_ratings=0)["movieId"].tolist() == [2, 4, 3]
    assert similar_movies(ds, "A", features="genres", min_ratings=2)["movieId"].tolist() == [4, 3]
    assert similar_movies(ds, "A", features="genres", k=1, min_ratings=0)["movieId"].tolist() == [2]
    # euclidean ranks every other movie, nearest first
    assert similar_movies(ds, "A", features="genres", measure="euclidean", min_ratings=0)["movieId"].tolist() == [
        2, 4, 3, 5]


def test_similar_movies_errors() -> None:
    ds = tiny_dataset()
    cat = Catalog(movies=ds.catalog.movies)
    with pytest.raises(MovieRecError, match="weighted-genres needs ratings"):
        similar_movies(cat, "A")
    assert similar_movies(cat, "A", features="genres")["movieId"].tolist() == [2, 4, 3]
    with pytest.raises(MovieRecError, match="unknown measure"):
        similar_movies(ds, "A", measure="jaccard")
    with pytest.raises(MovieRecError, match="unknown features"):
        similar_movies(ds, "A", features="plot")
    with pytest.raises(MovieRecError, match="no tag genome"):
        similar_movies(ds, "A", features="genome")


def test_toy_story_on_ml_latest_small(mls) -> None:
    df = similar_movies(mls, "Toy Story", measure="dot", features="weighted-genres", k=10)
    ids = df["movieId"].tolist()
    assert len(ids) == 10 and 1 not in ids
    assert {3114, 4886} <= set(ids)  # Toy Story 2, Monsters, Inc.
    assert df["score"].is_monotonic_decreasing
    for measure in ("cosine", "euclidean"):
        assert 3114 in similar_movies(mls, "toy story (1995)", measure=measure, k=10)["movieId"].tolist()


# --------------------------------------------------------------------------------------------- the command


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec.cli", "similar", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


def test_cli_similar_json(shared_data_dir: Path) -> None:
    r = run("Toy Story", "--data", str(shared_data_dir / "ml-latest-small"), "--json", "-k", "10")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["query"]["movieId"] == 1 and out["measure"] == "dot" and out["features"] == "weighted-genres"
    ids = [row["movieId"] for row in out["results"]]
    assert len(ids) == 10 and {3114, 4886} <= set(ids)
    assert set(out["results"][0]) == {"rank", "movieId", "title", "genres", "score"}


@pytest.mark.parametrize("query", ["Hamlet", "No Such Movie Title Anywhere"])
def test_cli_similar_user_errors(shared_data_dir: Path, query: str) -> None:
    r = run(query, "--data", str(shared_data_dir / "ml-latest-small"), "--features", "genres")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr


def test_cli_similar_on_a_catalog_only_folder(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "ml-20m"
    if not (folder / "movies.csv").is_file():
        pytest.skip("ml-20m movies.csv not in the shared data")
    r = run("1", "--data", str(folder), "--features", "genres", "--json", "-k", "5")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["query"]["title"] == "Toy Story (1995)" and len(out["results"]) == 5
    assert all(row["score"] == 5 for row in out["results"])  # movies with exactly Toy Story's five genres


def test_similar_on_a_model_bundle(tmp_path: Path) -> None:
    from movierec.artifacts import load_bundle, save_bundle
    from movierec.models import Popularity
    from movierec.similar import default_features, load_source

    ds = tiny_dataset()
    model = Popularity().fit(ds.interactions, ds.catalog)
    save_bundle(tmp_path / "run", model, ds.users, ds.items, ds.catalog)
    source = load_source(tmp_path / "run")
    assert source.__class__.__name__ == "Bundle"
    assert default_features(source)[0] == "genres"
    df = similar_movies(load_bundle(tmp_path / "run"), "a (1990)", features="genres")
    assert df["movieId"].tolist() == [2, 4, 3] and df.attrs["min_ratings"] is None
    with pytest.raises(MovieRecError, match="bundle"):
        similar_movies(source, "A", features="weighted-genres")
