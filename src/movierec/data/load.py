"""Loading a data set: resolve a release name, imported name or folder, then parse it or read it from the cache.

:func:`load_dataset` gives a :class:`~movierec.data.dataset.Dataset` (ratings + catalogue),
:func:`load_catalog` the movie catalogue alone (for releases shipped without ratings). Missing releases
are fetched (:func:`movierec.data.download.fetch`) unless ``fetch_missing`` is False.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from movierec.data.cache import cached
from movierec.data.dataset import Catalog, Dataset, IdMap, Interactions
from movierec.data.download import fetch
from movierec.data.parse import catalog_from_tables, parse_catalog, parse_ratings
from movierec.data.releases import CATALOG_KEYS, LAYOUTS, RELEASES, detect_layout, find_release_dir, imported
from movierec.errors import DataError, MovieRecError, UnknownDatasetError


def _np(col: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """Column as numpy without a copy where possible (one chunk, no nulls, same dtype)."""
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    out = arr.to_numpy(zero_copy_only=False)
    return out if out.dtype == dtype else out.astype(dtype)


@dataclass(frozen=True)
class _Source:
    """Where a data set's files are: its name, folder, layout, and text encoding."""

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
    entry = imported().get(key)
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
    """The catalogue tables of ``src`` (see :func:`movierec.data.parse.parse_catalog`), cached."""
    specs = LAYOUTS[src.layout]
    files = [src.folder / s.filename for k, s in specs.items()
             if k in CATALOG_KEYS and (src.folder / s.filename).is_file()]
    if not (src.folder / specs["movies"].filename).is_file():
        raise DataError(f"{specs['movies'].filename} not found in {src.folder}")
    return cached("catalog", src.name, files, lambda: parse_catalog(src.folder, src.layout, src.encoding),
                  {"source": str(src.folder), "layout": src.layout})


def load_catalog(name_or_path: str | os.PathLike, *, fetch_missing: bool = True, progress: bool = False) -> Catalog:
    """The movie catalogue of a release, imported name or folder (ratings need not be present).

    movies: movieId int64, title str, year float64 (NaN if none), genres list[str], and imdbId str /
    tmdbId Int64 where links exist; plus tags, users, genome tables where present.
    """
    src = _resolve(name_or_path, need="movies", fetch_missing=fetch_missing, progress=progress)
    if src.layout == "ncf":
        raise DataError("an NCF-format folder has no movie catalogue", src.folder)
    return catalog_from_tables(_catalog_tables(src))


def load_dataset(
    name_or_path: str | os.PathLike, *, fetch_missing: bool = True, progress: bool = False,
    duplicates: str = "error",
) -> Dataset:
    """Load a release name ("ml-1m"), an imported name, or an extracted folder of any layout.

    Returns a Dataset: interactions (user/item int32 indices, rating float32, timestamp int64), the id
    maps, and the catalogue (None if the folder has no movies file). NCF-format folders are delegated to
    :func:`movierec.data.splits.load_ncf_folder` and come with their predefined split. Missing releases
    are downloaded when ``fetch_missing``. Parsed data is cached as Parquet (see
    :func:`movierec.data.cache.cache_dir`). Ratings are validated when parsed
    (:func:`movierec.data.parse.validate_ratings`): a (user, movie) pair rated twice is an error unless
    ``duplicates="keep-latest"``.
    """
    src = _resolve(name_or_path, need="ratings", fetch_missing=fetch_missing, progress=progress)
    if src.layout == "ncf":
        from movierec.data.splits import load_ncf_folder

        return load_ncf_folder(src.folder)
    spec = LAYOUTS[src.layout]["ratings"]
    ratings_path = src.folder / spec.filename
    if ratings_path.exists() and not ratings_path.is_file():
        raise DataError("not a file (a folder or a special file where the ratings should be)", ratings_path)
    if not ratings_path.is_file():
        raise DataError(f"{spec.filename} not found in {src.folder}")
    kind = "ratings" if duplicates == "error" else f"ratings-{duplicates}"  # another result, another entry
    tables = cached(kind, src.name, [ratings_path],
                    lambda: parse_ratings(src.name, src.folder, src.layout, src.encoding, progress, duplicates),
                    {"source": str(src.folder), "layout": src.layout})
    catalog = None
    if (src.folder / LAYOUTS[src.layout]["movies"].filename).is_file():
        catalog = catalog_from_tables(_catalog_tables(src))
    it = tables["interactions"]
    users = IdMap(_np(tables["user_ids"].column("id"), np.int64), "user")
    items = IdMap(_np(tables["item_ids"].column("id"), np.int64), "movie")
    inter = Interactions(
        _np(it.column("user"), np.int32), _np(it.column("item"), np.int32),
        _np(it.column("rating"), np.float32), _np(it.column("timestamp"), np.int64), len(users), len(items),
    )
    users, items = _with_labels(src.folder, users, items)
    return Dataset(src.name, inter, users, items, catalog, None, str(src.folder))


def _with_labels(folder: Path, users: IdMap, items: IdMap) -> tuple[IdMap, IdMap]:
    """The id maps with the original ids of own data imported with string ids (labels.parquet, read directly:
    it is small, and the dataset's fingerprint covers the labels); unchanged where there is no such file. An id
    without a label (integer ids kept) is labelled with itself."""
    from movierec.data.own import read_labels

    labels = read_labels(folder)
    if labels is None:
        return users, items
    out = []
    for idmap in (users, items):
        if idmap.kind not in labels:
            out.append(idmap.with_labels(idmap.ids.astype(str).astype(object)))
            continue
        ids, text = labels[idmap.kind]
        order = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids[order], idmap.ids)
        pos = np.minimum(pos, max(len(ids) - 1, 0))
        found = len(ids) > 0 and (ids[order][pos] == idmap.ids)
        result = idmap.ids.astype(str).astype(object)
        if len(ids):
            result[found] = text[order][pos][found]
        out.append(idmap.with_labels(result))
    return out[0], out[1]


__all__ = ["load_catalog", "load_dataset"]
