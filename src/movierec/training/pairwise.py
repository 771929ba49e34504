"""NCF's training step: implicit feedback with sampled negatives and a log loss.

Per epoch, the positive (user, item) pairs (resident on the device) get ``negatives`` fresh negatives each,
drawn on the device (never one of the user's positives); the samples are shuffled with the trainer's seeded
generator and cut into batches by slicing (no DataLoader). Loss = binary cross-entropy on logits + ``l2`` x
the mean squared norm of the batch's embeddings (+ the genre-diversity regulariser when enabled).

The network provides ``forward(u, i) -> logits [B]``, ``embedding_l2(u, i) -> [B]`` and
``score_pairs(u, items) -> [B, m]`` (for the regulariser); see :mod:`movierec.models.ncf`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from movierec.data.dataset import Interactions
from movierec.data.sampling import positive_keys
from movierec.models.settings import Settings, setting
from movierec.training.negatives import DeviceNegativeSampler
from movierec.training.regularizers import GenreDiversityRegularizer
from movierec.training.sharding import shard


def unique_positives(train: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) training pairs, int64 [n_pos] each, sorted by user then item."""
    keys = positive_keys(train.user, train.item, train.n_items)
    return (keys // train.n_items).astype(np.int64), (keys % train.n_items).astype(np.int64)


class PairwiseSettings(Settings):
    """What NCF's pairwise step reads: the negatives, the loss's penalties, how the tables are updated."""

    title = "step"

    negatives: int = setting(4, "sampled negatives per positive, fresh every epoch, never a user's positive", ge=1)
    l2: float = setting(0.0, "L2 penalty on the embeddings used in a batch, mean over the batch", ge=0)
    sparse: str = setting("auto", "row-wise (lazy) Adam on the embedding tables, so a step costs what its batch "
                          "touches, not the whole tables: on (on a CPU in one process), off, or auto (on when the "
                          "tables hold over 16 rows per sample of a batch; dense fused Adam on a GPU and under "
                          "torchrun)", choices=("auto", "on", "off"))
    compile: bool = setting(False, "torch.compile the network")
    diversity: float = setting(0.0, "weight of the genre-diversity regulariser (the study used 0.001)", ge=0)
    diversity_users: int = setting(16, "users per regulariser evaluation", ge=0)
    diversity_pool: int = setting(256, "candidate items (one random list shared by those users)", ge=2)
    diversity_every: int = setting(8, "apply the regulariser every this many steps, its weight scaled to match", ge=1)
    diversity_temperature: float = setting(0.1, "softmax temperature of the regulariser's top-10 weights", gt=0)


class PairwiseNegativeStep:
    """Batches of (user, item, label) with ``cfg.negatives`` sampled negatives per positive.

    The loss reads the embedding tables only by lookup, so the trainer may give them row-wise updates
    (``row_wise_tables``: the ``sparse`` setting, "auto", "on" or "off").
    """

    def __init__(self, net: torch.nn.Module, train: Interactions, cfg: PairwiseSettings, device: torch.device,
                 genres: np.ndarray | None = None) -> None:
        pos_u_np, pos_i_np = unique_positives(train)
        self.pos_u = torch.from_numpy(pos_u_np).to(device)
        self.pos_i = torch.from_numpy(pos_i_np).to(device)
        self.sampler = DeviceNegativeSampler(self.pos_u, self.pos_i, train.n_items)
        n_pos = len(self.pos_u)
        self.neg_u = self.pos_u.repeat(cfg.negatives)
        self.all_u = torch.cat([self.pos_u, self.neg_u])
        self.labels = torch.cat([torch.ones(n_pos, device=device), torch.zeros(len(self.neg_u), device=device)])
        self.cfg = cfg
        self.row_wise_tables = cfg.sparse
        self.n_users, self.n_items = train.n_users, train.n_items
        self.every = max(cfg.diversity_every, 1)
        self.reg = None
        if cfg.diversity > 0:
            if genres is None:
                from movierec.errors import MovieRecError

                raise MovieRecError("diversity > 0 needs item genres (a dataset with a movie catalogue)")
            self.reg = GenreDiversityRegularizer(torch.as_tensor(genres, dtype=torch.float32, device=device),
                                                 cfg.diversity_temperature)
        self.forward = torch.compile(net) if cfg.compile else net

    def samples_per_epoch(self) -> int:
        return len(self.all_u)

    def signature(self) -> list[int]:
        return [self.n_users, self.n_items, len(self.pos_u)]

    def batches(self, generator: torch.Generator, batch_size: int, rank: int = 0, world_size: int = 1
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        all_i = torch.cat([self.pos_i, self.sampler.sample(self.neg_u, generator)])
        perm = torch.randperm(len(self.all_u), generator=generator, device=self.all_u.device)
        perm = shard(perm, rank, world_size)  # every rank draws the same epoch and trains on its own share
        for start in range(0, len(perm), batch_size):
            idx = perm[start: start + batch_size]
            yield self.all_u[idx], all_i[idx], self.labels[idx]

    def loss(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int,
             generator: torch.Generator) -> torch.Tensor:
        u, i, y = batch
        cfg = self.cfg
        logits = self.forward(u, i)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        if cfg.l2 > 0:
            loss = loss + cfg.l2 * net.embedding_l2(u, i).mean()
        if self.reg is not None and step % self.every == 0:
            # applied every `diversity_every` steps with its weight scaled to match: the penalty's small
            # fixed-cost kernels would otherwise add a quarter to a small model's step
            loss = loss + cfg.diversity * self.every * self._diversity(net, u, i, logits, generator)
        return loss

    def _diversity(self, net: torch.nn.Module, u: torch.Tensor, i: torch.Tensor, logits: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
        """The study's batch-scope penalty plus the per-user penalty over one shared random pool of items."""
        cfg, reg = self.cfg, self.reg
        term = reg.batch_penalty(logits, i)
        if cfg.diversity_users > 0:
            users = u[: cfg.diversity_users]
            pool = torch.randint(0, self.n_items, (cfg.diversity_pool,), generator=generator, device=u.device)
            logits_pool = net.score_pairs(users, pool)  # one shared pool: each item is projected once
            term = term + reg.penalty(logits_pool, pool.unsqueeze(0).expand(len(users), -1))
        return term
