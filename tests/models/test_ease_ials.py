"""EASE and iALS against independent computations: Steck's closed form in float64 numpy, and the
``implicit`` library's own user recalculation; λ chosen on validation only; the memory refusal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.data.history import History
from movierec.errors import MovieRecError
from movierec.models import build_model
from movierec.models.ease import EASE, ease_memory_bytes
from movierec.testing import contract_split


def _steck(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck 2019, Algorithm 1, in float64."""
    g = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


def test_ease_weights_equal_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((60, 25)) < 0.2).astype(np.float64)
    from movierec.data.dataset import Interactions

    u, i = np.nonzero(x)
    inter = Interactions(u, i, np.ones(len(u)), np.zeros(len(u), np.int64), 60, 25)
    model = EASE(l2=7.5).fit(inter)
    np.testing.assert_allclose(model.w_, _steck(x, 7.5), atol=2e-5)
    np.testing.assert_allclose(model.score(np.arange(60)), x @ _steck(x, 7.5), atol=1e-4)
    assert model.fit_report_.chosen == {"l2": 7.5}
    assert np.all(np.diag(model.w_) == 0)


def test_ease_chooses_l2_on_validation_only() -> None:
    split = contract_split()
    model = EASE(l2_start=50.0).fit(split.train, None, split.valid)
    report = model.fit_report_
    assert report.tuned and report.chosen["l2"] > 0
    tried = model.l2_tried_
    assert len(tried) >= 2 and report.chosen["l2"] in tried
    assert tried[report.chosen["l2"]] == max(tried.values())
    # the test part plays no role: a split with scrambled test items chooses the same λ
    rng = np.random.default_rng(1)
    scrambled = type(split)(split.protocol, split.train, split.valid,
                            type(split.test)(split.test.user, rng.permutation(split.test.item), split.test.negatives))
    assert EASE(l2_start=50.0).fit(scrambled.train, None, scrambled.valid).fit_report_.chosen == report.chosen


def test_ease_refuses_a_catalogue_too_large_for_memory(monkeypatch) -> None:
    import movierec.models.ease as ease_module

    monkeypatch.setattr(ease_module, "_available_bytes", lambda device: 1000)
    split = contract_split()
    with pytest.raises(MovieRecError, match=r"EASE on 300 items needs about .* GiB .* available"):
        EASE(l2=10).fit(split.train)
    assert ease_memory_bytes(26_744) == 3 * 4 * 26_744**2


def test_ials_fold_in_matches_implicits_exact_user_solve() -> None:
    """Our vectorised user step against implicit's own exact least squares for one user."""
    from implicit.cpu.als import user_factor

    split = contract_split()
    model = build_model("ials", {"factors": 8, "iterations": 4, "alpha": 3.0}).fit(split.train)
    cui = (model.seen_ * 3.0).tocsr()
    h = model.item_factors_.astype(np.float64)
    for u in (0, 5, 17):
        ref = user_factor(h, h.T @ h, cui, u, model.config.regularization, 8)
        np.testing.assert_allclose(model.user_factors_[u], ref, rtol=1e-3, atol=1e-4)


def test_ials_history_of_a_trained_user_is_exact() -> None:
    split = contract_split()
    model = build_model("ials", {"factors": 8, "iterations": 3}).fit(split.train)
    users = np.array([1, 2, 3])
    hist = History.from_interactions(split.train, users)
    np.testing.assert_allclose(model.score_history(hist), model.score(users), rtol=1e-5, atol=1e-5)
    assert isinstance(model.seen_, sp.csr_matrix)


def test_ials_fits_without_implicits_blas_warning(monkeypatch) -> None:
    """implicit warns when BLAS uses several threads, from its constructor: that is made under the limit too, so
    a study's output has no library warning (a BLAS already in use, as after EASE, made it print)."""
    import warnings

    import implicit.utils
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)  # it warns once a process
    split = contract_split()
    build_model("ease").fit(split.train, None, split.valid)
    with threadpool_limits(2, "blas"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model("ials", {"factors": 8, "iterations": 2}).fit(split.train, None, None)
    assert not [w for w in caught if "BLAS" in str(w.message)], [str(w.message) for w in caught]
