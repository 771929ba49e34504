"""The on-disk cache: its folder, and the parsed-table cache (Parquet entries keyed by a fingerprint).

Layout of :func:`cache_dir`::

    parsed/<name>-<kind>-<fingerprint>/   one entry: <table>.parquet files + meta.json
    releases/<folder>/                    releases extracted by :func:`movierec.data.download.fetch`
    imported.json                         names registered by :func:`movierec.data.releases.import_folder`

An entry's fingerprint covers the release name, the kind ("ratings" or "catalog"), :data:`FORMAT_VERSION`
and each source file's absolute path and size with, for a file of up to :data:`CONTENT_KEY_MAX_BYTES`, the
SHA-256 of its content (ml-latest-small's ratings.csv: a few milliseconds), and for a larger one its mtime,
ctime and inode instead: hashing ml-20m's 533 MB ratings.csv would cost about 0.4 s a load on a 2-core CPU
(SHA-256 at 1.3 GB/s), doubling a cached load (0.5 s), while an in-place edit cannot keep the ctime (the kernel
sets it on every write, and utime cannot set it back). Changed sources or a new format simply miss the cache.
Each table file's SHA-256 is recorded in meta.json and checked on every read: an entry whose bytes changed
(a flipped bit, a truncated file) is rebuilt, with a warning, never served. That check reads every byte of
the entry: 0.16 s for a 20M-rating interactions table (175 MB, synthetic, 2-core CPU, 2026-12-07). Each
entry's meta.json records those sources, so :func:`cache_entries` can tell a fresh entry from a stale one (a
source changed or gone, an older format) and :func:`clear_entries` removes the stale ones; reading an entry
touches its meta.json, so "last used" is the mtime.

Entries are written atomically (:func:`movierec.fsutil.atomic_write_dir`, which gives the entry and its files
the permissions of the user's umask, not a temporary folder's 0700); an unreadable or incomplete entry counts
as absent.
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

from movierec.fsutil import atomic_write_dir, cache_dir

FORMAT_VERSION = 3  # 2: ratings validated when parsed (range, timestamps, repeated pairs); 3: content digests
CONTENT_KEY_MAX_BYTES = 64 * 1024 * 1024  # sources up to this size are keyed by their content's SHA-256
_CHUNK = 8 * 1024 * 1024
"""Bump when the parsed/cached representation changes: old cache entries are then ignored."""


def releases_dir() -> Path:
    """Where fetched releases are extracted: ``<cache_dir>/releases``."""
    return cache_dir() / "releases"


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 8 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sources(files: list[Path]) -> list[list]:
    """[path, size, mtime_ns, ctime_ns, inode, content SHA-256 or None] of each source file, sorted by path."""
    out = []
    for f in sorted(files):
        st = f.stat()
        digest = file_digest(f) if st.st_size <= CONTENT_KEY_MAX_BYTES else None
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest])
    return out


def _source_key(source: list) -> list:
    """What a source contributes to the key: path, size and content digest, or the stat fields without one."""
    path, size, mtime_ns, ctime_ns, ino, digest = source
    return [path, size, digest] if digest is not None else [path, size, mtime_ns, ctime_ns, ino]


def _fingerprint(kind: str, name: str, sources: list[list]) -> str:
    blob = json.dumps([FORMAT_VERSION, kind, name, [_source_key(s) for s in sources]]).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:20]


def _entry_dir(kind: str, name: str, sources: list[list]) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "data"
    return cache_dir() / "parsed" / f"{slug}-{kind}-{_fingerprint(kind, name, sources)}"


def _read_entry(entry: Path) -> dict[str, pa.Table] | None:
    """The tables of a complete cache entry, or None if absent or unreadable."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            return None
        for t in meta["tables"]:
            if file_digest(entry / f"{t}.parquet") != meta["digests"][t]:
                warnings.warn(f"cache entry {entry}: {t}.parquet fails its integrity check (its bytes changed); "
                              "rebuilding it from the source files", stacklevel=3)
                return None
        tables = {t: pq.read_table(entry / f"{t}.parquet", memory_map=True) for t in meta["tables"]}
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None
    try:
        os.utime(meta_path)  # last used, for `movierec data cache clear --older-than`
    except OSError:
        pass
    return tables


