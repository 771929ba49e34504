"""Model bundles: a folder that loads without running code (no pickle, no torch.load).

    config.json          format, version, model name, hyper-parameters, sizes, dataset fingerprint
    weights.safetensors  the model's learned arrays plus its training-interaction matrix
    ids.parquet          raw ids: kind ("user" | "movie"), index, raw_id, title, genres, and label (each id's
                         original string id) for data imported with string ids
    metrics.json         evaluation results, when there are any
    train_log.jsonl      one json object per epoch, for models that train in epochs

A bundle is written into a temporary folder and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from movierec import __version__
from movierec.data.dataset import Catalog, IdMap
from movierec.errors import DataError, MovieRecError
from movierec.fsutil import atomic_write_dir, atomic_write_text, read_json

FORMAT = "movierec-bundle"
FORMAT_VERSION = 1


@dataclass
class Bundle:
    """A loaded bundle: the model, its raw-id maps and the titles/genres of its movies."""

    path: Path
    model: Any  # movierec.models.base.Recommender
    config: dict
    users: IdMap
    items: IdMap
    movies: pd.DataFrame  # index (int), raw_id, title, genres for every item index

    def titles(self, item_index: np.ndarray) -> list[str]:
        return self.movies["title"].to_numpy()[np.asarray(item_index)].tolist()

    @property
    def has_labels(self) -> bool:
        """Whether the users carry original (string) ids of their own (data imported with string ids)."""
        return self.users.labels is not None

    def user_label(self, index: int) -> str:
        """The original id of user index ``index`` (the raw id as text for a bundle without labels)."""
        return self.users.label(int(index))

    def genre_features(self) -> np.ndarray | None:
        """Genre multi-hot float32 [n_items, n_genres] in item-index order from the bundle's movie table (intra-
        list diversity), or None when its movies have no genres."""
        genres = self.movies["genres"].fillna("").astype(str)
        movies = pd.DataFrame({"movieId": self.items.ids, "genres": [g.split("|") if g else [] for g in genres]})
        feats, names = Catalog(movies=movies).genre_matrix(self.items.ids)
        return feats if names else None

    def user_index_of(self, label_or_id: str | int) -> int:
        """Index of a user by original id (the label where the bundle has labels, else the raw integer id);
        UnknownIdError (one line: "unknown user id: X") when there is none."""
        return self.users.index_of(label_or_id)


def _ids_table(users: IdMap, items: IdMap, catalog: Catalog | None) -> pa.Table:
    titles = np.array([f"movie {i}" for i in items.ids], dtype=object)
    genres = np.full(len(items), "", dtype=object)
    if catalog is not None and len(items):
        movies = catalog.movies.drop_duplicates("movieId").set_index("movieId")
        known = items.ids[np.isin(items.ids, movies.index.to_numpy())]
        rows = movies.loc[known]
        pos = items.index(known)
        years = rows["year"].to_numpy(dtype=np.float64)
        names = rows["title"].astype(str).to_numpy()
        titles[pos] = [f"{t} ({int(y)})" if np.isfinite(y) else t for t, y in zip(names, years, strict=True)]
        genres[pos] = ["|".join(g) for g in rows["genres"]]
    n_u, n_i = len(users), len(items)
    table = {
        "kind": ["user"] * n_u + ["movie"] * n_i,
        "index": np.concatenate([np.arange(n_u), np.arange(n_i)]).astype(np.int32),
        "raw_id": np.concatenate([users.ids, items.ids]).astype(np.int64),
        "title": pa.array([None] * n_u + titles.tolist(), pa.string()),
        "genres": pa.array([None] * n_u + genres.tolist(), pa.string()),
    }
    if users.labels is not None or items.labels is not None:
        labels = [str(v) for v in users.label_array().tolist()] + [str(v) for v in items.label_array().tolist()]
        table["label"] = pa.array(labels, pa.string())
    return pa.table(table)


def save_bundle(
    path: str | Path,
    model: Any,
    users: IdMap | None = None,
    items: IdMap | None = None,
    catalog: Catalog | None = None,
    dataset: dict | None = None,
    metrics: dict | None = None,
    train_log: list[dict] | None = None,
    extra: Any = None,
    choices: dict | None = None,
) -> Path:
    """Write ``model`` as a bundle folder at ``path`` (atomically). ``extra(tmp_dir)`` may add files; ``choices``:
    the settings that make the validation choices of the run again (``Recommender.chosen_settings``), read by
    ``movierec train --final --like``."""
    writer = bundle_writer(model, users, items, catalog, dataset, metrics, train_log, choices)

    def write(tmp: Path) -> None:
        writer(tmp)
        if extra is not None:
            extra(tmp)

    return atomic_write_dir(path, write)


def bundle_writer(model: Any, users: IdMap | None = None, items: IdMap | None = None, catalog: Catalog | None = None,
                  dataset: dict | None = None, metrics: dict | None = None, train_log: list[dict] | None = None,
                  choices: dict | None = None) -> Any:
    """A function that writes the bundle's files into an existing folder (a folder being written atomically by
    the caller, see :func:`save_bundle`); the arrays are taken now, so the model may change afterwards."""
    users = users or IdMap(np.arange(model.n_users, dtype=np.int64), "user")
    items = items or IdMap(np.arange(model.n_items, dtype=np.int64), "movie")
    if (len(users), len(items)) != (model.n_users, model.n_items):
        raise ValueError("id maps do not match the model's user and item counts")
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "movierec_version": __version__,
        "model": model.name, "config": model.config_dict(),
        "n_users": int(model.n_users), "n_items": int(model.n_items), "dataset": dataset or {},
    }
    if choices is not None:
        config["choices"] = choices
    state = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}

    def write(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2, default=_json_value))
        save_file(state, str(folder / "weights.safetensors"))
        pq.write_table(_ids_table(users, items, catalog), folder / "ids.parquet")
        if metrics is not None:
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if train_log:
            (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_log))

    return write


def _json_value(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def load_bundle(path: str | Path, engine: str = "exact") -> Bundle:
    """Load a bundle folder. Raises DataError naming the file when it is missing or not a bundle.

    engine: "exact" gives the model class that was saved; "fast" scores GMF/MLP/NeuMF bundles with the
    numpy engine (:mod:`movierec.models.ncf_numpy`, no torch import) and is exact for every other model.
    """
    from movierec.models import get_model_class

    path = Path(path)
    cfg_path = path / "config.json"
    if not path.exists():
        raise DataError("not found", path)
    if not path.is_dir():
        raise DataError("not a model bundle (a file, not a folder)", path)
    if not cfg_path.exists():
        raise DataError("not a model bundle (config.json not found)", path)
    config = read_json(cfg_path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise DataError(f"not a movierec bundle (format {found!r})", cfg_path)
    version = config.get("format_version", 0)
    if not isinstance(version, int):
        raise DataError(f"format_version {version!r} is not an integer", cfg_path)
    if version > FORMAT_VERSION:
        raise DataError(f"bundle format {config['format_version']} is newer than this movierec reads", cfg_path)
    name, settings = config.get("model"), config.get("config", {})
    if not isinstance(name, str):
        raise DataError(f"model {name!r} is not a model name", cfg_path)
    if not isinstance(settings, dict):
        raise DataError("config is not a table of settings", cfg_path)
    from movierec.models.ncf_numpy import KINDS, NumpyNCF

    try:
        if engine == "fast" and name in KINDS:
            model = NumpyNCF(name, settings)
        else:
            cls = get_model_class(name)
            names = set(cls.config_class.names())  # a setting an older version had is left out
            model = cls(cls.config_class.from_flat({k: v for k, v in settings.items() if k in names}))
    except MovieRecError as e:
        raise DataError(str(e), cfg_path) from e
    except (TypeError, ValueError) as e:
        raise DataError(f"settings of {name} do not fit it ({e})", cfg_path) from e
    weights_path = path / "weights.safetensors"
    if not weights_path.is_file():
        raise DataError("not found" if not weights_path.exists() else "not a file", weights_path)
    try:
        state = load_file(str(weights_path))
    except (OSError, SafetensorError) as e:
        raise DataError(f"not a readable safetensors file ({e})", weights_path) from e
    try:
        model.load_state_dict(state)
        if model.n_users and model.n_items:  # one score: weights of another model fail here, not later
            model.score(np.zeros(1, np.int64), np.zeros((1, 1), np.int64))
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        why = " ".join(str(e).split())
        why = why if len(why) <= 160 else why[:157] + "..."
        raise DataError(f"does not hold the weights of a {name} model, as config.json says ({type(e).__name__}: "
                        f"{why})", weights_path) from e
    users, items, movies = _read_ids(path / "ids.parquet")
    sizes = (len(users), len(items))
    expected = (config.get("n_users"), config.get("n_items"))
    if None not in expected and sizes != expected:
        raise DataError(f"{sizes[0]} users and {sizes[1]} movies, but config.json says {expected[0]} and "
                        f"{expected[1]}", path / "ids.parquet")
    seen = getattr(model, "seen_", None)
    if seen is not None and tuple(seen.shape) != sizes:
        raise DataError(f"weights for {seen.shape[0]} users and {seen.shape[1]} movies, but ids.parquet has "
                        f"{sizes[0]} and {sizes[1]}", weights_path)
    return Bundle(path, model, config, users, items, movies)


_ID_COLUMNS = ("kind", "index", "raw_id", "title", "genres")


def _read_ids(ids_path: Path) -> tuple[IdMap, IdMap, pd.DataFrame]:
    """Users, movies and the movie table of a bundle's ids.parquet; DataError naming it when it is damaged."""
    if not ids_path.is_file():
        raise DataError("not found" if not ids_path.exists() else "not a file", ids_path)
    try:
        ids = pq.read_table(ids_path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"not a readable Parquet file ({str(e).splitlines()[0] if str(e) else e})", ids_path) from e
    missing = [c for c in _ID_COLUMNS if c not in ids.columns]
    if missing:
        raise DataError(f"not a bundle's id table (no column {', '.join(missing)})", ids_path)
    u = ids[ids["kind"] == "user"].sort_values("index")
    m = ids[ids["kind"] == "movie"].sort_values("index").reset_index(drop=True)
    for kind, part in (("user", u), ("movie", m)):
        if not np.array_equal(part["index"].to_numpy(), np.arange(len(part))):
            raise DataError(f"{kind} indices are not 0..{len(part) - 1}", ids_path)
        raw = part["raw_id"].to_numpy()
        if raw.dtype.kind not in "iu" or (len(raw) > 1 and (np.diff(raw) <= 0).any()):
            raise DataError(f"{kind} raw ids are not distinct integers ascending with the index", ids_path)
    labels = {"user": None, "movie": None}
    if "label" in ids.columns:  # optional: bundles of data imported with string ids
        for kind, part in (("user", u), ("movie", m)):
            values = part["label"]
            if values.isna().any():
                raise DataError(f"{kind} labels are missing for some ids", ids_path)
            labels[kind] = values.astype(str).to_numpy(dtype=object)
    return (IdMap(u["raw_id"].to_numpy(np.int64), "user", labels["user"]),
            IdMap(m["raw_id"].to_numpy(np.int64), "movie", labels["movie"]), m)


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Replace ``metrics.json`` of a bundle atomically."""
    atomic_write_text(Path(path) / "metrics.json", json.dumps(metrics, indent=2))
