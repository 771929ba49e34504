"""The on-disk cache: its folder, and the parsed-table cache (Parquet entries keyed by a fingerprint).

Layout of :func:`cache_dir`::

    parsed/<name>-<kind>-<fingerprint>/   one entry: <table>.parquet files + meta.json
    releases/<folder>/                    releases extracted by :func:`movierec.data.download.fetch`
    imported.json                         names registered by :func:`movierec.data.releases.import_folder`

An entry's fingerprint covers the release name, the kind ("ratings" or "catalog"), the source files'
absolute paths, sizes and mtimes, and :data:`FORMAT_VERSION`, so changed sources or a new format simply
miss the cache. Entries are written atomically (:func:`movierec.fsutil.atomic_write_dir`, which gives the entry
and its files the permissions of the user's umask, not a temporary folder's 0700); an unreadable or incomplete
entry counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from movierec.fsutil import atomic_write_dir

FORMAT_VERSION = 2  # 2: ratings validated when parsed (range, timestamps, repeated pairs)
"""Bump when the parsed/cached representation changes: old cache entries are then ignored."""


def cache_dir() -> Path:
    """The cache folder: ``$MOVIEREC_CACHE_DIR`` or the per-user cache (platformdirs)."""
    env = os.environ.get("MOVIEREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("movierec"))


def releases_dir() -> Path:
    """Where fetched releases are extracted: ``<cache_dir>/releases``."""
    return cache_dir() / "releases"


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


def cached(kind: str, name: str, files: list[Path], build: Callable[[], dict[str, pa.Table]],
           info: dict) -> dict[str, pa.Table]:
    """The tables cached for (``kind``, ``name``, ``files``), or ``build()``'s, written to the cache first.

    info: extra JSON-able fields for the entry's meta.json (e.g. source folder and layout).
    """
    entry = _entry_dir(kind, name, files)
    tables = _read_entry(entry)
    if tables is None:
        tables = build()
        _write_entry(entry, tables, info)
    return tables


def clear_cache(parsed_only: bool = True) -> None:
    """Delete the parsed-table cache (and, unless ``parsed_only``, the downloaded releases too)."""
    shutil.rmtree(cache_dir() / "parsed", ignore_errors=True)
    if not parsed_only:
        shutil.rmtree(releases_dir(), ignore_errors=True)


__all__ = ["FORMAT_VERSION", "cache_dir", "cached", "clear_cache", "releases_dir"]
