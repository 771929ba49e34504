"""How the EDA is shown: number formats, the page layout, the HTML page and fragment, the terminal summary.

:data:`LAYOUT` orders the page's sections; :func:`eda_fragment` renders them (template ``eda.html.j2``, block
"sections") for embedding, and the full page written to eda.html is the same block in the template's page.
:func:`summary_lines` gives the headline numbers as about ten plain-text lines. The ``fmt_*`` helpers write
numbers the way the notes and tables show them (thousands separators, percentages, half-star ratings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from movierec.eda.explore import EdaReport

TEMPLATE = "eda.html.j2"

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


def fmt_n(x: float) -> str:
    return f"{float(x):,.0f}"


def fmt_pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def fmt_num(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:,.{digits}f}"


def fmt_rating(x: float) -> str:
    return f"{x:g}"


def fmt_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# column formats of the HTML tables: a callable per column name (default: str / 3 decimals for floats)
_COL_FMT: dict[str, Callable[[Any], str]] = {
    "share": fmt_pct, "share_movies": fmt_pct, "share_ratings": fmt_pct, "share_users": fmt_pct,
    "top1_share": fmt_pct, "top10_share": fmt_pct, "top20_share": fmt_pct,
    "mean_rating": lambda v: fmt_num(v, 3), "mean": lambda v: fmt_num(v, 2), "vif": lambda v: fmt_num(v, 2),
    "r2": lambda v: fmt_num(v, 3), "corr": lambda v: fmt_num(v, 3), "gini": lambda v: fmt_num(v, 3),
    "rating": fmt_rating,
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
            cards = [("ratings", fmt_n(sm["n_ratings"])), ("users", fmt_n(sm["n_users"])),
                     ("movies", fmt_n(sm["n_movies"])), ("density", fmt_pct(sm["density"], 3)),
                     ("sparsity", fmt_pct(sm["sparsity"], 3))]
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


def render_page(report: EdaReport) -> str:
    """The whole self-contained eda.html page (figures inlined)."""
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
        f"{s['dataset']}: {fmt_n(s['n_ratings'])} ratings, {fmt_n(s['n_users'])} users, {fmt_n(s['n_movies'])} movies"
        + (f" ({fmt_n(s['n_movies_catalog'])} in catalogue)" if s.get("n_movies_catalog") else ""),
        f"density {fmt_pct(s['density'], 3)}, sparsity {fmt_pct(s['sparsity'], 3)}",
        "implicit feedback: no ratings (every interaction counts the same)" if s.get("n_rating_values") == 1 else
        f"ratings {fmt_rating(s['rating_min'])}-{fmt_rating(s['rating_max'])} ({s['n_rating_values']} values):"
        f" mean {s['rating_mean']:.2f}, median {fmt_rating(s['rating_median'])}, most common"
        f" {fmt_rating(s['rating_mode'])} ({fmt_pct(s['rating_mode_share'])})",
        f"ratings per user: median {fmt_n(s['per_user_median'])}, mean {s['per_user_mean']:.1f},"
        f" max {fmt_n(s['per_user_max'])}; Gini {s['gini_users']:.3f}",
        f"ratings per movie: median {fmt_n(s['per_movie_median'])}, mean {s['per_movie_mean']:.1f},"
        f" max {fmt_n(s['per_movie_max'])}; Gini {s['gini_movies']:.3f};"
        f" top 10% of movies get {fmt_pct(s['top10_movies_share'])}",
    ]
    if s.get("first_month"):
        lines.append(f"time: {s['first_month']} to {s['last_month']} ({s['n_months']} months),"
                     f" busiest {s['busiest_month']} ({fmt_n(s['busiest_month_ratings'])} ratings)")
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
        lines.append(f"tags: {fmt_n(s['n_tag_applications'])} applications, {fmt_n(s['n_distinct_tags'])} distinct;"
                     f" top “{s['top_tag']}”")
    if s.get("has_demographics"):
        parts = [f"{fmt_n(s.get('n_users_with_demographics', 0))} users"]
        for k in ("gender", "age", "occupation"):
            if s.get(f"top_{k}") is not None:
                parts.append(f"{k} {s[f'top_{k}']} {fmt_pct(s[f'top_{k}_share'])}")
        lines.append("demographics: " + ", ".join(parts))
    else:
        lines.append("demographics: not in this release")
    lines.append(f"report: {report.html_path} ({len(report.figures)} figures, {s.get('seconds') or 0:.1f} s)")
    return lines


__all__ = ["LAYOUT", "TEMPLATE", "eda_fragment", "fmt_list", "fmt_n", "fmt_num", "fmt_pct", "fmt_rating", "render_page",
           "summary_lines"]
