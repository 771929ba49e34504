import math

import numpy as np
import pytest

from movierec.evaluation import beyond as b


def test_coverage_counts_distinct_items_over_train_items() -> None:
    recs = np.array([[0, 1], [1, 2]])
    item_users = np.array([3, 2, 1, 1, 0])  # 4 items in train
    assert b.catalog_coverage(recs, item_users) == pytest.approx(3 / 4)


def test_intra_list_diversity_hand_computed() -> None:
    feats = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    # list [0, 1, 2]: cos(0,1)=0, cos(0,2)=cos(1,2)=1/sqrt2 -> mean(1 - cos) over 3 pairs
    expected = ((1 - 0) + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert b.intra_list_diversity(np.array([[0, 1, 2]]), feats) == pytest.approx(expected)
    # identical genres -> 0; an item with no genres counts as cosine 0
    assert b.intra_list_diversity(np.array([[0, 0]]), feats) == pytest.approx(0.0)
    assert b.intra_list_diversity(np.array([[0, 3]]), feats) == pytest.approx(1.0)
    # mean over users
    assert b.intra_list_diversity(np.array([[0, 0], [0, 1]]), feats) == pytest.approx(0.5)


def test_novelty_and_popularity() -> None:
    item_users = np.array([8, 4, 1, 0])
    recs = np.array([[0, 1], [2, 3]])
    expected = -(math.log2(8 / 8) + math.log2(4 / 8) + math.log2(1 / 8) + math.log2(1 / 8)) / 4
    assert b.novelty(recs, item_users, 8) == pytest.approx(expected)
    assert b.average_popularity(recs, item_users) == pytest.approx((8 + 4 + 1 + 0) / 4)


def test_gini_extremes_and_hand_case() -> None:
    item_users = np.ones(4, dtype=int)
    assert b.gini_index(np.array([[0, 1], [2, 3]]), item_users) == pytest.approx(0.0)
    # all recommendations on one of 4 items: (n-1)/n
    assert b.gini_index(np.array([[0], [0]]), item_users) == pytest.approx(3 / 4)
    # counts [0, 1, 1, 2] sorted: G = sum((2i-n-1) x_i) / (n sum x) = (-3*0 -1*1 + 1*1 + 3*2) / (4*4)
    recs = np.array([[1, 2], [3, 3]])
    assert b.gini_index(recs, item_users) == pytest.approx(6 / 16)


def test_empty_slots_are_ignored() -> None:
    recs = np.array([[0, -1]])
    assert b.catalog_coverage(recs, np.array([1, 1])) == pytest.approx(0.5)
    assert b.average_popularity(recs, np.array([5, 1])) == pytest.approx(5.0)
