"""What the sequential models (SASRec, GRU4Rec) share: next-item training on windows of each user's
time-ordered history, the losses, and scoring from the representation of a history's latest position.

A user is their training history read in time order (``History.from_interactions``: by timestamp, ties in
the order of the training data), of which the last ``max_len`` items are used. A sequence is left-padded to
``max_len`` (the pad item is ``n_items``, whose embedding is zero), so the latest item always sits at the last
position. A network (:class:`NextItemNet`) turns a padded batch [B, L] into one ``dim``-wide vector per
position; position t predicts item t + 1, and the score of item i after a sequence is h_last . e_i (the item
embedding table is also the output layer).

Training (:class:`NextItemStep`): at every non-pad position the next item is predicted with (``loss="auto"``,
the default: ``ce`` up to 50,000 items, ``sampled`` above)

- ``loss="ce"``: full softmax cross-entropy over all items (RecBole's default; Klenitskiy and Vasilev,
  RecSys 2023), its gradient fused into the forward pass chunk by chunk (:func:`full_cross_entropy`);
- ``loss="sampled"``: a softmax over the target and ``sampled_items`` uniform negatives shared by the batch,
  their logits raised by log((n_items - 1) / K) so that they stand for all other items;
- ``loss="gbce"``: gSASRec's generalised binary cross-entropy (Petrov and Macdonald, RecSys 2023) against the
  same shared negatives: the positive's term is raised to the power β = α (t (1 - 1/α) + 1/α), α = K /
  (n_items - 1), t = ``gbce_t``, which counters the overconfidence that negative sampling brings;
- ``loss="bce"``: binary cross-entropy against ``negatives`` items sampled per position (SASRec's paper).

Long histories are cut into windows of ``max_len`` transitions ending at the latest one, plus, each epoch,
windows shifted by a random offset so that every transition is seen in several contexts. The trainer shell
(:mod:`movierec.training`) runs the epochs, keeps the epoch with the best validation NDCG@10 (sampled-100)
and stops after ``patience`` epochs without improvement.

Scoring: ``score(users)`` and ``score_history(history)`` run the same network on the same kind of padded
sequence (a trained user's stored training sequence, or a history's items in array order), so a trained
user's own training history scores exactly as the user.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

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
from movierec.models.settings import Settings, setting
from movierec.training import Hardware, Trainer, resolve_device
from movierec.training.sharding import shard

__all__ = ["CE_MAX_ITEMS", "LOSSES", "NextItemModel", "NextItemNet", "NextItemSettings", "NextItemStep", "dropout_",
           "full_cross_entropy", "padded", "sequences"]

LOSSES = ("auto", "ce", "sampled", "gbce", "bce")
CE_MAX_ITEMS = 50_000  # loss="auto": the full cross-entropy up to this many items, the sampled softmax above
_POSITIONS_PER_BATCH = 1 << 16  # sequence positions encoded per forward pass when scoring
_MASK_LEVELS = 1 << 16  # a dropout probability is rounded to a multiple of 1/65,536


#: the trainer shell's defaults of every next-item model (batch_size counts sequences: windows of up to max_len)
TRAINER_DEFAULTS = {"epochs": 20, "batch_size": 16, "lr": 0.002, "patience": 5}


class NextItemSettings(Settings):
    """What the next-item step reads: the windows' length and the loss (the model reads max_len too)."""

    title = "step"

    max_len: int = setting(100, "most recent items of a history the model reads (sequence length)", ge=1)
    loss: str = setting("auto", "softmax cross-entropy over all items (ce), a softmax over the target and "
                        "sampled_items shared uniform negatives (sampled), gSASRec's generalised BCE against "
                        "them (gbce), BCE against `negatives` per position (bce), or auto: ce up to 50,000 "
                        "items, sampled above", choices=LOSSES)
    sampled_items: int = setting(4096, "uniform negatives shared by a batch for loss=sampled or gbce", ge=1)
    gbce_t: float = setting(0.75, "gbce's calibration t in [0, 1] (0: plain BCE; 1: β = α)", ge=0, le=1)
    negatives: int = setting(4, "negatives sampled per position for loss=bce", ge=1)
    l2: float = setting(0.0, "L2 penalty on the target items' embeddings, mean over the batch's positions", ge=0)


