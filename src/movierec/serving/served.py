"""A model that answers requests: a bundle loaded for serving, and what a service needs beside it.

:meth:`ServedModel.open` takes what a person points ``movierec serve`` or ``recommend`` at:

- a run folder (``movierec train``: a bundle plus its ``split/``),
- a bare bundle folder (e.g. a study's ``runs/<model>/model``),
- a study folder (``movierec study``): its final models (fitted on every interaction: the best run by NDCG@10
  under full ranking first, then those of ``[study] serve``); a study written by an older version has none, and its
  best run's saved model is served instead.

It keeps the bundle loaded with the exact engine (scoring histories: new people, sessions) and, for
GMF / MLP / NeuMF on a machine without a GPU, the numpy engine for known users (no torch on that path; on a
GPU the torch model scores them there). A known user is never
recommended a movie they are known to have rated: the training ratings in the bundle and the held-out
validation, test and fold-in movies of the run's split (``split/`` beside the bundle, or the study's).
Reasons ("because you rated Heat (1995)") come from the model's own item similarities
(:meth:`~movierec.models.base.Recommender.item_similarity`): for each recommended movie, the rated movie
the person liked (rated at or above their mean rating, or within a point of the top of the scale) that the
model finds most alike. Nothing here
writes to the folders it reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.artifacts import Bundle, load_bundle
from movierec.data.dataset import Interactions
from movierec.data.history import History
from movierec.data.splits import Split
from movierec.errors import DataError, MovieRecError
from movierec.evaluation.columns import column
from movierec.fsutil import read_json
from movierec.models.base import Recommender, top_k_unseen
from movierec.models.ncf_numpy import KINDS, NumpyNCF
from movierec.serving.batching import Batcher

#: ratings accepted from a new person when the bundle does not record its data's scale (MovieLens' scale)
DEFAULT_RATING_SCALE = (0.5, 5.0)
#: scores held in memory per batch of known users (users x items)
_SCORES_PER_BATCH = 1 << 22
#: the longest list a known user is served; lists this long are cached per user (see ``cache_users``)
LIST_LENGTH = 100
BATCH_PEOPLE = 32  # new people a model answers in one batch at most (serving.batching)
_NOT_YET = -2  # a cached list's reason that has not been computed yet


@dataclass
class Recommendations:
    """Top-k lists. items: int64 [n, k] item indices (-1: no candidate left); scores: float32 [n, k];
    because: int64 [n, k] the item index of the rated movie behind each (-1: no reason)."""

    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray


@dataclass
class ServedModel:
    """One model a service or a command answers with (see the module docstring)."""

    label: str
    path: Path
    bundle: Bundle
    known: Recommender  # scores known users (numpy engine where there is one)
    exclude: sp.csr_matrix  # [n_users, n_items] movies never recommended to a known user
    train: Interactions | None  # the run's training ratings (for reasons), when its split is there
    study_dir: Path | None = None
    segments_folder: Path | None = None  # a `movierec segments --out` folder given to serve (else the study's)
    rating_scale: tuple[float, float] = DEFAULT_RATING_SCALE
    #: known users whose top-100 list (with reasons) is kept, least recently used dropped first; 0: none
    cache_users: int = 50_000
    #: stored people the model was trained on (``movierec refresh``): person id -> (raw user id, history digest)
    people: dict[int, tuple[int, str]] = field(default_factory=dict)
    _liked: sp.csr_matrix | None = field(default=None, repr=False)
    _titles: np.ndarray | None = field(default=None, repr=False)
    _test_metrics: dict | None = field(default=None, repr=False)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _batcher: Batcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._batcher = Batcher(self.recommend_histories, max_batch=BATCH_PEOPLE)

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, label: str | None = None) -> ServedModel:
        """Load a run folder, a bundle or a study folder (its best final model); DataError naming what is
        missing or damaged."""
        path = Path(path).expanduser()
        if not path.exists():
            raise DataError("not found", path)
        study_dir: Path | None = None
        if is_study(path):
            study_dir, path = path, study_bundles(path)[0]
        elif path.parent.parent.name in ("runs", "final") and is_study(path.parent.parent.parent):
            study_dir = path.parent.parent.parent
        bundle = load_bundle(path, engine="exact")
        _serving_fold_in(bundle.model)
        known: Recommender = bundle.model
        if bundle.config.get("model") in KINDS and not _on_gpu(bundle.model):
            known = NumpyNCF(bundle.config["model"], bundle.config.get("config", {}))
            known.load_state_dict(bundle.model.state_dict())  # the weights already read, not the file again
        split = _split_beside(path, study_dir, bundle)
        exclude = bundle.model.seen_.tocsr(copy=True)
        if split is not None:
            exclude = ((exclude + held_out_matrix(split)) > 0).astype(np.float32).tocsr()
        scale = bundle.config.get("dataset", {}).get("rating_scale")
        if not (isinstance(scale, list) and len(scale) == 2):
            scale = DEFAULT_RATING_SCALE
        name = label or (study_dir.name + "/" + bundle.config["model"] if study_dir is not None else path.name)
        return cls(name, path, bundle, known, exclude, split.train if split is not None else None, study_dir,
                   rating_scale=(float(scale[0]), float(scale[1])), people=refreshed_people(path))

    @property
    def model(self) -> Recommender:
        return self.bundle.model

    @property
    def titles(self) -> np.ndarray:
        """object [n_items] each item's title with its year (built once)."""
        if self._titles is None:
            self._titles = self.bundle.movies["title"].to_numpy(dtype=object)
        return self._titles

    @property
    def model_name(self) -> str:
        return str(self.bundle.config["model"])

    @property
    def own_item_ids(self) -> np.ndarray | None:
        """object [n_items] each movie's own (string) id for data imported with string item ids; None where the
        items' ids are integers (MovieLens, or own data whose integer item ids were kept)."""
        return own_item_ids(self.bundle)

    # -- known users --------------------------------------------------------------------------------
    def user_index(self, raw_user: int) -> int:
        """Index of a raw user id; UnknownIdError (a MovieRecError) when the model does not know the user."""
        return int(self.bundle.users.index(raw_user)[0])

    def recommend_users(self, users: np.ndarray, k: int, reasons: bool = True) -> Recommendations:
        """Top-k for known users (indices [n]), never a movie in ``exclude``; batched over users."""
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n_items = self.model.n_items
        step = max(1, _SCORES_PER_BATCH // max(n_items, 1))
        items = np.empty((len(users), min(k, n_items)), dtype=np.int64)
        scores = np.empty(items.shape, dtype=np.float32)
        for s in range(0, len(users), step):
            u = users[s: s + step]
            items[s: s + step], scores[s: s + step] = top_k_unseen(self.known.score(u), self.exclude[u], k)
        because = self._because(self.liked()[users], items) if reasons else np.full(items.shape, -1, np.int64)
        return Recommendations(items, scores, because)

    def recommend_user(self, user: int, k: int) -> Recommendations:
        """Top-k (k <= 100) for one known user index, from the per-user cache of 100-long lists when enabled.
        The lists depend only on the loaded model, so a cached list is the list that would be computed; the
        reasons of a cached list are computed for the first k movies asked for and kept (each movie's reason
        depends on that movie alone)."""
        if self.cache_users <= 0 or k > LIST_LENGTH:
            return self.recommend_users(np.array([user]), k)
        with self._cache_lock:
            hit = self._cache.get(user)
            if hit is not None:
                self._cache.move_to_end(user)
        if hit is None:
            hit = self.recommend_users(np.array([user]), LIST_LENGTH, reasons=False)
            hit.because[:] = _NOT_YET
            with self._cache_lock:
                self._cache[user] = hit
                while len(self._cache) > self.cache_users:
                    self._cache.popitem(last=False)
        because = hit.because[:, :k]
        if (because == _NOT_YET).any():
            because = self._because(self.liked()[[user]], hit.items[:, :k])
            hit.because[:, :k] = because  # the same values whichever thread writes them
        return Recommendations(hit.items[:, :k], hit.scores[:, :k], because)

    def liked(self) -> sp.csr_matrix:
        """[n_users, n_items] each known user's liked training movies: rated at or above their own mean
        (every training movie where ratings are not known)."""
        if self._liked is None:
            if self.train is None:
                self._liked = self.model.seen_.tocsr()
            else:
                self._liked = _liked_matrix(self.train.user, self.train.item, self.train.rating,
                                            self.model.n_users, self.model.n_items, self.rating_scale[1] - 1)
        return self._liked

    # -- new people and sessions -------------------------------------------------------------------
    def recommend_history(self, items: np.ndarray, ratings: np.ndarray, k: int) -> Recommendations:
        """Top-k for one person given movie indices ``items`` [m] in the order they were rated (a session's
        order for sequential models) and their ``ratings`` [m]; never one of those movies. Concurrent calls
        are answered in batches (:mod:`movierec.serving.batching`); the answer is the person's own either way."""
        return self._batcher((np.asarray(items, dtype=np.int64), np.asarray(ratings, dtype=np.float32), k))

    def recommend_histories(self, people: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> list[Recommendations]:
        """:meth:`recommend_history` of several people at once, [(items [m], ratings [m], k)]: one scoring pass
        of their histories, then each person's own top k."""
        sizes = [len(items) for items, _, _ in people]
        row = np.repeat(np.arange(len(people)), sizes)
        items = np.concatenate([p[0] for p in people]).astype(np.int64)
        ratings = np.concatenate([p[1] for p in people]).astype(np.float32)
        order = np.concatenate([np.arange(n) for n in sizes])  # each person's own order of rating
        history = History(row, items, ratings, order, len(people))
        scores = np.array(self.model.score_history(history))  # a copy: the people's own movies are masked
        scores[row, items] = -np.inf
        liked = _liked_matrix(row, items, ratings, len(people), self.model.n_items, self.rating_scale[1] - 1)
        tops = [top_k_unseen(scores[j: j + 1], None, k) for j, (_, _, k) in enumerate(people)]
        width = max(top.shape[1] for top, _ in tops)
        padded = np.full((len(people), width), -1, dtype=np.int64)
        for j, (top, _) in enumerate(tops):
            padded[j, : top.shape[1]] = top[0]
        because = self._because(liked, padded)
        return [Recommendations(top, best, because[j: j + 1, : top.shape[1]])
                for j, (top, best) in enumerate(tops)]

    def check_ratings(self, ratings: np.ndarray) -> None:
        lo, hi = self.rating_scale
        bad = np.flatnonzero(~((ratings >= lo) & (ratings <= hi)))
        if len(bad):
            raise MovieRecError(f"rating {float(ratings[bad[0]]):g} is outside the scale {lo:g} to {hi:g}")

    # -- reasons and similar movies ----------------------------------------------------------------
    def _because(self, liked: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
        """For each recommended item of each row, the liked item the model finds most alike (-1: none)."""
        out = np.full(top.shape, -1, dtype=np.int64)
        for row in range(top.shape[0]):
            rated = liked.indices[liked.indptr[row]: liked.indptr[row + 1]]
            recs = top[row]
            ok = recs >= 0
            if not len(rated) or not ok.any():
                continue
            s = self.model.item_similarity(rated, recs[ok])  # [n_rated, n_recs]
            if s is None:
                return out
            best = np.argmax(s, axis=0)
            has = s[best, np.arange(s.shape[1])] > 0
            out[row, np.flatnonzero(ok)[has]] = rated[best[has]]
        return out

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k movies the model finds most like item index ``item`` (itself excluded): (items [<=k],
        scores); MovieRecError when the model has no notion of similar movies."""
        sim = self.model.item_similarity(np.array([item]))
        if sim is None:
            raise MovieRecError(f"{self.model_name} has no notion of similar movies (no item vectors or item "
                                "weights); ask by content instead")
        s = sim.copy()
        s[0, item] = -np.inf
        s[0, ~np.isfinite(s[0])] = -np.inf
        top, scores = top_k_unseen(s, None, k)
        keep = (top[0] >= 0) & (scores[0] > -np.inf)
        return top[0][keep], scores[0][keep]

    def test_metrics_at_10(self) -> dict | None:
        """The bundle's test metrics at the headline cut-off, {protocol: {metric@10: value}} (read once)."""
        if self._test_metrics is None:
            file = self.path / "metrics.json"
            test = read_json(file).get("test") if file.is_file() else None
            self._test_metrics = {p: {k: v for k, v in ms.items() if k.endswith("@10")} for p, ms in test.items()
                                  if isinstance(ms, dict)} if isinstance(test, dict) else {}
        return self._test_metrics or None

    # -- segments ------------------------------------------------------------------------------------
    def segments_dir(self) -> Path | None:
        """The segments folder given to serve, or that of the study this model comes from, when there is one."""
        if self.segments_folder is not None:
            return self.segments_folder
        if self.study_dir is not None and (self.study_dir / "segments" / "segments.parquet").is_file():
            return self.study_dir / "segments"
        return None


# ------------------------------------------------------------------------------------------------ helpers


def _on_gpu(model: Recommender) -> bool:
    """Whether the exact model was loaded onto a GPU (where it beats the numpy engine by far)."""
    import torch

    return any(p.is_cuda for p in model.net_.parameters()) if torch.cuda.is_available() else False


def _serving_fold_in(model: Recommender) -> None:
    """Each torch network of ``model`` (itself, or a hybrid's parts) folds new people in the way its class chose
    for serving (``SERVED_FOLD_IN``: NeuMF in closed form, :func:`movierec.models.fold_in.solve`)."""
    if hasattr(model, "SERVED_FOLD_IN"):
        model.fold_in_method = model.SERVED_FOLD_IN
    for part in model.parts():
        _serving_fold_in(part)


def refreshed_people(path: Path) -> dict[int, tuple[int, str]]:
    """person id -> (raw user id, history digest) from the ``people.json`` a refresh wrote in the run folder
    ``path`` (or beside the bundle ``path``); empty for any other run. DataError for a damaged file."""
    from movierec.serving.refresh import PEOPLE_FILE

    for folder in (path, path.parent) if path.name == "model" else (path,):
        file = folder / PEOPLE_FILE
        if file.is_file():
            record = read_json(file)
            try:
                histories = record.get("histories", {})
                return {int(p): (int(u), str(histories.get(p, ""))) for p, u in record["users"].items()}
            except (AttributeError, KeyError, TypeError, ValueError):
                raise DataError("not a people.json written by movierec refresh", file) from None
    return {}


def check_segments_folder(path: str | Path) -> Path:
    """A folder written by `movierec segments --out` (segments.parquet and profiles.csv), or DataError."""
    path = Path(path).expanduser()
    for name in ("segments.parquet", "profiles.csv"):
        if not (path / name).is_file():
            raise DataError(f"not a segments folder ({name} not found; `movierec segments --out` writes one)", path)
    return path


def check_servable(path: str | Path) -> None:
    """Refuse, with one line and before anything loads, a path that is not a run folder, bundle or study."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("not found", path)
    if not path.is_dir():
        raise DataError("not a run folder, model bundle or study folder (a file)", path)
    if not ((path / "config.json").is_file() or is_study(path)):
        raise DataError("not a run folder, model bundle or study folder (no config.json, no study.json)", path)


def is_study(path: Path) -> bool:
    return path.is_dir() and (path / "study.json").is_file() and (path / "runs").is_dir()


def study_bundles(study_dir: Path) -> list[Path]:
    """The bundles a study serves: its final models (``final/<slug>/model``, as study.json lists them: the best
    run first, then ``[study] serve``), or, for a study without finals (written by an older version), its best run's."""
    from movierec.runs import slug

    context = read_json(study_dir / "study.json") if (study_dir / "study.json").is_file() else {}
    finals = context.get("finals") if isinstance(context, dict) else None
    found = [study_dir / "final" / slug(str(f.get("name"))) / "model" for f in finals or [] if isinstance(f, dict)]
    found = [p for p in found if (p / "config.json").is_file()]
    return found or [best_study_bundle(study_dir)]


def best_study_bundle(study_dir: Path) -> Path:
    """The bundle of the study's best saved model by NDCG@10 under full ranking."""
    from movierec.runs import slug

    rows = read_json(study_dir / "results.json")
    if not isinstance(rows, list):
        raise DataError("not a study's results table (a list of rows)", study_dir / "results.json")
    metric = column("NDCG@10", "full")
    ranked = sorted((r for r in rows if isinstance(r, dict) and isinstance(r.get(metric), int | float)),
                    key=lambda r: -float(r[metric]))
    for row in ranked:
        bundle = study_dir / "runs" / slug(str(row["model"])) / "model"
        if (bundle / "config.json").is_file():
            return bundle
    raise MovieRecError(f"{study_dir}: the study saved no model bundle (set [study] save_models = true)")


def _split_beside(path: Path, study_dir: Path | None, bundle: Bundle) -> Split | None:
    """The split the model was trained on: ``split/`` in the run folder, else the study's; None when there is
    none, or when its summary (protocol, seed, part sizes) or shape differs from what the bundle recorded."""
    recorded = bundle.config.get("dataset", {})
    for folder in (path / "split", study_dir / "split" if study_dir is not None else None):
        if folder is not None and (folder / "split.json").is_file():
            split = Split.load(folder)
            summary = split.summary()
            same = all(recorded[k] == v for k, v in summary.items() if k in recorded)  # protocol, seed, sizes
            if same and (split.n_users, split.n_items) == (bundle.model.n_users, bundle.model.n_items):
                return split
    return None


def held_out_matrix(split: Split) -> sp.csr_matrix:
    """[n_users, n_items] the validation, test and fold-in movies of a split (known ratings, not trained on)."""
    users, items = [], []
    for part in (split.valid, split.test):
        if part is None:
            continue
        users.append(part.user)
        items.append(part.item)
        if part.fold_in is not None:
            users.append(part.fold_in.user)
            items.append(part.fold_in.item)
    u = np.concatenate(users) if users else np.zeros(0, np.int64)
    i = np.concatenate(items) if items else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(split.n_users, split.n_items))
    m.sum_duplicates()
    return m


def _liked_matrix(user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int, n_items: int,
                  good: float) -> sp.csr_matrix:
    """Binary [n_users, n_items]: the items each user rated at or above their own mean rating, or at least
    ``good`` (one point below the top of the scale: 4 of 5 stars is liked even by someone who rates high)."""
    user = np.asarray(user, dtype=np.int64)
    counts = np.bincount(user, minlength=n_users)
    mean = np.bincount(user, weights=rating, minlength=n_users) / np.maximum(counts, 1)
    keep = (rating >= mean[user] - 1e-6) | (rating >= good)
    m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (user[keep], np.asarray(item)[keep])),
                      shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def own_item_ids(bundle: Bundle) -> np.ndarray | None:
    """object [n_items] the bundle's own (string) item ids, or None where its item ids are integers: no labels
    (MovieLens), or labels that are the integer ids themselves (own data whose integer item ids were kept)."""
    labels = bundle.items.labels
    if labels is None or np.array_equal(labels.astype(str), bundle.items.ids.astype(str)):
        return None
    return labels


def uses_own_item_ids(models: list[ServedModel]) -> bool:
    """Whether the movies of ``models`` are named by their own string ids (any model with string item ids): then
    every model's movies are named by their labels, as text."""
    return any(m.own_item_ids is not None for m in models)


def movies_frame(models: list[ServedModel]) -> pd.DataFrame:
    """Every served movie once: movieId (int64, ascending: the service's key), item (the id people see and send:
    the raw integer id, or the own string id of data imported with string item ids), title (with year), year,
    genres (list), display, ratings (training count). With own string ids, movieId is the position in the order
    of the ids (1..n), never shown; without, it is the raw id (= item)."""
    from movierec.similar import catalog_movies

    own = uses_own_item_ids(models)
    frames = []
    for m in models:
        mv = catalog_movies(m.bundle.movies)
        mv["item"] = m.bundle.items.label_array().astype(str) if own else mv["movieId"].to_numpy(np.int64)
        mv["display"] = m.bundle.movies["title"].astype(str).to_numpy()
        mv["ratings"] = np.asarray(m.model.seen_.sum(axis=0)).ravel().astype(np.int64)
        frames.append(mv)
    key = "item" if own else "movieId"
    out = pd.concat(frames, ignore_index=True).sort_values([key, "ratings"], ascending=[True, False], kind="stable")
    out = out.drop_duplicates(key).reset_index(drop=True)
    if own:
        out["movieId"] = np.arange(1, len(out) + 1, dtype=np.int64)
        out["item"] = out["item"].astype(object)
    return out
