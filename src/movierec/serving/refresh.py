"""``movierec refresh``: a served run trained again, as a final run, on its data plus every stored rating.

The run's model is fitted with the run's settings and validation choices (as ``train --final --like RUN``) on
every interaction of the run's data set and every rating of the people stored in ``--db``. A person becomes a
user: user id ``offset + person id`` where ``offset`` is the data set's largest user id (MovieLens' user ids
stay as they are), and ``people.json`` in the new run maps each person to their user id and records a digest of
the stored ratings the model learnt (:func:`history_digest`). A stored rating of a movie the data set does not
have is left out (and counted). The new run is a run folder like any other: serve it, or swap it in with
``POST /v1/admin/reload``. A server that serves it answers a person whose stored ratings still match that digest
as the trained user (:meth:`movierec.serving.Service.for_stored`), and folds in anyone who rated since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset, IdMap, Interactions
from movierec.errors import MovieRecError

PEOPLE_FILE = "people.json"


@dataclass(frozen=True)
class Refreshed:
    """What a refresh added: people (users now), their ratings used, ratings of movies the data lacks."""

    people: int
    ratings: int
    unknown_movies: int
    offset: int


def history_digest(ratings: Iterable[tuple[int | str, float, int]]) -> str:
    """A short digest of one person's stored ratings [(movie id, rating, rated_ns)], oldest first: equal exactly
    when the same movies were rated the same at the same times (any later write changes it)."""
    text = json.dumps([[m, float(v), int(t)] for m, v, t in ratings], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def people_record(stored: list[tuple[int, int | str, float, int]], offset: int, users: np.ndarray) -> dict:
    """What ``people.json`` holds: ``offset``, ``users`` {person id: user id} of the people who became users
    (``users``: the merged data's raw user ids) and ``histories`` {person id: :func:`history_digest`}."""
    histories: dict[int, list] = {}
    for person, movie, rating, rated_ns in stored:  # by person, oldest first (PeopleStore.all_ratings)
        histories.setdefault(person, []).append((movie, rating, rated_ns))
    people = {int(u) - offset: int(u) for u in users[users > offset]}
    return {"offset": offset, "users": {str(p): u for p, u in people.items()},
            "histories": {str(p): history_digest(histories[p]) for p in people}}


def with_people(dataset: Dataset, stored: list[tuple[int, int | str, float, int]]) -> tuple[Dataset, Refreshed]:
    """``dataset`` with the stored ratings [(person id, movie id, rating, rated_ns)] as new users' ratings."""
    items = dataset.items
    if not stored:
        return dataset, Refreshed(0, 0, 0, int(dataset.users.ids.max()) if len(dataset.users) else 0)
    person_ids, movie_ids, ratings, rated_ns = zip(*stored, strict=True)  # one pass over the stored rows
    person = np.array(person_ids, dtype=np.int64)
    if items.labels is not None:  # own string ids: a movie is named by its label
        item = pd.Index(items.labels.astype(str)).get_indexer(pd.Index([str(m) for m in movie_ids])).astype(np.int64)
    else:
        raw = np.array([m if isinstance(m, int) else -1 for m in movie_ids], dtype=np.int64)
        pos = np.searchsorted(items.ids, raw).clip(0, max(len(items) - 1, 0))
        item = np.where(items.ids[pos] == raw, pos, -1)
    known = item >= 0
    offset = int(dataset.users.ids.max()) if len(dataset.users) else 0
    inter = dataset.interactions
    old_users = dataset.users.ids[inter.user]
    raw_users = np.concatenate([old_users, offset + person[known]])
    users, user_index = IdMap.from_raw(raw_users, dataset.users.kind)
    if dataset.users.labels is not None:  # own user ids: a person's label says who they were
        labels = dict(zip(dataset.users.ids.tolist(), dataset.users.labels.tolist(), strict=True))
        users = IdMap(users.ids, users.kind, np.array([labels.get(int(u), f"person-{int(u) - offset}")
                                                      for u in users.ids], dtype=object))
    merged = Interactions(
        user_index, np.concatenate([inter.item, item[known]]),
        np.concatenate([inter.rating, np.array(ratings, dtype=np.float32)[known]]),
        np.concatenate([inter.timestamp, (np.array(rated_ns, dtype=np.int64) // 1_000_000_000)[known]]),
        len(users), len(items))
    catalog = dataset.catalog
    if catalog is not None:
        import copy

        catalog = copy.copy(catalog)
        catalog.user_ids = users.ids
    out = Dataset(dataset.name, merged, users, items, catalog, None, dataset.source)
    return out, Refreshed(len(np.unique(person[known])), int(known.sum()), int((~known).sum()), offset)


def run_dataset(run: Path) -> tuple[str, dict[str, Any]]:
    """The model name and the recorded data set (name, source) of a run folder or bundle."""
    from movierec.fsutil import read_json

    bundle = run if (run / "config.json").is_file() else run / "model"
    if not (bundle / "config.json").is_file():
        raise MovieRecError(f"{run}: not a run folder or model bundle (no config.json)")
    config = read_json(bundle / "config.json")
    dataset = config.get("dataset") if isinstance(config, dict) else None
    if not isinstance(dataset, dict) or not dataset.get("name"):
        raise MovieRecError(f"{run}: the run does not record its data set; refresh needs it")
    return str(config["model"]), dataset
