"""Evaluation protocols: sampled-100 (the NCF paper's) and full ranking, batched over users.

Ties. Scores are compared as float32. Equal scores are ordered by a pseudo-random key that depends only
on (user, item, seed), so results do not depend on the batch size or on item ids: each score is nudged
down by less than half a float32 step, by ``key * step / 2`` in float64, which breaks ties uniformly at
random and never reorders distinct float32 scores.

Where. Ranking runs in torch (:mod:`movierec.evaluation.ranking`, bit-identical keys to the numpy ones here)
on the device the scores come from: a model with ``score_tensor`` (the torch models) leaves its scores on its
GPU, and the masking of seen items, the top-k and the tie-breaking happen there, in batches of users sized
to the free memory; only the top-k lists come back. Other models' numpy scores are ranked on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from movierec.data.history import History
from movierec.data.sampling import is_positive, positive_keys
from movierec.data.splits import HeldOut, Split
from movierec.evaluation import ranking
from movierec.evaluation.beyond import beyond_accuracy_metrics
from movierec.evaluation.metrics import accuracy_metrics

DEFAULT_KS = (1, 5, 10, 20)
TIE_SEED = 42
_SCORE_BUDGET = 1 << 22  # scores held per batch on a CPU (16 MiB of float32: the batch stays in cache while it is
# masked and ranked; at 256 MiB every user costs twice as much, most of it writing scores out to memory)


@dataclass
class EvalResult:
    """Metrics of one model on one split part under one protocol.

    metrics: mean over evaluated users, e.g. {"HR@10": 0.61}; per_user: the same metrics per user,
    float64 [n_users], aligned with ``users``; recs: int [n_users, max K] top-K lists (full ranking).
    """

    protocol: str
    part: str
    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    recs: np.ndarray | None = field(repr=False, default=None)

    def to_json(self) -> dict:
        return {"protocol": self.protocol, "part": self.part, "users": len(self.users),
                "metrics": {k: float(v) for k, v in self.metrics.items()}}


def tie_keys(users: np.ndarray, items: np.ndarray, seed: int = TIE_SEED) -> np.ndarray:
    """Uniform [0, 1) float64 keys, a fixed hash (splitmix64) of (user, item, seed). Broadcasts."""
    with np.errstate(over="ignore"):
        x = (np.asarray(users, np.uint64) << np.uint64(32)) ^ np.asarray(items, np.uint64)
        x = x ^ np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def break_ties(scores: np.ndarray, users: np.ndarray, items: np.ndarray, seed: int = TIE_SEED) -> np.ndarray:
    """float64 scores with a strict, seeded random order among equal float32 scores.

    scores: [n, m]; users: [n]; items: [m] or [n, m]. NaN counts as -inf.
    """
    items2d = items if np.ndim(items) == 2 else np.asarray(items)[None, :]
    return _nudge(scores, tie_keys(np.asarray(users)[:, None], items2d, seed))


def _nudge(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """float64(scores) - keys * (half a float32 step): orders ties by key, keeps distinct scores in order."""
    s32 = np.nan_to_num(np.asarray(scores, dtype=np.float32), nan=-np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        step = np.spacing(np.abs(s32)).astype(np.float64)
        out = s32.astype(np.float64) - keys * step * 0.5
    out[np.isneginf(s32)] = -np.inf
    return out


def _batches(n: int, width: int, device: torch.device | None = None) -> list[slice]:
    budget = _SCORE_BUDGET
    if device is not None and device.type == "cuda":  # scores, their mask and top-k work: ~16 bytes each
        budget = max(budget, torch.cuda.mem_get_info(device)[0] // 32)
    size = max(1, budget // max(width, 1))
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _device(model) -> torch.device | None:
    """The device a model scores on when it can hand back tensors there (``score_tensor``), else None."""
    if getattr(model, "score_tensor", None) is None:
        return None
    try:
        return model.device
    except (AttributeError, StopIteration, TypeError):
        return None


def _scores(model, users: np.ndarray, items: np.ndarray | None) -> torch.Tensor:
    """float32 scores as a tensor: on the model's device when it has ``score_tensor``, else a CPU copy."""
    if _device(model) is not None:
        return model.score_tensor(users, items)
    return torch.from_numpy(np.array(model.score(users, items), dtype=np.float32))


def evaluate_sampled(model, split: Split, part: str = "test", ks: tuple[int, ...] = DEFAULT_KS,
                     seed: int = TIE_SEED) -> EvalResult:
    """Sampled-100: each held-out item ranked among itself and its sampled negatives (one row per user)."""
    return evaluate_heldout_sampled(model, split.part(part), ks, seed, part)


def evaluate_heldout_sampled(model, held: HeldOut, ks: tuple[int, ...] = DEFAULT_KS, seed: int = TIE_SEED,
                             part: str = "valid") -> EvalResult:
    """Sampled-100 on one held-out part (used directly by training loops for early stopping)."""
    if held.negatives is None:
        raise ValueError(f"the {part} part of this split has no sampled negatives")
    cand = np.concatenate([held.item[:, None], held.negatives], axis=1).astype(np.int64)  # [n, 100]
    kmax = min(max(ks), cand.shape[1])
    ranks = np.empty(len(held), dtype=np.int64)
    users = held.user.astype(np.int64)
    # a numpy model may score whole rows and pick the candidates from them: batches sized for whole rows (a
    # torch model scores the candidates alone, batched by what each pair needs: see torch_base._score_with)
    device = _device(model)
    width = cand.shape[1] * 64 if device is not None else max(cand.shape[1], int(getattr(model, "n_items", 0) or 0))
    for b in _batches(len(held), width, device):
        s = _scores(model, users[b], cand[b])
        u = torch.from_numpy(users[b]).to(s.device)
        adj = ranking.break_ties(s, u, torch.from_numpy(cand[b]).to(s.device), seed)
        ranks[b] = (adj[:, 1:] > adj[:, :1]).sum(dim=1).cpu().numpy()
    hits = ranks[:, None] == np.arange(kmax)[None, :]
    per_user = accuracy_metrics(hits, np.ones(len(held), np.int64), tuple(k for k in ks if k <= kmax),
                                "sampled-100")
    return EvalResult("sampled-100", part, {k: float(v.mean()) for k, v in per_user.items()},
                      held.user.copy(), per_user)


