"""Importing a firm's own interactions: a CSV or Parquet file of (user, item, rating?, timestamp?), optionally
with an items file of titles and genres, turned into a MovieLens "csv" layout folder that the rest of movierec
reads like any release.

:func:`import_interactions` checks the files (one-line :class:`~movierec.errors.DataError` naming the file and
line of the first offence), keeps the latest row of each repeated (user, item) pair, maps string ids to integer
codes 1..n (in sorted order of the strings, the originals kept in ``labels.parquet``), and writes atomically::

    <cache_dir>/imported/<NAME>/ratings.csv     userId,movieId,rating,timestamp
                                movies.csv      movieId,title,genres
                                labels.parquet  kind ("user" | "movie"), id (int64), label (str); only when
                                                some ids were mapped
                                import.json     source files, columns, implicit, has_timestamps, row counts

Implicit data (no rating column) gets rating 1.0 on every row; data without timestamps gets 0 on every row
(the leave-one-out split then takes the later row of a user as the latest). The caller registers the folder
(:func:`movierec.data.releases.import_folder`) once it has loaded it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.cache import cache_dir
from movierec.data.dataset import NO_GENRE
from movierec.data.releases import RELEASES, imported
from movierec.errors import DataError, MovieRecError
from movierec.fsutil import atomic_write_dir

LABELS_FILE = "labels.parquet"
IMPORT_FILE = "import.json"
IMPORT_FORMAT = "movierec-own-import"
_INT_ID = re.compile(r"-?(?:0|[1-9]\d{0,17})")
_RATING_RANGE = (0.5, 5.0)  # what movierec's parser accepts (movierec.data.parse.RATING_RANGE)


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


def _read_frame(path: Path, sep: str) -> tuple[pd.DataFrame, bool]:
    """The file as strings (csv: every field as text; parquet: as stored) and whether it is a CSV."""
    if not path.exists():
        raise DataError("not found", path)
    if not path.is_file():
        raise DataError("not a file", path)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path), False
        except Exception as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"cannot be read as Parquet ({why})", path) from None
    if not sep:
        raise MovieRecError("--sep must not be empty")
    last: Exception | None = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                                encoding=encoding, engine="python" if len(sep) > 1 else "c")
            return frame.rename(columns=lambda c: str(c).strip()), True
        except UnicodeDecodeError as e:
            last = e
        except pd.errors.EmptyDataError:
            raise DataError("empty file", path) from None
        except (pd.errors.ParserError, ValueError, OSError) as e:
            why = " ".join(str(e).split())
            m = re.search(r"line (\d+)", why)
            raise DataError(f"cannot be read as a table separated by {sep!r} ({why[:160]})", path,
                            int(m.group(1)) if m else None) from None
    raise DataError(f"cannot be read as text ({last})", path)  # pragma: no cover - latin-1 decodes any byte


def _column(frame: pd.DataFrame, name: str, option: str, path: Path) -> str:
    if name in frame.columns:
        return name
    lower = [c for c in frame.columns if str(c).lower() == name.lower()]
    if len(lower) == 1:
        return lower[0]
    has = ", ".join(map(str, frame.columns)) or "none"
    raise DataError(f"no column {name!r} ({option}); the file has the columns {has}", path)


def _where(path: Path, is_csv: bool, row: int) -> tuple[Path, int | None, str]:
    """(path, line, suffix) of 0-based data row ``row``: a CSV's line (its header is line 1), else 'row N'."""
    return (path, row + 2, "") if is_csv else (path, None, f" (row {row + 1})")


def _text(s: pd.Series) -> pd.Series:
    return s.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).str.strip()


def _ids(values: pd.Series, kind: str, option: str, path: Path, is_csv: bool) -> pd.Series:
    values = _text(values)
    empty = np.flatnonzero((values == "").to_numpy())
    if len(empty):
        p, line, suffix = _where(path, is_csv, int(empty[0]))
        raise DataError(f"empty {kind} id in column {values.name!r} ({option}){suffix}", p, line)
    return values


def _ratings(values: pd.Series, path: Path, is_csv: bool) -> np.ndarray:
    text = _text(values)
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(num))
    if len(bad):
        p, line, suffix = _where(path, is_csv, int(bad[0]))
        raise DataError(f"rating {text.iloc[bad[0]]!r} is not a number{suffix}", p, line)
    lo, hi = _RATING_RANGE
    bad = np.flatnonzero((num < lo) | (num > hi))
    if len(bad):
        p, line, suffix = _where(path, is_csv, int(bad[0]))
        raise DataError(f"rating {num[bad[0]]:g} is outside the scale {lo:g}-{hi:g} that movierec's models and "
                        f"reports use; rescale the ratings, or leave out --rating for implicit data{suffix}", p, line)
    return num.astype(np.float32)


