"""Issue 10: `data import` parses and validates at import; `data list` and `data fetch` say what a local copy
holds (complete, catalogue only) and never claim a release is there without its ratings. No network: the
download is monkeypatched to serve zip files built here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import urllib.error
import zipfile
from pathlib import Path

import pytest

from movierec.data import cache as data_cache
from movierec.data import download, releases
from movierec.data.load import load_catalog, load_dataset
from movierec.errors import DataError, MovieRecError
from tests.conftest import run_cli

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
GOOD_RATINGS = RATINGS_HEADER + "1,10,4.0,100\n1,20,3.5,101\n2,10,5.0,102\n3,30,1.0,103\n"
GOOD_MOVIES = ('movieId,title,genres\n10,"Movie, The (1999)",Drama|Comedy\n20,Other (2001),Action\n'
               "30,No Year,(no genres listed)\n")


pytestmark = pytest.mark.usefixtures("cache")  # a fresh cache per test (tests/data/conftest.py)


def write_folder(folder: Path, ratings: str | None = GOOD_RATINGS, movies: str | None = GOOD_MOVIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if ratings is not None:
        (folder / "ratings.csv").write_text(ratings, newline="")
    if movies is not None:
        (folder / "movies.csv").write_text(movies, newline="")
    return folder


def parsed_kinds(cache: Path) -> list[str]:
    p = cache / "parsed"
    return sorted(x.name.split("-")[1] for x in p.iterdir()) if p.exists() else []




# ------------------------------------------------------------------------------------------ import


def test_import_parses_validates_and_caches(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    folder = write_folder(tmp_path / "mine")
    code, out, err = run_cli(monkeypatch, capsys, "data", "import", str(folder))
    assert code == 0, err
    assert out.strip() == f"imported {folder} as mine"
    assert releases.imported()["mine"] == {"path": str(folder.resolve()), "layout": "csv"}
    assert parsed_kinds(cache) == ["catalog", "ratings"]  # parsed and cached at import
    assert releases.folder_status(folder)["status"] == "complete"
    before = sorted((cache / "parsed").iterdir())
    assert len(load_dataset(folder).interactions) == 4
    assert sorted((cache / "parsed").iterdir()) == before  # first use of the folder reads the import's cache
    assert len(load_dataset("mine").interactions) == 4


@pytest.mark.parametrize(("ratings", "movies", "bad_file", "line", "what"), [
    (RATINGS_HEADER + "1,10,4.0,100\n1,20,9.0,101\n", GOOD_MOVIES, "ratings.csv", 3, "outside"),
    (RATINGS_HEADER + "1,10,4.0,100\n1,20,3.0,-5\n", GOOD_MOVIES, "ratings.csv", 3, "timestamp"),
    (RATINGS_HEADER + "1,10,4.0,100\n2,20,3.0,101\n1,10,5.0,102\n", GOOD_MOVIES, "ratings.csv", 4, "again"),
    (RATINGS_HEADER + "1,10,4.0,100\n1,20,oops,101\n", GOOD_MOVIES, "ratings.csv", 3, ""),
    (GOOD_RATINGS, "movieId,title,genres\n10,A (1999),Drama\nnot-a-number,B,Action\n", "movies.csv", 3, ""),
    (None, "movieId,title,genres\n10,A (1999),Drama\nnot-a-number,B,Action\n", "movies.csv", 3, ""),
], ids=["rating-range", "negative-timestamp", "repeated-pair", "malformed-rating", "bad-movies",
        "bad-catalogue-only"])
def test_a_bad_file_is_reported_at_import_and_nothing_is_registered(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        ratings: str | None, movies: str, bad_file: str, line: int, what: str) -> None:
    assert run_cli(monkeypatch, capsys, "data", "import", str(write_folder(tmp_path / "good")))[0] == 0
    registry = (cache / "imported.json").read_bytes()
    folder = write_folder(tmp_path / "bad", ratings, movies)
    code, out, err = run_cli(monkeypatch, capsys, "data", "import", str(folder), "--name", "bad")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {folder.resolve() / bad_file}, line {line}: "), err
    if what:
        assert what in err
    assert "bad" not in releases.imported()
    assert (cache / "imported.json").read_bytes() == registry  # the registry is untouched


def test_import_checks_the_name_before_parsing(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    folder = write_folder(tmp_path / "x")
    code, _, err = run_cli(monkeypatch, capsys, "data", "import", str(folder), "--name", " spaced")
    assert code == 2 and "invalid dataset name" in err
    assert parsed_kinds(cache) == [] and releases.imported() == {}
    with pytest.raises(DataError, match="no MovieLens files"):
        releases.import_target(tmp_path)


def test_a_catalogue_only_folder_imports_as_catalogue_only(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "cat", ratings=None)
    assert releases.import_folder(folder, name="cat") == "cat"  # the registry alone (the CLI parses first)
    st = releases.folder_status(folder)
    assert st == {"status": "catalogue only (no ratings file)", "path": str(folder), "missing": ["ratings.csv"]}
    row = {r["name"]: r for r in releases.list_releases()}["cat"]
    assert row["status"] == "catalogue only (no ratings file)" and row["missing"] == ["ratings.csv"]
    assert load_catalog("cat").movies.title.tolist() == ["Movie, The", "Other", "No Year"]
    with pytest.raises(DataError, match=r"ratings\.csv not found"):
        load_dataset("cat")


def test_cli_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    good = write_folder(tmp_path / "good")
    code, out, _ = run_cli(monkeypatch, capsys, "data", "import", str(good), "--name", "g")
    assert code == 0 and out.strip() == f"imported {good} as g"
    cat = write_folder(tmp_path / "cat", ratings=None)
    code, out, _ = run_cli(monkeypatch, capsys, "data", "import", str(cat))
    assert code == 0 and out.strip() == f"imported {cat} as cat: catalogue only, no ratings.csv"
    bad = write_folder(tmp_path / "bad", RATINGS_HEADER + "1,10,4.0,100\n1,20,7.5,101\n")
    code, out, err = run_cli(monkeypatch, capsys, "data", "import", str(bad))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {bad / 'ratings.csv'}, line 3: ")
    assert set(releases.imported()) == {"g", "cat"}


# ------------------------------------------------------------------------------------------ list


def test_list_says_what_each_local_copy_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    write_folder(data / "ml-latest-small")  # complete
    write_folder(data / "ml-20m", ratings=None)  # catalogue only
    (data / "ml-25m").mkdir()
    (data / "ml-25m" / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")  # neither file
    dat = data / "ml-1m"
    dat.mkdir()
    (dat / "movies.dat").write_text("1::A (2000)::Drama\n")
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(data))
    rows = {r["name"]: r for r in releases.list_releases()}
    assert rows["ml-latest-small"] | {"description": ""} == {
        "name": "ml-latest-small", "description": "", "size": "978.2 KB", "status": "complete",
        "path": str((data / "ml-latest-small").resolve()), "missing": [],
        "location": str((data / "ml-latest-small").resolve()),
    }
    assert (rows["ml-20m"]["status"], rows["ml-20m"]["missing"]) == ("catalogue only (no ratings file)",
                                                                      ["ratings.csv"])
    assert rows["ml-20m"]["path"] == str((data / "ml-20m").resolve())
    assert (rows["ml-1m"]["status"], rows["ml-1m"]["missing"]) == ("catalogue only (no ratings file)",
                                                                    ["ratings.dat"])
    assert rows["ml-25m"]["status"] == "incomplete (no ratings or movies file)"
    assert rows["ml-25m"]["missing"] == ["ratings.csv", "movies.csv"]
    assert rows["ml-100k"] | {"description": ""} == {
        "name": "ml-100k", "description": "", "size": "4.9 MB", "status": "not downloaded", "path": None,
        "missing": ["u.data", "u.item"], "location": "not downloaded",
    }

    code, out, _ = run_cli(monkeypatch, capsys, "data", "list", "--json")
    assert code == 0
    assert {r["name"]: r["status"] for r in json.loads(out)}["ml-20m"] == "catalogue only (no ratings file)"
    code, out, _ = run_cli(monkeypatch, capsys, "data", "list")
    assert code == 0
    line = next(x for x in out.splitlines() if "ml-20m " in x)
    assert "catalogue only (no ratings file)" in line and str(data / "ml-20m") in line
    line = next(x for x in out.splitlines() if "ml-latest-small " in x)
    assert "complete" in line and "catalogue" not in line


def test_list_shows_a_missing_imported_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "gone")
    releases.import_folder(folder)
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    row = {r["name"]: r for r in releases.list_releases()}["gone"]
    assert row["status"] == "missing" and row["location"] == f"missing: {folder}"


# ------------------------------------------------------------------------------------------ fetch


def zip_of(files: dict[str, str], inner: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{inner}/{name}", text)
    return buf.getvalue()


def serve_zip(monkeypatch: pytest.MonkeyPatch, name: str, data: bytes) -> list[str]:
    """Make download._download write ``data`` and pin release ``name``'s sha256 to it."""
    served: list[str] = []

    def fake_download(url: str, dest: Path, progress: bool, total_hint: int | None) -> tuple[str, str]:
        served.append(url)
        Path(dest).write_bytes(data)
        return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()

    monkeypatch.setattr(download, "_download", fake_download)
    rel = releases.RELEASES[name]
    monkeypatch.setitem(releases.RELEASES, name, dataclasses.replace(rel, sha256=hashlib.sha256(data).hexdigest()))
    return served


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*a: object, **k: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "_download", fail)