def evaluate_full(model, split: Split, part: str = "test", ks: tuple[int, ...] = DEFAULT_KS,
                  item_features: np.ndarray | None = None, seed: int = TIE_SEED,
                  device: str | None = None) -> EvalResult:
    """Full ranking: held-out items ranked among all items the user has not trained on.

    Train items are excluded; when evaluating the test part, the validation items are excluded too
    (they are known interactions, not candidates). ``item_features`` [n_items, F] (genres) enables
    intra-list diversity. A part with ``fold_in`` interactions (vae-cf: users the model never trained on)
    is scored from those histories (``model.score_history``), and their fold-in items are excluded.
    """
    held = split.part(part)
    users = held.users
    kmax = max(ks)
    n_items = split.n_items
    train_matrix = split.train.matrix()
    seen = train_matrix
    if part == "test" and split.valid is not None:
        v = split.valid
        seen = (seen + sp.csr_matrix((np.ones(len(v), np.float32), (v.user, v.item)), shape=seen.shape)).tocsr()
    if split.candidates is not None:
        candidate_mask = np.zeros(n_items, dtype=bool)
        candidate_mask[split.candidates] = True
        kmax = min(kmax, int(candidate_mask.sum()))
    row = np.searchsorted(users, held.user)
    rel_keys = positive_keys(row, held.item, n_items)  # (row in `users`, item), sorted, unique
    n_relevant = np.bincount(rel_keys // n_items, minlength=len(users))
    recs = np.empty((len(users), kmax), dtype=np.int64)
    device = _device(model) if held.fold_in is None else None
    seen_rows = seen[users] if held.fold_in is None else None  # the evaluated users' rows, in order
    excluded = None if split.candidates is None else torch.from_numpy(~candidate_mask)
    for b in _batches(len(users), n_items, device):
        ub = users[b].astype(np.int64)
        if held.fold_in is not None:
            history = History.from_interactions(held.fold_in, ub)
            s = torch.from_numpy(np.array(model.score_history(history), dtype=np.float32))
            mask = history.matrix(n_items)
        else:
            s = _scores(model, ub, None)
            mask = seen_rows[b]
        s, dev = s.contiguous(), s.device
        if excluded is not None:
            s[:, excluded.to(dev)] = -torch.inf
        # seen items as positions in the flattened batch: one index_fill_ over a 1-D view
        flat = np.repeat(np.arange(len(ub), dtype=np.int64) * n_items, np.diff(mask.indptr)) + mask.indices
        s.view(-1).index_fill_(0, torch.from_numpy(flat).to(dev), -torch.inf)
        recs[b] = ranking.top_k(s, torch.from_numpy(ub).to(dev), kmax, seed).cpu().numpy()
        del s
    hits = is_positive(rel_keys, np.arange(len(users))[:, None], recs, n_items)
    per_user = accuracy_metrics(hits, n_relevant, ks, split.protocol if split.protocol == "vae-cf" else "full")
    metrics = {k: float(v.mean()) for k, v in per_user.items()}
    item_users = np.asarray(train_matrix.sum(axis=0)).ravel().astype(np.int64)
    n_train_users = int((np.diff(train_matrix.indptr) > 0).sum())
    for k in ks:
        feats = item_features if k >= 2 else None
        metrics.update(beyond_accuracy_metrics(recs[:, :k], item_users, n_train_users, feats))
    return EvalResult("full", part, metrics, users, per_user, recs)


def evaluate(model, split: Split, protocol: str, part: str = "test", ks: tuple[int, ...] = DEFAULT_KS,
             item_features: np.ndarray | None = None) -> EvalResult:
    """Dispatch on ``protocol``: "sampled-100" or "full"."""
    if protocol == "sampled-100":
        return evaluate_sampled(model, split, part, ks)
    if protocol == "full":
        return evaluate_full(model, split, part, ks, item_features)
    raise ValueError(f"unknown protocol {protocol!r} (expected 'sampled-100' or 'full')")


PROTOCOLS = ("sampled-100", "full")
"""The protocols a run is evaluated under (where the split supports them)."""


def evaluate_protocols(model, split: Split, part: str = "test", ks: tuple[int, ...] = DEFAULT_KS,
                       item_features: np.ndarray | None = None, protocols: tuple[str, ...] = PROTOCOLS
                       ) -> tuple[dict[str, EvalResult], dict[str, float]]:
    """``part`` under every protocol of ``protocols`` the split supports (sampled-100 needs sampled negatives:
    the cold-item split has none). Returns the results and each protocol's evaluation time in seconds."""
    import time

    results: dict[str, EvalResult] = {}
    seconds: dict[str, float] = {}
    for protocol in protocols:
        if protocol == "sampled-100" and split.part(part).negatives is None:
            continue
        t0 = time.perf_counter()
        results[protocol] = evaluate(model, split, protocol, part, ks, item_features)
        seconds[protocol] = time.perf_counter() - t0
    return results, seconds
