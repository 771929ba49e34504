"""SASRec (Kang and McAuley, ICDM 2018): causal self-attention over a user's time-ordered history.

A user is their training history read in time order (``History.from_interactions``: by timestamp, ties in
the order of the training data), of which the last ``max_len`` items are used. The sequence is left-padded
to ``max_len`` (the pad item is ``n_items``, whose embedding is zero), so the latest item always sits at the
last position and has the same learned position embedding for every user. ``blocks`` pre-norm transformer
blocks (``heads`` heads, a GELU feed-forward layer ``4 x dim`` wide) with a causal mask turn it into one
``dim``-wide vector per position; position t predicts item t + 1.

Training: at every non-pad position, the next item (and, with ``horizon`` > 1, each of the next
``horizon`` items: on MovieLens a user rates many movies in one sitting, so their order is loose, and
the held-out test item comes after the validation item the model never sees) is predicted with a full
softmax cross-entropy over all items (``loss="ce"``, RecBole's default), a sampled softmax over the target
and ``sampled_items`` uniform negatives shared by the batch, their logits raised by
log((n_items - 1) / K) so that they stand for all other items (``loss="sampled"``, several times cheaper
on a CPU), or binary cross-entropy against ``negatives`` sampled items per position (``loss="bce"``, the
paper's). The item embedding table is shared with the output layer: the score of item i after a sequence
is h_last . e_i. Long histories are cut into windows of ``max_len`` transitions ending at the latest one,
plus, each epoch, windows shifted by a random offset so every transition is seen in several contexts. The
trainer shell (:mod:`movierec.training`) runs the epochs, keeps the epoch with the best validation NDCG@10
(sampled-100) and stops after ``patience`` epochs without improvement.

Scoring: ``score(users)`` and ``score_history(history)`` run the same network on the same kind of padded
sequence (a trained user's stored training sequence, or a history's items in array order), so a trained
user's own training history scores exactly as the user. An empty history is a sequence of pads only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from movierec.data.dataset import Catalog, Interactions
from movierec.data.history import History
from movierec.data.splits import HeldOut
from movierec.errors import MovieRecError
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import FitReport, Recommender, RunContext
from movierec.models.settings import setting
from movierec.training import TrainConfig, Trainer, resolve_device
from movierec.training.sharding import shard

__all__ = ["SASRec", "SASRecConfig"]

_INIT_STD = 0.02  # N(0, 0.02) weight initialisation (as RecBole and BERT)
_POSITIONS_PER_BATCH = 1 << 16  # sequence positions encoded per forward pass when scoring


@dataclass
class SASRecConfig(TrainConfig):
    """SASRec settings. batch_size counts sequences (windows of up to max_len transitions) per step.

    The defaults were picked on ml-latest-small's validation items (leave-one-out, 2026-11-30) within a fit
    of about two and a half minutes on a 2-core CPU: small batches (about 100 steps an epoch) learn far
    faster per epoch than 128-sequence ones; dropout 0.5 beat 0.2; 4096 sampled items beat 1024 (valid
    full-ranking NDCG@10 0.062 vs 0.056) at about 1.6x the epoch time; max_len 100 learned as well as 200 and
    faster; horizon > 1 raised sampled HR@10 but lowered full-ranking NDCG@10, so it stays 1.
    """

    epochs: int = setting(20, "training epochs (at most: early stopping may end sooner)", ge=1)
    batch_size: int = setting(16, "sequences (windows of up to max_len items) per step on a CPU", ge=1)
    lr: float = setting(0.002, "Adam learning rate", gt=0)
    patience: int = setting(5, "stop after this many epochs without a better validation NDCG@10; 0 = never", ge=0)
    gpu_batch_factor: int = setting(4, "batch multiplier on a GPU (learning rate scaled by its square root)", ge=1)
    max_len: int = setting(100, "most recent items of a history the model reads (sequence length)", ge=1)
    dim: int = setting(64, "width of the item and position embeddings and of every layer", ge=1)
    heads: int = setting(2, "attention heads per block (must divide dim)", ge=1)
    blocks: int = setting(2, "self-attention blocks", ge=1)
    dropout: float = setting(0.5, "dropout on embeddings, attention weights and block outputs", ge=0, lt=1)
    loss: str = setting("sampled", "softmax cross-entropy over all items (ce), over the target and "
                        "sampled_items shared uniform negatives (sampled), or BCE against `negatives` per "
                        "position (bce)",
                        choices=("ce", "sampled", "bce"))
    horizon: int = setting(1, "each position predicts each of the next `horizon` items (1: the next only)", ge=1)
    sampled_items: int = setting(4096, "uniform negatives shared by a batch for loss=sampled", ge=1)

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")


class _Block(nn.Module):
    """One pre-norm transformer block: x + Attn(LN(x)), then x + FFN(LN(x)). x: [B, L, dim]."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, 4 * dim)
        self.ff2 = nn.Linear(4 * dim, dim)
        self.drop = nn.Dropout(dropout, inplace=True)  # on fresh activations only: the same masks, no copy

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, L, dim]; mask: bool [B, 1, L, L], True where query t may attend to key s."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(x))))))


