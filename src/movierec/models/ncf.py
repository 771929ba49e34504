"""Neural Collaborative Filtering (He et al., WWW 2017): GMF, MLP and NeuMF.

- GMF: logit = h . (p_u * q_i) + b, with ``factors``-dimensional embeddings.
- MLP: a tower over [p_u, q_i] (each ``embedding_dim`` wide): ``layers`` hidden ReLU layers, the first
  as wide as ``embedding_dim`` (half its 2 x embedding_dim input), each next one half as wide; the last
  hidden width is the model's predictive factors. The NCF code's ``--layers [64,32,16,8]`` is
  ``embedding_dim=32, layers=3``. ``layers=0`` is a linear model of the concatenated embeddings.
- NeuMF: GMF (``factors``) and an MLP tower whose last layer has ``factors`` units
  (embedding_dim = factors * 2^(layers-1)), joined by one output layer over both. With ``pretrain`` it
  first trains a GMF and an MLP of the same sizes, then starts from their weights with the output layer
  [alpha * h_GMF, (1 - alpha) * h_MLP] (alpha = 0.5), as in the paper.

All-items scoring is cheap: GMF is one matrix product, and the MLP's first layer splits into a per-user and
a per-item projection, so only the later, narrow layers run on every (user, item) pair.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.models.base import RunContext
from movierec.models.settings import Settings, part, setting
from movierec.models.torch_base import TorchRecommender
from movierec.training import PairwiseSettings, TrainerSettings

__all__ = ["GMF", "MLP", "GMFNet", "GMFSettings", "MLPNet", "MLPSettings", "NeuMF", "NeuMFNet", "NeuMFSettings"]

_INIT_STD = 0.01  # N(0, 0.01) embedding initialisation, as in the paper


def _embedding(n: int, dim: int) -> nn.Embedding:
    e = nn.Embedding(n, dim)
    nn.init.normal_(e.weight, std=_INIT_STD)
    return e


class GMFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.user = _embedding(n_users, factors)
        self.item = _embedding(n_items, factors)
        self.out = nn.Linear(factors, 1)
        self.pair_floats = factors + 1  # a candidate list gathers each pair's item vector
        self.all_floats = 1

    def features(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.user(u) * self.item(i)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(u, i)).squeeze(-1)

    def embedding_l2(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.user(u).pow(2).sum(-1) + self.item(i).pow(2).sum(-1)

    def weighted_dot(self, u: torch.Tensor, items: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """sum_f w_f p_uf q_if for items [B, m], a shared list [m], or every item (None): [B, m]."""
        pu = self.user(u) * w  # [B, f]
        if items is None:
            return pu @ self.item.weight.T
        if items.dim() == 1:
            return pu @ self.item(items).T
        return (self.item(items) @ pu.unsqueeze(-1)).squeeze(-1)

    def score_pairs(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.weighted_dot(u, items, self.out.weight[0]) + self.out.bias

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.out.bias, self.user(u) * self.out.weight[0], self.item.weight.T)


class MLPNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, embedding_dim: int, layers: int) -> None:
        super().__init__()
        if embedding_dim >> max(layers - 1, 0) < 1:
            raise ValueError(f"embedding_dim {embedding_dim} is too small for {layers} halving layers")
        self.user = _embedding(n_users, embedding_dim)
        self.item = _embedding(n_items, embedding_dim)
        widths = [2 * embedding_dim] + [embedding_dim >> k for k in range(layers)]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self._init_alive_tower()
        self.out_dim = widths[-1]
        self.out = nn.Linear(self.out_dim, 1)
        self.embedding_dim = embedding_dim
        self.pair_floats = embedding_dim + sum(widths[1:]) + 1  # item vectors and every layer, per pair
        self.all_floats = sum(widths[1:]) + 1

    @torch.no_grad()
    def _init_alive_tower(self, tries: int = 50) -> None:
        """Glorot-uniform weights and zero biases (as the NCF code's Keras layers), redrawing any layer in
        which no unit fires for a probe batch: behind a ReLU every input is non-negative, so a narrow layer
        (the 4-layer towers end in 1-2 units) whose weights happen to be negative is dead for every input
        and the whole tower outputs a constant forever."""
        if not len(self.hidden):
            return
        probe = torch.randn(512, self.hidden[0].in_features) * _INIT_STD
        for layer in self.hidden:
            for _ in range(tries):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
                out = torch.relu(layer(probe))
                if bool((out > 0).any(dim=0).all()):  # every unit fires for some input
                    break
            probe = out

    def embedding_l2(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.user(u).pow(2).sum(-1) + self.item(i).pow(2).sum(-1)

    def item_vectors(self, i: torch.Tensor | None) -> torch.Tensor:
        """The tower's item input: embeddings of items ``i`` (every item when None). Subclasses add content."""
        return self.item.weight if i is None else self.item(i)

    def features(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user(u), self.item_vectors(i)], dim=-1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return x

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(u, i)).squeeze(-1)

    def features_many(self, u: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Last hidden layer for items [B, m], a list [m] shared by all users, or every item (None): [B, m, out].

        The first layer W [h1, 2e] is applied as W_u p_u + W_i q_i, so each user and each item is projected
        once and only the narrower later layers run per pair.
        """
        pu = self.user(u)  # [B, e]
        qi = self.item_vectors(items)  # [I, e], [m, e] or [B, m, e]
        shared = items is None or items.dim() == 1
        if not len(self.hidden):
            pu = pu.unsqueeze(1).expand(-1, qi.shape[-2], -1)
            return torch.cat([pu, qi.expand(pu.shape[0], -1, -1) if shared else qi], dim=-1)
        first = self.hidden[0]
        e = self.embedding_dim
        a = pu @ first.weight[:, :e].T + first.bias  # [B, h1]
        c = qi @ first.weight[:, e:].T  # [I, h1] or [B, m, h1]
        x = torch.relu(a.unsqueeze(1) + (c.unsqueeze(0) if shared else c))
        for layer in self.hidden[1:]:
            x = torch.relu(layer(x))
        return x

    def score_pairs(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.features_many(u, items)).squeeze(-1)

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        return self.out(self.features_many(u, None)).squeeze(-1)


class NeuMFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, layers: int) -> None:
        super().__init__()
        self.gmf = GMFNet(n_users, n_items, factors)
        self.mlp = MLPNet(n_users, n_items, factors << max(layers - 1, 0), layers)
        self.out = nn.Linear(factors + self.mlp.out_dim, 1)
        self.factors = factors
        self.pair_floats = self.gmf.pair_floats + self.mlp.pair_floats
        self.all_floats = self.gmf.all_floats + self.mlp.all_floats

    def embedding_l2(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.gmf.embedding_l2(u, i) + self.mlp.embedding_l2(u, i)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.gmf.features(u, i), self.mlp.features(u, i)], dim=-1)).squeeze(-1)

    def _score(self, u: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        w = self.out.weight[0]
        g = self.gmf.weighted_dot(u, items, w[: self.factors])
        m = self.mlp.features_many(u, items) @ w[self.factors:]
        return g + m + self.out.bias

    def score_pairs(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._score(u, items)

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        return self._score(u, None)

    @torch.no_grad()
    def load_pretrained(self, gmf: GMFNet, mlp: MLPNet, alpha: float = 0.5) -> None:
        """Start from trained GMF and MLP networks: output layer [alpha h_GMF, (1 - alpha) h_MLP]."""
        self.gmf.load_state_dict(gmf.state_dict())
        self.mlp.load_state_dict(mlp.state_dict())
        self.out.weight.copy_(torch.cat([alpha * gmf.out.weight, (1 - alpha) * mlp.out.weight], dim=1))
        self.out.bias.copy_(alpha * gmf.out.bias + (1 - alpha) * mlp.out.bias)


# -- the contract models ----------------------------------------------------------------------------
class GMFSettings(Settings):
    train: TrainerSettings = part(TrainerSettings)
    step: PairwiseSettings = part(PairwiseSettings)
    factors: int = setting(64, "embedding size (predictive factors)", ge=1)


class MLPSettings(Settings):
    train: TrainerSettings = part(TrainerSettings)
    step: PairwiseSettings = part(PairwiseSettings)
    embedding_dim: int = setting(32, "user and item embedding size; the first hidden layer is as wide", ge=1)
    layers: int = setting(3, "hidden ReLU layers, each half as wide as the one before (0: linear)", ge=0)
    factors: int = setting(0, "predictive factors; when > 0 it sets embedding_dim = factors * 2^(layers-1)", ge=0)

    @property
    def effective_embedding_dim(self) -> int:
        return self.factors << max(self.layers - 1, 0) if self.factors > 0 else self.embedding_dim


class NeuMFSettings(Settings):
    train: TrainerSettings = part(TrainerSettings, lr=0.002)  # tuned on ml-latest-small validation items
    step: PairwiseSettings = part(PairwiseSettings)
    factors: int = setting(32, "GMF embedding size and the MLP tower's last width", ge=1)
    layers: int = setting(3, "hidden layers of the MLP tower", ge=0)
    pretrain: bool = setting(False, "train a GMF and an MLP first and start from their weights (the paper)")
    alpha: float = setting(0.5, "weight of the pretrained GMF in the joined output layer", ge=0, le=1)
    pretrain_lr_scale: float = setting(0.1, "fine-tuning learning rate relative to lr when pretrained", gt=0)


class GMF(TorchRecommender):
    name = "gmf"
    config_class = GMFSettings

    def build_net(self, n_users: int, n_items: int) -> GMFNet:
        return GMFNet(n_users, n_items, self.config.factors)


class MLP(TorchRecommender):
    name = "mlp"
    config_class = MLPSettings

    def build_net(self, n_users: int, n_items: int) -> MLPNet:
        return MLPNet(n_users, n_items, self.config.effective_embedding_dim, self.config.layers)


class NeuMF(TorchRecommender):
    name = "neumf"
    config_class = NeuMFSettings
    # benchmarks/bench_fold_in.py on ml-latest-small's validation items: the closed-form fold-in ranks them as
    # well as the Adam one and overlaps the trained users' top 10 as much, in a fraction of the time (RESULTS.md)
    SERVED_FOLD_IN = "solve"
    FOLD_IN_SOLVE_L2 = 1.0

    def build_net(self, n_users: int, n_items: int) -> NeuMFNet:
        return NeuMFNet(n_users, n_items, self.config.factors, self.config.layers)

    def init_net(self, net: torch.nn.Module, train: Interactions, catalog: Catalog | None,
                 valid: HeldOut | None, context: RunContext) -> None:
        cfg = self.config
        if not cfg.pretrain:
            return
        gmf = GMF(GMFSettings(train=cfg.train, step=cfg.step, factors=cfg.factors))
        mlp = MLP(MLPSettings(train=cfg.train, step=cfg.step, embedding_dim=net.mlp.embedding_dim, layers=cfg.layers))
        gmf.fit(train, catalog, valid, context.for_part())
        mlp.fit(train, catalog, valid, context.for_part())
        net.load_pretrained(gmf.net_, mlp.net_, cfg.alpha)
        self.pretrain_log = {"gmf": gmf.fit_report_.train_log, "mlp": mlp.fit_report_.train_log}

    def trainer_settings(self) -> TrainerSettings:
        """Fine-tuning after pretraining takes a smaller step, as the paper does (it switches to SGD)."""
        cfg = self.config
        if not cfg.pretrain:
            return cfg.train
        return cfg.train.with_values(lr=cfg.train.lr * cfg.pretrain_lr_scale)
