"""SASRec and GRU4Rec (their shared contract is in tests/contract), plus what is particular to next-item models:
the order of a history matters, the window read is the latest max_len items, padding does not change a
sequence's representation, every loss trains, the windows pair each input with its next item, the cheap
dropout keeps the right share, and the epoch kept is the one with the best validation NDCG@10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.data.history import History
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.gru4rec import GRU4Rec, GRU4RecNet
from movierec.models.sasrec import SASRec, SASRecNet, SASRecSettings
from movierec.models.sequential import NextItemModel, NextItemSettings, NextItemStep, dropout_, padded
from movierec.testing import contract_dataset, contract_split

FAST = {"epochs": 3, "batch_size": 32, "patience": 0, "dim": 16, "max_len": 30, "lr": 0.005,
        "sampled_items": 64}
MODELS = {"sasrec": (SASRec, {"heads": 2, "blocks": 1}), "gru4rec": (GRU4Rec, {"hidden": 16})}


def _fast(model: str = "sasrec", **kw) -> NextItemModel:
    cls, own = MODELS[model]
    return cls(**{**FAST, **own, **kw})


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request) -> NextItemModel:
    split = contract_split()
    return _fast(request.param).fit(split.train, contract_dataset().catalog, split.valid)


def test_order_matters(fitted: NextItemModel) -> None:
    session = [3, 1, 4, 15, 9, 2, 6, 5]
    forward = fitted.score_history(History.of(session))
    backward = fitted.score_history(History.of(session[::-1]))
    assert not np.allclose(forward, backward, atol=1e-4)
    if fitted.name == "sasrec":  # three epochs on synthetic data: GRU4Rec's top 10 is still mostly popularity
        assert not np.array_equal(fitted.recommend_history(History.of(session), 10)[0],
                                  fitted.recommend_history(History.of(session[::-1]), 10)[0])


def test_trained_user_scores_exactly_as_their_own_history(fitted: NextItemModel) -> None:
    split = contract_split()
    users = np.arange(12)
    own = fitted.score_history(History.from_interactions(split.train, users))
    assert np.array_equal(own, fitted.score(users))


def test_only_the_latest_max_len_items_count(fitted: NextItemModel) -> None:
    rng = np.random.default_rng(0)
    recent = rng.choice(fitted.n_items, fitted.config.step.max_len, replace=False)
    older = rng.choice(fitted.n_items, 25)
    a = fitted.score_history(History.of(np.concatenate([older, recent])))
    b = fitted.score_history(History.of(recent))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("net", [SASRecNet(50, 12, 16, 2, 2, 0.0), GRU4RecNet(50, 16, 8, 2, 0.0)],
                         ids=["sasrec", "gru4rec"])
def test_left_padding_does_not_change_a_sequence(net) -> None:
    torch.manual_seed(0)
    net.eval()
    seq = torch.tensor([[7, 3, 9, 1]])
    padded_seq = torch.cat([torch.full((1, 8), 50), seq], dim=1)
    longer = torch.tensor([[4, 8, 15, 16, 23, 42, 5, 6, 7, 3, 9, 1]])  # a batch: padding differs per row
    with torch.no_grad():
        assert torch.allclose(net(seq), net(padded_seq)[:, -4:], atol=1e-5)
        assert torch.allclose(net(seq), net(torch.cat([padded_seq, longer]))[:1, -4:], atol=1e-5)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("loss", ["ce", "sampled", "gbce", "bce"])
def test_every_loss_trains(model: str, loss: str) -> None:
    split = contract_split()
    fitted = _fast(model, loss=loss, epochs=1).fit(split.train, None, split.valid)
    assert np.isfinite(fitted.fit_report_.train_log[0]["loss"])
    assert np.isfinite(fitted.score(np.arange(3))).all()


def test_gbce_with_t_zero_is_bce_against_the_shared_negatives() -> None:
    """β = 1 at t = 0: the loss is softplus(-s+) + Σ softplus(s-), computed here by hand."""
    torch.manual_seed(0)
    cfg = NextItemSettings(loss="gbce", gbce_t=0.0, sampled_items=6, max_len=4)
    step = NextItemStep([np.array([0, 1, 2, 3])], 10, cfg, torch.device("cpu"))
    net = GRU4RecNet(10, 8, 8, 1, 0.0)
    seq, tgt = torch.tensor([[0, 1, 2]]), torch.tensor([[1, 2, 3]])
    got = step.loss(net, (seq, tgt), 0, torch.Generator().manual_seed(3))
    neg = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(3))
    h, table = net(seq)[0], net.item_table()
    want = []
    for t in range(3):
        s = h[t] @ table.T
        others = [i for i in neg.tolist() if i != int(tgt[0, t])]
        want.append(torch.nn.functional.softplus(-s[tgt[0, t]]) + torch.nn.functional.softplus(s[others]).sum())
    assert torch.allclose(got, torch.stack(want).mean(), atol=1e-5)


def test_training_windows_pair_each_input_with_the_next_item() -> None:
    seq = np.arange(10, 17)  # 7 items: 6 transitions
    step = NextItemStep([seq], 20, NextItemSettings(max_len=4), torch.device("cpu"))
    inputs, targets = step.windows(torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (len(inputs), 4)
    assert inputs[0].tolist() == [12, 13, 14, 15]  # the window ending at the latest transition comes first
    assert targets[0].tolist() == [13, 14, 15, 16]
    for x, y in zip(inputs, targets, strict=True):  # every real input is followed by its next item
        real = x != 20
        assert (y[real] == x[real] + 1).all() and (y[~real] == 20).all()
    covered = {int(t) for y in targets for t in y if t != 20}
    assert covered == set(range(11, 17))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_cheap_dropout_keeps_one_minus_p_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout_(x, p, training=True)
    kept = (y != 0).float().mean().item()
    assert abs(kept - (1 - p)) < 0.005  # 4.5 standard errors at most
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)
    assert dropout_(x, p, training=False) is x


def test_padded_rows_hold_each_sequences_latest_items() -> None:
    indptr, items = np.array([0, 3, 3, 8]), np.arange(8, dtype=np.int32)
    got = padded(indptr, items, np.array([2, 0, 1]), 4, pad=99)
    assert got.tolist() == [[4, 5, 6, 7], [99, 0, 1, 2], [99, 99, 99, 99]]


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

    cfg = SASRecSettings()
    assert cfg.dim % cfg.heads == 0
    validate(SASRecSettings, {"max_len": cfg.step.max_len, "loss": cfg.step.loss}, "test")


@pytest.mark.parametrize("model", list(MODELS))
def test_no_sequence_to_learn_from_is_one_line(model: str) -> None:
    from movierec.data.dataset import Interactions
    from movierec.errors import MovieRecError

    one_each = Interactions(np.arange(3), np.arange(3), np.ones(3), np.zeros(3, np.int64), 3, 5)
    with pytest.raises(MovieRecError, match="at least one user with 2 or more"):
        _fast(model).fit(one_each)


def _windows_by_loop(step: NextItemStep, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The windows built one user and one window at a time (the plain reading of the step's docstring)."""
    L, pad = step.cfg.max_len, step.n_items
    shifts = torch.randint(1, L + 1, (len(step.seqs),), generator=generator).numpy()
    inputs, targets = [], []
    for s, n, r in zip(step.seqs, step.lengths, shifts, strict=True):
        for e in [n] + (list(range(n - int(r), 0, -L)) if n > L else []):
            a = max(0, e - L)
            row_in, row_out = np.full(L, pad), np.full(L, pad)
            row_in[L - (e - a):] = s[a:e]
            row_out[L - (e - a):] = s[a + 1: e + 1]
            inputs.append(row_in)
            targets.append(row_out)
    return np.stack(inputs), np.stack(targets)


