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


_CHUNK = 64  # items per block when looking for the blocks that hold a row's top k


def top_k(scores: torch.Tensor, users: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Item indices int64 [n, k] of float32 ``scores`` [n, n_items] in the seeded tie-breaking order.

    ``scores`` may be changed in place (NaN becomes -inf). Where ranking costs: one pass over the scores takes
    the maximum of each block of 64 items (block g: items g, g + G, g + 2G, ... with G = n_items // 64; the
    last n_items mod 64 items, the tail, are no block). With t the k-th highest block maximum, the row's k
    best items all score at least t (the k best blocks hold k items that do), so they are among the items
    scoring at least t in those k blocks and the tail (about k of them) when no other block reaches t: those
    few are nudged and sorted. Rows where another block's maximum equals t (a tie), or t is not finite (fewer
    than k finite scores, a NaN), are ranked over every item scoring at least the k-th; where a row has fewer
    than k finite scores its last slots hold -inf items, lowest index first.
    """
    n, m = scores.shape
    s = scores
    g = m // _CHUNK
    if n == 0 or g <= k + 1:
        out = torch.empty((n, k), dtype=torch.int64, device=s.device)
        if n:
            s.nan_to_num_(nan=-torch.inf)
            out = _top_k_with_ties(s, users, torch.topk(s, k, dim=1).values[:, -1:], k, seed)
        return out
    # a reduction across the 64 rows of [64, G] runs along contiguous memory: twice as fast as one within
    # contiguous runs of 64
    maxima = s[:, : g * _CHUNK].unflatten(1, (_CHUNK, g)).amax(dim=1)  # [n, G]
    best = torch.topk(maxima, k + 1, dim=1)
    t = best.values[:, k - 1]
    careful = (t == best.values[:, k]) | ~torch.isfinite(t) | torch.isnan(best.values).any(dim=1)
    cand = _block_items(g, s.device)[best.indices[:, :k]].flatten(1)  # [n, 64 k]
    vals = torch.gather(s, 1, cand)
    rows, at = torch.nonzero(vals >= t[:, None], as_tuple=True)
    cols, v = cand[rows, at], vals[rows, at]
    if m > g * _CHUNK:  # the tail's items are candidates too
        tail = s[:, g * _CHUNK:]
        rows_t, at_t = torch.nonzero(tail >= t[:, None], as_tuple=True)
        rows, cols = torch.cat([rows, rows_t]), torch.cat([cols, at_t + g * _CHUNK])
        v = torch.cat([v, tail[rows_t, at_t]])
    sure = ~careful[rows]
    rows, cols, v = rows[sure], cols[sure], v[sure]
    out = torch.empty((n, k), dtype=torch.int64, device=s.device)
    out_rows, position, cols = _first_k(rows, cols, nudge(v, tie_keys(users[rows], cols, seed)), n, k)
    out[out_rows, position] = cols
    if bool(careful.any()):
        rows_c = torch.nonzero(careful).squeeze(1)
        sub = s[rows_c].nan_to_num_(nan=-torch.inf)
        out[rows_c] = _top_k_with_ties(sub, users[rows_c], torch.topk(sub, k, dim=1).values[:, -1:], k, seed)
    return out


def _block_items(g: int, device: torch.device) -> torch.Tensor:
    """int64 [g, 64]: the items of each block."""
    return torch.arange(g, device=device)[:, None] + g * torch.arange(_CHUNK, device=device)


def _first_k(rows: torch.Tensor, cols: torch.Tensor, adj: torch.Tensor, n: int, k: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates (rows, cols) with nudged scores ``adj``: the best k of each row as (rows, position, cols)."""
    order = torch.argsort(adj, descending=True, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]
    rows, cols = rows[order], cols[order]
    starts = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    starts[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    position = torch.arange(len(rows), device=rows.device) - starts[rows]
    keep = position < k
    return rows[keep], position[keep], cols[keep]


def _top_k_with_ties(s: torch.Tensor, users: torch.Tensor, kth: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Top k of rows [n, n_items] over every item scoring at least the row's k-th score ``kth`` [n, 1]."""
    rows, cols = torch.nonzero(s >= kth, as_tuple=True)
    out = torch.empty((len(s), k), dtype=torch.int64, device=s.device)
    rows, position, cols = _first_k(rows, cols, nudge(s[rows, cols], tie_keys(users[rows], cols, seed)), len(s), k)
    out[rows, position] = cols
    return out
