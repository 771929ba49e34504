"""Shared plumbing for models that are torch networks trained by the trainer shell (:mod:`movierec.training`).

A subclass sets ``config_class`` (settings with a ``train`` part, :class:`~movierec.training.TrainerSettings`,
and a ``step`` part, :class:`~movierec.training.PairwiseSettings`) and implements ``build_net(n_users,
n_items)``; the network provides ``forward``, ``embedding_l2``, ``score_pairs`` and ``score_all`` (see
:mod:`movierec.models.ncf`) and keeps its user embeddings in ``nn.Embedding`` modules whose names end in
``user``. The default training step is NCF's pairwise one with sampled negatives
(``training_step`` may return another). Scoring runs under ``torch.no_grad`` in user batches.

Histories (new users) are folded in: the network is copied with fresh user tables of one row per history,
each started at the mean trained user vector, and only those rows are trained (full-batch Adam,
``FOLD_IN_STEPS`` steps at ``FOLD_IN_LR``) on the model's own loss over the history's items and sampled
negatives, with every other weight frozen. A trained user's own history then gives a ranking close to,
not identical with, the trained user's (the contract tests measure the top-10 overlap). For the networks
:mod:`movierec.models.fold_in` knows (GMF, MLP, NeuMF and the content-fed ones), a server's few people are
folded in there instead: the same steps in numpy on the item side computed once, with no copy of the network.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import FitReport, History, Recommender, RunContext
from movierec.training import Hardware, PairwiseNegativeStep, Trainer, TrainerSettings, TrainingStep, resolve_device

_CPU_SCORING_FLOATS = 1 << 26  # floats a scoring pass may hold on a CPU (256 MiB; as the evaluation's batches)


class TorchRecommender(Recommender):
    has_user_vectors = True
    has_item_vectors = True
    FOLD_IN_STEPS: ClassVar[int] = 100
    FOLD_IN_LR: ClassVar[float] = 0.05
    FOLD_IN_SEED: ClassVar[int] = 0
    #: fold the networks movierec.models.fold_in knows (NCF's and the content-fed ones) in there, in numpy (False:
    #: through autograd, as the others), for up to this many people (a server's batch); more (an evaluation's
    #: hundreds) are batched in torch
    FAST_FOLD_IN: ClassVar[bool] = True
    FAST_FOLD_IN_MAX_PEOPLE: ClassVar[int] = 64
    #: the fold-in a server uses for a new person (``fold_in_method``), and the ridge of
    #: :func:`movierec.models.fold_in.solve`: both chosen on validation by benchmarks/bench_fold_in.py
    SERVED_FOLD_IN: ClassVar[str] = "adam"
    FOLD_IN_SOLVE_L2: ClassVar[float] = 3.0
    #: how the model uses a GPU unless the run says otherwise (RunContext)
    hardware: ClassVar[Hardware] = Hardware(gpu_batch_factor=16, amp=True)

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net_: nn.Module | None = None
        self.device_name = "auto"
        self._item_side: Any = None  # movierec.models.fold_in.ItemSide of the fitted network, made on first use
        self._linearised: Any = None  # and its movierec.models.fold_in.Linearised
        #: how up to FAST_FOLD_IN_MAX_PEOPLE histories are folded into a network fold_in knows: "adam" (the
        #: fold-in's loss optimised by Adam, as for more people and other networks) or "solve" (in closed form
        #: on the network linearised at the mean user, movierec.models.fold_in.solve: what a server does)
        self.fold_in_method = "adam"

    def build_net(self, n_users: int, n_items: int) -> nn.Module:
        raise NotImplementedError

    def init_net(self, net: nn.Module, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
                 context: RunContext) -> None:
        """Hook before training (NeuMF loads pretrained GMF and MLP weights here)."""

    def training_step(self, net: nn.Module, train: Interactions, catalog: Catalog | None,
                      device: torch.device) -> TrainingStep:
        """The model's step for the trainer shell: NCF's pairwise negatives by default."""
        genres = None
        if self.config.step.diversity > 0 and catalog is not None and catalog.item_ids is not None:
            genres = catalog.item_genres()[0]
        return PairwiseNegativeStep(net, train, self.config.step, device, genres)

    def trainer_settings(self) -> TrainerSettings:
        """The trainer shell's settings for this fit (NeuMF lowers the learning rate after pretraining)."""
        return self.config.train

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        device = resolve_device(context.device)
        self.device_name = context.device
        self._item_side = self._linearised = None
        torch.manual_seed(self.config.train.seed if context.seed is None else context.seed)
        net = self.build_net(train.n_users, train.n_items).to(device)
        self.net_ = net
        self.init_net(net, train, catalog, valid, context)
        validate = None
        if valid is not None and valid.negatives is not None:
            def validate() -> dict[str, float]:
                return evaluate_heldout_sampled(self, valid, (10,)).metrics
        step = self.training_step(net, train, catalog, device)
        return Trainer(net, step, self.trainer_settings(), context, validate, self.hardware,
                       self.config_dict()).run()

    # -- scoring -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net_.parameters()).device

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        return self.score_tensor(users, items).float().cpu().numpy()

    def score_tensor(self, users: np.ndarray, items: np.ndarray | None = None) -> torch.Tensor:
        """:meth:`score` as a float32 tensor left on the model's device (the evaluation ranks it there)."""
        self._check_fitted()
        return _score_with(self.net_, np.atleast_1d(np.asarray(users, dtype=np.int64)), items, self.n_items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        fast = self.fold_in_method == "solve" or self.FAST_FOLD_IN
        if fast and history.n <= self.FAST_FOLD_IN_MAX_PEOPLE and self.item_side():
            return self._person_scores(history, items)
        net = self.fold_in(history)
        return _score_with(net, np.arange(history.n, dtype=np.int64), items, self.n_items).float().cpu().numpy()

    def _fresh_users(self, n: int) -> tuple[nn.Module, list[tuple[str, torch.Tensor]]]:
        """A frozen copy of the network (sharing every weight but the user tables) whose user tables have ``n``
        rows at the mean trained user vector; with [(table name, its weight)]."""
        users = {name: m for name, m in self.net_.named_modules()
                 if isinstance(m, nn.Embedding) and name.split(".")[-1] == "user"}
        shared = {id(p): p for name, p in self.net_.named_parameters() if name.rpartition(".")[0] not in users}
        for p in shared.values():  # frozen: a fold-in moves only the fresh user rows (a fit makes a new network)
            p.requires_grad_(False)
        net = copy.deepcopy(self.net_, memo=dict(shared))  # the item side is shared, not copied
        tables = []
        for name, module in users.items():
            fresh = nn.Embedding(max(n, 1), module.embedding_dim).to(module.weight.device)
            with torch.no_grad():
                fresh.weight.copy_(module.weight.mean(dim=0, keepdim=True).expand_as(fresh.weight))
            parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
            setattr(parent, name.split(".")[-1], fresh)
            tables.append((name, fresh.weight))
        return net, tables

    def item_side(self) -> Any:
        """The fitted network's :class:`~movierec.models.fold_in.ItemSide` (made once), or False for a network
        that module does not know."""
        if self._item_side is None:
            from movierec.models.fold_in import ItemSide

            self._item_side = ItemSide.of(self.net_) or False
        return self._item_side

    def _person_scores(self, history: History, items: np.ndarray | None) -> np.ndarray:
        """Scores float32 [history.n, n_items or m] of the histories folded in together in numpy
        (:mod:`movierec.models.fold_in`: Adam, or ``solve`` in closed form person by person), each person's
        network evaluated on the item side (no copy of the network)."""
        from movierec.models.fold_in import Linearised, solve

        side = self.item_side()
        order = np.argsort(history.row, kind="stable")
        bounds = np.searchsorted(history.row[order], np.arange(history.n + 1))
        rated = [np.unique(history.item[order[a:b]]).astype(np.int64) for a, b in itertools.pairwise(bounds)]
        negatives = self.config.step.negatives
        if self.fold_in_method == "solve":
            if self._linearised is None:
                self._linearised = Linearised.of(side)
            people = [solve(side, self._linearised, r, negatives, self.FOLD_IN_SOLVE_L2) for r in rated]
        else:
            people = side.fold_in(rated, negatives, self.FOLD_IN_STEPS, self.FOLD_IN_LR, self.FOLD_IN_SEED)
        width = self.n_items if items is None else np.asarray(items).shape[1]
        out = np.empty((history.n, width), dtype=np.float32)
        for row, p in enumerate(people):
            cand = np.arange(self.n_items) if items is None else np.asarray(items[row], dtype=np.int64)
            out[row] = side.logits(p, cand)
        return out

    def fold_in(self, history: History) -> nn.Module:
        """A copy of the network whose users are the ``history.n`` histories, folded in through torch's autograd
        (see :mod:`movierec.models.fold_in` for the objective; a few people in the networks it knows are
        folded in there, in numpy, by ``_score_history``)."""
        net, tables = self._fresh_users(history.n)
        if not len(history):
            return net.eval()
        tables = [w for _, w in tables]
        for w in tables:
            w.requires_grad_(True)
        device = self.device
        u = torch.from_numpy(history.row.astype(np.int64)).to(device)
        i = torch.from_numpy(history.item.astype(np.int64)).to(device)
        keys = torch.unique(u * self.n_items + i)
        u, i = keys // self.n_items, keys % self.n_items
        from movierec.training.negatives import DeviceNegativeSampler

        full = torch.bincount(u, minlength=history.n) >= self.n_items
        sampler = DeviceNegativeSampler(u[~full[u]], i[~full[u]], self.n_items) if (~full[u]).any() else None
        neg_u = u[~full[u]].repeat(self.config.step.negatives)
        all_u = torch.cat([u, neg_u])
        labels = torch.cat([torch.ones(len(u), device=device), torch.zeros(len(neg_u), device=device)])
        generator = torch.Generator(device=device).manual_seed(self.FOLD_IN_SEED)
        opt = torch.optim.Adam(tables, lr=self.FOLD_IN_LR)
        net.train()
        with torch.enable_grad():
            for _ in range(self.FOLD_IN_STEPS):
                neg_i = sampler.sample(neg_u, generator) if sampler is not None else neg_u[:0]
                logits = net(all_u, torch.cat([i, neg_i]))
                loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return net.eval()

    # -- learned vectors ---------------------------------------------------------------------------
    def user_vectors(self) -> np.ndarray | None:
        """Every user embedding table of the network side by side (NeuMF: its GMF and MLP tables)."""
        blocks = [w for k, w in sorted(self._state().items()) if k.endswith("user.weight")]
        return np.concatenate(blocks, axis=1) if blocks else None

    def item_vectors(self) -> np.ndarray | None:
        blocks = [w for k, w in sorted(self._state().items()) if k.endswith("item.weight")]
        return np.concatenate(blocks, axis=1) if blocks else None

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().float().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n_users, n_items = self.seen_.shape
        device = resolve_device(self.device_name)
        net = self.build_net(n_users, n_items)
        net.load_state_dict({k[4:]: torch.from_numpy(v.copy()) for k, v in state.items() if k.startswith("net.")})
        self.net_ = net.to(device).eval()


def scoring_floats(device: torch.device) -> int:
    """Floats one scoring pass may hold: 256 MiB on a CPU, a quarter of the free memory on a GPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1 << 20, free // 16)
    return _CPU_SCORING_FLOATS


def _score_with(net: nn.Module, users: np.ndarray, items: np.ndarray | None, n_items: int) -> torch.Tensor:
    """Scores float32 [len(users), n_items or m] on the network's device from ``net.score_all`` /
    ``net.score_pairs``, in batches of users sized by the floats each (user, item) pair needs (``pair_floats``
    of the network: the widest per-pair activations, e.g. the MLP tower's first layer)."""
    net.eval()
    device = next(net.parameters()).device
    width = n_items if items is None else np.asarray(items).shape[1]
    per_pair = getattr(net, "pair_floats", 256) if items is not None else getattr(net, "all_floats", 256)
    step = max(1, scoring_floats(device) // max(width * per_pair, 1))
    if len(users) <= step:  # one batch: its result is the answer (no copy)
        with torch.no_grad():
            u = torch.from_numpy(users).to(device)
            if items is None:
                return net.score_all(u)
            return net.score_pairs(u, torch.as_tensor(np.asarray(items), dtype=torch.int64, device=device))
    out = torch.empty((len(users), width), dtype=torch.float32, device=device)
    with torch.no_grad():
        for s in range(0, len(users), step):
            u = torch.from_numpy(users[s: s + step]).to(device)
            if items is None:
                res = net.score_all(u)
            else:
                res = net.score_pairs(u, torch.as_tensor(np.asarray(items[s: s + step]), dtype=torch.int64,
                                                         device=device))
            out[s: s + step] = res
    return out
