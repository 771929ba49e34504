"""The model contract as tests, shipped with the package (as LensKit ships ``lenskit.testing``).

Subclass :class:`ModelContract` in a test module, set ``model_factory`` (a callable returning an unfitted
model), and pytest runs every check on small synthetic data (no MovieLens copy needed)::

    from movierec.testing import ModelContract
    from mypackage import MyModel

    class TestMyModel(ModelContract):
        model_factory = MyModel
        history_overlap = 1.0  # exact: a trained user's own history gives that user's top 10

Checks: score shapes and dtypes for all items and for candidate lists and their agreement; recommendations
sorted and never a seen item; a trained user's own training history gives the user's top 10 (exactly, or
with at least ``history_overlap`` mean overlap for models that fold users in); new histories are scored and
never recommended their own items; the model the test reads holds each user's validation interaction
(read as a history, giving exactly ``score_history`` of training + validation, or refitted on it) and never
the test item; vae-cf fold-in evaluation runs; a bundle round trip gives identical
scores; a registry entry with described settings; every declared setting read by a fit or a score (with
the defaults, or one of ``settings_variants``); user and item vectors where the model declares them; item
similarities where the model has them; the fit report; an unfitted model says so.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from movierec.data.dataset import Dataset
from movierec.data.history import History
from movierec.data.splits import Split, leave_one_out, vae_cf
from movierec.models.base import FitReport, Recommender
from movierec.models.registry import FAMILIES, REGISTRY
from movierec.models.settings import Settings, describe

_DATA: dict[str, Any] = {}


def contract_dataset() -> Dataset:
    """A small synthetic MovieLens-format dataset (400 users, 300 movies, 12,000 ratings, genres and tags),
    written once per process into a temporary folder and loaded like any release."""
    if "dataset" not in _DATA:
        from movierec.data.load import load_dataset
        from movierec.data.synthetic import write_synthetic

        folder = Path(tempfile.mkdtemp(prefix="movierec-contract-"))
        write_synthetic(folder / "contract", 400, 300, 12_000, seed=7)
        _DATA["dataset"] = load_dataset(str(folder / "contract"))
    return _DATA["dataset"]


def contract_split() -> Split:
    if "split" not in _DATA:
        _DATA["split"] = leave_one_out(contract_dataset().interactions, seed=42)
    return _DATA["split"]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of items two [n, k] top-k lists have in common."""
    return float(np.mean([len(set(x[x >= 0]) & set(y[y >= 0])) / a.shape[1] for x, y in zip(a, b, strict=True)]))


