"""User-facing errors: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class MovieRecError(Exception):
    """Base class of errors caused by the user's input (bad file, unknown name, unknown id)."""


class DataError(MovieRecError):
    """A data file is missing, malformed or inconsistent. The message names the file and line."""

    def __init__(self, message: str, path: object | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class UnknownDatasetError(MovieRecError):
    """A dataset name that is neither a known release, an imported name nor an existing folder."""
