"""Tests of movierec.data.synthetic: deterministic, MovieLens-shaped, loadable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.data import load_dataset
from movierec.data.synthetic import GENRES, write_synthetic


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(d))
    return d


def _files(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in ("ratings.csv", "movies.csv", "tags.csv")}


def test_deterministic_under_seed(tmp_path: Path) -> None:
    a = write_synthetic(tmp_path / "a", 300, 500, 20_000, seed=7)
    b = write_synthetic(tmp_path / "b", 300, 500, 20_000, seed=7)
    c = write_synthetic(tmp_path / "c", 300, 500, 20_000, seed=8)
    assert _files(a) == _files(b)
    assert _files(a)["ratings.csv"] != _files(c)["ratings.csv"]


def test_format_and_shape(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path / "syn", 2_000, 5_000, 150_000, seed=0, n_tags=1_000)
    lines = (folder / "ratings.csv").read_text().splitlines()
    assert lines[0] == "userId,movieId,rating,timestamp"
    assert lines[1].count(",") == 3 and "." in lines[1].split(",")[2]  # ratings written as "4.0"
    movies_text = (folder / "movies.csv").read_text()
    assert movies_text.startswith("movieId,title,genres\n") and ', The (' in movies_text

    ds = load_dataset(folder)
    it = ds.interactions
    assert abs(len(it) - 150_000) <= 0.02 * 150_000
    assert ds.n_users == 2_000 and ds.n_items <= 5_000
    keys = it.user.astype(np.int64) * ds.n_items + it.item
    assert len(np.unique(keys)) == len(keys)  # no duplicate (user, movie) pairs
    assert it.user_counts().min() >= 20
    assert set(np.unique(it.rating).tolist()) <= {x / 2 for x in range(1, 11)}
    assert 3.0 < it.rating.mean() < 4.0
    assert it.timestamp.min() >= 789_652_009 and it.timestamp.max() <= 1_427_784_002

    # power law: the top 1% of items hold a large share, the top 1% of users too
    item_counts = np.sort(it.item_counts())[::-1]
    assert item_counts[: len(item_counts) // 100].sum() / len(it) > 0.08
    user_counts = np.sort(it.user_counts())[::-1]
    assert user_counts[: len(user_counts) // 100].sum() / len(it) > 0.05
    assert user_counts[0] > 10 * np.median(user_counts)

    movies = ds.catalog.movies
    assert len(movies) == 5_000 and movies.movieId.is_unique
    assert movies.title.str.contains(", The").any()
    assert movies.year.notna().mean() > 0.95
    n_genres = movies.genres.map(len)
    assert n_genres.between(1, 3).all() and set(movies.genres.explode()) <= set(GENRES)
    assert movies.genres.explode().value_counts().index[0] == "Drama"
    assert len(ds.catalog.tags) == 1_000

    # popular items are rated higher on average (quality correlates with popularity)
    sums = np.bincount(it.item, weights=it.rating, minlength=ds.n_items)
    counts = it.item_counts()
    top = np.argsort(-counts)[:50]
    tail = counts > 0
    assert sums[top].sum() / counts[top].sum() > sums[tail].sum() / counts[tail].sum()


def test_tiny_and_invalid(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path / "tiny", 5, 10, 30, seed=1, n_tags=0)
    ds = load_dataset(folder)
    assert 0 < len(ds.interactions) <= 30 and len(ds.catalog.tags) == 0
    with pytest.raises(ValueError):
        write_synthetic(tmp_path / "bad", 0, 10, 30)
