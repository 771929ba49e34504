"""Atomic file-system writes: a cache, bundle or checkpoint is complete or absent, never half-written."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_dir(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create folder ``path`` by filling a temporary sibling with ``write(tmp)`` and renaming it into place.

    An existing folder of that name is replaced only once the new one is complete; if ``write`` raises,
    the temporary folder is removed and ``path`` is left as it was. The new folder and everything in it get
    the permissions the umask gives (0755/0644 under umask 022), not ``mkdtemp``'s private 0700.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        write(tmp)
        _apply_umask(tmp)  # mkdtemp makes 0700, safetensors and mkstemp 0600: give what the umask gives
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: str | Path, frame: Any) -> Path:
    """Write a pandas DataFrame as Parquet (no index) through :func:`atomic_write_bytes`."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux 4.7+)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """Give folder ``root`` and everything in it the permissions that ``mkdir``/``open`` give under the umask.

    Folders get ``0o777 & ~umask``; files ``0o666 & ~umask`` (``0o777 & ~umask`` when they were executable).
    Used on a temporary folder before it is renamed into place, since ``tempfile.mkdtemp`` makes folders 0700
    and some writers (``mkstemp``, safetensors) make files 0600. Symbolic links are left alone.
    """
    mask = _umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    for folder, dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(p, dir_mode if st.st_mode & 0o111 else file_mode)  # executables: as created 0o777
        for name in dirs:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                os.chmod(p, dir_mode)
    os.chmod(root, dir_mode)


# -- output folders: write only where we may ------------------------------------------------------------
MARKER = ".movierec-output.json"  # names the kind of output a folder holds (written when a command claims it)
# what older folders without a marker look like, by kind (every listed file must be there)
_LEGACY = {
    "study": ("study.json",), "experiment": ("experiment.json",), "eda": ("summary.json", "eda.html"),
    "split": ("split/split.json",), "segments": ("segments.parquet",), "compare": ("results.json",),
}


def output_kind(path: str | Path) -> str | None:
    """The kind of movierec output folder ``path`` is ("run", "study", "experiment", "eda", "split",
    "segments", "compare"), or None when it is not one (or does not exist)."""
    import json

    path = Path(path)
    if not path.is_dir():
        return None
    try:
        if (path / MARKER).is_file():
            return str(json.loads((path / MARKER).read_text()).get("kind")) or None
        if (path / "config.json").is_file() and json.loads((path / "config.json").read_text()).get(
                "format") == "movierec-bundle":
            return "run"
    except (OSError, ValueError):
        return None
    for kind, files in _LEGACY.items():
        if all((path / f).exists() for f in files):
            return kind
    return None


def cache_dir() -> Path:
    """movierec's cache folder: ``$MOVIEREC_CACHE_DIR`` or the per-user cache (platformdirs)."""
    env = os.environ.get("MOVIEREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("movierec"))


def data_home() -> Path:
    """movierec's folder for data it keeps for the user (the served people's database by default):
    ``$MOVIEREC_HOME`` or the per-user data folder (platformdirs). Never cleared as a cache is."""
    env = os.environ.get("MOVIEREC_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("movierec"))


# -- advisory locks: one writer per output and registry ----------------------------------------------------
_HELD: dict[str, Any] = {}  # real path -> the FileLock this process holds on it until it ends


def _lock_file(path: str | Path) -> Path:
    """The lock file of ``path``: ``<cache_dir>/locks/<hash of its real path>.lock`` (outside the user's folders,
    so a lock leaves nothing beside the output; a temporary folder when the cache is not writable)."""
    name = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".lock"
    for root in (cache_dir() / "locks", Path(tempfile.gettempdir()) / f"movierec-locks-{os.getuid()}"):
        try:
            root.mkdir(parents=True, exist_ok=True)
            if os.access(root, os.W_OK):
                return root / name
        except OSError:
            continue
    raise OSError(f"no writable folder for movierec's lock files (tried {cache_dir() / 'locks'})")


def hold_lock(path: str | Path, option: str = "--out", shown: str | None = None) -> None:
    """Hold an advisory lock on output ``path`` until this process ends: a second process that claims the same
    output (a folder or a registered name) refuses in one line instead of both writing it and one result being
    lost. Taking it again in the same process is a no-op. Locks are ``flock`` locks (the ``filelock``
    package), released by the kernel when the process ends, however it ends. ``shown``: what the refusal calls
    the output (default: ``path``)."""
    from filelock import FileLock, Timeout

    from movierec.errors import MovieRecError

    key = os.path.realpath(path)
    if key in _HELD:
        return
    lock = FileLock(_lock_file(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise MovieRecError(f"{option} {shown or path}: another movierec command is writing it right now; wait for "
                            "it to finish, or choose another") from None
    _HELD[key] = lock


def release_locks() -> None:
    """Let go of every lock :func:`hold_lock` took (the CLI does at the end of each command, so a command run
    in-process, as the tests do, holds nothing afterwards)."""
    while _HELD:
        _HELD.popitem()[1].release()


@contextmanager
def locked(path: str | Path, timeout: float = 120.0) -> Iterator[None]:
    """Hold the advisory lock of ``path`` (a registry file) for a short read-modify-write, waiting up to
    ``timeout`` seconds for another process that holds it."""
    from filelock import FileLock, Timeout

    from movierec.errors import MovieRecError

    lock = FileLock(_lock_file(path), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout:
        raise MovieRecError(f"{path}: another movierec command held its lock for over {timeout:.0f} s; "
                            "try again") from None


def claim_output(path: str | Path, kind: str, force: bool = False, option: str = "--out",
                 create: bool = True, lock: bool = True) -> Path:
    """Check, before any work, that a command of ``kind`` may write its output at ``path``; return it.

    Allowed: a path that does not exist, an empty folder, or a folder this kind of command wrote (a study or
    an experiment continues there; a run folder is replaced only with ``force``). Refused with one line:
    a regular file, a folder holding anything else (a dataset, the user's own files), a folder of another
    kind, and a location that cannot be written. For every kind but "run" (a bundle, written atomically as
    a whole) the folder is created with a marker naming its kind, so later commands recognise it. With ``lock``
    (the default) the process holds :func:`hold_lock` on ``path`` from here until it ends, so a second command
    writing the same output refuses in one line (a data-parallel run's workers pass False: their launcher holds
    it).
    """

    from movierec.errors import MovieRecError

    path = Path(path)
    if lock:  # first: what is checked below cannot change under us
        hold_lock(path, option)
    if path.is_symlink() and not path.exists():
        raise MovieRecError(f"{option} {path}: a broken symbolic link; choose another path")
    if path.exists() and not path.is_dir():
        raise MovieRecError(f"{option} {path}: is a file, not a folder; choose a new folder")
    if path.is_dir():
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as e:
            raise MovieRecError(f"{option} {path}: cannot be read ({e.strerror})") from None
        if entries:
            found = output_kind(path)
            if found is None:
                shown = next((e for e in entries if e != MARKER), entries[0])
                raise MovieRecError(f"{option} {path}: holds files movierec did not write (e.g. {shown!r}); "
                                    "choose a new or empty folder")
            if found != kind:
                raise MovieRecError(f"{option} {path}: holds a {found} output, not a {kind} output; choose "
                                    "another folder")
            if kind == "run" and not force:
                raise MovieRecError(f"{option} {path}: a run folder is already there; pass --force to replace it")
    ancestor = path if path.exists() else next(p for p in path.parents if p.exists())
    try:  # a real write, removed at once: permission bits say nothing for root or a read-only file system
        fd, probe = tempfile.mkstemp(prefix=".movierec-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MovieRecError(f"{option} {path}: {ancestor} is not writable ({e.strerror})") from None
    if kind != "run" and create:
        mark_output(path, kind)
    return path


def mark_output(path: str | Path, kind: str) -> Path:
    """Create output folder ``path`` (if needed) with the marker naming its ``kind``."""
    import json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).exists():
        atomic_write_text(path / MARKER, json.dumps({"kind": kind}))
    return path


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(frame: Any, index: bool = False) -> str:
    """``frame.to_csv(index=index)`` for a user to open: a text cell (or index label) that a spreadsheet would
    run as a formula (it starts with = + - @, a tab or a carriage return, and is not a number) gets a leading
    ``'``, as OWASP's CSV-injection advice says. Numbers and missing cells are written as they are."""
    import pandas as pd

    def safe(values: Any) -> Any:
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            return values
        text = values.astype("string")
        risky = text.str.startswith(_FORMULA_START).fillna(False) & pd.to_numeric(text, errors="coerce").isna()
        return values.where(~risky.to_numpy(), "'" + text) if risky.any() else values

    out = frame.copy()
    for col in out.columns:
        out[col] = safe(out[col])
    if index and not isinstance(out.index, pd.MultiIndex):
        out.index = pd.Index(safe(out.index.to_series()).to_numpy(), name=out.index.name)
    return out.to_csv(index=index)


def read_json(path: str | Path, hint: str = "") -> Any:
    """The JSON held in ``path``; a one-line DataError naming the file (and the line for bad JSON, followed by
    ``hint``) when it cannot be read or parsed."""
    import json

    from movierec.errors import DataError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read ({getattr(e, 'strerror', None) or e})", path) from e
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg}){hint}", path, e.lineno) from e


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document in ``path``; a one-line MovieRecError naming the file when it is missing, unreadable
    or not TOML (the one reader of experiment, study, tune and ``train --config`` files)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from movierec.errors import MovieRecError

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MovieRecError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise MovieRecError(f"{path}: a folder, not a config file") from None
    except OSError as e:
        raise MovieRecError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MovieRecError(f"{path}: invalid TOML ({e})") from None
