"""The numpy fold-in (movierec.models.fold_in) against torch's autograd on the same networks: the same logits
and the same gradients with respect to the person rows, and folded-in people whose lists agree with the
trained users'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from movierec.models.content_neural import ContentTwoTowerNet, MLPWithFeatures, NeuMFFeaturesNet
from movierec.models.fold_in import ItemSide, Pairs
from movierec.models.ncf import GMFNet, MLPNet, NeuMFNet

NETS = {"gmf": lambda: GMFNet(7, 40, 8), "mlp": lambda: MLPNet(7, 40, 16, 3), "mlp0": lambda: MLPNet(7, 40, 8, 0),
        "mlp1": lambda: MLPNet(7, 40, 8, 1), "neumf": lambda: NeuMFNet(7, 40, 8, 2),
        "content-neural": lambda: ContentTwoTowerNet(7, torch.rand(40, 6), 8, 12),
        "mlp-features": lambda: MLPWithFeatures(7, 40, 16, 3, torch.rand(40, 6)),
        "neumf-features": lambda: NeuMFFeaturesNet(7, 40, 8, 2, torch.rand(40, 6))}


def _user_tables(net) -> list[torch.nn.Embedding]:
    return [m for name, m in net.named_modules() if isinstance(m, torch.nn.Embedding) and name.endswith("user")]


def _spread(net) -> None:
    """Untrained towers are near-linear: spread the weights so that every ReLU matters."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_logits_and_gradients_match_autograd(kind: str) -> None:
    """Three people's logits and the gradient of the sum of their mean BCEs, against the network and torch's
    autograd."""
    torch.manual_seed(0)
    net = NETS[kind]().double()
    _spread(net)
    side = ItemSide.of(net)
    logits_of, p0 = _people_logits(net)
    rng = np.random.default_rng(1)
    p = p0.numpy() + rng.normal(size=(3, len(p0)))
    sizes = np.array([20, 1, 39])
    owner = np.repeat(np.arange(3), sizes)
    rows = rng.integers(0, 40, len(owner))
    y = rng.integers(0, 2, len(owner)).astype(float)
    scale = 1.0 / sizes[owner]
    pt = torch.from_numpy(p).requires_grad_(True)
    logits = logits_of(pt, torch.from_numpy(owner), torch.from_numpy(rows))
    bce = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y), reduction="none")
    (bce * torch.from_numpy(scale)).sum().backward()
    mine, grad = side.loss_gradient(p, Pairs(owner, rows, y, scale))
    assert np.allclose(mine, logits.detach().numpy(), atol=1e-10)
    assert np.allclose(grad, pt.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_adam_fold_in_is_torchs_adam_on_the_same_negatives(kind: str) -> None:
    """ItemSide.adam against torch.optim.Adam on the network itself (autograd), step by step the same
    negatives, for two people folded in together (and a third who rated nothing): the same vectors; and each
    person's vector is the one they get alone."""
    torch.manual_seed(3)
    net = NETS[kind]().double()
    _spread(net)
    side = ItemSide.of(net)
    logits_of, p0 = _people_logits(net)
    rated = [np.array([2, 9, 17, 33]), np.array([], np.int64), np.array([5])]
    rng = np.random.default_rng(4)
    drawn = [rng.integers(0, 40, (25, 4 * len(r))) for r in rated]
    p = p0.repeat(2, 1).clone().requires_grad_(True)  # the two people who rated something
    opt = torch.optim.Adam([p], lr=0.05)
    for step in range(25):
        loss = 0.0
        for j, person in ((0, 0), (1, 2)):
            items = torch.from_numpy(np.r_[rated[person], drawn[person][step]])
            labels = torch.cat([torch.ones(len(rated[person])), torch.zeros(len(items) - len(rated[person]))])
            loss = loss + F.binary_cross_entropy_with_logits(
                logits_of(p, torch.full((len(items),), j), items), labels.double())
        opt.zero_grad()
        loss.backward()
        opt.step()
    together = side.adam(rated, drawn, 0.05)
    assert np.allclose(together[[0, 2]], p.detach().numpy(), atol=1e-9)
    assert np.array_equal(together[1], side.start)
    alone = side.adam(rated[2:], drawn[2:], 0.05)[0]
    assert np.allclose(alone, together[2], rtol=0, atol=1e-12)


def test_negatives_are_never_rated_and_fold_in_is_seeded() -> None:
    from movierec.models.fold_in import person_negatives

    rated = np.arange(9)  # 9 of 10 items
    neg = person_negatives(np.random.default_rng(0), rated, 10, (20, 50))
    assert neg.shape == (20, 50) and (neg == 9).all()
    neg = person_negatives(np.random.default_rng(0), np.array([3]), 10, (200, 5))
    assert not (neg == 3).any() and set(np.unique(neg)) == set(range(10)) - {3}
    side = ItemSide.of(GMFNet(5, 30, 4))
    a = side.fold_in([np.array([2, 5])], 4, 20, 0.05, seed=0)
    assert a.shape == (1, 4) and np.array_equal(a, side.fold_in([np.array([2, 5])], 4, 20, 0.05, seed=0))
    assert not np.array_equal(a, side.fold_in([np.array([2, 5])], 4, 20, 0.05, seed=1))
    both = side.fold_in([np.array([7]), np.array([2, 5])], 4, 20, 0.05, seed=0)  # with someone else: the same
    assert np.allclose(both[1], a[0], rtol=0, atol=1e-12)
    assert np.array_equal(side.fold_in([np.array([], np.int64)], 4, 20, 0.05, seed=0)[0], side.start)
    assert np.isfinite(side.fold_in([np.arange(30)], 4, 20, 0.05, seed=0)).all()  # every item rated: no negatives


def test_other_networks_fold_in_through_autograd() -> None:
    """A network fold_in does not know by its exact class (here a subclass that could change the logits) is
    left to torch's autograd."""
    class Shifted(GMFNet):
        def forward(self, u, i):
            return super().forward(u, i) + 1.0

    assert ItemSide.of(Shifted(5, 30, 4)) is None and ItemSide.of(torch.nn.Linear(3, 1)) is None


def _people_logits(net):
    """(logits(p, users, items), p0): the network's logits [n] of pairs (users [n], items [n]) for people whose
    user rows are p [b, d] = [GMF part, MLP part] (torch.func, independent of fold_in), and the mean trained
    user p0 [d]."""
    from torch.func import functional_call

    params = dict(net.named_parameters())
    names = sorted((n for n in params if n.rsplit(".", 1)[0].endswith("user")), key=lambda n: "mlp" in n)
    if type(net).__name__ in ("MLPNet", "MLPWithFeatures"):
        names = ["user.weight"]
    sizes = [params[n].shape[1] for n in names]
    p0 = torch.cat([params[n].detach().mean(dim=0) for n in names])

    def logits(p, users, items):
        swapped = dict(params)
        for n, part in zip(names, torch.split(p, sizes, dim=-1), strict=True):
            swapped[n] = part
        return functional_call(net, swapped, (users, items))

    return logits, p0


def _linearised_by_autograd(net, n_items: int):
    """(z0 [n_items], jac [n_items, d]) of ``net``'s logits in the person vector p = [GMF part, MLP part] at the
    mean trained user, by torch.func (independent of fold_in.Linearised)."""
    from torch.func import jacrev

    logits_of, p0 = _people_logits(net)
    users, items = torch.zeros(n_items, dtype=torch.long), torch.arange(n_items)

    def one(p):
        return logits_of(p[None, :], users, items)

    return one(p0).detach().numpy(), jacrev(one)(p0).detach().numpy(), p0.numpy()


@pytest.mark.parametrize("kind", sorted(NETS))
def test_linearised_network_matches_autograd(kind: str) -> None:
    """Linearised's logits, item gradients and the negatives' mean softplus to second order against torch.func."""
    from torch.func import hessian

    from movierec.models.fold_in import Linearised

    torch.manual_seed(0)
    net = NETS[kind]().double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    lin = Linearised.of(ItemSide.of(net))
    z0, jac, _ = _linearised_by_autograd(net, 40)
    assert np.allclose(lin.z0, z0, atol=1e-10) and np.allclose(lin.jac, jac, atol=1e-10)
    z, j = torch.from_numpy(z0), torch.from_numpy(jac)

    def negatives(delta):  # mean over all items of softplus(z0 + J delta)
        return F.softplus(z + j @ delta).mean()

    delta0 = torch.zeros(jac.shape[1], dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(negatives(delta0), delta0)
    assert np.allclose(lin.neg_grad, grad.numpy(), atol=1e-12)
    assert np.allclose(lin.neg_hess, hessian(negatives)(delta0.detach()).numpy(), atol=1e-12)


@pytest.mark.parametrize("kind", ["gmf", "neumf"])
def test_solve_finds_the_minimum_of_its_objective(kind: str) -> None:
    """solve's person vector against L-BFGS (torch) on the objective its docstring states."""
    from movierec.models.fold_in import Linearised, solve

    torch.manual_seed(1)
    net = NETS[kind]().double()
    side = ItemSide.of(net)
    lin = Linearised.of(side)
    z0, jac, p0 = _linearised_by_autograd(net, 40)
    rated = np.array([3, 8, 21, 30])
    c, l2 = 4 * len(rated), 2.0
    z, j, zr, jr = (torch.from_numpy(a) for a in (z0, jac, z0[rated], jac[rated]))
    s0 = torch.sigmoid(z)
    g = (s0[:, None] * j).mean(0)
    h = (j * (s0 * (1 - s0))[:, None]).T @ j / 40

    def loss(delta):
        return (F.softplus(-(zr + jr @ delta)).sum() + c * (g @ delta + 0.5 * delta @ h @ delta)
                + 0.5 * l2 * delta @ delta)

    delta = torch.zeros(jac.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([delta], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss(delta)
        value.backward()
        return value

    opt.step(closure)
    assert np.allclose(solve(side, lin, rated, 4, l2), p0 + delta.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_solved_fold_in_ranks_like_the_trained_users(name: str) -> None:
    """Folded in by solve (what a server does), trained users' own histories give top 10s that overlap the trained
    users' at least as much as the Adam fold-in's, less 0.05."""
    from movierec.data.history import History
    from movierec.models import GMF, MLP, NeuMF
    from movierec.testing import _overlap, contract_split

    short = {"epochs": 3, "batch_size": 2048, "lr": 0.005, "patience": 0}  # as tests/models/test_ncf.py
    model = {"gmf": lambda: GMF(factors=16, **short), "mlp": lambda: MLP(embedding_dim=16, layers=3, **short),
             "neumf": lambda: NeuMF(factors=8, layers=3, **short)}[name]()
    split = contract_split()
    model.fit(split.train)
    users = np.unique(split.test.user)[:40]
    history = History.from_interactions(split.train, users)
    trained = model.recommend(users, 10)[0]
    adam = model.recommend_history(history, 10)[0]
    model.fold_in_method = "solve"
    solved = model.recommend_history(history, 10)[0]
    assert _overlap(solved, trained) >= _overlap(adam, trained) - 0.05, (_overlap(solved, trained),
                                                                         _overlap(adam, trained))


def test_a_server_folds_people_in_the_way_each_model_chose(tmp_path) -> None:
    """ServedModel applies the model class's SERVED_FOLD_IN; a person's list from the served run is the model's
    own recommend_history under that method, the same on every call."""
    from movierec.data.history import History
    from movierec.models import NeuMF
    from movierec.serving.served import ServedModel
    from tests.serving.conftest import synthetic_run

    run = synthetic_run(tmp_path, "neumf")
    served = ServedModel.open(run)
    assert served.model.fold_in_method == NeuMF.SERVED_FOLD_IN
    items, ratings = np.array([3, 17, 40, 41]), np.array([5.0, 4.0, 4.5, 3.0])
    first = served.recommend_history(items, ratings, 10).items
    assert np.array_equal(first, served.recommend_history(items, ratings, 10).items)
    assert np.array_equal(first[0], served.model.recommend_history(History.of(items, ratings), 10)[0][0])


@pytest.mark.parametrize("kind", sorted(NETS))
def test_one_persons_logits_are_the_networks(kind: str) -> None:
    """ItemSide.logits (the person's half of the first layer once, float32) against the network itself (float64),
    for every item and for a list of items."""
    torch.manual_seed(2)
    net = NETS[kind]().double()
    side = ItemSide.of(net)
    _, _, p0 = _linearised_by_autograd(net, 40)
    p = p0 + np.random.default_rng(3).normal(size=len(p0))
    with torch.no_grad():  # user 0 of the network is the person: p = [GMF part, MLP part]
        at = 0
        for name in ("gmf.user", "mlp.user") if hasattr(net, "gmf") else ("user",):
            table = net.get_submodule(name)
            table.weight[0] = torch.from_numpy(p[at: at + table.embedding_dim])
            at += table.embedding_dim
        every = net(torch.zeros(40, dtype=torch.long), torch.arange(40)).numpy()
    assert np.allclose(side.logits(p, np.arange(40)), every, rtol=1e-5, atol=1e-5)  # float32, as trained
    some = np.array([7, 3, 39, 3])
    assert np.allclose(side.logits(p, some), every[some], rtol=1e-5, atol=1e-5)
