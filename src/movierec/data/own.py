"""Importing a firm's own interactions: a CSV or Parquet file of (user, item, rating?, timestamp?), optionally
with an items file of titles and genres, turned into a MovieLens "csv" layout folder that the rest of movierec
reads like any release.

:func:`import_interactions` checks the files (one-line :class:`~movierec.errors.DataError` naming the file, the
column and the line or row of the first offence), keeps the latest row of each repeated (user, item) pair, maps
string ids to integer codes 1..n (in sorted order of the strings, the originals kept in ``labels.parquet``), and
writes atomically::

    <cache_dir>/imported/<NAME>/ratings.csv     userId,movieId,rating,timestamp
                                movies.csv      movieId,title,genres
                                labels.parquet  kind ("user" | "movie"), id (int64), label (str); only when
                                                some ids were mapped
                                import.json     source files, columns, implicit, has_timestamps, row counts

What a file must hold (checked before anything is written):

* ids are scalar strings or integers: a Parquet column of lists, structs, maps, bytes, booleans or dates is
  refused from its schema, before any data is read; floats and decimals are accepted only where every value is
  a whole number (then they are integers); an id is not empty, at most :data:`MAX_ID_CHARS` characters and
  holds no control characters (binary junk read as text fails on its first rows);
* ratings are numbers (0.5-5); times are unix seconds (up to the year 9999), ISO dates or datetimes, or
  Parquet dates/timestamps; an items file's titles and genres are text (or numbers);
* a CSV file is text: no NUL byte in its first 64 KiB (binary data, UTF-16), a header on its first line, every
  row with the header's number of fields, no line longer than :data:`BLOCK_BYTES`;
* :func:`validate_dataset_name`: a name is 1-64 letters, digits, '.', '_' and '-', starting with a letter or
  digit (it names a folder, a registry key and files such as ``NAME.train.rating``), and not a release's name.

The files are read in chunks (CSV: pyarrow's streaming reader in blocks of :data:`BLOCK_BYTES`, or pandas'
python engine in :data:`CHUNK_ROWS` rows for a separator of several characters; Parquet:
``ParquetFile.iter_batches`` after its schema is checked) and each chunk is checked as it comes, so a junk file
fails on its first bad chunk in bounded memory; only the checked id, rating and time columns of a good file are
kept. A CSV is UTF-8 (a BOM is skipped) or, where its wanted columns are not, latin-1 (read again from the top).

Implicit data (no rating column) gets rating 1.0 on every row; data without timestamps gets 0 on every row
(the leave-one-out split then takes the later row of a user as the latest). The caller registers the folder
(:func:`movierec.data.releases.import_folder`) once it has loaded it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.data.cache import cache_dir
from movierec.data.dataset import NO_GENRE
from movierec.data.releases import RELEASES, imported
from movierec.errors import DataError, MovieRecError
from movierec.fsutil import atomic_write_dir

LABELS_FILE = "labels.parquet"
IMPORT_FILE = "import.json"
IMPORT_FORMAT = "movierec-own-import"
MAX_NAME_CHARS = 64  # a dataset name: a folder name, a registry key, a prefix of file names
MAX_ID_CHARS = 1000  # an id: a label shown in recommendations (URLs fit, binary junk does not)
CHUNK_ROWS = 65_536  # rows per checked chunk (Parquet batches, pandas chunks)
BLOCK_BYTES = 1 << 20  # bytes per checked CSV block (pyarrow reads up to 32 ahead): a longer line is refused
_INT_ID = r"^(?:0|-?[1-9][0-9]{0,17})$"  # ids kept as integers ("-0" and "007" are labels)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTROL = r"[\x{0}-\x{1f}\x{7f}-\x{9f}\x{2028}\x{2029}]"  # C0/C1 controls and line separators (RE2)
_RATING_RANGE = (0.5, 5.0)  # what movierec's parser accepts (movierec.data.parse.RATING_RANGE)
_LATEST_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z
_RULES = {"id": "ids must be strings or integers", "rating": "ratings must be numbers",
          "timestamp": "times must be numbers (unix seconds), text (ISO dates) or Parquet dates or timestamps",
          "text": "it must hold text"}


@dataclass(frozen=True)
class OwnColumns:
    """Which columns of the files hold what (None: not given)."""

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None
    item_id: str | None = None  # in the items file; default: the interactions' item column name
    title: str | None = None
    genres: str | None = None


def imported_root() -> Path:
    """Where imported own data sets are written: ``<cache_dir>/imported``."""
    return cache_dir() / "imported"


# --------------------------------------------------------------------------------------------- names


def validate_dataset_name(name: str, *, own: bool = True, option: str = "--name", hint: str = "") -> str:
    """``name`` if it may name a dataset, else a one-line MovieRecError: 1 to :data:`MAX_NAME_CHARS` ASCII
    letters, digits, '.', '_' and '-', starting with a letter or digit (so never a path, '.', '..', a hidden
    file or an option). ``own``: the name of own data, which must not be a MovieLens release's name (in any
    case); a folder may be registered under its release's name. ``hint`` is added to the message."""
    shown = repr(name if len(name) <= 40 else name[:40] + "...")
    if len(name) > MAX_NAME_CHARS:
        raise MovieRecError(f"{option}: invalid dataset name {shown} ({len(name):,} characters; at most "
                            f"{MAX_NAME_CHARS}){hint}")
    if not _NAME.fullmatch(name):
        raise MovieRecError(f"{option}: invalid dataset name {shown} (use letters, digits, '.', '_' and '-', "
                            f"starting with a letter or digit){hint}")
    if own and name.lower() in {r.lower() for r in RELEASES}:
        raise MovieRecError(f"{option} {name}: is the name of a MovieLens release; choose another name")
    return name


