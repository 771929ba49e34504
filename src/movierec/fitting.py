"""The one fit path: every command that trains a model (train, compare, experiment, study, tune) builds it here
from its registry name and validated settings and fits it under a run context (through :mod:`movierec.runs`).

Three fits, one function each:

- :func:`fit_model`: on a split's training part, with its validation part for the model's choices;
- :func:`refit_with_choices`: on training + validation, with what a first fit chose on validation held fixed
  (a refit before the test);
- :func:`fit_final`: on every interaction of the data, nothing held out (a final model, for serving), with
  the settings and choices given.
"""

from __future__ import annotations

from typing import Any

from movierec.data.dataset import Catalog, Dataset
from movierec.data.splits import Split, everything, with_valid_in_train
from movierec.models.base import FitReport, Recommender, RunContext
from movierec.models.registry import build_model


def fit_model(name: str, settings: dict[str, Any] | None, split: Split, catalog: Catalog | None,
              context: RunContext | None = None, where: str | None = None) -> tuple[Recommender, FitReport]:
    """Build model ``name`` with ``settings`` (validated; ``where`` names their source in errors), fit it on
    the split's training part with its validation part for model selection, and return it with its report."""
    model = build_model(name, settings, where)
    model.fit(split.train, catalog, split.valid, context or RunContext())
    return model, model.fit_report_


def fixed_settings(settings: dict[str, Any] | None, fitted: Recommender) -> dict[str, Any]:
    """``settings`` with the choices ``fitted`` made on validation written in (:meth:`Recommender.chosen_settings`:
    the best epoch with early stopping off, EASE's λ, content's blend, a hybrid's weight and its parts')."""
    return {**(settings or {}), **fitted.chosen_settings()}


def refit_with_choices(fitted: Recommender, settings: dict[str, Any] | None, split: Split, catalog: Catalog | None,
                       context: RunContext | None = None) -> tuple[Recommender, FitReport]:
    """A new model of ``fitted``'s class, fitted on the split's training and validation interactions together
    with ``settings`` and what ``fitted`` chose on validation held fixed (:func:`fixed_settings`). It scores each
    user from everything before the test item (the test part of ``split``, or ``with_valid_in_train(split)``)."""
    model = refit_model(fitted, settings)
    model.fit(with_valid_in_train(split).train, catalog, None, context or RunContext())
    return model, model.fit_report_


def refit_model(fitted: Recommender, settings: dict[str, Any] | None) -> Recommender:
    """An unfitted model of ``fitted``'s class (registered or not) with the settings a refit uses."""
    return type(fitted)(**fixed_settings(settings, fitted))


def fit_final(name: str, settings: dict[str, Any] | None, dataset: Dataset, context: RunContext | None = None,
              where: str | None = None) -> tuple[Recommender, FitReport]:
    """Fit model ``name`` on every interaction of ``dataset`` (the split :func:`movierec.data.splits.everything`):
    no validation part, so ``settings`` should carry the choices of an evaluated run (:func:`fixed_settings`);
    choices left to validation fall back to the model's defaults."""
    return fit_model(name, settings, everything(dataset), dataset.catalog, context, where)
