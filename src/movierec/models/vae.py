"""Mult-VAE and Mult-DAE (Liang et al., WWW 2018, "Variational Autoencoders for Collaborative Filtering").

Both models read a user's whole binary row x (float {0, 1} [n_items]) and return one logit per item:

- input: x / ||x||_2 (an empty row stays zero), then dropout with rate ``dropout`` while training
  (inverted: kept entries are scaled by 1 / (1 - dropout));
- encoder: ``hidden`` tanh units (none when ``hidden = 0``), then a linear layer to the ``latent``-d code:
  Mult-VAE's gives the mean mu and log-variance logvar of q(z | x) (2 x latent outputs), Mult-DAE's code
  is tanh of it;
- decoder, the mirror: ``latent`` -> ``hidden`` tanh units -> ``n_items`` logits;
- loss of a batch of rows: the multinomial log-likelihood -sum_i x_i log softmax(logits)_i, mean over the
  batch, plus (Mult-VAE) beta x KL(q(z | x) || N(0, I)) with z = mu + eps * exp(logvar / 2) sampled while
  training, plus ``l2`` x the sum of squared weight matrices (the paper's Mult-DAE weight decay).

KL annealing (Mult-VAE): beta = min(``beta_max``, updates / ``total_anneal_steps``), growing with every
optimiser update (the update count is a buffer of the network, so checkpoints and resume keep it). The
paper's rule for picking beta is to anneal all the way and keep the best beta seen on validation: the trainer
shell validates after each epoch and keeps the best epoch's weights, so the kept network is the one trained
up to the best beta; it is recorded as ``fit_report_.chosen["beta"]``.

Validation (model selection and early stopping): NDCG@10 of the validation part under full ranking (every
item the user has not trained on; the vae-cf split's fold-in users are scored from their histories, and
NDCG@100 and Recall@20 are logged as well), or sampled-100 where the split has sampled negatives and
``select_on = "sampled"``.

Scoring uses no dropout and the latent mean, so it is deterministic; ``score(user)`` is the decoder logits of
the user's training row, and ``score_history`` computes the same from any history row (the vae-cf fold-in),
so a trained user's own history gives exactly that user's scores.

Defaults: the paper's architecture, dropout and Adam lr; a smaller latent code (64 instead of the paper's
200, which was sized for ml-20m; 32, 64, 128 and 200 were compared), batches of 128 rows (ml-latest-small
has only 610 users: batches of 500 would make two updates an epoch) and beta annealed to 1 over 1,000
updates, all picked on ml-latest-small leave-one-out validation (full-ranking NDCG@10).
``configs/vae-paper.toml`` holds the paper's ml-20m values.

Rows are kept as CSR index arrays on the training device and made dense one batch at a time, so ml-20m's
138k x 20k rows never exist as one dense matrix.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from movierec.data.dataset import Catalog, Interactions
from movierec.data.history import History
from movierec.data.splits import HeldOut, Split
from movierec.models.base import FitReport, Recommender, RunContext
from movierec.models.settings import Settings, part, setting
from movierec.training import Hardware, Trainer, TrainerSettings, resolve_device
from movierec.training.sharding import shard

__all__ = ["MultDAE", "MultDAESettings", "MultVAE", "MultVAESettings", "UserRowStepSettings"]

_ROWS_PER_SCORE_BATCH = 1024  # user rows per forward pass when scoring


# -- settings -------------------------------------------------------------------------------------------
class UserRowStepSettings(Settings):
    """What the user-row step reads besides the network (Mult-VAE's KL weight is the model's own)."""

    title = "step"

    l2: float = setting(0.0, "weight decay: l2 x sum of squared weight matrices, added to the mean batch loss (the "
                             "DAE paper used 0.01 on ml-20m)", ge=0)


_TRAINER_DEFAULTS = {"epochs": 300, "batch_size": 128, "lr": 0.001, "patience": 15}


class MultDAESettings(Settings):
    """Mult-DAE's settings, which Mult-VAE's extend (batch_size: user rows per Adam update on a CPU; the paper:
    500 on ml-20m)."""

    train: TrainerSettings = part(TrainerSettings, **_TRAINER_DEFAULTS)
    step: UserRowStepSettings = part(UserRowStepSettings)
    hidden: int = setting(600, "tanh units between the item layer and the code, each side (0: none)", ge=0)
    latent: int = setting(64, "size of the latent code (the VAE's mean / log-variance, the DAE's code; the paper: "
                              "200 on ml-20m)", ge=1)
    dropout: float = setting(0.5, "dropout rate on the L2-normalised input row while training", ge=0, lt=1)
    select_on: str = setting("full", "validation ranking that picks the epoch: full (all unseen items) or sampled "
                                     "(sampled-100, where the split has negatives)", choices=("full", "sampled"))


class MultVAESettings(MultDAESettings):
    """Mult-VAE's settings: Mult-DAE's and the KL weight's annealing."""

    beta_max: float = setting(1.0, "largest KL weight beta; annealing stops there (the paper anneals to 1 and "
                                   "keeps the best beta on validation)", ge=0)
    total_anneal_steps: int = setting(1000, "Adam updates over which beta grows linearly from 0 to 1 "
                                            "(0: beta_max from the start)", ge=0)


