"""The numpy fold-in (movierec.models.fold_in) against torch's autograd on the same networks: the same logits
and the same gradients with respect to the person rows, and folded-in people whose lists agree with the
trained users'."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from movierec.models.fold_in import ItemSide
from movierec.models.ncf import GMFNet, MLPNet, NeuMFNet

NETS = {"gmf": lambda: GMFNet(7, 40, 8), "mlp": lambda: MLPNet(7, 40, 16, 3), "mlp0": lambda: MLPNet(7, 40, 8, 0),
        "mlp1": lambda: MLPNet(7, 40, 8, 1), "neumf": lambda: NeuMFNet(7, 40, 8, 2)}


def _user_tables(net) -> list[torch.nn.Embedding]:
    return [m for name, m in net.named_modules() if isinstance(m, torch.nn.Embedding) and name.endswith("user")]


@pytest.mark.parametrize("kind", sorted(NETS))
def test_logits_and_gradients_match_autograd(kind: str) -> None:
    torch.manual_seed(0)
    net = NETS[kind]().double()
    with torch.no_grad():  # untrained towers are near-linear: spread the weights so every ReLU matters
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    side = ItemSide.of(net)
    rng = np.random.default_rng(1)
    u = rng.integers(0, 7, 60)
    i = rng.integers(0, 40, 60)
    y = rng.integers(0, 2, 60).astype(float)
    tables = _user_tables(net)
    for t in tables:
        t.weight.requires_grad_(True)
    logits = net(torch.from_numpy(u), torch.from_numpy(i))
    F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y)).backward()
    gmf = next((t for name, t in net.named_modules() if name in ("user", "gmf.user") and side.gmf_items is not None),
               None)
    pg = None if side.gmf_items is None else gmf.weight.detach().numpy().copy()
    mlp = next((t for name, t in net.named_modules() if name in ("user", "mlp.user") and side.mlp_items is not None),
               None)
    pm = None if side.mlp_items is None else mlp.weight.detach().numpy().copy()
    mine, cache = side._forward(pg, pm, u, i)
    assert np.allclose(mine, logits.detach().numpy(), atol=1e-10)
    owner = sp.csr_matrix((np.full(60, 1 / 60), (u, np.arange(60))), shape=(7, 60))
    dlogit = 1 / (1 + np.exp(-mine)) - y
    grad_g, grad_m = side._backward(dlogit, cache, owner)
    if grad_g is not None:
        assert np.allclose(grad_g, gmf.weight.grad.numpy(), atol=1e-10)
    if grad_m is not None:
        assert np.allclose(grad_m, mlp.weight.grad.numpy(), atol=1e-10)


def test_negatives_are_never_rated_and_fold_in_is_seeded() -> None:
    from movierec.models.fold_in import _negatives

    keys = np.array([0 * 10 + k for k in range(9)] + [1 * 10 + 3])  # person 0 rated 9 of 10 items
    rng = np.random.default_rng(0)
    owners = np.array([0] * 50 + [1] * 50)
    neg = _negatives(rng, owners, np.sort(keys), 10)
    assert (neg[:50] == 9).all() and not (neg[50:] == 3).any()
    side = ItemSide.of(GMFNet(5, 30, 4))
    a = side.fold_in(np.array([0, 0, 1]), np.array([2, 5, 7]), 2, 4, 20, 0.05, seed=0)
    b = side.fold_in(np.array([0, 0, 1]), np.array([2, 5, 7]), 2, 4, 20, 0.05, seed=0)
    assert np.array_equal(a[0], b[0]) and a[1] is None


def test_other_networks_fold_in_through_autograd() -> None:
    from movierec.models.content_neural import ContentTwoTowerNet

    net = ContentTwoTowerNet(5, torch.rand(30, 6), 4, 8)
    assert ItemSide.of(net) is None
