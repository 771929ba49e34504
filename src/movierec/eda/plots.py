"""Figures of the exploratory data analysis: each function takes precomputed statistics (see
:mod:`movierec.eda.stats`) and returns a matplotlib Figure; nothing here touches the ratings themselves.

matplotlib (and seaborn, for the heatmap) are optional dependencies loaded through
:mod:`movierec._optional`; call the functions inside ``pyplot().rc_context(STYLE)`` for the house style.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from movierec._optional import pyplot, require

#: matplotlib rc parameters shared by every EDA figure
STYLE: dict[str, Any] = {
    "figure.dpi": 100, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "legend.frameon": False, "xtick.labelsize": 9, "ytick.labelsize": 9,
}
BLUE, ORANGE, GREY = "#2a6fdb", "#e8862a", "#7a8394"


def _rows_height(n_rows: int, per_row: float) -> float:
    """Figure height (inches) for a chart with one bar or box per row: per_row inches each, 3 at least."""
    return max(3.0, per_row * n_rows + 1.2)


def _fmt_int(x: float, _pos: object = None) -> str:
    """Tick label with thousands separators (1,000,000) or 1.2M above a million."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{x:,.0f}"


def rating_distribution(dist: pd.DataFrame) -> Any:
    """Bar chart of rating counts. dist: rating, count, share (:func:`stats.rating_distribution`)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 * float(np.min(np.diff(dist["rating"]))) if len(dist) > 1 else 0.4
    ax.bar(dist["rating"], dist["count"], width=width, color=BLUE)
    for x, c, s in zip(dist["rating"], dist["count"], dist["share"], strict=True):
        ax.annotate(f"{100 * s:.1f}%", (x, c), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(dist["rating"])
    ax.set_xlabel("rating")
    ax.set_ylabel("number of ratings")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(_fmt_int))
    ax.set_ylim(0, float(dist["count"].max()) * 1.12 if len(dist) else 1)
    ax.grid(axis="x", visible=False)
    return fig


def long_tail(
    user_curve: tuple[np.ndarray, np.ndarray], item_curve: tuple[np.ndarray, np.ndarray],
    user_lorenz: tuple[np.ndarray, np.ndarray], item_lorenz: tuple[np.ndarray, np.ndarray],
    gini_users: float, gini_items: float,
) -> Any:
    """Left: ratings against rank on log-log axes for users and movies (:func:`stats.rank_curve`); right:
    Lorenz curves (:func:`stats.lorenz`) with the Gini coefficients in the legend."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.loglog(*user_curve, color=BLUE, lw=1.8, label="users")
    a.loglog(*item_curve, color=ORANGE, lw=1.8, label="movies")
    a.set_xlabel("rank (most active first, log scale)")
    a.set_ylabel("number of ratings (log scale)")
    a.set_title("Ratings per user and per movie")
    a.legend()
    a.grid(True, which="major", alpha=0.3)
    b.plot(*user_lorenz, color=BLUE, lw=1.8, label=f"users (Gini {gini_users:.3f})")
    b.plot(*item_lorenz, color=ORANGE, lw=1.8, label=f"movies (Gini {gini_items:.3f})")
    b.plot([0, 1], [0, 1], color=GREY, ls="--", lw=1, label="perfect equality")
    b.set_xlabel("share of users / movies (least active first)")
    b.set_ylabel("share of all ratings")
    b.set_title("Lorenz curves")
    b.set_xlim(0, 1)
    b.set_ylim(0, 1)
    b.legend(loc="upper left")
    fig.tight_layout()
    return fig