# --------------------------------------------------------------------------------------------- column types


def _base_type(t: pa.DataType) -> pa.DataType:
    """The type of the values: through extension types' storage and dictionaries' values."""
    while True:
        if isinstance(t, pa.ExtensionType):
            t = t.storage_type
        elif pa.types.is_dictionary(t):
            t = t.value_type
        else:
            return t


def _accepts(role: str, t: pa.DataType) -> bool:
    number = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    dated = role == "timestamp" and (pa.types.is_timestamp(t) or pa.types.is_date(t))
    return number or text or dated


def _type_words(t: pa.DataType) -> str:
    """What a refused type holds, in words."""
    kinds = ((("is_list", "is_large_list", "is_fixed_size_list", "is_list_view", "is_large_list_view"), "lists"),
             (("is_struct",), "structs"), (("is_map",), "maps"), (("is_union",), "unions"),
             (("is_binary", "is_large_binary", "is_fixed_size_binary", "is_binary_view"), "bytes"),
             (("is_boolean",), "true/false values"), (("is_temporal",), "dates or times"),
             (("is_null",), "no values (every row is empty)"))
    for tests, words in kinds:
        if any(getattr(pa.types, test, lambda _: False)(t) for test in tests):
            return words
    return "values of another kind"


# --------------------------------------------------------------------------------------------- reading in chunks


@dataclass(frozen=True)
class _Want:
    """One column to read: the option that named it, the name asked for, and what it must hold."""

    option: str
    name: str
    role: str  # "id" | "rating" | "timestamp" | "text"
    kind: str = ""  # of an id: "user" or "item"


@dataclass(frozen=True)
class _Col:
    """A wanted column as found in a file."""

    want: _Want
    name: str
    path: Path
    is_csv: bool

    def at(self, row: int) -> tuple[Path, int | None, str]:
        """(path, line, suffix) of 0-based data row ``row``."""
        return _where(self.path, self.is_csv, row)


@dataclass
class _Read:
    """The checked columns of a file, by option, and its number of data rows."""

    path: Path
    is_csv: bool
    rows: int = 0
    parts: dict[str, list] = field(default_factory=dict)

    def text(self, option: str) -> pa.ChunkedArray:
        return pa.chunked_array(self.parts[option], type=pa.string())

    def numbers(self, option: str, dtype: type) -> np.ndarray:
        parts = self.parts[option]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


class _NotUtf8(Exception):
    """The CSV file is not UTF-8: read it again as latin-1."""


def _where(path: Path, is_csv: bool, row: int) -> tuple[Path, int | None, str]:
    """(path, line, suffix) of 0-based data row ``row``: a CSV's line (its header is line 1), else 'row N'."""
    return (path, row + 2, "") if is_csv else (path, None, f" (row {row + 1})")


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:160] + "...") if len(text) > 160 else text or type(e).__name__


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


class _Parquet:
    """A Parquet file: its schema is read (and its columns' types checked) before any data."""

    is_csv = False

    def __init__(self, path: Path) -> None:
        try:
            self.file = pq.ParquetFile(path)
            schema = self.file.schema_arrow
        except Exception as e:
            raise DataError(f"cannot be read as Parquet ({_why(e)})", path) from None
        self.path = path
        self.names = [str(n) for n in schema.names]
        self.types: dict[str, pa.DataType] | None = {str(f.name): f.type for f in schema}

    def batches(self, names: list[str]) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        offset = 0
        try:
            for batch in self.file.iter_batches(batch_size=CHUNK_ROWS, columns=names):
                yield offset, {n: batch.column(n) for n in names}
                offset += batch.num_rows
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"cannot be read as Parquet ({_why(e)}) after row {offset:,}", self.path) from None


