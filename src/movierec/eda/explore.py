"""The EDA run: compute every section once, draw the figures, write the HTML report, tables and summary.

:func:`run_eda` writes into ``out_dir``::

    eda.html        one self-contained page (figures inlined as data URIs)
    figures/*.png   every figure
    tables/*.csv    every table shown in the report (and a few more rows than the page shows)
    summary.json    the headline numbers (:data:`EdaReport.summary`)

The ratings are touched only by a handful of vectorised passes (bincounts over user, movie, rating code
and month); every later statistic works on those per-user, per-movie or per-(movie, rating) aggregates, so
ml-20m-sized data takes seconds. The statistics are exact; ``sample`` caps only the dots of the scatter
plot of mean rating against activity.

Sections the data cannot support are left out with a one-line note saying why: implicit feedback (every
rating the same) has no rating distribution, mean rating against activity or genre box plots (a note each); data without
timestamps has no time line; data without genres has no genre sections.

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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.eda import plots
from movierec.eda import sections as sec
from movierec.eda.render import render_page
from movierec.fsutil import atomic_write_text, csv_text

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

    def add(section: sec.Section) -> sec.Section:
        """Merge ``section`` into the report and draw its figures."""
        from movierec._html import save_figure

        summary.update(section.summary)
        tables.update(section.tables)
        notes.update(section.notes)
        for f in section.figures:
            with plt.rc_context(plots.STYLE):
                path = save_figure(f.draw(), fig_dir / f"{f.name}.png")
            figures.append(Figure(f.name, f.title, f.caption, path))
        return section

    step("counting")
    agg = sec.aggregate(dataset)
    add(sec.overview(agg))
    implicit = len(agg.values) < 2  # every interaction has the same value: implicit feedback
    step("rating distribution")
    ratings = sec.rating_distribution(agg)
    rating_std = ratings.summary["rating_std"]
    if implicit:  # the numbers stay in the summary; the figures and tables say nothing
        add(sec.Section(ratings.summary, notes={"ratings": sec.IMPLICIT_NOTE}))
    else:
        add(ratings)
    step("long tail")
    add(sec.long_tail(agg))
    if not implicit:
        add(sec.activity_vs_rating(agg, sample, seed))
    step("time")
    add(sec.ratings_over_time(agg))
    genre_m, names = sec.genres_of(dataset)
    if genre_m is not None and len(names):
        step("genres")
        add(sec.genre_frequencies(agg, genre_m, names))
        step("boxplots")
        add(sec.genre_boxplots(agg, genre_m, names, rating_std))  # says itself why there are none when implicit
        step("multicollinearity")
        add(sec.genre_multicollinearity(genre_m, names))
    else:
        add(sec.no_genres())
    tags = sec.tags_of(dataset)
    if tags is not None:
        step("tags")
        add(sec.top_tags(tags))
    else:
        add(sec.no_tags())
    users = sec.demographic_users(dataset)
    if users is not None:
        step("demographics")
        add(sec.demographics(agg, users))
    else:
        add(sec.no_demographics())

    step("report")
    for name, df in tables.items():
        atomic_write_text(tab_dir / f"{name}.csv", csv_text(df))
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
    atomic_write_text(report.html_path, render_page(report))
    step.close()
    return report


__all__ = ["FIGURE_NAMES", "TABLE_NAMES", "EdaReport", "Figure", "run_eda"]
