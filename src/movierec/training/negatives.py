"""Negative sampling on the training device: uniform items, rejecting the user's positives.

Positives are sorted int64 keys ``user * n_items + item`` on the device; membership is a
``torch.searchsorted``. Rejected draws are redrawn (vectorised) until none is left.
"""

from __future__ import annotations

import torch


class DeviceNegativeSampler:
    """Draws negatives for (user) tensors; never returns one of that user's positive items."""

    def __init__(self, user: torch.Tensor, item: torch.Tensor, n_items: int) -> None:
        self.n_items = n_items
        keys = user.to(torch.int64) * n_items + item.to(torch.int64)
        self.keys = torch.unique(keys)  # sorted
        counts = torch.bincount(user.to(torch.int64))
        if len(counts) and int(counts.max()) >= n_items:
            raise ValueError("a user interacted with every item: no negatives to sample")

    def is_positive(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        q = user.to(torch.int64) * self.n_items + item
        pos = torch.searchsorted(self.keys, q).clamp_(max=len(self.keys) - 1)
        return self.keys[pos] == q

    def sample(self, user: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One negative item (int64) per entry of ``user``."""
        item = torch.randint(0, self.n_items, user.shape, generator=generator, device=user.device)
        bad = self.is_positive(user, item)
        while bool(bad.any()):
            idx = bad.nonzero().squeeze(1)
            item[idx] = torch.randint(0, self.n_items, idx.shape, generator=generator, device=user.device)
            bad = torch.zeros_like(bad)
            bad[idx] = self.is_positive(user[idx], item[idx])
        return item
