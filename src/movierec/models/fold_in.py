"""Folding people into NCF networks (GMF, MLP, NeuMF, and the content-fed ones: content-neural's two towers,
NeuMF with features) in numpy, a few people at a time, on item activations computed once per model.

The objective is the one :meth:`movierec.models.torch_base.TorchRecommender.fold_in` optimises through torch's
autograd: the person's rows, started at the mean trained user vector, take ``steps`` full-batch Adam steps (torch's
Adam: betas 0.9 / 0.999, eps 1e-8, bias-corrected) on the mean binary cross-entropy of the network's logits over
their distinct rated items (label 1) and ``negatives`` uniform unrated items per rated item (label 0), drawn afresh
every step; every other weight is frozen. Here the frozen parts are computed once per model (:class:`ItemSide`):
GMF's item vectors times the output weights (the content two-tower network's item tower output and its item
bias), and the MLP tower's first layer split into its user half (a [h1, e] matrix) and its item half, whose
activations are kept per item [n_items, h1] (with features: of each item's embedding plus projected
content). A step then costs a gather, each person's half of the first layer (one vector), the tower's narrower
layers and a hand-written backward pass: tens of microseconds for a few people with tens of ratings, instead of
a copy of the network and autograd. People folded in together take their steps together (a server's batch of
new people), but each has their own mean loss, Adam moments and seeded negatives: a person's vector depends on
their history only.

A person can also be folded in in closed form (:func:`solve`, ``fold_in_method = "solve"``): the network is
linearised in the person's vector at the mean trained user once per model (:class:`Linearised`), the uniform
negatives' loss is taken in expectation (over all items, to second order), and a few Newton steps on the person's
rated items with a ridge toward the start give the vector: a [d, d] solve each, no sampling. For GMF, whose logit
is linear in the person's vector, this is a least-squares solve of the same kind as iALS's user step. Which of the
two a server uses is chosen per model on validation (``SERVED_FOLD_IN``); ``benchmarks/bench_fold_in.py`` compares
both with the trained users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
FOLD_IN_GROUP = 32  # people whose Adam steps run together (Pairs.members is [people, their pairs])


@dataclass
class ItemSide:
    """The frozen parts of a GMF, MLP, NeuMF or content-fed network, float64 numpy (shapes in the module
    docstring).

    gmf_items: [n_items, f] q_i * w_gmf (None without a GMF part); gmf_start: [f] mean trained user vector;
    mlp_items: [n_items, h1] q_i W1_item^T + b1, or [n_items, e] q_i for a tower without hidden layers;
    mlp_user: [h1, e] W1_user (None without hidden layers); mlp_layers: [(W [out, in], b [out])] after the first;
    mlp_out: [width] output weights of the tower's last layer (for a tower without hidden layers: [2e], the
    user half first); mlp_start: [e]; bias: the output bias; item_bias: [n_items] a bias per item (the content
    two-tower network's), or None.
    """

    n_items: int
    bias: float
    gmf_items: np.ndarray | None = None
    gmf_start: np.ndarray | None = None
    mlp_items: np.ndarray | None = None
    mlp_user: np.ndarray | None = None
    mlp_layers: list[tuple[np.ndarray, np.ndarray]] | None = None
    mlp_out: np.ndarray | None = None
    mlp_start: np.ndarray | None = None
    item_bias: np.ndarray | None = None
    _f32: dict | None = field(default=None, repr=False)

    @classmethod
    def of(cls, net) -> ItemSide | None:
        """The item side of ``net``, or None for a network this module does not know (it then folds in through
        torch). Only the exact classes of :mod:`movierec.models.ncf` and :mod:`movierec.models.content_neural`
        qualify (named, not imported: ncf imports the module that imports this one)."""
        def f64(t) -> np.ndarray:
            return t.detach().double().cpu().numpy()

        known = ("movierec.models.ncf", "movierec.models.content_neural")
        kind = type(net).__name__ if type(net).__module__ in known else None
        if kind == "GMFNet":
            w = f64(net.out.weight)[0]
            return cls(net.item.num_embeddings, float(f64(net.out.bias)[0]), gmf_items=f64(net.item.weight) * w,
                       gmf_start=f64(net.user.weight).mean(axis=0))
        if kind in ("MLPNet", "MLPWithFeatures"):
            side = cls(net.item.num_embeddings, float(f64(net.out.bias)[0]))
            side._tower(net, f64(net.out.weight)[0], f64)
            return side
        if kind in ("NeuMFNet", "NeuMFFeaturesNet"):
            w = f64(net.out.weight)[0]
            side = cls(net.gmf.item.num_embeddings, float(f64(net.out.bias)[0]),
                       gmf_items=f64(net.gmf.item.weight) * w[: net.factors],
                       gmf_start=f64(net.gmf.user.weight).mean(axis=0))
            side._tower(net.mlp, w[net.factors:], f64)
            return side
        if kind == "ContentTwoTowerNet":  # p . tower(x_i) + bias(x_i): GMF's form with a bias per item
            import torch

            with torch.no_grad():
                vectors, item_bias = net.items(None)
            return cls(len(vectors), 0.0, gmf_items=f64(vectors), gmf_start=f64(net.user.weight).mean(axis=0),
                       item_bias=f64(item_bias))
        return None

    def _tower(self, mlp, out: np.ndarray, f64) -> None:
        q = f64(mlp.item_vectors(None))  # embeddings (+ the projected content of MLPWithFeatures)
        self.mlp_start = f64(mlp.user.weight).mean(axis=0)
        if not len(mlp.hidden):
            self.mlp_items, self.mlp_out, self.mlp_layers = q, out, []
            return
        first, e = mlp.hidden[0], mlp.embedding_dim
        weight = f64(first.weight)
        self.mlp_user = weight[:, :e]
        self.mlp_items = q @ weight[:, e:].T + f64(first.bias)
        self.mlp_layers = [(f64(layer.weight), f64(layer.bias)) for layer in mlp.hidden[1:]]
        self.mlp_out = out

    # -- the network over (person, item) pairs ----------------------------------------------------------------
    def _forward(self, pg: np.ndarray | None, pm: np.ndarray | None, u: np.ndarray, i: np.ndarray):
        """Logits [n] of pairs (u, i) and what the backward pass needs."""
        logits = np.full(len(u), self.bias) if self.item_bias is None else self.bias + self.item_bias[i]
        cache: dict = {}
        if self.gmf_items is not None:
            gi = self.gmf_items[i]
            logits += np.einsum("nf,nf->n", pg[u], gi)
            cache["gi"] = gi
        if self.mlp_items is not None:
            if self.mlp_user is None:  # no hidden layer: a linear model of [p, q]
                e = len(self.mlp_start)
                logits += pm[u] @ self.mlp_out[:e] + self.mlp_items[i] @ self.mlp_out[e:]
            else:
                xs = [np.maximum(pm[u] @ self.mlp_user.T + self.mlp_items[i], 0.0)]
                for w, b in self.mlp_layers:
                    xs.append(np.maximum(xs[-1] @ w.T + b, 0.0))
                logits += xs[-1] @ self.mlp_out
                cache["xs"] = xs
        return logits, cache

    def logits(self, p: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 [m] the network's logits of one person's vector ``p`` [d] (GMF part first) for ``items`` [m]:
        the person's half of the first layer once, then the tower over the items' cached activations, in
        float32 as the network was trained (a third of float64's time over a catalogue)."""
        w = self._float32()
        f = 0 if self.gmf_start is None else len(self.gmf_start)
        p = np.asarray(p, dtype=np.float32)
        every = len(items) == self.n_items and (np.diff(items) == 1).all() and items[0] == 0
        logits = np.full(len(items), np.float32(self.bias), dtype=np.float32)
        if self.item_bias is not None:
            logits += w["item_bias"] if every else w["item_bias"][items]
        if self.gmf_items is not None:
            logits += (w["gmf_items"] if every else w["gmf_items"][items]) @ p[:f]
        if self.mlp_items is not None:
            pm = p[f:]
            x = w["mlp_items"] if every else w["mlp_items"][items]
            if self.mlp_user is None:  # no hidden layer: a linear model of [p, q]
                e = len(pm)
                logits += pm @ w["mlp_out"][:e] + x @ w["mlp_out"][e:]
            else:
                x = x + w["mlp_user"] @ pm  # a new array: the cached activations stay as they are
                np.maximum(x, 0.0, out=x)
                for weight, bias in w["mlp_layers"]:
                    x = x @ weight.T
                    x += bias
                    np.maximum(x, 0.0, out=x)
                logits += x @ w["mlp_out"]
        return logits

    def _float32(self) -> dict:
        """float32 copies of the arrays :meth:`logits` reads, made once."""
        if self._f32 is None:
            def f32(a):
                return None if a is None else np.ascontiguousarray(a, dtype=np.float32)

            self._f32 = {"item_bias": f32(self.item_bias), "gmf_items": f32(self.gmf_items),
                         "mlp_items": f32(self.mlp_items), "mlp_user": f32(self.mlp_user),
                         "mlp_out": f32(self.mlp_out),
                         "mlp_layers": [(f32(a), f32(b)) for a, b in self.mlp_layers or []]}
        return self._f32

    @property
    def start(self) -> np.ndarray:
        """float64 [d] the mean trained user, GMF part first: where a fold-in starts."""
        return np.concatenate([p for p in (self.gmf_start, self.mlp_start) if p is not None])

    # -- folding people in ------------------------------------------------------------------------------------
    def fold_in(self, rated: Sequence[np.ndarray], negatives: int, steps: int, lr: float, seed: int) -> np.ndarray:
        """float64 [b, d] each person's vector (GMF part first) for their distinct rated items ``rated[j]``
        (sorted): ``steps`` Adam steps from the mean trained user, each on ``negatives`` fresh uniform unrated
        items per rated item (none for a person who rated every item). Each person's negatives come from a
        generator of their own, seeded ``seed``: their vector does not depend on who is folded in with them."""
        rated = [np.asarray(r, dtype=np.int64) for r in rated]
        drawn = [person_negatives(np.random.default_rng(seed), r, self.n_items,
                                  (steps, negatives * len(r) if len(r) < self.n_items else 0)) for r in rated]
        if len(rated) <= FOLD_IN_GROUP:
            return self.adam(rated, drawn, lr)
        return np.concatenate([self.adam(rated[a: a + FOLD_IN_GROUP], drawn[a: a + FOLD_IN_GROUP], lr)
                               for a in range(0, len(rated), FOLD_IN_GROUP)])

    def adam(self, rated: Sequence[np.ndarray], drawn: Sequence[np.ndarray], lr: float) -> np.ndarray:
        """float64 [b, d] the people's vectors after one Adam step (torch's, bias-corrected) per row of each
        ``drawn[j]`` [steps, k_j] (that step's negatives), each on the mean binary cross-entropy of their rated
        items (label 1) and their step's negatives (label 0). A person with no rated item keeps the start."""
        out = np.tile(self.start, (len(rated), 1))
        active = [j for j, r in enumerate(rated) if len(r)]
        if not active:
            return out
        sizes = np.array([[len(rated[j]), drawn[j].shape[1]] for j in active])  # [a, 2] positives, negatives
        owner = np.repeat(np.arange(len(active)), sizes.sum(axis=1))  # pairs grouped by person
        is_pos = np.concatenate([np.r_[np.ones(a, bool), np.zeros(b, bool)] for a, b in sizes])
        rows = np.empty(len(owner), dtype=np.int64)
        rows[is_pos] = np.concatenate([rated[j] for j in active])
        pairs = Pairs(owner, rows, is_pos.astype(np.float64), 1.0 / sizes.sum(axis=1)[owner])  # each one's mean
        negative_slots = np.flatnonzero(~is_pos)
        negatives = np.concatenate([drawn[j] for j in active], axis=1)  # [steps, all negatives]
        p = out[active]
        m, v = np.zeros_like(p), np.zeros_like(p)
        b1, b2 = ADAM_BETAS
        for step, neg in enumerate(negatives, 1):
            rows[negative_slots] = neg  # pairs.rows is this array: the step's negatives, in place
            _, g = self.loss_gradient(p, pairs)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (lr / (1 - b1 ** step)) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** step) + ADAM_EPS)
        out[active] = p
        return out

    def loss_gradient(self, p: np.ndarray, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
        """The logits [n] of ``pairs`` for the people's vectors ``p`` [b, d], and the gradient [b, d] in p of
        sum(pairs.scale * binary cross-entropy against pairs.labels); each person's half of the first layer
        is computed once."""
        f = 0 if self.gmf_start is None else len(self.gmf_start)
        owner, rows = pairs.owner, pairs.rows
        logits = np.full(len(rows), self.bias) if self.item_bias is None else self.bias + self.item_bias[rows]
        if self.gmf_items is not None:
            g_items = self.gmf_items[rows]
            logits += np.einsum("nf,nf->n", g_items, p[owner, :f])
        xs = []
        if self.mlp_items is not None:
            pm, e = p[:, f:], p.shape[1] - f
            if self.mlp_user is None:  # no hidden layer: a linear model of [p, q]
                logits += (pm @ self.mlp_out[:e])[owner] + self.mlp_items[rows] @ self.mlp_out[e:]
            else:
                xs.append(np.maximum(self.mlp_items[rows] + (pm @ self.mlp_user.T)[owner], 0.0))
                for w, b in self.mlp_layers:
                    xs.append(np.maximum(xs[-1] @ w.T + b, 0.0))
                logits += xs[-1] @ self.mlp_out
        dlogit = pairs.members * ((expit(logits) - pairs.labels) * pairs.scale)  # [b, n]: each person's pairs
        parts = [] if self.gmf_items is None else [dlogit @ g_items]
        if self.mlp_items is not None:
            if self.mlp_user is None:
                parts.append(dlogit.sum(axis=1)[:, None] * self.mlp_out[None, :e])
            else:
                d = self.mlp_out[None, :] * (xs[-1] > 0)  # d logit / d x, per pair
                for k in range(len(self.mlp_layers) - 1, -1, -1):
                    d = (d @ self.mlp_layers[k][0]) * (xs[k] > 0)
                parts.append((dlogit @ d) @ self.mlp_user)
        return logits, np.concatenate(parts, axis=1)


@dataclass
class Pairs:
    """The (person, item) pairs of a fold-in step, grouped by person: owner int [n] (0 .. b-1), rows int [n] the
    items, labels float [n] (1 rated, 0 negative), scale float [n] (1 / the person's pairs: each one's mean);
    members float [b, n] the one-hot of owner (sums each person's pairs in one product)."""

    owner: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    scale: np.ndarray
    members: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.members = (np.arange(self.owner.max() + 1 if len(self.owner) else 0)[:, None]
                        == self.owner[None, :]).astype(np.float64)


def person_negatives(rng: np.random.Generator, rated: np.ndarray, n_items: int, shape: tuple[int, int]) -> np.ndarray:
    """int64 ``shape`` uniform items, none of them in ``rated`` (the person's distinct items, sorted)."""
    out = rng.integers(0, n_items, shape)
    if not out.size or not len(rated):
        return out
    flat = out.reshape(-1)

    def taken(x: np.ndarray) -> np.ndarray:
        return rated[np.searchsorted(rated, x).clip(0, len(rated) - 1)] == x

    todo = np.flatnonzero(taken(flat))
    while len(todo):
        flat[todo] = rng.integers(0, n_items, len(todo))
        todo = todo[taken(flat[todo])]
    return out


@dataclass
class Linearised:
    """The network linearised in the person's vector at the start (the mean trained user), once per model.

    p = [GMF part, MLP part] (d floats); z0: float64 [n_items] logits at the start; jac: [n_items, d] each
    item's logit gradient in p there (GMF: exact, its logit is linear in p); neg_grad: [d] and neg_hess: [d, d]
    the mean over all items of the negatives' loss softplus(z) to second order at the start (gradient
    sigmoid(z0) J, curvature sigmoid'(z0) J J^T).
    """

    z0: np.ndarray
    jac: np.ndarray
    neg_grad: np.ndarray
    neg_hess: np.ndarray

    @classmethod
    def of(cls, side: ItemSide) -> Linearised:
        pg = None if side.gmf_start is None else side.gmf_start[None, :]
        pm = None if side.mlp_start is None else side.mlp_start[None, :]
        items = np.arange(side.n_items)
        z0, cache = side._forward(pg, pm, np.zeros(side.n_items, np.int64), items)
        parts = []
        if side.gmf_items is not None:
            parts.append(side.gmf_items)
        if side.mlp_items is not None:
            if side.mlp_user is None:
                e = len(side.mlp_start)
                parts.append(np.broadcast_to(side.mlp_out[:e], (side.n_items, e)))
            else:
                xs = cache["xs"]
                d = side.mlp_out[None, :] * (xs[-1] > 0)
                for k in range(len(side.mlp_layers) - 1, -1, -1):
                    d = (d @ side.mlp_layers[k][0]) * (xs[k] > 0)
                parts.append(d @ side.mlp_user)
        jac = np.ascontiguousarray(np.concatenate(parts, axis=1))
        s = expit(z0)
        return cls(z0, jac, s @ jac / side.n_items, (jac * (s * (1 - s))[:, None]).T @ jac / side.n_items)


def solve(side: ItemSide, lin: Linearised, items: np.ndarray, negatives: int, l2: float,
          iterations: int = 5) -> np.ndarray:
    """One person's vector p [d] (GMF part first) for the distinct rated ``items``, in closed form on the
    linearised network: minimise sum over rated i of softplus(-z_i) + negatives * |items| * mean over all items j
    of softplus(z_j) (the fold-in's loss in expectation over its uniform negatives, to second order at the start)
    + l2/2 |p - p0|^2, with z = z0 + J (p - p0). Newton's method (``iterations`` solves of a [d, d] system; the
    negatives' part is quadratic, so only the rated items' curvature changes)."""
    jr, zr = lin.jac[items], lin.z0[items]
    c = negatives * len(items)
    d = lin.jac.shape[1]
    delta = np.zeros(d)
    base = c * lin.neg_hess + l2 * np.eye(d)
    for _ in range(iterations):
        s = expit(zr + jr @ delta)
        grad = (s - 1.0) @ jr + c * (lin.neg_grad + lin.neg_hess @ delta) + l2 * delta
        delta -= np.linalg.solve(base + (jr * (s * (1 - s))[:, None]).T @ jr, grad)
    return side.start + delta
