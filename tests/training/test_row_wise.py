"""Row-wise (lazy) Adam on the embedding tables: only the rows a batch touched move, the trainer picks it where
the tables dwarf the batch, its optimiser state resumes under dense Adam, and quality matches dense Adam."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from movierec.data.splits import leave_one_out
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models import GMF, RunContext
from movierec.training.optim import TrainerOptimizer
from tests.training.test_training import synthetic


def _two_steps(row_wise: bool) -> list[torch.Tensor]:
    """The table's weights before, after step 1 (rows 0, 1) and after step 2 (rows 2, 3)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 1))
    opt = TrainerOptimizer(net, 0.1, torch.device("cpu"), row_wise)
    weights = [net[0].weight.detach().clone()]
    for rows in ([0, 1], [2, 3]):
        loss = net(torch.tensor(rows)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        weights.append(net[0].weight.detach().clone())
    opt.close()
    assert not net[0].sparse  # the table is an ordinary one again after training
    return weights


def test_row_wise_updates_move_only_the_rows_a_step_touched() -> None:
    start, lazy1, lazy2 = _two_steps(True)
    _, dense1, dense2 = _two_steps(False)
    assert torch.equal(lazy2[4:], start[4:]) and torch.equal(dense2[4:], start[4:])  # never touched
    assert not torch.equal(lazy1[:2], start[:2]) and not torch.equal(lazy2[2:4], start[2:4])
    # rows 0 and 1 were touched in step 1 only: dense Adam's momentum moves them again in step 2, lazy Adam not
    assert torch.equal(lazy2[:2], lazy1[:2]) and not torch.equal(dense2[:2], dense1[:2])


def test_the_moments_resume_under_the_other_optimiser() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 1))
    lazy = TrainerOptimizer(net, 0.1, torch.device("cpu"), True)
    net(torch.tensor([1, 2])).sum().backward()
    lazy.step()
    saved = lazy.state_dict()
    lazy.close()
    dense = TrainerOptimizer(net, 0.1, torch.device("cpu"), False)
    dense.load_state_dict(saved)
    st = dense.state_dict()["state"]
    assert set(st) == set(saved["state"]) == {0, 1, 2}
    for k in saved["state"]:
        assert torch.equal(st[k]["exp_avg"], saved["state"][k]["exp_avg"])
        assert float(st[k]["step"]) == float(saved["state"][k]["step"]) == 1.0


def test_auto_picks_row_wise_only_when_the_tables_dwarf_the_batch() -> None:
    split = leave_one_out(synthetic())  # 120 users + 200 items
    small = GMF(factors=4, epochs=1, batch_size=256).fit(split.train, None, None, RunContext(device="cpu"))
    tiny_batch = GMF(factors=4, epochs=1, batch_size=16).fit(split.train, None, None, RunContext(device="cpu"))
    forced_off = GMF(factors=4, epochs=1, batch_size=16, sparse="off").fit(split.train, None, None,
                                                                             RunContext(device="cpu"))
    assert [m.fit_report_.train_log[0]["row_wise"] for m in (small, tiny_batch, forced_off)] == [False, True, False]


def test_row_wise_training_learns_as_well_as_dense() -> None:
    split = leave_one_out(synthetic(n_users=300, n_items=400))
    cfg = dict(factors=16, epochs=8, batch_size=256, patience=0, seed=1)
    got = {}
    for mode in ("on", "off"):
        m = GMF(**cfg, sparse=mode).fit(split.train, None, split.valid)
        got[mode] = evaluate_heldout_sampled(m, split.valid, (10,)).metrics["NDCG@10"]
    # 300 validation users: a standard error of about 0.02 on NDCG@10
    assert abs(got["on"] - got["off"]) < 0.06, got
    assert min(got.values()) > 0.2, got  # far above chance (about 0.045 for 1 in 100)
    assert np.isfinite(list(got.values())).all()
