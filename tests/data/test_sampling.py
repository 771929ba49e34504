import numpy as np
import pytest

from movierec.data.sampling import is_positive, positive_keys, sample_negatives


def test_negatives_are_never_positives_and_distinct() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 300
    u = rng.integers(0, n_users, 5000)
    i = rng.integers(0, n_items, 5000)
    keys = positive_keys(u, i, n_items)
    users = np.arange(n_users)
    neg = sample_negatives(users, 99, keys, n_items, np.random.default_rng(1))
    assert neg.shape == (n_users, 99) and neg.dtype == np.int32
    assert not is_positive(keys, users[:, None], neg, n_items).any()
    assert all(len(set(row)) == 99 for row in neg.tolist())
    pos = {(a, b) for a, b in zip(u.tolist(), i.tolist(), strict=True)}
    assert not any((uu, int(x)) in pos for uu, row in enumerate(neg) for x in row)


def test_sampling_is_uniform_over_the_free_items() -> None:
    n_items = 20
    keys = positive_keys(np.zeros(5, int), np.arange(5), n_items)  # user 0 owns items 0..4
    neg = sample_negatives(np.zeros(20000, int), 1, keys, n_items, np.random.default_rng(2))
    counts = np.bincount(neg.ravel(), minlength=n_items)
    assert counts[:5].sum() == 0
    assert counts[5:].min() > 20000 / 15 * 0.85 and counts[5:].max() < 20000 / 15 * 1.15


def test_deterministic_under_a_seed_and_clear_error_when_impossible() -> None:
    keys = positive_keys(np.array([0, 0]), np.array([0, 1]), 10)
    a = sample_negatives(np.array([0, 1]), 5, keys, 10, np.random.default_rng(7))
    b = sample_negatives(np.array([0, 1]), 5, keys, 10, np.random.default_rng(7))
    assert (a == b).all()
    with pytest.raises(ValueError, match="user index 0 has only 8 items"):
        sample_negatives(np.array([0]), 9, keys, 10, np.random.default_rng(0))
