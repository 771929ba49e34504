"""The ``movierec`` command. Tables for people, ``--json`` for machines, exit code 2 for user errors.

One module per command group; this one builds the typer ``app`` and registers every command, in the order
``movierec --help`` lists them. Command modules import their heavy dependencies inside the command functions,
so ``movierec --help`` stays fast.

- ``common``: the console, shared option types, JSON output, key-value and comparison tables
- ``data``: ``data list|fetch|import|info|synth`` and ``split``
- ``training``: ``train``, ``evaluate``, ``recommend``, ``compare``
- ``study``: ``experiment``, ``eda``, ``segments``, ``study``
- ``similar``: ``similar``
- ``models``: ``models`` (the registry: families, summaries, settings)
"""

from __future__ import annotations

import sys

import typer

from movierec.cli import data, models, similar, study, training
from movierec.cli.common import COMPACT, comparison_table, console
from movierec.errors import MovieRecError

__all__ = ["COMPACT", "app", "comparison_table", "console", "data_app", "main"]

app = typer.Typer(help="Movie recommendation on MovieLens.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="List, fetch, import, inspect and synthesise MovieLens data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

data_app.command("list")(data.data_list)
data_app.command("fetch")(data.data_fetch)
data_app.command("import")(data.data_import)
data_app.command("info")(data.data_info)
data_app.command("synth")(data.data_synth)

app.command("split")(data.split_cmd)
app.command("train")(training.train_cmd)
app.command("evaluate")(training.evaluate_cmd)
app.command("recommend")(training.recommend_cmd)
app.command("experiment")(study.experiment_cmd)
app.command("eda")(study.eda_cmd)
app.command("segments")(study.segments_cmd)
app.command("study")(study.study_cmd)
app.command("compare")(training.compare_cmd)
app.command("similar")(similar.similar_cmd)
app.command("models")(models.models_cmd)


def main() -> None:
    """Entry point: user errors print one line to stderr and exit with code 2."""
    from movierec.data.dataset import UnknownIdError

    try:
        app()  # click handles usage errors itself (exit code 2)
    except (MovieRecError, UnknownIdError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: file not found", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
