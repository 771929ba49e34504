"""Names of result-table columns: one helper, so every table and reader spells them the same way.

A metric under a protocol on the test part is ``"NDCG@10 [full]"``; on the validation part
``"NDCG@10 [sampled-100, valid]"``; a protocol's evaluation time is ``"eval_seconds[full]"``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["column", "metrics_by_protocol", "result_columns", "seconds_column"]


def column(metric: str, protocol: str, part: str = "test") -> str:
    """The table column of ``metric`` (e.g. "NDCG@10") under ``protocol`` on ``part`` ("test" or "valid")."""
    return f"{metric} [{protocol}]" if part == "test" else f"{metric} [{protocol}, {part}]"


def seconds_column(protocol: str) -> str:
    """The column holding a protocol's evaluation time in seconds."""
    return f"eval_seconds[{protocol}]"


def result_columns(results: dict[str, Any], seconds: dict[str, float] | None = None, part: str = "test"
                   ) -> dict[str, float]:
    """Columns of every metric of ``results`` ({protocol: EvalResult}); with ``seconds`` each protocol's metrics
    are preceded by its evaluation time."""
    row: dict[str, float] = {}
    for protocol, res in results.items():
        if seconds is not None:
            row[seconds_column(protocol)] = round(seconds[protocol], 3)
        row.update({column(k, protocol, part): v for k, v in res.metrics.items()})
    return row


def metrics_by_protocol(row: dict[str, Any], part: str = "test") -> dict[str, dict[str, float]]:
    """The metrics of a table row on ``part``, by protocol: ``{"full": {"NDCG@10": ...}, ...}`` (the inverse of
    :func:`result_columns`)."""
    out: dict[str, dict[str, float]] = {}
    for name, value in row.items():
        metric, sep, rest = name.partition(" [")
        if not sep or not rest.endswith("]"):
            continue
        protocol, _, where = rest[:-1].partition(", ")
        if (where or "test") == part:
            out.setdefault(protocol, {})[metric] = value
    return out