class _ArrowCsv:
    """A CSV file with a one-byte separator, streamed by pyarrow in blocks of :data:`BLOCK_BYTES`. The wanted
    columns are read as bytes and decoded here, chunk by chunk, as UTF-8 (:class:`_NotUtf8` where they are not)
    or latin-1: pyarrow's own transcoding (``ReadOptions(encoding=...)``) runs Python's codecs on a reader
    thread, which aborts or hangs the interpreter at exit when a reader is left before its end (pyarrow 26; cf.
    apache/arrow#43892)."""

    is_csv = True
    types: dict[str, pa.DataType] | None = None

    def __init__(self, path: Path, sep: str, encoding: str) -> None:
        self.path, self.sep, self.encoding = path, sep, encoding
        self.names = self._header()

    def _header(self) -> list[str]:
        """The first line's fields, trimmed (csv quoting)."""
        with open(self.path, "rb") as f:
            first = f.readline(BLOCK_BYTES + 1)
        if len(first) > BLOCK_BYTES:
            raise _long_line(self.path, self.sep)
        if not first.strip(b"\r\n"):
            raise DataError("the first line is empty: expected a header naming the columns", self.path, 1)
        try:
            text = first.decode("utf-8-sig" if self.encoding == "utf8" else "latin-1")
        except UnicodeDecodeError:
            raise _NotUtf8 from None
        try:
            names = next(csv.reader([text.rstrip("\r\n")], delimiter=self.sep))
        except csv.Error as e:
            raise DataError(f"cannot be read as a table separated by {self.sep!r} ({_why(e)})", self.path, 1) from None
        return [n.strip() for n in names]

    def batches(self, names: list[str]) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        keys = [f"c{i}" for i in range(len(self.names))]
        key = {n: keys[self.names.index(n)] for n in names}
        read = pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False, column_names=keys, skip_rows=1)
        parse = pacsv.ParseOptions(delimiter=self.sep, newlines_in_values=True)
        convert = pacsv.ConvertOptions(
            column_types={k: pa.binary() for k in key.values()}, include_columns=list(key.values()),
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False)
        offset = 0
        with self._errors():
            reader = pacsv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)
            try:
                for batch in reader:
                    yield offset, {n: self._decode(batch.column(k)) for n, k in key.items()}
                    offset += batch.num_rows
            finally:
                reader.close()

    def _decode(self, raw: pa.Array) -> pa.Array:
        if self.encoding != "utf8":
            return _latin1(raw)
        try:
            return pc.cast(raw, pa.string())
        except pa.ArrowInvalid:
            raise _NotUtf8 from None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """pyarrow's errors as one-line DataErrors (naming the line where pyarrow tells the row)."""
        try:
            yield
        except pa.ArrowInvalid as e:
            raise _csv_error(self.path, self.sep, str(e)) from None
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"cannot be read ({_why(e)})", self.path) from None


def _latin1(raw: pa.Array) -> pa.Array:
    """A binary array (no nulls) decoded as latin-1, vectorised: each byte >= 0x80 becomes its two UTF-8 bytes."""
    offsets = np.frombuffer(raw.buffers()[1], np.int32)[raw.offset: raw.offset + len(raw) + 1]
    data = np.frombuffer(raw.buffers()[2], np.uint8) if raw.buffers()[2] is not None else np.zeros(0, np.uint8)
    data, offsets = data[offsets[0]: offsets[-1]], offsets - offsets[0]
    high = data >= 0x80
    out = np.repeat(data, 1 + high)
    first = np.cumsum(1 + high) - (1 + high)  # where each byte's UTF-8 starts in ``out``
    out[first[high]] = 0xC0 | (data[high] >> 6)
    out[first[high] + 1] = 0x80 | (data[high] & 0x3F)
    shift = np.concatenate([[0], np.cumsum(high)])[offsets]
    return pa.StringArray.from_buffers(len(raw), pa.py_buffer((offsets + shift).astype(np.int32)), pa.py_buffer(out))


def _csv_error(path: Path, sep: str, message: str) -> DataError:
    m = re.search(r"Row #(\d+)", message)
    line = _row_line(path, int(m.group(1))) if m else None
    fields = re.search(r"Expected (\d+) columns, got (\d+)", message)
    if fields:
        return DataError(f"cannot be read as a table separated by {sep!r}: expected {fields.group(1)} fields, found "
                         f"{fields.group(2)}", path, line)
    if "straddl" in message:
        return _long_line(path, sep)
    return DataError(f"cannot be read as a table separated by {sep!r} ({_why(message)})", path, line)


def _long_line(path: Path, sep: str) -> DataError:
    return DataError(f"cannot be read as a table separated by {sep!r}: a line (or a quoted value) longer than "
                     f"{BLOCK_BYTES >> 20} MB", path)