@pytest.mark.parametrize("max_len", [4, 5, 50])
def test_vectorised_windows_equal_the_loop(max_len: int) -> None:
    rng = np.random.default_rng(max_len)
    seqs = [rng.integers(0, 30, rng.integers(1, 40)) for _ in range(60)]
    step = NextItemStep(seqs, 30, NextItemSettings(max_len=max_len), torch.device("cpu"))
    got = step.windows(torch.Generator().manual_seed(1))
    ref = _windows_by_loop(step, torch.Generator().manual_seed(1))
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


def test_fused_cross_entropy_equals_torchs_in_value_and_gradient(monkeypatch) -> None:
    import movierec.models.sequential as seq_mod

    monkeypatch.setattr(seq_mod, "_CE_CHUNK", 7 * 50)  # chunks of 7 positions: several, the last one short
    torch.manual_seed(0)
    h, table = torch.randn(30, 8, requires_grad=True), torch.randn(50, 8, requires_grad=True)
    tgt = torch.randint(0, 50, (30,))
    seq_mod.full_cross_entropy(h, table, tgt).mul(3.0).backward()
    got = (h.grad.clone(), table.grad.clone())
    h.grad = table.grad = None
    want = torch.nn.functional.cross_entropy(h @ table.T, tgt)
    want.mul(3.0).backward()
    assert torch.allclose(seq_mod.full_cross_entropy(h, table, tgt), want, atol=1e-6)
    assert torch.allclose(got[0], h.grad, atol=1e-6) and torch.allclose(got[1], table.grad, atol=1e-6)


def test_auto_loss_is_the_full_cross_entropy_up_to_the_limit_and_sampled_above(monkeypatch) -> None:
    import movierec.models.sequential as seq_mod

    net = GRU4RecNet(40, 8, 8, 1, 0.0)
    batch = (torch.tensor([[0, 1, 2]]), torch.tensor([[1, 2, 3]]))

    def loss(kind: str) -> float:
        step = NextItemStep([np.arange(5)], 40, NextItemSettings(loss=kind, sampled_items=5), torch.device("cpu"))
        return step.loss(net, batch, 0, torch.Generator().manual_seed(0)).item()

    assert loss("auto") == loss("ce") != loss("sampled")
    monkeypatch.setattr(seq_mod, "CE_MAX_ITEMS", 39)
    assert loss("auto") == loss("sampled")
