"""Recommendations for many known users at once: ``movierec recommend RUN --users all|FILE --out recs.parquet``.

Users are scored in batches of about 4M scores (users x movies), each batch masked (training and held-out
movies) and cut to its top k, so memory stays bounded whatever the number of users. The table has one row
per (user, rank): user, rank, movie, score (raw ids; the user's own string id where the data was imported with
string ids, with an ``item`` column of the items' own ids); a user with fewer than k movies left gets fewer rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec.errors import DataError, MovieRecError
from movierec.serving.served import ServedModel


def read_user_values(path: str | Path, labels: bool = False) -> pd.Series:
    """The user ids of a file as text, indexed by their 1-based line: one id per line, or a CSV whose ``userId``
    / ``user`` column (else its first column) holds them. A first line that is no id (not an integer; with
    ``labels``, only a line naming userId / user / user_id) is taken as a header."""
    path = Path(path)
    if not path.is_file():
        raise DataError("not found" if not path.exists() else "not a file", path)
    try:
        if not path.read_text().strip():
            raise DataError("holds no user ids", path)
        frame = pd.read_csv(path, dtype=str, header=None, skip_blank_lines=True, comment="#",
                            keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot be read as a list of user ids ({e})", path) from None
    if frame.empty:
        raise DataError("holds no user ids", path)
    first = [str(v).strip() for v in frame.iloc[0].tolist()]
    header = next((i for i, v in enumerate(first) if v.lower() in ("userid", "user", "user_id")), None)
    column = frame.iloc[1:, header] if header is not None else frame.iloc[:, 0]
    if header is None and not labels and not first[0].lstrip("-").isdigit():  # a header naming something else
        column = frame.iloc[1:, 0]
    values = column.astype(str).str.strip()
    values.index = values.index + 1
    if values.empty:
        raise DataError("holds no user ids", path)
    return values


def _int_ids(values: pd.Series, path: Path) -> np.ndarray:
    ok = values.str.fullmatch(r"-?\d{1,18}")
    if not ok.all():
        bad = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DataError(f"{values.iloc[bad]!r} is not a user id", path, int(values.index[bad]))
    return values.astype(np.int64).to_numpy()


def user_ids_of_values(served: ServedModel, values: pd.Series, path: str | Path) -> np.ndarray:
    """Raw (integer) user ids of a file's values (:func:`read_user_values`): matched against the bundle's own ids
    where it has them (data imported with string ids; MovieRecError naming the first unknown one and its line),
    else read as integer ids (DataError naming the file and line of one that is not)."""
    users = served.bundle.users
    first = str(values.iloc[0])
    if users.labels is None:
        if values.index[0] == 1 and not first.lstrip("-").isdigit():  # a header naming something else
            values = values.iloc[1:]
            if values.empty:
                raise DataError("holds no user ids", Path(path))
        return _int_ids(values, Path(path))
    if values.index[0] == 1 and len(values) > 1 and users.indices_of_labels(np.array([first]))[0] < 0:
        values = values.iloc[1:]  # a header naming something else
    idx = users.indices_of_labels(values.to_numpy(dtype=str))
    if (idx < 0).any():
        bad = int(np.flatnonzero(idx < 0)[0])
        raise MovieRecError(f"unknown user id {values.iloc[bad]} (line {int(values.index[bad])} of {path})")
    return users.ids[idx]


def recommend_users_table(served: ServedModel, raw_users: np.ndarray | None, k: int) -> pd.DataFrame:
    """user, rank, movie, score for ``raw_users`` (None: every known user) in the given order. user and movie are
    the ids people know: integers (int64), or the own string ids (string dtype) of data imported with them."""
    if raw_users is None:
        idx = np.arange(served.model.n_users, dtype=np.int64)
    else:
        known = served.bundle.users.contains(raw_users)
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            raise MovieRecError(f"unknown user id {int(raw_users[first])} (entry {first + 1} of the user list)")
        idx = served.bundle.users.index(raw_users).astype(np.int64)
    recs = served.recommend_users(idx, k, reasons=False)
    own = served.own_item_ids  # own data with string item ids: those, never the import's integer codes
    n, width = recs.items.shape
    keep = recs.items >= 0
    rows = np.repeat(np.arange(n), width).reshape(n, width)[keep]
    table = pd.DataFrame({
        "user": (pd.array(served.bundle.users.labels[idx][rows].astype(str), dtype="string")
                 if served.bundle.users.labels is not None else served.bundle.users.raw(idx)[rows].astype(np.int64)),
        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), (n, 1))[keep],
        "movie": (pd.array(own[recs.items[keep]].astype(str), dtype="string") if own is not None
                  else served.bundle.items.raw(recs.items[keep]).astype(np.int64)),
        "score": recs.scores[keep].astype(np.float32),
    })
    return table
