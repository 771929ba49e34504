"""Comparison tables: every metric column names its protocol, e.g. ``NDCG@10 [full]``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.evaluation.columns import column
from movierec.fsutil import atomic_write_text, csv_text

HEADLINE = [
    *(column(m, "sampled-100") for m in ("HR@10", "NDCG@10")),
    *(column(m, "full") for m in ("HR@10", "NDCG@10", "Precision@10", "Recall@10", "MAP@10", "Coverage@10", "ILD@10",
                                  "Novelty@10", "Gini@10")),
    "fit_seconds",
]


def comparison_frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows).set_index("model")
    cols = [c for c in (columns or HEADLINE) if c in df.columns]
    return df[cols]


def comparison_markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    df = comparison_frame(rows, columns)
    header = "| model | " + " | ".join(df.columns) + " |"
    sep = "|---|" + "---:|" * len(df.columns)
    lines = [header, sep]
    for name, r in df.iterrows():
        cells = ["–" if v is None or (isinstance(v, float) and math.isnan(v)) else
                 f"{v:.4f}" if isinstance(v, float) and c != "fit_seconds" else f"{v:.2f}" for c, v in r.items()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_comparison(rows: list[dict], out: str | Path) -> list[Path]:
    """Write results.csv (every metric), results.md (headline metrics) and results.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    full = pd.DataFrame(rows)
    return [
        atomic_write_text(out / "results.csv", csv_text(full)),
        atomic_write_text(out / "results.md", comparison_markdown(rows) + "\n"),
        atomic_write_text(out / "results.json", json_dumps(rows)),
    ]


def json_dumps(obj: Any) -> str:
    """JSON with NaN and infinities written as null (strict parsers reject NaN)."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(obj), indent=2, default=str)
