"""Tests of MovieLens loading (movierec.data.releases/download/parse/cache/load): parsing every layout, errors
with file+line, the cache, locating, fetching (without a network) and importing."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from movierec.data import cache as data_cache
from movierec.data import download, parse, releases
from movierec.data.load import load_catalog, load_dataset
from movierec.errors import DataError, MovieRecError, UnknownDatasetError

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"


pytestmark = pytest.mark.usefixtures("cache")  # a fresh cache per test (tests/data/conftest.py)


def write_csv_release(folder: Path, ratings: str | None = None, movies: str | None = None) -> Path:
    """A tiny csv-layout folder (ratings.csv + movies.csv)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        ratings if ratings is not None else
        RATINGS_HEADER + "1,10,4.0,100\n1,20,3.5,101\n2,10,5.0,102\n3,30,1.0,103\n",
        newline="",
    )
    (folder / "movies.csv").write_text(
        movies if movies is not None else
        'movieId,title,genres\n10,"Movie, The (1999)",Drama|Comedy\n20,Other (2001),Action\n'
        "30,No Year,(no genres listed)\n",
        newline="",
    )
    return folder


def parsed_entries(cache: Path) -> list[str]:
    p = cache / "parsed"
    return sorted(x.name for x in p.iterdir()) if p.exists() else []


# ------------------------------------------------------------------------------------------ real copies


def test_ml_latest_small(shared_data_dir: Path) -> None:
    ds = load_dataset(shared_data_dir / "ml-latest-small")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_836, 610, 9_724)
    it = ds.interactions
    assert it.user.dtype == np.int32 and it.item.dtype == np.int32
    assert it.rating.dtype == np.float32 and it.timestamp.dtype == np.int64
    assert set(np.unique(it.rating).tolist()) == {x / 2 for x in range(1, 11)}
    movies = ds.catalog.movies
    assert len(movies) == 9_742
    row = movies.loc[movies.movieId == 11].iloc[0]
    assert row.title == "American President, The" and row.year == 1995
    assert row.genres == ["Comedy", "Drama", "Romance"]  # CRLF stripped from the last field
    assert row.imdbId == "0112346" and row.tmdbId == 9087
    babylon = movies.loc[movies.movieId == 40697].iloc[0]
    assert babylon.title == "Babylon 5" and np.isnan(babylon.year)
    trailing = movies.loc[movies.movieId == 27008].iloc[0]  # "... (1999) " with a trailing space
    assert trailing.year == 1999 and trailing.title.endswith("Money")
    assert len(ds.catalog.tags) == 3_683
    assert ds.catalog.users is None and ds.catalog.genome_scores is None


