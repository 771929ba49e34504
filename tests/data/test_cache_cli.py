"""`movierec data cache list|clear`: fresh and stale parsed tables, last use, downloads kept."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from movierec.cli import app
from movierec.data.synthetic import write_synthetic

runner = CliRunner()


def cli_json(*args: str) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    return json.loads(r.output)


def test_list_and_clear(cache: Path, tmp_path: Path) -> None:
    from movierec.data import load_dataset

    folder = write_synthetic(tmp_path / "syn", 30, 40, 300, seed=1)
    load_dataset(str(folder))
    (cache / "releases" / "ml-100k").mkdir(parents=True)  # a downloaded release: never removed
    (cache / "releases" / "ml-100k" / "u.data").write_text("1\t1\t5\t1\n")
    entries = cli_json("data", "cache", "list")["entries"]
    parsed = [e for e in entries if e["kind"] != "download"]
    assert {e["kind"] for e in parsed} == {"ratings", "catalog"} and all(e["name"] == "syn" for e in parsed)
    assert all(e["status"] == "fresh" and e["size_bytes"] > 0 for e in parsed)
    assert [e["name"] for e in entries if e["kind"] == "download"] == ["ml-100k"]
    assert cli_json("data", "cache", "clear")["removed"] == []  # nothing stale yet

    ratings = folder / "ratings.csv"
    ratings.write_text(ratings.read_text() + "30,1,4.0,1000\n")  # the source changes
    status = {e["kind"]: e["status"] for e in cli_json("data", "cache", "list")["entries"]}
    assert status["ratings"] == f"stale: {ratings.resolve()} changed" and status["catalog"] == "fresh"
    removed = cli_json("data", "cache", "clear")
    assert [e["kind"] for e in removed["removed"]] == ["ratings"] and removed["freed_bytes"] > 0
    left = cli_json("data", "cache", "list")["entries"]
    assert {e["kind"] for e in left} == {"catalog", "download"}

    catalog = next(e for e in left if e["kind"] == "catalog")
    old = time.time() - 40 * 86400
    os.utime(Path(catalog["path"]) / "meta.json", (old, old))
    assert cli_json("data", "cache", "clear", "--older-than", "60")["removed"] == []
    assert [e["kind"] for e in cli_json("data", "cache", "clear", "--older-than", "30")["removed"]] == ["catalog"]
    assert (cache / "releases" / "ml-100k" / "u.data").is_file()


def test_reading_an_entry_marks_it_used(cache: Path, tmp_path: Path) -> None:
    from movierec.data import load_dataset

    folder = write_synthetic(tmp_path / "syn", 30, 40, 300, seed=1)
    load_dataset(str(folder))
    entry = next(e for e in cli_json("data", "cache", "list")["entries"] if e["kind"] == "ratings")
    old = time.time() - 10 * 86400
    os.utime(Path(entry["path"]) / "meta.json", (old, old))
    load_dataset(str(folder))  # a cache hit
    again = next(e for e in cli_json("data", "cache", "list")["entries"] if e["kind"] == "ratings")
    assert again["path"] == entry["path"] and again["age_days"] < 1


def test_clear_everything_and_bad_days(cache: Path, tmp_path: Path) -> None:
    from movierec.data import load_dataset
    from movierec.errors import MovieRecError

    load_dataset(str(write_synthetic(tmp_path / "syn", 30, 40, 300, seed=1)))
    assert len(cli_json("data", "cache", "clear", "--all")["removed"]) == 2
    r = runner.invoke(app, ["data", "cache", "clear", "--older-than", "-1"])
    assert isinstance(r.exception, MovieRecError) and "at least 0 days" in str(r.exception)
    r = runner.invoke(app, ["data", "cache", "list"])
    assert r.exit_code == 0 and "the cache is empty" in r.output


def _ratings_entry(cache: Path) -> Path:
    (entry,) = [p for p in (cache / "parsed").iterdir() if "-ratings-" in p.name]
    return entry


def test_a_flipped_bit_in_an_entry_is_never_served(cache: Path, tmp_path: Path) -> None:
    """The entry's bytes are checked against the digest meta.json recorded: a changed byte means a rebuild from
    the source (with a warning), and the ratings read are the source's (issue 22, class 3)."""
    import warnings

    import pytest

    from movierec.data import load_dataset

    folder = write_synthetic(tmp_path / "syn", 30, 40, 300, seed=1)
    first = load_dataset(str(folder)).fingerprint()
    parquet = _ratings_entry(cache) / "interactions.parquet"
    raw = bytearray(parquet.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit, in the middle of the data pages
    parquet.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="fails its integrity check"):
        again = load_dataset(str(folder)).fingerprint()
    assert again == first
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt entry passes its check
        assert load_dataset(str(folder)).fingerprint() == first


def test_an_edit_that_keeps_size_and_mtime_is_seen(cache: Path, tmp_path: Path) -> None:
    """The key of a small source is its content: the same size and modification time with other bytes is
    another entry (issue 22, class 3)."""
    from movierec.data import load_dataset

    folder = write_synthetic(tmp_path / "syn", 30, 40, 300, seed=1)
    ratings = folder / "ratings.csv"
    before = load_dataset(str(folder)).fingerprint()
    st = ratings.stat()
    lines = ratings.read_text().splitlines(keepends=True)
    row = lines[1].split(",")
    row[2] = "1.0" if row[2] != "1.0" else "2.0"  # one rating, same width
    assert len(",".join(row)) == len(lines[1])
    ratings.write_text(lines[0] + ",".join(row) + "".join(lines[2:]))
    os.utime(ratings, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ratings.stat().st_size == st.st_size and ratings.stat().st_mtime_ns == st.st_mtime_ns
    after = load_dataset(str(folder)).fingerprint()
    assert after != before
    assert len(list((cache / "parsed").glob("*-ratings-*"))) == 2
