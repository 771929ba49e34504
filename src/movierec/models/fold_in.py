"""Folding people into NCF networks (GMF, MLP, NeuMF) in numpy, on item activations computed once per model.

The objective is the one :meth:`movierec.models.torch_base.TorchRecommender.fold_in` optimises through torch's
autograd: fresh user rows, started at the mean trained user vector, take ``steps`` full-batch Adam steps (torch's
Adam: betas 0.9 / 0.999, eps 1e-8, bias-corrected) on the mean binary cross-entropy of the network's logits over
each person's distinct rated items (label 1) and ``negatives`` uniform unrated items per rated item (label 0),
drawn afresh every step; every other weight is frozen. Here the frozen parts are computed once per model
(:class:`ItemSide`): GMF's item vectors times the output weights, and the MLP tower's first layer split into its
user half (a [h1, e] matrix) and its item half, whose activations are kept per item [n_items, h1]. A step then
costs a gather, the tower's narrower layers and a hand-written backward pass over the person's pairs, a few
milliseconds for a person with tens of ratings instead of a copy of the network and autograd.

A server folds a person in faster still, in closed form (:func:`solve`, ``fold_in_method = "solve"``): the
network is linearised in the person's vector at the mean trained user once per model (:class:`Linearised`), the
uniform negatives' loss is taken in expectation (over all items, to second order), and a few Newton steps on
the person's rated items with a ridge toward the start give the vector: a [d, d] solve each, no sampling, the
same answer every time. For GMF, whose logit is linear in the person's vector, this is a least-squares solve of
the same kind as iALS's user step. ``benchmarks/bench_fold_in.py`` compares both with the trained users.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class ItemSide:
    """The frozen parts of a GMF, MLP or NeuMF network, float64 numpy (shapes in the module docstring).

    gmf_items: [n_items, f] q_i * w_gmf (None without a GMF part); gmf_start: [f] mean trained user vector;
    mlp_items: [n_items, h1] q_i W1_item^T + b1, or [n_items, e] q_i for a tower without hidden layers;
    mlp_user: [h1, e] W1_user (None without hidden layers); mlp_layers: [(W [out, in], b [out])] after the first;
    mlp_out: [width] output weights of the tower's last layer (for a tower without hidden layers: [2e], the
    user half first); mlp_start: [e]; bias: the output bias.
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
    _f32: dict | None = field(default=None, repr=False)

    @classmethod
    def of(cls, net) -> ItemSide | None:
        """The item side of ``net``, or None for a network this module does not know (it then folds in through
        torch). Only the exact classes of :mod:`movierec.models.ncf` qualify (named, not imported: ncf imports
        the module that imports this one); a subclass that adds item content does not."""
        def f64(t) -> np.ndarray:
            return t.detach().double().cpu().numpy()

        kind = type(net).__name__ if type(net).__module__ == "movierec.models.ncf" else None
        if kind == "GMFNet":
            w = f64(net.out.weight)[0]
            return cls(net.item.num_embeddings, float(f64(net.out.bias)[0]), gmf_items=f64(net.item.weight) * w,
                       gmf_start=f64(net.user.weight).mean(axis=0))
        if kind == "MLPNet":
            side = cls(net.item.num_embeddings, float(f64(net.out.bias)[0]))
            side._tower(net, f64(net.out.weight)[0], f64)
            return side
        if kind == "NeuMFNet":
            w = f64(net.out.weight)[0]
            side = cls(net.gmf.item.num_embeddings, float(f64(net.out.bias)[0]),
                       gmf_items=f64(net.gmf.item.weight) * w[: net.factors],
                       gmf_start=f64(net.gmf.user.weight).mean(axis=0))
            side._tower(net.mlp, w[net.factors:], f64)
            return side
        return None

    def _tower(self, mlp, out: np.ndarray, f64) -> None:
        q = f64(mlp.item.weight)
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
        logits = np.full(len(u), self.bias)
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

    def _backward(self, dlogit: np.ndarray, cache: dict, owner: sp.csr_matrix):
        """Gradients of the loss with respect to the person rows (GMF part, MLP part); ``owner`` [people, n]
        sums each pair's gradient into its person's row."""
        grad_g = grad_m = None
        if self.gmf_items is not None:
            grad_g = owner @ (dlogit[:, None] * cache["gi"])
        if self.mlp_items is not None:
            if self.mlp_user is None:
                e = len(self.mlp_start)
                grad_m = owner @ (dlogit[:, None] * self.mlp_out[:e][None, :])
            else:
                xs = cache["xs"]
                d = dlogit[:, None] * self.mlp_out[None, :] * (xs[-1] > 0)
                for k in range(len(self.mlp_layers) - 1, -1, -1):
                    w, _ = self.mlp_layers[k]
                    d = (d @ w) * (xs[k] > 0)
                grad_m = owner @ (d @ self.mlp_user)
        return grad_g, grad_m

    def logits(self, p: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 [m] the network's logits of one person's vector ``p`` [d] (GMF part first) for ``items`` [m]:
        the person's half of the first layer once, then the tower over the items' cached activations, in
        float32 as the network was trained (a third of float64's time over a catalogue)."""
        w = self._float32()
        f = 0 if self.gmf_start is None else len(self.gmf_start)
        p = np.asarray(p, dtype=np.float32)
        every = len(items) == self.n_items and (np.diff(items) == 1).all() and items[0] == 0
        logits = np.full(len(items), np.float32(self.bias), dtype=np.float32)
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

            self._f32 = {"gmf_items": f32(self.gmf_items), "mlp_items": f32(self.mlp_items),
                         "mlp_user": f32(self.mlp_user), "mlp_out": f32(self.mlp_out),
                         "mlp_layers": [(f32(a), f32(b)) for a, b in self.mlp_layers or []]}
        return self._f32

    # -- folding in -------------------------------------------------------------------------------------------
    def fold_in(self, people: np.ndarray, items: np.ndarray, n_people: int, negatives: int, steps: int, lr: float,
                seed: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The person rows (GMF part [n_people, f], MLP part [n_people, e]; None for a part the network lacks)
        for interactions ``people`` / ``items`` (int arrays [n], any order, repeats allowed)."""
        pg = None if self.gmf_start is None else np.tile(self.gmf_start, (n_people, 1))
        pm = None if self.mlp_start is None else np.tile(self.mlp_start, (n_people, 1))
        if not len(people):
            return pg, pm
        keys = np.unique(people.astype(np.int64) * self.n_items + items.astype(np.int64))
        u, i = keys // self.n_items, keys % self.n_items
        full = np.bincount(u, minlength=n_people) >= self.n_items  # nobody left to be a negative for them
        neg_u = np.tile(u[~full[u]], negatives)  # as torch's Tensor.repeat: the whole list, ``negatives`` times
        all_u = np.concatenate([u, neg_u])
        labels = np.concatenate([np.ones(len(u)), np.zeros(len(neg_u))])
        n = len(all_u)
        owner = sp.csr_matrix((np.full(n, 1.0 / n), (all_u, np.arange(n))), shape=(n_people, n))
        rng = np.random.default_rng(seed)
        params = [p for p in (pg, pm) if p is not None]
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        b1, b2 = ADAM_BETAS
        for step in range(1, steps + 1):
            neg_i = _negatives(rng, neg_u, keys, self.n_items)
            logits, cache = self._forward(pg, pm, all_u, np.concatenate([i, neg_i]))
            dlogit = 1.0 / (1.0 + np.exp(-logits)) - labels  # BCE's gradient; owner's 1/n makes it the mean
            grads = [g for g in self._backward(dlogit, cache, owner) if g is not None]
            bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
            for p, g, (m, v) in zip(params, grads, moments, strict=True):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + ADAM_EPS)
        return pg, pm


def _negatives(rng: np.random.Generator, owners: np.ndarray, positive_keys: np.ndarray, n_items: int) -> np.ndarray:
    """One uniform item per entry of ``owners`` that the owner did not rate (``positive_keys``: sorted
    person * n_items + item)."""
    out = rng.integers(0, n_items, len(owners))
    todo = np.arange(len(owners))
    while len(todo):
        k = owners[todo] * n_items + out[todo]
        pos = np.searchsorted(positive_keys, k).clip(0, len(positive_keys) - 1)
        taken = positive_keys[pos] == k
        todo = todo[taken]
        out[todo] = rng.integers(0, n_items, len(todo))
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
        from scipy.special import expit

        s = expit(z0)
        return cls(z0, jac, s @ jac / side.n_items, (jac * (s * (1 - s))[:, None]).T @ jac / side.n_items)


def solve(side: ItemSide, lin: Linearised, items: np.ndarray, negatives: int, l2: float,
          iterations: int = 5) -> np.ndarray:
    """One person's vector p [d] (GMF part first) for the distinct rated ``items``, in closed form on the
    linearised network: minimise sum over rated i of softplus(-z_i) + negatives * |items| * mean over all items j
    of softplus(z_j) (the fold-in's loss in expectation over its uniform negatives, to second order at the start)
    + l2/2 |p - p0|^2, with z = z0 + J (p - p0). Newton's method (``iterations`` solves of a [d, d] system; the
    negatives' part is quadratic, so only the rated items' curvature changes)."""
    from scipy.special import expit

    jr, zr = lin.jac[items], lin.z0[items]
    c = negatives * len(items)
    d = lin.jac.shape[1]
    delta = np.zeros(d)
    base = c * lin.neg_hess + l2 * np.eye(d)
    for _ in range(iterations):
        s = expit(zr + jr @ delta)
        grad = (s - 1.0) @ jr + c * (lin.neg_grad + lin.neg_hess @ delta) + l2 * delta
        delta -= np.linalg.solve(base + (jr * (s * (1 - s))[:, None]).T @ jr, grad)
    start = np.concatenate([p for p in (side.gmf_start, side.mlp_start) if p is not None])
    return start + delta
