"""The EDA run: compute every statistic once, draw the figures, write the HTML report, tables and summary.

:func:`run_eda` writes into ``out_dir``::

    eda.html        one self-contained page (figures inlined as data URIs)
    figures/*.png   every figure
    tables/*.csv    every table shown in the report (and a few more rows than the page shows)
    summary.json    the headline numbers (:data:`EdaReport.summary`)

The ratings are touched only by a handful of vectorised passes (bincounts over user, movie, rating code
and month); every later statistic works on those per-user, per-movie or per-(movie, rating) aggregates, so
ml-20m-sized data takes seconds. The statistics are exact; ``sample`` caps only the dots of the scatter
plot of mean rating against activity.

Summary keys (numbers unless noted; a non-finite value is stored as null; genre, tag, time and demographic
keys only when the data set has that information): dataset, source (str), n_ratings, n_users, n_movies
(rated), n_movies_catalog, density, sparsity; rating_min, rating_max, rating_mean, rating_median, rating_std,
rating_mode, rating_mode_share, n_rating_values; per_user_* and per_movie_* (min, median, mean, p90, max),
gini_users, gini_movies, top10_users_share, top10_movies_share, movies_with_one_rating,
movies_under_10_ratings, corr_log_activity_mean_users, corr_log_activity_mean_movies; first_month,
last_month, busiest_month (str "YYYY-MM"), n_months, busiest_month_ratings, n_unknown_timestamps; n_genres,
n_movies_without_genre, mean_genres_per_movie, top_genre_movies, top_genre_ratings, best_genre, worst_genre
(str), best_genre_mean, worst_genre_mean, genre_rating_r2; vif_movies, max_vif, max_vif_genre (str),
n_vif_over_5, n_vif_over_10, n_vif_infinite, max_abs_corr, max_corr_pair (str "A / B"); n_tag_applications,
n_distinct_tags, top_tag (str); has_demographics, n_users_with_demographics, top_gender / top_age /
top_occupation (str) and their *_share; scatter_points, scatter_sampled, sample, seed; seconds and
step_seconds (dict: step name -> seconds, for the steps before the report is written).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.eda import plots
from movierec.eda import stats as S
from movierec.fsutil import atomic_write_text

TEMPLATE = "eda.html.j2"
#: every figure and table name a run may write (stale copies from an earlier run are removed)
FIGURE_NAMES = ("rating_distribution", "long_tail", "activity_vs_rating", "ratings_over_time", "genre_frequencies",
                "genre_boxplots", "genre_correlation", "genre_vif", "top_tags", "demographics")
TABLE_NAMES = ("overview", "rating_distribution", "activity", "ratings_per_month", "genre_frequencies",
               "genre_boxplots", "genre_correlation", "genre_vif", "genre_pairs", "top_tags",
               "demographics_gender", "demographics_age", "demographics_occupation")


@dataclass
class Figure:
    """One figure of the report: ``name`` (file stem), ``title``, ``caption`` (generated) and PNG ``path``."""

    name: str
    title: str
    caption: str
    path: Path


@dataclass
class EdaReport:
    """What :func:`run_eda` produced.

    summary: JSON-able headline numbers (see the module docstring for the keys); figures: in report order;
    tables: name -> DataFrame (also written as tables/NAME.csv); notes: section -> generated sentences;
    html_path: the written eda.html.
    """

    summary: dict
    figures: list[Figure]
    tables: dict[str, pd.DataFrame]
    notes: dict[str, str]
    html_path: Path


#: the page, in order: (section id, title, note keys, figure names, [(table name, table title)]); a section
#: is shown when the run wrote at least one of its notes, with the figures and tables the run produced
LAYOUT: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    ("eda-overview", "Shape and sparsity", ("overview",), (), ()),
    ("eda-ratings", "Rating distribution", ("ratings",), ("rating_distribution",),
     (("rating_distribution", "Ratings per value"),)),
    ("eda-long-tail", "Ratings per user and per movie: the long tail", ("long_tail", "activity_vs_rating"),
     ("long_tail", "activity_vs_rating"), (("activity", "Ratings per user and per movie"),)),
    ("eda-time", "Ratings over time", ("time",), ("ratings_over_time",), ()),
    ("eda-genres", "Genre frequencies", ("genres",), ("genre_frequencies",), (("genre_frequencies", "Genres"),)),
    ("eda-genre-ratings", "Ratings by genre (univariate analysis)", ("boxplots",), ("genre_boxplots",),
     (("genre_boxplots", "Ratings by genre"),)),
    ("eda-multicollinearity", "Genre co-occurrence and multicollinearity", ("multicollinearity",),
     ("genre_correlation", "genre_vif"),
     (("genre_vif", "Variance inflation factors"), ("genre_pairs", "Most correlated genre pairs"))),
    ("eda-tags", "Top tags", ("tags",), ("top_tags",), (("top_tags", "Most applied tags"),)),
    ("eda-demographics", "User demographics", ("demographics",), ("demographics",),
     (("demographics_gender", "Users by gender"), ("demographics_age", "Users by age group"),
      ("demographics_occupation", "Users by occupation"))),
)


# --------------------------------------------------------------------------------------------- formatting


def _n(x: float) -> str:
    return f"{float(x):,.0f}"


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _num(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:,.{digits}f}"


def _rating(x: float) -> str:
    return f"{x:g}"


def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


# column formats of the HTML tables: a callable per column name (default: str / 3 decimals for floats)
_COL_FMT: dict[str, Callable[[Any], str]] = {
    "share": _pct, "share_movies": _pct, "share_ratings": _pct, "share_users": _pct,
    "top1_share": _pct, "top10_share": _pct, "top20_share": _pct,
    "mean_rating": lambda v: _num(v, 3), "mean": lambda v: _num(v, 2), "vif": lambda v: _num(v, 2),
    "r2": lambda v: _num(v, 3), "corr": lambda v: _num(v, 3), "gini": lambda v: _num(v, 3),
    "rating": _rating,
}


def _cell(col: str, v: Any) -> str:
    if col in _COL_FMT and isinstance(v, (int, float, np.integer, np.floating)):
        return _COL_FMT[col](float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "n/a"
        if math.isinf(f):
            return "∞"
        return f"{f:,.0f}" if f.is_integer() else (f"{f:,.3f}".rstrip("0").rstrip(".") or "0")
    return str(v)


def _html_table(df: pd.DataFrame, max_rows: int | None = None) -> dict:
    shown = df if max_rows is None else df.head(max_rows)
    text = [c for c in shown.columns if not pd.api.types.is_numeric_dtype(shown[c])]
    rows = [[_cell(c, v) for c, v in zip(shown.columns, r, strict=True)] for r in shown.itertuples(index=False)]
    return {"columns": [str(c).replace("_", " ") for c in shown.columns],
            "text": [c in text for c in shown.columns], "rows": rows, "more": len(df) - len(shown)}


# --------------------------------------------------------------------------------------------- the run


class _Steps:
    """Calls ``progress`` with each step's name and records how long each step took."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.times: dict[str, float] = {}
        self._name: str | None = None
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        self.close()
        if self.progress is not None:
            self.progress(name)
        self._name, self._t = name, time.perf_counter()

    def close(self) -> None:
        if self._name is not None:
            self.times[self._name] = time.perf_counter() - self._t
            self._name = None