@contextlib.contextmanager
def settings_read() -> Iterator[set[str]]:
    """The names of the settings read (as attributes of any :class:`Settings`) while the block runs."""
    read: set[str] = set()

    def recording(self: Settings, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in type(self).model_fields:
            read.add(name)
        return value

    Settings.__getattribute__ = recording  # type: ignore[method-assign]
    try:
        yield read
    finally:
        del Settings.__getattribute__


class ModelContract:
    """Every model's contract. Set ``model_factory``; adjust ``history_overlap`` for fold-in models."""

    model_factory: Callable[[], Recommender]
    #: minimum mean top-10 overlap between a trained user's recommendations and those for the same user's
    #: training history given as a new history (1.0: the model scores histories exactly as trained users)
    history_overlap: ClassVar[float] = 1.0
    #: settings (over the factory's) under which the settings the defaults leave unread are read, e.g.
    #: ``({"pretrain": True},)`` for NeuMF's pretraining settings
    settings_variants: ClassVar[tuple[dict[str, Any], ...]] = ()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Recommender:
        split = contract_split()
        return cls.model_factory().fit(split.train, contract_dataset().catalog, split.valid)

    # -- scoring ----------------------------------------------------------------------------------
    def test_score_all_items_shape_and_dtype(self, fitted: Recommender) -> None:
        s = fitted.score(np.array([0, 5, 17]))
        assert s.shape == (3, contract_split().n_items)
        assert s.dtype == np.float32
        assert np.isfinite(s).all()

    def test_score_candidates_agrees_with_all_items(self, fitted: Recommender) -> None:
        test = contract_split().test
        users = test.user[:8]
        cand = np.concatenate([test.item[:8, None], test.negatives[:8]], axis=1)
        s = fitted.score(users, cand)
        assert s.shape == cand.shape and s.dtype == np.float32
        full = fitted.score(users)
        assert np.allclose(s, np.take_along_axis(full, cand.astype(np.int64), axis=1), rtol=1e-5, atol=1e-6)

    def test_recommend_excludes_seen_and_is_sorted(self, fitted: Recommender) -> None:
        train = contract_split().train
        users = np.arange(20)
        items, scores = fitted.recommend(users, k=10)
        assert items.shape == scores.shape == (20, 10)
        assert (np.diff(scores, axis=1) <= 0).all()
        for u, row in zip(users, items, strict=True):
            assert not set(row.tolist()) & set(train.item[train.user == u].tolist())
        _, scores_all = fitted.recommend(users, k=10, exclude_seen=False)
        assert (scores_all[:, 0] >= scores[:, 0]).all()

    # -- histories --------------------------------------------------------------------------------
    def test_own_history_gives_the_trained_users_top10(self, fitted: Recommender) -> None:
        split = contract_split()
        users = np.unique(split.test.user)[:40]
        from_history = fitted.recommend_history(History.from_interactions(split.train, users), 10)[0]
        trained = fitted.recommend(users, 10)[0]
        if self.history_overlap >= 1.0:
            assert np.array_equal(from_history, trained)
        else:
            assert _overlap(from_history, trained) >= self.history_overlap

    def test_new_history_is_scored_and_never_recommended_its_items(self, fitted: Recommender) -> None:
        history = History.of([3, 1, 4, 1, 5], ratings=[5, 4, 3, 4, 2])
        s = fitted.score_history(history)
        assert s.shape == (1, fitted.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
        items, scores = fitted.recommend_history(history, 10)
        assert items.shape == (1, 10) and not {1, 3, 4, 5} & set(items[0].tolist())
        assert (np.diff(scores, axis=1) <= 0).all()
        cand = np.array([[0, 2, 6, 7]])
        assert np.allclose(fitted.score_history(history, cand), s[:, [0, 2, 6, 7]], rtol=1e-5, atol=1e-6)
        empty = History.of(np.array([], dtype=np.int64))
        assert fitted.score_history(empty).shape == (1, fitted.n_items)

    @pytest.mark.parametrize("refit", [False, True])
    def test_test_input_holds_the_validation_interaction(self, fitted: Recommender, refit: bool) -> None:
        """The run engine's test model reads everything before each test item: the training part and the
        validation interaction, never the test item (:meth:`movierec.runs.Session.test_model`). Refitted (the
        default), it is a new fit on them with the choices made on validation; without the refit, a model that
        scores histories exactly reads them as a history (its scores equal ``score_history`` of training +
        validation), any other is refitted all the same."""
        from movierec.models.base import RunContext
        from movierec.runs import RunSpec, Session

        split = contract_split()
        spec = RunSpec("contract", fitted.name, fitted.config_dict(), refit=refit)
        tested, how = Session(contract_dataset(), split).test_model(spec, fitted, split, RunContext())
        seen = tested.seen_.tocsr()
        assert np.asarray(seen[split.valid.user, split.valid.item]).ravel().all(), "a validation item is missing"
        assert not np.asarray(seen[split.test.user, split.test.item]).ravel().any(), "a test item is in the input"
        users = np.unique(split.test.user)[:40]
        if not refit and fitted.scores_history_exactly():
            assert how == "history"
            expected = fitted.score_history(History.from_interactions(split.test_input(), users))
            assert np.allclose(tested.score(users), expected, rtol=1e-5, atol=1e-5)
        else:  # refitted with the choices made on validation held fixed
            assert how in ("refit", "parts") and tested is not fitted
            if how == "refit":
                assert tested.config == fitted.config.with_values(**fitted.chosen_settings())

    def test_vae_cf_fold_in_users_are_evaluated_from_their_histories(self) -> None:
        from movierec.evaluation import evaluate_full

        split = vae_cf(contract_dataset().interactions, n_heldout_users=40, min_rating=3.0)
        model = type(self).model_factory().fit(split.train, contract_dataset().catalog, None)
        res = evaluate_full(model, split, "test", ks=(10,))
        assert len(res.users) == len(np.unique(split.test.user))
        fold_in = split.test.fold_in
        for row, u in enumerate(res.users[:10]):  # no fold-in item is ever recommended back
            assert not set(res.recs[row].tolist()) & set(fold_in.item[fold_in.user == u].tolist())
        assert 0.0 <= res.metrics["NDCG@10"] <= 1.0

    # -- description --------------------------------------------------------------------------------
    def test_registry_entry_and_settings(self, fitted: Recommender) -> None:
        entry = REGISTRY.get(fitted.name)
        if entry is not None:  # a user's own model need not be registered
            assert entry.load() is type(fitted) and entry.family in FAMILIES and entry.summary
        for info in describe(fitted.config_class):
            assert info.help, f"setting {info.name} has no help line"

    def test_every_setting_is_read(self) -> None:
        """A setting no fit or score reads is a setting that silently does nothing (SASRec's `compile` once)."""
        split = contract_split()
        base = type(self).model_factory()
        unread = set(base.config_class.names())
        users = np.arange(5)
        for variant in [{}, *self.settings_variants]:
            model = type(base)(base.config.with_values(**variant))
            with settings_read() as read:
                model.fit(split.train, contract_dataset().catalog, split.valid)
                model.recommend(users, 10)
                model.recommend_history(History.from_interactions(split.train, users), 10)
            unread -= read
        assert not unread, f"{type(base).__name__} declares settings that nothing reads: {sorted(unread)}"

    def test_vectors_match_the_declaration(self, fitted: Recommender) -> None:
        users, items = fitted.user_vectors(), fitted.item_vectors()
        assert (users is not None) == fitted.has_user_vectors
        assert (items is not None) == fitted.has_item_vectors
        if users is not None:
            assert users.ndim == 2 and users.shape[0] == fitted.n_users
        if items is not None:
            assert items.ndim == 2 and items.shape[0] == fitted.n_items

    def test_item_similarity(self, fitted: Recommender) -> None:
        """Where the model has a notion of similar items: one row per asked item, finite, the same after a
        bundle round trip; and not all zero."""
        items = np.array([0, 7, 42])
        s = fitted.item_similarity(items)
        if s is None:
            assert not fitted.has_item_vectors and not fitted.parts()
            return
        assert s.shape == (3, fitted.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
        assert (s != 0).any(axis=1).all()
        others = np.array([5, 0, 299, 42])
        assert np.allclose(fitted.item_similarity(items, others), s[:, others], atol=1e-6)

    def test_fit_report(self, fitted: Recommender) -> None:
        report = fitted.fit_report_
        assert isinstance(report, FitReport) and report.seconds > 0
        assert len(report.train_log) == report.epochs

    # -- persistence ------------------------------------------------------------------------------
    def test_bundle_round_trip_gives_identical_scores(self, fitted: Recommender, tmp_path: Path) -> None:
        from movierec.artifacts import load_bundle, save_bundle

        path = save_bundle(tmp_path / "bundle", fitted)
        assert {"config.json", "weights.safetensors", "ids.parquet"} <= {p.name for p in path.iterdir()}
        loaded = load_bundle(path).model
        assert type(loaded) is type(fitted) and loaded.config == fitted.config
        users = np.arange(30)
        assert np.array_equal(loaded.score(users), fitted.score(users))
        assert np.array_equal(loaded.recommend(users, 10)[0], fitted.recommend(users, 10)[0])
        same = fitted.item_similarity(np.array([3, 9]))
        if same is not None:
            assert np.allclose(loaded.item_similarity(np.array([3, 9])), same, atol=1e-6)

    def test_unfitted_model_says_so(self) -> None:
        with pytest.raises(RuntimeError, match="not fitted"):
            type(self).model_factory().recommend(np.array([0]), 5)
