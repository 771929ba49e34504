"""Model bundles: a folder that loads without running code (no pickle, no torch.load).

    config.json          format, version, model name, hyper-parameters, sizes, dataset fingerprint
    weights.safetensors  the model's learned arrays plus its training-interaction matrix
    ids.parquet          raw ids: kind ("user" | "movie"), index, raw_id, title, genres
    metrics.json         evaluation results, when there are any
    train_log.jsonl      one json object per epoch, for models that train in epochs

A bundle is written into a temporary folder and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.numpy import load_file, save_file

from movierec import __version__
from movierec.data.dataset import Catalog, IdMap
from movierec.errors import DataError
from movierec.fsutil import atomic_write_dir, atomic_write_text

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
    return pa.table({
        "kind": ["user"] * n_u + ["movie"] * n_i,
        "index": np.concatenate([np.arange(n_u), np.arange(n_i)]).astype(np.int32),
        "raw_id": np.concatenate([users.ids, items.ids]).astype(np.int64),
        "title": pa.array([None] * n_u + titles.tolist(), pa.string()),
        "genres": pa.array([None] * n_u + genres.tolist(), pa.string()),
    })


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
) -> Path:
    """Write ``model`` as a bundle folder at ``path`` (atomically). ``extra(tmp_dir)`` may add files."""
    users = users or IdMap(np.arange(model.n_users, dtype=np.int64), "user")
    items = items or IdMap(np.arange(model.n_items, dtype=np.int64), "movie")
    if (len(users), len(items)) != (model.n_users, model.n_items):
        raise ValueError("id maps do not match the model's user and item counts")
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "movierec_version": __version__,
        "model": model.name, "config": dataclasses.asdict(model.config),
        "n_users": int(model.n_users), "n_items": int(model.n_items), "dataset": dataset or {},
    }
    state = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}

    def write(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_file(state, str(tmp / "weights.safetensors"))
        pq.write_table(_ids_table(users, items, catalog), tmp / "ids.parquet")
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if train_log:
            (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_log))
        if extra is not None:
            extra(tmp)

    return atomic_write_dir(path, write)


def load_bundle(path: str | Path, engine: str = "exact") -> Bundle:
    """Load a bundle folder. Raises DataError naming the file when it is missing or not a bundle.

    engine: "exact" gives the model class that was saved; "fast" scores GMF/MLP/NeuMF bundles with the
    numpy engine (:mod:`movierec.models.ncf_numpy`, no torch import) and is exact for every other model.
    """
    from movierec.models import get_model_class

    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise DataError("not a model bundle (config.json not found)", path)
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", cfg_path, e.lineno) from e
    if config.get("format") != FORMAT:
        raise DataError(f"not a movierec bundle (format {config.get('format')!r})", cfg_path)
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"bundle format {config['format_version']} is newer than this movierec reads", cfg_path)
    from movierec.models.ncf_numpy import KINDS, NumpyNCF

    if engine == "fast" and config["model"] in KINDS:
        model = NumpyNCF(config["model"], config.get("config", {}))
    else:
        cls = get_model_class(config["model"])
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        model = cls(cls.config_class(**{k: v for k, v in config.get("config", {}).items() if k in fields}))
    try:
        model.load_state_dict(load_file(str(path / "weights.safetensors")))
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"cannot read weights ({e})", path / "weights.safetensors") from e
    ids = pq.read_table(path / "ids.parquet").to_pandas()
    u = ids[ids["kind"] == "user"].sort_values("index")
    m = ids[ids["kind"] == "movie"].sort_values("index").reset_index(drop=True)
    return Bundle(path, model, config, IdMap(u["raw_id"].to_numpy(np.int64), "user"),
                  IdMap(m["raw_id"].to_numpy(np.int64), "movie"), m)


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Replace ``metrics.json`` of a bundle atomically."""
    atomic_write_text(Path(path) / "metrics.json", json.dumps(metrics, indent=2))