def _write_entry(entry: Path, tables: dict[str, pa.Table], info: dict, sources: list[list] | None = None) -> None:
    """Write a cache entry atomically (temp folder + rename); a failed write leaves nothing behind. meta.json
    records each table file's SHA-256 (checked on read) and the sources the entry was built from."""

    def write(tmp: Path) -> None:
        for t, table in tables.items():
            _write_parquet(table, tmp / f"{t}.parquet")
        meta = {"format_version": FORMAT_VERSION, "tables": list(tables),
                "digests": {t: file_digest(tmp / f"{t}.parquet") for t in tables}, **info}
        if sources is not None:
            meta["sources"] = sources
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
    sources = _sources(files)
    entry = _entry_dir(kind, name, sources)
    tables = _read_entry(entry)
    if tables is None:
        tables = build()
        _write_entry(entry, tables, {"name": name, "kind": kind, **info}, sources)
    return tables


def clear_cache(parsed_only: bool = True) -> None:
    """Delete the parsed-table cache (and, unless ``parsed_only``, the downloaded releases too)."""
    shutil.rmtree(cache_dir() / "parsed", ignore_errors=True)
    if not parsed_only:
        shutil.rmtree(releases_dir(), ignore_errors=True)


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path`` (0 when it is not a folder)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _entry_status(entry: Path) -> tuple[str, dict]:
    """("fresh" | "stale: why", meta) of one parsed entry."""
    try:
        meta = json.loads((entry / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        return "stale: incomplete or unreadable", {}
    if meta.get("format_version") != FORMAT_VERSION:
        return f"stale: format {meta.get('format_version')} (this movierec reads {FORMAT_VERSION})", meta
    sources = meta.get("sources")
    if not sources:
        return "stale: sources not recorded (written by an older movierec)", meta
    for source in sources:
        path = source[0]
        p = Path(path)
        if not p.is_file():
            return f"stale: {path} is gone", meta
        try:
            now = _sources([p])[0]
        except OSError:
            return f"stale: {path} cannot be read", meta
        if _source_key(now) != _source_key(source):
            return f"stale: {path} changed", meta
    return "fresh", meta


def cache_entries() -> list[dict]:
    """Every parsed-table entry and downloaded release in the cache: kind, name, size_bytes, last_used (unix
    seconds), status ("fresh", "stale: ...", or "download" for a fetched release), path."""
    import time

    out = []
    parsed = cache_dir() / "parsed"
    for entry in sorted(parsed.iterdir()) if parsed.is_dir() else []:
        if not entry.is_dir():
            continue
        status, meta = _entry_status(entry)
        used = (entry / "meta.json").stat().st_mtime if (entry / "meta.json").exists() else entry.stat().st_mtime
        out.append({"kind": meta.get("kind", "parsed"), "name": meta.get("name", entry.name), "status": status,
                    "size_bytes": folder_size(entry), "last_used": used, "path": str(entry),
                    "age_days": round((time.time() - used) / 86400, 1)})
    releases = releases_dir()
    for folder in sorted(releases.iterdir()) if releases.is_dir() else []:
        if folder.is_dir():
            used = folder.stat().st_mtime
            out.append({"kind": "download", "name": folder.name, "status": "download",
                        "size_bytes": folder_size(folder), "last_used": used, "path": str(folder),
                        "age_days": round((time.time() - used) / 86400, 1)})
    return out


def clear_entries(older_than_days: float | None = None, everything: bool = False) -> list[dict]:
    """Remove parsed entries that are stale, or (``older_than_days``) not used for that many days, or
    (``everything``) all of them; downloaded releases are never removed. Returns the removed entries."""
    removed = []
    for e in cache_entries():
        if e["kind"] == "download":
            continue
        old = older_than_days is not None and e["age_days"] >= older_than_days
        if everything or e["status"] != "fresh" or old:
            shutil.rmtree(e["path"], ignore_errors=True)
            removed.append(e)
    return removed


__all__ = ["FORMAT_VERSION", "cache_dir", "cache_entries", "cached", "clear_cache", "clear_entries", "folder_size",
           "releases_dir"]