def _row_line(path: Path, row: int) -> int:
    """The file line of pyarrow's 1-based row ``row`` (blank lines are no rows); read line by line."""
    seen = 0
    with open(path, "rb") as f:
        for number, text in enumerate(f, 1):
            seen += bool(text.strip(b"\r\n"))
            if seen >= row:
                return number
    return row


class _PandasCsv:
    """A CSV file with a separator of several characters (or a regular expression): pandas' python engine, in
    chunks of :data:`CHUNK_ROWS` rows."""

    is_csv = True
    types: dict[str, pa.DataType] | None = None

    def __init__(self, path: Path, sep: str, encoding: str) -> None:
        self.path, self.sep = path, sep
        self.encoding = "utf-8-sig" if encoding == "utf8" else encoding
        with self._errors():
            header = pd.read_csv(path, nrows=0, **self._options())
        self.names = [str(c).strip() for c in header.columns]

    def _options(self) -> dict:
        return {"sep": self.sep, "dtype": str, "keep_default_na": False, "na_filter": False,
                "encoding": self.encoding, "engine": "python"}

    def batches(self, names: list[str]) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        offset = 0
        with self._errors(), pd.read_csv(self.path, chunksize=CHUNK_ROWS, **self._options()) as reader:
            for frame in reader:
                if not isinstance(frame.index, pd.RangeIndex):  # pandas made the rows' extra first field an index
                    raise DataError(f"cannot be read as a table separated by {self.sep!r}: the rows have more fields "
                                    f"than the header's {len(self.names)}", self.path, offset + 2)
                frame.columns = self.names
                yield offset, {n: pa.array(frame[n].to_numpy(dtype=object, na_value=""), pa.string()) for n in names}
                offset += len(frame)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except UnicodeDecodeError:
            if self.encoding == "latin-1":  # pragma: no cover - latin-1 decodes any byte
                raise
            raise _NotUtf8 from None
        except pd.errors.EmptyDataError:
            raise DataError("empty file", self.path) from None
        except (pd.errors.ParserError, ValueError, OSError, csv.Error) as e:
            why = _why(e)
            m = re.search(r"line (\d+)", why)
            raise DataError(f"cannot be read as a table separated by {self.sep!r} ({why})", self.path,
                            int(m.group(1)) if m else None) from None


_Stream = _Parquet | _ArrowCsv | _PandasCsv


def _check_file(path: Path, sep: str) -> None:
    """The file exists, is a file, and (a CSV) has a usable separator and holds no NUL byte near its start."""
    if not path.exists():
        raise DataError("not found", path)
    if not path.is_file():
        raise DataError("not a file", path)
    if _is_parquet(path):
        return
    if path.stat().st_size == 0:
        raise DataError("empty file", path)
    if not sep:
        raise MovieRecError("--sep must not be empty")
    if any(c in sep for c in '\r\n"'):
        raise MovieRecError(f"--sep {sep!r}: a separator cannot hold a line break or a quote")
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise DataError(f"cannot be read ({e.strerror})", path) from None
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError("holds NUL bytes: binary data, or text in UTF-16; save it as a UTF-8 CSV file", path,
                        head.count(b"\n", 0, nul) + 1)


def _open(path: Path, sep: str, encoding: str) -> _Stream:
    if _is_parquet(path):
        return _Parquet(path)
    if len(sep.encode("utf-8")) == 1:
        return _ArrowCsv(path, sep, encoding)
    return _PandasCsv(path, sep, encoding)


def _read_file(path: Path, sep: str, wants: list[_Want]) -> _Read:
    """The wanted columns of a CSV or Parquet file, each chunk checked as it is read (see the module docstring);
    a CSV that is not UTF-8 is read again as latin-1."""
    _check_file(path, sep)
    for encoding in ("utf8", "latin-1"):
        try:
            return _collect(_open(path, sep, encoding), wants)
        except _NotUtf8:
            continue
    raise AssertionError("unreachable: latin-1 decodes any byte")  # pragma: no cover


def _column(names: list[str], want: _Want, path: Path) -> str:
    """The file's column that ``want`` names: the exact name, else the only one equal ignoring case."""
    exact = names.count(want.name)
    if exact > 1:
        raise DataError(f"the header names the column {want.name!r} ({want.option}) {exact} times", path)
    if exact:
        return want.name
    lower = [c for c in names if c.lower() == want.name.lower()]
    if len(lower) == 1:
        return lower[0]
    raise DataError(f"no column {want.name!r} ({want.option}); the file has the columns {_header(names)}", path)


def _header(names: list[str]) -> str:
    """A header for a message: binary junk is named as such rather than printed."""
    text = ", ".join(names) or "none"
    if any(not c.isprintable() for c in text):
        return "(binary data, not a text header)"
    return text if len(text) <= 160 else text[:157] + "..."


