"""``movierec doctor`` and ``movierec --version``: what this installation has, in one screen."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from movierec import __version__
from movierec.cli.common import JsonOpt, console, print_json

CORE = ("numpy", "pandas", "pyarrow", "scipy", "torch", "safetensors", "typer", "rich", "platformdirs", "pydantic")
#: each extra of pyproject.toml and the import names that tell it is installed
EXTRAS = {
    "study": ("matplotlib", "seaborn", "jinja2", "sklearn"),
    "serve": ("fastapi", "uvicorn", "httpx", "threadpoolctl", "fastapi_offline"),
    "test": ("pytest", "hypothesis", "ruff", "playwright"),
}
# import name -> distribution name, where they differ
_DIST = {"sklearn": "scikit-learn", "fastapi_offline": "fastapi-offline"}


def _version(module: str) -> str | None:
    try:
        return importlib.metadata.version(_DIST.get(module, module))
    except importlib.metadata.PackageNotFoundError:
        return None if importlib.util.find_spec(module) is None else "installed"


def _torch_device() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"device": None, "note": "torch is not installed"}
    out: dict[str, Any] = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
                           "cuda_build": torch.version.cuda}
    if torch.cuda.is_available():
        gpus = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 1e9, 1)})
        out.update(device="cuda", gpus=gpus)
    else:
        out.update(device="cpu", gpus=[])
    return out


def studies_here(root: Path | None = None) -> list[dict[str, Any]]:
    """The studies under ``root``/out (default: the current folder's, where ``make run`` writes): each one's
    folder, dataset name and the folder its data was read from (so a command run outside ``make`` can find the
    same data: ``make`` sets MOVIEREC_DATA_DIR)."""
    import json

    found = []
    for f in sorted((root or Path.cwd()).glob("out/*/study.json")):
        try:
            dataset = json.loads(f.read_text()).get("dataset", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(dataset, dict) and dataset.get("name"):
            found.append({"folder": str(f.parent), "dataset": dataset["name"], "source": dataset.get("source")})
    return found


def collect() -> dict[str, Any]:
    """Everything ``doctor`` reports, as JSON-able values."""
    from movierec.data import list_releases
    from movierec.data.cache import cache_dir, folder_size

    cache = cache_dir()
    data_dirs = [d for d in os.environ.get("MOVIEREC_DATA_DIR", "").split(os.pathsep) if d]
    releases = [{"name": r["name"], "status": r.get("status"), "path": r.get("path")} for r in list_releases()]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    return {
        "movierec": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": {m: _version(m) for m in CORE},
        "extras": {name: {"installed": all(_version(m) for m in mods), "packages": {m: _version(m) for m in mods}}
                   for name, mods in EXTRAS.items()},
        "compute": _torch_device(),
        "data": {"MOVIEREC_DATA_DIR": data_dirs, "cache_releases": str(cache / "releases"),
                 "found": [r for r in releases if r["status"] not in (None, "not downloaded", "missing")],
                 "studies": studies_here()},
        "cache": {"path": str(cache), "exists": cache.is_dir(),
                  "size_mb": round(folder_size(cache) / 1e6, 1) if cache.is_dir() else 0.0,
                  "set_by": "MOVIEREC_CACHE_DIR" if os.environ.get("MOVIEREC_CACHE_DIR") else "default"},
        "chromium": chromium,
    }


def doctor_cmd(as_json: JsonOpt = False) -> None:
    """What this installation has: versions, extras, the compute device, data found, the cache, Chromium.

    Examples: movierec doctor; movierec doctor --json
    """
    info = collect()
    if as_json:
        print_json(info)
        return
    t = Table(show_header=False, title=f"movierec {info['movierec']} · Python {info['python']}", title_justify="left")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("packages", escape(", ".join(f"{k} {v or 'MISSING'}" for k, v in info["packages"].items())))
    for name, extra in info["extras"].items():
        missing = [m for m, v in extra["packages"].items() if not v]
        state = "installed" if extra["installed"] else f"not installed (missing {', '.join(missing)}; " \
                f"pip install 'movierec[{name}]')"
        t.add_row(escape(f"extra [{name}]"), escape(state))
    c = info["compute"]
    if c.get("device") == "cuda":
        device = "; ".join(f"cuda:{g['index']} {g['name']} ({g['memory_gb']} GB)" for g in c["gpus"])
    elif c.get("device") == "cpu":
        device = f"CPU, {c['cpu_threads']} torch threads (no CUDA GPU{'' if c['cuda_build'] else '; a CPU build'})"
    else:
        device = c.get("note", "unknown")
    t.add_row("compute", escape(f"torch {c.get('torch', '-')}: {device}"))
    d = info["data"]
    where = ", ".join(d["MOVIEREC_DATA_DIR"]) or "(MOVIEREC_DATA_DIR not set)"
    t.add_row("data searched", escape(f"{where}; then {d['cache_releases']}"))
    found = "; ".join(f"{r['name']} ({r['status']})" for r in d["found"]) or "nothing yet (movierec data fetch NAME)"
    t.add_row("data found", escape(found))
    for study in d["studies"]:
        t.add_row("a study here", escape(f"{study['folder']} read {study['dataset']} from {study['source']}"))
    cache = info["cache"]
    t.add_row("cache", escape(f"{cache['path']} ({cache['size_mb']} MB, set by {cache['set_by']})"
                              if cache["exists"] else f"{cache['path']} (not created yet)"))
    t.add_row("chromium", escape(info["chromium"] or "not found (only the browser tests need it; apt install "
                                                    "chromium)"))
    console.print(t)
