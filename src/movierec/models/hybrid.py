"""Hybrids of two models: a tuned weighted blend, and a switch on how much a user has rated.

- ``hybrid-blend``: score = w * z_a(u, i) + (1 - w) * z_b(u, i), where z is a model's score standardised
  per user over all items (mean 0, std 1), so scores on different scales mix. ``weight`` is chosen on the
  validation items (sampled-100 NDCG@10) from 0, 0.1, ..., 1 unless set.
- ``hybrid-switch``: users with fewer than ``threshold`` training interactions get model b (content or
  popularity), the others model a (NeuMF). The threshold is chosen on the validation items from a grid of
  user-activity quantiles unless set.

Both train their two parts on the same data; a bundle stores both parts' arrays under ``a.`` / ``b.``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import FitReport, History, Recommender, RunContext, same_training_pairs
from movierec.models.registry import REGISTRY, build_model
from movierec.models.settings import Settings, setting

__all__ = ["BlendSettings", "HybridBlend", "HybridSwitch", "SwitchSettings"]

_MODELS = tuple(REGISTRY)


class BlendSettings(Settings):
    a: str = setting("neumf", "the first model", choices=_MODELS)
    b: str = setting("content", "the second model", choices=_MODELS)
    weight: float = setting(-1.0, "weight of model a in [0, 1]; < 0 tunes it on validation", ge=-1, le=1)
    a_settings: dict = setting(help="settings of model a", default_factory=dict)
    b_settings: dict = setting(help="settings of model b", default_factory=dict)


class SwitchSettings(Settings):
    a: str = setting("neumf", "the model for users with enough history", choices=_MODELS)
    b: str = setting("content", "the model for users with little history", choices=_MODELS)
    threshold: int = setting(-1, "training interactions below which model b serves; < 0 tunes it", ge=-1)
    a_settings: dict = setting(help="settings of model a", default_factory=dict)
    b_settings: dict = setting(help="settings of model b", default_factory=dict)


class _TwoModels(Recommender):
    """Shared plumbing: fit both parts, persist both under prefixes.

    ``context.prefitted`` may hold models already fitted on the same training data (e.g. by a study that
    trained them as models of their own); one is reused as a part only if its class and configuration are
    exactly the ones asked for.
    """

    def _fit_parts(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
                   context: RunContext) -> None:
        self.tuning_ = None
        for part, name, settings in (("a", self.config.a, self.config.a_settings),
                                     ("b", self.config.b, self.config.b_settings)):
            model = build_model(name, settings, f"{self.name} {part}_settings")
            given = next((m for m in context.prefitted if m.name == model.name and m.config == model.config
                          and same_training_pairs(m.seen_, self.seen_)), None)
            if given is not None:
                model = given
            else:
                model.fit(train, catalog, valid, context.for_part())
            setattr(self, f"{part}_", model)

    def parts(self) -> tuple[Recommender, ...]:
        return (self.a_, self.b_)

    def scores_history_exactly(self) -> bool:
        return all(part.scores_history_exactly() for part in self.parts())

    def with_parts(self, a: Recommender, b: Recommender) -> _TwoModels:
        """A copy of this fitted hybrid, its own choices kept, made of parts ``a`` and ``b`` (models of the same
        classes that read the same users: the test models of this hybrid's parts). Its settings record the
        parts' complete settings."""
        if not same_training_pairs(a.seen_, b.seen_):
            raise ValueError("the two parts read different users' interactions")
        new = copy.copy(self)
        new.a_, new.b_ = a, b
        new.seen_ = a.seen_
        new.config = self.config.with_values(a_settings=a.config_dict(), b_settings=b.config_dict())
        new._read_users_of_parts()
        return new

    def _read_users(self, inter: Interactions) -> None:  # with_history: both parts read the new users too
        self.a_, self.b_ = self.a_.with_history(inter), self.b_.with_history(inter)
        self._read_users_of_parts()

    def _read_users_of_parts(self) -> None:
        """What the hybrid itself reads of each user (the switch: their interaction counts)."""

    def _chosen(self, setting_name: str, value: float) -> dict[str, Any]:
        """This hybrid's own choice and each part's, as settings (see ``Recommender.chosen_settings``)."""
        if self.fit_report_ is None:
            return {}
        return {setting_name: value,
                "a_settings": {**self.config.a_settings, **self.a_.chosen_settings()},
                "b_settings": {**self.config.b_settings, **self.b_.chosen_settings()}}

    def item_similarity(self, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray | None:
        """The first part's notion of similar items (part a, else part b; None when neither has one)."""
        for part in self.parts():
            s = part.item_similarity(items, others)
            if s is not None:
                return s
        return None

    def _report(self, setting_name: str, value: float) -> FitReport:
        return FitReport(chosen={setting_name: float(value)}, tuned=self.tuning_ is not None)

    def _state(self) -> dict[str, np.ndarray]:
        out = {}
        for prefix, model in (("a.", self.a_), ("b.", self.b_)):
            out.update({prefix + k: v for k, v in model._state().items()})
        return out

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        for prefix, name, settings in (("a.", self.config.a, self.config.a_settings),
                                       ("b.", self.config.b, self.config.b_settings)):
            part = build_model(name, settings, f"{self.name} {prefix[0]}_settings")
            part.seen_ = self.seen_
            part._load_state({k[2:]: v for k, v in state.items() if k.startswith(prefix)})
            setattr(self, prefix[0] + "_", part)

    def _tune(self, valid: HeldOut | None, candidates: list, apply) -> Any:
        """Pick the candidate setting with the best validation NDCG@10 (sampled-100)."""
        if valid is None or valid.negatives is None:
            return candidates[len(candidates) // 2]
        best, best_ndcg = candidates[0], -1.0
        self.tuning_ = []
        self._memo: dict[bytes, tuple[np.ndarray, np.ndarray]] | None = {}  # the parts' candidate scores
        try:
            for c in candidates:
                apply(c)
                ndcg = evaluate_heldout_sampled(self, valid, (10,)).metrics["NDCG@10"]
                self.tuning_.append({"setting": c, "valid_NDCG@10": ndcg})
                if ndcg > best_ndcg + 1e-12:
                    best, best_ndcg = c, ndcg
        finally:
            self._memo = None
        return best

    def _memoised(self, users: np.ndarray, items: np.ndarray | None, compute) -> tuple[np.ndarray, np.ndarray]:
        """``compute(users, items)`` -> both parts' scores; while tuning, candidate scores of a batch are kept,
        so every grid point reuses them instead of scoring every item again (only [n, m] candidates are kept,
        never full [n, n_items] rows)."""
        memo = getattr(self, "_memo", None)
        if memo is None or items is None:
            return compute(users, items)
        key = users.tobytes() + np.asarray(items, np.int64).tobytes()
        if key not in memo:
            memo[key] = compute(users, items)
        return memo[key]


def _standardise(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.float64)
    finite = np.isfinite(s)
    mean = np.where(finite, s, 0).sum(axis=1, keepdims=True) / np.maximum(finite.sum(axis=1, keepdims=True), 1)
    var = np.where(finite, (s - mean) ** 2, 0).sum(axis=1, keepdims=True) / np.maximum(finite.sum(1, keepdims=True), 1)
    return (s - mean) / np.where(var > 0, np.sqrt(var), 1.0)


class HybridBlend(_TwoModels):
    name = "hybrid-blend"
    config_class = BlendSettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        self._fit_parts(train, catalog, valid, context)
        if self.config.weight < 0:
            self.weight_ = 0.5
            grid = [round(w, 2) for w in np.linspace(0, 1, 11)]
            self.weight_ = self._tune(valid, grid, lambda w: setattr(self, "weight_", w))
        else:
            self.weight_ = self.config.weight
        return self._report("weight", self.weight_)

    def chosen_settings(self) -> dict[str, Any]:
        return self._chosen("weight", float(self.weight_))

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        za, zb = self._memoised(users, items, self._standardised_parts)
        return (self.weight_ * za + (1 - self.weight_) * zb).astype(np.float32)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        za = self._gather(_standardise(self.a_.score_history(history)), items)
        zb = self._gather(_standardise(self.b_.score_history(history)), items)
        return (self.weight_ * za + (1 - self.weight_) * zb).astype(np.float32)

    def _standardised_parts(self, users: np.ndarray, items: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Each part's scores standardised per user over all items, then gathered at ``items``."""
        return (self._gather(_standardise(self.a_.score(users, None)), items),
                self._gather(_standardise(self.b_.score(users, None)), items))

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "weight": np.array([self.weight_], np.float64)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state({k: v for k, v in state.items() if k != "weight"})
        self.weight_ = float(state["weight"][0])


class HybridSwitch(_TwoModels):
    name = "hybrid-switch"
    config_class = SwitchSettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        self._fit_parts(train, catalog, valid, context)
        self.counts_ = train.user_counts()
        if self.config.threshold < 0:
            qs = np.quantile(self.counts_[self.counts_ > 0], [0, 0.1, 0.2, 0.3, 0.5]) if self.counts_.any() else [0]
            grid = sorted({0, *[int(q) for q in qs]})
            self.threshold_ = self._tune(valid, grid, lambda t: setattr(self, "threshold_", t))
        else:
            self.threshold_ = self.config.threshold
        return self._report("threshold", self.threshold_)

    def chosen_settings(self) -> dict[str, Any]:
        return self._chosen("threshold", int(self.threshold_))

    def _read_users_of_parts(self) -> None:
        self.counts_ = np.diff(self.seen_.indptr).astype(np.int64)

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        use_b = self.counts_[users] < self.threshold_
        if getattr(self, "_memo", None) is not None and items is not None:  # tuning: score both parts once
            sa, sb = self._memoised(users, items, lambda u, i: (self.a_.score(u, i), self.b_.score(u, i)))
            return np.where(use_b[:, None], sb, sa).astype(np.float32)
        out = np.empty((len(users), self.n_items if items is None else np.shape(items)[1]), np.float32)
        for mask, model in ((~use_b, self.a_), (use_b, self.b_)):
            if mask.any():
                out[mask] = model.score(users[mask], None if items is None else np.asarray(items)[mask])
        return out

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        """A history's length plays the role of the user's training interactions."""
        use_b = history.lengths() < self.threshold_
        sa, sb = self.a_.score_history(history, items), self.b_.score_history(history, items)
        return np.where(use_b[:, None], sb, sa).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "threshold": np.array([self.threshold_], np.int64), "counts": self.counts_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state({k: v for k, v in state.items() if k not in ("threshold", "counts")})
        self.threshold_ = int(state["threshold"][0])
        self.counts_ = state["counts"]
