"""Shared plumbing for models that are torch networks trained by :mod:`movierec.training`.

A subclass sets ``config_class`` (a :class:`~movierec.training.TrainConfig` subclass) and implements
``build_net(n_users, n_items)``; the network provides ``forward``, ``embedding_l2``, ``score_pairs`` and
``score_all`` (see :mod:`movierec.models.ncf`). Scoring runs under ``torch.no_grad`` in user batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import Recommender
from movierec.training import TrainConfig, resolve_device, train_network

_PAIRS_PER_BATCH = 1 << 18  # (user, item) pairs scored per forward pass


class TorchRecommender(Recommender):
    config_class = TrainConfig

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net_: torch.nn.Module | None = None
        self.train_log: list[dict[str, Any]] = []
        self.run_options: dict[str, Any] = {"checkpoint_dir": None, "resume": False, "progress": False}

    def build_net(self, n_users: int, n_items: int) -> torch.nn.Module:
        raise NotImplementedError

    def init_net(self, net: torch.nn.Module, train: Interactions, catalog: Catalog | None,
                 valid: HeldOut | None) -> None:
        """Hook before training (NeuMF loads pretrained GMF and MLP weights here)."""

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None) -> None:
        cfg = self.config
        device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        net = self.build_net(train.n_users, train.n_items).to(device)
        self.net_ = net
        self.init_net(net, train, catalog, valid)
        cfg = self.config  # init_net may adjust it (NeuMF fine-tuning after pretraining)
        genres = None
        if cfg.diversity > 0 and catalog is not None and catalog.item_ids is not None:
            genres = catalog.item_genres()[0]
        validate = None
        if valid is not None and valid.negatives is not None:
            def validate() -> dict[str, float]:
                return evaluate_heldout_sampled(self, valid, (10,)).metrics
        opts = self.run_options
        ckpt = Path(opts["checkpoint_dir"]) if opts.get("checkpoint_dir") else None
        self.result_ = train_network(net, train, cfg, validate, genres, ckpt, bool(opts.get("resume")),
                                     opts.get("progress") or False, opts.get("on_epoch_end"))
        self.train_log = self.result_.log

    # -- scoring -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net_.parameters()).device

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        net = self.net_
        net.eval()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        width = self.n_items if items is None else np.asarray(items).shape[1]
        step = max(1, _PAIRS_PER_BATCH // max(width, 1))
        out = np.empty((len(users), width), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, len(users), step):
                u = torch.from_numpy(users[s: s + step]).to(self.device)
                if items is None:
                    res = net.score_all(u)
                else:
                    res = net.score_pairs(u, torch.as_tensor(np.asarray(items[s: s + step]), dtype=torch.int64,
                                                             device=self.device))
                out[s: s + step] = res.float().cpu().numpy()
        return out

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().float().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n_users, n_items = self.seen_.shape
        device = resolve_device(self.config.device)
        net = self.build_net(n_users, n_items)
        net.load_state_dict({k[4:]: torch.from_numpy(v.copy()) for k, v in state.items() if k.startswith("net.")})
        self.net_ = net.to(device).eval()
