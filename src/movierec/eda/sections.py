"""The sections of the EDA, one function each, computed from aggregates made in one pass over the ratings.

:func:`aggregate` counts once (bincounts over user, movie and rating value) into :class:`Aggregates`; every
section function then works on those per-user, per-movie or per-(movie, rating) aggregates and returns a
:class:`Section`: its summary entries (in report order), tables, generated notes and figures to draw
(:class:`FigureSpec`; :func:`movierec.eda.explore.run_eda` draws them). Sections that need information a data
set may lack (genres, tags, demographics) have a ``no_*`` counterpart that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.data.features import genre_block
from movierec.eda import plots
from movierec.eda import stats as S
from movierec.eda.render import fmt_list, fmt_n, fmt_pct, fmt_rating


@dataclass
class FigureSpec:
    """A figure to draw: ``name`` (file stem), ``title``, ``caption`` and ``draw`` (returns a matplotlib Figure)."""

    name: str
    title: str
    caption: str
    draw: Callable[[], Any]


@dataclass
class Section:
    """What one section of the report adds: summary entries, tables (name -> frame), notes, figures."""

    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    figures: list[FigureSpec] = field(default_factory=list)


@dataclass
class Aggregates:
    """A data set's ratings reduced to per-user, per-movie and per-(movie, rating value) counts.

    user_counts: int64 [n_users] ratings per user; user_sums: float64 [n_users] their sum;
    item_counts: int64 [n_items] ratings per movie; item_sums, item_sumsq: float64 [n_items] sum and sum of
    squares of its ratings; values: float64 [V] the distinct rating values, ascending;
    item_hist: int64 CSR [n_items, V] ratings per (movie, rating value).
    """

    dataset: Dataset
    user_counts: np.ndarray
    user_sums: np.ndarray
    item_counts: np.ndarray
    item_sums: np.ndarray
    item_sumsq: np.ndarray
    values: np.ndarray
    item_hist: sp.csr_matrix

    @property
    def n(self) -> int:
        return len(self.dataset.interactions)

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items


def aggregate(dataset: Dataset) -> Aggregates:
    """The :class:`Aggregates` of ``dataset`` (ValueError if it has no ratings)."""
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
    return Aggregates(dataset, user_counts, user_sums, item_counts, item_sums, item_sumsq, values, item_hist)


# --------------------------------------------------------------------------------------------- ratings


IMPLICIT_NOTE = ("Implicit feedback: no ratings (every interaction has the same value), so the rating distribution"
                 " and the mean rating against activity are left out.")


def overview(agg: Aggregates) -> Section:
    """Shape and sparsity: counts of ratings, users and movies, density (ratings / cells) and sparsity."""
    dataset = agg.dataset
    n, n_users, n_items = agg.n, agg.n_users, agg.n_items
    catalog = dataset.catalog
    n_catalog = int(catalog.movies["movieId"].nunique()) if catalog is not None else 0
    density = n / max(n_users * n_items, 1)
    summary = dict(n_ratings=n, n_users=n_users, n_movies=n_items, n_movies_catalog=n_catalog, density=density,
                   sparsity=1.0 - density)
    table = pd.DataFrame({
        "measure": ["ratings", "users", "movies rated", "movies in the catalogue", "user x movie cells",
                    "density (ratings / cells)", "sparsity (1 - density)"],
        "value": [fmt_n(n), fmt_n(n_users), fmt_n(n_items), fmt_n(n_catalog) if catalog is not None else "n/a",
                  fmt_n(n_users * n_items), f"{100 * density:.4f}%", f"{100 * (1 - density):.4f}%"],
    })
    note = (
        f"{dataset.name} has {fmt_n(n)} ratings by {fmt_n(n_users)} users of {fmt_n(n_items)} movies"
        + (f" ({fmt_n(n_catalog)} movies in the catalogue)" if catalog is not None else "")
        + f". Only {fmt_pct(density, 2)} of the {fmt_n(n_users * n_items)} user × movie cells hold a rating: the"
        f" matrix is {fmt_pct(1 - density, 2)} sparse, and an average user has rated"
        f" {fmt_pct(agg.user_counts.mean() / n_items, 2)} of the movies."
    )
    return Section(summary, {"overview": table}, {"overview": note})


def rating_distribution(agg: Aggregates) -> Section:
    """Ratings per value: the table, mean, median, standard deviation, mode, and which way the scale leans."""
    values, n = agg.values, agg.n
    counts_v = np.asarray(agg.item_hist.sum(axis=0)).ravel().astype(np.int64)
    dist = pd.DataFrame({"rating": values, "count": counts_v, "share": counts_v / n})
    mean = float(counts_v @ values / n)
    std = float(np.sqrt(max(counts_v @ (values - mean) ** 2 / n, 0.0)))
    median = float(S.hist_quantiles(values, counts_v[None, :], [50])[0, 0])
    mode = int(np.argmax(counts_v))
    steps = np.diff(values)
    half = bool(len(values) > 1 and np.allclose(values * 2, np.round(values * 2)) and (values % 1 != 0).any())
    whole_share = float(counts_v[values % 1 == 0].sum() / n)
    summary = dict(rating_min=float(values[0]), rating_max=float(values[-1]), rating_mean=mean,
                   rating_median=median, rating_std=std, rating_mode=float(values[mode]),
                   rating_mode_share=float(counts_v[mode] / n), n_rating_values=len(values))
    scale = (f"in half-star steps from {fmt_rating(values[0])} to {fmt_rating(values[-1])}" if half
             else f"from {fmt_rating(values[0])} to {fmt_rating(values[-1])}"
             + (f" in steps of {fmt_rating(float(steps.min()))}" if len(steps) and np.allclose(steps, steps[0])
                else ""))
    mid = float(values[0] + values[-1]) / 2
    above = float(dist.loc[dist["rating"] > mid, "share"].sum())
    below = float(dist.loc[dist["rating"] < mid, "share"].sum())
    lean = ("so the distribution leans towards the top of the scale" if above > below + 0.2 else
            "so the distribution leans towards the bottom of the scale" if below > above + 0.2 else
            "so the distribution is roughly balanced around the middle of the scale")
    note = (
        f"Ratings run {scale} ({len(values)} distinct values). The mean is {mean:.2f} (standard deviation"
        f" {std:.2f}) and the median {fmt_rating(median)}; the most common rating is {fmt_rating(values[mode])}"
        f" ({fmt_pct(counts_v[mode] / n)} of all ratings). {fmt_pct(above)} of ratings lie above the scale's"
        f" midpoint {fmt_rating(mid)} and {fmt_pct(below)} below it, {lean}."
        + (f" Whole stars account for {fmt_pct(whole_share)} of ratings." if half else "")
    )
    fig = FigureSpec("rating_distribution", "Rating distribution",
                     f"Number of ratings per rating value over all {fmt_n(n)} ratings (share of the total above"
                     " each bar).", lambda: plots.rating_distribution(dist))
    return Section(summary, {"rating_distribution": dist}, {"ratings": note}, [fig])


def long_tail(agg: Aggregates) -> Section:
    """Ratings per user and per movie: distribution summaries, Gini, top-10% shares, rank and Lorenz curves."""
    user_counts, item_counts, n_users, n_items = agg.user_counts, agg.item_counts, agg.n_users, agg.n_items
    us, its = S.count_summary(user_counts), S.count_summary(item_counts)
    g_u, g_i = us["gini"], its["gini"]
    activity = pd.DataFrame([{"of": "users", **us}, {"of": "movies", **its}])
    activity = activity[["of", "n", "min", "p25", "median", "mean", "p75", "p90", "p99", "max", "gini",
                         "top1_share", "top10_share", "top20_share"]]
    one = int((item_counts == 1).sum())
    lt10 = int((item_counts < 10).sum())
    summary: dict[str, Any] = {}
    for who, s in (("per_user", us), ("per_movie", its)):
        summary.update({f"{who}_{k}": s[k] for k in ("min", "median", "mean", "p90", "max")})
    summary.update(gini_users=g_u, gini_movies=g_i, top10_users_share=us["top10_share"],
                   top10_movies_share=its["top10_share"], movies_with_one_rating=one,
                   movies_under_10_ratings=lt10)
    note = (
        f"Activity is very unequal. The median user has {fmt_n(us['median'])} ratings but the mean is"
        f" {us['mean']:.1f} and the most active user has {fmt_n(us['max'])}; the 10% most active users give"
        f" {fmt_pct(us['top10_share'])} of all ratings (Gini {g_u:.3f}). Movies are"
        f" {'more' if g_i > g_u else 'less'} concentrated: the median movie has {fmt_n(its['median'])} ratings, the"
        f" 10% most rated movies receive {fmt_pct(its['top10_share'])} of all ratings (Gini {g_i:.3f}), and"
        f" {fmt_n(one)} movies ({fmt_pct(one / n_items)}) have a single rating; {fmt_pct(lt10 / n_items)} of movies"
        " have fewer than 10. On the log-log rank plot this is the long tail: a short head of very active users and"
        " very popular movies, then a long tail with little data each, which is where collaborative filtering"
        " struggles."
    )
    fig = FigureSpec(
        "long_tail", "Ratings per user and per movie (log-log) and Lorenz curves",
        f"Left: ratings of each user and each movie against its rank, both axes logarithmic ({fmt_n(n_users)} users,"
        f" {fmt_n(n_items)} movies). Right: Lorenz curves; Gini {g_u:.3f} for users and {g_i:.3f} for movies"
        " (0 = everyone equal, 1 = one holds everything).",
        lambda: plots.long_tail(S.rank_curve(user_counts), S.rank_curve(item_counts), S.lorenz(user_counts),
                                S.lorenz(item_counts), g_u, g_i))
    return Section(summary, {"activity": activity}, {"long_tail": note}, [fig])


def activity_vs_rating(agg: Aggregates, sample: int, seed: int) -> Section:
    """Mean rating against number of ratings, per user and per movie; the scatter shows at most ``sample``
    dots in all (a uniform random subset drawn with ``seed`` beyond that)."""
    user_counts, item_counts, n_users, n_items = agg.user_counts, agg.item_counts, agg.n_users, agg.n_items
    rng = np.random.default_rng(seed)
    total_pts = n_users + n_items
    if total_pts > sample:
        k_u = int(np.rint(sample * n_users / total_pts))
        pick_u = np.sort(rng.choice(n_users, size=k_u, replace=False))
        pick_i = np.sort(rng.choice(n_items, size=sample - k_u, replace=False))
    else:
        pick_u, pick_i = np.arange(n_users), np.arange(n_items)
    drawn = len(pick_u) + len(pick_i)
    u_mean = agg.user_sums / np.maximum(user_counts, 1)
    i_mean = agg.item_sums / np.maximum(item_counts, 1)
    corr_u = _corr(np.log(np.maximum(user_counts, 1)), u_mean)
    corr_i = _corr(np.log(np.maximum(item_counts, 1)), i_mean)
    summary = dict(scatter_points=drawn, scatter_sampled=drawn < total_pts, sample=sample, seed=seed,
                   corr_log_activity_mean_users=corr_u, corr_log_activity_mean_movies=corr_i)
    fig = FigureSpec(
        "activity_vs_rating", "Mean rating against number of ratings",
        ("One dot per user (left) and movie (right)" + (
            f"; a random {fmt_n(drawn)} of the {fmt_n(total_pts)} (seed {seed})" if drawn < total_pts else "")
         + f". Correlation of log(ratings) with mean rating: {corr_u:+.2f} for users, {corr_i:+.2f} for movies."),
        lambda: plots.activity_vs_rating(user_counts[pick_u], u_mean[pick_u], item_counts[pick_i], i_mean[pick_i]))
    return Section(summary, {}, {"activity_vs_rating": _activity_note(corr_u, corr_i)}, [fig])


def ratings_over_time(agg: Aggregates) -> Section:
    """Ratings per calendar month (UTC): span, busiest month and year, and how bursty activity is."""
    inter, n = agg.dataset.interactions, agg.n
    monthly = S.monthly_counts(inter.timestamp, inter.rating)
    unknown = int((inter.timestamp <= 0).sum())
    out = Section({"n_unknown_timestamps": unknown})
    if not len(monthly):
        out.notes["time"] = "This data set has no timestamps, so there is no time line."
        return out
    out.tables["ratings_per_month"] = monthly
    busiest = int(monthly["n_ratings"].idxmax())
    by_year = monthly.assign(year=monthly["month"].str[:4]).groupby("year")["n_ratings"].sum()
    out.summary.update(first_month=monthly["month"].iloc[0], last_month=monthly["month"].iloc[-1],
                       n_months=len(monthly), busiest_month=monthly["month"].iloc[busiest],
                       busiest_month_ratings=int(monthly["n_ratings"].iloc[busiest]))
    empty = int((monthly["n_ratings"] == 0).sum())
    ratio = float(monthly["n_ratings"].max() / max(float(monthly["n_ratings"].median()), 1.0))
    out.notes["time"] = (
        f"Ratings span {len(monthly)} months, from {monthly['month'].iloc[0]} to {monthly['month'].iloc[-1]}."
        f" The busiest month is {monthly['month'].iloc[busiest]} with"
        f" {fmt_n(monthly['n_ratings'].iloc[busiest])} ratings ({fmt_pct(monthly['n_ratings'].iloc[busiest] / n)}"
        f" of all); the busiest year is {by_year.idxmax()} ({fmt_pct(by_year.max() / n)})"
        + (f"; {empty} months have no rating at all" if empty else "")
        + f". The busiest month has {ratio:.1f} times the ratings of the median month"
        + (", so activity comes in bursts rather than a steady stream, one reason why a temporal split and a"
           " random split can give different pictures." if ratio >= 3 else ", so activity is fairly even.")
        + (f" {fmt_n(unknown)} ratings have no timestamp and are left out." if unknown else "")
    )
    out.figures.append(FigureSpec(
        "ratings_over_time", "Ratings over time",
        f"Ratings per calendar month (UTC) and the month's mean rating, {monthly['month'].iloc[0]} to"
        f" {monthly['month'].iloc[-1]}.", lambda: plots.ratings_over_time(monthly)))
    return out


# --------------------------------------------------------------------------------------------- genres


def genres_of(dataset: Dataset) -> tuple[sp.csr_matrix | None, list[str]]:
    """Genre multi-hot of the rated movies: CSR [n_items, n_genres] (0/1) and the genre names (None, [] when
    there is no catalogue or it has no genres column)."""
    if dataset.catalog is None or "genres" not in dataset.catalog.movies:
        return None, []
    m, names = genre_block(dataset.catalog, dataset.items.ids)
    return sp.csr_matrix(m), [g.removeprefix("genre:") for g in names]


def genre_frequencies(agg: Aggregates, genre_m: sp.csr_matrix, names: list[str]) -> Section:
    """Movies and ratings per genre, genres per movie, the best and worst rated genre."""
    n_items = agg.n_items
    freq = S.genre_frequencies(genre_m, names, agg.item_counts, agg.item_sums)
    no_genre = int((np.diff(genre_m.indptr) == 0).sum())
    by_r = freq.sort_values("n_ratings", ascending=False, kind="stable")
    rated = freq[freq["n_ratings"] > 0]
    best = rated.loc[rated["mean_rating"].idxmax()] if len(rated) else None
    worst = rated.loc[rated["mean_rating"].idxmin()] if len(rated) else None
    multi = float((np.diff(genre_m.indptr) > 1).sum() / max(n_items - no_genre, 1))
    mean_genres = float(np.diff(genre_m.indptr).sum() / max(n_items - no_genre, 1))
    summary = dict(n_genres=len(names), n_movies_without_genre=no_genre,
                   top_genre_movies=freq["genre"].iloc[0], top_genre_ratings=by_r["genre"].iloc[0],
                   best_genre=None if best is None else best["genre"],
                   best_genre_mean=None if best is None else float(best["mean_rating"]),
                   worst_genre=None if worst is None else worst["genre"],
                   worst_genre_mean=None if worst is None else float(worst["mean_rating"]),
                   mean_genres_per_movie=mean_genres)
    top3 = [f"{r.genre} ({fmt_n(r.n_movies)})" for r in freq.head(3).itertuples()]
    note = (
        f"The {fmt_n(n_items - no_genre)} rated movies with a genre carry {len(names)} genres,"
        f" {mean_genres:.2f} per movie on average ({fmt_pct(multi)} have more than one)"
        + (f"; {fmt_n(no_genre)} rated movies have none listed" if no_genre else "")
        + f". The most frequent are {fmt_list(top3)}. By ratings, {by_r['genre'].iloc[0]} leads with"
        f" {fmt_pct(by_r['share_ratings'].iloc[0])} of all ratings"
        + (f" while {freq['genre'].iloc[-1]} is the rarest genre ({fmt_n(freq['n_movies'].iloc[-1])} movies)"
           if len(freq) > 1 else "") + "."
    )
    fig = FigureSpec(
        "genre_frequencies", "Genre frequencies",
        f"Left: rated movies per genre ({fmt_n(n_items - no_genre)} movies with at least one genre). Right: each"
        " genre's share of all ratings (a rating of a movie with several genres counts in each).",
        lambda: plots.genre_frequencies(freq))
    return Section(summary, {"genre_frequencies": freq}, {"genres": note}, [fig])


def no_genres() -> Section:
    """The genre sections' stand-in for a data set without genres."""
    return Section(notes={
        "genres": "No genre information (no catalogue or no genres listed), so the genre analyses are skipped."})


