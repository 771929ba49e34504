"""The one fit path: every command that trains a model (train, compare, experiment, study; later tune and
serve) builds it here from its registry name and validated settings, and fits it under a run context."""

from __future__ import annotations

from typing import Any

from movierec.data.dataset import Catalog
from movierec.data.splits import Split
from movierec.models.base import FitReport, Recommender, RunContext
from movierec.models.registry import build_model


def fit_model(name: str, settings: dict[str, Any] | None, split: Split, catalog: Catalog | None,
              context: RunContext | None = None, where: str | None = None) -> tuple[Recommender, FitReport]:
    """Build model ``name`` with ``settings`` (validated; ``where`` names their source in errors), fit it on
    the split's training part with its validation part for model selection, and return it with its report."""
    model = build_model(name, settings, where)
    model.fit(split.train, catalog, split.valid, context or RunContext())
    return model, model.fit_report_


def refit_with_choices(name: str, settings: dict[str, Any] | None, report: FitReport, split: Split,
                       catalog: Catalog | None, context: RunContext | None = None) -> tuple[Recommender, FitReport]:
    """Fit model ``name`` again on the training and validation interactions together, with what the first fit
    (``report``) chose on validation held fixed: its chosen settings (EASE's λ) and, for models trained in
    epochs, its best epoch count with early stopping off. Returns the model and its report; evaluate it on
    ``with_valid_in_train(split)``. Choices that are not settings (the content blend's learned weights, a
    hybrid's parts' own choices) are made again without validation items, so they fall back to defaults."""
    from dataclasses import fields

    from movierec.data.splits import with_valid_in_train
    from movierec.models.registry import get_model_class

    names = {f.name for f in fields(get_model_class(name).config_class)}
    fixed = dict(settings or {})
    fixed.update({k: v for k, v in report.chosen.items() if k in names})
    if report.best_epoch and "epochs" in names:
        fixed.update(epochs=int(report.best_epoch), patience=0)
    return fit_model(name, fixed, with_valid_in_train(split), catalog, context)
