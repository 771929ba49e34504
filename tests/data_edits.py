"""Small data sets on disk and one-value edits of their csv files (for the reuse and fingerprint tests).

Not in tests/data/ so that it can be shared with the study's and the experiments' tests."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from movierec.data.synthetic import write_synthetic


def write_small(folder: Path, seed: int = 0) -> Path:
    """A small synthetic release (ratings.csv, movies.csv, tags.csv) in ml-20m's format: fast to study."""
    return write_synthetic(folder, n_users=150, n_items=300, n_ratings=6_000, seed=seed, n_tags=120)


def edit_cell(path: Path, row: int, column: str, value: str) -> str:
    """Set ``column`` of data row ``row`` (0-based, after the header) of a csv file to ``value``; return the old
    value. Every count stays the same. The file's modification time moves on by a second; the parsed-table cache
    would see the edit anyway (a small file is keyed by its content, a large one by size, mtime and ctime)."""
    st = path.stat()
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index(column)
    old = rows[row + 1][col]
    assert old != value, "an edit must change the value"
    rows[row + 1][col] = value
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return old


def other_rating(old: str) -> str:
    """A valid half-star rating that differs from ``old``."""
    return "1.0" if float(old) != 1.0 else "4.5"
