"""Parsing MovieLens files with pyarrow: typed tables, errors that name the file and line, catalogue tables.

:func:`read_table` parses one file per its :class:`~movierec.data.releases.FileSpec`. It never loops over
lines in Python: csv/tab/pipe files go straight to ``pyarrow.csv``; the '::' files of ml-1m/ml-10m are read
as bytes, '::' is rewritten to the unit separator ``\\x1f`` and the result is parsed with quoting off. Only
when a file is malformed is it scanned again (single-threaded, as strings) to report the first bad line.

:func:`parse_ratings` and :func:`parse_catalog` turn a folder's files into the tables that are cached
(:mod:`movierec.data.cache`); :func:`catalog_from_tables` makes a :class:`~movierec.data.dataset.Catalog`
of the latter. :func:`split_title_year` strips the " (YYYY)" off titles.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data.dataset import Catalog, build_dataset
from movierec.data.releases import CATALOG_KEYS, GENRES_100K, LAYOUTS, FileSpec
from movierec.errors import DataError

_SEP_BYTE = "\x1f"  # ASCII unit separator: never occurs in MovieLens text
# ml-1m's users.dat codes occupations 0..20
_OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)

# --------------------------------------------------------------------------------------------- reading

_PA_TYPES: dict[str, pa.DataType] = {
    "int8": pa.int8(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "string": pa.string(),
}
_NULL_STRINGS = ["", "#N/A", "N/A", "NA", "NULL", "NaN", "nan", "null", "n/a"]


def _snippet(text: str, n: int = 80) -> str:
    text = text.replace(_SEP_BYTE, "::").rstrip("\r\n")
    return repr(text if len(text) <= n else text[:n] + "...")


def _found(header: list[str]) -> str:
    """The header fields as found, for a message: binary data is named as such rather than printed."""
    text = ",".join(header)
    if any(not (c.isprintable() or c == "\t") for c in text) or "\ufffd" in text:
        return "binary data, not a text header"
    return text if len(text) <= 120 else text[:117] + "..."


def _read_header(path: Path, spec: FileSpec) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return [c.strip().strip('"').strip() for c in text.split(spec.sep)]


def _row_to_line(data: bytes, row_number: int) -> int:
    """1-based file line of pyarrow's 1-based row number (which counts non-empty lines only)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(buf)]])
    lengths = ends - starts
    has_cr = np.zeros(len(starts), bool)
    nz = lengths > 0
    has_cr[nz] = buf[ends[nz] - 1] == 13
    nonempty = np.flatnonzero(lengths - has_cr > 0)
    if row_number - 1 < len(nonempty):
        return int(nonempty[row_number - 1]) + 1
    return row_number


def _line_text(data: bytes, line: int) -> str:
    start = 0
    for _ in range(line - 1):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return ""
    end = data.find(b"\n", start)
    return data[start: end if end >= 0 else len(data)].decode("latin-1")


def _first_cast_failure(arr: pa.Array, typ: pa.DataType) -> int | None:
    """Index of the first value of string array ``arr`` that does not convert to ``typ`` (bisection)."""

    def ok(a: pa.Array) -> bool:
        try:
            pc.cast(a, typ)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False

    if ok(arr):
        return None
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(arr.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


def _locate_error(
    data: bytes, path: Path, spec: FileSpec, names: list[str], encoding: str, original: Exception | None
) -> DataError:
    """Error path only: re-read ``data`` single-threaded as strings and describe its first bad line."""
    delimiter = _SEP_BYTE if spec.sep == "::" else spec.sep
    invalid: list[tuple[int | None, str, int, int]] = []

    def handler(row: object) -> str:
        invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))  # type: ignore[attr-defined]
        return "skip"

    skip = 1 if spec.header else 0
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(use_threads=False, column_names=names, skip_rows=skip, encoding=encoding),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char='"' if spec.sep == "," else False, invalid_row_handler=handler
        ),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
    )
    wanted = dict(spec.columns)
    best: tuple[int, str] | None = None  # (row number, reason)
    bad_rows = [n for n, *_ in invalid if n is not None]
    total = table.num_rows + len(invalid)
    kept = np.setdiff1d(np.arange(skip + 1, skip + 1 + total), np.asarray(bad_rows, dtype=np.int64))
    for name in names:
        canon = next((c for c in wanted if c.lower() == name.lower()), None)
        if canon is None or wanted[canon] == "string":
            continue
        typ = _PA_TYPES[wanted[canon]]
        col = table.column(name).combine_chunks()
        if canon in spec.nullable:
            col = pc.if_else(pc.is_in(col, value_set=pa.array(_NULL_STRINGS)), pa.scalar(None, pa.string()), col)
        idx = _first_cast_failure(col, typ)
        if idx is not None and idx < len(kept):
            row = int(kept[idx])
            value = col[idx].as_py()
            kind = "an integer" if pa.types.is_integer(typ) else "a number"
            what = "empty" if value in ("", None) else f"{_snippet(str(value), 30)} is not {kind}"
            if best is None or row < best[0]:
                best = (row, f"column {canon}: {what}")
    for number, text, expected, actual in invalid:
        if number is None:  # pragma: no cover - single-threaded reads give row numbers
            pos = data.find(text.encode("utf-8", "replace"))
            line = data.count(b"\n", 0, max(pos, 0)) + 1
            return DataError(f"expected {expected} fields, found {actual}: {_snippet(text)}", path, line)
        if best is None or number < best[0]:
            best = (number, f"expected {expected} fields, found {actual}")
        break
    if best is None:
        msg = str(original).splitlines()[0] if original is not None else "unparseable"
        m = re.search(r"Row #(\d+)", msg)
        line = _row_to_line(data, int(m.group(1))) if m else None
        return DataError(f"malformed file ({msg})", path, line)
    line = _row_to_line(data, best[0])
    return DataError(f"{best[1]}: {_snippet(_line_text(data, line))}", path, line)


