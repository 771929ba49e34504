"""Import checks shapes and names (issue 22, class 5): `movierec data import FILE` takes ids that are scalar strings
or integers only (a Parquet column of lists, structs, maps, bytes, booleans or dates is refused from its schema,
before any data is read; floats only where they are whole numbers; no empty, over-long or control-character ids),
checks the dataset name (length, characters, not a path, not a release's name), and reads the file in chunks so
that a junk file fails on its first chunk in bounded memory. Every failure is one line on stderr, exit code 2, and
leaves nothing behind (no imported folder, no registry entry, no cache entry). Synthetic data only."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from movierec.data import own
from tests.conftest import run_cli
from tests.data.test_import_and_list import write_folder

pytestmark = pytest.mark.usefixtures("cache")  # a fresh cache per test (tests/data/conftest.py)

IDS = ["u1", "u2", "u3"]


def import_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, path: Path, *extra: str,
                name: str = "shop", user: str = "u", item: str = "i") -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "data", "import", str(path), "--user", user, "--item", item, "--name", name,
                   *extra)


def assert_refused(code: int, out: str, err: str, pattern: str, cache: Path) -> None:
    """Exit 2, one line on stderr matching ``pattern``, and nothing written anywhere in the cache."""
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    imported = cache / "imported"
    assert not imported.exists() or not any(imported.iterdir()), list(imported.iterdir())
    assert not (cache / "imported.json").exists() and not (cache / "parsed").exists()


def parquet(path: Path, **columns: pa.Array | list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# ------------------------------------------------------------------------------------------ Parquet shapes


@pytest.mark.parametrize(("user", "words"), [
    (pa.array([[0, 1], [1, 1], [2, 1]]), r"lists \(list<element: int64>\)"),
    (pa.array([{"a": 1}, {"a": 2}, {"a": 3}]), r"structs \(struct<a: int64>\)"),
    (pa.array([[("k", 1)], [("k", 2)], [("k", 3)]], pa.map_(pa.string(), pa.int64())), r"maps \(map<string, int64.*\)"),
    (pa.array([b"C-1", b"C-2", b"C-3"]), r"bytes \(binary\)"),
    (pa.array([True, False, True]), r"true/false values \(bool\)"),
    (pa.array([dt.date(2024, 1, d) for d in (1, 2, 3)]), r"dates or times \(date32\[day\]\)"),
    (pa.array([1, 2, 3], pa.timestamp("s")), r"dates or times \(timestamp\[ms\]\)"),
    (pa.array([None, None, None], pa.null()), r"no values \(every row is empty\) \(null\)"),
    (pa.array([b"a", b"b", b"a"], pa.large_binary()), r"bytes \(large_binary\)"),
], ids=["lists", "structs", "maps", "bytes", "booleans", "dates", "timestamps", "nulls", "large-bytes"])
def test_a_parquet_id_column_of_another_shape_is_refused_from_its_schema(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, user: pa.Array,
        words: str) -> None:
    path = parquet(tmp_path / "events.parquet", u=user, i=["a", "b", "c"])

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read before the schema was checked")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_data)
    code, out, err = import_file(monkeypatch, capsys, path)
    assert_refused(code, out, err, rf"^error: {re.escape(str(path))}: column 'u' \(--user\) holds {words}; ids must be "
                                   r"strings or integers$", cache)


def test_an_item_column_of_lists_is_refused_too(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    path = parquet(tmp_path / "events.parquet", u=IDS, i=pa.array([["x"], ["y"], ["z"]]))
    assert_refused(*import_file(monkeypatch, capsys, path), r"column 'i' \(--item\) holds lists", cache)


@pytest.mark.parametrize(("column", "option", "values", "rule"), [
    ("r", "--rating", pa.array([[4.0], [3.0], [5.0]]), "ratings must be numbers"),
    ("r", "--rating", pa.array([True, False, True]), "ratings must be numbers"),
    ("t", "--timestamp", pa.array([{"s": 1}, {"s": 2}, {"s": 3}]), r"times must be numbers \(unix seconds\)"),
    ("t", "--timestamp", pa.array([1, 2, 3], pa.duration("s")), r"times must be numbers \(unix seconds\)"),
], ids=["rating-lists", "rating-booleans", "time-structs", "time-durations"])
def test_rating_and_time_columns_of_another_shape_are_refused(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, column: str,
        option: str, values: pa.Array, rule: str) -> None:
    path = parquet(tmp_path / "events.parquet", u=IDS, i=["a", "b", "c"], **{column: values})
    code, out, err = import_file(monkeypatch, capsys, path, option, column)
    assert_refused(code, out, err, rf"column '{column}' \({option}\) holds .*; {rule}", cache)


def test_float_ids_must_be_whole_numbers(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    path = parquet(tmp_path / "events.parquet", u=[1.0, 2.0, 2.5], i=["a", "b", "c"])
    assert_refused(*import_file(monkeypatch, capsys, path),
                   r"events\.parquet: user id 2\.5 in column 'u' \(--user\) is not a whole number \(row 3\)$", cache)
    path = parquet(tmp_path / "dec.parquet", u=IDS, i=pa.array([decimal.Decimal("7.00"), decimal.Decimal("7.25"),
                                                                None], pa.decimal128(6, 2)))
    assert_refused(*import_file(monkeypatch, capsys, path),
                   r"dec\.parquet: item id 7\.25 in column 'i' \(--item\) is not a whole number \(row 2\)$", cache)
    path = parquet(tmp_path / "nan.parquet", u=[1.0, None, 3.0], i=["a", "b", "c"])
    assert_refused(*import_file(monkeypatch, capsys, path),
                   r"nan\.parquet: empty user id in column 'u' \(--user\) \(row 2\)$", cache)


def test_whole_floats_decimals_and_dictionaries_are_ids(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    from movierec.data import load_dataset

    path = parquet(tmp_path / "events.parquet", u=[10.0, 20.0, 20.0, 30.0],
                   i=pa.array([decimal.Decimal(d) for d in ("5.00", "6.00", "7.00", "5.00")], pa.decimal128(6, 2)),
                   t=pa.array([dt.datetime(2024, 1, d) for d in (1, 2, 3, 4)], pa.timestamp("ms")),
                   c=pa.array(["x", "y", "x", "y"]).dictionary_encode())
    code, _, err = import_file(monkeypatch, capsys, path, "--timestamp", "t")
    assert code == 0, err
    info = json.loads((cache / "imported" / "shop" / "import.json").read_text())
    assert (info["user_ids"], info["item_ids"]) == ("integers, kept", "integers, kept")  # not labels "10.0"
    ds = load_dataset("shop")
    assert ds.users.ids.tolist() == [10, 20, 30] and ds.items.ids.tolist() == [5, 6, 7]
    assert sorted(ds.interactions.timestamp.tolist()) == [int(dt.datetime(2024, 1, d, tzinfo=dt.UTC).timestamp())
                                                          for d in (1, 2, 3, 4)]
    code, _, err = import_file(monkeypatch, capsys, path, name="cats", user="c")
    assert code == 0, err
    assert json.loads((cache / "imported" / "cats" / "import.json").read_text())["user_ids"].startswith("mapped")
    assert load_dataset("cats").user_labels.tolist() == ["x", "y"]


@pytest.mark.parametrize(("items", "option", "pattern"), [
    ({"code": pa.array([b"a", b"b"]), "name": ["A", "B"]}, "--title",
     r"items\.parquet: column 'code' \(--item-id\) holds bytes \(binary\); ids must be strings or integers$"),
    ({"code": ["a", "b"], "name": pa.array([["A"], ["B"]])}, "--title",
     r"items\.parquet: column 'name' \(--title\) holds lists \(list<element: string>\); it must hold text$"),
    ({"code": ["a", "b"], "cats": pa.array([["x", "y"], ["z"]])}, "--genres",
     r"items\.parquet: column 'cats' \(--genres\) holds lists"),
    ({"code": ["a", "\x00b"], "name": ["A", "B"]}, "--title",
     r"items\.parquet: item id '\\x00b' in column 'code' \(--item-id\) holds control characters .*\(row 2\)$"),
], ids=["id-bytes", "title-lists", "genre-lists", "id-control"])
def test_an_items_file_is_checked_the_same_way(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture, items: dict, option: str,
                                               pattern: str) -> None:
    events = parquet(tmp_path / "events.parquet", u=IDS, i=["a", "b", "a"])
    path = parquet(tmp_path / "items.parquet", **items)
    column = next(c for c in items if c != "code")
    code, out, err = import_file(monkeypatch, capsys, events, "--items", str(path), "--item-id", "code", option,
                                 column)
    assert_refused(code, out, err, pattern, cache)


# ------------------------------------------------------------------------------------------ values of ids


@pytest.mark.parametrize(("content", "pattern"), [
    (b"u,i\nu1,a\nu\x01x,b\n", r"events\.csv, line 3: user id 'u\\x01x' in column 'u' \(--user\) holds control "
                               r"characters"),
    (b'u,i\nu1,a\nu2,"b\nc"\n', r"events\.csv, line 3: item id 'b\\nc' in column 'i' \(--item\) holds control"),
    (b"u,i\nu1,a\nu2," + b"x" * 1001 + b"\n",
     r"events\.csv, line 3: item id 'xxxx.*\.\.\.' in column 'i' \(--item\) is 1,001 characters long \(at most "
     r"1,000\)$"),
    (b"u,i\nu1,a\nu2\n", r"events\.csv, line 3: cannot be read as a table separated by ',': expected 2 fields, "
                          r"found 1$"),
    (b"u,i\nu1,a\n\nu2,b,c\n", r"events\.csv, line 4: cannot be read as a table separated by ',': expected 2 fields, "
                               r"found 3$"),
    ("u,i\n1,2\n".encode("utf-16"), r"events\.csv, line 1: holds NUL bytes: binary data, or text in UTF-16"),
    (b"", r"events\.csv: empty file$"),
], ids=["control", "line-break", "too-long", "short-row", "long-row", "utf-16", "empty"])
def test_a_bad_id_or_row_names_file_line_and_column(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture, content: bytes,
                                                    pattern: str) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(content)
    assert_refused(*import_file(monkeypatch, capsys, path), pattern, cache)


def test_a_bad_value_in_a_later_chunk_names_its_own_line_and_row(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(own, "BLOCK_BYTES", 1 << 10)
    monkeypatch.setattr(own, "CHUNK_ROWS", 10)
    rows = [f"u{n},i{n}" for n in range(500)]
    rows[400] = "u400,"
    path = tmp_path / "events.csv"
    path.write_text("u,i\n" + "\n".join(rows) + "\n")
    assert_refused(*import_file(monkeypatch, capsys, path), r"events\.csv, line 402: empty item id", cache)
    frame = pa.table({"u": [f"u{n}" for n in range(95)], "i": [float(n) for n in range(94)] + [0.5]})
    pq.write_table(frame, tmp_path / "events.parquet", row_group_size=20)
    assert_refused(*import_file(monkeypatch, capsys, tmp_path / "events.parquet"),
                   r"item id 0\.5 in column 'i' \(--item\) is not a whole number \(row 95\)$", cache)


def test_a_line_longer_than_a_block_is_refused(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(own, "BLOCK_BYTES", 1 << 12)
    path = tmp_path / "events.csv"
    path.write_text("u,i\nu1,a\n" + "x" * 10_000 + "\n")
    assert_refused(*import_file(monkeypatch, capsys, path), r"events\.csv: cannot be read as a table separated by "
                                                            r"',': a line \(or a quoted value\) longer than", cache)
    path.write_text("u," + "i" * 10_000 + "\nu1,a\n")
    assert_refused(*import_file(monkeypatch, capsys, path), "longer than", cache)


def test_latin1_is_decoded_also_where_it_shows_late(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    from movierec.data import load_dataset

    monkeypatch.setattr(own, "BLOCK_BYTES", 1 << 10)  # the first blocks are ASCII: UTF-8 until the last one
    path = tmp_path / "events.csv"
    path.write_bytes(b"u,i\n" + b"".join(b"u%d,i%d\n" % (n, n) for n in range(300)) + "Zoë,café\n".encode("latin-1"))
    code, _, err = import_file(monkeypatch, capsys, path)
    assert code == 0, err
    ds = load_dataset("shop")
    assert "Zoë" in ds.user_labels.tolist() and "café" in ds.item_labels.tolist()


# ------------------------------------------------------------------------------------------ junk, bounded


def junk_csv(path: Path, size: int) -> Path:
    """``size`` bytes of random bytes shaped as a two-column CSV (no NUL), under a good header."""
    rnd = random.Random(0)
    allowed = bytes(b for b in range(1, 256) if b not in b',\n\r"')
    body = bytearray(rnd.choice(allowed) for _ in range(1 << 16))
    for pos in range(10, len(body) - 20, 24):
        body[pos], body[pos + 12] = ord(","), ord("\n")
    with open(path, "wb") as f:
        f.write(b"u,i\n")
        for _ in range(max(size // len(body), 1)):
            f.write(body)
    return path


def test_binary_junk_fails_on_its_first_chunk(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    batches: list[int] = []
    open_csv = pacsv.open_csv

    class Counting:
        def __init__(self, reader: pacsv.CSVStreamingReader) -> None:
            self.reader = reader

        def __iter__(self) -> Iterator[pa.RecordBatch]:
            for batch in self.reader:
                batches.append(batch.num_rows)
                yield batch

        def close(self) -> None:
            self.reader.close()

    monkeypatch.setattr(pacsv, "open_csv", lambda *a, **k: Counting(open_csv(*a, **k)))
    path = junk_csv(tmp_path / "events.csv", 8 << 20)
    assert_refused(*import_file(monkeypatch, capsys, path),
                   r"events\.csv, line 2: user id '.*' in column 'u' \(--user\) holds control characters", cache)
    assert len(batches) <= 2, batches  # 8 MB read in blocks of 1 MB: it stopped at the first


WRAP = """import resource, runpy, sys
sys.argv = ["movierec", *sys.argv[1:]]
try:
    runpy.run_module("movierec", run_name="__main__")