def test_ml_1m_latin1_with_tiny_ratings(shared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data" / "ml-1m"
    folder.mkdir(parents=True)
    for f in ("movies.dat", "users.dat"):
        shutil.copy(shared_data_dir / "ml-1m" / f, folder / f)
    (folder / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1::73::3::978302109\n2::3086::4::978298413\n")
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(tmp_path / "data"))
    ds = load_dataset("ml-1m", fetch_missing=False)  # found through MOVIEREC_DATA_DIR
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (3, 2, 3)
    movies = ds.catalog.movies
    assert len(movies) == 3_883
    mis = movies.loc[movies.movieId == 73].iloc[0]
    assert mis.title == "Misérables, Les" and mis.year == 1995 and mis.genres == ["Drama", "Musical"]
    assert movies.loc[movies.movieId == 582].iloc[0].title == "Metisse (Café au Lait)"
    assert movies.loc[movies.movieId == 3086].iloc[0].year == 1934
    users = ds.catalog.users
    assert len(users) == 6_040 and list(users.columns) == ["userId", "gender", "age", "occupation", "zip"]
    first = users.iloc[0]
    assert (first.gender, first.age, first.occupation, first.zip) == ("F", 1, "K-12 student", "48067")
    # the same folder loaded as a path (encoding detected: not utf-8, so latin-1)
    ds2 = load_dataset(folder)
    assert ds2.catalog.movies.loc[ds2.catalog.movies.movieId == 73].iloc[0].title == "Misérables, Les"


def test_ml_20m_catalog_only(shared_data_dir: Path) -> None:
    cat = load_catalog(shared_data_dir / "ml-20m")
    m = cat.movies
    assert len(m) == 27_278
    assert list(m.columns) == ["movieId", "title", "year", "genres", "imdbId", "tmdbId"]
    bbt = m.loc[m.movieId == 108548].iloc[0]
    assert bbt.title == "Big Bang Theory, The" and bbt.year == 2007
    assert m.loc[m.movieId == 107434].iloc[0].year == 2009  # "(2009– )"
    assert m.tmdbId.isna().sum() > 0  # some links have no tmdbId
    assert "Drama" in cat.genre_names
    with pytest.raises(DataError, match=r"ratings\.csv not found in"):
        load_dataset(shared_data_dir / "ml-20m")


def test_ml_25m_genome_tags_and_links(shared_data_dir: Path) -> None:
    spec = releases.LAYOUTS["csv"]["genome_tags"]
    t = parse.read_table(shared_data_dir / "ml-25m" / "genome-tags.csv", spec)
    assert t.num_rows == 1_128 and t.column("tag")[0].as_py() == "007"


# ------------------------------------------------------------------------------------------ ml-100k


def write_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t878542960\n")
    flags = ["0"] * 19
    toy = flags.copy()
    toy[3] = toy[4] = toy[5] = "1"  # Animation, Children's, Comedy
    unknown = flags.copy()
    unknown[0] = "1"
    lines = [
        "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)",
                  *toy]),
        "|".join(["2", "Misérables, Les (1995)", "01-Jan-1995", "", "", *flags[:8], "1", *flags[9:]]),
        "|".join(["3", "unknown", "", "", "", *unknown]),
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_ml_100k_layout(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    assert releases.detect_layout(folder) == "ml-100k"
    ds = load_dataset(folder)
    assert ds.name == "ml-100k" and len(ds.interactions) == 3
    assert ds.interactions.rating.tolist() == [5.0, 3.0, 4.0]
    m = ds.catalog.movies
    assert m.genres.tolist() == [["Animation", "Children's", "Comedy"], ["Drama"], ["(no genres listed)"]]
    assert m.title.tolist() == ["Toy Story", "Misérables, Les", "unknown"]
    assert m.year.tolist()[:2] == [1995, 1995] and np.isnan(m.year.iloc[2])
    assert ds.catalog.users.occupation.tolist() == ["technician", "other"]
    assert ds.catalog.users.age.tolist() == [24, 53]


# ------------------------------------------------------------------------------------------ errors


def test_malformed_rating_names_file_and_line(tmp_path: Path) -> None:
    ratings = RATINGS_HEADER + "1,10,4.0,100\n1,20,3.5,101\n2,10,5.0,102\n3,30,abc,103\n3,10,1,1\n"
    folder = write_csv_release(tmp_path / "bad", ratings=ratings)
    with pytest.raises(DataError) as e:
        load_dataset(folder)
    msg = str(e.value)
    assert "ratings.csv, line 5" in msg and "'abc' is not a number" in msg and "3,30,abc,103" in msg
    assert e.value.line == 5 and "\n" not in msg


def test_wrong_field_count_counts_blank_lines_and_crlf(tmp_path: Path) -> None:
    ratings = RATINGS_HEADER + "1,10,4.0,100\r\n\r\n1,20,3.5,101\r\n\n2,10,5\r\n3,30,abc,103\r\n"
    folder = write_csv_release(tmp_path / "bad", ratings=ratings)
    with pytest.raises(DataError, match=r"ratings.csv, line 6: expected 4 fields, found 3: '2,10,5'"):
        load_dataset(folder)


def test_malformed_dat_line_and_non_numeric_id(tmp_path: Path) -> None:
    folder = tmp_path / "dat"
    folder.mkdir()
    rows = [f"{u}::{i}::4::97830{u}" for u in range(1, 4000) for i in (1, 2)]
    rows[2999] = "x7::1::4::978300760"  # line 3000
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(folder)
    assert e.value.line == 3000 and "ratings.dat" in str(e.value)
    assert "column userId: 'x7' is not an integer: 'x7::1::4::978300760'" in str(e.value)


def test_empty_required_field(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "bad", ratings=RATINGS_HEADER + "1,10,4.0,100\n,20,3.5,101\n")
    with pytest.raises(DataError, match=r"line 3: column userId: empty"):
        load_dataset(folder)


def test_long_line_is_truncated(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "bad", ratings=RATINGS_HEADER + "1,10,4.0,100\n1,2," + "9" * 500 + "x,1\n")
    with pytest.raises(DataError) as e:
        load_dataset(folder)
    assert len(str(e.value)) < 250 and "..." in str(e.value) and e.value.line == 3


def test_wrong_header(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "bad", ratings="user,item,rating,timestamp\n1,10,4.0,100\n")
    with pytest.raises(DataError) as e:
        load_dataset(folder)
    msg = str(e.value)
    assert "line 1" in msg and "expected userId,movieId,rating,timestamp" in msg and "found user,item" in msg


def test_header_case_insensitive(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "ok", ratings="userid,movieid,rating,timestamp\n1,10,4.0,100\n")
    assert len(load_dataset(folder).interactions) == 1


def test_missing_file(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "nomovies")
    (folder / "ratings.csv").unlink()
    with pytest.raises(DataError, match=r"ratings.csv not found in .*nomovies"):
        load_dataset(folder)


def test_unknown_dataset_lists_releases() -> None:
    with pytest.raises(UnknownDatasetError) as e:
        load_dataset("ml-3m")
    assert "ml-100k" in str(e.value) and "ml-latest-small" in str(e.value)


def test_not_a_movielens_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MovieLens files"):
        load_dataset(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ cache


def test_cache_hit_does_not_parse(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_csv_release(tmp_path / "small")
    first = load_dataset(folder)
    assert len(parsed_entries(cache)) == 2  # ratings + catalogue

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(parse, "read_table", boom)
    second = load_dataset(folder)
    for f in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(first.interactions, f), getattr(second.interactions, f))
    np.testing.assert_array_equal(first.items.ids, second.items.ids)
    assert second.catalog.movies.title.tolist() == ["Movie, The", "Other", "No Year"]
    assert second.catalog.movies.genres.tolist()[0] == ["Drama", "Comedy"]


def test_cache_invalidated_when_source_changes(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "small")
    assert len(load_dataset(folder).interactions) == 4
    with open(folder / "ratings.csv", "a") as f:
        f.write("4,20,2.0,104\n")
    ds = load_dataset(folder)
    assert len(ds.interactions) == 5 and ds.n_users == 4


def test_interrupted_cache_write_leaves_nothing(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_csv_release(tmp_path / "small")
    real = data_cache._write_parquet
    calls = {"n": 0}

    def crash_on_second(table: pa.Table, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing the entry
        real(table, path)

    monkeypatch.setattr(data_cache, "_write_parquet", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(folder)
    assert parsed_entries(cache) == []  # no entry and no temporary leftovers
    monkeypatch.setattr(data_cache, "_write_parquet", real)
    parses = {"n": 0}
    real_read = parse.read_table

    def counting(*a: object, **k: object) -> pa.Table:
        parses["n"] += 1
        return real_read(*a, **k)

    monkeypatch.setattr(parse, "read_table", counting)
    assert len(load_dataset(folder).interactions) == 4
    assert parses["n"] >= 1  # parsed again: nothing half-written was trusted


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    folder = write_csv_release(tmp_path / "small")
    load_dataset(folder)
    for entry in (cache / "parsed").iterdir():
        for f in entry.glob("*.parquet"):
            f.write_bytes(b"garbage")
    assert len(load_dataset(folder).interactions) == 4


# ------------------------------------------------------------------------------------------ locating


def test_data_dir_search_and_zip_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    folder = b / "ml-10M100K"  # the folder inside ml-10m.zip
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n")
    (folder / "movies.dat").write_text("122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action\n")
    (folder / "tags.dat").write_text("15::4973::excellent!::1215184630\n")
    assert releases.find_release_dir("ml-10m") is None
    monkeypatch.setenv("MOVIEREC_DATA_DIR", os.pathsep.join([str(a), str(b)]))
    assert releases.find_release_dir("ml-10m") == folder.resolve()
    ds = load_dataset("ml-10m", fetch_missing=False)
    assert ds.name == "ml-10m" and ds.interactions.rating.tolist() == [5.0, 4.5]
    assert ds.catalog.tags.tag.tolist() == ["excellent!"]
    assert ds.catalog.movies.title.tolist() == ["Boomerang", "Net, The"]
    listed = {r["name"]: r for r in releases.list_releases()}
    assert listed["ml-10m"]["location"] == str(folder.resolve())
    assert listed["ml-25m"]["location"] == "not downloaded"
    assert set(releases.RELEASES) <= set(listed)


def test_not_local_without_fetch() -> None:
    with pytest.raises(MovieRecError, match="movierec data fetch ml-1m"):
        load_dataset("ml-1m", fetch_missing=False)


def test_detect_layout_and_import(tmp_path: Path) -> None:
    csv = write_csv_release(tmp_path / "mine")
    assert releases.detect_layout(csv) == "csv"
    ncf = tmp_path / "ncf"
    ncf.mkdir()
    for s in ("train.rating", "test.rating", "test.negative"):
        (ncf / f"ml-1m.{s}").write_text("")
    assert releases.detect_layout(ncf) == "ncf"
    dat = tmp_path / "dat"
    dat.mkdir()
    (dat / "movies.dat").write_text("1::A (2000)::Drama\n")
    assert releases.detect_layout(dat) == "dat"

    assert releases.import_folder(csv) == "mine"
    assert releases.import_folder(csv, name="other") == "other"
    ds = load_dataset("mine")
    assert ds.name == "mine" and len(ds.interactions) == 4
    names = {r["name"]: r for r in releases.list_releases()}
    assert names["other"]["location"] == str(csv.resolve())
    # an imported name that is also a release name is found without a download
    assert releases.import_folder(csv, name="ml-latest-small") == "ml-latest-small"
    assert releases.find_release_dir("ml-latest-small") == csv.resolve()


def test_ncf_folder_is_delegated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import movierec.data.splits as splits

    ncf = tmp_path / "ncf"
    ncf.mkdir()
    for s in ("train.rating", "test.rating", "test.negative"):
        (ncf / f"x.{s}").write_text("")
    seen = []
    monkeypatch.setattr(splits, "load_ncf_folder", lambda p: seen.append(Path(p)) or "sentinel")
    assert load_dataset(ncf) == "sentinel" and seen == [ncf.resolve()]


# ------------------------------------------------------------------------------------------ fetch


def test_fetch_without_network(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*a: object, **k: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(MovieRecError) as e:
        load_dataset("ml-100k")
    msg = str(e.value)
    assert "download of https://files.grouplens.org/datasets/movielens/ml-100k.zip failed" in msg
    assert "no network" in msg and "movierec data import PATH" in msg and "MOVIEREC_DATA_DIR" in msg
    assert "\n" not in msg
    assert not any((cache / "releases").iterdir())  # no partial download left


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _zip_of(folder: Path, inner: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"{inner}/{f.name}")
    return buf.getvalue()


def test_fetch_verifies_and_extracts(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zip_of(write_csv_release(tmp_path / "src"), "ml-latest-small")
    rel = releases.RELEASES["ml-latest-small"]
    served: list[str] = []

    def serve(url: str, timeout: float = 0) -> _FakeResponse:
        served.append(url)
        if url.endswith(".md5"):
            return _FakeResponse(f"{hashlib.md5(data).hexdigest()}  ml-latest-small.zip\n".encode())
        return _FakeResponse(data)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    # a wrong pinned checksum: refused, nothing kept
    monkeypatch.setitem(releases.RELEASES, "ml-latest-small", dataclasses.replace(rel, sha256="0" * 64))
    with pytest.raises(MovieRecError, match="checksum mismatch"):
        download.fetch("ml-latest-small", progress=False)
    assert not any((cache / "releases").iterdir())
    # no pinned checksum: verified against the published .md5 file
    monkeypatch.setitem(releases.RELEASES, "ml-latest-small", dataclasses.replace(rel, sha256=None, md5=None))
    folder = download.fetch("ml-latest-small", progress=True)
    assert served[-1].endswith("ml-latest-small.zip.md5")
    assert folder == cache / "releases" / "ml-latest-small" and (folder / "ratings.csv").is_file()
    assert len(load_dataset("ml-latest-small").interactions) == 4
    assert [p.name for p in (cache / "releases").iterdir()] == ["ml-latest-small"]


def test_registry_consistency() -> None:
    assert set(releases.RELEASES) == {
        "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest"
    }
    ml10m = releases.RELEASES["ml-10m"]
    assert ml10m.url.endswith("/ml-10m.zip") and ml10m.folder == "ml-10M100K"
    for rel in releases.RELEASES.values():
        assert rel.url.startswith("https://files.grouplens.org/datasets/movielens/")
        assert rel.layout in releases.LAYOUTS
        assert rel.sha256 is None or len(rel.sha256) == 64
        assert rel.md5 is None or len(rel.md5) == 32


def test_split_title_year() -> None:
    titles = pa.array(["Toy Story (1995)", "Babylon 5", "Assembly (Ji jie hao) (2007) ", "Fawlty Towers (1975-1979)",
                       "Big Bang Theory, The (2007-)", "Diplomatic Immunity (2009– )", "1984 (1984)"])
    title, year = parse.split_title_year(titles)
    assert title.to_pylist() == ["Toy Story", "Babylon 5", "Assembly (Ji jie hao)", "Fawlty Towers",
                                 "Big Bang Theory, The", "Diplomatic Immunity", "1984"]
    assert year.to_pylist() == [1995, None, 2007, 1975, 2007, 2009, 1984]
