"""Recommendation models. Every model follows the contract in :mod:`movierec.models.base` and has one line
in :mod:`movierec.models.registry`.

Classes load lazily (``from movierec.models import NeuMF`` imports torch only then), so tools that only
read bundles or data start fast. Any registered model class, and the config class beside it, is importable
from here by its class name.
"""

from __future__ import annotations

import importlib
from typing import Any

from movierec.models.registry import (
    ENTRIES,
    FAMILIES,
    REGISTRY,
    ModelEntry,
    build_model,
    family_of,
    get_model_class,
    model_entry,
    validate_settings,
)

MODEL_NAMES = tuple(REGISTRY)
# the contract's types, also imported lazily so that reading the registry (``movierec --help``) stays cheap
_CONTRACT = {"FitReport": "movierec.models.base", "Recommender": "movierec.models.base",
             "RunContext": "movierec.models.base", "History": "movierec.data.history"}


def __getattr__(name: str) -> Any:
    if name in _CONTRACT:
        return getattr(importlib.import_module(_CONTRACT[name]), name)
    for module in dict.fromkeys(e.target.split(":")[0] for e in ENTRIES):
        if name in getattr(importlib.import_module(module), "__all__", ()):
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'movierec.models' has no attribute {name!r}")


__all__ = [
    "ENTRIES", "FAMILIES", "MODEL_NAMES", "REGISTRY", "FitReport", "History", "ModelEntry", "Recommender",
    "RunContext", "build_model", "family_of", "get_model_class", "model_entry", "validate_settings",
]