def _collect(stream: _Stream, wants: list[_Want]) -> _Read:
    """Check the wanted columns' types (Parquet: from the schema), then read and check chunk by chunk."""
    cols = [_Col(w, _column(stream.names, w, stream.path), stream.path, stream.is_csv) for w in wants]
    if stream.types is not None:
        for c in cols:
            _check_type(stream.types[c.name], c)
    read = _Read(stream.path, stream.is_csv, parts={c.want.option: [] for c in cols})
    for offset, arrays in stream.batches(list(dict.fromkeys(c.name for c in cols))):
        for c in cols:
            read.parts[c.want.option].append(_CHECKS[c.want.role](arrays[c.name], c, offset))
        read.rows = offset + (len(next(iter(arrays.values()))) if arrays else 0)
    return read


def _check_type(t: pa.DataType, col: _Col) -> None:
    """Refuse a Parquet column whose type cannot hold what ``col`` must hold (lists, bytes, ...)."""
    if not _accepts(col.want.role, _base_type(t)):
        raise DataError(f"column {col.name!r} ({col.want.option}) holds {_type_words(_base_type(t))} ({t}); "
                        f"{_RULES[col.want.role]}", col.path)


# --------------------------------------------------------------------------------------------- checks of a chunk


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array of plain values: chunks combined, extension storage and dictionaries decoded."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _id_error(col: _Col, row: int, value: str, problem: str) -> DataError:
    p, line, suffix = col.at(row)
    return DataError(f"{col.want.kind} id {value} in column {col.name!r} ({col.want.option}) {problem}{suffix}", p,
                     line)


def _whole_floats(arr: pa.Array, col: _Col, offset: int) -> pa.Array:
    """Float ids as int64, where every value is a whole number (else a DataError naming the row)."""
    x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    valid = ~arr.is_null().to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(x) & (np.floor(x) == x) & (np.abs(x) < 2.0**63)
    bad = np.flatnonzero(valid & ~whole)
    if len(bad):
        raise _id_error(col, offset + int(bad[0]), repr(float(x[bad[0]])), "is not a whole number")
    return pa.array(np.where(valid, x, 0).astype(np.int64), mask=~valid)


def _whole_decimals(arr: pa.Array, col: _Col, offset: int) -> pa.Array:
    """Decimal ids with scale 0, where every value is a whole number (else a DataError naming the row)."""
    target = pa.decimal256(76, 0) if pa.types.is_decimal256(arr.type) else pa.decimal128(38, 0)
    try:
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = arr.to_pylist()
        row = next((i for i, v in enumerate(values) if v is not None and v != v.to_integral_value()), 0)
        raise _id_error(col, offset + row, str(values[row]), "is not a whole number") from None


def _shown(value: str, n: int = 40) -> str:
    return repr(value if len(value) <= n else value[:n] + "...")


def _id_values(values: pa.Array | pa.ChunkedArray, col: _Col, offset: int) -> pa.Array:
    """A chunk of ids as trimmed strings ("" for none): whole numbers, text of at most :data:`MAX_ID_CHARS`
    characters without control characters; the first offending row raises a DataError."""
    arr = _plain(values)
    if pa.types.is_floating(arr.type):
        arr = _whole_floats(arr, col, offset)
    elif pa.types.is_decimal(arr.type):
        arr = _whole_decimals(arr, col, offset)
    text = pc.utf8_trim_whitespace(pc.fill_null(pc.cast(arr, pa.string()), ""))
    checks = ((pc.equal(text, ""), "empty"), (pc.greater(pc.utf8_length(text), MAX_ID_CHARS), "long"),
              (pc.match_substring_regex(text, _CONTROL), "control"))
    bad = [(int(rows[0]), what) for mask, what in checks
           if len(rows := np.flatnonzero(mask.to_numpy(zero_copy_only=False)))]
    if bad:
        row, what = min(bad)
        raise _bad_id(col, offset + row, what, text[row].as_py())
    return text


def _bad_id(col: _Col, row: int, what: str, value: str) -> DataError:
    if what == "empty":
        p, line, suffix = col.at(row)
        return DataError(f"empty {col.want.kind} id in column {col.name!r} ({col.want.option}){suffix}", p, line)
    if what == "long":
        return _id_error(col, row, _shown(value), f"is {len(value):,} characters long (at most {MAX_ID_CHARS:,})")
    return _id_error(col, row, _shown(value), "holds control characters (binary data?)")


def _text_values(values: pa.Array | pa.ChunkedArray, col: _Col, offset: int) -> pa.Array:
    """A chunk of titles or genres as trimmed strings ("" for none)."""
    return pc.utf8_trim_whitespace(pc.fill_null(pc.cast(_plain(values), pa.string()), ""))


def _text(s: pd.Series) -> pd.Series:
    return s.map(lambda v: "" if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
                 else str(v)).str.strip()


