"""Recommendation models. Every model follows the contract in :mod:`movierec.models.base`.

Classes load lazily (``from movierec.models import NeuMF`` imports torch only then), so tools that only
read bundles or data start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from movierec.models.base import Recommender

# name used by `movierec train NAME` -> "module:Class"
_REGISTRY = {
    "popularity": "movierec.models.popularity:Popularity",
    "itemknn": "movierec.models.itemknn:ItemKNN",
    "gmf": "movierec.models.ncf:GMF",
    "mlp": "movierec.models.ncf:MLP",
    "neumf": "movierec.models.ncf:NeuMF",
    "content": "movierec.models.content:ContentRecommender",
    "content-neural": "movierec.models.content_neural:ContentNeural",
    "neumf-features": "movierec.models.content_neural:NeuMFFeatures",
    "hybrid-blend": "movierec.models.hybrid:HybridBlend",
    "hybrid-switch": "movierec.models.hybrid:HybridSwitch",
}
# public class and config names -> module
_EXPORTS = {
    "Popularity": "popularity", "ItemKNN": "itemknn", "ItemKNNConfig": "itemknn",
    "GMF": "ncf", "MLP": "ncf", "NeuMF": "ncf", "GMFConfig": "ncf", "MLPConfig": "ncf", "NeuMFConfig": "ncf",
    "ContentRecommender": "content", "ContentConfig": "content",
    "ContentNeural": "content_neural", "NeuMFFeatures": "content_neural",
    "HybridBlend": "hybrid", "HybridSwitch": "hybrid",
}
MODEL_NAMES = tuple(_REGISTRY)

if TYPE_CHECKING:
    from movierec.models.content import ContentConfig, ContentRecommender
    from movierec.models.content_neural import ContentNeural, NeuMFFeatures
    from movierec.models.hybrid import HybridBlend, HybridSwitch
    from movierec.models.itemknn import ItemKNN, ItemKNNConfig
    from movierec.models.ncf import GMF, MLP, GMFConfig, MLPConfig, NeuMF, NeuMFConfig
    from movierec.models.popularity import Popularity


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"movierec.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'movierec.models' has no attribute {name!r}")


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (as used by ``movierec train NAME``)."""
    from movierec.errors import MovieRecError

    target = _REGISTRY.get(name.lower())
    if target is None:
        raise MovieRecError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = [
    "GMF", "MLP", "MODEL_NAMES", "ContentConfig", "ContentNeural", "ContentRecommender", "GMFConfig",
    "HybridBlend", "HybridSwitch", "ItemKNN", "ItemKNNConfig", "MLPConfig", "NeuMF", "NeuMFConfig",
    "NeuMFFeatures", "Popularity", "Recommender", "get_model_class",
]
