"""Item feature matrices and similarity measures, checked against hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions
from movierec.data.features import build_item_features, similarity


def catalog(with_tags: bool = True, with_genome: bool = False) -> Catalog:
    movies = pd.DataFrame({
        "movieId": [30, 10, 20, 40],  # deliberately unsorted
        "title": ["C", "A", "B", "D"],
        "year": [2001.0, 1995.0, 1999.0, np.nan],
        "genres": [["(no genres listed)"], ["Comedy", "Action"], ["Comedy"], ["Drama"]],
    })
    tags = pd.DataFrame({
        "userId": [1, 2, 1, 3, 3, 4, 9],
        "movieId": [10, 10, 20, 10, 30, 20, 30],
        "tag": ["Funny ", "funny", "FUNNY", "dark", "dark", "rare", "funny"],
        "timestamp": [0] * 7,
    }) if with_tags else pd.DataFrame(columns=["userId", "movieId", "tag", "timestamp"])
    genome_scores = genome_tags = None
    if with_genome:
        genome_scores = pd.DataFrame({"movieId": [10, 10, 20, 20], "tagId": [2, 1, 2, 1],
                                      "relevance": [0.5, 0.25, 1.0, 0.0]})
        genome_tags = pd.DataFrame({"tagId": [1, 2], "tag": ["funny", "dark"]})
    return Catalog(movies=movies, tags=tags, genome_scores=genome_scores, genome_tags=genome_tags)


IDS = np.array([10, 20, 30, 40], dtype=np.int64)


# --------------------------------------------------------------------------------------------- similarity


def test_similarity_measures_by_hand() -> None:
    x = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=np.float32))
    dot = similarity(x, np.array([0, 3]), "dot")
    assert dot.dtype == np.float32 and dot.shape == (2, 4)
    np.testing.assert_allclose(dot, [[2, 0, 2, 0], [0, 0, 0, 0]])
    cos = similarity(x, np.array([0, 3]), "cosine")
    np.testing.assert_allclose(cos, [[1, 0, 2 / math.sqrt(6), 0], [0, 0, 0, 0]], rtol=1e-6)
    euc = similarity(x, np.array([0]), "euclidean")
    np.testing.assert_allclose(euc, [[0, -math.sqrt(3), -1, -math.sqrt(2)]], rtol=1e-6)
    assert euc[0, 0] == 0.0  # exactly zero to itself
    with pytest.raises(ValueError, match="unknown measure"):
        similarity(x, np.array([0]), "manhattan")


# --------------------------------------------------------------------------------------------- blocks


def test_genres_multi_hot_drops_no_genres_and_follows_item_ids() -> None:
    f = build_item_features(catalog(), IDS, "genres")
    assert f.names == ["genre:Action", "genre:Comedy", "genre:Drama"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]])
    assert f.matrix.dtype == np.float32 and f.item_ids.dtype == np.int64
    # default rows: every movie, sorted, when the catalogue is not attached to a dataset
    np.testing.assert_array_equal(build_item_features(catalog()).item_ids, IDS)


def test_weighted_genres_use_mean_training_rating_and_global_mean() -> None:
    # rows 10, 20, 30, 40: movie 10 rated 4 and 2 (mean 3); 20 unrated; 30 rated 5; 40 rated 3
    train = Interactions(user=[0, 1, 0, 1], item=[0, 0, 2, 3], rating=[4, 2, 5, 3], timestamp=[0] * 4,
                         n_users=2, n_items=4)
    f = build_item_features(catalog(), IDS, "weighted-genres", train=train)
    glob = (4 + 2 + 5 + 3) / 4
    np.testing.assert_allclose(f.matrix.toarray(), [[3, 3, 0], [0, glob, 0], [0, 0, 0], [0, 0, 3]])
    with pytest.raises(ValueError, match="needs training ratings"):
        build_item_features(catalog(), IDS, "weighted-genres")
    with pytest.raises(ValueError, match="aligned"):
        build_item_features(catalog(), IDS[:3], "weighted-genres", train=train)


def test_tags_tfidf_formula_min_df_and_held_out_exclusion() -> None:
    n = 4
    # without exclusion: funny on 10 (x2), 20, 30 -> df 3; dark on 10, 30 -> df 2; rare on 20 only -> dropped
    f = build_item_features(catalog(), IDS, "tags")
    assert f.names == ["tag:dark", "tag:funny"]
    idf_dark, idf_funny = math.log(n / 2) + 1, math.log(n / 3) + 1
    raw = np.array([[idf_dark, 2 * idf_funny], [0, idf_funny], [idf_dark, idf_funny], [0, 0]])
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(f.matrix.toarray(), np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0),
                               rtol=1e-6)
    # user 9's tag on movie 30 is a held-out interaction: funny's df drops to 2
    g = build_item_features(catalog(), IDS, "tags", exclude_tag_pairs=(np.array([9]), np.array([30])))
    idf = math.log(n / 2) + 1
    raw = np.array([[idf, 2 * idf], [0, idf], [idf, 0], [0, 0]])
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(g.matrix.toarray(), np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0),
                               rtol=1e-6)
    # min_df=1 keeps the tag used on one movie only
    assert build_item_features(catalog(), IDS, "tags", min_df=1).names == ["tag:dark", "tag:funny", "tag:rare"]
    with pytest.raises(ValueError, match="no user tags"):
        build_item_features(catalog(with_tags=False), IDS, "tags")


def test_genome_pivot_and_missing_genome() -> None:
    f = build_item_features(catalog(with_genome=True), IDS, "genome")
    assert f.names == ["genome:funny", "genome:dark"]  # in tagId order
    np.testing.assert_allclose(f.matrix.toarray(), [[0.25, 0.5], [0, 1], [0, 0], [0, 0]])
    with pytest.raises(ValueError, match="no tag genome"):
        build_item_features(catalog(), IDS, "genome")


def test_year_decades() -> None:
    f = build_item_features(catalog(), IDS, "year")
    assert f.names == ["decade:1990s", "decade:2000s"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 0], [1, 0], [0, 1], [0, 0]])


def test_all_stacks_blocks_with_unit_norm_rows() -> None:
    for with_genome in (False, True):
        f = build_item_features(catalog(with_genome=with_genome), IDS, "all")
        x = f.matrix.toarray()
        prefixes = [n.split(":")[0] for n in f.names]
        expected = ["genre", "tag", "genome", "decade"] if with_genome else ["genre", "tag", "decade"]
        assert list(dict.fromkeys(prefixes)) == expected
        for block in expected:
            cols = [j for j, p in enumerate(prefixes) if p == block]
            norms = np.linalg.norm(x[:, cols], axis=1)
            np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-6)
        # movie 10 has genres, tags and a decade (and genome): one unit per block
        assert math.isclose(float(np.linalg.norm(x[0]) ** 2), len(expected), rel_tol=1e-5)
    # a catalogue without tags or genome: genres and year only
    f = build_item_features(catalog(with_tags=False), IDS, "all")
    assert {n.split(":")[0] for n in f.names} == {"genre", "decade"}


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        build_item_features(catalog(), IDS, "plot")