def read_table(path: str | Path, spec: FileSpec, encoding: str | None = None) -> pa.Table:
    """Parse one data file into an Arrow table with ``spec``'s column names and types.

    Raises DataError naming the file (and the 1-based line for malformed content).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{spec.filename} not found in {path.parent}")
    encoding = encoding or spec.encoding
    wanted = dict(spec.columns)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from None
    if size == 0:
        expected = f": expected the header {','.join(spec.names)}" if spec.header else ""
        raise DataError(f"empty file{expected}", path)
    if spec.header:
        found = _read_header(path, spec)
        lower = {c.lower(): c for c in found}
        missing = [c for c in spec.names if c.lower() not in lower]
        if missing:
            raise DataError(
                f"wrong columns: expected {','.join(spec.names)}, found {_found(found)}", path, 1
            )
        names = [next((c for c in spec.names if c.lower() == f.lower()), f) for f in found]
        include = spec.names
    else:
        names = spec.names
        include = names
    types = {n: _PA_TYPES[wanted[n]] for n in include}
    delimiter = spec.sep
    if spec.sep == "::":
        data: bytes | None = path.read_bytes().replace(b"::", _SEP_BYTE.encode())
        delimiter = _SEP_BYTE
    else:
        data = None

    def parse(enc: str) -> pa.Table:
        source = io.BytesIO(data) if data is not None else str(path)
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if spec.header else 0, encoding=enc, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if spec.sep == "," else False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=include, null_values=_NULL_STRINGS, strings_can_be_null=False
            ),
        )

    try:
        try:
            table = parse(encoding)
        except pa.ArrowInvalid as e:
            if "UTF8" in str(e) and encoding.lower().replace("-", "") == "utf8":
                encoding = "latin-1"  # not utf-8 after all (an older '::' file): latin-1 decodes any byte
                table = parse(encoding)
            else:
                raise
    except pa.ArrowInvalid as e:
        raw = data if data is not None else path.read_bytes()
        raise _locate_error(raw, path, spec, names, encoding, e) from None
    for n in include:
        if n not in spec.nullable and table.column(n).null_count:
            raw = data if data is not None else path.read_bytes()
            raise _locate_error(raw, path, spec, names, encoding, None)
    return table



# --------------------------------------------------------------------------------------------- transforms

_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\s*(?:[-–]\s*(?:\d{4})?\s*)?\)$"


def split_title_year(titles: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Strip a trailing " (YYYY)" (or "(YYYY-)", "(YYYY-YYYY)") off each title.

    Returns (title: string, year: float64 with nulls where a title has no year).
    """
    t = pc.utf8_trim_whitespace(titles)
    m = pc.extract_regex(t, _TITLE_YEAR)
    title = pc.coalesce(pc.struct_field(m, "title"), t)
    year = pc.cast(pc.struct_field(m, "year"), pa.float64())
    return title, year


def _genres_list(genres: pa.Array | pa.ChunkedArray) -> pa.Array:
    g = pc.if_else(pc.equal(pc.utf8_trim_whitespace(genres), ""), "(no genres listed)", genres)
    return pc.split_pattern(g, "|")