class SASRecNet(nn.Module):
    """Item embeddings [n_items + 1, dim] (row n_items: the pad, kept zero), positions [max_len, dim], blocks."""

    def __init__(self, n_items: int, max_len: int, dim: int, heads: int, blocks: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.n_items, self.max_len = n_items, max_len
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.position = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout, inplace=True)  # on fresh activations only: the same masks, no copy
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(blocks))
        self.ln = nn.LayerNorm(dim)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=_INIT_STD)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states float [B, L, dim] of left-padded item sequences int64 [B, L] (L <= max_len).

        Position t attends to positions s <= t that hold items (and always to itself, so a pad-only prefix
        stays finite); pad positions are zeroed before the blocks.
        """
        n = seq.shape[1]
        real = seq != self.n_items  # [B, L]
        pos = torch.arange(self.max_len - n, self.max_len, device=seq.device)
        x = self.item(seq) * math.sqrt(self.item.embedding_dim) + self.position(pos)
        x = self.drop(x) * real.unsqueeze(-1)
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=seq.device)
        mask = (causal & real[:, None, :]) | eye  # [B, L(query), L(key)]
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)

    def item_table(self) -> torch.Tensor:
        """The real items' embeddings [n_items, dim] (the output layer)."""
        return self.item.weight[: self.n_items]


