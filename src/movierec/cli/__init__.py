"""The ``movierec`` command. Tables for people, ``--json`` for machines, exit code 2 for user errors.

One module per command group; this one builds the typer ``app`` and registers every command, in the order
``movierec --help`` lists them. Command modules import their heavy dependencies inside the command functions,
so ``movierec --help`` stays fast.

- ``common``: the console, shared option types, JSON output, key-value and comparison tables
- ``data``: ``data list|fetch|import|info|synth`` and ``split``
- ``training``: ``train``, ``evaluate``, ``compare``
- ``serving``: ``recommend`` (known users, new people, every user) and ``serve`` (HTTP and a web page)
- ``study``: ``experiment``, ``eda``, ``segments``, ``study``
- ``tune``: ``tune`` (Optuna search of a model's settings on validation)
- ``similar``: ``similar``
- ``models``: ``models`` (the registry: families, summaries, settings)
- ``doctor``: ``doctor`` (versions, extras, compute device, data found, cache, Chromium) and ``--version``
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from movierec.cli import data, doctor, models, serving, similar, study, training, tune
from movierec.cli.common import COMPACT, comparison_table, console
from movierec.errors import MovieRecError
from movierec.fsutil import release_locks

__all__ = ["COMPACT", "app", "comparison_table", "console", "data_app", "main"]

INTERRUPTED = ("interrupted: finished runs and per-epoch checkpoints are kept; run the same command again "
               "(train: add --resume) to continue")


class _Interrupted(BaseException):
    """Ctrl-C inside a command, carried past typer (which turns KeyboardInterrupt into a silent exit 130)."""


class _State:
    debug = False


def _debug_requested() -> bool:
    return _State.debug or os.environ.get("MOVIEREC_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a command whose Ctrl-C reaches :func:`main` (typer sees the same signature and help)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            raise _Interrupted() from e

    return run


app = typer.Typer(help="Movie recommendation on MovieLens.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,  # plain text: [[run]] shows as written
                  context_settings={"max_content_width": 120})


def _print_version(value: bool) -> None:
    if value:
        from movierec import __version__

        print(f"movierec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error (also: MOVIEREC_DEBUG=1).")] = False,
        version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                              callback=_print_version)] = False) -> None:
    """Movie recommendation on MovieLens. Errors caused by the input print one line and exit with code 2.

    Start with `movierec doctor` (what is installed and found), `movierec data list` and `movierec models`.
    """
    _State.debug = _State.debug or debug


data_app = typer.Typer(help="List, fetch, import, inspect and synthesise MovieLens data.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(data_app, name="data")

data_app.command("list")(_command(data.data_list))
cache_app = typer.Typer(help="The cache of parsed tables and downloads: list it, clear stale entries.",
                        no_args_is_help=True, rich_markup_mode=None)
data_app.add_typer(cache_app, name="cache")
cache_app.command("list")(_command(data.cache_list))
cache_app.command("clear")(_command(data.cache_clear))
data_app.command("fetch")(_command(data.data_fetch))
data_app.command("import")(_command(data.data_import))
data_app.command("info")(_command(data.data_info))
data_app.command("synth")(_command(data.data_synth))

app.command("split")(_command(data.split_cmd))
app.command("train")(_command(training.train_cmd))
app.command("evaluate")(_command(training.evaluate_cmd))
app.command("recommend")(_command(serving.recommend_cmd))
app.command("experiment")(_command(study.experiment_cmd))
app.command("eda")(_command(study.eda_cmd))
app.command("segments")(_command(study.segments_cmd))
app.command("study")(_command(study.study_cmd))
app.command("compare")(_command(training.compare_cmd))
app.command("tune")(_command(tune.tune_cmd))
app.command("similar")(_command(similar.similar_cmd))
app.command("models")(_command(models.models_cmd))
app.command("serve")(_command(serving.serve_cmd))
app.command("refresh")(_command(serving.refresh_cmd))
app.command("doctor")(_command(doctor.doctor_cmd))


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.strip().splitlines()) or "(no message)"


_UsageError = typer.BadParameter.__mro__[1]  # click's UsageError (typer vendors click and exports only subclasses)


def main() -> None:
    """Entry point: user errors print one line to stderr and exit with code 2; Ctrl-C prints what was kept
    and exits with code 130. ``--debug`` or ``MOVIEREC_DEBUG=1`` re-raise the original exception instead.

    Only errors known to be caused by the input are shortened (:class:`MovieRecError` and its subclasses,
    raised where the input is read, and a missing file); anything else is a bug and keeps its traceback.
    """
    _State.debug = False
    try:
        _run_app()
    finally:
        release_locks()  # the kernel would at exit; a command run in-process must not keep them


def _run_app() -> None:
    try:
        app(standalone_mode=False)  # usage errors come back here, to be told in one line like the others
    except _UsageError as e:
        if _debug_requested():
            raise
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        print(f"error: {_one_line(e.format_message())}{hint}", file=sys.stderr)
        sys.exit(2)
    except MovieRecError as e:
        if _debug_requested():
            raise
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except FileNotFoundError as e:
        if _debug_requested():
            raise
        print(f"error: {e.filename or e}: file not found", file=sys.stderr)
        sys.exit(2)
    except (_Interrupted, KeyboardInterrupt) as e:
        if _debug_requested():
            raise (e.__cause__ if isinstance(e, _Interrupted) and e.__cause__ is not None else e) from None
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for every process
            print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
