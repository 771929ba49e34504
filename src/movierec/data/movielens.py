"""MovieLens releases: the registry, locating/fetching/importing data, parsing with pyarrow, Parquet cache.

Entry points: :func:`load_dataset` (ratings + catalogue as a :class:`~movierec.data.dataset.Dataset`),
:func:`load_catalog` (movies only), :func:`fetch`, :func:`import_folder`, :func:`find_release_dir`,
:func:`detect_layout`, :func:`list_releases`, and :data:`RELEASES`.

Parsing never loops over lines in Python: csv/tab/pipe files go straight to ``pyarrow.csv``; the '::'
files of ml-1m/ml-10m are read as bytes, '::' is rewritten to the unit separator ``\\x1f`` and the result is
parsed with quoting off. Only when a file is malformed is it scanned again (single-threaded, as strings)
to report the first bad line. Parsed tables are cached as Parquet under :func:`cache_dir`, keyed by the
release name, the source files' names/sizes/mtimes and :data:`FORMAT_VERSION`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.data.dataset import Catalog, Dataset, IdMap, Interactions, build_dataset
from movierec.errors import DataError, MovieRecError, UnknownDatasetError
from movierec.fsutil import atomic_write_bytes, atomic_write_dir

FORMAT_VERSION = 1
"""Bump when the parsed/cached representation changes: old cache entries are then ignored."""

BASE_URL = "https://files.grouplens.org/datasets/movielens"
_SEP_BYTE = "\x1f"  # ASCII unit separator: never occurs in MovieLens text

# --------------------------------------------------------------------------------------------- file layouts


@dataclass(frozen=True)
class FileSpec:
    """How one data file is laid out.

    columns: (name, type) in file order; type is one of "int32", "int64", "float32", "string", "int8".
    With ``header`` the file's first line must name these columns (matched case-insensitively, extra
    columns are ignored); without it the file must have exactly these fields.
    """

    key: str
    filename: str
    sep: str
    columns: tuple[tuple[str, str], ...]
    header: bool
    encoding: str = "utf-8"
    nullable: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]


_RATING_COLS = (("userId", "int64"), ("movieId", "int64"), ("rating", "float32"), ("timestamp", "int64"))
_TAG_COLS = (("userId", "int64"), ("movieId", "int64"), ("tag", "string"), ("timestamp", "int64"))
_GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)

LAYOUTS: dict[str, dict[str, FileSpec]] = {
    "ml-100k": {
        "ratings": FileSpec("ratings", "u.data", "\t", _RATING_COLS, header=False),
        "movies": FileSpec(
            "movies", "u.item", "|",
            (("movieId", "int64"), ("title", "string"), ("release_date", "string"),
             ("video_release_date", "string"), ("imdb_url", "string"),
             *((f"g{i}", "int8") for i in range(len(_GENRES_100K)))),
            header=False, encoding="latin-1",
        ),
        "users": FileSpec(
            "users", "u.user", "|",
            (("userId", "int64"), ("age", "int32"), ("gender", "string"), ("occupation", "string"),
             ("zip", "string")),
            header=False, encoding="latin-1",
        ),
    },
    "dat": {
        "ratings": FileSpec("ratings", "ratings.dat", "::", _RATING_COLS, header=False),
        "movies": FileSpec(
            "movies", "movies.dat", "::", (("movieId", "int64"), ("title", "string"), ("genres", "string")),
            header=False,
        ),
        "users": FileSpec(
            "users", "users.dat", "::",
            (("userId", "int64"), ("gender", "string"), ("age", "int32"), ("occupation", "int32"),
             ("zip", "string")),
            header=False,
        ),
        "tags": FileSpec("tags", "tags.dat", "::", _TAG_COLS, header=False),
    },
    "csv": {
        "ratings": FileSpec("ratings", "ratings.csv", ",", _RATING_COLS, header=True),
        "movies": FileSpec(
            "movies", "movies.csv", ",", (("movieId", "int64"), ("title", "string"), ("genres", "string")),
            header=True,
        ),
        "tags": FileSpec("tags", "tags.csv", ",", _TAG_COLS, header=True),
        "links": FileSpec(
            "links", "links.csv", ",", (("movieId", "int64"), ("imdbId", "string"), ("tmdbId", "int64")),
            header=True, nullable=("imdbId", "tmdbId"),
        ),
        "genome_scores": FileSpec(
            "genome_scores", "genome-scores.csv", ",",
            (("movieId", "int64"), ("tagId", "int32"), ("relevance", "float32")), header=True,
        ),
        "genome_tags": FileSpec(
            "genome_tags", "genome-tags.csv", ",", (("tagId", "int32"), ("tag", "string")), header=True
        ),
    },
}

_CATALOG_KEYS = ("movies", "links", "tags", "users", "genome_scores", "genome_tags")

# --------------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Release:
    """One official MovieLens release.

    ``sha256``/``md5`` pin the zip where a trustworthy value is known (see the module's sources note);
    releases with neither are verified against GroupLens's ``<zip>.md5`` file at download time.
    """

    name: str
    description: str
    folder: str  # the folder inside the zip
    layout: str  # "ml-100k", "dat" or "csv"
    encoding: str = "utf-8"  # of the text files ('::'/pipe files; csv releases are utf-8)
    size_bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    zip_name: str | None = None

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.zip_name or self.name + '.zip'}"

    @property
    def md5_url(self) -> str:
        return self.url + ".md5"

    @property
    def files(self) -> dict[str, FileSpec]:
        return LAYOUTS[self.layout]


# Checksums: sha256 and sizes from tensorflow/datasets (tensorflow_datasets/url_checksums/movielens.txt);
# md5 values as published by GroupLens next to each zip (<zip>.md5), quoted identically by many projects
# (e.g. eli-osherovich/papers_with_code datasets/movielens/dl_config.py, RecBole's dataset list).
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            "ml-100k", "100,000 ratings (1-5) from 943 users on 1,682 movies, with demographics (1998)",
            "ml-100k", "ml-100k", "latin-1", 4_924_029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            md5="0e33842e24a9c977be4e0107933c0723",
        ),
        Release(
            "ml-1m", "1,000,209 ratings (1-5) from 6,040 users on 3,706 movies, with demographics (2003)",
            "ml-1m", "dat", "latin-1", 5_917_549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
        ),
        Release(
            "ml-10m", "10,000,054 ratings (0.5-5) and 95,580 tags from 71,567 users on 10,681 movies (2009)",
            "ml-10M100K", "dat", "utf-8", 65_566_137,
            md5="ce571fd55effeba0271552578f2648bd", zip_name="ml-10m.zip",
        ),
        Release(
            "ml-20m", "20,000,263 ratings and 465,564 tags from 138,493 users on 27,278 movies, genome (2015)",
            "ml-20m", "csv", "utf-8", 198_702_078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            md5="cd245b17a1ae2cc31bb14903e1204af3",
        ),
        Release(
            "ml-25m", "25,000,095 ratings and 1,093,360 tags from 162,541 users on 62,423 movies, genome (2019)",
            "ml-25m", "csv", "utf-8", 261_978_986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
        ),
        Release(
            "ml-32m", "32,000,204 ratings and 2,000,072 tags from 200,948 users on 87,585 movies (2023)",
            "ml-32m", "csv", "utf-8", None,
        ),
        Release(
            "ml-latest-small", "100,836 ratings and 3,683 tags from 610 users on 9,742 movies (2018-09)",
            "ml-latest-small", "csv", "utf-8", 978_202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        ),
        Release(
            "ml-latest", "the full, changing 'latest' release (about 33M ratings, with genome)",
            "ml-latest", "csv", "utf-8", None,
        ),
    )
}

# --------------------------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """The cache folder: ``$MOVIEREC_CACHE_DIR`` or the per-user cache (platformdirs)."""
    env = os.environ.get("MOVIEREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("movierec"))


def _releases_dir() -> Path:
    return cache_dir() / "releases"


def _registry_path() -> Path:
    return cache_dir() / "imported.json"


def _imported() -> dict[str, dict]:
    p = _registry_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable registry of imported datasets ({e}); delete it and re-import", p) from e
    return data if isinstance(data, dict) else {}


def _has_file(folder: Path, layout: str, key: str) -> bool:
    return (folder / LAYOUTS[layout][key].filename).is_file()


def find_release_dir(name: str, *, need: str = "ratings") -> Path | None:
    """Folder holding an extracted copy of release (or imported name) ``name``, or None.

    Looks, in order, in each folder of ``$MOVIEREC_DATA_DIR`` (for ``<dir>/<name>`` or
    ``<dir>/<zip folder>``), in the cache's extracted releases, then in the imported names.
    ``need`` is the file that must be present: "ratings" (default) or "movies" (catalogue only).
    """
    rel = RELEASES.get(name)
    if rel is not None:
        candidates: list[Path] = []
        for d in os.environ.get("MOVIEREC_DATA_DIR", "").split(os.pathsep):
            if d:
                base = Path(d).expanduser()
                candidates += [base / name, base / rel.folder]
                if base.name in (name, rel.folder):
                    candidates.append(base)
        candidates.append(_releases_dir() / rel.folder)
        for c in candidates:
            if c.is_dir() and _has_file(c, rel.layout, need):
                return c.resolve()
    entry = _imported().get(name)
    if entry is not None:
        p = Path(entry["path"])
        if p.is_dir():
            return p
    return None


def detect_layout(path: str | Path) -> str:
    """Which layout folder ``path`` holds: "ncf", "ml-100k", "dat" or "csv" (DataError if none)."""
    p = Path(path)
    if not p.is_dir():
        raise DataError("not a folder", p)
    if any(p.glob("*.train.rating")) and any(p.glob("*.test.rating")):
        return "ncf"
    if (p / "u.data").is_file() or (p / "u.item").is_file():
        return "ml-100k"
    if (p / "ratings.dat").is_file() or (p / "movies.dat").is_file():
        return "dat"
    if (p / "ratings.csv").is_file() or (p / "movies.csv").is_file():
        return "csv"
    raise DataError(
        "no MovieLens files found (expected ratings.csv/movies.csv, ratings.dat/movies.dat, u.data, "
        "or NCF *.train.rating/*.test.rating/*.test.negative)",
        p,
    )


def import_folder(path: str | Path, name: str | None = None) -> str:
    """Register an extracted folder under ``name`` (default: the folder's name); returns the name.

    No data is copied: the cache's ``imported.json`` maps the name to the folder's absolute path.
    """
    p = Path(path).expanduser().resolve()
    layout = detect_layout(p)
    name = name or p.name
    if not name or name != name.strip() or "/" in name or os.sep in name:
        raise MovieRecError(f"invalid dataset name {name!r}")
    reg = _imported()
    reg[name] = {"path": str(p), "layout": layout}
    atomic_write_bytes(_registry_path(), json.dumps(reg, indent=2, sort_keys=True).encode("utf-8"))
    return name


def _human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def list_releases() -> list[dict]:
    """One dict per release and imported name: name, description, size (of the zip), location.

    location is the folder where it was found locally, or "not downloaded".
    """
    out = []
    for rel in RELEASES.values():
        where = find_release_dir(rel.name) or find_release_dir(rel.name, need="movies")
        out.append({
            "name": rel.name, "description": rel.description, "size": _human_size(rel.size_bytes),
            "location": str(where) if where else "not downloaded",
        })
    for name, entry in sorted(_imported().items()):
        if name not in RELEASES:
            exists = Path(entry["path"]).is_dir()
            out.append({
                "name": name, "description": f"imported ({entry.get('layout', '?')} layout)", "size": "",
                "location": entry["path"] if exists else f"missing: {entry['path']}",
            })
    return out


# --------------------------------------------------------------------------------------------- fetch


def _no_network_error(rel: Release, reason: object) -> MovieRecError:
    return MovieRecError(
        f"download of {rel.url} failed ({reason}): no network connection? "
        f"Get {rel.zip_name or rel.name + '.zip'} elsewhere, extract it and run `movierec data import PATH`, "
        f"or set MOVIEREC_DATA_DIR to a folder holding the extracted '{rel.folder}' folder."
    )


def _download(url: str, dest: Path, progress: bool, total_hint: int | None) -> tuple[str, str]:
    """Stream ``url`` into ``dest``; returns (sha256, md5) hex digests."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as f:
        total = int(resp.headers.get("Content-Length") or 0) or total_hint
        bar = None
        if progress:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
            bar.start()
            task = bar.add_task(f"downloading {url.rsplit('/', 1)[-1]}", total=total)
        try:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                if bar is not None:
                    bar.update(task, advance=len(chunk))
        finally:
            if bar is not None:
                bar.stop()
    return sha.hexdigest(), md5.hexdigest()


def _published_md5(rel: Release) -> str:
    with urllib.request.urlopen(rel.md5_url, timeout=30) as resp:
        text = resp.read(4096).decode("ascii", "replace")
    m = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if not m:
        raise MovieRecError(f"{rel.md5_url} holds no md5 checksum; cannot verify {rel.name}")
    return m.group(0).lower()


def _safe_extract(zf: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for member in zf.infolist():
        target = (dest / member.filename).resolve()
        if target != root and root not in target.parents:
            raise DataError(f"zip member {member.filename!r} would extract outside the target folder")
    zf.extractall(dest)


def fetch(name: str, progress: bool = True) -> Path:
    """Download release ``name``, verify its checksum, extract it into the cache; returns the folder.

    Returns at once if an extracted copy is already found (see :func:`find_release_dir`).
    Raises MovieRecError with instructions when there is no network, or on a checksum mismatch.
    """
    rel = RELEASES.get(name)
    if rel is None:
        raise UnknownDatasetError(f"unknown release {name!r}; known releases: {', '.join(RELEASES)}")
    found = find_release_dir(name) or find_release_dir(name, need="movies")
    if found is not None:
        return found
    releases = _releases_dir()
    releases.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{rel.name}.zip.part-", dir=releases)
    os.close(fd)
    tmp_zip = Path(tmp_name)
    try:
        try:
            sha, md5 = _download(rel.url, tmp_zip, progress, rel.size_bytes)
        except (urllib.error.URLError, OSError) as e:
            raise _no_network_error(rel, getattr(e, "reason", e)) from e
        if rel.sha256 is not None:
            expected, got, algo = rel.sha256, sha, "sha256"
        elif rel.md5 is not None:
            expected, got, algo = rel.md5, md5, "md5"
        else:
            try:
                expected, got, algo = _published_md5(rel), md5, "md5"
            except (urllib.error.URLError, OSError) as e:
                raise MovieRecError(f"could not fetch {rel.md5_url} to verify {rel.name}: {e}") from e
        if got != expected:
            raise MovieRecError(
                f"checksum mismatch for {rel.url}: {algo} {got}, expected {expected}; the download is "
                "corrupt or the file changed upstream (nothing was kept)"
            )

        def extract(tmp: Path) -> None:
            with zipfile.ZipFile(tmp_zip) as zf:
                _safe_extract(zf, tmp)
            inner = tmp / rel.folder
            if not inner.is_dir():
                raise DataError(f"the zip has no folder {rel.folder!r}", rel.url)
            for item in inner.iterdir():
                item.rename(tmp / item.name)
            inner.rmdir()

        return atomic_write_dir(releases / rel.folder, extract)
    finally:
        tmp_zip.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- parsing

_PA_TYPES: dict[str, pa.DataType] = {
    "int8": pa.int8(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "string": pa.string(),
}
_NULL_STRINGS = ["", "#N/A", "N/A", "NA", "NULL", "NaN", "nan", "null", "n/a"]


def _snippet(text: str, n: int = 80) -> str:
    text = text.replace(_SEP_BYTE, "::").rstrip("\r\n")
    return repr(text if len(text) <= n else text[:n] + "...")


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
    if spec.header:
        found = _read_header(path, spec)
        lower = {c.lower(): c for c in found}
        missing = [c for c in spec.names if c.lower() not in lower]
        if missing:
            raise DataError(
                f"wrong columns: expected {','.join(spec.names)}, found {','.join(found)}", path, 1
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
    flags = np.column_stack([table.column(f"g{i}").to_numpy() for i in range(len(_GENRES_100K))]) > 0
    flags = flags[:, 1:]  # drop 'unknown'
    names = np.array(_GENRES_100K[1:], dtype=object)
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


def _parse_catalog(folder: Path, layout: str, encoding: str | None) -> dict[str, pa.Table]:
    """Parse the catalogue files present in ``folder``: movies (required), links, tags, users, genome."""
    specs = LAYOUTS[layout]
    if not (folder / specs["movies"].filename).is_file():
        raise DataError(f"{specs['movies'].filename} not found in {folder}")
    enc = encoding if layout == "dat" else None
    raw = {k: read_table(folder / s.filename, s, enc)
           for k, s in specs.items() if k in _CATALOG_KEYS and (folder / s.filename).is_file()}
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


def _catalog_from_tables(tables: dict[str, pa.Table]) -> Catalog:
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


# --------------------------------------------------------------------------------------------- cache


def _fingerprint(kind: str, name: str, files: list[Path]) -> str:
    stats = []
    for f in sorted(files):
        st = f.stat()
        stats.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps([FORMAT_VERSION, kind, name, stats]).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:20]


def _entry_dir(kind: str, name: str, files: list[Path]) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "data"
    return cache_dir() / "parsed" / f"{slug}-{kind}-{_fingerprint(kind, name, files)}"


def _read_entry(entry: Path) -> dict[str, pa.Table] | None:
    """The tables of a complete cache entry, or None if absent or unreadable."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            return None
        return {t: pq.read_table(entry / f"{t}.parquet", memory_map=True) for t in meta["tables"]}
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def _write_entry(entry: Path, tables: dict[str, pa.Table], info: dict) -> None:
    """Write a cache entry atomically (temp folder + rename); a failed write leaves nothing behind."""

    def write(tmp: Path) -> None:
        for t, table in tables.items():
            _write_parquet(table, tmp / f"{t}.parquet")
        meta = {"format_version": FORMAT_VERSION, "tables": list(tables), **info}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")

    try:
        atomic_write_dir(entry, write)
    except OSError as e:  # read-only or full disk: the data is still usable, just not cached
        warnings.warn(f"could not write the cache entry {entry}: {e}", stacklevel=3)


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, row_group_size=max(table.num_rows, 1), compression="lz4")


def _cached(kind: str, name: str, files: list[Path], build: Callable[[], dict[str, pa.Table]],
            info: dict) -> dict[str, pa.Table]:
    entry = _entry_dir(kind, name, files)
    tables = _read_entry(entry)
    if tables is None:
        tables = build()
        _write_entry(entry, tables, info)
    return tables


def _np(col: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """Column as numpy without a copy where possible (one chunk, no nulls, same dtype)."""
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    out = arr.to_numpy(zero_copy_only=False)
    return out if out.dtype == dtype else out.astype(dtype)


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Source:
    name: str
    folder: Path
    layout: str
    encoding: str | None  # None: per-file default (with utf-8 -> latin-1 fallback)


def _resolve(name_or_path: str | os.PathLike, *, need: str, fetch_missing: bool, progress: bool) -> _Source:
    key = os.fspath(name_or_path)
    rel = RELEASES.get(key)
    if rel is not None:
        folder = find_release_dir(key, need=need)
        if folder is None and need == "movies":
            folder = find_release_dir(key, need="ratings")
        if folder is None:
            if not fetch_missing:
                raise MovieRecError(
                    f"{key} is not available locally: run `movierec data fetch {key}`, "
                    f"`movierec data import PATH`, or set MOVIEREC_DATA_DIR to a folder holding it"
                )
            folder = fetch(key, progress=progress)
        layout = detect_layout(folder)
        return _Source(key, folder, layout, rel.encoding if layout == rel.layout else None)
    entry = _imported().get(key)
    if entry is not None:
        folder = Path(entry["path"])
        if not folder.is_dir():
            raise DataError(f"imported dataset {key!r} points to a missing folder; import it again", folder)
        return _Source(key, folder, detect_layout(folder), None)
    p = Path(key).expanduser()
    if p.is_dir():
        p = p.resolve()
        return _Source(p.name, p, detect_layout(p), None)
    known = ", ".join(RELEASES)
    raise UnknownDatasetError(
        f"unknown dataset {key!r}: not a release ({known}), not an imported name, and not a folder"
    )


def _catalog_tables(src: _Source) -> dict[str, pa.Table]:
    specs = LAYOUTS[src.layout]
    files = [src.folder / s.filename for k, s in specs.items()
             if k in _CATALOG_KEYS and (src.folder / s.filename).is_file()]
    if not (src.folder / specs["movies"].filename).is_file():
        raise DataError(f"{specs['movies'].filename} not found in {src.folder}")
    return _cached("catalog", src.name, files, lambda: _parse_catalog(src.folder, src.layout, src.encoding),
                   {"source": str(src.folder), "layout": src.layout})


def load_catalog(name_or_path: str | os.PathLike, *, fetch_missing: bool = True, progress: bool = False) -> Catalog:
    """The movie catalogue of a release, imported name or folder (ratings need not be present).

    movies: movieId int64, title str, year float64 (NaN if none), genres list[str], and imdbId str /
    tmdbId Int64 where links exist; plus tags, users, genome tables where present.
    """
    src = _resolve(name_or_path, need="movies", fetch_missing=fetch_missing, progress=progress)
    if src.layout == "ncf":
        raise DataError("an NCF-format folder has no movie catalogue", src.folder)
    return _catalog_from_tables(_catalog_tables(src))


def _build_ratings(src: _Source, progress: bool) -> dict[str, pa.Table]:
    spec = LAYOUTS[src.layout]["ratings"]
    path = src.folder / spec.filename
    if progress:
        from rich.console import Console

        with Console(stderr=True).status(f"parsing {path} ..."):
            table = read_table(path, spec, src.encoding)
    else:
        table = read_table(path, spec, src.encoding)
    # split_blocks: one numpy block per column, no consolidation copy
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    ds = build_dataset(src.name, frame, None, str(src.folder))
    it = ds.interactions
    return {
        "interactions": pa.table({"user": it.user, "item": it.item, "rating": it.rating, "timestamp": it.timestamp}),
        "user_ids": pa.table({"id": ds.users.ids}),
        "item_ids": pa.table({"id": ds.items.ids}),
    }


def load_dataset(
    name_or_path: str | os.PathLike, *, fetch_missing: bool = True, progress: bool = False
) -> Dataset:
    """Load a release name ("ml-1m"), an imported name, or an extracted folder of any layout.

    Returns a Dataset: interactions (user/item int32 indices, rating float32, timestamp int64), the id
    maps, and the catalogue (None if the folder has no movies file). NCF-format folders are delegated to
    :func:`movierec.data.splits.load_ncf_folder` and come with their predefined split. Missing releases
    are downloaded when ``fetch_missing``. Parsed data is cached as Parquet (see :func:`cache_dir`).
    """
    src = _resolve(name_or_path, need="ratings", fetch_missing=fetch_missing, progress=progress)
    if src.layout == "ncf":
        from movierec.data.splits import load_ncf_folder

        return load_ncf_folder(src.folder)
    spec = LAYOUTS[src.layout]["ratings"]
    ratings_path = src.folder / spec.filename
    if not ratings_path.is_file():
        raise DataError(f"{spec.filename} not found in {src.folder}")
    tables = _cached("ratings", src.name, [ratings_path], lambda: _build_ratings(src, progress),
                     {"source": str(src.folder), "layout": src.layout})
    catalog = None
    if (src.folder / LAYOUTS[src.layout]["movies"].filename).is_file():
        catalog = _catalog_from_tables(_catalog_tables(src))
    it = tables["interactions"]
    users = IdMap(_np(tables["user_ids"].column("id"), np.int64), "user")
    items = IdMap(_np(tables["item_ids"].column("id"), np.int64), "movie")
    inter = Interactions(
        _np(it.column("user"), np.int32), _np(it.column("item"), np.int32),
        _np(it.column("rating"), np.float32), _np(it.column("timestamp"), np.int64), len(users), len(items),
    )
    return Dataset(src.name, inter, users, items, catalog, None, str(src.folder))


def clear_cache(parsed_only: bool = True) -> None:
    """Delete the parsed-table cache (and, unless ``parsed_only``, the downloaded releases too)."""
    shutil.rmtree(cache_dir() / "parsed", ignore_errors=True)
    if not parsed_only:
        shutil.rmtree(_releases_dir(), ignore_errors=True)


__all__ = [
    "FORMAT_VERSION", "LAYOUTS", "RELEASES", "FileSpec", "Release", "cache_dir", "clear_cache",
    "detect_layout", "fetch", "find_release_dir", "import_folder", "list_releases", "load_catalog",
    "load_dataset", "read_table", "split_title_year",
]