def _timestamps(values: pd.Series, path: Path, is_csv: bool) -> np.ndarray:
    """Seconds since the epoch: numbers as unix seconds, other values as ISO dates or datetimes (naive: UTC)."""
    text = _text(values)
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    out = np.zeros(len(text), dtype=np.int64)
    is_num = np.isfinite(num)
    out[is_num] = np.floor(num[is_num]).astype(np.int64)
    rest = np.flatnonzero(~is_num)
    if len(rest):
        parsed = pd.to_datetime(text.iloc[rest], errors="coerce", utc=True, format="ISO8601")
        ok = parsed.notna().to_numpy()
        if not ok.all():
            bad = int(rest[np.flatnonzero(~ok)[0]])
            p, line, suffix = _where(path, is_csv, bad)
            raise DataError(f"timestamp {text.iloc[bad]!r} is neither a number (unix seconds) nor an ISO date or "
                            f"datetime{suffix}", p, line)
        out[rest] = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy().astype(np.int64)
    bad = np.flatnonzero(out < 0)
    if len(bad):
        p, line, suffix = _where(path, is_csv, int(bad[0]))
        raise DataError(f"timestamp {text.iloc[bad[0]]!r} is before 1970{suffix}", p, line)
    return out


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer ids of string ids: kept when all are integers (labels None), else codes 1..n in sorted order of
    the strings, with the labels (object [n], code i+1 -> labels[i])."""
    if values.str.fullmatch(_INT_ID.pattern).all():
        return values.astype(np.int64).to_numpy(), None
    labels = np.array(sorted(set(values.tolist())), dtype=object)
    codes = np.searchsorted(labels.astype(str), values.to_numpy(dtype=str)) + 1
    return codes.astype(np.int64), labels


def _genres(value: str, genre_sep: str) -> str:
    parts = [g.strip().replace("|", "/") for g in value.split(genre_sep)] if genre_sep else [value.strip()]
    parts = [g for g in parts if g and g != NO_GENRE]
    return "|".join(dict.fromkeys(parts)) or NO_GENRE


def _check_name(name: str) -> str:
    if not name or name != name.strip() or "/" in name or "\\" in name or name in (".", ".."):
        raise MovieRecError(f"--name: invalid dataset name {name!r}")
    if name in RELEASES:
        raise MovieRecError(f"--name {name}: is the name of a MovieLens release; choose another name")
    return name


def import_interactions(
    path: str | Path, name: str, columns: OwnColumns, *, items_path: str | Path | None = None, sep: str = ",",
    genre_sep: str = "|", force: bool = False,
) -> tuple[Path, dict]:
    """Check, convert and write an own data set (see the module docstring); returns (folder, import.json's
    content). The folder is not registered here. Refuses (MovieRecError) to replace an import of the same name
    from other files or columns unless ``force``."""
    name = _check_name(name)
    path = Path(path).expanduser().resolve()
    items_file = Path(items_path).expanduser().resolve() if items_path is not None else None
    folder = imported_root() / name
    options = {
        "sep": sep, "genre_sep": genre_sep,
        "columns": {k: v for k, v in columns.__dict__.items()},
        "source": {"interactions": str(path), "items": str(items_file) if items_file else None},
    }
    _refuse_other_import(name, folder, options, force)

    frame, is_csv = _read_frame(path, sep)
    if frame.empty:
        raise DataError("holds no rows" + (" (only a header)" if is_csv else ""), path)
    ucol = _column(frame, columns.user, "--user", path)
    icol = _column(frame, columns.item, "--item", path)
    rcol = _column(frame, columns.rating, "--rating", path) if columns.rating else None
    tcol = _column(frame, columns.timestamp, "--timestamp", path) if columns.timestamp else None
    users = _ids(frame[ucol], "user", "--user", path, is_csv)
    items = _ids(frame[icol], "item", "--item", path, is_csv)
    rating = _ratings(frame[rcol], path, is_csv) if rcol else np.ones(len(frame), np.float32)
    ts = _timestamps(frame[tcol], path, is_csv) if tcol else np.zeros(len(frame), np.int64)
    n_read = len(frame)
    del frame

    # duplicated (user, item) pairs: keep the latest (timestamp, then row order)
    pairs = pd.DataFrame({"u": users.to_numpy(dtype=object), "i": items.to_numpy(dtype=object), "ts": ts,
                          "row": np.arange(n_read)})
    keep = ~pairs.sort_values(["ts", "row"], kind="stable").duplicated(["u", "i"], keep="last")
    keep_rows = np.sort(keep[keep].index.to_numpy())
    dropped = n_read - len(keep_rows)
    users, items = users.iloc[keep_rows].reset_index(drop=True), items.iloc[keep_rows].reset_index(drop=True)
    rating, ts = rating[keep_rows], ts[keep_rows]

    user_ids, user_labels = _codes(users)
    item_ids, item_labels = _codes(items)
    movie_ids = np.unique(item_ids)
    item_text = (item_labels if item_labels is not None else movie_ids.astype(str)).astype(object)
    titles = item_text.copy()
    genres = np.full(len(movie_ids), NO_GENRE, dtype=object)
    items_info: dict = {}
    if items_file is not None:
        titles, genres, items_info = _items_table(items_file, columns, sep, genre_sep, item_text, titles, genres)
    titles = np.array([" ".join(str(t).split()) or str(i) for t, i in zip(titles, item_text, strict=True)],
                      dtype=object)

    info = {
        "format": IMPORT_FORMAT, "version": 1, "name": name, **options,
        "implicit": rcol is None, "has_timestamps": tcol is not None,
        "rows_read": int(n_read), "rows_kept": len(keep_rows), "duplicates_dropped": int(dropped),
        "users": len(np.unique(user_ids)), "items": len(movie_ids),
        "user_ids": "mapped to 1..n (labels.parquet)" if user_labels is not None else "integers, kept",
        "item_ids": "mapped to 1..n (labels.parquet)" if item_labels is not None else "integers, kept",
        **items_info,
    }
    if rcol is None:
        info["note_ratings"] = "implicit feedback: every interaction has rating 1.0"
    if tcol is None:
        info["note_timestamps"] = ("no timestamps: every interaction has timestamp 0, so the leave-one-out split "
                                   "takes a user's later row in the file as the latest")
    ratings_frame = pd.DataFrame({"userId": user_ids, "movieId": item_ids, "rating": rating, "timestamp": ts})
    movies_frame = pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres})
    labels_frame = None
    if user_labels is not None or item_labels is not None:
        parts = []
        for kind, labels in (("user", user_labels), ("movie", item_labels)):
            if labels is not None:
                parts.append(pd.DataFrame({"kind": kind, "id": np.arange(1, len(labels) + 1, dtype=np.int64),
                                           "label": pd.Series(labels, dtype=object).astype(str)}))
        labels_frame = pd.concat(parts, ignore_index=True)

    def write(tmp: Path) -> None:
        ratings_frame.to_csv(tmp / "ratings.csv", index=False, float_format="%.6g")
        movies_frame.to_csv(tmp / "movies.csv", index=False)
        if labels_frame is not None:
            labels_frame.to_parquet(tmp / LABELS_FILE, index=False)
        (tmp / IMPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", "utf-8")

    atomic_write_dir(folder, write)
    return folder, info


def _items_table(items_file: Path, columns: OwnColumns, sep: str, genre_sep: str, item_text: np.ndarray,
                 titles: np.ndarray, genres: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    frame, is_csv = _read_frame(items_file, sep)
    id_col = _column(frame, columns.item_id or columns.item, "--item-id", items_file)
    ids = _ids(frame[id_col], "item", "--item-id", items_file, is_csv)
    tcol = _column(frame, columns.title, "--title", items_file) if columns.title else None
    gcol = _column(frame, columns.genres, "--genres", items_file) if columns.genres else None
    first = ~ids.duplicated(keep="first").to_numpy()
    table = pd.DataFrame({"id": ids.to_numpy(dtype=object)})
    if tcol:
        table["title"] = _text(frame[tcol]).to_numpy(dtype=object)
    if gcol:
        table["genres"] = _text(frame[gcol]).to_numpy(dtype=object)
    table = table[first].set_index("id")
    found = pd.Index(table.index).get_indexer(pd.Index(item_text.astype(str)))
    has = found >= 0
    titles, genres = titles.copy(), genres.copy()
    if tcol:
        t = table["title"].to_numpy(dtype=object)[found[has]]
        titles[has] = np.where(t == "", titles[has], t)
    if gcol:
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


__all__ = ["IMPORT_FILE", "LABELS_FILE", "OwnColumns", "import_interactions", "imported_root", "read_labels"]