def _movies_from_100k(table: pa.Table) -> pa.Table:
    flags = np.column_stack([table.column(f"g{i}").to_numpy() for i in range(len(GENRES_100K))]) > 0
    flags = flags[:, 1:]  # drop 'unknown'
    names = np.array(GENRES_100K[1:], dtype=object)
    empty = ~flags.any(axis=1)
    rows, cols = np.nonzero(flags)
    values = names[cols]
    # rows without a genre get "(no genres listed)"
    all_rows = np.concatenate([rows, np.flatnonzero(empty)])
    all_vals = np.concatenate([values, np.full(int(empty.sum()), "(no genres listed)", dtype=object)])
    order = np.argsort(all_rows, kind="stable")
    counts = np.bincount(all_rows, minlength=len(flags))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    genres = pa.ListArray.from_arrays(pa.array(offsets), pa.array(all_vals[order], pa.string()))
    title, year = split_title_year(table.column("title"))
    return pa.table({"movieId": table.column("movieId"), "title": title, "year": year, "genres": genres})


def _movies_table(table: pa.Table) -> pa.Table:
    title, year = split_title_year(table.column("title"))
    return pa.table({
        "movieId": table.column("movieId"), "title": title, "year": year,
        "genres": _genres_list(table.column("genres")),
    })


def _users_table(table: pa.Table, layout: str) -> pa.Table:
    if layout == "dat":
        occ = table.column("occupation").to_numpy()
        names = np.array(_OCCUPATIONS_1M, dtype=object)
        valid = (occ >= 0) & (occ < len(names))
        occupation = np.where(valid, names[np.clip(occ, 0, len(names) - 1)], occ.astype(str))
        table = table.set_column(table.column_names.index("occupation"), "occupation",
                                 pa.array(occupation.astype(str), pa.string()))
    return table.select(["userId", "gender", "age", "occupation", "zip"])


def parse_catalog(folder: Path, layout: str, encoding: str | None) -> dict[str, pa.Table]:
    """Parse the catalogue files present in ``folder``: movies (required), links, tags, users, genome."""
    specs = LAYOUTS[layout]
    if not (folder / specs["movies"].filename).is_file():
        raise DataError(f"{specs['movies'].filename} not found in {folder}")
    enc = encoding if layout == "dat" else None
    raw = {k: read_table(folder / s.filename, s, enc)
           for k, s in specs.items() if k in CATALOG_KEYS and (folder / s.filename).is_file()}
    out: dict[str, pa.Table] = {}
    movies = _movies_from_100k(raw["movies"]) if layout == "ml-100k" else _movies_table(raw["movies"])
    if "links" in raw:
        links = raw["links"]
        idx = pc.index_in(movies.column("movieId"), value_set=links.column("movieId").combine_chunks())
        for col in ("imdbId", "tmdbId"):
            movies = movies.append_column(col, links.column(col).combine_chunks().take(idx))
    movies = movies.sort_by("movieId")
    out["movies"] = movies
    out["tags"] = raw["tags"] if "tags" in raw else pa.table(
        {"userId": pa.array([], pa.int64()), "movieId": pa.array([], pa.int64()), "tag": pa.array([], pa.string()),
         "timestamp": pa.array([], pa.int64())}
    )
    if "users" in raw:
        out["users"] = _users_table(raw["users"], layout)
    for k in ("genome_scores", "genome_tags"):
        if k in raw:
            out[k] = raw[k]
    return out


def catalog_from_tables(tables: dict[str, pa.Table]) -> Catalog:
    """A :class:`Catalog` of :func:`parse_catalog`'s tables (genres as Python lists, tmdbId nullable Int64)."""
    movies_t = tables["movies"]
    genres = movies_t.column("genres").to_pylist()
    movies = movies_t.drop_columns(["genres"]).to_pandas()
    movies.insert(3, "genres", pd.Series(genres, index=movies.index, dtype=object))
    if "tmdbId" in movies:
        movies["tmdbId"] = movies["tmdbId"].astype("Int64")

    def frame(k: str) -> pd.DataFrame | None:
        return tables[k].to_pandas() if k in tables else None

    return Catalog(
        movies=movies, tags=frame("tags"), users=frame("users"),
        genome_scores=frame("genome_scores"), genome_tags=frame("genome_tags"),
    )


RATING_RANGE = (0.5, 5.0)  # MovieLens stars: 1-5 in ml-100k and ml-1m, half stars 0.5-5 from ml-10m on
DUPLICATES = ("error", "keep-latest")


