"""Evaluation: protocols (sampled-100, full ranking), accuracy and beyond-accuracy metrics."""

from movierec.evaluation.protocols import DEFAULT_KS, EvalResult, evaluate, evaluate_full, evaluate_sampled

__all__ = ["DEFAULT_KS", "EvalResult", "evaluate", "evaluate_full", "evaluate_sampled"]
