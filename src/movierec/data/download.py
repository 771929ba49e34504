"""Downloading a release: stream the zip, verify its checksum, extract it safely into the cache.

:func:`fetch` is the entry point; without a network it fails with instructions for getting the data in
by hand (``movierec data import`` or ``$MOVIEREC_DATA_DIR``). Nothing partial is ever left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from movierec.data.cache import releases_dir
from movierec.data.releases import RELEASES, Release, find_release_dir
from movierec.errors import DataError, MovieRecError, UnknownDatasetError
from movierec.fsutil import atomic_write_dir, locked


def _no_network_error(rel: Release, reason: object, partial: Path | None = None) -> MovieRecError:
    have = "" if partial is None else (
        f"{partial} holds only the catalogue (no {rel.files['ratings'].filename}) and the ")
    return MovieRecError(
        f"{have}download of {rel.url} failed ({reason}): no network connection? "
        f"Get {rel.zip_name or rel.name + '.zip'} elsewhere, extract it and run `movierec data import PATH`, "
        f"or set MOVIEREC_DATA_DIR to a folder holding the extracted '{rel.folder}' folder."
    )


def _missing_files(folder: Path, rel: Release) -> list[str]:
    """The ratings and movies files of ``rel``'s layout that ``folder`` lacks."""
    return [rel.files[k].filename for k in ("ratings", "movies") if not (folder / rel.files[k].filename).is_file()]


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

    Returns at once if a complete extracted copy (ratings file included) is already found (see
    :func:`find_release_dir`); a catalogue-only copy does not count. After extraction the ratings and movies
    files must be there (DataError naming what is missing otherwise, and nothing is kept). Raises
    MovieRecError with instructions when there is no network, or on a checksum mismatch.
    """
    rel = RELEASES.get(name)
    if rel is None:
        raise UnknownDatasetError(f"unknown release {name!r}; known releases: {', '.join(RELEASES)}")
    found = find_release_dir(name)
    if found is not None:
        return found
    with locked(releases_dir() / rel.folder, timeout=3600):  # a parallel fetch of it finishes first, then is used
        return find_release_dir(name) or _fetch(rel, progress)


def _fetch(rel: Release, progress: bool) -> Path:
    name = rel.name
    partial = find_release_dir(name, need="movies")  # a catalogue-only copy does not count: get the ratings
    releases = releases_dir()
    releases.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{rel.name}.zip.part-", dir=releases)
    os.close(fd)
    tmp_zip = Path(tmp_name)
    try:
        try:
            sha, md5 = _download(rel.url, tmp_zip, progress, rel.size_bytes)
        except (urllib.error.URLError, OSError) as e:
            raise _no_network_error(rel, getattr(e, "reason", e), partial) from e
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
            missing = _missing_files(tmp, rel)
            if missing:
                raise DataError(f"the zip's folder {rel.folder!r} has no {' and no '.join(missing)}; nothing "
                                "was kept", rel.url)

        folder = atomic_write_dir(releases / rel.folder, extract)
        missing = _missing_files(folder, rel)
        if missing:  # pragma: no cover - checked before the rename; only another process could get here
            raise DataError(f"{' and '.join(missing)} missing after extraction", folder)
        return folder
    finally:
        tmp_zip.unlink(missing_ok=True)



__all__ = ["fetch"]