def _series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    return _plain(values).to_pandas()


def _numbers(values: pd.Series) -> tuple[np.ndarray, pd.Series | None]:
    """(float64 values, NaN where a value is no number; the trimmed text, or None for a numeric column)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), None
    text = _text(values)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan), text


def _ratings(values: pa.Array | pa.ChunkedArray, col: _Col, offset: int) -> np.ndarray:
    series = _series(values)
    num, text = _numbers(series)
    bad = np.flatnonzero(~np.isfinite(num))
    if len(bad):
        p, line, suffix = col.at(offset + int(bad[0]))
        raise DataError(f"rating {_value_text(series, text, int(bad[0]))!r} is not a number{suffix}", p, line)
    lo, hi = _RATING_RANGE
    bad = np.flatnonzero((num < lo) | (num > hi))
    if len(bad):
        p, line, suffix = col.at(offset + int(bad[0]))
        raise DataError(f"rating {num[bad[0]]:g} is outside the scale {lo:g}-{hi:g} that movierec's models and "
                        f"reports use; rescale the ratings, or leave out --rating for implicit data{suffix}", p, line)
    return num.astype(np.float32)


def _value_text(series: pd.Series, text: pd.Series | None, row: int) -> str:
    """The value of ``row`` as the file has it (for a message)."""
    return text.iloc[row] if text is not None else _text(series.iloc[row: row + 1]).iloc[0]


def _time_numbers(series: pd.Series) -> tuple[np.ndarray, pd.Series | None]:
    """(seconds since the epoch as float64, NaN where a value is no number or date; the trimmed text, or None
    for a column of numbers or datetimes)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        utc = series.dt.tz_convert("UTC") if series.dt.tz is not None else series.dt.tz_localize("UTC")
        seconds = (utc - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan), None
    return _numbers(series)


def _timestamps(values: pa.Array | pa.ChunkedArray, col: _Col, offset: int) -> np.ndarray:
    """Seconds since the epoch: numbers as unix seconds, other values as ISO dates or datetimes (naive: UTC);
    from 1970 to the year 9999."""
    series = _series(values)
    num, text = _time_numbers(series)
    is_num = np.isfinite(num)
    limits = ((is_num & (num < 0), "is before 1970"), (is_num & (num > _LATEST_TIME), "is after the year 9999"))
    for bad, words in limits:
        rows = np.flatnonzero(bad)
        if len(rows):
            p, line, suffix = col.at(offset + int(rows[0]))
            raise DataError(f"timestamp {_value_text(series, text, int(rows[0]))!r} {words}{suffix}", p, line)
    out = np.zeros(len(num), dtype=np.int64)
    out[is_num] = np.floor(num[is_num]).astype(np.int64)
    rest = np.flatnonzero(~is_num)
    if len(rest):
        out[rest] = _iso_seconds(text if text is not None else _text(series), rest, col, offset)
    return out


def _iso_seconds(text: pd.Series, rows: np.ndarray, col: _Col, offset: int) -> np.ndarray:
    """Seconds since the epoch of ``text``'s ``rows`` as ISO dates or datetimes (naive: UTC), from 1970."""
    parsed = pd.to_datetime(text.iloc[rows], errors="coerce", utc=True, format="ISO8601")
    ok = parsed.notna().to_numpy()
    if not ok.all():
        bad = int(rows[np.flatnonzero(~ok)[0]])
        p, line, suffix = col.at(offset + bad)
        raise DataError(f"timestamp {text.iloc[bad]!r} is neither a number (unix seconds) nor an ISO date or "
                        f"datetime{suffix}", p, line)
    seconds = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy().astype(np.int64)
    early = np.flatnonzero(seconds < 0)
    if len(early):
        p, line, suffix = col.at(offset + int(rows[early[0]]))
        raise DataError(f"timestamp {text.iloc[rows[early[0]]]!r} is before 1970{suffix}", p, line)
    return seconds


_CHECKS: dict[str, Callable[[pa.Array | pa.ChunkedArray, _Col, int], object]] = {
    "id": _id_values, "rating": _ratings, "timestamp": _timestamps, "text": _text_values,
}


# --------------------------------------------------------------------------------------------- the import


