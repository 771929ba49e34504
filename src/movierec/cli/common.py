"""What every command shares: the console, option types, JSON output, key-value and comparison tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()

DataArg = Annotated[str, typer.Option("--data", "-d", help="Release name, imported name, or folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _kv_table(title: str, items: dict) -> Table:
    t = Table(title=title, show_header=False)
    for k, v in items.items():
        t.add_row(escape(str(k)), f"{v:.4f}" if isinstance(v, float) else escape(str(v)))
    return t


def _step_printer():
    """A progress callback that prints each step with the time since the command started (stderr)."""
    import time

    err = Console(stderr=True)
    t0 = time.perf_counter()

    def step(what: str, fraction: float | None = None) -> None:
        pct = f"{fraction:4.0%} " if fraction is not None else ""
        err.print(f"[dim]{time.perf_counter() - t0:6.1f} s[/dim] {pct}{escape(what)}")

    return step


def _print_comparison(rows: list[dict], columns: list[str] | None = None) -> None:
    """A rich table on a terminal (``columns``, default the headline set); the markdown table of the headline
    metrics when the output goes to a file or a pipe."""
    if console.is_terminal:
        console.print(comparison_table(rows, columns))
    else:
        from movierec.comparison import comparison_markdown

        sys.stdout.write(comparison_markdown(rows) + "\n")


COMPACT = ["HR@10 [sampled-100]", "NDCG@10 [sampled-100]", "HR@10 [full]", "NDCG@10 [full]", "Coverage@10 [full]",
           "ILD@10 [full]", "Novelty@10 [full]", "fit_seconds"]


def comparison_table(rows: list[dict], columns: list[str] | None = None) -> Table:
    """The headline metrics (or ``columns``) as a rich table; each column header names its protocol."""
    from movierec.comparison import comparison_frame

    df = comparison_frame(rows, columns)
    t = Table(title="test users, K = 10")
    t.add_column("model")
    for c in df.columns:
        name, _, proto = c.partition(" [")
        t.add_column("fit\ns" if c == "fit_seconds" else f"{name}\n{proto.rstrip(']')}", justify="right")
    for name, r in df.iterrows():
        t.add_row(escape(str(name)), *["–" if v is None or v != v else f"{v:.2f}" if c == "fit_seconds" else f"{v:.4f}"
                               for c, v in r.items()])
    return t


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None
