"""Pure statistics for the exploratory data analysis: numpy, pandas and scipy only, vectorised.

Nothing here draws or writes; every function takes arrays (or small frames) and returns numbers, arrays or
frames. No function loops in Python over ratings, users or movies; the few loops there are run over genres
or rating values (tens of iterations).

Conventions: ``counts`` are non-negative integers (ratings per user, per movie); ``rating`` is float
[n_ratings]; ``timestamp`` is int64 seconds since the epoch, where a value <= 0 means "unknown" (the
loaders store 0 when a release has no timestamps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.evaluation.beyond import gini  # the one Gini formula, shared with Gini@K

#: 1.5 x IQR whiskers (Tukey), the matplotlib default
WHIS = 1.5
#: 1 - R^2 below this counts as perfect collinearity (VIF = inf)
COLLINEAR_TOL = 1e-9
#: age groups of ml-1m (whose ``age`` column holds the lower bound of the group: 1, 18, 25, 35, 45, 50, 56);
#: ml-100k's exact ages are binned into the same groups so the two releases read alike
AGE_EDGES = (0, 18, 25, 35, 45, 50, 56)
AGE_LABELS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


# --------------------------------------------------------------------------------------------- inequality


def lorenz(counts: np.ndarray, n_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of ``counts``: (share of holders, share of the total they hold), both float64 in [0, 1].

    Holders are sorted ascending; the curve starts at (0, 0) and ends at (1, 1). At most ``n_points`` + 1
    points, evenly spaced in holder share (enough for a plot; the Gini uses every value).
    """
    x = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    idx = np.unique(np.linspace(0, n, min(n, n_points) + 1).round().astype(np.int64))
    return idx / n, cum[idx]


def count_summary(counts: np.ndarray) -> dict[str, float]:
    """Distribution of ``counts`` [n] (e.g. ratings per user): min, quartiles, p90, p99, max, mean, Gini,
    and the share of the total held by the top 1% / 10% / 20% of holders (plain floats)."""
    x = np.asarray(counts, dtype=np.float64).ravel()
    if not len(x):
        return {}
    q = np.percentile(x, [0, 25, 50, 75, 90, 99, 100])
    desc = np.sort(x)[::-1]
    cum = np.cumsum(desc)
    total = cum[-1] if cum[-1] > 0 else 1.0

    def top(frac: float) -> float:
        k = max(1, int(np.ceil(frac * len(x))))
        return float(cum[k - 1] / total)

    return {
        "n": len(x), "min": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
        "p90": float(q[4]), "p99": float(q[5]), "max": float(q[6]), "mean": float(x.mean()),
        "gini": gini(x), "top1_share": top(0.01), "top10_share": top(0.10), "top20_share": top(0.20),
    }