# -- the network ------------------------------------------------------------------------------------------
class AutoencoderNet(nn.Module):
    """Encoder/decoder of user rows. ``variational``: the code is a Gaussian (mean, log-variance), else tanh.

    Shapes: rows x float [B, n_items] -> logits float [B, n_items]; codes [B, latent].
    """

    def __init__(self, n_items: int, hidden: int, latent: int, dropout: float, variational: bool) -> None:
        super().__init__()
        self.variational = variational
        self.dropout = dropout
        widths = [n_items] + ([hidden] if hidden else [])
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.to_code = nn.Linear(widths[-1], 2 * latent if variational else latent)
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise([latent, *reversed(widths)]))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))  # Adam updates so far (annealing)
        for layer in [*self.encoder, self.to_code, *self.decoder]:  # as the paper's code: Glorot, small biases
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Code of rows x [B, n_items]: (mean [B, latent], log-variance [B, latent] or None for the DAE).
        Dropout applies only in training mode (drawn with ``generator``)."""
        h = nn.functional.normalize(x, dim=1)
        if self.training and self.dropout > 0:
            keep = torch.rand(h.shape, generator=generator, device=h.device) >= self.dropout
            h = h * keep / (1.0 - self.dropout)
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        out = self.to_code(h)
        if self.variational:
            mu, logvar = out.chunk(2, dim=1)
            return mu, logvar
        return torch.tanh(out), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_items] of codes z [B, latent]."""
        h = z
        for n, layer in enumerate(self.decoder):
            h = layer(h)
            if n < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(logits [B, n_items], mean [B, latent], log-variance or None); z is sampled only in training mode."""
        mu, logvar = self.encode(x, generator)
        z = mu
        if self.training and logvar is not None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar

    def weight_l2(self) -> torch.Tensor:
        """Sum of squared weight matrices (biases excluded), a scalar."""
        return sum(layer.weight.pow(2).sum() for layer in [*self.encoder, self.to_code, *self.decoder])


def _dense_rows(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, n_items: int) -> torch.Tensor:
    """Binary float32 [len(rows), n_items] rows of the CSR matrix (indptr int64 [n + 1], indices int64)."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    out = torch.zeros(len(rows), n_items, device=indices.device)
    total = int(lens.sum())
    if total:
        which = torch.repeat_interleave(torch.arange(len(rows), device=indices.device), lens)
        offset = torch.arange(total, device=indices.device) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens,
                                                                                       lens)
        out[which, indices[starts[which] + offset]] = 1.0
    return out


def _csr_tensors(m: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(m.indptr.astype(np.int64)).to(device),
            torch.from_numpy(m.indices.astype(np.int64)).to(device))