def _first_bad_row(bad: np.ndarray) -> int | None:
    rows = np.flatnonzero(bad)
    return int(rows[0]) if len(rows) else None


def validate_ratings(table: pa.Table, path: Path, spec: FileSpec, duplicates: str = "error") -> pa.Table:
    """Check parsed ratings: each rating finite and within :data:`RATING_RANGE`, timestamps >= 0, and no
    (user, movie) pair rated twice. The first offence raises a DataError naming the file and its line; with
    ``duplicates="keep-latest"`` repeated pairs keep their latest row (latest timestamp, then the later line)
    and a warning names how many rows were dropped. Vectorised: one sort of the pair keys."""
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    header = 1 if spec.header else 0
    if table.num_rows == 0:
        raise DataError("no ratings" + (" (the file holds only its header)" if spec.header else ""), path)

    def fail(row: int, what: str) -> DataError:
        raw = path.read_bytes()
        line = _row_to_line(raw, row + 1 + header)
        return DataError(f"{what}: {_snippet(_line_text(raw, line))}", path, line)

    rating = table.column("rating").to_numpy()
    lo, hi = RATING_RANGE
    bad = _first_bad_row(~np.isfinite(rating) | (rating < lo) | (rating > hi))
    if bad is not None:
        raise fail(bad, f"rating {rating[bad]:g} is outside the MovieLens scale {lo:g}-{hi:g}")
    ts = table.column("timestamp").to_numpy()
    bad = _first_bad_row(ts < 0)
    if bad is not None:
        raise fail(bad, f"timestamp {ts[bad]} is negative")
    user = table.column("userId").to_numpy().astype(np.int64)
    movie = table.column("movieId").to_numpy().astype(np.int64)
    if not len(user):
        return table
    span = int(movie.max()) - int(movie.min()) + 1
    key = (user - int(user.min())) * span + (movie - int(movie.min()))
    order = np.argsort(key, kind="stable")  # equal pairs stay in file order
    same = key[order][1:] == key[order][:-1]
    if not same.any():
        return table
    later = order[1:][same]  # every repeat of a pair, after its first row
    if duplicates == "error":
        row = int(later.min())
        first = int(order[np.searchsorted(key[order], key[row])])
        raw = path.read_bytes()
        first_line = _row_to_line(raw, first + 1 + header)
        raise fail(row, f"user {user[row]} rated movie {movie[row]} again (first on line {first_line}); "
                        "load_dataset(..., duplicates='keep-latest') keeps each pair's latest rating")
    # keep the latest row of each pair: order by (pair, timestamp, row) and keep each pair's last
    order = np.lexsort((np.arange(len(key)), ts, key))
    last = np.ones(len(order), bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    keep = np.sort(order[last])
    import warnings

    warnings.warn(f"{path}: {len(key) - len(keep)} repeated (user, movie) ratings dropped, the latest of each "
                  "pair kept", stacklevel=2)
    return table.take(pa.array(keep))


def parse_ratings(name: str, folder: Path, layout: str, encoding: str | None, progress: bool,
                  duplicates: str = "error") -> dict[str, pa.Table]:
    """Parse ``folder``'s ratings file, validate it (:func:`validate_ratings`) and index it: the cached tables
    of a data set's ratings.

    interactions: user, item (int32 dense indices), rating (float32), timestamp (int64 seconds);
    user_ids / item_ids: id (int64 raw ids in index order). ``encoding`` None: the file's default.
    """
    spec = LAYOUTS[layout]["ratings"]
    path = folder / spec.filename
    if progress:
        from rich.console import Console

        with Console(stderr=True).status(f"parsing {path} ..."):
            table = read_table(path, spec, encoding)
    else:
        table = read_table(path, spec, encoding)
    table = validate_ratings(table, path, spec, duplicates)
    # split_blocks: one numpy block per column, no consolidation copy
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    ds = build_dataset(name, frame, None, str(folder))
    it = ds.interactions
    return {
        "interactions": pa.table({"user": it.user, "item": it.item, "rating": it.rating, "timestamp": it.timestamp}),
        "user_ids": pa.table({"id": ds.users.ids}),
        "item_ids": pa.table({"id": ds.items.ids}),
    }


__all__ = ["DUPLICATES", "RATING_RANGE", "catalog_from_tables", "parse_catalog", "parse_ratings", "read_table",
           "split_title_year", "validate_ratings"]
