"""Seeded tie-breaking and top-k in torch, on whatever device the scores are (the GPU a model lives on).

The same arithmetic as the numpy reference in :mod:`movierec.evaluation.protocols` (``tie_keys``, ``_nudge``):
splitmix64 in wrapping int64 with logical shifts, then float64, so the keys are bit-identical to numpy's
(tests compare them bit for bit) and a ranking does not depend on where it was computed.
"""

from __future__ import annotations

import torch

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def _signed(v: int) -> int:
    """The int64 with the bits of the uint64 ``v``."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical (unsigned) right shift of int64 ``x`` by ``k`` bits."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def tie_keys(users: torch.Tensor, items: torch.Tensor, seed: int) -> torch.Tensor:
    """Uniform [0, 1) float64 keys of (user, item, seed), bit-identical to ``protocols.tie_keys``. Broadcasts."""
    x = (users.to(torch.int64) << 32) ^ items.to(torch.int64)
    x = x ^ _signed(seed * _GOLDEN)
    x = x + _signed(_GOLDEN)
    x = (x ^ _lsr(x, 30)) * _signed(_MIX1)
    x = (x ^ _lsr(x, 27)) * _signed(_MIX2)
    x = x ^ _lsr(x, 31)
    return _lsr(x, 11).to(torch.float64) * (1.0 / (1 << 53))


def nudge(scores: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """float64(scores) - keys * (half a float32 step), as ``protocols._nudge``: NaN counts as -inf."""
    s32 = torch.nan_to_num(scores.to(torch.float32), nan=-torch.inf)
    a = s32.abs()
    step = (torch.nextafter(a, torch.full_like(a, torch.inf)) - a).to(torch.float64)
    out = s32.to(torch.float64) - keys * step * 0.5
    return out.masked_fill(s32 == -torch.inf, -torch.inf)


def break_ties(scores: torch.Tensor, users: torch.Tensor, items: torch.Tensor, seed: int) -> torch.Tensor:
    """float64 scores [n, m] with a strict seeded order among equal float32 scores; items [m] or [n, m]."""
    return nudge(scores, tie_keys(users[:, None], items if items.dim() == 2 else items[None, :], seed))


def top_k(scores: torch.Tensor, users: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Item indices int64 [n, k] of float32 ``scores`` [n, n_items] in the seeded tie-breaking order.

    Only items scoring at least the k-th best float32 score can enter the top k, and tie-breaking never
    reorders distinct float32 scores, so ties are broken among those alone (about k per row): they are
    nudged, sorted by (row, nudged score) and the first k of each row kept. Where a row has fewer than k
    finite scores its last slots hold -inf items, lowest index first.
    """
    s = torch.nan_to_num(scores, nan=-torch.inf)
    kth = torch.topk(s, k, dim=1).values[:, -1:]
    rows, cols = torch.nonzero(s >= kth, as_tuple=True)
    adj = nudge(s[rows, cols], tie_keys(users[rows], cols, seed))
    order = torch.argsort(adj, descending=True, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]
    rows, cols = rows[order], cols[order]
    starts = torch.zeros(len(s) + 1, dtype=torch.int64, device=s.device)
    starts[1:] = torch.cumsum(torch.bincount(rows, minlength=len(s)), 0)
    position = torch.arange(len(rows), device=s.device) - starts[rows]
    keep = position < k
    out = torch.empty((len(s), k), dtype=torch.int64, device=s.device)
    out[rows[keep], position[keep]] = cols[keep]
    return out
