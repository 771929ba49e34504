"""The tests every model passes. Subclass ``RecommenderContract`` and set ``model_factory``.

Checks: score shapes and dtypes for all items and for candidate lists, agreement between the two,
recommend excludes seen items and is sorted, a save/load round trip gives identical scores, bad bundle
input is refused, and a quality floor on ml-latest-small (sampled-100 HR@10, full-ranking NDCG@10).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest

from movierec.evaluation import evaluate_full, evaluate_sampled
from movierec.models.base import Recommender


class RecommenderContract:
    model_factory: Callable[[], Recommender]
    #: quality floors on ml-latest-small, leave-one-out: sampled-100 HR@10, full NDCG@10
    min_sampled_hr10: ClassVar[float] = 0.5
    min_full_ndcg10: ClassVar[float] = 0.01

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, mls_split) -> Recommender:
        return cls.model_factory().fit(mls_split.train)

    def test_score_all_items_shape_and_dtype(self, fitted: Recommender, mls_split) -> None:
        users = np.array([0, 5, 17])
        s = fitted.score(users)
        assert s.shape == (3, mls_split.n_items)
        assert s.dtype == np.float32
        assert np.isfinite(s).all()

    def test_score_candidates_agrees_with_all_items(self, fitted: Recommender, mls_split) -> None:
        users = mls_split.test.user[:8]
        cand = np.concatenate([mls_split.test.item[:8, None], mls_split.test.negatives[:8]], axis=1)
        s = fitted.score(users, cand)
        assert s.shape == cand.shape and s.dtype == np.float32
        full = fitted.score(users)
        assert np.allclose(s, np.take_along_axis(full, cand.astype(np.int64), axis=1), rtol=1e-5, atol=1e-6)

    def test_recommend_excludes_seen_and_is_sorted(self, fitted: Recommender, mls_split) -> None:
        users = np.arange(20)
        items, scores = fitted.recommend(users, k=10)
        assert items.shape == scores.shape == (20, 10)
        assert (np.diff(scores, axis=1) <= 0).all()
        train = mls_split.train
        for u, row in zip(users, items, strict=True):
            assert not set(row.tolist()) & set(train.item[train.user == u].tolist())
        # without exclusion, seen items may come back and every score is the model's own
        _, scores_all = fitted.recommend(users, k=10, exclude_seen=False)
        assert (scores_all[:, 0] >= scores[:, 0]).all()

    def test_save_load_round_trip_gives_identical_scores(self, fitted: Recommender, tmp_path) -> None:
        path = fitted.save(tmp_path / "bundle")
        assert {"config.json", "weights.safetensors", "ids.parquet"} <= {p.name for p in path.iterdir()}
        loaded = type(fitted).load(path)
        users = np.arange(30)
        assert np.array_equal(loaded.score(users), fitted.score(users))
        assert np.array_equal(loaded.recommend(users, 10)[0], fitted.recommend(users, 10)[0])
        assert loaded.config == fitted.config

    def test_unfitted_model_says_so(self) -> None:
        with pytest.raises(RuntimeError, match="not fitted"):
            type(self).model_factory().recommend(np.array([0]), 5)

    def test_quality_floor_on_ml_latest_small(self, fitted: Recommender, mls_split) -> None:
        sampled = evaluate_sampled(fitted, mls_split, "test", ks=(10,))
        full = evaluate_full(fitted, mls_split, "test", ks=(10,))
        assert sampled.metrics["HR@10"] >= self.min_sampled_hr10
        assert full.metrics["NDCG@10"] >= self.min_full_ndcg10
