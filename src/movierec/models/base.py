"""The Recommender contract every model follows, classic or neural (design: docs/architecture.md).

- ``fit(train, catalog=None, valid=None, context=None) -> self``; ``fit_report_`` then holds a
  :class:`FitReport`. ``context`` (:class:`RunContext`) carries what belongs to the run, not the model:
  device, seed, checkpoints, progress, rank and world size, a time budget, models fitted earlier.
- ``score(users, items=None)``: ``items=None`` scores every item, float32 [len(users), n_items];
  a 2-D ``items`` [len(users), m] scores each user's own candidate list, float32 [len(users), m].
- ``score_history(history, items=None)``: the same for people described only by a :class:`History`
  (new users, sessions, fold-in users), float32 [history.n, n_items or m].
- ``recommend(users, k)`` / ``recommend_history(history, k)`` -> (items int64 [n, k], scores float32
  [n, k]); seen items are excluded; slots with no candidate left hold item -1 and score -inf.
- ``user_vectors()`` / ``item_vectors()``: learned vectors where the model has them, else None.
- ``item_similarity(items, others=None)``: how alike the model finds each given item and every item (or
  each of ``others``), float32 [len(items), n_items or len(others)], or None for a model with no notion of
  it (popularity); used for "because you rated ..." reasons and model-based similar movies.
- Persistence is :mod:`movierec.artifacts` (the layer above): ``state_dict()`` / ``load_state_dict()``.
- ``exact_history`` (class flag; :meth:`scores_history_exactly` for an instance): ``score_history`` of a trained
  user's own training history gives exactly that user's scores, with no training (item-based models,
  autoencoders, SASRec, iALS's exact least-squares fold-in). Such a model is tested by reading each user's
  training and validation interactions as a history; a model with per-user parameters learned by gradient
  steps (GMF, MLP, NeuMF, content-neural) is refitted on them instead (see :mod:`movierec.runs`).
- ``chosen_settings()``: what the fit chose on the validation part (best epoch, EASE's λ, blend weights), as
  settings that make the same choices again without a validation part (a refit, a final model).

A subclass declares ``name`` (its registry name) and ``config_class`` (its settings: a
:class:`movierec.models.settings.Settings`, composed of parts for a trained model) and implements ``_fit``,
``score``, ``_score_history``, ``_state`` (learned arrays by name) and ``_load_state``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions
from movierec.data.history import History
from movierec.data.splits import HeldOut
from movierec.models.settings import NoSettings, Settings


@dataclass
class RunContext:
    """How one fit runs (not what the model is): given by the caller, never stored in a bundle.

    device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...; seed: overrides the model's
    configured seed when set; checkpoint_dir/resume: per-epoch checkpoints of iterative models;
    checkpoint_key: written into each checkpoint (the run's key hash), so only the same run resumes it;
    progress: False, True (a bar of its own) or a running ``rich.progress.Progress`` to add a bar to;
    rank/world_size: this process among the distributed ones (checkpoints and validation on rank 0 only);
    time_budget_s: stop after the epoch that passes it; prefitted: models already fitted on the same
    training data that a hybrid may reuse as its parts; on_epoch_end(record) may return False to stop;
    gpu_batch_factor/amp: how a model uses a GPU (:class:`movierec.training.Hardware`), None: the model's own.
    """

    device: str = "auto"
    seed: int | None = None
    checkpoint_dir: Path | None = None
    checkpoint_key: str | None = None
    resume: bool = False
    progress: Any = False
    rank: int = 0
    world_size: int = 1
    time_budget_s: float | None = None
    prefitted: list[Any] = field(default_factory=list)
    on_epoch_end: Callable[[dict[str, Any]], bool | None] | None = None
    gpu_batch_factor: int | None = None
    amp: bool | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def hardware(self, model_defaults: Any) -> Any:
        """``model_defaults`` (a :class:`movierec.training.Hardware`) with this run's knobs that are set."""
        given = {k: v for k, v in (("gpu_batch_factor", self.gpu_batch_factor), ("amp", self.amp)) if v is not None}
        return dataclasses.replace(model_defaults, **given) if given else model_defaults

    def for_part(self) -> RunContext:
        """The context of a model fitted inside another one: same device, seed and hardware, no checkpoints or
        bars."""
        return RunContext(device=self.device, seed=self.seed, rank=self.rank, world_size=self.world_size,
                          prefitted=self.prefitted, gpu_batch_factor=self.gpu_batch_factor, amp=self.amp)


@dataclass
class FitReport:
    """What a fit did. seconds: wall time of ``fit``; epochs: epochs run (0 for closed-form models);
    best_epoch: the epoch whose weights were kept; samples_per_s: training samples per second (steps only);
    best_valid: validation metrics of the kept epoch; train_log: one record per epoch; chosen: settings
    picked during the fit (a hybrid's weight), ``tuned`` when picked on validation."""

    seconds: float = 0.0
    epochs: int = 0
    best_epoch: int | None = None
    samples_per_s: float | None = None
    stopped_early: bool = False
    best_valid: dict[str, float] = field(default_factory=dict)
    train_log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    chosen: dict[str, float] = field(default_factory=dict)
    tuned: bool = False

    def row(self) -> dict[str, Any]:
        """Columns for a results table (fit seconds, epochs, chosen settings)."""
        out: dict[str, Any] = {"fit_seconds": round(self.seconds, 2)}
        if self.epochs:
            out.update(best_epoch=self.best_epoch, epochs_run=self.epochs)
        out.update({f"tuned_{k}" if self.tuned else k: v for k, v in self.chosen.items()})
        return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of each row's k highest scores, best first; equal scores by ascending index."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (len(scores), 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def top_k_unseen(scores: np.ndarray, seen: sp.csr_matrix | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and scores of float32 ``scores`` [n, n_items] after masking ``seen`` [n, n_items]."""
    s = np.array(scores, dtype=np.float32)
    if seen is not None:
        s[np.repeat(np.arange(len(s)), np.diff(seen.indptr)), seen.indices] = -np.inf
    idx = top_k(s, min(k, s.shape[1]))
    vals = np.take_along_axis(s, idx, axis=1)
    idx[np.isneginf(vals)] = -1
    return idx, vals


def same_training_pairs(a: sp.csr_matrix | None, b: sp.csr_matrix | None) -> bool:
    """Whether two ``seen_`` matrices hold the same (user, item) pairs (their sorted CSR structures)."""
    return (a is not None and b is not None and a.shape == b.shape and a.nnz == b.nnz
            and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices))


