"""The EDA statistics against hand-computed values and independent (slow, explicit) computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.eda import stats as S

# --------------------------------------------------------------------------------------------- Gini


def _gini_pairs(x: np.ndarray) -> float:
    """Gini as the mean absolute difference over all ordered pairs / (2 x mean): the textbook definition."""
    x = np.asarray(x, float)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean()))


def test_gini_hand_computed() -> None:
    assert S.gini(np.full(7, 3)) == 0.0  # everyone equal
    assert S.gini([0, 0, 0, 5]) == pytest.approx(0.75)  # one of n holds all: (n - 1) / n
    assert S.gini([0] * 9 + [1]) == pytest.approx(0.9)
    assert S.gini([4, 1, 3, 2]) == pytest.approx(0.25)  # sum (2i - n - 1) x_(i) = 10, / (4 * 10)
    assert S.gini([]) == 0.0 and S.gini([0, 0]) == 0.0
    with pytest.raises(ValueError):
        S.gini([-1, 2])


def test_gini_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.pareto(1.5, size=int(rng.integers(2, 300))) * 10
        assert S.gini(x) == pytest.approx(_gini_pairs(x), rel=1e-12)


def test_lorenz_and_count_summary() -> None:
    x = np.array([1, 1, 2, 6])
    share, held = S.lorenz(x)
    assert share[0] == held[0] == 0 and share[-1] == held[-1] == 1
    np.testing.assert_allclose(held, [0, 0.1, 0.2, 0.4, 1.0])
    s = S.count_summary(np.array([1] * 99 + [901]))
    assert s["top1_share"] == pytest.approx(0.901) and s["median"] == 1 and s["max"] == 901 and s["n"] == 100
    assert s["gini"] == pytest.approx(S.gini(np.array([1] * 99 + [901])))


def test_rank_curve_is_descending_and_drops_zeros() -> None:
    rng = np.random.default_rng(1)
    c = np.concatenate([rng.integers(1, 1000, 5000), [0, 0]])
    rank, count = S.rank_curve(c, n_points=200)
    assert rank[0] == 1 and count[0] == c.max() and rank[-1] == 5000 and count[-1] == c[c > 0].min()
    assert np.all(np.diff(count) <= 0) and np.all(np.diff(rank) > 0) and len(rank) <= 200


# --------------------------------------------------------------------------------------------- VIF


def _vif_lstsq(x: np.ndarray) -> np.ndarray:
    """VIF_j = 1 / (1 - R^2_j), regressing column j on the others plus an intercept with np.linalg.lstsq."""
    n, k = x.shape
    out = np.empty(k)
    for j in range(k):
        a = np.column_stack([np.ones(n), np.delete(x, j, axis=1)])
        y = x[:, j]
        beta = np.linalg.lstsq(a, y, rcond=None)[0]
        r2 = 1 - np.sum((y - a @ beta) ** 2) / np.sum((y - y.mean()) ** 2)
        out[j] = 1 / (1 - r2)
    return out


def test_vif_matches_regressions_on_continuous_data() -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal((500, 5))
    x = np.column_stack([z[:, 0], z[:, 0] + 0.5 * z[:, 1], z[:, 2], z[:, 2] - z[:, 3] + 0.1 * z[:, 4], z[:, 4]])
    np.testing.assert_allclose(S.vif(x), _vif_lstsq(x), rtol=1e-8)


def test_vif_matches_regressions_on_sparse_indicators() -> None:
    rng = np.random.default_rng(3)
    base = rng.random((2000, 6)) < [0.4, 0.2, 0.1, 0.3, 0.05, 0.15]
    base[:, 1] |= base[:, 0] & (rng.random(2000) < 0.5)  # correlated genres
    x = base.astype(float)
    ours = S.vif(sp.csr_matrix(x))
    np.testing.assert_allclose(ours, _vif_lstsq(x), rtol=1e-8)
    np.testing.assert_allclose(S.phi_correlation(sp.csr_matrix(x)), np.corrcoef(x, rowvar=False), atol=1e-12)


def test_vif_perfect_collinearity_and_constant_columns() -> None:
    rng = np.random.default_rng(4)
    a, b, d = rng.standard_normal((3, 300))
    v = S.vif(np.column_stack([a, b, a + b, d]))
    assert np.isinf(v[:3]).all() and np.isfinite(v[3]) and v[3] == pytest.approx(1, abs=0.1)
    # a constant column: NaN, and it does not change the others
    x = np.column_stack([a, np.ones(300), a + 0.3 * b])
    v = S.vif(x)
    assert np.isnan(v[1])
    np.testing.assert_allclose(v[[0, 2]], _vif_lstsq(x[:, [0, 2]]), rtol=1e-8)
    assert S.vif(np.column_stack([a, np.ones(300)]))[0] == 1.0


def test_vif_of_independent_indicators_is_near_one() -> None:
    x = (np.random.default_rng(5).random((20000, 4)) < 0.3).astype(float)
    np.testing.assert_allclose(S.vif(x), 1.0, atol=0.01)


def test_strongest_pairs() -> None:
    corr = np.array([[1, 0.1, -0.8], [0.1, 1, np.nan], [-0.8, np.nan, 1]])
    p = S.strongest_pairs(corr, ["a", "b", "c"], k=5)
    assert p.values.tolist() == [["a", "c", -0.8], ["a", "b", 0.1]]


# --------------------------------------------------------------------------------------------- ratings


def test_rating_codes_fast_path_and_fallback() -> None:
    r = np.array([4.0, 0.5, 5.0, 4.0, 3.5], np.float32)
    values, codes = S.rating_codes(r)
    assert values.tolist() == [0.5, 3.5, 4.0, 5.0] and codes.tolist() == [2, 0, 3, 2, 1]
    r2 = np.array([0.3, 0.1, 0.3, 2.7])
    values, codes = S.rating_codes(r2)
    np.testing.assert_allclose(values, [0.1, 0.3, 2.7])
    assert codes.tolist() == [1, 0, 1, 2]
    d = S.rating_distribution(r)
    assert d["count"].tolist() == [1, 1, 2, 1] and d["share"].sum() == pytest.approx(1)


def test_hist_quantiles_equal_np_percentile() -> None:
    rng = np.random.default_rng(6)
    values = np.arange(1, 11) / 2
    q = [0, 5, 25, 33.3, 50, 75, 90, 100]
    for _ in range(20):
        counts = rng.integers(0, 30, (3, 10)) * (rng.random((3, 10)) < 0.6)
        counts[:, rng.integers(0, 10)] += 1  # every row non-empty
        got = S.hist_quantiles(values, counts, q)
        for row in range(3):
            want = np.percentile(np.repeat(values, counts[row]), q)
            np.testing.assert_allclose(got[row], want, rtol=0, atol=1e-12)


def _boxplot_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    values = np.arange(1, 11) / 2
    cases = [rng.integers(0, 50, 10) for _ in range(15)]
    cases.append(np.array([1, 0, 0, 0, 0, 0, 0, 200, 3, 0]))  # tight box, low outliers
    cases.append(np.array([2, 1, 0, 3, 5, 30, 40, 30, 5, 1]))  # whisker inside the range, two flier values
    cases.append(np.array([0, 0, 0, 0, 0, 0, 0, 7, 0, 0]))  # one value only (IQR 0)
    cases.append(np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))  # a single rating
    skew = np.bincount(np.clip(rng.poisson(7.5, 400), 0, 9), minlength=10)
    cases.append(skew)
    return [values, *cases]


def test_boxplot_stats_match_matplotlib_on_expanded_data() -> None:
    cbook = pytest.importorskip("matplotlib.cbook")
    values, *cases = _boxplot_cases()
    counts = np.vstack([*cases, np.zeros(10, np.int64)])  # an empty row is skipped
    labels = [f"g{i}" for i in range(len(counts))]
    ours = S.boxplot_stats_from_hist(values, counts, labels)
    assert [s["label"] for s in ours] == labels[:-1]
    for s, c in zip(ours, cases, strict=True):
        data = np.repeat(values, c)
        (ref,) = cbook.boxplot_stats(data)
        for key in ("mean", "med", "q1", "q3", "iqr", "whislo", "whishi", "cilo", "cihi"):
            assert s[key] == pytest.approx(ref[key], abs=1e-12), key
        assert s["n"] == len(data)
        assert sorted(s["fliers"].tolist()) == sorted(np.unique(ref["fliers"]).tolist())
    assert ours[16]["whislo"] == 2.0 and ours[16]["fliers"].tolist() == [0.5, 1.0]


def test_item_rating_histograms_and_r2() -> None:
    rng = np.random.default_rng(8)
    n, n_items = 3000, 40
    item = rng.integers(0, n_items, n)
    genres = (rng.random((n_items, 4)) < 0.35).astype(float)
    rating = np.clip(np.round(2 * (3 + genres[item] @ [0.5, -0.4, 0.2, 0.0] + rng.standard_normal(n))) / 2, 0.5, 5)
    values, codes = S.rating_codes(rating)
    h = S.item_rating_histograms(item, codes, n_items, len(values))
    explicit = np.zeros((n_items, len(values)), np.int64)
    np.add.at(explicit, (item, codes), 1)
    np.testing.assert_array_equal(h.toarray(), explicit)
    counts = np.bincount(item, minlength=n_items)
    a = np.column_stack([np.ones(n), genres[item]])
    beta = np.linalg.lstsq(a, rating, rcond=None)[0]
    want = 1 - np.sum((rating - a @ beta) ** 2) / np.sum((rating - rating.mean()) ** 2)
    got = S.item_r2(sp.csr_matrix(genres), counts, h @ values, h @ values**2)
    assert got == pytest.approx(want, abs=1e-10)
    assert 0.01 < got < 1


# --------------------------------------------------------------------------------------------- time


def test_monthly_counts() -> None:
    ts = np.array([
        1579046400,  # 2020-01-15
        1580515199,  # 2020-01-31 23:59:59
        1583020800,  # 2020-03-01 00:00:00
        0,  # unknown: left out
    ])
    m = S.monthly_counts(ts, np.array([4.0, 2.0, 5.0, 1.0]))
    assert m["month"].tolist() == ["2020-01", "2020-02", "2020-03"]
    assert m["n_ratings"].tolist() == [2, 0, 1]
    assert m["mean_rating"].iloc[0] == 3.0 and np.isnan(m["mean_rating"].iloc[1]) and m["mean_rating"].iloc[2] == 5
    assert S.monthly_counts(np.zeros(3, np.int64)).empty
    # against pandas on random timestamps
    rng = np.random.default_rng(9)
    ts = rng.integers(800_000_000, 1_500_000_000, 5000)
    m = S.monthly_counts(ts)
    ref = pd.Series(pd.to_datetime(ts, unit="s").strftime("%Y-%m")).value_counts()
    got = m.set_index("month")["n_ratings"]
    assert got.sum() == 5000 and (got[ref.index] == ref).all() and (got.drop(ref.index) == 0).all()


# --------------------------------------------------------------------------------------------- genres, tags, users


def test_genre_frequencies() -> None:
    g = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 1]], float))
    df = S.genre_frequencies(g, ["A", "B", "C"], np.array([10, 5, 7, 1]), np.array([40.0, 10.0, 21.0, 5.0]))
    assert df["genre"].tolist() == ["A", "B", "C"]
    assert df["n_movies"].tolist() == [2, 2, 1]
    assert df["share_movies"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])  # of the 3 movies with a genre
    assert df["n_ratings"].tolist() == [15, 11, 1]
    assert df["share_ratings"].tolist() == pytest.approx([15 / 23, 11 / 23, 1 / 23])
    assert df["mean_rating"].tolist() == pytest.approx([50 / 15, 45 / 11, 5.0])


def test_top_tags() -> None:
    tags = pd.DataFrame({"userId": [1, 2, 2, 3, 3, 4], "movieId": [10, 10, 11, 12, 10, 10],
                         "tag": ["Funny", " funny", "dark", "Dark ", "zany", "funny"]})
    t = S.top_tags(tags, k=2)
    assert t.values.tolist() == [["funny", 3, 1, 3], ["dark", 2, 2, 2]]
    assert S.top_tags(tags.iloc[:0]).empty


def test_age_groups_and_demographics() -> None:
    # ml-100k ages and ml-1m codes land in the same groups
    assert list(S.age_group([7, 17, 18, 24, 25, 44, 45, 50, 55, 56, 73])) == [
        "under 18", "under 18", "18-24", "18-24", "25-34", "35-44", "45-49", "50-55", "50-55", "56+", "56+"]
    assert list(S.age_group([1, 18, 25, 35, 45, 50, 56])) == list(S.AGE_LABELS)
    users = pd.DataFrame({"userId": [1, 2, 3, 4], "gender": ["M", "F", "F", "M"], "age": [1, 25, 30, 56],
                          "occupation": ["writer", "lawyer", "writer", "other"]})
    ids = np.array([1, 2, 3, 5])  # user 4 never rated; user 5 has no demographics
    d = S.demographics(users, ids, np.array([2, 4, 6, 8]), np.array([8.0, 12.0, 6.0, 40.0]))
    g = d["gender"].set_index("group")
    assert g.loc["F", "n_users"] == 2 and g.loc["F", "n_ratings"] == 10 and g.loc["F", "mean_rating"] == 1.8
    assert g.loc["unknown", "n_ratings"] == 8 and g.loc["M", "share_users"] == 0.25
    a = d["age"]
    assert a["group"].tolist() == ["under 18", "25-34", "unknown"]  # AGE_LABELS order, unknown last
    assert a["n_users"].tolist() == [1, 2, 1]
    o = d["occupation"].set_index("group")
    assert o.loc["writer", "n_users"] == 2 and o.loc["writer", "mean_rating"] == pytest.approx(14 / 8)
    assert sum(df["n_users"].sum() for df in d.values()) == 3 * 4
