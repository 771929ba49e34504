"""What every command shares: the console, option types, JSON output, key-value and comparison tables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from movierec.errors import MovieRecError
from movierec.evaluation.columns import column

console = Console()

DataArg = Annotated[str, typer.Option("--data", "-d", help="Release name, imported name, or folder.")]
#: the dataset of `split`, `eda` and `data info`: --data, with the old positional spelling kept (deprecated)
DataOpt = Annotated[str | None, typer.Option("--data", "-d", help="Release name, imported name, or folder.",
                                             show_default=False)]
OldDataArg = Annotated[str | None, typer.Argument(help="Deprecated: the dataset; write --data NAME instead.",
                                                  show_default=False, hidden=True)]


def dataset_arg(positional: str | None, option: str | None, command: str) -> str:
    """The dataset a command was given: --data, or (deprecated, with a line saying so) the old positional."""
    if positional is not None and option is not None:
        raise MovieRecError(f"{command}: give the dataset once, as --data {option}")
    if positional is not None:
        print(f"note: `movierec {command} NAME` is deprecated; write `movierec {command} --data {positional}`",
              file=sys.stderr)
        return positional
    if option is None:
        raise MovieRecError(f"{command}: missing option --data (a release name, imported name, or folder)")
    return option
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def kv_table(title: str, items: dict) -> Table:
    t = Table(title=title, show_header=False)
    for k, v in items.items():
        t.add_row(escape(str(k)), f"{v:.4f}" if isinstance(v, float) else escape(str(v)))
    return t


def step_printer():
    """A progress callback that prints each step with the time since the command started (stderr)."""
    import time

    err = Console(stderr=True)
    t0 = time.perf_counter()

    def step(what: str, fraction: float | None = None) -> None:
        pct = f"{fraction:4.0%} " if fraction is not None else ""
        err.print(f"[dim]{time.perf_counter() - t0:6.1f} s[/dim] {pct}{escape(what)}")

    return step


def print_comparison(rows: list[dict], columns: list[str] | None = None) -> None:
    """A rich table on a terminal (``columns``, default the headline set); the markdown table of the headline
    metrics when the output goes to a file or a pipe."""
    if console.is_terminal:
        console.print(comparison_table(rows, columns))
    else:
        from movierec.comparison import comparison_markdown

        sys.stdout.write(comparison_markdown(rows) + "\n")


COMPACT = [*(column(m, "sampled-100") for m in ("HR@10", "NDCG@10")),
           *(column(m, "full") for m in ("HR@10", "NDCG@10", "Coverage@10", "ILD@10", "Novelty@10")), "fit_seconds"]


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


# -- progress of long commands --------------------------------------------------------------------------------
def _plain_progress() -> bool:
    """True when stderr is not a terminal (a pipe, a log file, CI): progress is then plain timestamped lines."""
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return True


class Reporter:
    """Progress of one long command (``train``, ``compare``, ``experiment``), always on stderr.

    When stderr is a terminal the command keeps its rich bars and spinners (:attr:`plain` is False and
    :meth:`line` prints nothing; :meth:`status` is a spinner whose text :meth:`step` updates). When it is not,
    each :meth:`line` is one timestamped plain line, flushed at once, e.g.
    ``2026-11-30 17:05:12 compare: fitting itemknn (2/3)``: at most one per epoch or step, never one per batch.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.plain = _plain_progress()
        self._status: Any = None

    def line(self, what: str) -> None:
        if not self.plain:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            sys.stderr.write(f"{stamp} {self.command}: {what}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the work
            pass

    def status(self, what: str, enabled: bool = True) -> Any:
        """A context manager: a rich spinner on stderr reading ``what`` (a terminal, ``enabled``), else nothing."""
        if self.plain or not enabled:
            return _null()
        self._status = Console(stderr=True).status(escape(what), spinner="dots")
        return self._status

    def step(self, what: str) -> None:
        """One step: the spinner's text on a terminal, a timestamped line elsewhere."""
        if self._status is not None:
            self._status.update(escape(what))
        self.line(what)

    def epoch_printer(self, total: int | None = None, prefix: list[str] | None = None
                      ) -> Callable[[dict[str, Any]], None]:
        """A ``RunContext.on_epoch_end`` callback printing one line per epoch (plain mode only), e.g.
        ``epoch 3/30, loss 0.3121, valid NDCG@10 0.4012 (12.3 s)`` after ``prefix[0]`` when given (a list, so
        the caller may change it between fits). It never stops training."""

        def on_epoch_end(record: dict[str, Any]) -> None:
            self.line(" ".join([*(prefix or [])[:1], epoch_text(record, total)]))

        return on_epoch_end


def epoch_text(record: dict[str, Any], total: int | None = None) -> str:
    """One epoch record of the trainer (epoch, loss, seconds, valid_* metrics) as a short phrase."""
    text = f"epoch {record.get('epoch', '?')}" + (f"/{total}" if total else "")
    if isinstance(record.get("loss"), float):
        text += f", loss {record['loss']:.4f}"
    if isinstance(record.get("valid_NDCG@10"), float):
        text += f", valid NDCG@10 {record['valid_NDCG@10']:.4f}"
    if isinstance(record.get("seconds"), float):
        text += f" ({record['seconds']:.1f} s)"
    return text


def configured_epochs(model: str, settings: dict[str, Any] | None) -> int | None:
    """The number of epochs ``model`` trains for under ``settings`` (None for a model without epochs)."""
    from movierec.models import build_model
    from movierec.runs.spec import HARDWARE_KEYS

    try:
        own = {k: v for k, v in (settings or {}).items() if k not in HARDWARE_KEYS}
        epochs = build_model(model, own).config_dict().get("epochs")
    except Exception:  # only for a progress line; the fit itself reports bad settings
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
