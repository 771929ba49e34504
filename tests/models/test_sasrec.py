"""SASRec through the shared contract (short training, small network), plus what is particular to it:
the order of a history matters, the window it reads is the latest max_len items, padding does not change a
sequence's representation, and the epoch kept is the one with the best validation NDCG@10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.data.history import History
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.sasrec import SASRec, SASRecConfig, SASRecNet, _NextItemStep
from movierec.testing import contract_dataset, contract_split

FAST = {"epochs": 3, "batch_size": 32, "patience": 0, "dim": 16, "heads": 2, "blocks": 1, "max_len": 30,
        "lr": 0.005, "sampled_items": 64}


def _fast(**kw) -> SASRec:
    return SASRec(**{**FAST, **kw})


# TestSASRec (the shared contract) lives in tests/contract/test_models.py with every model's.


@pytest.fixture(scope="module")
def fitted() -> SASRec:
    split = contract_split()
    return _fast().fit(split.train, contract_dataset().catalog, split.valid)


def test_order_matters(fitted: SASRec) -> None:
    session = [3, 1, 4, 15, 9, 2, 6, 5]
    forward = fitted.score_history(History.of(session))
    backward = fitted.score_history(History.of(session[::-1]))
    assert not np.allclose(forward, backward, atol=1e-4)
    assert not np.array_equal(fitted.recommend_history(History.of(session), 10)[0],
                              fitted.recommend_history(History.of(session[::-1]), 10)[0])


def test_trained_user_scores_exactly_as_their_own_history(fitted: SASRec) -> None:
    split = contract_split()
    users = np.arange(12)
    own = fitted.score_history(History.from_interactions(split.train, users))
    assert np.array_equal(own, fitted.score(users))


def test_only_the_latest_max_len_items_count(fitted: SASRec) -> None:
    rng = np.random.default_rng(0)
    recent = rng.choice(fitted.n_items, fitted.config.max_len, replace=False)
    older = rng.choice(fitted.n_items, 25)
    a = fitted.score_history(History.of(np.concatenate([older, recent])))
    b = fitted.score_history(History.of(recent))
    assert np.array_equal(a, b)


def test_left_padding_does_not_change_a_sequence() -> None:
    torch.manual_seed(0)
    net = SASRecNet(50, 12, 16, 2, 2, 0.0).eval()
    seq = torch.tensor([[7, 3, 9, 1]])
    padded = torch.cat([torch.full((1, 8), 50), seq], dim=1)
    with torch.no_grad():
        assert torch.allclose(net(seq), net(padded)[:, -4:], atol=1e-5)


@pytest.mark.parametrize(("loss", "horizon"), [("ce", 1), ("bce", 1), ("ce", 3), ("sampled", 1)])
def test_other_losses_train(loss: str, horizon: int) -> None:
    split = contract_split()
    model = _fast(loss=loss, horizon=horizon, epochs=1).fit(split.train, None, split.valid)
    assert np.isfinite(model.fit_report_.train_log[0]["loss"])
    assert np.isfinite(model.score(np.arange(3))).all()


def test_training_windows_pair_each_input_with_the_next_items() -> None:
    seq = np.arange(10, 17)  # 7 items: 6 transitions
    step = _NextItemStep([seq], 20, SASRecConfig(max_len=4, horizon=2), torch.device("cpu"))
    inputs, targets = step._windows(torch.Generator().manual_seed(0))
    assert inputs.shape == (len(inputs), 4) and targets.shape == (len(inputs), 4, 2)
    assert inputs[0].tolist() == [12, 13, 14, 15]  # the window ending at the latest transition comes first
    assert targets[0, :, 0].tolist() == [13, 14, 15, 16] and targets[0, :, 1].tolist() == [14, 15, 16, 20]
    for x, y in zip(inputs, targets, strict=True):  # every real input is followed by its next item
        real = x != 20
        assert (y[real, 0] == x[real] + 1).all() and (y[~real] == 20).all()
    covered = {int(t) for y in targets for t in y[:, 0] if t != 20}
    assert covered == set(range(11, 17))


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    split = contract_split()
    model = _fast(epochs=12, patience=2, lr=0.05).fit(split.train, None, split.valid)
    report = model.fit_report_
    ndcg = [r["valid_NDCG@10"] for r in report.train_log]
    best = int(np.argmax(ndcg)) + 1
    assert report.best_epoch == best
    if report.stopped_early:
        assert report.epochs == best + 2
    # the model holds the kept epoch's weights: its validation NDCG@10 is that epoch's
    assert evaluate_heldout_sampled(model, split.valid, (10,)).metrics["NDCG@10"] == pytest.approx(max(ndcg))


def test_config_defaults_are_valid_settings() -> None:
    from movierec.models.settings import validate

    cfg = SASRecConfig()
    assert cfg.dim % cfg.heads == 0
    validate(SASRecConfig, {"max_len": cfg.max_len, "loss": cfg.loss}, "test")


def test_no_sequence_to_learn_from_is_one_line() -> None:
    from movierec.data.dataset import Interactions
    from movierec.errors import MovieRecError

    one_each = Interactions(np.arange(3), np.arange(3), np.ones(3), np.zeros(3, np.int64), 3, 5)
    with pytest.raises(MovieRecError, match="at least one user with 2 or more"):
        _fast().fit(one_each)


def _windows_by_loop(step: _NextItemStep, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The windows built one user and one window at a time (the plain reading of the step's docstring)."""
    L, pad, horizon = step.cfg.max_len, step.n_items, step.cfg.horizon
    shifts = torch.randint(1, L + 1, (len(step.seqs),), generator=generator).numpy()
    inputs, targets = [], []
    for s, n, r in zip(step.seqs, step.lengths, shifts, strict=True):
        for e in [n] + (list(range(n - int(r), 0, -L)) if n > L else []):
            a = max(0, e - L)
            row_in, row_out = np.full(L, pad), np.full((L, horizon), pad)
            row_in[L - (e - a):] = s[a:e]
            for h in range(horizon):
                ahead = s[a + 1 + h: e + 1 + h]
                row_out[L - (e - a): L - (e - a) + len(ahead), h] = ahead
            inputs.append(row_in)
            targets.append(row_out)
    return np.stack(inputs), np.stack(targets)


@pytest.mark.parametrize(("max_len", "horizon"), [(4, 1), (5, 3), (50, 2)])
def test_vectorised_windows_equal_the_loop(max_len: int, horizon: int) -> None:
    rng = np.random.default_rng(max_len)
    seqs = [rng.integers(0, 30, rng.integers(1, 40)) for _ in range(60)]
    step = _NextItemStep(seqs, 30, SASRecConfig(max_len=max_len, horizon=horizon), torch.device("cpu"))
    got = step._windows(torch.Generator().manual_seed(1))
    ref = _windows_by_loop(step, torch.Generator().manual_seed(1))
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