@pytest.mark.parametrize(("files", "missing"), [
    ({"movies.csv": GOOD_MOVIES, "links.csv": "movieId,imdbId,tmdbId\n"}, "no ratings.csv"),
    ({"ratings.csv": GOOD_RATINGS}, "no movies.csv"),
    ({"README.txt": "hello"}, "no ratings.csv and no movies.csv"),
])
def test_fetch_verifies_the_extracted_files(cache: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str],
                                            missing: str) -> None:
    serve_zip(monkeypatch, "ml-latest-small", zip_of(files, "ml-latest-small"))
    with pytest.raises(DataError) as e:
        download.fetch("ml-latest-small", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and missing in msg and "nothing was kept" in msg
    assert not any((cache / "releases").iterdir())  # no partial release, no leftover zip
    assert releases.release_status("ml-latest-small")["status"] == "not downloaded"


def test_fetch_extracts_a_complete_release(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = serve_zip(monkeypatch, "ml-latest-small",
                       zip_of({"ratings.csv": GOOD_RATINGS, "movies.csv": GOOD_MOVIES}, "ml-latest-small"))
    folder = download.fetch("ml-latest-small", progress=False)
    assert folder == data_cache.releases_dir() / "ml-latest-small" and len(served) == 1
    assert releases.release_status("ml-latest-small") == {"status": "complete", "path": str(folder.resolve()),
                                                          "missing": []}
    assert download.fetch("ml-latest-small", progress=False) == folder.resolve() and len(served) == 1


def test_fetch_does_not_stop_at_a_catalogue_only_copy(tmp_path: Path, cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_folder(data / "ml-latest-small", ratings=None)
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(data))
    assert releases.release_status("ml-latest-small")["status"] == "catalogue only (no ratings file)"
    # without a network: an error naming the catalogue-only folder, not a success
    offline(monkeypatch)
    with pytest.raises(MovieRecError) as e:
        download.fetch("ml-latest-small", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{(data / 'ml-latest-small').resolve()} holds only the catalogue (no ratings.csv)" in msg
    assert "no network" in msg
    # the catalogue alone is still usable where only the catalogue is needed
    assert len(load_catalog("ml-latest-small", fetch_missing=False).movies) == 3
    # with one: the complete release is downloaded into the cache and found from then on
    serve_zip(monkeypatch, "ml-latest-small",
              zip_of({"ratings.csv": GOOD_RATINGS, "movies.csv": GOOD_MOVIES}, "ml-latest-small"))
    folder = download.fetch("ml-latest-small", progress=False)
    assert folder == data_cache.releases_dir() / "ml-latest-small" and (folder / "ratings.csv").is_file()
    assert releases.release_status("ml-latest-small")["path"] == str(folder.resolve())
    assert len(load_dataset("ml-latest-small").interactions) == 4


def test_cli_fetch(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> None:
    serve_zip(monkeypatch, "ml-latest-small", zip_of({"movies.csv": GOOD_MOVIES}, "ml-latest-small"))
    code, out, err = run_cli(monkeypatch, capsys, "data", "fetch", "ml-latest-small")
    assert code == 2 and err.count("\n") == 1 and "no ratings.csv" in err
    assert not any((cache / "releases").iterdir())

    data = tmp_path / "data"
    write_folder(data / "ml-latest-small", ratings=None)
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(data))
    offline(monkeypatch)
    code, out, err = run_cli(monkeypatch, capsys, "data", "fetch", "ml-latest-small")
    assert code == 2 and out == "" and err.count("\n") == 1 and "holds only the catalogue" in err

    serve_zip(monkeypatch, "ml-latest-small",
              zip_of({"ratings.csv": GOOD_RATINGS, "movies.csv": GOOD_MOVIES}, "ml-latest-small"))
    code, out, err = run_cli(monkeypatch, capsys, "data", "fetch", "ml-latest-small")
    assert code == 0, err
    assert out.strip() == f"ml-latest-small: {data_cache.releases_dir() / 'ml-latest-small'} (complete)"
