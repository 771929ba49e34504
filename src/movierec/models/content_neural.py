"""Neural models that read item content, trained by the shared loop (:mod:`movierec.training`).

- ``content-neural``: a two-tower network. The user tower is an embedding; the item tower is an MLP over
  the movie's content features (genres, tags, genome, decade) with no item-id embedding, so it scores
  movies nobody has rated yet. score(u, i) = <user(u), tower(x_i)> + bias(x_i).
- ``neumf-features``: NeuMF whose MLP tower sees, on the item side, the item embedding plus a learned
  projection of the item's content features (so rarely rated movies borrow strength from their content).

The feature matrix is a buffer of the network (dense float32 [n_items, n_features]) and travels in the
bundle, so a loaded model scores exactly as the trained one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.models.base import FitReport, RunContext
from movierec.models.content import item_feature_matrix
from movierec.models.ncf import MLPNet, NeuMFNet
from movierec.models.settings import Settings, part, setting
from movierec.models.torch_base import TorchRecommender
from movierec.training import PairwiseSettings, TrainerSettings

__all__ = ["ContentNeural", "ContentNeuralSettings", "NeuMFFeatures", "NeuMFFeaturesSettings"]


class ContentTwoTowerNet(nn.Module):
    def __init__(self, n_users: int, features: torch.Tensor, dim: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("features", features)
        self.user = nn.Embedding(n_users, dim)
        nn.init.normal_(self.user.weight, std=0.01)
        self.tower = nn.Sequential(nn.Linear(features.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.bias = nn.Linear(features.shape[1], 1)

    def items(self, i: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features if i is None else self.features[i]
        return self.tower(x), self.bias(x).squeeze(-1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        v, b = self.items(i)
        return (self.user(u) * v).sum(-1) + b

    def embedding_l2(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.user(u).pow(2).sum(-1)

    def score_pairs(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        v, b = self.items(items)  # [B, m, d], [B, m] (or [m, d], [m] for a list shared by all users)
        if items.dim() == 1:
            return self.user(u) @ v.T + b
        return (v @ self.user(u).unsqueeze(-1)).squeeze(-1) + b

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        v, b = self.items(None)
        return self.user(u) @ v.T + b


class MLPWithFeatures(MLPNet):
    """MLP tower whose item input is embedding + W x_i (a projection of the item's content features)."""

    def __init__(self, n_users: int, n_items: int, embedding_dim: int, layers: int, features: torch.Tensor) -> None:
        super().__init__(n_users, n_items, embedding_dim, layers)
        self.register_buffer("content", features)
        self.content_proj = nn.Linear(features.shape[1], embedding_dim, bias=False)
        nn.init.normal_(self.content_proj.weight, std=0.01)

    def item_vectors(self, i: torch.Tensor | None) -> torch.Tensor:
        x = self.content if i is None else self.content[i]
        return super().item_vectors(i) + self.content_proj(x)


class NeuMFFeaturesNet(NeuMFNet):
    def __init__(self, n_users: int, n_items: int, factors: int, layers: int, features: torch.Tensor) -> None:
        super().__init__(n_users, n_items, factors, layers)
        self.mlp = MLPWithFeatures(n_users, n_items, self.mlp.embedding_dim, layers, features)


_FEATURES_HELP = "feature kinds, comma-separated: genres, weighted-genres, tags, genome, year, or all"
_MIN_TAG_HELP = "a tag becomes a feature when it is on at least this many movies"


class ContentNeuralSettings(Settings):
    train: TrainerSettings = part(TrainerSettings)
    step: PairwiseSettings = part(PairwiseSettings)
    features: str = setting("all", _FEATURES_HELP)
    dim: int = setting(64, "size of the user embedding and of the item tower's output", ge=1)
    hidden: int = setting(256, "width of the item tower's hidden layer", ge=1)
    min_tag_movies: int = setting(2, _MIN_TAG_HELP, ge=1)


class NeuMFFeaturesSettings(Settings):
    train: TrainerSettings = part(TrainerSettings, lr=0.002)  # NeuMF's
    step: PairwiseSettings = part(PairwiseSettings)
    factors: int = setting(32, "GMF embedding size and the MLP tower's last width", ge=1)
    layers: int = setting(3, "hidden layers of the MLP tower", ge=0)
    features: str = setting("all", _FEATURES_HELP)
    min_tag_movies: int = setting(2, _MIN_TAG_HELP, ge=1)


class _WithFeatures(TorchRecommender):
    """Builds the dense feature buffer before the network (and recovers its shape when loading)."""

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        feats = item_feature_matrix(catalog, train, self.config.features, self.config.min_tag_movies)
        self.feature_names_ = feats.names
        self._features = torch.from_numpy(np.asarray(feats.matrix.todense(), dtype=np.float32))
        return super()._fit(train, catalog, valid, context)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        key = next(k for k in state if k.endswith("features") or k.endswith("content"))
        self._features = torch.zeros(state[key].shape, dtype=torch.float32)
        super()._load_state(state)


class ContentNeural(_WithFeatures):
    name = "content-neural"
    config_class = ContentNeuralSettings

    def build_net(self, n_users: int, n_items: int) -> Any:
        return ContentTwoTowerNet(n_users, self._features, self.config.dim, self.config.hidden)

    def item_vectors(self) -> np.ndarray | None:
        """The item tower's output for every movie [n_items, dim] (the bias is left out)."""
        with torch.no_grad():
            return self.net_.items(None)[0].float().cpu().numpy()


class NeuMFFeatures(_WithFeatures):
    name = "neumf-features"
    config_class = NeuMFFeaturesSettings
    # benchmarks/bench_fold_in.py on ml-latest-small's validation items: the closed-form fold-in ranks them
    # better than the Adam one and overlaps the trained users' top 10 more (RESULTS.md); content-neural keeps Adam
    SERVED_FOLD_IN = "solve"
    FOLD_IN_SOLVE_L2 = 3.0

    def build_net(self, n_users: int, n_items: int) -> Any:
        return NeuMFFeaturesNet(n_users, n_items, self.config.factors, self.config.layers, self._features)
