"""Evaluation: protocols (sampled-100, full ranking), accuracy and beyond-accuracy metrics.

The protocols need torch (models score on their device); they are imported on first use, so the pure-numpy
metric modules (``metrics``, ``beyond``) can be used without paying for torch's import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from movierec.evaluation.protocols import (
        DEFAULT_KS,
        PROTOCOLS,
        EvalResult,
        evaluate,
        evaluate_full,
        evaluate_protocols,
        evaluate_sampled,
    )

__all__ = ["DEFAULT_KS", "PROTOCOLS", "EvalResult", "evaluate", "evaluate_full", "evaluate_protocols",
           "evaluate_sampled"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from movierec.evaluation import protocols

        return getattr(protocols, name)
    raise AttributeError(f"module 'movierec.evaluation' has no attribute {name!r}")
