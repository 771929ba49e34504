"""User segments: features against pandas, k-means recovering planted groups, per-segment metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Catalog, Interactions
from movierec.segments import (
    SegmentConfig,
    per_segment_metrics,
    segment_names,
    segment_users,
    user_features,
)

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def planted(seed: int = 0, per_group: int = 40) -> tuple[Interactions, Catalog, np.ndarray]:
    """Three groups of users: each rates only movies of its own two genres, with its own activity level."""
    rng = np.random.default_rng(seed)
    n_items = 90
    movie_genres = [[GENRES[(i % 3) * 2], GENRES[(i % 3) * 2 + 1]] for i in range(n_items)]
    movies = pd.DataFrame({"movieId": np.arange(1, n_items + 1), "title": [f"M{i}" for i in range(n_items)],
                           "year": np.full(n_items, 2000.0), "genres": movie_genres})
    users, items, ratings, ts, truth = [], [], [], [], []
    for g in range(3):
        own = np.flatnonzero(np.arange(n_items) % 3 == g)
        for j in range(per_group):
            u = g * per_group + j
            n = 8 + 6 * g + rng.integers(0, 3)
            chosen = rng.choice(own, n, replace=False)
            users += [u] * n
            items += chosen.tolist()
            ratings += (rng.integers(2, 6, n) - 0.5 * (g == 1)).tolist()
            ts += (1_000_000 + 86_400 * (rng.integers(0, 30, n) + 400 * g)).tolist()
            truth.append(g)
    train = Interactions(np.array(users), np.array(items), np.array(ratings), np.array(ts), 3 * per_group, n_items)
    catalog = Catalog(movies=movies, item_ids=np.arange(1, n_items + 1))
    return train, catalog, np.array(truth)


def test_user_features_match_pandas() -> None:
    train, catalog, _ = planted()
    f = user_features(train, catalog)
    df = train.to_frame()
    g = df.groupby("user")["rating"]
    np.testing.assert_allclose(f["activity"], np.log1p(g.size()), rtol=1e-12)
    np.testing.assert_allclose(f["mean_rating"], g.mean(), rtol=1e-6)
    np.testing.assert_allclose(f["rating_std"], g.std(ddof=0), rtol=1e-5, atol=1e-6)
    days = (df.timestamp.max() - df.groupby("user")["timestamp"].max()) / 86_400
    np.testing.assert_allclose(f["recency_days"], np.log1p(days), rtol=1e-12)
    shares = f[[c for c in f.columns if c.startswith("genre:")]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-12)
    # a movie with two genres gives half a rating to each
    assert set(np.round(shares.to_numpy().ravel(), 12)) <= {0.0, 0.5}


def test_kmeans_recovers_planted_groups() -> None:
    from sklearn.metrics import adjusted_rand_score

    train, catalog, truth = planted()
    seg = segment_users(train, catalog, SegmentConfig(k_min=2, k_max=6, seed=1))
    assert seg.k == 3
    assert adjusted_rand_score(truth, seg.labels) == pytest.approx(1.0)
    assert max(seg.silhouette, key=seg.silhouette.get) == 3
    assert seg.profiles["users"].sum() == len(truth)
    assert seg.profiles["share"].sum() == pytest.approx(1.0)
    # segment 0 is the largest, and each segment's top genres are its planted pair
    assert list(seg.profiles["users"]) == sorted(seg.profiles["users"], reverse=True)
    for s, row in seg.profiles.iterrows():
        group = np.bincount(truth[seg.labels == s]).argmax()
        top2 = {t.split(" ×")[0] for t in row["top_genres"].split(", ")[:2]}
        assert top2 == {GENRES[2 * group], GENRES[2 * group + 1]}
    assert set(seg.favourites) == set(range(3))
    names = segment_names(seg.profiles)
    assert all(names[str(s)].startswith(f"S{s}") for s in range(3))


def test_users_without_ratings_get_no_segment() -> None:
    train, catalog, _ = planted()
    wider = Interactions(train.user, train.item, train.rating, train.timestamp, train.n_users + 2, train.n_items)
    seg = segment_users(wider, catalog, SegmentConfig(k_min=3, k_max=3))
    assert (seg.labels[-2:] == -1).all() and (seg.labels[:-2] >= 0).all()


def test_per_segment_metrics_against_groupby() -> None:
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 1, 2, 2, 2, -1, 1])
    users = np.array([0, 1, 2, 3, 4, 5, 6])  # user 7 not evaluated, user 6 has no segment
    a = pd.Series(rng.random(7), index=users)
    b = pd.Series(rng.random(7), index=users)
    t = per_segment_metrics(labels, {"a": a, "b": b})
    for s in range(3):
        mask = labels[users] == s
        assert t.at[str(s), "a"] == pytest.approx(a[mask].mean())
        assert t.at[str(s), "b"] == pytest.approx(b[mask].mean())
        assert t.at[str(s), "users"] == mask.sum()
    assert t.at["all", "a"] == pytest.approx(a.mean())
    assert t.at["all", "users"] == 7


def test_segments_on_movielens(mls_split, mls) -> None:
    seg = segment_users(mls_split.train, mls.catalog, SegmentConfig(k_min=3, k_max=5))
    assert 3 <= seg.k <= 5
    assert (seg.labels >= 0).sum() == len(np.unique(mls_split.train.user))
    assert all(len(v) > 0 for v in seg.favourites.values())


def test_learned_user_embeddings_join_the_features(tmp_path) -> None:
    from movierec.artifacts import save_bundle
    from movierec.data.dataset import IdMap
    from movierec.models.ncf import GMF
    from movierec.segments import user_embeddings

    train, catalog, _ = planted()
    model = GMF(factors=4, epochs=1, patience=0).fit(train, catalog, None)
    users = IdMap(np.arange(100, 100 + train.n_users, dtype=np.int64), "user")
    save_bundle(tmp_path / "gmf", model, users, IdMap(catalog.item_ids, "movie"), catalog)
    raw = np.array([101, 100, 5])  # 5 is unknown to the model
    emb = user_embeddings(tmp_path / "gmf", raw)
    w = model.net_.user.weight.detach().numpy()
    np.testing.assert_allclose(emb[:2], w[[1, 0]], rtol=1e-6)
    assert (emb[2] == 0).all()
    seg = segment_users(train, catalog, SegmentConfig(k_min=3, k_max=3), user_embeddings(tmp_path / "gmf",
                                                                                          users.ids))
    assert any(c.startswith("emb:") for c in seg.features.columns) and seg.k == 3


def test_cli_segments(shared_data_dir, tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "MOVIEREC_DATA_DIR": str(shared_data_dir)}
    r = subprocess.run([sys.executable, "-m", "movierec.cli", "segments", "--data", "ml-latest-small", "--k-max", "4",
                        "--out", str(tmp_path), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert 3 <= payload["k"] <= 4 and sum(p["users"] for p in payload["profiles"]) == 610
    assert pd.read_parquet(tmp_path / "segments.parquet")["segment"].nunique() == payload["k"]
    bad = subprocess.run([sys.executable, "-m", "movierec.cli", "segments", "--data", "ml-latest-small", "--k-min",
                          "5", "--k-max", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "k-min" in bad.stderr
