"""The trainer shell is not NCF-shaped: a second kind of step (user rows, multinomial softmax loss, as in
Mult-DAE without dropout) trains through the same shell, with validation, checkpoints and resume, and the
resulting model passes the whole model contract."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from movierec.data.dataset import Catalog, Interactions
from movierec.data.history import History
from movierec.data.splits import HeldOut
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import FitReport, Recommender, RunContext
from movierec.models.settings import Settings, part, setting
from movierec.testing import ModelContract, contract_split
from movierec.training import Trainer, TrainerSettings


class RowNet(nn.Module):
    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.encode = nn.Linear(n_items, dim)
        self.decode = nn.Linear(dim, n_items)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:  # [B, n_items] -> logits [B, n_items]
        return self.decode(torch.tanh(self.encode(rows)))


class UserRowStep:
    """Batches of user indices; loss = the multinomial log-likelihood of each user's binary row."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows  # float [n_users, n_items]

    def samples_per_epoch(self) -> int:
        return len(self.rows)

    def signature(self) -> list[int]:
        return list(self.rows.shape)

    def batches(self, generator, batch_size, rank, world_size):
        perm = torch.randperm(len(self.rows), generator=generator)[rank::world_size]
        for s in range(0, len(perm), batch_size):
            yield perm[s: s + batch_size]

    def loss(self, net, batch, step, generator):
        x = self.rows[batch]
        return -(torch.log_softmax(net(x), dim=1) * x).sum(dim=1).mean()


class RowSettings(Settings):
    train: TrainerSettings = part(TrainerSettings)
    dim: int = setting(32, "hidden units", ge=1)


class UserRowModel(Recommender):
    """A tiny autoencoder recommender: it scores any history from its row, so histories are exact."""

    name = "user-row-test"
    config_class = RowSettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        torch.manual_seed(self.config.train.seed)
        self.net_ = RowNet(train.n_items, self.config.dim)
        rows = torch.from_numpy(self.seen_.toarray())
        validate = (lambda: evaluate_heldout_sampled(self, valid, (10,)).metrics) if valid is not None else None
        return Trainer(self.net_, UserRowStep(rows), self.config.train, context, validate).run()

    def _rows_scores(self, rows: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            full = self.net_(torch.from_numpy(np.asarray(rows, np.float32))).numpy()
        return self._gather(full, items)

    def score(self, users, items=None):
        return self._rows_scores(self.seen_[np.atleast_1d(users)].toarray(), items)

    def _score_history(self, history: History, items):
        return self._rows_scores(history.matrix(self.n_items).toarray(), items)

    def _state(self):
        return {f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, state):
        self.net_ = RowNet(self.seen_.shape[1], self.config.dim)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(v.copy()) for k, v in state.items()})


FAST = {"epochs": 4, "batch_size": 64, "patience": 0, "lr": 0.01}


class TestUserRowModelContract(ModelContract):
    model_factory = staticmethod(lambda: UserRowModel(**FAST))

    def test_bundle_round_trip_gives_identical_scores(self, fitted, tmp_path) -> None:
        # not in the registry, so a bundle cannot name its class: the state round trip underneath it instead
        clone = UserRowModel(fitted.config)
        clone.load_state_dict(fitted.state_dict())
        assert np.array_equal(clone.score(np.arange(30)), fitted.score(np.arange(30)))


def test_the_loss_falls_and_validation_selects_the_best_epoch() -> None:
    split = contract_split()
    m = UserRowModel(**{**FAST, "epochs": 6}).fit(split.train, None, split.valid)
    log = m.fit_report_.train_log
    assert log[-1]["loss"] < log[0]["loss"]
    ndcg = [r["valid_NDCG@10"] for r in log]
    assert m.fit_report_.best_epoch == 1 + int(np.argmax(ndcg))


def test_resume_continues_a_user_row_run_to_the_same_weights(tmp_path) -> None:
    split = contract_split()
    straight = UserRowModel(**FAST).fit(split.train, None, split.valid)
    UserRowModel(**FAST).fit(split.train, None, split.valid,
                             RunContext(checkpoint_dir=tmp_path / "c", on_epoch_end=lambda r: r["epoch"] < 2))
    resumed = UserRowModel(**FAST).fit(split.train, None, split.valid,
                                       RunContext(checkpoint_dir=tmp_path / "c", resume=True))
    assert [r["epoch"] for r in resumed.fit_report_.train_log] == [1, 2, 3, 4]
    assert np.allclose(resumed.score(np.arange(5)), straight.score(np.arange(5)), atol=1e-6)


def test_ranks_share_an_epoch() -> None:
    rows = torch.eye(10)
    step = UserRowStep(rows)
    seen = []
    for rank in (0, 1):
        g = torch.Generator().manual_seed(3)
        seen.append(torch.cat(list(step.batches(g, 4, rank, 2))))
    assert sorted(torch.cat(seen).tolist()) == list(range(10)) and not set(seen[0].tolist()) & set(seen[1].tolist())


def test_a_time_budget_stops_after_the_epoch_that_passes_it() -> None:
    split = contract_split()
    m = UserRowModel(**{**FAST, "epochs": 50}).fit(split.train, None, None, RunContext(time_budget_s=0.0))
    assert m.fit_report_.epochs == 1
