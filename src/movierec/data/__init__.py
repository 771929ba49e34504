"""MovieLens data: containers, the release registry, fetching, parsing and caching, splits, sampling.

Modules, lowest first: :mod:`~movierec.data.dataset` (Dataset, Catalog, IdMap, Interactions),
:mod:`~movierec.data.cache` (the cache folder and parsed-table cache), :mod:`~movierec.data.releases` (layouts,
known releases, locating and importing folders), :mod:`~movierec.data.download` (``fetch``: download and extract),
:mod:`~movierec.data.parse` (reading files), :mod:`~movierec.data.load` (``load_dataset``, ``load_catalog``),
:mod:`~movierec.data.features` (item feature matrices), plus splits, sampling and synthetic data.

The loading API below is imported on first use, so importing :mod:`movierec.data` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from movierec.data.dataset import Catalog, Dataset, IdMap, Interactions, UnknownIdError

if TYPE_CHECKING:
    from movierec.data.cache import cache_dir, clear_cache
    from movierec.data.download import fetch
    from movierec.data.load import load_catalog, load_dataset
    from movierec.data.releases import import_folder, list_releases

_LAZY = {
    "cache_dir": "cache", "clear_cache": "cache", "fetch": "download", "import_folder": "releases",
    "list_releases": "releases", "load_catalog": "load", "load_dataset": "load",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"movierec.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Catalog", "Dataset", "IdMap", "Interactions", "UnknownIdError", "cache_dir", "clear_cache", "fetch",
    "import_folder", "list_releases", "load_catalog", "load_dataset",
]
