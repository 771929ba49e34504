"""The MovieLens release registry: file layouts, the known releases, and finding or importing a local copy.

:data:`LAYOUTS` describes each layout's files (:class:`FileSpec`: file name, separator, typed columns);
:data:`RELEASES` the official releases (:class:`Release`: zip URL, folder, layout, checksums). A release is
found locally by :func:`find_release_dir` (``$MOVIEREC_DATA_DIR``, the cache's extracted releases, then
names registered by :func:`import_folder`); :func:`detect_layout` tells which layout a folder holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from movierec.data.cache import cache_dir, releases_dir
from movierec.errors import DataError, MovieRecError
from movierec.fsutil import atomic_write_bytes, locked

BASE_URL = "https://files.grouplens.org/datasets/movielens"

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
# ml-100k's genre flags, the columns g0..g18 of u.item in this order
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

LAYOUTS: dict[str, dict[str, FileSpec]] = {
    "ml-100k": {
        "ratings": FileSpec("ratings", "u.data", "\t", _RATING_COLS, header=False),
        "movies": FileSpec(
            "movies", "u.item", "|",
            (("movieId", "int64"), ("title", "string"), ("release_date", "string"),
             ("video_release_date", "string"), ("imdb_url", "string"),
             *((f"g{i}", "int8") for i in range(len(GENRES_100K)))),
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

# the files of a layout that make up its catalogue (everything but the ratings)
CATALOG_KEYS = ("movies", "links", "tags", "users", "genome_scores", "genome_tags")

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

# --------------------------------------------------------------------------------------------- local copies


def _registry_path() -> Path:
    return cache_dir() / "imported.json"


def imported() -> dict[str, dict]:
    """The names registered by :func:`import_folder`: name -> {"path": folder, "layout": layout}."""
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


def _release_candidates(name: str) -> list[Path]:
    """The folders where release ``name`` may be, in search order ($MOVIEREC_DATA_DIR, then the cache)."""
    rel = RELEASES[name]
    candidates: list[Path] = []
    for d in os.environ.get("MOVIEREC_DATA_DIR", "").split(os.pathsep):
        if d:
            base = Path(d).expanduser()
            candidates += [base / name, base / rel.folder]
            if base.name in (name, rel.folder):
                candidates.append(base)
    candidates.append(releases_dir() / rel.folder)
    return candidates


def find_release_dir(name: str, *, need: str = "ratings") -> Path | None:
    """Folder holding an extracted copy of release (or imported name) ``name``, or None.

    Looks, in order, in each folder of ``$MOVIEREC_DATA_DIR`` (for ``<dir>/<name>`` or
    ``<dir>/<zip folder>``), in the cache's extracted releases, then in the imported names.
    ``need`` is the file that must be present: "ratings" (default) or "movies" (catalogue only).
    """
    rel = RELEASES.get(name)
    if rel is not None:
        for c in _release_candidates(name):
            if c.is_dir() and _has_file(c, rel.layout, need):
                return c.resolve()
    entry = imported().get(name)
    if entry is not None:
        p = Path(entry["path"])
        layout = entry.get("layout")
        if p.is_dir() and (layout not in LAYOUTS or _has_file(p, layout, need)):
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


def folder_status(folder: str | Path, layout: str | None = None) -> dict:
    """What a local copy holds: {"status", "path", "missing"}.

    status is "complete" (ratings and movies files), "catalogue only (no ratings file)", "ratings only (no
    movies file)" or "incomplete (no ratings or movies file)"; missing names the absent files. An NCF-format
    folder is "complete" (its split files are its ratings; it has no catalogue).
    """
    p = Path(folder)
    if layout is None:
        try:
            layout = detect_layout(p)
        except DataError:
            layout = None
    if layout == "ncf":
        return {"status": "complete", "path": str(p), "missing": []}
    if layout not in LAYOUTS:
        return {"status": "incomplete (no ratings or movies file)", "path": str(p), "missing": []}
    missing = [LAYOUTS[layout][k].filename for k in ("ratings", "movies") if not _has_file(p, layout, k)]
    has_ratings, has_movies = _has_file(p, layout, "ratings"), _has_file(p, layout, "movies")
    status = ("complete" if has_ratings and has_movies else "catalogue only (no ratings file)" if has_movies
              else "ratings only (no movies file)" if has_ratings else "incomplete (no ratings or movies file)")
    return {"status": status, "path": str(p), "missing": missing}


def release_status(name: str) -> dict:
    """Where release ``name`` is on this machine and what that copy holds (see :func:`folder_status`).

    A complete copy wins over a catalogue-only one; a folder that holds neither file (e.g. only links) is
    reported as "incomplete"; with no folder at all the status is "not downloaded" and path is None.
    """
    rel = RELEASES[name]
    where = find_release_dir(name) or find_release_dir(name, need="movies")
    if where is not None:
        return folder_status(where)  # an imported folder of that name may have another layout
    for c in _release_candidates(name):  # a folder that holds some of the release's files, but neither
        if c.is_dir() and any((c / spec.filename).is_file() for spec in rel.files.values()):
            return folder_status(c.resolve(), rel.layout)
    return {"status": "not downloaded", "path": None,
            "missing": [rel.files["ratings"].filename, rel.files["movies"].filename]}


def import_target(path: str | Path, name: str | None = None) -> tuple[Path, str, str]:
    """Check an import before any work: (absolute folder, its layout, the name) or an error for a folder with no
    MovieLens files or an invalid name."""
    p = Path(path).expanduser().resolve()
    layout = detect_layout(p)
    name = name or p.name
    if not name or name != name.strip() or "/" in name or os.sep in name:
        raise MovieRecError(f"invalid dataset name {name!r}")
    return p, layout, name


def import_folder(path: str | Path, name: str | None = None) -> str:
    """Register an extracted folder under ``name`` (default: the folder's name); returns the name.

    No data is copied: the cache's ``imported.json`` maps the name to the folder's absolute path. The files are
    not parsed here (this module sits below the parser): ``movierec data import`` parses and validates them
    first, through ``load_dataset`` / ``load_catalog`` on the folder, and registers nothing when that fails.
    """
    p, layout, name = import_target(path, name)
    with locked(_registry_path()):  # parallel imports each add their name: read and rewrite under one lock
        reg = imported()
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
    """One dict per release and imported name: name, description, size (of the zip), status, path, missing,
    location.

    status says what the local copy holds (see :func:`folder_status`: "complete", "catalogue only (no ratings
    file)", ...), or "not downloaded" / "missing" (an imported folder that is gone); path is the folder (None
    when there is none); missing names the absent ratings/movies files; location is the path, or "not
    downloaded" / "missing: PATH".
    """
    out = []
    for rel in RELEASES.values():
        st = release_status(rel.name)
        out.append({
            "name": rel.name, "description": rel.description, "size": _human_size(rel.size_bytes), **st,
            "location": st["path"] or "not downloaded",
        })
    for name, entry in sorted(imported().items()):
        if name not in RELEASES:
            if Path(entry["path"]).is_dir():
                st = folder_status(entry["path"], entry.get("layout"))
                location = entry["path"]
            else:
                st = {"status": "missing", "path": entry["path"], "missing": []}
                location = f"missing: {entry['path']}"
            out.append({
                "name": name, "description": f"imported ({entry.get('layout', '?')} layout)", "size": "", **st,
                "location": location,
            })
    return out


__all__ = [
    "BASE_URL", "CATALOG_KEYS", "GENRES_100K", "LAYOUTS", "RELEASES", "FileSpec", "Release", "detect_layout",
    "find_release_dir", "folder_status", "import_folder", "import_target", "imported", "list_releases",
    "release_status",
]