def rank_curve(counts: np.ndarray, n_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Counts sorted descending against their 1-based rank, thinned to ~``n_points`` log-spaced ranks for a
    log-log plot: (rank int64 [m], count float64 [m]); zero counts are dropped (they cannot be drawn on a
    log axis)."""
    desc = np.sort(np.asarray(counts, dtype=np.float64).ravel())[::-1]
    desc = desc[desc > 0]
    if not len(desc):
        return np.array([], np.int64), np.array([], np.float64)
    rank = np.unique(np.geomspace(1, len(desc), n_points).round().astype(np.int64))
    return rank, desc[rank - 1]


# --------------------------------------------------------------------------------------------- ratings


def rating_codes(rating: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rating values and each rating's code: (values float64 [V] ascending, codes int32 [n]).

    MovieLens ratings are whole or half stars, so the fast path is an integer shift of 2 x rating (no sort
    of the 20M ratings); any other values fall back to ``np.unique``.
    """
    r = np.asarray(rating)
    if not len(r):
        return np.array([], np.float64), np.array([], np.int32)
    twice = r.astype(np.float64) * 2
    lo, hi = np.floor(twice.min()), np.ceil(twice.max())
    if np.isfinite(lo) and hi - lo < 1000 and np.array_equal(twice, np.round(twice)):
        raw = (twice - lo).astype(np.int64)
        present = np.bincount(raw, minlength=int(hi - lo) + 1) > 0
        lookup = np.cumsum(present) - 1
        values = (np.flatnonzero(present) + lo) / 2
        return values.astype(np.float64), lookup[raw].astype(np.int32)
    values, codes = np.unique(r.astype(np.float64), return_inverse=True)
    return values, codes.astype(np.int32).ravel()


def rating_distribution(rating: np.ndarray) -> pd.DataFrame:
    """One row per distinct rating value: rating, count (int), share (of all ratings, 0..1)."""
    values, codes = rating_codes(rating)
    counts = np.bincount(codes, minlength=len(values))
    return pd.DataFrame({"rating": values, "count": counts.astype(np.int64),
                         "share": counts / max(int(counts.sum()), 1)})


def hist_quantiles(values: np.ndarray, counts: np.ndarray, q: np.ndarray | list[float]) -> np.ndarray:
    """Percentiles (``q`` in 0..100) of data given as a histogram, equal to ``np.percentile`` of the expanded
    data (linear interpolation between order statistics).

    values: float [V] ascending; counts: int [k, V] (one histogram per row, every row with a positive
    total). Returns float64 [k, len(q)].
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    q = np.asarray(q, dtype=np.float64)
    cum = np.cumsum(counts, axis=1)  # [k, V]
    n = cum[:, -1]
    pos = q[None, :] / 100.0 * (n[:, None] - 1)  # 0-based position in the sorted data, [k, nq]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n[:, None] - 1)
    frac = pos - lo

    def order_stat(i: np.ndarray) -> np.ndarray:  # value of the i-th smallest (0-based) per row
        idx = (cum[:, None, :] <= i[:, :, None]).sum(axis=2)
        return values[np.minimum(idx, len(values) - 1)]

    a, b = order_stat(lo), order_stat(hi)
    # numpy's lerp: a + (b - a) * t, computed from the nearer end (matches np.percentile bit for bit)
    return np.where(frac >= 0.5, b - (b - a) * (1 - frac), a + (b - a) * frac)


def boxplot_stats_from_hist(
    values: np.ndarray, counts: np.ndarray, labels: list[str], whis: float = WHIS
) -> list[dict]:
    """Exact box-plot statistics of discrete data given as histograms, one dict per row of ``counts``.

    values: float [V] ascending; counts: int [k, V]; rows with no data are skipped. The dicts have the keys
    of ``matplotlib.cbook.boxplot_stats`` (so ``Axes.bxp`` draws them): label, mean, med, q1, q3, iqr,
    cilo, cihi (notch: med -/+ 1.57 IQR / sqrt(n)), whislo, whishi (the most extreme data within
    ``whis`` x IQR of the box, never inside it) and fliers -- one entry per *distinct* value beyond the
    whiskers rather than one per rating, since a 20M-rating data set has millions of identical outliers --
    plus n (the number of data points). Equal to ``boxplot_stats`` on the expanded data except for that
    de-duplication of fliers.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    n = counts.sum(axis=1)
    keep = np.flatnonzero(n > 0)
    if not len(keep):
        return []
    c = counts[keep]
    q1, med, q3 = hist_quantiles(values, c, [25, 50, 75]).T
    mean = (c @ values) / n[keep]
    iqr = q3 - q1
    present = c > 0  # [k, V]
    lo_val, hi_val = q1 - whis * iqr, q3 + whis * iqr
    big = np.where(present & (values[None, :] <= hi_val[:, None]), values[None, :], -np.inf).max(axis=1)
    small = np.where(present & (values[None, :] >= lo_val[:, None]), values[None, :], np.inf).min(axis=1)
    whishi = np.where(big < q3, q3, big)
    whislo = np.where(small > q1, q1, small)
    half = 1.57 * iqr / np.sqrt(n[keep])
    out = []
    for j, row in enumerate(keep.tolist()):
        flier = present[j] & ((values < whislo[j]) | (values > whishi[j]))
        out.append({
            "label": labels[row], "n": int(n[row]), "mean": float(mean[j]), "med": float(med[j]),
            "q1": float(q1[j]), "q3": float(q3[j]), "iqr": float(iqr[j]),
            "cilo": float(med[j] - half[j]), "cihi": float(med[j] + half[j]),
            "whislo": float(whislo[j]), "whishi": float(whishi[j]), "fliers": values[flier].copy(),
        })
    return out


def item_rating_histograms(item: np.ndarray, codes: np.ndarray, n_items: int, n_values: int) -> sp.csr_matrix:
    """Ratings per (movie, rating value): int64 CSR [n_items, n_values] from item indices and rating codes
    (one bincount over all ratings)."""
    flat = np.bincount(np.asarray(item, np.int64) * n_values + codes, minlength=n_items * n_values)
    return sp.csr_matrix(flat.reshape(n_items, n_values))


# --------------------------------------------------------------------------------------------- time


def monthly_counts(timestamp: np.ndarray, rating: np.ndarray | None = None) -> pd.DataFrame:
    """Ratings per calendar month (UTC), every month from the first to the last, empty ones included.

    Columns: month (str "YYYY-MM"), n_ratings (int64), mean_rating (float, NaN for an empty month; only with
    ``rating``). Timestamps <= 0 (unknown) are left out; no known timestamp gives an empty frame.
    """
    ts = np.asarray(timestamp, dtype=np.int64)
    known = ts > 0
    cols = ["month", "n_ratings"] + (["mean_rating"] if rating is not None else [])
    if not known.any():
        return pd.DataFrame({c: [] for c in cols})
    if not known.all():
        ts = ts[known]
        rating = None if rating is None else np.asarray(rating)[known]
    month = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    m0 = int(month.min())
    rel = month - m0
    n_months = int(rel.max()) + 1
    n = np.bincount(rel, minlength=n_months)
    labels = np.arange(m0, m0 + n_months).astype("datetime64[M]").astype(str)
    out = {"month": labels, "n_ratings": n.astype(np.int64)}
    if rating is not None:
        s = np.bincount(rel, weights=np.asarray(rating, np.float64), minlength=n_months)
        out["mean_rating"] = np.divide(s, n, out=np.full(n_months, np.nan), where=n > 0)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------- genres


def genre_frequencies(
    genres: sp.spmatrix | np.ndarray, names: list[str], item_counts: np.ndarray, item_rating_sums: np.ndarray
) -> pd.DataFrame:
    """Per genre: n_movies, share_movies (of movies with at least one genre), n_ratings, share_ratings (of
    all ratings; a rating of a movie with g genres counts once in each), mean_rating (NaN if unrated).

    genres: 0/1 [n_items, n_genres]; item_counts, item_rating_sums: [n_items] ratings per movie and their sum.
    Sorted by n_movies, descending.
    """
    g = sp.csr_matrix(genres, dtype=np.float64)
    n_movies = np.asarray(g.sum(axis=0)).ravel()
    with_genre = max(int((np.diff(g.indptr) > 0).sum()), 1)
    n_ratings = g.T @ np.asarray(item_counts, np.float64)
    sums = g.T @ np.asarray(item_rating_sums, np.float64)
    total = max(float(np.sum(item_counts)), 1.0)
    df = pd.DataFrame({
        "genre": names, "n_movies": n_movies.astype(np.int64), "share_movies": n_movies / with_genre,
        "n_ratings": np.round(n_ratings).astype(np.int64), "share_ratings": n_ratings / total,
        "mean_rating": np.divide(sums, n_ratings, out=np.full(len(names), np.nan), where=n_ratings > 0),
    })
    return df.sort_values(["n_movies", "genre"], ascending=[False, True], kind="stable").reset_index(drop=True)


def phi_correlation(x: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Pearson correlation of the columns of ``x`` [n, k] (for 0/1 indicators: the phi coefficient), float64
    [k, k], computed from the sparse Gram matrix X^T X without densifying ``x``. Rows and columns of a
    constant column are NaN (its correlation is undefined); the diagonal of the others is exactly 1."""
    m = sp.csr_matrix(x, dtype=np.float64)
    n = m.shape[0]
    if n < 2:
        return np.full((m.shape[1], m.shape[1]), np.nan)
    gram = (m.T @ m).toarray()
    mean = np.asarray(m.sum(axis=0)).ravel() / n
    cov = gram / n - np.outer(mean, mean)
    var = np.diag(cov).copy()
    const = var <= 1e-12 * np.maximum(1.0, np.abs(mean) ** 2)
    sd = np.sqrt(np.where(const, np.nan, var))
    corr = cov / np.outer(sd, sd)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, np.where(const, np.nan, 1.0))
    return corr


def vif_from_corr(corr: np.ndarray) -> np.ndarray:
    """Variance inflation factors from a correlation matrix [k, k]: VIF_j = 1 / (1 - R^2_j), where R^2_j is the
    R^2 of regressing column j on all the others (with an intercept). float64 [k].

    With a well-conditioned matrix this is the diagonal of its inverse; in general R^2_j = r^T b with b the
    minimum-norm least-squares solution of R_(-j,-j) b = r (r = column j's correlations with the others),
    which stays exact when some columns are perfectly collinear. VIF is ``inf`` where 1 - R^2_j <
    COLLINEAR_TOL (column j is a linear combination of others) and NaN for constant columns (NaN rows in
    ``corr``); constant columns are left out of the other columns' regressions.
    """
    corr = np.asarray(corr, dtype=np.float64)
    k = corr.shape[0]
    out = np.full(k, np.nan)
    ok = np.flatnonzero(~np.isnan(np.diag(corr)))
    if len(ok) == 1:
        out[ok] = 1.0
    if len(ok) < 2:
        return out
    r = corr[np.ix_(ok, ok)]
    for a, j in enumerate(ok.tolist()):  # one small least-squares per column (k ~ 20)
        others = np.delete(np.arange(len(ok)), a)
        rj = r[others, a]
        b = np.linalg.lstsq(r[np.ix_(others, others)], rj, rcond=None)[0]
        resid = 1.0 - float(rj @ b)
        out[j] = np.inf if resid < COLLINEAR_TOL else 1.0 / resid
    return out


def vif(x: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Variance inflation factor of every column of the data matrix ``x`` [n, k]; see :func:`vif_from_corr`."""
    return vif_from_corr(phi_correlation(x))


def strongest_pairs(corr: np.ndarray, names: list[str], k: int = 5) -> pd.DataFrame:
    """The ``k`` off-diagonal pairs with the largest |correlation|: columns a, b, corr (float)."""
    n = corr.shape[0]
    iu = np.triu_indices(n, 1)
    vals = corr[iu]
    ok = ~np.isnan(vals)
    order = np.argsort(-np.abs(vals[ok]), kind="stable")[:k]
    a, b = iu[0][ok][order], iu[1][ok][order]
    return pd.DataFrame({"a": [names[i] for i in a], "b": [names[i] for i in b], "corr": vals[ok][order]})


def item_r2(
    features: sp.spmatrix | np.ndarray, item_counts: np.ndarray, item_sums: np.ndarray, item_sumsq: np.ndarray
) -> float:
    """R^2 of the least-squares regression of every rating on its movie's features plus an intercept.

    features: [n_items, k] (e.g. genre indicators); item_counts, item_sums, item_sumsq: [n_items] number of
    ratings per movie, their sum and their sum of squares. Exact, from the weighted normal equations
    (X^T X = A^T diag(counts) A with A = [1, features]), so no rating is expanded; collinear features are
    fine (minimum-norm solution). NaN when the ratings do not vary.
    """
    c = np.asarray(item_counts, np.float64)
    s = np.asarray(item_sums, np.float64)
    a = sp.hstack([sp.csr_matrix(np.ones((len(c), 1))), sp.csr_matrix(features, dtype=np.float64)]).tocsr()
    xtx = (a.T @ sp.diags(c) @ a).toarray()
    xty = a.T @ s
    yty = float(np.sum(item_sumsq))
    n = c.sum()
    sst = yty - s.sum() ** 2 / n if n else 0.0
    if sst <= 1e-12 * max(yty, 1.0):
        return float("nan")
    beta = np.linalg.lstsq(xtx, xty, rcond=None)[0]
    ssr = yty - float(beta @ xty)
    return float(min(max(1.0 - ssr / sst, 0.0), 1.0))


# --------------------------------------------------------------------------------------------- tags, users


def top_tags(tags: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """The ``k`` most applied tags (lower-cased, whitespace-stripped): tag, n_applications, n_movies, n_users.

    ``tags`` has columns userId, movieId, tag (one row per application). Ties break alphabetically.
    """
    cols = ["tag", "n_applications", "n_movies", "n_users"]
    if tags is None or not len(tags):
        return pd.DataFrame({c: [] for c in cols})
    t = pd.DataFrame({"tag": tags["tag"].astype("string").str.strip().str.lower(),
                      "movieId": tags["movieId"].to_numpy(), "userId": tags["userId"].to_numpy()})
    t = t[t["tag"].notna() & (t["tag"] != "")]
    g = t.groupby("tag", sort=False)
    df = pd.DataFrame({"n_applications": g.size(), "n_movies": g["movieId"].nunique(),
                       "n_users": g["userId"].nunique()}).reset_index()
    df = df.sort_values(["n_applications", "tag"], ascending=[False, True], kind="stable").head(k)
    return df[cols].reset_index(drop=True).astype({"tag": object})


def age_group(age: pd.Series | np.ndarray) -> pd.Categorical:
    """ml-1m's age groups for ages (ml-100k) or ml-1m's group codes (1, 18, 25, ...); NaN stays missing."""
    return pd.cut(pd.Series(age, dtype="float64"), bins=[*AGE_EDGES, np.inf], labels=list(AGE_LABELS),
                  right=False)


def demographics(
    users: pd.DataFrame, user_ids: np.ndarray, user_counts: np.ndarray, user_rating_sums: np.ndarray
) -> dict[str, pd.DataFrame]:
    """Users, ratings and mean rating per gender, age group and occupation, for the users that rated.

    users: the catalogue's userId plus any of gender, age, occupation; user_ids: int64 [n_users] raw ids in
    the data set's user-index order; user_counts, user_rating_sums: [n_users] ratings per user and their sum.
    Returns {"gender"|"age"|"occupation": frame with group, n_users, share_users, n_ratings, share_ratings,
    mean_rating}, for the columns present. Users who rated but have no demographic row count as "unknown".
    """
    base = pd.DataFrame({"userId": np.asarray(user_ids, np.int64), "n": np.asarray(user_counts, np.float64),
                         "s": np.asarray(user_rating_sums, np.float64)})
    info = users.drop_duplicates("userId").set_index("userId")
    out: dict[str, pd.DataFrame] = {}
    total_users, total_ratings = max(len(base), 1), max(float(base["n"].sum()), 1.0)
    for col in ("gender", "age", "occupation"):
        if col not in info.columns:
            continue
        raw = info[col].reindex(base["userId"].to_numpy())
        if col == "age":
            group = pd.Series(age_group(raw.to_numpy()), index=base.index).astype(object)
        else:
            group = pd.Series(raw.to_numpy(), index=base.index).astype(object)
        group = group.where(group.notna(), "unknown").astype(str)
        g = base.groupby(group.to_numpy(), sort=False)
        df = pd.DataFrame({"n_users": g.size(), "n_ratings": g["n"].sum(), "s": g["s"].sum()})
        df.index.name = "group"
        df = df.reset_index()
        df["n_ratings"] = df["n_ratings"].round().astype(np.int64)
        df["share_users"] = df["n_users"] / total_users
        df["share_ratings"] = df["n_ratings"] / total_ratings
        df["mean_rating"] = df["s"] / df["n_ratings"].where(df["n_ratings"] > 0)
        if col == "age":
            order = {lab: i for i, lab in enumerate(AGE_LABELS)}
            df = df.sort_values("group", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
        else:
            df = df.sort_values(["n_users", "group"], ascending=[False, True], kind="stable")
        out[col] = df[["group", "n_users", "share_users", "n_ratings", "share_ratings", "mean_rating"]].reset_index(
            drop=True)
    return out


__all__ = [
    "AGE_LABELS", "age_group", "boxplot_stats_from_hist", "count_summary", "demographics", "genre_frequencies",
    "gini", "hist_quantiles", "item_r2", "item_rating_histograms", "lorenz", "monthly_counts", "phi_correlation",
    "rank_curve", "rating_codes", "rating_distribution", "strongest_pairs", "top_tags", "vif", "vif_from_corr",
]
