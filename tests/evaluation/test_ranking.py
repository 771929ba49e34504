"""The torch ranking (used on a model's GPU, and on the CPU) against the numpy reference, bit for bit: tie keys,
nudged scores, seeded top-k, and whole evaluations of a torch model against the same scores ranked by numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.data.splits import leave_one_out
from movierec.evaluation import evaluate_full, evaluate_sampled, protocols, ranking
from movierec.models import GMF
from tests.training.test_training import synthetic


def test_tie_keys_are_bit_identical_to_numpy() -> None:
    rng = np.random.default_rng(0)
    users = np.concatenate([rng.integers(0, 2**31 - 1, 5000), [0, 1, 2**31 - 1]])
    items = np.concatenate([rng.integers(0, 2**31 - 1, 5000), [0, 2**31 - 1, 7]])
    for seed in (0, 42, 2**40 + 3):
        ref = protocols.tie_keys(users, items, seed)
        got = ranking.tie_keys(torch.from_numpy(users), torch.from_numpy(items), seed).numpy()
        assert got.dtype == np.float64 and np.array_equal(got.view(np.int64), ref.view(np.int64))
        assert got.min() >= 0 and got.max() < 1


def test_nudged_scores_are_bit_identical_to_numpy() -> None:
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-40, 30, 3000),
                        np.round(rng.standard_normal(2000), 1),  # many ties
                        [0.0, -0.0, 1e-45, -1e-45, np.finfo(np.float32).max, -np.inf, np.nan]]).astype(np.float32)
    keys = rng.random(len(s))
    ref = protocols._nudge(s, keys)
    got = ranking.nudge(torch.from_numpy(s), torch.from_numpy(keys)).numpy()
    assert np.array_equal(got.view(np.int64), ref.view(np.int64))


@pytest.mark.parametrize(("k", "m", "decimals"), [(1, 300, 1), (10, 300, 1), (40, 300, 1), (10, 3000, 1),
                                                   (10, 3001, 3), (5, 5000, 6), (20, 4096, 2)])
def test_top_k_follows_the_numpy_order_with_ties(k: int, m: int, decimals: int) -> None:
    """Narrow rows take the all-candidates path; wide ones the 64-item blocks, with and without ties at the k-th
    block maximum (fewer decimals: more ties)."""
    rng = np.random.default_rng(2)
    s = np.round(rng.standard_normal((50, m)), decimals).astype(np.float32)
    s[rng.random(s.shape) < 0.3] = -np.inf  # masked items
    s[:3, :] = -np.inf  # rows with nothing left to recommend
    s[3, 5:] = -np.inf  # a row with fewer than k candidates
    s[4, 7] = np.nan  # NaN counts as -inf
    users = rng.permutation(1000)[:50]
    adj = protocols.break_ties(s, users, np.arange(m))
    ref = np.argsort(-adj, axis=1, kind="stable")[:, :k]
    got = ranking.top_k(torch.from_numpy(s), torch.from_numpy(users), k, 42).numpy()
    finite = np.take_along_axis(s, ref, axis=1) > -np.inf
    assert np.array_equal(np.where(finite, got, -1), np.where(finite, ref, -1))
    assert (np.take_along_axis(s, got, axis=1)[~finite] == -np.inf).all()


class NumpyOnly:
    """A torch model seen through ``score`` alone: its scores are ranked on the CPU in numpy's order."""

    def __init__(self, model) -> None:
        self.model = model

    def score(self, users, items=None):
        return self.model.score(users, items)


def test_a_torch_model_ranks_as_its_numpy_scores_do() -> None:
    split = leave_one_out(synthetic())
    model = GMF(factors=8, epochs=2).fit(split.train, None, split.valid)
    assert protocols._device(model) is not None and protocols._device(NumpyOnly(model)) is None
    a, b = evaluate_full(model, split, "test"), evaluate_full(NumpyOnly(model), split, "test")
    assert np.array_equal(a.recs, b.recs) and a.metrics == b.metrics
    # and both equal a plain numpy ranking of the masked scores
    s = model.score(a.users).astype(np.float32)
    seen = split.train.matrix().tolil()
    for u, i in zip(split.valid.user, split.valid.item, strict=True):
        seen[u, i] = 1
    seen = seen.tocsr()[a.users]
    s[np.repeat(np.arange(len(s)), np.diff(seen.indptr)), seen.indices] = -np.inf
    ref = np.argsort(-protocols.break_ties(s, a.users, np.arange(split.n_items)), axis=1, kind="stable")[:, :20]
    assert np.array_equal(a.recs, ref)
    sa, sb = evaluate_sampled(model, split), evaluate_sampled(NumpyOnly(model), split)
    assert sa.metrics == sb.metrics
