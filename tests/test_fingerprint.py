"""Dataset.fingerprint(): the content of a loaded dataset, as one hex digest that reuse decisions are keyed on.

(Here rather than in tests/data/ while that folder is being reworked.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data import load_dataset
from movierec.data.dataset import Catalog, build_dataset
from tests.data_edits import edit_cell, other_rating, write_small


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small(tmp_path_factory.mktemp("fp") / "syn", seed=3)


def _copy(small: Path, tmp_path: Path) -> Path:
    """A copy of the small release with the same folder name (so the same dataset name)."""
    return Path(shutil.copytree(small, tmp_path / "copy" / small.name))


def test_same_folder_same_fingerprint_in_any_process(small: Path) -> None:
    a, b = load_dataset(str(small)), load_dataset(str(small))  # the first parses, the second reads the cache
    fp = a.fingerprint()
    assert isinstance(fp, str) and len(fp) == 32 and int(fp, 16) >= 0
    assert fp == b.fingerprint()
    assert a.fingerprint() is fp  # cached on the instance
    code = f"from movierec.data import load_dataset; print(load_dataset({str(small)!r}).fingerprint())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == fp


@pytest.mark.parametrize(("file", "column"), [("ratings.csv", "rating"), ("ratings.csv", "timestamp"),
                                              ("tags.csv", "tag"), ("movies.csv", "title")])
def test_one_changed_value_changes_it_while_every_count_stays(small: Path, tmp_path: Path, file: str,
                                                              column: str) -> None:
    copy = _copy(small, tmp_path)
    before = load_dataset(str(copy))
    row = 7
    old = pd.read_csv(copy / file, dtype=str)[column].iloc[row]
    new = other_rating(old) if column == "rating" else str(int(old) + 1) if column == "timestamp" else f"{old}!"
    edit_cell(copy / file, row, column, new)
    after = load_dataset(str(copy))
    assert after.info() == before.info()  # same name, sizes and counts
    assert after.fingerprint() != before.fingerprint()


def _frames(relevance: float = 0.5) -> Catalog:
    movies = pd.DataFrame({"movieId": [10, 20, 30], "title": ["A", "B", "C"], "year": [1990.0, np.nan, 2001.0],
                           "genres": [["Drama"], ["Comedy", "Drama"], []]})
    genome = pd.DataFrame({"movieId": [10, 20], "tagId": [1, 1], "relevance": [relevance, 0.25]})
    users = pd.DataFrame({"userId": [1, 2], "gender": ["F", "M"], "age": [25, 35]})
    return Catalog(movies, users=users, genome_scores=genome, genome_tags=pd.DataFrame({"tagId": [1], "tag": ["x"]}))


def _ratings() -> pd.DataFrame:
    return pd.DataFrame({"userId": [1, 1, 2, 2], "movieId": [10, 20, 20, 30], "rating": [4.0, 3.0, 5.0, 2.0],
                         "timestamp": [1, 2, 3, 4]})


def test_catalogue_content_counts_and_its_dtype_does_not() -> None:
    base = build_dataset("d", _ratings(), _frames()).fingerprint()
    assert build_dataset("d", _ratings(), _frames()).fingerprint() == base
    assert build_dataset("d", _ratings(), _frames(0.75)).fingerprint() != base  # a genome relevance
    cat = _frames()
    cat.users.loc[1, "gender"] = "F"  # a demographic
    assert build_dataset("d", _ratings(), cat).fingerprint() != base
    cat = _frames()
    cat.movies.at[1, "genres"] = ["Comedy"]  # a genre list
    assert build_dataset("d", _ratings(), cat).fingerprint() != base
    assert build_dataset("d", _ratings(), None).fingerprint() != base  # no catalogue at all
    cat = _frames()  # how a column was read (object or string dtype, numpy or nullable ints) does not count
    cat.movies["title"] = cat.movies["title"].astype("string")
    cat.users["age"] = cat.users["age"].astype("Int64")
    assert build_dataset("d", _ratings(), cat).fingerprint() == base


def test_a_predefined_split_counts() -> None:
    from movierec.data.splits import leave_one_out

    ds = build_dataset("d", _ratings(), None)
    base = ds.fingerprint()
    split = leave_one_out(ds.interactions, seed=1)
    with_split = build_dataset("d", _ratings(), None)
    with_split.predefined_split = split
    assert with_split.fingerprint() != base
    other = build_dataset("d", _ratings(), None)
    other.predefined_split = leave_one_out(ds.interactions, seed=1)
    assert other.fingerprint() == with_split.fingerprint()
    other = build_dataset("d", _ratings(), None)
    other.predefined_split = leave_one_out(ds.interactions, seed=1)
    other.predefined_split.train.timestamp[0] += 1  # the split's own copy of the data
    assert other.fingerprint() != with_split.fingerprint()