def _codes(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer ids of string ids: kept when all are integers (labels None), else codes 1..n in sorted order of
    the strings, with the labels (object [n], code i+1 -> labels[i])."""
    if pc.all(pc.match_substring_regex(values, _INT_ID)).as_py():
        return pc.cast(values, pa.int64()).to_numpy(), None
    codes, labels = pd.factorize(values.to_numpy(), sort=True)
    return codes.astype(np.int64) + 1, np.asarray(labels, dtype=object)


def _latest_rows(users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The rows kept of repeated (user, item) pairs: the latest of each (timestamp, then row order), sorted."""
    pairs = pd.DataFrame({"u": users, "i": items, "ts": ts, "row": np.arange(len(users))})
    keep = ~pairs.sort_values(["ts", "row"], kind="stable").duplicated(["u", "i"], keep="last")
    return np.sort(keep[keep].index.to_numpy())


def _genres(value: str, genre_sep: str) -> str:
    parts = [g.strip().replace("|", "/") for g in value.split(genre_sep)] if genre_sep else [value.strip()]
    parts = [g for g in parts if g and g != NO_GENRE]
    return "|".join(dict.fromkeys(parts)) or NO_GENRE


def _interaction_wants(columns: OwnColumns) -> list[_Want]:
    wants = [_Want("--user", columns.user, "id", "user"), _Want("--item", columns.item, "id", "item")]
    if columns.rating:
        wants.append(_Want("--rating", columns.rating, "rating"))
    if columns.timestamp:
        wants.append(_Want("--timestamp", columns.timestamp, "timestamp"))
    return wants


@dataclass
class _Interactions:
    """The checked interactions, repeated pairs dropped: integer ids and, where ids were mapped, their labels."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    rating: np.ndarray
    ts: np.ndarray
    user_labels: np.ndarray | None
    item_labels: np.ndarray | None
    rows_read: int


def _interactions(path: Path, sep: str, columns: OwnColumns) -> _Interactions:
    """Read and check the interactions file, map its ids and keep the latest row of each (user, item) pair."""
    read = _read_file(path, sep, _interaction_wants(columns))
    if not read.rows:
        raise DataError("holds no rows" + (" (only a header)" if read.is_csv else ""), path)
    user_ids, user_labels = _codes(read.text("--user"))
    item_ids, item_labels = _codes(read.text("--item"))
    rating = read.numbers("--rating", np.float32) if columns.rating else np.ones(read.rows, np.float32)
    ts = read.numbers("--timestamp", np.int64) if columns.timestamp else np.zeros(read.rows, np.int64)
    keep = _latest_rows(user_ids, item_ids, ts)  # the same users and items remain: their codes stand
    return _Interactions(user_ids[keep], item_ids[keep], rating[keep], ts[keep], user_labels, item_labels,
                         read.rows)


def import_interactions(
    path: str | Path, name: str, columns: OwnColumns, *, items_path: str | Path | None = None, sep: str = ",",
    genre_sep: str = "|", force: bool = False,
) -> tuple[Path, dict]:
    """Check, convert and write an own data set (see the module docstring); returns (folder, import.json's
    content). The folder is not registered here. Refuses (MovieRecError) an invalid name, and to replace an
    import of the same name from other files or columns unless ``force``; nothing is written on an error."""
    name = validate_dataset_name(name)
    path = Path(path).expanduser().resolve()
    items_file = Path(items_path).expanduser().resolve() if items_path is not None else None
    folder = imported_root() / name
    options = {
        "sep": sep, "genre_sep": genre_sep,
        "columns": {k: v for k, v in columns.__dict__.items()},
        "source": {"interactions": str(path), "items": str(items_file) if items_file else None},
    }
    _refuse_other_import(name, folder, options, force)

    data = _interactions(path, sep, columns)
    movie_ids = np.unique(data.item_ids)
    item_text = (data.item_labels if data.item_labels is not None else movie_ids.astype(str)).astype(object)
    titles, genres = item_text.copy(), np.full(len(movie_ids), NO_GENRE, dtype=object)
    items_info: dict = {}
    if items_file is not None:
        titles, genres, items_info = _items_table(items_file, columns, sep, genre_sep, item_text, titles, genres)
    titles = np.array([" ".join(str(t).split()) or str(i) for t, i in zip(titles, item_text, strict=True)],
                      dtype=object)
    info = _import_info(name, options, columns, data, len(movie_ids), items_info)
    frames = {
        "ratings.csv": pd.DataFrame({"userId": data.user_ids, "movieId": data.item_ids, "rating": data.rating,
                                     "timestamp": data.ts}),
        "movies.csv": pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres}),
        LABELS_FILE: _labels_frame(data.user_labels, data.item_labels),
    }
    atomic_write_dir(folder, lambda tmp: _write_import(tmp, frames, info))
    return folder, info


def _import_info(name: str, options: dict, columns: OwnColumns, data: _Interactions, n_items: int,
                 items_info: dict) -> dict:
    """import.json's content."""
    info = {
        "format": IMPORT_FORMAT, "version": 1, "name": name, **options,
        "implicit": not columns.rating, "has_timestamps": bool(columns.timestamp),
        "rows_read": int(data.rows_read), "rows_kept": len(data.ts),
        "duplicates_dropped": int(data.rows_read - len(data.ts)),
        "users": len(np.unique(data.user_ids)), "items": n_items,
        "user_ids": "mapped to 1..n (labels.parquet)" if data.user_labels is not None else "integers, kept",
        "item_ids": "mapped to 1..n (labels.parquet)" if data.item_labels is not None else "integers, kept",
        **items_info,
    }
    if not columns.rating:
        info["note_ratings"] = "implicit feedback: every interaction has rating 1.0"
    if not columns.timestamp:
        info["note_timestamps"] = ("no timestamps: every interaction has timestamp 0, so the leave-one-out split "
                                   "takes a user's later row in the file as the latest")
    return info


def _labels_frame(user_labels: np.ndarray | None, item_labels: np.ndarray | None) -> pd.DataFrame | None:
    """labels.parquet's rows: (kind, code, original id) of the mapped ids; None when no id was mapped."""
    parts = [pd.DataFrame({"kind": kind, "id": np.arange(1, len(labels) + 1, dtype=np.int64),
                           "label": pd.Series(labels, dtype=object).astype(str)})
             for kind, labels in (("user", user_labels), ("movie", item_labels)) if labels is not None]
    return pd.concat(parts, ignore_index=True) if parts else None


def _write_import(tmp: Path, frames: dict[str, pd.DataFrame | None], info: dict) -> None:
    """Write the import's files into (temporary) folder ``tmp``."""
    frames["ratings.csv"].to_csv(tmp / "ratings.csv", index=False, float_format="%.6g")
    frames["movies.csv"].to_csv(tmp / "movies.csv", index=False)
    if frames[LABELS_FILE] is not None:
        frames[LABELS_FILE].to_parquet(tmp / LABELS_FILE, index=False)
    (tmp / IMPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", "utf-8")


def _item_wants(columns: OwnColumns) -> list[_Want]:
    wants = [_Want("--item-id", columns.item_id or columns.item, "id", "item")]
    if columns.title:
        wants.append(_Want("--title", columns.title, "text"))
    if columns.genres:
        wants.append(_Want("--genres", columns.genres, "text"))
    return wants


def _items_table(items_file: Path, columns: OwnColumns, sep: str, genre_sep: str, item_text: np.ndarray,
                 titles: np.ndarray, genres: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Titles and genres of the items from the items file (its first row of each id), where it has them."""
    read = _read_file(items_file, sep, _item_wants(columns))
    ids = read.text("--item-id").to_numpy(zero_copy_only=False)
    table = pd.DataFrame({"id": ids})
    if columns.title:
        table["title"] = read.text("--title").to_numpy(zero_copy_only=False)
    if columns.genres:
        table["genres"] = read.text("--genres").to_numpy(zero_copy_only=False)
    table = table[~table["id"].duplicated(keep="first").to_numpy()].set_index("id")
    found = pd.Index(table.index).get_indexer(pd.Index(item_text.astype(str)))
    has = found >= 0
    titles, genres = titles.copy(), genres.copy()
    if columns.title:
        t = table["title"].to_numpy(dtype=object)[found[has]]
        titles[has] = np.where(t == "", titles[has], t)
    if columns.genres:
        genres[has] = [_genres(g, genre_sep) for g in table["genres"].to_numpy(dtype=object)[found[has]]]
    return titles, genres, {"items_matched": int(has.sum()), "items_without_entry": int((~has).sum())}


def _refuse_other_import(name: str, folder: Path, options: dict, force: bool) -> None:
    """An import of ``name`` from other files or with other options needs ``force``; the same import may be
    replaced. A name registered for a MovieLens folder counts as another import."""
    if force:
        return
    entry = imported().get(name)
    where = Path(entry["path"]) if entry is not None else folder if folder.exists() else None
    if where is None:
        return
    try:
        old = json.loads((where / IMPORT_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and all(old.get(k) == v for k, v in options.items()) and where == folder:
        return
    source = (old or {}).get("source", {}).get("interactions") if isinstance(old, dict) else str(where)
    raise MovieRecError(f"--name {name}: a dataset of that name is already imported (from {source}); pass --force "
                        "to replace it, or choose another --name")


def read_labels(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """kind -> (ids int64, labels object) of ``folder``'s labels.parquet, or None where there is none."""
    p = Path(folder) / LABELS_FILE
    if not p.is_file():
        return None
    try:
        frame = pd.read_parquet(p)
        out = {}
        for kind, part in frame.groupby("kind", sort=False):
            out[str(kind)] = (part["id"].to_numpy(np.int64), part["label"].astype(str).to_numpy(dtype=object))
        return out
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"unreadable id labels ({e}); import the data again", p) from None


__all__ = ["IMPORT_FILE", "LABELS_FILE", "MAX_ID_CHARS", "MAX_NAME_CHARS", "OwnColumns", "import_interactions",
           "imported_root", "read_labels", "validate_dataset_name"]
