import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.evaluation import metrics as m


def test_hand_computed_case() -> None:
    hits = np.array([[False, True, False, True, False]])
    n_rel = np.array([3])
    assert m.hit_rate(hits, 5)[0] == 1.0
    assert m.precision(hits, 5)[0] == pytest.approx(0.4)
    assert m.recall(hits, 5, n_rel)[0] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg(hits, 5, n_rel)[0] == pytest.approx(dcg / idcg)
    assert m.ndcg(hits, 5, n_rel)[0] == pytest.approx(0.49818, abs=1e-5)
    assert m.mrr(hits, 5)[0] == pytest.approx(0.5)
    assert m.average_precision(hits, 5, n_rel)[0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    # cut at K=2: one hit at position 1
    assert m.precision(hits, 2)[0] == pytest.approx(0.5)
    assert m.ndcg(hits, 2, n_rel)[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize(("rank", "expected"), [(0, 1.0), (1, 1 / math.log2(3)), (9, 1 / math.log2(11)), (10, 0.0)])
def test_single_item_ndcg_is_the_ncf_formula(rank: int, expected: float) -> None:
    hits = (np.arange(20) == rank)[None, :]
    assert m.ndcg(hits, 10, np.array([1]))[0] == pytest.approx(expected)
    assert m.hit_rate(hits, 10)[0] == (1.0 if rank < 10 else 0.0)


def test_no_hits_and_no_relevant_give_zero() -> None:
    hits = np.zeros((2, 5), bool)
    n_rel = np.array([0, 4])
    for f in (m.ndcg, m.recall, m.average_precision):
        assert (f(hits, 5, n_rel) == 0).all()
    assert (m.mrr(hits, 5) == 0).all()


def test_vae_cf_recall_caps_the_denominator() -> None:
    hits = np.array([[True, True, False]])
    assert m.recall(hits, 3, np.array([50]))[0] == pytest.approx(2 / 50)
    assert m.recall_capped(hits, 3, np.array([50]))[0] == pytest.approx(2 / 3)


def test_k_larger_than_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="K=10"):
        m.hit_rate(np.zeros((1, 5), bool), 10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=20, max_size=20), min_size=1, max_size=8),
       st.integers(1, 20))
def test_bounds_and_monotonicity(rows: list[list[bool]], k: int) -> None:
    hits = np.array(rows)
    n_rel = np.maximum(hits.sum(axis=1), 1) + 1
    for f in (m.ndcg, m.recall, m.average_precision):
        v = f(hits, k, n_rel)
        assert ((v >= 0) & (v <= 1 + 1e-12)).all()
    if k < 20:
        assert (m.recall(hits, k, n_rel) <= m.recall(hits, k + 1, n_rel) + 1e-12).all()
        assert (m.hit_rate(hits, k) <= m.hit_rate(hits, k + 1)).all()
    # a perfect list scores 1
    perfect = np.zeros_like(hits)
    perfect[:, : min(k, 3)] = True
    assert np.allclose(m.ndcg(perfect, k, np.full(len(hits), min(k, 3))), 1.0)
