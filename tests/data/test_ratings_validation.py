"""Ratings are validated when parsed: out-of-scale ratings, negative timestamps and repeated (user, movie)
pairs stop the load with one line naming the file and line, before anything is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.data import load_dataset
from movierec.errors import DataError

GOOD = ["1,1,4.0,964982703", "1,3,4.0,964981247", "2,1,3.5,964982224", "2,6,5.0,964983815", "3,3,0.5,964982931"]


def _csv(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize(("bad", "message"), [
    ("4,1,42,964982703", "line 5: rating 42 is outside the MovieLens scale 0.5-5"),
    ("4,1,-1,964982703", "line 5: rating -1 is outside"),
    ("4,1,inf,964982703", "line 5: rating inf is outside"),
    ("4,1,0,964982703", "line 5: rating 0 is outside"),
    ("4,1,3.0,-5", "line 5: timestamp -5 is negative"),
    # the pair (2, 6) comes back on line 6, after this row (line 5)
    ("2,6,4.0,964999999", r"line 6: user 2 rated movie 6 again \(first on line 5\)"),
])
def test_a_bad_rating_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    folder = _csv(tmp_path / "d", [*GOOD[:3], bad, *GOOD[3:]])  # the bad row is line 5 (after the header)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(str(folder))
    assert "ratings.csv" in str(e.value) and "\n" not in str(e.value)


def test_repeated_pairs_can_keep_the_latest_rating(tmp_path: Path) -> None:
    folder = _csv(tmp_path / "d", [*GOOD, "1,1,2.0,964999999", "1,1,1.0,1"])
    with pytest.warns(UserWarning, match="2 repeated"):
        ds = load_dataset(str(folder), duplicates="keep-latest")
    assert len(ds.interactions) == len(GOOD)
    u, i = ds.users.index(1)[0], ds.items.index(1)[0]
    mask = (ds.interactions.user == u) & (ds.interactions.item == i)
    assert ds.interactions.rating[mask].tolist() == [2.0]  # the latest timestamp, not the last line
    with pytest.raises(DataError, match="again"):  # the default still refuses: the option has its own cache entry
        load_dataset(str(folder))


def test_dat_files_are_checked_too(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n2::1::9::978301968\n")
    with pytest.raises(DataError, match=r"ratings.dat, line 3: rating 9 is outside"):
        load_dataset(str(folder))


def test_nothing_is_cached_for_a_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(tmp_path / "cache"))
    folder = _csv(tmp_path / "d", [*GOOD, "9,9,7,1"])
    with pytest.raises(DataError):
        load_dataset(str(folder))
    assert not any((tmp_path / "cache").rglob("*.parquet"))


def test_the_shared_releases_pass(mls) -> None:
    assert len(mls.interactions) == 100_836
    assert np.all((mls.interactions.rating >= 0.5) & (mls.interactions.rating <= 5))
