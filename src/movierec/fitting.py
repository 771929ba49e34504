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
