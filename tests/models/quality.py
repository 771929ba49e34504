"""The second layer of the model contract: quality floors on ml-latest-small (leave-one-out).

The first layer, :mod:`movierec.testing` (run by tests/contract), checks behaviour on synthetic data; this
one checks that each model still learns on real data. Subclass ``QualityFloor`` and set ``model_factory``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest

from movierec.evaluation import evaluate_full, evaluate_sampled
from movierec.models.base import Recommender


class QualityFloor:
    model_factory: Callable[[], Recommender]
    #: floors on ml-latest-small, leave-one-out: sampled-100 HR@10, full NDCG@10
    min_sampled_hr10: ClassVar[float] = 0.5
    min_full_ndcg10: ClassVar[float] = 0.01

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, mls_split) -> Recommender:
        return cls.model_factory().fit(mls_split.train)

    def test_quality_floor_on_ml_latest_small(self, fitted: Recommender, mls_split) -> None:
        sampled = evaluate_sampled(fitted, mls_split, "test", ks=(10,))
        full = evaluate_full(fitted, mls_split, "test", ks=(10,))
        assert sampled.metrics["HR@10"] >= self.min_sampled_hr10
        assert full.metrics["NDCG@10"] >= self.min_full_ndcg10
