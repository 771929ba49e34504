"""MovieLens data: the release registry, parsing and caching, splits, sampling, synthetic data."""

from movierec.data.dataset import Catalog, Dataset, IdMap, Interactions, UnknownIdError

__all__ = ["Catalog", "Dataset", "IdMap", "Interactions", "UnknownIdError"]