def binary_rows(m: sp.spmatrix) -> sp.csr_matrix:
    """A float32 CSR copy of ``m`` [n, n_items] with every stored value 1 (who interacted, not how)."""
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    return out


class Recommender(ABC):
    """Base class: settings, the training-interaction matrix (for ``exclude_seen``), the fit report."""

    name: ClassVar[str]
    config_class: ClassVar[type[Settings]] = NoSettings
    has_user_vectors: ClassVar[bool] = False
    has_item_vectors: ClassVar[bool] = False
    #: score_history of a trained user's own training history equals score(user) exactly (module docstring)
    exact_history: ClassVar[bool] = False

    def __init__(self, config: Settings | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.config_class()
        self.config = cfg.with_values(**overrides) if overrides else cfg
        self.seen_: sp.csr_matrix | None = None
        self.fit_report_: FitReport | None = None

    # -- training ----------------------------------------------------------------------------------
    def fit(self, train: Interactions, catalog: Catalog | None = None, valid: HeldOut | None = None,
            context: RunContext | None = None) -> Recommender:
        t0 = time.perf_counter()
        self._unit_item_vectors = None
        self.seen_ = train.matrix()
        report = self._fit(train, catalog, valid, context or RunContext()) or FitReport()
        report.seconds = time.perf_counter() - t0
        self.fit_report_ = report
        return self

    @abstractmethod
    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport | None:
        """Learn from ``train``; return a report for iterative models (None: closed form)."""

    def parts(self) -> tuple[Recommender, ...]:
        """The fitted models this one is made of (a hybrid's two parts); empty for single models."""
        return ()

    def with_history(self, inter: Interactions) -> Recommender:
        """This fitted model with its users read from ``inter`` instead of its training data: a copy (sharing the
        learned weights) whose ``score(users)`` equals ``score_history`` of each user's interactions in
        ``inter``, in time order (the test input: training plus validation). Only for a model that
        :meth:`scores_history_exactly`; ``inter`` must have the model's users and items."""
        self._check_fitted()
        if not self.scores_history_exactly():
            raise TypeError(f"{type(self).__name__} learns per-user parameters: refit it instead")
        if (inter.n_users, inter.n_items) != self.seen_.shape:
            raise ValueError(f"interactions of {inter.n_users} users and {inter.n_items} items, but the model has "
                             f"{self.seen_.shape[0]} and {self.seen_.shape[1]}")
        new = copy.copy(self)
        new.seen_ = inter.matrix()
        new._read_users(inter)
        return new

    def _read_users(self, inter: Interactions) -> None:
        """Recompute what ``score(users)`` reads of each user besides ``seen_`` (a profile, a sequence, a
        folded-in vector) from ``inter``; called on the copy :meth:`with_history` makes. Default: nothing."""
        return None

    def scores_history_exactly(self) -> bool:
        """Whether this fitted model scores any history as it would a trained user with that history (the
        class's ``exact_history``; a hybrid: both its parts)."""
        return self.exact_history

    def chosen_settings(self) -> dict[str, Any]:
        """The choices the last fit made on the validation part, as settings that make them again without one:
        ``epochs`` = the kept (best) epoch with ``patience`` 0 for models trained in epochs, and every value of
        ``fit_report_.chosen`` that names a setting (EASE's ``l2``). Empty before a fit. Models whose choices
        are no plain setting override this (content's blend weights, a hybrid's weight and its parts')."""
        report = self.fit_report_
        if report is None:
            return {}
        names = set(self.config_class.names())
        out: dict[str, Any] = {k: v for k, v in report.chosen.items() if k in names}
        if report.epochs and report.best_epoch and "epochs" in names:
            out.update(epochs=int(report.best_epoch), patience=0)
        return out

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return self.seen_.shape[0]

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return self.seen_.shape[1]

    def _check_fitted(self) -> None:
        if self.seen_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load a bundle first")

    # -- scoring -----------------------------------------------------------------------------------
    @abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray: ...

    def score_history(self, history: History, items: np.ndarray | None = None) -> np.ndarray:
        """Scores for people known only by their histories: float32 [history.n, n_items], or [history.n, m]
        for a 2-D ``items`` [history.n, m]. The items must be item indices of this model."""
        self._check_fitted()
        if len(history) and (history.item.min() < 0 or history.item.max() >= self.n_items):
            raise ValueError(f"history items must be indices in [0, {self.n_items})")
        return np.asarray(self._score_history(history, items), dtype=np.float32)

    @abstractmethod
    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray: ...

    def recommend(self, users: np.ndarray, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return top_k_unseen(self.score(users, None), self.seen_[users] if exclude_seen else None, k)

    def recommend_history(self, history: History, k: int = 10, exclude_seen: bool = True
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for each history, never an item of that history (unless ``exclude_seen`` is False)."""
        return top_k_unseen(self.score_history(history), history.matrix(self.n_items) if exclude_seen else None, k)

    @staticmethod
    def _gather(full: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Per-user candidate scores from full scores [n, n_items]; ``items`` [n, m] or None."""
        if items is None:
            return full
        return np.take_along_axis(full, np.asarray(items, dtype=np.int64), axis=1)

    # -- learned vectors ---------------------------------------------------------------------------
    def user_vectors(self) -> np.ndarray | None:
        """Learned user vectors float [n_users, d], or None when the model has none."""
        return None

    def item_vectors(self) -> np.ndarray | None:
        """Learned item vectors float [n_items, d], or None when the model has none."""
        return None

    def item_similarity(self, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray | None:
        """How alike the model finds each of ``items`` [m] and each of ``others`` [p] (default: every item):
        float32 [m, p or n_items], higher is more alike; None for a model with no notion of it.

        The default is the cosine of the learned item vectors (normalised once and kept); models with
        their own item-item weights or item features override it.
        """
        unit = getattr(self, "_unit_item_vectors", None)
        if unit is None:
            v = self.item_vectors()
            if v is None:
                return None
            v = np.asarray(v, dtype=np.float32)
            unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            self._unit_item_vectors = unit
        b = unit if others is None else unit[np.asarray(others, dtype=np.int64)]
        return unit[np.asarray(items, dtype=np.int64)] @ b.T

    # -- persistence (see movierec.artifacts) --------------------------------------------------------
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        seen = self.seen_
        return {
            "seen.indptr": seen.indptr.astype(np.int64),
            "seen.indices": seen.indices.astype(np.int32),
            "seen.shape": np.array(seen.shape, dtype=np.int64),
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        shape = tuple(int(x) for x in state["seen.shape"])
        indices = state["seen.indices"]
        self.seen_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, state["seen.indptr"]), shape=shape)
        self._unit_item_vectors = None
        self._load_state({k: v for k, v in state.items() if not k.startswith("seen.")})

    def config_dict(self) -> dict[str, Any]:
        """The settings, flat (as users write them and bundles store them)."""
        return self.config.flat()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