def run_eda(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    sample: int = 1_000_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EdaReport:
    """Explore ``dataset`` and write the report into ``out_dir`` (created if needed); see the module docstring.

    sample: the most dots drawn in the scatter plot of mean rating against activity (users and movies
    together; a uniform random subset with ``seed`` beyond that). Every statistic uses all ratings.
    progress: called with a short step name before each step.
    """
    if sample < 1:
        raise ValueError("sample must be at least 1")
    t_start = time.perf_counter()
    step = _Steps(progress)
    out = Path(out_dir)
    fig_dir, tab_dir = out / "figures", out / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    plt = plots.pyplot()

    figures: list[Figure] = []
    tables: dict[str, pd.DataFrame] = {}
    notes: dict[str, str] = {}
    summary: dict[str, Any] = {"dataset": dataset.name, "source": dataset.source}

    def figure(name: str, title: str, caption: str, draw: Callable[[], Any]) -> str:
        from movierec._html import save_figure

        with plt.rc_context(plots.STYLE):
            fig = draw()
            path = save_figure(fig, fig_dir / f"{name}.png")
        figures.append(Figure(name, title, caption, path))
        return name

    # ---------------------------------------------------------------- counts (one pass over the ratings each)
    step("counting")
    inter = dataset.interactions
    n, n_users, n_items = len(inter), dataset.n_users, dataset.n_items
    if n == 0:
        raise ValueError(f"{dataset.name} has no ratings to explore")
    user_counts = np.bincount(inter.user, minlength=n_users)
    item_counts = np.bincount(inter.item, minlength=n_items)
    values, codes = S.rating_codes(inter.rating)
    item_hist = S.item_rating_histograms(inter.item, codes, n_items, len(values))  # [n_items, V]
    del codes
    item_sums = item_hist @ values
    item_sumsq = item_hist @ (values * values)
    user_sums = np.bincount(inter.user, weights=inter.rating, minlength=n_users)
    catalog = dataset.catalog
    n_catalog = int(catalog.movies["movieId"].nunique()) if catalog is not None else 0
    density = n / max(n_users * n_items, 1)
    summary.update(n_ratings=n, n_users=n_users, n_movies=n_items, n_movies_catalog=n_catalog, density=density,
                   sparsity=1.0 - density)
    overview = pd.DataFrame({
        "measure": ["ratings", "users", "movies rated", "movies in the catalogue", "user x movie cells",
                    "density (ratings / cells)", "sparsity (1 - density)"],
        "value": [_n(n), _n(n_users), _n(n_items), _n(n_catalog) if catalog is not None else "n/a",
                  _n(n_users * n_items), f"{100 * density:.4f}%", f"{100 * (1 - density):.4f}%"],
    })
    tables["overview"] = overview
    notes["overview"] = (
        f"{dataset.name} has {_n(n)} ratings by {_n(n_users)} users of {_n(n_items)} movies"
        + (f" ({_n(n_catalog)} movies in the catalogue)" if catalog is not None else "")
        + f". Only {_pct(density, 2)} of the {_n(n_users * n_items)} user × movie cells hold a rating: the matrix is"
        f" {_pct(1 - density, 2)} sparse, and an average user has rated {_pct(user_counts.mean() / n_items, 2)}"
        " of the movies."
    )

    # ---------------------------------------------------------------- rating distribution
    step("rating distribution")
    counts_v = np.asarray(item_hist.sum(axis=0)).ravel().astype(np.int64)
    dist = pd.DataFrame({"rating": values, "count": counts_v, "share": counts_v / n})
    tables["rating_distribution"] = dist
    mean = float(counts_v @ values / n)
    std = float(np.sqrt(max(counts_v @ (values - mean) ** 2 / n, 0.0)))
    median = float(S.hist_quantiles(values, counts_v[None, :], [50])[0, 0])
    mode = int(np.argmax(counts_v))
    steps = np.diff(values)
    half = bool(len(values) > 1 and np.allclose(values * 2, np.round(values * 2)) and (values % 1 != 0).any())
    whole_share = float(counts_v[values % 1 == 0].sum() / n)
    summary.update(rating_min=float(values[0]), rating_max=float(values[-1]), rating_mean=mean,
                   rating_median=median, rating_std=std, rating_mode=float(values[mode]),
                   rating_mode_share=float(counts_v[mode] / n), n_rating_values=len(values))
    scale = (f"in half-star steps from {_rating(values[0])} to {_rating(values[-1])}" if half
             else f"from {_rating(values[0])} to {_rating(values[-1])}"
             + (f" in steps of {_rating(float(steps.min()))}" if len(steps) and np.allclose(steps, steps[0]) else ""))
    mid = float(values[0] + values[-1]) / 2
    above = float(dist.loc[dist["rating"] > mid, "share"].sum())
    below = float(dist.loc[dist["rating"] < mid, "share"].sum())
    lean = ("so the distribution leans towards the top of the scale" if above > below + 0.2 else
            "so the distribution leans towards the bottom of the scale" if below > above + 0.2 else
            "so the distribution is roughly balanced around the middle of the scale")
    notes["ratings"] = (
        f"Ratings run {scale} ({len(values)} distinct values). The mean is {mean:.2f} (standard deviation"
        f" {std:.2f}) and the median {_rating(median)}; the most common rating is {_rating(values[mode])}"
        f" ({_pct(counts_v[mode] / n)} of all ratings). {_pct(above)} of ratings lie above the scale's midpoint"
        f" {_rating(mid)} and {_pct(below)} below it, {lean}."
        + (f" Whole stars account for {_pct(whole_share)} of ratings." if half else "")
    )
    figure("rating_distribution", "Rating distribution",
           f"Number of ratings per rating value over all {_n(n)} ratings (share of the total above each bar).",
           lambda: plots.rating_distribution(dist))

    # ---------------------------------------------------------------- long tail
    step("long tail")
    us, its = S.count_summary(user_counts), S.count_summary(item_counts)
    g_u, g_i = us["gini"], its["gini"]
    activity = pd.DataFrame([{"of": "users", **us}, {"of": "movies", **its}])
    activity = activity[["of", "n", "min", "p25", "median", "mean", "p75", "p90", "p99", "max", "gini",
                         "top1_share", "top10_share", "top20_share"]]
    tables["activity"] = activity
    one = int((item_counts == 1).sum())
    lt10 = int((item_counts < 10).sum())
    for who, s in (("per_user", us), ("per_movie", its)):
        summary.update({f"{who}_{k}": s[k] for k in ("min", "median", "mean", "p90", "max")})
    summary.update(gini_users=g_u, gini_movies=g_i, top10_users_share=us["top10_share"],
                   top10_movies_share=its["top10_share"], movies_with_one_rating=one,
                   movies_under_10_ratings=lt10)
    notes["long_tail"] = (
        f"Activity is very unequal. The median user has {_n(us['median'])} ratings but the mean is"
        f" {us['mean']:.1f} and the most active user has {_n(us['max'])}; the 10% most active users give"
        f" {_pct(us['top10_share'])} of all ratings (Gini {g_u:.3f}). Movies are {'more' if g_i > g_u else 'less'}"
        f" concentrated: the median movie has {_n(its['median'])} ratings, the 10% most rated movies receive"
        f" {_pct(its['top10_share'])} of all ratings (Gini {g_i:.3f}), and {_n(one)} movies"
        f" ({_pct(one / n_items)}) have a single rating; {_pct(lt10 / n_items)} of movies have fewer than 10."
        " On the log-log rank plot this is the long tail: a short head of very active users and very popular"
        " movies, then a long tail with little data each, which is where collaborative filtering struggles."
    )
    figure("long_tail", "Ratings per user and per movie (log-log) and Lorenz curves",
           f"Left: ratings of each user and each movie against its rank, both axes logarithmic ({_n(n_users)} users,"
           f" {_n(n_items)} movies). Right: Lorenz curves; Gini {g_u:.3f} for users and {g_i:.3f} for movies"
           " (0 = everyone equal, 1 = one holds everything).",
           lambda: plots.long_tail(S.rank_curve(user_counts), S.rank_curve(item_counts), S.lorenz(user_counts),
                                   S.lorenz(item_counts), g_u, g_i))
    # scatter: mean rating against activity, sampled down to `sample` dots in all
    rng = np.random.default_rng(seed)
    total_pts = n_users + n_items
    if total_pts > sample:
        k_u = int(np.rint(sample * n_users / total_pts))
        pick_u = np.sort(rng.choice(n_users, size=k_u, replace=False))
        pick_i = np.sort(rng.choice(n_items, size=sample - k_u, replace=False))
    else:
        pick_u, pick_i = np.arange(n_users), np.arange(n_items)
    drawn = len(pick_u) + len(pick_i)
    u_mean = user_sums / np.maximum(user_counts, 1)
    i_mean = item_sums / np.maximum(item_counts, 1)
    corr_u = _corr(np.log(np.maximum(user_counts, 1)), u_mean)
    corr_i = _corr(np.log(np.maximum(item_counts, 1)), i_mean)
    summary.update(scatter_points=drawn, scatter_sampled=drawn < total_pts, sample=sample, seed=seed,
                   corr_log_activity_mean_users=corr_u, corr_log_activity_mean_movies=corr_i)
    figure("activity_vs_rating", "Mean rating against number of ratings",
           ("One dot per user (left) and movie (right)" + (
               f"; a random {_n(drawn)} of the {_n(total_pts)} (seed {seed})" if drawn < total_pts else "")
            + f". Correlation of log(ratings) with mean rating: {corr_u:+.2f} for users, {corr_i:+.2f} for movies."),
           lambda: plots.activity_vs_rating(user_counts[pick_u], u_mean[pick_u], item_counts[pick_i],
                                            i_mean[pick_i]))
    notes["activity_vs_rating"] = _activity_note(corr_u, corr_i)

    # ---------------------------------------------------------------- time
    step("time")
    monthly = S.monthly_counts(inter.timestamp, inter.rating)
    unknown = int((inter.timestamp <= 0).sum())
    summary["n_unknown_timestamps"] = unknown
    if len(monthly):
        tables["ratings_per_month"] = monthly
        busiest = int(monthly["n_ratings"].idxmax())
        by_year = monthly.assign(year=monthly["month"].str[:4]).groupby("year")["n_ratings"].sum()
        summary.update(first_month=monthly["month"].iloc[0], last_month=monthly["month"].iloc[-1],
                       n_months=len(monthly), busiest_month=monthly["month"].iloc[busiest],
                       busiest_month_ratings=int(monthly["n_ratings"].iloc[busiest]))
        empty = int((monthly["n_ratings"] == 0).sum())
        ratio = float(monthly["n_ratings"].max() / max(float(monthly["n_ratings"].median()), 1.0))
        notes["time"] = (
            f"Ratings span {len(monthly)} months, from {monthly['month'].iloc[0]} to {monthly['month'].iloc[-1]}."
            f" The busiest month is {monthly['month'].iloc[busiest]} with"
            f" {_n(monthly['n_ratings'].iloc[busiest])} ratings ({_pct(monthly['n_ratings'].iloc[busiest] / n)} of"
            f" all); the busiest year is {by_year.idxmax()} ({_pct(by_year.max() / n)})"
            + (f"; {empty} months have no rating at all" if empty else "")
            + f". The busiest month has {ratio:.1f} times the ratings of the median month"
            + (", so activity comes in bursts rather than a steady stream, one reason why a temporal split and a"
               " random split can give different pictures." if ratio >= 3 else ", so activity is fairly even.")
            + (f" {_n(unknown)} ratings have no timestamp and are left out." if unknown else "")
        )
        figure("ratings_over_time", "Ratings over time",
               f"Ratings per calendar month (UTC) and the month's mean rating, {monthly['month'].iloc[0]} to"
               f" {monthly['month'].iloc[-1]}.", lambda: plots.ratings_over_time(monthly))
    else:
        notes["time"] = "This data set has no timestamps, so there is no time line."

    # ---------------------------------------------------------------- genres
    genre_m, names = _genres(dataset)
    if genre_m is not None and len(names):
        step("genres")
        freq = S.genre_frequencies(genre_m, names, item_counts, item_sums)
        tables["genre_frequencies"] = freq
        no_genre = int((np.diff(genre_m.indptr) == 0).sum())
        by_r = freq.sort_values("n_ratings", ascending=False, kind="stable")
        rated = freq[freq["n_ratings"] > 0]
        best = rated.loc[rated["mean_rating"].idxmax()] if len(rated) else None
        worst = rated.loc[rated["mean_rating"].idxmin()] if len(rated) else None
        multi = float((np.diff(genre_m.indptr) > 1).sum() / max(n_items - no_genre, 1))
        mean_genres = float(np.diff(genre_m.indptr).sum() / max(n_items - no_genre, 1))
        summary.update(n_genres=len(names), n_movies_without_genre=no_genre,
                       top_genre_movies=freq["genre"].iloc[0], top_genre_ratings=by_r["genre"].iloc[0],
                       best_genre=None if best is None else best["genre"],
                       best_genre_mean=None if best is None else float(best["mean_rating"]),
                       worst_genre=None if worst is None else worst["genre"],
                       worst_genre_mean=None if worst is None else float(worst["mean_rating"]),
                       mean_genres_per_movie=mean_genres)
        top3 = [f"{r.genre} ({_n(r.n_movies)})" for r in freq.head(3).itertuples()]
        notes["genres"] = (
            f"The {_n(n_items - no_genre)} rated movies with a genre carry {len(names)} genres,"
            f" {mean_genres:.2f} per movie on average ({_pct(multi)} have more than one)"
            + (f"; {_n(no_genre)} rated movies have none listed" if no_genre else "")
            + f". The most frequent are {_list(top3)}. By ratings, {by_r['genre'].iloc[0]} leads with"
            f" {_pct(by_r['share_ratings'].iloc[0])} of all ratings"
            + (f" while {freq['genre'].iloc[-1]} is the rarest genre ({_n(freq['n_movies'].iloc[-1])} movies)"
               if len(freq) > 1 else "") + "."
        )
        figure("genre_frequencies", "Genre frequencies",
               f"Left: rated movies per genre ({_n(n_items - no_genre)} movies with at least one genre). Right: each"
               " genre's share of all ratings (a rating of a movie with several genres counts in each).",
               lambda: plots.genre_frequencies(freq))

        # ------------------------------------------------------------ box plots (univariate analysis)
        step("boxplots")
        genre_hist = np.asarray((sp.csr_matrix(genre_m, dtype=np.float64).T @ item_hist).toarray()).round()
        box = S.boxplot_stats_from_hist(values, genre_hist.astype(np.int64), names)
        r2 = S.item_r2(genre_m, item_counts, item_sums, item_sumsq)
        summary["genre_rating_r2"] = r2
        box.sort(key=lambda s: (-s["med"], -s["mean"], s["label"]))
        box_df = pd.DataFrame([{"genre": s["label"], "n": s["n"], "mean": s["mean"], "q1": s["q1"],
                                "median": s["med"], "q3": s["q3"], "whisker_low": s["whislo"],
                                "whisker_high": s["whishi"],
                                "outliers": " ".join(_rating(v) for v in s["fliers"])} for s in box])
        tables["genre_boxplots"] = box_df
        if len(box):
            notes["boxplots"] = _boxplot_note(box_df, std, r2, len(names))
        figure("genre_boxplots", "Ratings by genre",
               "Distribution of all ratings of each genre's movies, sorted by median then mean (n = ratings)."
               " Statistics are exact, computed from per-genre rating histograms; outlier dots are distinct"
               " rating values beyond the whiskers, each standing for many ratings.",
               lambda: plots.genre_boxplots(box, values))

        # ------------------------------------------------------------ correlation and VIF
        step("multicollinearity")
        rows = np.flatnonzero(np.diff(genre_m.indptr) > 0)  # movies with at least one genre
        x = genre_m[rows]
        corr = S.phi_correlation(x)
        vifs = S.vif_from_corr(corr)
        corr_df = pd.DataFrame(corr, index=pd.Index(names, name="genre"), columns=names)
        tables["genre_correlation"] = corr_df.reset_index()
        vif_df = pd.DataFrame({"genre": names, "vif": vifs,
                               "r2": np.where(np.isfinite(vifs), 1 - 1 / vifs, np.where(np.isinf(vifs), 1.0, np.nan)),
                               "n_movies": np.asarray(x.sum(axis=0)).ravel().astype(np.int64)})
        vif_df = vif_df.sort_values("vif", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
        tables["genre_vif"] = vif_df
        pairs = S.strongest_pairs(corr, names, k=10)
        tables["genre_pairs"] = pairs
        notes["multicollinearity"] = _vif_note(vif_df, pairs, len(rows))
        fin = vif_df["vif"].dropna()
        summary.update(vif_movies=len(rows), max_vif=float(fin.max()) if len(fin) else None,
                       max_vif_genre=str(vif_df["genre"].iloc[0]) if len(fin) else None,
                       n_vif_over_5=int((fin > 5).sum()), n_vif_over_10=int((fin > 10).sum()),
                       n_vif_infinite=int(np.isinf(fin).sum()),
                       max_abs_corr=float(abs(pairs["corr"].iloc[0])) if len(pairs) else None,
                       max_corr_pair=f"{pairs['a'].iloc[0]} / {pairs['b'].iloc[0]}" if len(pairs) else None)
        if len(names) >= 2:  # a heatmap or VIF needs two genres
            figure("genre_correlation", "Genre co-occurrence correlation",
                   f"Phi correlation (Pearson correlation of 0/1 indicators) between genres over the"
                   f" {_n(len(rows))} rated movies with at least one genre; red: genres that appear together more"
                   " often than chance, blue: less often.", lambda: plots.genre_correlation(corr, names))
            figure("genre_vif", "Variance inflation factors of the genre indicators",
                   "VIF_j = 1 / (1 - R²_j), R²_j from regressing genre j's indicator on all the other genres (with"
                   " an intercept), over the same movies. Dashed lines: the usual warning levels 5 (and 10 when"
                   " values come near it).", lambda: plots.genre_vif(vif_df))
    else:
        notes["genres"] = "No genre information (no catalogue or no genres listed), so the genre analyses are skipped."

    # ---------------------------------------------------------------- tags
    tags = catalog.tags if catalog is not None else None
    if tags is not None and len(tags):
        step("tags")
        top = S.top_tags(tags, k=25)
        tables["top_tags"] = top
        norm = tags["tag"].astype("string").str.strip().str.lower()
        n_distinct = int(norm[norm.notna() & (norm != "")].nunique())
        summary.update(n_tag_applications=len(tags), n_distinct_tags=n_distinct,
                       top_tag=str(top["tag"].iloc[0]) if len(top) else None)
        top_share = float(top["n_applications"].sum() / len(tags)) if len(top) else 0.0
        notes["tags"] = (
            f"Users applied {_n(len(tags))} tags ({_n(n_distinct)} distinct after lower-casing) to"
            f" {_n(tags['movieId'].nunique())} movies; {_n(tags['userId'].nunique())} users tagged at all. The"
            f" {len(top)} most frequent tags make up {_pct(top_share)} of all applications; the top one is"
            f" “{top['tag'].iloc[0]}” ({_n(top['n_applications'].iloc[0])} times)."
            if len(top) else f"Users applied {_n(len(tags))} tags."
        )
        figure("top_tags", "Top tags", f"The {len(top)} most applied tags (lower-cased, trimmed).",
               lambda: plots.top_tags(top))
    else:
        summary.update(n_tag_applications=0, n_distinct_tags=0, top_tag=None)

    # ---------------------------------------------------------------- demographics
    users = catalog.users if catalog is not None else None
    has_demo = users is not None and "userId" in users and any(c in users for c in ("gender", "age", "occupation"))
    summary["has_demographics"] = bool(has_demo)
    if has_demo:
        step("demographics")
        demo = S.demographics(users, dataset.users.ids, user_counts, user_sums)
        for k, df in demo.items():
            tables[f"demographics_{k}"] = df
        known = int(np.isin(dataset.users.ids, users["userId"].to_numpy(np.int64)).sum())
        summary["n_users_with_demographics"] = known
        notes["demographics"] = _demo_note(demo, known, n_users)
        for k, df in demo.items():
            top_g = df.sort_values("n_users", ascending=False, kind="stable").iloc[0]
            summary[f"top_{k}"] = str(top_g["group"])
            summary[f"top_{k}_share"] = float(top_g["share_users"])
        figure("demographics", "User demographics",
               f"Users per group among the {_n(n_users)} users who rated; each bar ends with the group's mean rating"
               " (over its ratings).", lambda: plots.demographics(demo))
    else:
        notes["demographics"] = ("This release has no user demographics (only ml-100k and ml-1m ship age, gender"
                                 " and occupation).")

    # ---------------------------------------------------------------- write
    step("report")
    for name, df in tables.items():
        atomic_write_text(tab_dir / f"{name}.csv", df.to_csv(index=False))
    written_figs = {f.name for f in figures}
    for name in FIGURE_NAMES:
        if name not in written_figs:
            (fig_dir / f"{name}.png").unlink(missing_ok=True)
    for name in TABLE_NAMES:
        if name not in tables:
            (tab_dir / f"{name}.csv").unlink(missing_ok=True)
    summary["step_seconds"] = {k: round(v, 3) for k, v in step.times.items()}
    summary["seconds"] = time.perf_counter() - t_start
    report = EdaReport(summary=_jsonable(summary), figures=figures, tables=tables, notes=notes,
                       html_path=out / "eda.html")
    atomic_write_text(out / "summary.json", json.dumps(report.summary, indent=2) + "\n")
    atomic_write_text(report.html_path, _render_page(report))
    step.close()
    return report


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, NaN when either side is constant or has fewer than 3 values."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _activity_note(corr_u: float, corr_i: float) -> str:
    if not np.isfinite(corr_i):
        return "Mean ratings do not vary across movies (or there are too few movies), so there is no relation to study."
    size = abs(corr_i)
    strength = "no clear" if size < 0.1 else "a weak" if size < 0.3 else "a moderate" if size < 0.5 else "a strong"
    if corr_i >= 0.1:
        reading = ("popular movies tend to be rated a little better, so popularity carries some quality signal"
                   if size < 0.3 else "popular movies are rated better, so popularity doubles as a quality signal")
    elif corr_i <= -0.1:
        reading = "popular movies tend to be rated worse, so popularity and quality pull apart"
    else:
        reading = "popularity says little about how well a movie is rated"
    users = f" For users the correlation is {corr_u:+.2f}." if np.isfinite(corr_u) else ""
    return (f"Among movies, the number of ratings has {strength} association with the mean rating (correlation"
            f" {corr_i:+.2f} with log ratings): {reading}.{users} Movies with few ratings spread over the whole"
            " scale, as means of small samples do.")


def _boxplot_note(box_df: pd.DataFrame, std: float, r2: float, n_genres: int) -> str:
    if std <= 0:
        return "Every rating has the same value, so ratings cannot differ by genre."
    hi, lo = box_df.loc[box_df["mean"].idxmax()], box_df.loc[box_df["mean"].idxmin()]
    meds = sorted(set(box_df["median"].tolist()))
    spread = float(hi["mean"] - lo["mean"])
    text = (f"Medians of the genres range from {_rating(meds[0])} to {_rating(meds[-1])}, and means from"
            f" {lo['mean']:.2f} ({lo['genre']}) to {hi['mean']:.2f} ({hi['genre']}): a spread of {spread:.2f} stars"
            f" against a rating standard deviation of {std:.2f}, so "
            + ("the boxes overlap heavily." if spread < 0.5 * std
               else "the genre means differ visibly but their boxes overlap." if spread < std
               else "the genres differ strongly."))
    if np.isfinite(r2):
        text += (f" A linear regression of the rating on all {n_genres} genre indicators explains R² = {r2:.3f} of its"
                 " variance, so "
                 + ("genre alone says little about a rating: it is a weak feature on its own, useful mainly in"
                    " combination with who is rating." if r2 < 0.1 else
                    "genre carries some of the rating signal, but most of it lies elsewhere (user and movie)."
                    if r2 < 0.25 else "genre carries a real part of the rating signal."))
    return text


def _genres(dataset: Dataset) -> tuple[sp.csr_matrix | None, list[str]]:
    """Genre multi-hot of the rated movies: CSR [n_items, n_genres] (0/1) and the genre names."""
    if dataset.catalog is None or "genres" not in dataset.catalog.movies:
        return None, []
    from movierec.features import genre_block

    m, names = genre_block(dataset.catalog, dataset.items.ids)
    return sp.csr_matrix(m), [g.removeprefix("genre:") for g in names]


def _vif_note(vif_df: pd.DataFrame, pairs: pd.DataFrame, n_movies: int) -> str:
    """The multicollinearity conclusion, worded from the VIF table and the strongest correlations."""
    v = vif_df.dropna(subset=["vif"])
    if not len(v):
        return "Too few genres vary across movies to measure multicollinearity."
    k = len(v)
    top = v.iloc[0]
    inf = v[np.isinf(v["vif"])]
    over10 = v[(v["vif"] > 10) & np.isfinite(v["vif"])]
    over5 = v[(v["vif"] > 5) & (v["vif"] <= 10)]
    pair = (f" The strongest pairwise association is {pairs['a'].iloc[0]} with {pairs['b'].iloc[0]}"
            f" (phi {pairs['corr'].iloc[0]:+.2f})." if len(pairs) else "")
    head = f"Over the {_n(n_movies)} rated movies with a genre, the largest variance inflation factor of the {k} genre"
    if len(inf):
        return (f"{head} indicators is infinite: {_list(inf['genre'].tolist())} "
                f"{'is an exact linear combination' if len(inf) == 1 else 'are exact linear combinations'} of the"
                " others, so they cannot all enter a linear model together; drop one of each dependent set." + pair)
    if len(over10):
        return (f"{head} indicators is {top['vif']:.1f} ({top['genre']}); {len(over10)} exceed 10"
                f" ({_list(over10['genre'].tolist())}), the usual sign of serious multicollinearity: those genres are"
                " largely predictable from the others, so their coefficients in a linear model would be unstable"
                " and they are better merged or dropped." + pair)
    if len(over5):
        return (f"{head} indicators is {top['vif']:.1f} ({top['genre']}); {len(over5)} lie between 5 and 10"
                f" ({_list(over5['genre'].tolist())}), moderate multicollinearity: usable together as features,"
                " but their individual coefficients should be read with care." + pair)
    mean_vif = float(v["vif"].mean())
    return (f"{head} indicators is only {top['vif']:.2f} ({top['genre']}) and the mean is {mean_vif:.2f}; none"
            " exceeds 5, let alone 10 (the usual warning levels). The genre indicators are only weakly collinear:"
            " no genre is predictable from the others (the highest R² is"
            f" {1 - 1 / top['vif']:.2f}), so all of them can be used together as features, and a model's"
            " per-genre weights remain interpretable." + pair)


def _demo_note(demo: dict[str, pd.DataFrame], known: int, n_users: int) -> str:
    parts = [f"{_n(known)} of the {_n(n_users)} users who rated have demographics."]
    if "gender" in demo:
        g = demo["gender"]
        parts.append("By gender: " + ", ".join(f"{r.group} {_pct(r.share_users)} of users"
                                                 f" ({_pct(r.share_ratings)} of ratings, mean {r.mean_rating:.2f})"
                                                 for r in g.itertuples()) + ".")
    if "age" in demo:
        a = demo["age"]
        top = a.loc[a["n_users"].idxmax()]
        rated = a[a["n_ratings"] > 0]
        hi, lo = rated.loc[rated["mean_rating"].idxmax()], rated.loc[rated["mean_rating"].idxmin()]
        parts.append(f"The largest age group is {top['group']} ({_pct(top['share_users'])} of users); mean ratings"
                     f" range from {lo['mean_rating']:.2f} ({lo['group']}) to {hi['mean_rating']:.2f} ({hi['group']}).")
    if "occupation" in demo:
        o = demo["occupation"]
        parts.append(f"{len(o)} occupations; the most common is {o['group'].iloc[0]}"
                     f" ({_pct(o['share_users'].iloc[0])} of users).")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------- HTML


def _context(report: EdaReport, embed: bool) -> dict:
    from movierec._html import data_uri

    figs = {f.name: f for f in report.figures}
    base = report.html_path.parent
    sm = report.summary
    sections = []
    for sid, title, note_keys, fig_names, table_specs in LAYOUT:
        if not any(k in report.notes for k in note_keys):
            continue
        fig_list = []
        for name in fig_names:
            if name not in figs:
                continue
            f = figs[name]
            if embed:
                src = data_uri(f.path)
            else:
                try:
                    src = Path(f.path).relative_to(base).as_posix()
                except ValueError:
                    src = Path(f.path).as_posix()
            fig_list.append({"name": f.name, "title": f.title, "caption": f.caption, "src": src})
        tabs = [{"name": t, "title": t_title, **_html_table(report.tables[t], max_rows=30)}
                for t, t_title in table_specs if t in report.tables]
        cards = []
        if sid == "eda-overview" and "n_ratings" in sm:
            cards = [("ratings", _n(sm["n_ratings"])), ("users", _n(sm["n_users"])), ("movies", _n(sm["n_movies"])),
                     ("density", _pct(sm["density"], 3)), ("sparsity", _pct(sm["sparsity"], 3))]
            if sm.get("gini_users") is not None:
                cards += [("Gini, ratings per user", f"{sm['gini_users']:.3f}"),
                          ("Gini, ratings per movie", f"{sm['gini_movies']:.3f}")]
            if sm.get("max_vif") is not None:
                cards.append(("max genre VIF", f"{sm['max_vif']:.2f}"))
        sections.append({"id": sid, "title": title, "notes": [report.notes[k] for k in note_keys if k in report.notes],
                         "figures": fig_list, "tables": tabs, "cards": cards})
    return {"title": str(sm.get("dataset", "")), "source": str(sm.get("source", "")), "sections": sections,
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": f"{sm.get('seconds') or 0:.1f}"}


def eda_fragment(report: EdaReport, embed: bool = True) -> str:
    """The report's ``<section>`` elements as an HTML fragment (no <html>/<body>) for embedding in another page.

    embed: inline figures as data URIs (self-contained); False links them as ``figures/NAME.png`` relative to
    the EDA folder. The same template block makes the body of eda.html.
    """
    from movierec._optional import template

    tmpl = template(TEMPLATE)
    ctx = tmpl.new_context(_context(report, embed))
    return "".join(tmpl.blocks["sections"](ctx)).strip() + "\n"


def _render_page(report: EdaReport) -> str:
    from movierec._optional import template

    return template(TEMPLATE).render(**_context(report, embed=True))


# --------------------------------------------------------------------------------------------- terminal


def summary_lines(report: EdaReport) -> list[str]:
    """About ten short plain-text lines with the headline numbers, for a terminal."""
    s = report.summary

    def g(key: str, default: Any = None) -> Any:
        v = s.get(key, default)
        return default if v is None else v

    lines = [
        f"{s['dataset']}: {_n(s['n_ratings'])} ratings, {_n(s['n_users'])} users, {_n(s['n_movies'])} movies"
        + (f" ({_n(s['n_movies_catalog'])} in catalogue)" if s.get("n_movies_catalog") else ""),
        f"density {_pct(s['density'], 3)}, sparsity {_pct(s['sparsity'], 3)}",
        f"ratings {_rating(s['rating_min'])}-{_rating(s['rating_max'])} ({s['n_rating_values']} values):"
        f" mean {s['rating_mean']:.2f}, median {_rating(s['rating_median'])}, most common"
        f" {_rating(s['rating_mode'])} ({_pct(s['rating_mode_share'])})",
        f"ratings per user: median {_n(s['per_user_median'])}, mean {s['per_user_mean']:.1f},"
        f" max {_n(s['per_user_max'])}; Gini {s['gini_users']:.3f}",
        f"ratings per movie: median {_n(s['per_movie_median'])}, mean {s['per_movie_mean']:.1f},"
        f" max {_n(s['per_movie_max'])}; Gini {s['gini_movies']:.3f};"
        f" top 10% of movies get {_pct(s['top10_movies_share'])}",
    ]
    if s.get("first_month"):
        lines.append(f"time: {s['first_month']} to {s['last_month']} ({s['n_months']} months),"
                     f" busiest {s['busiest_month']} ({_n(s['busiest_month_ratings'])} ratings)")
    if s.get("n_genres"):
        lines.append(f"genres: {s['n_genres']}; most movies {s['top_genre_movies']}, most ratings"
                     f" {s['top_genre_ratings']}; mean rating {g('worst_genre_mean', float('nan')):.2f}"
                     f" ({g('worst_genre', '-')}) to {g('best_genre_mean', float('nan')):.2f} ({g('best_genre', '-')})")
        if s.get("n_vif_infinite"):
            vif_line = f"genre VIF: {s['n_vif_infinite']} infinite (perfect collinearity)"
        elif s.get("max_vif") is not None:
            vif_line = (f"genre VIF: max {s['max_vif']:.2f} ({s['max_vif_genre']}); {s['n_vif_over_5']} above 5,"
                        f" {s['n_vif_over_10']} above 10")
        else:
            vif_line = "genre VIF: n/a"
        if s.get("max_corr_pair"):
            vif_line += f"; strongest pair {s['max_corr_pair']} (|phi| {s['max_abs_corr']:.2f})"
        lines.append(vif_line)
    if s.get("n_tag_applications"):
        lines.append(f"tags: {_n(s['n_tag_applications'])} applications, {_n(s['n_distinct_tags'])} distinct;"
                     f" top “{s['top_tag']}”")
    if s.get("has_demographics"):
        parts = [f"{_n(s.get('n_users_with_demographics', 0))} users"]
        for k in ("gender", "age", "occupation"):
            if s.get(f"top_{k}") is not None:
                parts.append(f"{k} {s[f'top_{k}']} {_pct(s[f'top_{k}_share'])}")
        lines.append("demographics: " + ", ".join(parts))
    else:
        lines.append("demographics: not in this release")
    lines.append(f"report: {report.html_path} ({len(report.figures)} figures, {s.get('seconds') or 0:.1f} s)")
    return lines


__all__ = ["EdaReport", "Figure", "eda_fragment", "run_eda", "summary_lines"]