class UserRowStep:
    """The trainer shell's step: batches of training-user indices; the loss of their rows (module docstring).

    ``anneal``: (beta_max, total_anneal_steps) for the VAE's KL term, None for the DAE.
    """

    def __init__(self, seen: sp.csr_matrix, device: torch.device, l2: float,
                 anneal: tuple[float, int] | None) -> None:
        self.indptr, self.indices = _csr_tensors(seen, device)
        self.n_items = seen.shape[1]
        self.users = torch.from_numpy(np.flatnonzero(np.diff(seen.indptr) > 0)).to(device)  # rows with items
        self.l2, self.anneal = l2, anneal

    def samples_per_epoch(self) -> int:
        return len(self.users)

    def signature(self) -> list[int]:
        return [len(self.indptr) - 1, self.n_items, len(self.indices)]

    def batches(self, generator: torch.Generator, batch_size: int, rank: int, world_size: int):
        perm = self.users[torch.randperm(len(self.users), generator=generator, device=generator.device)]
        perm = shard(perm, rank, world_size)
        for s in range(0, len(perm), batch_size):
            yield perm[s: s + batch_size]

    def loss(self, net: AutoencoderNet, batch: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        x = _dense_rows(self.indptr, self.indices, batch, self.n_items)
        logits, mu, logvar = net(x, generator)
        loss = -(torch.log_softmax(logits.float(), dim=1) * x).sum(dim=1).mean()
        if self.anneal is not None and logvar is not None:
            beta = anneal_beta(int(net.updates), *self.anneal)
            mu, logvar = mu.float(), logvar.float()
            kl = 0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1).sum(dim=1).mean()
            loss = loss + beta * kl
        if self.l2 > 0:
            loss = loss + self.l2 * net.weight_l2()
        net.updates += 1
        return loss


def anneal_beta(updates: int, beta_max: float, total_anneal_steps: int) -> float:
    """The KL weight after ``updates`` Adam updates: min(beta_max, updates / total_anneal_steps)."""
    if total_anneal_steps <= 0:
        return beta_max
    return min(beta_max, updates / total_anneal_steps)