except SystemExit as e:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, e.code)
"""


def peak_kib(path: Path, cache: Path) -> int:
    """The peak memory (KiB) of `movierec data import PATH` in a fresh process, which must fail with exit code 2."""
    env = {**os.environ, "MOVIEREC_CACHE_DIR": str(cache)}
    env.pop("MOVIEREC_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", WRAP, "data", "import", str(path), "--user", "u", "--item", "i",
                        "--name", "junk"], capture_output=True, text=True, env=env, timeout=300)
    rss, code = r.stdout.split()
    assert code == "2" and "holds control characters" in r.stderr, r.stderr
    return int(rss)


@pytest.mark.e2e  # imports in subprocesses, to read their peak memory
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB (Linux)")
def test_a_failing_import_uses_memory_bounded_by_a_chunk_not_by_the_file(tmp_path: Path) -> None:
    small = peak_kib(junk_csv(tmp_path / "small.csv", 1 << 20), tmp_path / "c1")
    large = peak_kib(junk_csv(tmp_path / "large.csv", 32 << 20), tmp_path / "c2")
    assert large - small < 100 << 10, (small, large)  # loading 32 MB of junk whole took ~0.5 GB more


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(("name", "pattern"), [
    ("x" * 300, r"--name: invalid dataset name 'x{40}\.\.\.' \(300 characters; at most 64\)$"),
    ("x" * 65, r"\(65 characters; at most 64\)"),
    ("..", r"--name: invalid dataset name '\.\.' \(use letters, digits"),
    (".", r"invalid dataset name '\.'"),
    ("../escape", r"invalid dataset name '\.\./escape'"),
    ("a/b", r"invalid dataset name 'a/b'"),
    ("a\\b", r"invalid dataset name 'a\\\\b'"),
    (".hidden", r"invalid dataset name '\.hidden'"),
    ("-x", r"invalid dataset name '-x'"),
    ("my shop", r"invalid dataset name 'my shop'"),
    ("shop\n", r"invalid dataset name 'shop\\n'"),
    ("", r"invalid dataset name ''"),
    ("ml-1m", r"--name ml-1m: is the name of a MovieLens release"),
    ("ML-Latest-Small", r"--name ML-Latest-Small: is the name of a MovieLens release"),
], ids=["300-chars", "65-chars", "dotdot", "dot", "path", "slash", "backslash", "hidden", "option", "space",
        "newline", "empty", "release", "release-any-case"])
def test_an_invalid_name_is_refused_before_the_file_is_read(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, name: str,
        pattern: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text("u,i\nu1,a\n")
    monkeypatch.setattr(own, "_read_file", lambda *a: pytest.fail("read before the name was checked"))
    assert_refused(*import_file(monkeypatch, capsys, path, name=name), pattern, cache)


def test_a_name_of_64_characters_imports(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "events.csv"
    path.write_text("u,i\nu1,a\nu2,b\n")
    name = "A1._-" + "z" * 59
    code, out, err = import_file(monkeypatch, capsys, path, name=name)
    assert code == 0 and f"as {name}:" in out, err
    assert (cache / "imported" / name / "ratings.csv").is_file()


@pytest.mark.parametrize(("folder_name", "args", "pattern"), [
    ("my data", (), r"my data: the folder's name: invalid dataset name 'my data' .*; pass --name NAME$"),
    ("good", ("--name", "y" * 300), r"--name: invalid dataset name 'y{40}\.\.\.' \(300 characters"),
    ("good", ("--name", ""), r"--name: invalid dataset name ''"),
], ids=["folder-name", "long-name", "empty-name"])
def test_a_folder_import_checks_its_name(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture, folder_name: str, args: tuple[str, ...],
                                         pattern: str) -> None:
    folder = write_folder(tmp_path / folder_name)
    code, out, err = run_cli(monkeypatch, capsys, "data", "import", str(folder), *args)
    assert_refused(code, out, err, pattern, cache)


def test_a_folder_may_take_its_release_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    folder = write_folder(tmp_path / "ml-latest-small")
    code, out, err = run_cli(monkeypatch, capsys, "data", "import", str(folder))
    assert code == 0 and out.strip() == f"imported {folder} as ml-latest-small", err
