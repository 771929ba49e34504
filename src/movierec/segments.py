"""User segmentation (segment-targeting-positioning): who the users are, and which model serves whom.

Users are described by their taste and behaviour on the *training* interactions only (so segments can be
used to break down test metrics without leaking the held-out items):

- taste: the share of a user's rated movies in each genre (a movie with g genres counts 1/g to each);
- behaviour: log activity (ratings), mean rating, rating spread (std), recency (days between the user's
  last rating and the last rating in the data, log1p), optionally learned user embeddings.

Columns are standardised, then the taste block and the behaviour block are weighted to carry equal total
variance, so 20 genre columns do not drown four behaviour columns. k-means (scikit-learn) runs for every k
in a range; the k with the best silhouette (on a fixed random sample of users for large data) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec._optional import require
from movierec.data.dataset import Catalog, Interactions
from movierec.errors import MovieRecError

if TYPE_CHECKING:
    from movierec.models.base import Recommender

BEHAVIOUR = ("activity", "mean_rating", "rating_std", "recency_days")
_DAY = 86_400


@dataclass
class SegmentConfig:
    """k_min..k_max: the k range searched; silhouette_sample: users scored per k (all if fewer)."""

    k_min: int = 2
    k_max: int = 8
    seed: int = 42
    silhouette_sample: int = 5000
    n_init: int = 4


@dataclass
class Segmentation:
    """labels: int [n_users] segment of every user index (-1: no training interactions);
    silhouette: {k: score} for every k tried; features: the raw (unscaled) feature table [n_users, f]."""

    labels: np.ndarray
    k: int
    silhouette: dict[int, float]
    features: pd.DataFrame
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    favourites: dict[int, list[str]] = field(default_factory=dict)


def user_features(train: Interactions, catalog: Catalog | None,
                  embeddings: np.ndarray | None = None) -> pd.DataFrame:
    """Taste and behaviour features per user index: a DataFrame [n_users, n_genres + 4 (+ d)].

    Genre columns are named ``genre:<name>`` (shares, summing to 1 for users whose movies have genres);
    behaviour columns are ``activity`` (log1p ratings), ``mean_rating``, ``rating_std`` and
    ``recency_days`` (log1p days). ``embeddings`` [n_users, d] adds columns ``emb:<j>``.
    """
    n_users = train.n_users
    counts = np.bincount(train.user, minlength=n_users).astype(np.float64)
    safe = np.maximum(counts, 1)
    rating = train.rating.astype(np.float64)
    mean = np.bincount(train.user, rating, n_users) / safe
    sq = np.bincount(train.user, rating * rating, n_users) / safe
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    end = int(train.timestamp.max()) if len(train) else 0
    last = np.full(n_users, end, dtype=np.int64)  # users without ratings: recency 0
    _max_by_group(last, train.user, train.timestamp)
    recency = (end - last) / _DAY
    cols: dict[str, np.ndarray] = {}
    if catalog is not None:
        genres, names = catalog.item_genres()
        if names:
            g = sp.csr_matrix(genres, dtype=np.float64)
            per_movie = np.asarray(g.sum(axis=1)).ravel()
            g = sp.diags(1.0 / np.maximum(per_movie, 1)) @ g  # a movie counts 1 in total
            ui = sp.csr_matrix((np.ones(len(train)), (train.user, train.item)), shape=(n_users, train.n_items))
            share = np.asarray((ui @ g).todense()) / safe[:, None]
            cols.update({f"genre:{n}": share[:, j] for j, n in enumerate(names)})
    cols.update(activity=np.log1p(counts), mean_rating=mean, rating_std=std,
                recency_days=np.log1p(np.maximum(recency, 0.0)))
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.shape[0] != n_users:
            raise MovieRecError(f"embeddings have {emb.shape[0]} rows for {n_users} users")
        cols.update({f"emb:{j}": emb[:, j] for j in range(emb.shape[1])})
    return pd.DataFrame(cols)


def model_user_embeddings(model: Recommender) -> np.ndarray:
    """Learned user vectors [n_users, d] of a fitted model (its ``user_vectors()``: GMF, MLP, content-neural;
    NeuMF's GMF and MLP user embeddings side by side), as float64."""
    vectors = model.user_vectors()
    if vectors is None:
        raise MovieRecError(f"the {model.name} model has no learned user embeddings")
    return np.asarray(vectors, dtype=np.float64)


def user_embeddings(run_dir: str | Path, user_ids: np.ndarray) -> np.ndarray:
    """Learned user vectors [len(user_ids), d] from a model bundle (see :func:`model_user_embeddings`), rows
    aligned with the raw ``user_ids``; users the model never saw get zeros."""
    from movierec.artifacts import load_bundle

    bundle = load_bundle(run_dir)
    try:
        emb = model_user_embeddings(bundle.model)
    except MovieRecError:
        raise MovieRecError(f"{run_dir}: this model has no learned user embeddings") from None
    out = np.zeros((len(user_ids), emb.shape[1]))
    known = bundle.users.contains(user_ids)
    out[known] = emb[bundle.users.index(np.asarray(user_ids)[known])]
    return out


def _max_by_group(out: np.ndarray, group: np.ndarray, values: np.ndarray) -> None:
    """out[g] = max(values[group == g]) for every group present (sort-based, vectorised)."""
    if not len(group):
        return
    order = np.lexsort((values, group))
    g = group[order]
    last = np.r_[g[1:] != g[:-1], True]
    out[g[last]] = values[order][last]


def _design(features: pd.DataFrame) -> np.ndarray:
    """Standardised features with each block (genre, behaviour, embedding) scaled to equal total variance."""
    x = features.to_numpy(np.float64)
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    blocks = [np.array([c.startswith(p) for c in features.columns]) for p in ("genre:", "emb:")]
    blocks.append(~(blocks[0] | blocks[1]))
    for b in blocks:
        if b.any():
            x[:, b] /= np.sqrt(b.sum())
    return x


def segment_users(train: Interactions, catalog: Catalog | None, config: SegmentConfig | None = None,
                  embeddings: np.ndarray | None = None) -> Segmentation:
    """k-means segments of the users with training interactions, k chosen by silhouette."""
    cluster = require("sklearn.cluster")
    metrics = require("sklearn.metrics")
    config = config or SegmentConfig()
    features = user_features(train, catalog, embeddings)
    active = np.flatnonzero(np.bincount(train.user, minlength=train.n_users) > 0)
    x = _design(features.iloc[active])
    k_max = min(config.k_max, len(active) - 1)
    if k_max < max(config.k_min, 2):
        raise MovieRecError(f"too few users to segment ({len(active)})")
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(len(active), min(config.silhouette_sample, len(active)), replace=False)
    best: tuple[float, int, np.ndarray] | None = None
    scores: dict[int, float] = {}
    for k in range(max(config.k_min, 2), k_max + 1):
        km = cluster.KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit(x)
        s = float(metrics.silhouette_score(x[sample], km.labels_[sample])) if len(set(km.labels_[sample])) > 1 \
            else -1.0
        scores[k] = s
        if best is None or s > best[0]:
            best = (s, k, km.labels_)
    assert best is not None
    # Number segments by size (0 = largest) so labels are stable and readable.
    raw = best[2]
    order = np.argsort(-np.bincount(raw, minlength=best[1]), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = np.full(train.n_users, -1, dtype=np.int64)
    labels[active] = rank[raw]
    seg = Segmentation(labels, best[1], scores, features)
    seg.profiles, seg.favourites = profile_segments(seg, train, catalog)
    return seg


def profile_segments(seg: Segmentation, train: Interactions, catalog: Catalog | None,
                     top_genres: int = 3, top_movies: int = 5, min_support: int = 5
                     ) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """One row per segment: size, share of users, top genres (by lift over all users), median ratings per
    user, mean rating, mean rating spread, median days since last rating; and each segment's favourite
    movies: the most over-represented well-rated (>= 4) movies, with at least ``min_support`` such ratings."""
    f = seg.features
    lab = seg.labels
    active = lab >= 0
    genre_cols = [c for c in f.columns if c.startswith("genre:")]
    overall = f.loc[active, genre_cols].mean() if genre_cols else None
    rows = []
    for s in range(seg.k):
        m = lab == s
        row = {"segment": s, "users": int(m.sum()), "share": float(m.sum() / max(active.sum(), 1)),
               "ratings_per_user": float(np.median(np.expm1(f.loc[m, "activity"]))),
               "mean_rating": float(f.loc[m, "mean_rating"].mean()),
               "rating_std": float(f.loc[m, "rating_std"].mean()),
               "days_since_last": float(np.median(np.expm1(f.loc[m, "recency_days"])))}
        if genre_cols:
            lift = f.loc[m, genre_cols].mean() / overall.replace(0, np.nan)
            top = lift.sort_values(ascending=False).head(top_genres)
            row["top_genres"] = ", ".join(f"{c.removeprefix('genre:')} ×{v:.1f}" for c, v in top.items())
        rows.append(row)
    profiles = pd.DataFrame(rows).set_index("segment")
    favourites: dict[int, list[str]] = {}
    if catalog is not None and catalog.item_ids is not None:
        liked = train.rating >= 4
        u, i = train.user[liked], train.item[liked]
        seg_of = lab[u]
        keep = seg_of >= 0
        counts = sp.csr_matrix((np.ones(int(keep.sum())), (seg_of[keep], i[keep])),
                               shape=(seg.k, train.n_items)).toarray()
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        base = counts.sum(axis=0) / max(counts.sum(), 1)
        lift = np.where(counts >= min_support, share / np.maximum(base, 1e-12), 0.0)
        score = lift * np.log1p(counts)  # over-represented and liked by many in the segment
        for s in range(seg.k):
            top = np.argsort(-score[s], kind="stable")[:top_movies]
            top = top[score[s, top] > 0]
            favourites[s] = catalog.titles(catalog.item_ids[top])
        profiles["favourites"] = ["; ".join(favourites[s]) for s in range(seg.k)]
    return profiles, favourites


def write_segments(folder: str | Path, user_ids: np.ndarray, seg: Segmentation) -> None:
    """``segments.parquet`` (userId, segment; -1: no training ratings) and ``profiles.csv`` (with each segment's
    name) in ``folder``, each written atomically."""
    from movierec.fsutil import atomic_write_parquet, atomic_write_text, csv_text

    folder = Path(folder)
    atomic_write_parquet(folder / "segments.parquet", pd.DataFrame({"userId": user_ids, "segment": seg.labels}))
    names = segment_names(seg.profiles)
    profiles = seg.profiles.assign(name=[names[str(i)] for i in seg.profiles.index])
    atomic_write_text(folder / "profiles.csv", csv_text(profiles, index=True))


def segment_names(profiles: pd.DataFrame) -> dict[str, str]:
    """Short readable names from the profiles: top genres and how the segment's behaviour departs from the
    median segment, e.g. ``"S2 · IMAX, Animation · heavy, recent"``. Keys are segment labels as strings."""
    med = profiles[["ratings_per_user", "mean_rating", "days_since_last"]].median()
    names = {}
    for s, r in profiles.iterrows():
        words = []
        if r.ratings_per_user > 1.3 * med.ratings_per_user:
            words.append("heavy")
        elif r.ratings_per_user < med.ratings_per_user / 1.3:
            words.append("light")
        if r.mean_rating > med.mean_rating + 0.15:
            words.append("generous")
        elif r.mean_rating < med.mean_rating - 0.15:
            words.append("harsh")
        if r.days_since_last < med.days_since_last / 2:
            words.append("recent")
        elif r.days_since_last > 2 * med.days_since_last:
            words.append("lapsed")
        genres = [g.split(" ×")[0] for g in str(r.get("top_genres", "")).split(", ")[:2] if g]
        names[str(s)] = " · ".join(p for p in (f"S{s}", ", ".join(genres), ", ".join(words)) if p)
    return names


def per_segment_metrics(labels: np.ndarray, values: dict[str, pd.Series]) -> pd.DataFrame:
    """Mean per-user metric per segment (rows) and model (columns).

    labels: int [n_users] from :class:`Segmentation`; values: {model name: Series of a per-user metric indexed
    by user index} (e.g. ``pd.Series(result.per_user["NDCG@10"], index=result.users)``). A row ``all`` holds
    the overall mean over every evaluated user; column ``users`` counts the evaluated users per segment.
    """
    table: dict[str, pd.Series] = {}
    users: pd.Series | None = None
    for name, v in values.items():
        frame = pd.DataFrame({"segment": labels[v.index.to_numpy(np.int64)], "v": v.to_numpy(np.float64)})
        col = frame[frame.segment >= 0].groupby("segment")["v"].mean()
        col.index = col.index.map(str)
        col.loc["all"] = float(frame["v"].mean())
        table[name] = col
        if users is None:
            users = frame[frame.segment >= 0].groupby("segment").size()
            users.index = users.index.map(str)
            users.loc["all"] = len(frame)
    if not table:
        raise MovieRecError("no per-user values to break down by segment")
    out = pd.DataFrame(table)
    out.insert(0, "users", users)
    return out