# -- the models -------------------------------------------------------------------------------------------
class _RowAutoencoder(Recommender):
    """Shared fit, scoring, vectors and persistence of Mult-VAE and Mult-DAE."""

    variational: ClassVar[bool] = False
    exact_history = True
    hardware = Hardware(gpu_batch_factor=1, amp=False)  # the softmax is float32 under amp all the same
    has_user_vectors = True
    has_item_vectors = True

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net_: AutoencoderNet | None = None
        self.device_name = "auto"
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_net(self, n_items: int) -> AutoencoderNet:
        c = self.config
        return AutoencoderNet(n_items, c.hidden, c.latent, c.dropout, self.variational)

    def _anneal(self) -> tuple[float, int] | None:
        return None

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        device = resolve_device(context.device)
        self.device_name = context.device
        torch.manual_seed(self.config.train.seed if context.seed is None else context.seed)
        self.net_ = self.build_net(train.n_items).to(device)
        self._rows = None
        step = UserRowStep(self.seen_, device, self.config.step.l2, self._anneal())
        validate = self._validator(train, valid)
        report = Trainer(self.net_, step, self.config.train, context, validate, self.hardware,
                         self.config_dict()).run()
        if self._anneal() is not None:  # the beta the kept epoch was trained up to: picked on validation
            report.chosen["beta"] = round(anneal_beta(int(self.net_.updates), *self._anneal()), 4)
            report.tuned = validate is not None
        return report

    def _validator(self, train: Interactions, valid: HeldOut | None):
        """Validation metrics with "NDCG@10" for the trainer shell, or None (see the module docstring)."""
        if valid is None or not len(valid):
            return None
        from movierec.evaluation.protocols import evaluate_full, evaluate_heldout_sampled

        if valid.negatives is not None and self.config.select_on == "sampled":
            return lambda: evaluate_heldout_sampled(self, valid, (10,)).metrics
        if valid.fold_in is None and len(np.unique(valid.user)) == len(valid.user):
            return lambda: self._one_item_full_metrics(valid)
        split = Split("vae-cf" if valid.fold_in is not None else "loo", train, valid, valid)
        keep = ("HR@10", "NDCG@10", "NDCG@100", "Recall@20")
        return lambda: {k: v for k, v in evaluate_full(self, split, "valid", (10, 20, 100)).metrics.items()
                        if k in keep}

    def _one_item_full_metrics(self, valid: HeldOut) -> dict[str, float]:
        """Full-ranking HR@10 and NDCG@10 of one held-out item per user (leave-one-out validation): its rank
        is the number of the user's untrained items scoring strictly higher (ties counted in its favour)."""
        all_users, all_items = valid.user.astype(np.int64), valid.item.astype(np.int64)
        rank = np.empty(len(all_users), dtype=np.int64)
        for b in range(0, len(all_users), _ROWS_PER_SCORE_BATCH):  # never one dense [users, n_items] matrix
            users = all_users[b: b + _ROWS_PER_SCORE_BATCH]
            s = self.score(users)
            seen = self.seen_[users]
            s[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
            target = s[np.arange(len(users)), all_items[b: b + _ROWS_PER_SCORE_BATCH]]
            rank[b: b + len(users)] = (s > target[:, None]).sum(axis=1)
        hit = rank < 10
        return {"HR@10": float(hit.mean()), "NDCG@10": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())}

    # -- scoring -----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net_.parameters()).device

    def _codes_and_logits(self, indptr: torch.Tensor, indices: torch.Tensor, rows: np.ndarray,
                          logits: bool = True) -> np.ndarray:
        """Decoder logits float32 [len(rows), n_items] (or latent means [len(rows), latent]) of CSR rows."""
        net = self.net_
        was_training = net.training
        net.eval()
        width = self.n_items if logits else net.decoder[0].in_features
        out = np.empty((len(rows), width), dtype=np.float32)
        rows_t = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(indptr.device)
        with torch.no_grad():
            for s in range(0, len(rows), _ROWS_PER_SCORE_BATCH):
                x = _dense_rows(indptr, indices, rows_t[s: s + _ROWS_PER_SCORE_BATCH], self.n_items)
                mu, _ = net.encode(x)
                res = net.decode(mu) if logits else mu
                out[s: s + _ROWS_PER_SCORE_BATCH] = res.float().cpu().numpy()
        net.train(was_training)
        return out

    def _read_users(self, inter: Interactions) -> None:
        self._rows = None  # the rows are the new seen_, moved to the device when first scored

    def _training_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rows is None or self._rows[0].device != self.device:
            self._rows = _csr_tensors(self.seen_, self.device)
        return self._rows

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Logits float32 [len(users), n_items] of the users' training rows, or [len(users), m] for items [n, m]."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return self._gather(self._codes_and_logits(*self._training_rows(), users), items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        """The same as :meth:`score` for the binary rows of ``history`` (fold-in: no training)."""
        indptr, indices = _csr_tensors(history.matrix(self.n_items), self.device)
        return self._gather(self._codes_and_logits(indptr, indices, np.arange(history.n)), items)

    # -- learned vectors ---------------------------------------------------------------------------------
    def user_vectors(self) -> np.ndarray:
        """Latent mean (VAE) or code (DAE) of each user's training row, float32 [n_users, latent]."""
        self._check_fitted()
        return self._codes_and_logits(*self._training_rows(), np.arange(self.n_users), logits=False)

    def item_vectors(self) -> np.ndarray:
        """Rows of the decoder's output weights, float32 [n_items, hidden] (or [n_items, latent] when
        ``hidden = 0``): an item's logit is this row dotted with the last decoder activation, plus a bias."""
        self._check_fitted()
        return self.net_.decoder[-1].weight.detach().float().cpu().numpy()

    # -- persistence -------------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        net = self.build_net(self.seen_.shape[1])
        net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("net.")})
        self.net_ = net.to(resolve_device(self.device_name)).eval()
        self._rows = None


class MultVAE(_RowAutoencoder):
    """Mult-VAE^PR: a variational autoencoder of user rows with a multinomial likelihood and KL annealing."""

    name = "multvae"
    config_class = MultVAESettings
    variational = True

    def _anneal(self) -> tuple[float, int]:
        return self.config.beta_max, self.config.total_anneal_steps


class MultDAE(_RowAutoencoder):
    """Mult-DAE: a denoising autoencoder of user rows (input dropout) with a multinomial likelihood."""

    name = "multdae"
    config_class = MultDAESettings
    variational = False