def genre_boxplots(agg: Aggregates, genre_m: sp.csr_matrix, names: list[str], rating_std: float) -> Section:
    """Univariate analysis: exact box plots of the ratings of each genre's movies (from per-genre rating
    histograms), and R² of a regression of the rating on the genre indicators. ``rating_std``: of all ratings."""
    values = agg.values
    genre_hist = np.asarray((sp.csr_matrix(genre_m, dtype=np.float64).T @ agg.item_hist).toarray()).round()
    box = S.boxplot_stats_from_hist(values, genre_hist.astype(np.int64), names)
    r2 = S.item_r2(genre_m, agg.item_counts, agg.item_sums, agg.item_sumsq)
    box.sort(key=lambda s: (-s["med"], -s["mean"], s["label"]))
    box_df = pd.DataFrame([{"genre": s["label"], "n": s["n"], "mean": s["mean"], "q1": s["q1"],
                            "median": s["med"], "q3": s["q3"], "whisker_low": s["whislo"],
                            "whisker_high": s["whishi"],
                            "outliers": " ".join(fmt_rating(v) for v in s["fliers"])} for s in box])
    out = Section({"genre_rating_r2": r2}, {"genre_boxplots": box_df})
    if len(box):
        out.notes["boxplots"] = _boxplot_note(box_df, rating_std, r2, len(names))
    out.figures.append(FigureSpec(
        "genre_boxplots", "Ratings by genre",
        "Distribution of all ratings of each genre's movies, sorted by median then mean (n = ratings)."
        " Statistics are exact, computed from per-genre rating histograms; outlier dots are distinct"
        " rating values beyond the whiskers, each standing for many ratings.",
        lambda: plots.genre_boxplots(box, values)))
    return out