def dropout_(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout of a fresh activation x (any shape): each element kept with probability 1 - p and scaled
    by 1 / (1 - p). p is rounded to a multiple of 1/65,536 and the scale follows it exactly.

    The mask comes from 16-bit slices of 64-bit random integers: on a CPU, ``torch.bernoulli_`` draws one
    number per element from a serial generator and took a third of SASRec's epoch; this draws one per four
    elements. Uses (and advances) torch's global generator, as ``nn.Dropout`` does.
    """
    if not training or p <= 0:
        return x
    level = round(p * _MASK_LEVELS)
    if level <= 0:
        return x
    n = x.numel()
    bits = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    keep = bits.view(torch.int16)[:n].view(x.shape) >= level - _MASK_LEVELS // 2  # int16 + 32768 is uniform
    return x * (keep * (_MASK_LEVELS / (_MASK_LEVELS - level))).to(x.dtype)


class NextItemNet(nn.Module):
    """Item embeddings [n_items + 1, dim] (row n_items: the pad, kept zero) and a sequence encoder.

    ``forward(seq)``: hidden states float [B, L, dim] of left-padded item sequences int64 [B, L] (L <= max_len).
    """

    n_items: int
    item: nn.Embedding

    def item_table(self) -> torch.Tensor:
        """The real items' embeddings [n_items, dim] (the output layer)."""
        return self.item.weight[: self.n_items]


def sequences(history: History, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``max_len`` items of each history in array order: (indptr int64 [n + 1], items int32 [m])."""
    lengths = history.lengths()
    order = np.argsort(history.row, kind="stable")  # rows grouped, array (time) order kept within a row
    rows, items = history.row[order], history.item[order]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rank_from_end = starts[rows + 1] - np.arange(len(rows)) - 1  # 0 for each history's latest item
    keep = rank_from_end < max_len
    kept = np.minimum(lengths, max_len)
    return np.concatenate([[0], np.cumsum(kept)]).astype(np.int64), items[keep].astype(np.int32)


def padded(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Left-padded int64 [len(rows), width]: each row's last ``width`` items of its sequence, latest last."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = np.minimum(indptr[rows + 1] - indptr[rows], width)
    out = np.full((len(rows), width), pad, dtype=np.int64)
    col = np.arange(width)[None, :]
    take = col >= width - lengths[:, None]  # the last `length` columns hold the sequence
    out[take] = items[(indptr[rows + 1][:, None] - width + col)[take]]
    return out


class NextItemStep:
    """The trainer shell's step: windows of each user's training sequence, next-item loss at every position.

    Each epoch's windows (of ``max_len`` transitions, left-padded) are: the window ending at the latest
    transition, and for histories longer than that, windows ending ``r``, ``r + max_len``, ... transitions
    earlier with a fresh random ``r`` in [1, max_len] per user, covering every transition at least once.
    """

    def __init__(self, seqs: list[np.ndarray], n_items: int, cfg: NextItemSettings, device: torch.device) -> None:
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

    def windows(self, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Inputs int64 [W, L] and their next items int64 [W, L] (pad where there is no item) of one epoch,
        user by user and, per user, the window ending at the latest transition first (vectorised: no loop over
        users or windows)."""
        L, pad = self.cfg.max_len, self.n_items
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
        targets = np.where(idx >= 0, self._flat[np.minimum(base + idx + 1, len(self._flat) - 1)], pad)
        return inputs, targets

    def batches(self, generator: torch.Generator, batch_size: int, rank: int, world_size: int) -> Iterator:
        inputs, targets = self.windows(generator)
        order = torch.randperm(len(inputs), generator=generator, device=self.device).cpu().numpy()
        order = shard(order, rank, world_size)
        inputs_t = torch.from_numpy(inputs).to(self.device)
        targets_t = torch.from_numpy(targets).to(self.device)
        for s in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[s: s + batch_size]).to(self.device)
            seq, tgt = inputs_t[idx], targets_t[idx]
            used = int((seq != self.n_items).any(0).float().argmax()) if len(seq) else 0  # drop all-pad columns
            yield seq[:, used:], tgt[:, used:]

    def loss(self, net: NextItemNet, batch: tuple[torch.Tensor, torch.Tensor], step: int,
             generator: torch.Generator) -> torch.Tensor:
        """Mean next-item loss over the batch's positions that hold an item."""
        seq, tgt = batch  # [B, L], [B, L]
        h = net(seq)  # [B, L, dim]
        real = tgt != self.n_items
        h, tgt = h[real], tgt[real]  # [N, dim], [N]
        table = net.item_table()
        kind, k = self.cfg.loss, self.cfg.sampled_items
        if kind == "auto":
            kind = "ce" if self.n_items <= CE_MAX_ITEMS else "sampled"
        if kind == "sampled" and k >= self.n_items - 1:
            kind = "ce"
        loss = full_cross_entropy(h, table, tgt) if kind == "ce" else self._negatives_loss(h, table, tgt, kind,
                                                                                          generator)
        if self.cfg.l2 > 0:
            loss = loss + self.cfg.l2 * table[tgt].pow(2).sum(-1).mean()
        return loss

    def _negatives_loss(self, h: torch.Tensor, table: torch.Tensor, tgt: torch.Tensor, kind: str,
                        generator: torch.Generator) -> torch.Tensor:
        """Mean loss of positions h [N, dim] against targets tgt [N] and sampled negatives (sampled, gbce, bce)."""
        k = self.cfg.sampled_items
        pos = (h * table[tgt]).sum(-1)  # [N]
        if kind in ("sampled", "gbce"):
            neg = torch.randint(0, self.n_items, (k,), generator=generator, device=tgt.device)
            neg_logit = h @ table[neg].T  # [N, K]
            rows, cols = _matches(neg, tgt)  # a negative that is the row's target drops out
            if kind == "sampled":
                # a negative's logit + log((n_items - 1) / K): the sum over the negatives estimates the sum over
                # all other items (full softmax's partition)
                neg_logit = neg_logit + math.log((self.n_items - 1) / k)
                lse = torch.logsumexp(neg_logit.index_put_((rows, cols), torch.tensor(-torch.inf, device=tgt.device)),
                                      dim=-1)  # [N]
                per = torch.logaddexp(pos, lse) - pos
            else:
                alpha = k / (self.n_items - 1)
                beta = alpha * (self.cfg.gbce_t * (1 - 1 / alpha) + 1 / alpha)
                neg_term = F.softplus(neg_logit).index_put_((rows, cols), torch.tensor(0.0, device=tgt.device))
                per = beta * F.softplus(-pos) + neg_term.sum(-1)
        else:
            neg = torch.randint(0, self.n_items, (len(tgt), self.cfg.negatives), generator=generator,
                                device=tgt.device)
            neg_logit = (table[neg] @ h.unsqueeze(-1)).squeeze(-1)  # [N, negatives]
            per = F.softplus(-pos) + F.softplus(neg_logit).sum(-1)
        return per.mean()


_CE_CHUNK = 1 << 20  # logits per chunk of the fused cross-entropy (4 MB: stays in cache)


class _FullCrossEntropy(torch.autograd.Function):
    """mean_n [logsumexp_i (h_n . e_i) - h_n . e_{t_n}] with its gradient computed in the same pass, chunk by
    chunk of positions, so that the [N, n_items] logits are never held (nor read again) in full: the softmax
    of a chunk becomes its gradient in place while it is still in cache."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # softmax in float32 under --amp
    def forward(ctx, h: torch.Tensor, table: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        chunk = max(1, _CE_CHUNK // table.shape[0])
        grad_h, grad_table = torch.empty_like(h), torch.zeros_like(table)
        total = h.new_zeros(())
        for s in range(0, n, chunk):
            hc, tc = h[s: s + chunk], tgt[s: s + chunk]
            logits = hc @ table.T  # [c, n_items]
            rows = torch.arange(len(tc), device=h.device)
            target = logits[rows, tc]
            top = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(top).exp_()  # in place: the chunk's logits become its softmax
            norm = probs.sum(dim=1, keepdim=True)
            total += (top + norm.log()).sum() - target.sum()  # logsumexp - the target's logit
            probs.div_(norm)
            probs[rows, tc] -= 1  # d loss_n / d logits_n = softmax - one-hot
            grad_h[s: s + chunk] = probs @ table
            grad_table.addmm_(probs.T, hc)
        ctx.save_for_backward(grad_h, grad_table)
        ctx.n = n
        return total / n

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_table = ctx.saved_tensors
        scale = grad_out / ctx.n
        return grad_h * scale, grad_table * scale, None


def full_cross_entropy(h: torch.Tensor, table: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of positions h [N, dim] over every item of ``table`` [n_items, dim] against
    targets ``tgt`` int64 [N] (``F.cross_entropy(h @ table.T, tgt)``, fused: see :class:`_FullCrossEntropy`)."""
    if len(tgt) == 0:
        return (h.sum() + table.sum()) * 0.0
    return _FullCrossEntropy.apply(h, table, tgt)


def _matches(neg: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every sampled negative ``neg`` [K] equal to row n's target ``tgt`` [N]: the positions
    ``neg[None, :] == tgt[:, None]`` marks, found by a search in the sorted negatives instead of an [N, K]
    comparison (a target matches a few negatives at most)."""
    order = torch.argsort(neg)
    ordered = neg[order]
    lo = torch.searchsorted(ordered, tgt)
    counts = torch.searchsorted(ordered, tgt, right=True) - lo
    hits = counts > 0
    counts, lo, rows = counts[hits], lo[hits], torch.nonzero(hits).squeeze(1)
    rows = torch.repeat_interleave(rows, counts)
    firsts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    step = torch.arange(int(counts.sum()), device=neg.device) - firsts  # 0, 1, ... within each target's matches
    return rows, order[torch.repeat_interleave(lo, counts) + step]


class NextItemModel(Recommender):
    """A next-item model: fit on windows of the users' sequences; a user's (or history's) score of item i is
    the network's latest-position vector dotted with e_i. A subclass sets ``config_class`` (settings with a
    ``train`` part, :class:`TrainerSettings` with :data:`TRAINER_DEFAULTS`, and a ``step`` part,
    :class:`NextItemSettings`) and builds its net."""

    exact_history = True
    hardware = Hardware(gpu_batch_factor=4, amp=True)
    has_user_vectors = True
    has_item_vectors = True

    def __init__(self, config: Settings | None = None, **overrides) -> None:
        super().__init__(config, **overrides)
        self.net_: NextItemNet | None = None
        self.seq_indptr_: np.ndarray | None = None  # int64 [n_users + 1]
        self.seq_items_: np.ndarray | None = None  # int32: each user's last max_len training items, oldest first
        self.device_name = "auto"

    def _build_net(self, n_items: int) -> NextItemNet:
        raise NotImplementedError

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        cfg = self.config
        device = resolve_device(context.device)
        self.device_name = context.device
        torch.manual_seed(cfg.train.seed if context.seed is None else context.seed)
        history = History.from_interactions(train, np.arange(train.n_users))
        full_indptr, _ = sequences(history, len(history) + 1)
        seqs = np.split(history.item[np.argsort(history.row, kind="stable")], full_indptr[1:-1])
        self.seq_indptr_, self.seq_items_ = sequences(history, cfg.step.max_len)
        self.net_ = net = self._build_net(train.n_items).to(device)
        validate = None
        if valid is not None and valid.negatives is not None:
            def validate() -> dict[str, float]:
                return evaluate_heldout_sampled(self, valid, (10,)).metrics
        step = NextItemStep(seqs, train.n_items, cfg.step, device)
        if not step.seqs:
            raise MovieRecError(f"{self.name} needs at least one user with 2 or more training interactions "
                                "(a sequence to predict the next item of)")
        return Trainer(net, step, cfg.train, context, validate, self.hardware, self.config_dict()).run()

    def _read_users(self, inter: Interactions) -> None:
        history = History.from_interactions(inter, np.arange(inter.n_users))
        self.seq_indptr_, self.seq_items_ = sequences(history, self.config.step.max_len)

    # -- scoring -----------------------------------------------------------------------------------
    def _encode(self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Last-position representations float32 [len(rows), dim] of the sequences ``rows`` of (indptr, items)."""
        net = self.net_
        net.eval()
        device = next(net.parameters()).device
        L = self.config.step.max_len
        out = np.empty((len(rows), net.item.embedding_dim), dtype=np.float32)
        step = max(1, _POSITIONS_PER_BATCH // L)
        with torch.no_grad():
            for s in range(0, len(rows), step):
                seq = torch.from_numpy(padded(indptr, items, rows[s: s + step], L, self.n_items)).to(device)
                out[s: s + step] = net(seq)[:, -1].float().cpu().numpy()
        return out

    def _score_vectors(self, h: np.ndarray) -> np.ndarray:
        """h [n, dim] dotted with every item's embedding: [n, n_items]."""
        return h @ self.net_.item_table().detach().float().cpu().numpy().T

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        h = self._encode(self.seq_indptr_, self.seq_items_, users)
        return self._gather(self._score_vectors(h), items).astype(np.float32)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        indptr, seq_items = sequences(history, self.config.step.max_len)
        h = self._encode(indptr, seq_items, np.arange(history.n))
        return self._gather(self._score_vectors(h), items).astype(np.float32)

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
