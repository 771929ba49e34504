import numpy as np
import pytest
import torch

from movierec.data.dataset import Interactions
from movierec.data.splits import leave_one_out
from movierec.models import GMF, NeuMF, RunContext
from movierec.models.ncf import GMFNet, MLPNet, NeuMFNet
from movierec.training.negatives import DeviceNegativeSampler
from movierec.training.regularizers import GenreDiversityRegularizer


def synthetic(n_users=120, n_items=200, per_user=25, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    # two taste groups, so there is signal to learn
    u = np.repeat(np.arange(n_users), per_user)
    group = (u % 2) * (n_items // 2)
    i = group + rng.zipf(1.5, len(u)) % (n_items // 2)
    keys = np.unique(u.astype(np.int64) * n_items + i)
    u, i = keys // n_items, keys % n_items
    return Interactions(u, i, np.ones(len(u)), rng.permutation(len(u)), n_users, n_items)


def test_device_negatives_are_never_positives() -> None:
    inter = synthetic()
    u, i = torch.from_numpy(inter.user.astype(np.int64)), torch.from_numpy(inter.item.astype(np.int64))
    s = DeviceNegativeSampler(u, i, inter.n_items)
    g = torch.Generator().manual_seed(0)
    users = u.repeat(4)
    neg = s.sample(users, g)
    assert not s.is_positive(users, neg).any()
    pos = set(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
    assert not any((a, b) in pos for a, b in zip(users.tolist(), neg.tolist(), strict=True))


@pytest.mark.parametrize("net", [GMFNet(7, 11, 4), MLPNet(7, 11, 8, 3), MLPNet(7, 11, 4, 0), NeuMFNet(7, 11, 4, 2)])
def test_fast_all_items_scoring_equals_pairwise_forward(net: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    u = torch.tensor([0, 3, 6])
    all_scores = net.score_all(u)
    brute = torch.stack([net(torch.full((11,), int(x)), torch.arange(11)) for x in u])
    assert torch.allclose(all_scores, brute, atol=1e-5)
    items = torch.tensor([[1, 2], [3, 10], [0, 0]])
    assert torch.allclose(net.score_pairs(u, items), brute.gather(1, items), atol=1e-5)


def test_mlp_tower_halves_each_layer() -> None:
    net = MLPNet(5, 5, 32, 3)
    assert [(layer.in_features, layer.out_features) for layer in net.hidden] == [(64, 32), (32, 16), (16, 8)]
    assert NeuMFNet(5, 5, 8, 3).mlp.embedding_dim == 32  # the NCF code's --layers [64,32,16,8]


def test_training_is_deterministic_and_resume_reaches_the_same_result(tmp_path) -> None:
    split = leave_one_out(synthetic())
    cfg = dict(epochs=4, batch_size=256, patience=0, seed=3)
    a = GMF(factors=8, **cfg).fit(split.train, None, split.valid)
    b = GMF(factors=8, **cfg).fit(split.train, None, split.valid)
    assert np.array_equal(a.score(np.arange(10)), b.score(np.arange(10)))
    # an interrupted run (stopped after epoch 2) resumed from its checkpoint ends where the straight run did
    c = GMF(factors=8, **cfg)
    c.fit(split.train, None, split.valid,
          RunContext(checkpoint_dir=tmp_path / "ckpt", on_epoch_end=lambda r: r["epoch"] < 2))
    assert len(c.fit_report_.train_log) == 2
    d = GMF(factors=8, **cfg)
    d.fit(split.train, None, split.valid, RunContext(checkpoint_dir=tmp_path / "ckpt", resume=True))
    assert [r["epoch"] for r in d.fit_report_.train_log] == [1, 2, 3, 4]
    assert np.allclose(d.score(np.arange(10)), a.score(np.arange(10)), atol=1e-6)
    assert [r["loss"] for r in d.fit_report_.train_log] == pytest.approx([r["loss"] for r in a.fit_report_.train_log])


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path) -> None:
    from movierec.errors import MovieRecError

    split = leave_one_out(synthetic())
    c = GMF(factors=8, epochs=4, batch_size=256, patience=0)
    c.fit(split.train, None, split.valid,
          RunContext(checkpoint_dir=tmp_path / "ckpt", on_epoch_end=lambda r: r["epoch"] < 2))
    resume = RunContext(checkpoint_dir=tmp_path / "ckpt", resume=True)
    d = GMF(factors=8, epochs=4, batch_size=256, patience=0, lr=0.01)
    with pytest.raises(MovieRecError, match=r"lr=0\.005"):
        d.fit(split.train, None, split.valid, resume)
    other = leave_one_out(synthetic(n_users=100))
    e = GMF(factors=8, epochs=4, batch_size=256, patience=0)
    with pytest.raises(MovieRecError, match="other data"):
        e.fit(other.train, None, other.valid, resume)


def test_early_stopping_keeps_the_best_epoch() -> None:
    split = leave_one_out(synthetic())
    m = GMF(factors=8, epochs=30, batch_size=256, patience=2, lr=0.05).fit(split.train, None, split.valid)
    ndcg = [r["valid_NDCG@10"] for r in m.fit_report_.train_log]
    assert m.fit_report_.best_epoch == 1 + int(np.argmax(ndcg))
    assert len(ndcg) < 30 or m.fit_report_.best_epoch == 30


def test_neumf_pretraining_starts_from_gmf_and_mlp() -> None:
    split = leave_one_out(synthetic())
    m = NeuMF(factors=8, layers=2, epochs=2, batch_size=256, pretrain=True, patience=0)
    m.fit(split.train, None, split.valid)
    assert set(m.pretrain_log) == {"gmf", "mlp"} and len(m.pretrain_log["gmf"]) == 2
    assert m.config.train.lr == pytest.approx(0.002)  # the fine-tuning rate is not left in the config


def test_diversity_penalty_hand_computed_and_has_a_gradient() -> None:
    genres = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    reg = GenreDiversityRegularizer(genres, temperature=1.0, top=3)
    logits = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    items = torch.tensor([[0, 1, 2]])
    p = reg.penalty(logits, items)
    # equal weights: pairs (0,1) similar (cos 1), (0,2) and (1,2) not -> mean over 3 unordered pairs = 1/3
    assert float(p.detach()) == pytest.approx(1 / 3)
    p.backward()
    g = logits.grad[0]
    # lowering the two same-genre items (or raising the odd one out) lowers the penalty
    assert g[0] > 0 and g[1] > 0 and g[2] < 0


def test_diversity_regulariser_trains(mls, mls_split) -> None:
    m = GMF(factors=16, epochs=1, batch_size=2048, diversity=0.01, patience=0)
    m.fit(mls_split.train, mls.catalog, mls_split.valid)
    assert np.isfinite(m.fit_report_.train_log[0]["loss"])


@pytest.mark.parametrize("net", [GMFNet(7, 11, 4), MLPNet(7, 11, 8, 2), MLPNet(7, 11, 4, 0), NeuMFNet(7, 11, 4, 2)])
def test_a_shared_item_list_scores_like_per_user_lists(net: torch.nn.Module) -> None:
    u = torch.tensor([0, 2, 5])
    pool = torch.tensor([1, 4, 9, 10])
    assert torch.allclose(net.score_pairs(u, pool), net.score_pairs(u, pool.expand(3, -1)), atol=1e-6)


@pytest.mark.parametrize(("dim", "layers"), [(8, 4), (16, 4), (4, 3)])
def test_narrow_towers_start_alive(dim: int, layers: int) -> None:
    torch.manual_seed(0)
    net = MLPNet(50, 60, dim, layers)
    scores = net.score_all(torch.arange(20))
    assert float(scores.detach().std()) > 0  # a dead ReLU layer would make every score the same


def test_epoch_bar_joins_an_outer_progress_display() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    seen: list[str] = []

    class Recording(Progress):
        def update(self, task_id, **kwargs):  # type: ignore[override]
            if kwargs.get("description"):
                seen.append(kwargs["description"])
            super().update(task_id, **kwargs)

    split = leave_one_out(synthetic())
    outer = Recording(console=Console(file=io.StringIO(), force_terminal=True))
    with outer:
        study = outer.add_task("study", total=1)
        m = GMF(factors=8, epochs=3, batch_size=256, patience=0)
        m.fit(split.train, None, split.valid, RunContext(progress=outer))
        assert [t.id for t in outer.tasks] == [study]  # the epoch bar was added, then removed
    assert [d.split(":")[0].strip() for d in seen] == ["epoch 1", "epoch 2", "epoch 3"]