def ratings_over_time(monthly: pd.DataFrame) -> Any:
    """Ratings per month (top) and the month's mean rating (bottom). monthly: :func:`stats.monthly_counts`."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    t = pd.to_datetime(monthly["month"].to_numpy(), format="%Y-%m").to_numpy()
    n = monthly["n_ratings"].to_numpy()
    a.fill_between(t, n, step="post", color=BLUE, alpha=0.35, lw=0)
    a.step(t, n, where="post", color=BLUE, lw=1)
    a.set_ylabel("ratings per month")
    a.yaxis.set_major_formatter(plt.FuncFormatter(_fmt_int))
    a.set_ylim(0, None)
    if "mean_rating" in monthly:
        m = monthly["mean_rating"].to_numpy()
        ok = n > 0
        b.plot(t[ok], m[ok], color=ORANGE, lw=1, marker="." if ok.sum() < 60 else None)
        b.set_ylabel("mean rating")
    b.set_xlabel("month of rating (UTC)")
    fig.tight_layout()
    return fig


def genre_frequencies(freq: pd.DataFrame) -> Any:
    """Movies per genre and the genre's share of all ratings, side by side. freq: :func:`stats.genre_frequencies`."""
    plt = pyplot()
    df = freq.iloc[::-1]
    h = _rows_height(len(df), 0.28)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, h), sharey=True)
    a.barh(df["genre"], df["n_movies"], color=BLUE)
    a.set_xlabel("number of movies")
    a.set_title("Movies per genre")
    a.xaxis.set_major_formatter(plt.FuncFormatter(_fmt_int))
    b.barh(df["genre"], 100 * df["share_ratings"], color=ORANGE)
    b.set_xlabel("% of all ratings (a movie counts in each of its genres)")
    b.set_title("Ratings per genre")
    for ax in (a, b):
        ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def genre_boxplots(box: list[dict], values: np.ndarray) -> Any:
    """Horizontal box plots of ratings by genre from exact statistics (:func:`stats.boxplot_stats_from_hist`),
    in the given order (top to bottom), with means as diamonds; ``values`` are the possible ratings (ticks)."""
    plt = pyplot()
    h = _rows_height(len(box), 0.32)
    fig, ax = plt.subplots(figsize=(9, h))
    stats = [{**s, "label": f"{s['label']} (n={s['n']:,})"} for s in box][::-1]
    ax.bxp(stats, orientation="horizontal", showmeans=True, widths=0.6, patch_artist=True,
           boxprops={"facecolor": "#d7e4fa", "edgecolor": BLUE}, medianprops={"color": BLUE, "lw": 2},
           meanprops={"marker": "D", "markerfacecolor": ORANGE, "markeredgecolor": ORANGE, "markersize": 4},
           flierprops={"marker": "o", "markersize": 3, "markerfacecolor": GREY, "markeredgecolor": GREY})
    ax.set_xticks(values if len(values) <= 12 else np.linspace(values.min(), values.max(), 10))
    ax.set_xlabel("rating (box: quartiles; line: median; diamond: mean; whiskers: 1.5 IQR)")
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def genre_correlation(corr: np.ndarray, names: list[str]) -> Any:
    """Lower-triangle heatmap of the genre indicators' phi correlations, annotated with two decimals."""
    plt = pyplot()
    sns = require("seaborn")
    k = len(names)
    size = max(5.0, 0.5 * k + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    # lower triangle without the diagonal: rows 2..k against columns 1..k-1
    sub = pd.DataFrame(corr[1:, :-1], index=names[1:], columns=names[:-1])
    mask = np.triu(np.ones((k - 1, k - 1), bool), 1)
    shown = sub.to_numpy()[~mask]
    shown = shown[np.isfinite(shown)]
    vmax = max(0.1, float(np.abs(shown).max())) if len(shown) else 1.0
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 deprecates
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(sub, mask=mask, cmap="RdBu_r", center=0, vmin=-vmax, vmax=vmax, annot=k <= 25, fmt=".2f",
                    annot_kws={"fontsize": 7}, square=True, linewidths=0.4, linecolor="white",
                    cbar_kws={"shrink": 0.7, "label": "phi correlation"}, ax=ax)
    ax.grid(False)
    ax.tick_params(length=0)
    fig.tight_layout()
    return fig


def genre_vif(vif_table: pd.DataFrame) -> Any:
    """Horizontal bars of the genre indicators' variance inflation factors with the 5 and 10 warning lines."""
    plt = pyplot()
    df = vif_table.iloc[::-1]
    h = _rows_height(len(df), 0.26)
    fig, ax = plt.subplots(figsize=(7, h))
    v = df["vif"].to_numpy(np.float64)
    shown = np.where(np.isfinite(v), v, np.nan)
    ax.barh(df["genre"], shown, color=np.where(v >= 10, "#c0392b", np.where(v >= 5, ORANGE, BLUE)))
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0
    for y, val in enumerate(v):
        ax.annotate("∞" if np.isinf(val) else ("n/a" if np.isnan(val) else f"{val:.2f}"),
                    (0 if not np.isfinite(val) else val, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8, color=GREY)
    levels = [5, 10] if top >= 6 else [5]
    for level in levels:
        ax.axvline(level, color="#c0392b" if level == 10 else ORANGE, ls="--", lw=1)
        ax.annotate(f"VIF {level}", (level, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                    textcoords="offset points", fontsize=8, color=GREY)
    ax.axvline(1, color=GREY, lw=0.8)
    ax.set_xlabel("variance inflation factor (1 = uncorrelated with the other genres)")
    ax.set_xlim(0, max(top * 1.12, levels[-1] * 1.1))
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def activity_vs_rating(
    user_counts: np.ndarray, user_means: np.ndarray, item_counts: np.ndarray, item_means: np.ndarray
) -> Any:
    """Mean rating against the number of ratings (log x) for users (left) and movies (right), one dot each.

    The arrays are already restricted to the points to draw (the caller samples when there are too many)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, n, m, what, color in ((axes[0], user_counts, user_means, "user", BLUE),
                                  (axes[1], item_counts, item_means, "movie", ORANGE)):
        alpha = float(np.clip(3000 / max(len(n), 1), 0.03, 0.6))
        ax.scatter(n, m, s=4, alpha=alpha, color=color, lw=0, rasterized=True)
        ax.set_xscale("log")
        ax.set_xlabel(f"ratings per {what} (log scale)")
        ax.set_title(f"{what.capitalize()}s: mean rating vs activity")
    axes[0].set_ylabel("mean rating")
    fig.tight_layout()
    return fig


def top_tags(tags: pd.DataFrame) -> Any:
    """Horizontal bars of the most applied tags. tags: :func:`stats.top_tags`."""
    plt = pyplot()
    df = tags.iloc[::-1]
    h = _rows_height(len(df), 0.26)
    fig, ax = plt.subplots(figsize=(8, h))
    ax.barh(df["tag"].astype(str), df["n_applications"], color=BLUE)
    ax.set_xlabel("times applied")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(_fmt_int))
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def demographics(tables: dict[str, pd.DataFrame]) -> Any:
    """Users per gender, age group and occupation (one panel each, for the attributes present), with each
    group's mean rating written at the end of its bar. tables: :func:`stats.demographics`."""
    plt = pyplot()
    keys = [k for k in ("gender", "age", "occupation") if k in tables]
    heights = [max(1.5, 0.25 * len(tables[k]) + 0.8) for k in keys]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    titles = {"gender": "Gender", "age": "Age group", "occupation": "Occupation"}
    for ax, k in zip(axes[:, 0], keys, strict=True):
        df = tables[k].iloc[::-1]
        ax.barh(df["group"].astype(str), df["n_users"], color=BLUE)
        right = float(df["n_users"].max()) if len(df) else 1.0
        for y, (n, m) in enumerate(zip(df["n_users"], df["mean_rating"], strict=True)):
            if np.isfinite(m):
                ax.annotate(f"mean {m:.2f}", (n, y), xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=8, color=GREY)
        ax.set_xlim(0, right * 1.25)
        ax.set_title(titles[k], loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("number of users (mean rating of their ratings at the bar's end)")
    fig.tight_layout()
    return fig


__all__ = [
    "STYLE", "activity_vs_rating", "demographics", "genre_boxplots", "genre_correlation", "genre_frequencies",
    "genre_vif", "long_tail", "rating_distribution", "ratings_over_time", "top_tags",
]
