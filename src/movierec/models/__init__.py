"""Recommendation models. Every model follows the contract in :mod:`movierec.models.base`."""

from __future__ import annotations

from movierec.models.base import Recommender
from movierec.models.itemknn import ItemKNN, ItemKNNConfig
from movierec.models.ncf import GMF, MLP, GMFConfig, MLPConfig, NeuMF, NeuMFConfig
from movierec.models.popularity import Popularity

MODELS: dict[str, type[Recommender]] = {cls.name: cls for cls in (Popularity, ItemKNN, GMF, MLP, NeuMF)}


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (as used by ``movierec train NAME``)."""
    from movierec.errors import MovieRecError

    try:
        return MODELS[name.lower()]
    except KeyError:
        raise MovieRecError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


__all__ = [
    "GMF", "MLP", "MODELS", "GMFConfig", "ItemKNN", "ItemKNNConfig", "MLPConfig", "NeuMF", "NeuMFConfig",
    "Popularity", "Recommender", "get_model_class",
]
