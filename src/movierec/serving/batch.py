"""Recommendations for many known users at once: ``movierec recommend RUN --users all|FILE --out recs.parquet``.

Users are scored in batches of about 4M scores (users x movies), each batch masked (training and held-out
movies) and cut to its top k, so memory stays bounded whatever the number of users. The table has one row
per (user, rank): user, rank, movie, score (raw ids); a user with fewer than k movies left gets fewer rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec.errors import DataError, MovieRecError
from movierec.serving.served import ServedModel


def read_user_file(path: str | Path) -> np.ndarray:
    """Raw user ids from a file: one id per line, or a CSV whose ``userId`` / ``user`` column (else its first
    column) holds them. DataError naming the file and line of the first value that is not an integer id."""
    path = Path(path)
    if not path.is_file():
        raise DataError("not found" if not path.exists() else "not a file", path)
    try:
        if not path.read_text().strip():
            raise DataError("holds no user ids", path)
        frame = pd.read_csv(path, dtype=str, header=None, skip_blank_lines=True, comment="#")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot be read as a list of user ids ({e})", path) from None
    if frame.empty:
        raise DataError("holds no user ids", path)
    first = [str(v).strip() for v in frame.iloc[0].tolist()]
    header = next((i for i, v in enumerate(first) if v.lower() in ("userid", "user", "user_id")), None)
    column = frame.iloc[1:, header] if header is not None else frame.iloc[:, 0]
    if header is None and not first[0].lstrip("-").isdigit():  # a header naming something else
        column = frame.iloc[1:, 0]
    values = column.astype(str).str.strip()
    ok = values.str.fullmatch(r"-?\d{1,18}")
    if not ok.all():
        bad = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DataError(f"{values.iloc[bad]!r} is not a user id", path, int(values.index[bad]) + 1)
    if values.empty:
        raise DataError("holds no user ids", path)
    return values.astype(np.int64).to_numpy()


def recommend_users_table(served: ServedModel, raw_users: np.ndarray | None, k: int) -> pd.DataFrame:
    """user, rank, movie, score for ``raw_users`` (None: every known user) in the given order."""
    if raw_users is None:
        idx = np.arange(served.model.n_users, dtype=np.int64)
    else:
        known = served.bundle.users.contains(raw_users)
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            raise MovieRecError(f"unknown user id {int(raw_users[first])} (entry {first + 1} of the user list)")
        idx = served.bundle.users.index(raw_users).astype(np.int64)
    recs = served.recommend_users(idx, k, reasons=False)
    n, width = recs.items.shape
    keep = recs.items >= 0
    rows = np.repeat(np.arange(n), width).reshape(n, width)[keep]
    return pd.DataFrame({
        "user": served.bundle.users.raw(idx)[rows].astype(np.int64),
        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), (n, 1))[keep],
        "movie": served.bundle.items.raw(recs.items[keep]).astype(np.int64),
        "score": recs.scores[keep].astype(np.float32),
    })
