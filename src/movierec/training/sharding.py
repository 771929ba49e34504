"""How a data-parallel rank takes its share of an epoch."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def shard(order: T, rank: int, world_size: int) -> T:
    """Rank ``rank``'s share of an epoch's order [n] (a tensor or an array): every world_size-th entry, after
    dropping the last n mod world_size entries so that every rank gets as many batches (DDP waits for all)."""
    if world_size <= 1:
        return order
    return order[: len(order) - len(order) % world_size][rank::world_size]