def _sequences(history: History, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``max_len`` items of each history in array order: (indptr int64 [n + 1], items int32 [m])."""
    lengths = history.lengths()
    order = np.argsort(history.row, kind="stable")  # rows grouped, array (time) order kept within a row
    rows, items = history.row[order], history.item[order]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rank_from_end = starts[rows + 1] - np.arange(len(rows)) - 1  # 0 for each history's latest item
    keep = rank_from_end < max_len
    kept = np.minimum(lengths, max_len)
    return np.concatenate([[0], np.cumsum(kept)]).astype(np.int64), items[keep].astype(np.int32)


def _padded(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Left-padded int64 [len(rows), width]: each row's last ``width`` items of its sequence, latest last."""
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for j, r in enumerate(rows):
        s = items[indptr[r]: indptr[r + 1]][-width:]
        if len(s):
            out[j, width - len(s):] = s
    return out


class _NextItemStep:
    """The trainer shell's step: windows of each user's training sequence, next-item loss at every position.

    Each epoch's windows (of ``max_len`` transitions, left-padded) are: the window ending at the latest
    transition, and for histories longer than that, windows ending ``r``, ``r + max_len``, ... transitions
    earlier with a fresh random ``r`` in [1, max_len] per user, covering every transition at least once.
    """

    def __init__(self, seqs: list[np.ndarray], n_items: int, cfg: SASRecConfig, device: torch.device) -> None:
        self.seqs = [s.astype(np.int64) for s in seqs if len(s) >= 2]
        self.n_items, self.cfg, self.device = n_items, cfg, device
        self.lengths = np.array([len(s) - 1 for s in self.seqs], dtype=np.int64)  # transitions per user
        self._samples = int(self.lengths.sum())
        self._flat = np.concatenate(self.seqs) if self.seqs else np.zeros(0, dtype=np.int64)  # every sequence
        self._offsets = np.concatenate([[0], np.cumsum(self.lengths + 1)[:-1]]).astype(np.int64)

    def samples_per_epoch(self) -> int:
        return self._samples

    def signature(self) -> list[int]:
        return [len(self.seqs), self.n_items, self._samples, self.cfg.max_len]

    def _windows(self, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Inputs int64 [W, L] and targets int64 [W, L, horizon] (pad where there is no item) of one epoch,
        user by user and, per user, the window ending at the latest transition first (vectorised: no loop over
        users or windows)."""
        L, pad, horizon = self.cfg.max_len, self.n_items, self.cfg.horizon
        shifts = torch.randint(1, L + 1, (len(self.seqs),), generator=generator, device=self.device).cpu().numpy()
        n = self.lengths
        # windows per user: the latest, plus those ending r, r + L, ... transitions earlier (long histories)
        extra = np.where(n > L, (n - shifts - 1) // L + 1, 0)
        per_user = 1 + extra
        user = np.repeat(np.arange(len(n)), per_user)
        j = np.arange(len(user)) - np.repeat(np.cumsum(per_user) - per_user, per_user)  # 0, 1, ... per user
        end = np.where(j == 0, n[user], n[user] - shifts[user] - (j - 1) * L)  # [W] transitions before the end
        idx = end[:, None] - L + np.arange(L)[None, :]  # [W, L] position in the user's sequence
        base = self._offsets[user][:, None]
        inputs = np.where(idx >= 0, self._flat[np.maximum(base + idx, 0)], pad)
        targets = np.empty((len(user), L, horizon), dtype=np.int64)
        for h in range(horizon):
            ahead = idx + 1 + h
            ok = (idx >= 0) & (ahead <= n[user][:, None])
            targets[:, :, h] = np.where(ok, self._flat[np.minimum(base + ahead, len(self._flat) - 1)], pad)
        return inputs, targets

    def batches(self, generator: torch.Generator, batch_size: int, rank: int, world_size: int) -> Iterator:
        inputs, targets = self._windows(generator)
        order = torch.randperm(len(inputs), generator=generator, device=self.device).cpu().numpy()
        order = shard(order, rank, world_size)
        inputs_t = torch.from_numpy(inputs).to(self.device)
        targets_t = torch.from_numpy(targets).to(self.device)
        for s in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[s: s + batch_size]).to(self.device)
            seq, tgt = inputs_t[idx], targets_t[idx]
            used = int((seq != self.n_items).any(0).float().argmax()) if len(seq) else 0  # drop all-pad columns
            yield seq[:, used:], tgt[:, used:]

    def loss(self, net: SASRecNet, batch: tuple[torch.Tensor, torch.Tensor], step: int,
             generator: torch.Generator) -> torch.Tensor:
        """Mean next-item loss over the batch's positions and their ``horizon`` targets that hold an item."""
        seq, tgt = batch  # [B, L], [B, L, H]
        h = net(seq)  # [B, L, dim]
        real = tgt[..., 0] != self.n_items
        h, tgt = h[real], tgt[real]  # [N, dim], [N, H]
        has = tgt != self.n_items  # [N, H]
        tgt_safe = tgt.masked_fill(~has, 0)
        table = net.item_table()
        pos = (h.unsqueeze(1) * table[tgt_safe]).sum(-1)  # [N, H]
        kind = self.cfg.loss
        if kind == "sampled" and self.cfg.sampled_items >= self.n_items - 1:
            kind = "ce"
        if kind == "ce":
            per = torch.logsumexp(h @ table.T, dim=-1, keepdim=True) - pos
        elif kind == "sampled":
            # softmax over [target, K shared uniform negatives]; a negative's logit + log((n_items - 1) / K)
            # makes the sum over the negatives estimate the sum over all other items (full softmax's partition)
            k = self.cfg.sampled_items
            neg = torch.randint(0, self.n_items, (k,), generator=generator, device=tgt.device)
            neg_logit = h @ table[neg].T + math.log((self.n_items - 1) / k)  # [N, K]
            rows, cols = _matches(neg, tgt)  # a negative that is one of the row's targets drops out
            lse = torch.logsumexp(neg_logit.index_put_((rows, cols), torch.tensor(-torch.inf, device=tgt.device)),
                                  dim=-1, keepdim=True)  # [N, 1]
            per = torch.logaddexp(pos, lse) - pos
        else:
            neg = torch.randint(0, self.n_items, (len(tgt), self.cfg.negatives), generator=generator,
                                device=tgt.device)
            neg_logit = (table[neg] @ h.unsqueeze(-1)).squeeze(-1)  # [N, negatives]
            per = F.softplus(-pos) + F.softplus(neg_logit).sum(-1, keepdim=True)
        loss = per[has].mean()
        if self.cfg.l2 > 0:
            loss = loss + self.cfg.l2 * table[tgt[:, 0]].pow(2).sum(-1).mean()
        return loss


def _matches(neg: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every sampled negative ``neg`` [K] that equals one of row n's targets ``tgt`` [N, H]:
    the positions ``(neg[None, None, :] == tgt[:, :, None]).any(1)`` marks, found by a search in the sorted
    negatives instead of an [N, H, K] comparison (a target matches a few negatives at most)."""
    order = torch.argsort(neg)
    ordered = neg[order]
    flat = tgt.reshape(-1)
    lo = torch.searchsorted(ordered, flat)
    counts = torch.searchsorted(ordered, flat, right=True) - lo
    hits = counts > 0
    counts, lo, where = counts[hits], lo[hits], torch.nonzero(hits).squeeze(1)
    rows = torch.repeat_interleave(where // tgt.shape[1], counts)
    firsts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    step = torch.arange(int(counts.sum()), device=neg.device) - firsts  # 0, 1, ... within each target's matches
    return rows, order[torch.repeat_interleave(lo, counts) + step]


class SASRec(Recommender):
    """SASRec: the representation of a user's latest position, dotted with the item embeddings."""

    name = "sasrec"
    exact_history = True
    config_class = SASRecConfig
    has_user_vectors = True
    has_item_vectors = True

    def __init__(self, config: SASRecConfig | None = None, **overrides) -> None:
        super().__init__(config, **overrides)
        self.net_: SASRecNet | None = None
        self.seq_indptr_: np.ndarray | None = None  # int64 [n_users + 1]
        self.seq_items_: np.ndarray | None = None  # int32: each user's last max_len training items, oldest first
        self.device_name = "auto"

    def _build_net(self, n_items: int) -> SASRecNet:
        c = self.config
        return SASRecNet(n_items, c.max_len, c.dim, c.heads, c.blocks, c.dropout)

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        cfg = self.config
        device = resolve_device(context.device)
        self.device_name = context.device
        torch.manual_seed(cfg.seed if context.seed is None else context.seed)
        history = History.from_interactions(train, np.arange(train.n_users))
        full_indptr, _ = _sequences(history, len(history) + 1)
        seqs = np.split(history.item[np.argsort(history.row, kind="stable")], full_indptr[1:-1])
        self.seq_indptr_, self.seq_items_ = _sequences(history, cfg.max_len)
        self.net_ = net = self._build_net(train.n_items).to(device)
        validate = None
        if valid is not None and valid.negatives is not None:
            def validate() -> dict[str, float]:
                return evaluate_heldout_sampled(self, valid, (10,)).metrics
        step = _NextItemStep(seqs, train.n_items, cfg, device)
        if not step.seqs:
            raise MovieRecError("sasrec needs at least one user with 2 or more training interactions "
                                "(a sequence to predict the next item of)")
        return Trainer(net, step, cfg, context, validate).run()

    def _read_users(self, inter: Interactions) -> None:
        history = History.from_interactions(inter, np.arange(inter.n_users))
        self.seq_indptr_, self.seq_items_ = _sequences(history, self.config.max_len)

    # -- scoring -----------------------------------------------------------------------------------
    def _encode(self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Last-position representations float32 [len(rows), dim] of the sequences ``rows`` of (indptr, items)."""
        net = self.net_
        net.eval()
        device = next(net.parameters()).device
        L = self.config.max_len
        out = np.empty((len(rows), net.item.embedding_dim), dtype=np.float32)
        step = max(1, _POSITIONS_PER_BATCH // L)
        with torch.no_grad():
            for s in range(0, len(rows), step):
                seq = torch.from_numpy(_padded(indptr, items, rows[s: s + step], L, self.n_items)).to(device)
                out[s: s + step] = net(seq)[:, -1].float().cpu().numpy()
        return out

    def _score_vectors(self, h: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """h [n, dim] dotted with every item's embedding, or with each row's candidates [n, m]."""
        table = self.net_.item_table().detach().float().cpu().numpy()
        if items is None:
            return h @ table.T
        return np.einsum("nd,nmd->nm", h, table[np.asarray(items, dtype=np.int64)])

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        h = self._encode(self.seq_indptr_, self.seq_items_, users)
        return self._gather(self._score_vectors(h, None), items).astype(np.float32)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        indptr, seq_items = _sequences(history, self.config.max_len)
        h = self._encode(indptr, seq_items, np.arange(history.n))
        return self._gather(self._score_vectors(h, None), items).astype(np.float32)

    # -- learned vectors ---------------------------------------------------------------------------
    def user_vectors(self) -> np.ndarray | None:
        """Each trained user's latest-position representation float32 [n_users, dim]."""
        self._check_fitted()
        return self._encode(self.seq_indptr_, self.seq_items_, np.arange(self.n_users))

    def item_vectors(self) -> np.ndarray | None:
        """The item embedding table float32 [n_items, dim] (also the output layer)."""
        self._check_fitted()
        return self.net_.item_table().detach().float().cpu().numpy()

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().float().cpu().numpy() for k, v in self.net_.state_dict().items()}
        state["seq.indptr"] = self.seq_indptr_.astype(np.int64)
        state["seq.items"] = self.seq_items_.astype(np.int32)
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        net = self._build_net(self.seen_.shape[1])
        net.load_state_dict({k[4:]: torch.from_numpy(v.copy()) for k, v in state.items() if k.startswith("net.")})
        self.net_ = net.to(resolve_device(self.device_name)).eval()
        self.seq_indptr_ = np.asarray(state["seq.indptr"], dtype=np.int64)
        self.seq_items_ = np.asarray(state["seq.items"], dtype=np.int32)
