"""The study: EDA, split, the two families of recommenders, evaluation under both protocols, user segments,
and ``report.html``. Entry point: :func:`run_study` (``movierec study``)."""

from movierec.study.pipeline import default_config, resolve_config, run_study

__all__ = ["default_config", "resolve_config", "run_study"]