def genre_multicollinearity(genre_m: sp.csr_matrix, names: list[str]) -> Section:
    """Genre co-occurrence (phi correlation) and variance inflation factors over the movies with a genre."""
    rows = np.flatnonzero(np.diff(genre_m.indptr) > 0)  # movies with at least one genre
    x = genre_m[rows]
    corr = S.phi_correlation(x)
    vifs = S.vif_from_corr(corr)
    corr_df = pd.DataFrame(corr, index=pd.Index(names, name="genre"), columns=names)
    vif_df = pd.DataFrame({"genre": names, "vif": vifs,
                           "r2": np.where(np.isfinite(vifs), 1 - 1 / vifs, np.where(np.isinf(vifs), 1.0, np.nan)),
                           "n_movies": np.asarray(x.sum(axis=0)).ravel().astype(np.int64)})
    vif_df = vif_df.sort_values("vif", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    pairs = S.strongest_pairs(corr, names, k=10)
    fin = vif_df["vif"].dropna()
    summary = dict(vif_movies=len(rows), max_vif=float(fin.max()) if len(fin) else None,
                   max_vif_genre=str(vif_df["genre"].iloc[0]) if len(fin) else None,
                   n_vif_over_5=int((fin > 5).sum()), n_vif_over_10=int((fin > 10).sum()),
                   n_vif_infinite=int(np.isinf(fin).sum()),
                   max_abs_corr=float(abs(pairs["corr"].iloc[0])) if len(pairs) else None,
                   max_corr_pair=f"{pairs['a'].iloc[0]} / {pairs['b'].iloc[0]}" if len(pairs) else None)
    out = Section(summary, {"genre_correlation": corr_df.reset_index(), "genre_vif": vif_df, "genre_pairs": pairs},
                  {"multicollinearity": _vif_note(vif_df, pairs, len(rows))})
    if len(names) >= 2:  # a heatmap or VIF needs two genres
        out.figures += [
            FigureSpec("genre_correlation", "Genre co-occurrence correlation",
                       f"Phi correlation (Pearson correlation of 0/1 indicators) between genres over the"
                       f" {fmt_n(len(rows))} rated movies with at least one genre; red: genres that appear together"
                       " more often than chance, blue: less often.", lambda: plots.genre_correlation(corr, names)),
            FigureSpec("genre_vif", "Variance inflation factors of the genre indicators",
                       "VIF_j = 1 / (1 - R²_j), R²_j from regressing genre j's indicator on all the other genres"
                       " (with an intercept), over the same movies. Dashed lines: the usual warning levels 5 (and 10"
                       " when values come near it).", lambda: plots.genre_vif(vif_df)),
        ]
    return out


# --------------------------------------------------------------------------------------------- tags and users


def tags_of(dataset: Dataset) -> pd.DataFrame | None:
    """The catalogue's tag applications (userId, movieId, tag, ...), or None when there are none."""
    tags = dataset.catalog.tags if dataset.catalog is not None else None
    return tags if tags is not None and len(tags) else None


def top_tags(tags: pd.DataFrame) -> Section:
    """The most applied tags (lower-cased, trimmed) and how concentrated tagging is."""
    top = S.top_tags(tags, k=25)
    norm = tags["tag"].astype("string").str.strip().str.lower()
    n_distinct = int(norm[norm.notna() & (norm != "")].nunique())
    summary = dict(n_tag_applications=len(tags), n_distinct_tags=n_distinct,
                   top_tag=str(top["tag"].iloc[0]) if len(top) else None)
    top_share = float(top["n_applications"].sum() / len(tags)) if len(top) else 0.0
    note = (
        f"Users applied {fmt_n(len(tags))} tags ({fmt_n(n_distinct)} distinct after lower-casing) to"
        f" {fmt_n(tags['movieId'].nunique())} movies; {fmt_n(tags['userId'].nunique())} users tagged at all. The"
        f" {len(top)} most frequent tags make up {fmt_pct(top_share)} of all applications; the top one is"
        f" “{top['tag'].iloc[0]}” ({fmt_n(top['n_applications'].iloc[0])} times)."
        if len(top) else f"Users applied {fmt_n(len(tags))} tags."
    )
    fig = FigureSpec("top_tags", "Top tags", f"The {len(top)} most applied tags (lower-cased, trimmed).",
                     lambda: plots.top_tags(top))
    return Section(summary, {"top_tags": top}, {"tags": note}, [fig])


def no_tags() -> Section:
    """The tag section's stand-in for a data set without tags (summary only, no note)."""
    return Section(dict(n_tag_applications=0, n_distinct_tags=0, top_tag=None))


def demographic_users(dataset: Dataset) -> pd.DataFrame | None:
    """The catalogue's users table when it has userId and any of gender, age, occupation; else None."""
    users = dataset.catalog.users if dataset.catalog is not None else None
    has_demo = users is not None and "userId" in users and any(c in users for c in ("gender", "age", "occupation"))
    return users if has_demo else None


def demographics(agg: Aggregates, users: pd.DataFrame) -> Section:
    """Users, ratings and mean rating per gender, age group and occupation, over the users who rated."""
    dataset, n_users = agg.dataset, agg.n_users
    demo = S.demographics(users, dataset.users.ids, agg.user_counts, agg.user_sums)
    known = int(np.isin(dataset.users.ids, users["userId"].to_numpy(np.int64)).sum())
    out = Section({"has_demographics": True, "n_users_with_demographics": known},
                  {f"demographics_{k}": df for k, df in demo.items()},
                  {"demographics": _demo_note(demo, known, n_users)})
    for k, df in demo.items():
        top_g = df.sort_values("n_users", ascending=False, kind="stable").iloc[0]
        out.summary[f"top_{k}"] = str(top_g["group"])
        out.summary[f"top_{k}_share"] = float(top_g["share_users"])
    out.figures.append(FigureSpec(
        "demographics", "User demographics",
        f"Users per group among the {fmt_n(n_users)} users who rated; each bar ends with the group's mean rating"
        " (over its ratings).", lambda: plots.demographics(demo)))
    return out


def no_demographics() -> Section:
    """The demographics section's stand-in for a release without user demographics."""
    return Section({"has_demographics": False}, notes={
        "demographics": ("This release has no user demographics (only ml-100k and ml-1m ship age, gender"
                         " and occupation).")})


# --------------------------------------------------------------------------------------------- notes


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
    text = (f"Medians of the genres range from {fmt_rating(meds[0])} to {fmt_rating(meds[-1])}, and means from"
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
    head = (f"Over the {fmt_n(n_movies)} rated movies with a genre, the largest variance inflation factor of the {k}"
            " genre")
    if len(inf):
        return (f"{head} indicators is infinite: {fmt_list(inf['genre'].tolist())} "
                f"{'is an exact linear combination' if len(inf) == 1 else 'are exact linear combinations'} of the"
                " others, so they cannot all enter a linear model together; drop one of each dependent set." + pair)
    if len(over10):
        return (f"{head} indicators is {top['vif']:.1f} ({top['genre']}); {len(over10)} exceed 10"
                f" ({fmt_list(over10['genre'].tolist())}), the usual sign of serious multicollinearity: those genres"
                " are largely predictable from the others, so their coefficients in a linear model would be unstable"
                " and they are better merged or dropped." + pair)
    if len(over5):
        return (f"{head} indicators is {top['vif']:.1f} ({top['genre']}); {len(over5)} lie between 5 and 10"
                f" ({fmt_list(over5['genre'].tolist())}), moderate multicollinearity: usable together as features,"
                " but their individual coefficients should be read with care." + pair)
    mean_vif = float(v["vif"].mean())
    return (f"{head} indicators is only {top['vif']:.2f} ({top['genre']}) and the mean is {mean_vif:.2f}; none"
            " exceeds 5, let alone 10 (the usual warning levels). The genre indicators are only weakly collinear:"
            " no genre is predictable from the others (the highest R² is"
            f" {1 - 1 / top['vif']:.2f}), so all of them can be used together as features, and a model's"
            " per-genre weights remain interpretable." + pair)


def _demo_note(demo: dict[str, pd.DataFrame], known: int, n_users: int) -> str:
    parts = [f"{fmt_n(known)} of the {fmt_n(n_users)} users who rated have demographics."]
    if "gender" in demo:
        g = demo["gender"]
        parts.append("By gender: " + ", ".join(f"{r.group} {fmt_pct(r.share_users)} of users"
                                                 f" ({fmt_pct(r.share_ratings)} of ratings, mean {r.mean_rating:.2f})"
                                                 for r in g.itertuples()) + ".")
    if "age" in demo:
        a = demo["age"]
        top = a.loc[a["n_users"].idxmax()]
        rated = a[a["n_ratings"] > 0]
        hi, lo = rated.loc[rated["mean_rating"].idxmax()], rated.loc[rated["mean_rating"].idxmin()]
        parts.append(f"The largest age group is {top['group']} ({fmt_pct(top['share_users'])} of users); mean ratings"
                     f" range from {lo['mean_rating']:.2f} ({lo['group']}) to {hi['mean_rating']:.2f} ({hi['group']}).")
    if "occupation" in demo:
        o = demo["occupation"]
        parts.append(f"{len(o)} occupations; the most common is {o['group'].iloc[0]}"
                     f" ({fmt_pct(o['share_users'].iloc[0])} of users).")
    return " ".join(parts)
