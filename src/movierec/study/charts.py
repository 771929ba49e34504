"""The study's charts (matplotlib, PNG): accuracy under both protocols, beyond-accuracy, segments.

Every chart comes in two layouts: the wide one the report shows on a desktop, and with ``narrow=True`` one
``NARROW_WIDTH_IN`` wide (panels stacked, names wrapped, larger text) that a phone shows at its natural size,
1 image pixel to 1 CSS pixel, where its smallest text is ``NARROW_FONT_PT * DPI / 72`` = 13.75 px.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec._html import save_figure
from movierec._optional import pyplot
from movierec.evaluation.columns import column

FULL, SAMPLED = column("NDCG@10", "full"), column("NDCG@10", "sampled-100")

FAMILY_COLOURS = {"baseline": "#8c8c8c", "collaborative": "#2a6fdb", "content": "#e07b39", "hybrid": "#3a9a5b",
                  "autoencoder": "#c2418f", "sequential": "#b8860b", "other": "#7f5fbf"}
DPI = 110  # every chart's PNG resolution
FONT_PT = 8.0  # the smallest text of a wide chart (bar values, legends, segment names): 12.2 px at DPI
HEATMAP_FONT_PT = 9.0  # the heatmap's numbers: 9 pt at 110 dpi is 13.75 px before the page scales the image
NARROW_WIDTH_IN = 3.0  # a narrow chart: 330 px at DPI (342 px with its margin), in a 390 px phone's 366 px column
NARROW_FONT_PT = 9.0  # the smallest text of a narrow chart (every label, tick and number)
NARROW_WRAP = 18  # a narrow chart wraps model names at this many characters (the heatmap at 13: room for cells)


def _colours(families: list[str]) -> list[str]:
    return [FAMILY_COLOURS.get(f, FAMILY_COLOURS["other"]) for f in families]


def _font(narrow: bool) -> float:
    """The size of a chart's small text (values, legend, names): larger in the narrow layout."""
    return NARROW_FONT_PT if narrow else FONT_PT


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _narrow_names(table: pd.DataFrame) -> list[str]:
    """The models' names wrapped for a narrow chart's model axis."""
    return [_wrap(str(n), NARROW_WRAP) for n in table.index]


def _legend(fig_or_ax, families: list[str], narrow: bool = False) -> None:
    """Family colours; below the panels for a figure, inside the axes for a single plot."""
    from matplotlib.patches import Patch

    seen = list(dict.fromkeys(families))
    handles = [Patch(color=FAMILY_COLOURS.get(f, FAMILY_COLOURS["other"]), label=f) for f in seen]
    if hasattr(fig_or_ax, "suptitle"):
        fig_or_ax.legend(handles=handles, loc="outside lower center", ncol=min(len(seen), 2 if narrow else 6),
                         fontsize=_font(narrow), frameon=False)
    else:
        fig_or_ax.legend(handles=handles, loc="lower right", fontsize=_font(narrow), frameon=False)


def _model_panels(table: pd.DataFrame, n_panels: int, panel_width: float, narrow: bool = False):
    """Bar-chart panels over the models: (fig, axes, bar positions, bar colours). Wide: a row of ``n_panels``
    sharing the model axis; narrow: one above the other, ``NARROW_WIDTH_IN`` wide."""
    plt = pyplot()
    if narrow:  # a row is as tall as its name's lines need (0.15 in each at NARROW_FONT_PT), 0.32 in at least
        lines = max((name.count("\n") + 1 for name in _narrow_names(table)), default=1)
        row = max(0.32, 0.155 * lines + 0.02)
        size = (NARROW_WIDTH_IN, n_panels * (row * len(table) + 0.9) + 1.3)
        fig, axes = plt.subplots(n_panels, 1, figsize=size, layout="constrained")
    else:
        fig, axes = plt.subplots(1, n_panels, figsize=(panel_width * n_panels, 0.34 * len(table) + 1.6),
                                 sharey=True, layout="constrained")
    return fig, np.atleast_1d(axes), np.arange(len(table)), _colours(table["family"].tolist())


def _finish_panels(fig, axes, table: pd.DataFrame, title: str, path: Path, narrow: bool = False) -> Path:
    """Model names (top to bottom in table order) on the first panel, or on every panel of a narrow chart, the
    family legend, the title; save."""
    from matplotlib.ticker import MaxNLocator

    y = np.arange(len(table))
    if narrow:
        for ax in axes:
            ax.set_yticks(y, _narrow_names(table), fontsize=NARROW_FONT_PT)
            ax.invert_yaxis()
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.tick_params(axis="x", labelsize=NARROW_FONT_PT)
        title = _wrap(title, 42)
    else:
        axes[0].set_yticks(y, table.index)
        axes[0].invert_yaxis()
    _legend(fig, table["family"].tolist(), narrow)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=DPI)


def accuracy_chart(table: pd.DataFrame, errors: pd.DataFrame, path: Path, narrow: bool = False) -> Path:
    """HR@10 and NDCG@10 under full ranking (left, or on top when ``narrow``) and sampled-100, one bar per
    model, ±1 SE.

    table: rows = models with a ``family`` column and ``NDCG@10 [protocol]`` style columns;
    errors: the same shape holding standard errors over users.
    """
    panels = [(p, m) for p in ("full", "sampled-100") for m in ("HR@10", "NDCG@10") if f"{m} [{p}]" in table]
    fig, axes, y, colours = _model_panels(table, len(panels), 3.3, narrow)
    for ax, (protocol, metric) in zip(axes, panels, strict=True):
        col = f"{metric} [{protocol}]"
        ax.barh(y, table[col], xerr=errors[col] if col in errors else None, color=colours,
                error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.set_title(f"{metric}\n[{protocol}]", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        err = errors[col].fillna(0) if col in errors else pd.Series(0.0, index=table.index)
        for yi, v, e in zip(y, table[col], err, strict=True):
            ax.text(v + e, yi, f" {v:.3f}", va="center", fontsize=_font(narrow))
        ax.set_xlim(0, (table[col] + err).max() * (1.5 if narrow else 1.35) if table[col].max() > 0 else 1)
    return _finish_panels(fig, axes, table, "Accuracy on the test item (bars: mean over users, lines: ±1 standard "
                          "error)", path, narrow)


def beyond_chart(table: pd.DataFrame, path: Path, narrow: bool = False) -> Path:
    """Catalogue coverage, intra-list diversity and novelty of the top-10 lists (full ranking)."""
    panels = [c for c in (column(m, "full") for m in ("Coverage@10", "ILD@10", "Novelty@10", "Gini@10"))
              if c in table]
    fig, axes, y, colours = _model_panels(table, len(panels), 3.2, narrow)
    for ax, col in zip(axes, panels, strict=True):
        ax.barh(y, table[col], color=colours)
        ax.set_title(col.replace(" [", "\n["), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return _finish_panels(fig, axes, table, "Beyond accuracy: the top-10 lists of all evaluated users", path, narrow)


def _free_spot(box: tuple[float, float, float, float], taken: list[tuple[float, float, float, float]],
               frame: tuple[float, float, float, float]) -> float:
    """How much of ``box`` (x0, y0, x1, y1 in pixels) overlaps the boxes taken or sticks out of ``frame``."""
    x0, y0, x1, y1 = box
    cost = sum(max(0.0, min(x1, b[2]) - max(x0, b[0])) * max(0.0, min(y1, b[3]) - max(y0, b[1])) for b in taken)
    fx0, fy0, fx1, fy1 = frame
    inside = max(0.0, min(x1, fx1) - max(x0, fx0)) * max(0.0, min(y1, fy1) - max(y0, fy0))
    return cost + 4 * ((x1 - x0) * (y1 - y0) - inside)


def place_labels(ax, xs: np.ndarray, ys: np.ndarray, labels: list[str], fontsize: float = 8.0) -> list[Any]:
    """Label each point next to it where the label overlaps no marker and no label placed before (greedy, the
    points in a crowded neighbourhood first, each trying rings of spots further and further out); a label
    away from its point gets a thin leader line."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the layout, so data -> pixel is final
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    px = ax.transData.transform(np.column_stack([xs, ys])) if len(xs) else np.zeros((0, 2))
    scale = fig.dpi / 72.0
    r = 4.0 * scale  # marker radius in pixels (s=40 points^2 is about 3.6 pt)
    pad = 1.0 * scale
    bb = ax.get_window_extent()
    frame = (bb.x0, bb.y0, bb.x1, bb.y1)
    taken = [(x - r, y - r, x + r, y + r) for x, y in px]
    dists = np.linalg.norm(px[:, None, :] - px[None, :, :], axis=2) + np.eye(len(px)) * 1e9
    order = np.argsort(dists.min(axis=1) if len(px) > 1 else np.zeros(len(px)), kind="stable")
    angles = np.deg2rad(np.arange(0, 360, 22.5))
    texts: list[Any] = [None] * len(px)
    for i in order:
        t = ax.annotate(labels[i], (xs[i], ys[i]), xytext=(0, 0), textcoords="offset points", ha="center",
                        va="center", fontsize=fontsize, zorder=4)
        ext = t.get_window_extent(renderer)
        w, h = ext.width + 2 * pad, ext.height + 2 * pad
        best = None
        for ring, gap in enumerate((1.0, 5.0, 10.0, 16.0, 23.0, 31.0, 40.0, 50.0, 62.0)):
            for a in angles:
                # the box's centre on a rounded rectangle around the marker, so it just clears the marker
                cx = px[i, 0] + np.cos(a) * (r + gap * scale + w / 2)
                cy = px[i, 1] + np.sin(a) * (r + gap * scale + h / 2)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                cost = _free_spot(box, taken, frame)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, box, ring)
            if best[0] < 1e-6:
                break
        _, box, ring = best
        taken.append(box)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        t.xyann = ((cx - px[i, 0]) / scale, (cy - px[i, 1]) / scale)  # offset in points
        if ring >= 1:
            t.arrow_patch = None
            t.remove()
            t = ax.annotate(labels[i], (xs[i], ys[i]), xytext=t.xyann, textcoords="offset points", ha="center",
                            va="center", fontsize=fontsize, zorder=4,
                            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#777777", "shrinkA": 0,
                                        "shrinkB": 3})
        texts[i] = t
    return texts


def protocol_scatter(table: pd.DataFrame, path: Path, narrow: bool = False) -> Path:
    """NDCG@10 under sampled-100 against full ranking: orderings that the two protocols disagree on.

    Each model is a dot in its family's colour, labelled with its number: its row (from 1) in ``table``, which
    the page's key beside the chart lists (:func:`scatter_key`); the numbers are placed clear of each other.
    ``narrow``: a square ``NARROW_WIDTH_IN`` wide, the legend below the axes (the key is below the chart too)."""
    plt = pyplot()
    size = (NARROW_WIDTH_IN, NARROW_WIDTH_IN * 1.15) if narrow else (6.4, 4.6)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    x = table[SAMPLED].to_numpy(np.float64)
    y = table[FULL].to_numpy(np.float64)
    ax.scatter(x, y, c=_colours(table["family"].tolist()), s=40, zorder=3, edgecolors="white", linewidths=0.6)
    ax.set_xlabel(SAMPLED)
    ax.set_ylabel(FULL)
    ax.grid(alpha=0.3)
    for lim, v in ((ax.set_xlim, x), (ax.set_ylim, y)):  # room for the labels around the extreme points
        ok = v[np.isfinite(v)]
        if len(ok):
            span = float(ok.max() - ok.min()) or max(float(ok.max()), 1e-3)
            lim(ok.min() - 0.08 * span, ok.max() + 0.08 * span)
    if narrow:
        _narrow_axes(ax)
        ax.set_title("The two protocols side by side\n(numbers: the key below the chart)", fontsize=10)
        _legend(fig, table["family"].tolist(), narrow)
    else:
        ax.set_title("The two protocols side by side (numbers: the key beside the chart)", fontsize=10)
        _legend(ax, table["family"].tolist())
    ok = np.isfinite(x) & np.isfinite(y)
    place_labels(ax, x[ok], y[ok], [str(i + 1) for i in np.flatnonzero(ok)], fontsize=_font(narrow))
    return save_figure(fig, path, dpi=DPI)


def _narrow_axes(ax) -> None:
    """Axis labels and ticks of a narrow chart: ``NARROW_FONT_PT``, at most 4 ticks an axis, clear of each other."""
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(3))
        axis.label.set_fontsize(NARROW_FONT_PT)
    ax.tick_params(labelsize=NARROW_FONT_PT)


def scatter_key(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The scatter's key: number, model, family and each protocol's NDCG@10 with the model's rank under it."""
    s, f = table[SAMPLED], table[FULL]
    rs, rf = s.rank(ascending=False, method="min"), f.rank(ascending=False, method="min")
    return [{"number": i + 1, "name": n, "family": table.at[n, "family"], "colour": FAMILY_COLOURS.get(
        table.at[n, "family"], FAMILY_COLOURS["other"]), "sampled": s[n], "full": f[n],
        "rank_sampled": None if pd.isna(rs[n]) else int(rs[n]), "rank_full": None if pd.isna(rf[n]) else int(rf[n])}
        for i, n in enumerate(table.index)]


def segment_heatmap(per_segment: pd.DataFrame, names: dict[str, str], protocol: str, path: Path,
                    narrow: bool = False) -> Path:
    """Mean NDCG@10 per model (rows) and segment (columns); each segment's best model is outlined.

    Models run down the page, so more models make the chart taller, not narrower: its numbers stay at
    ``HEATMAP_FONT_PT`` with three decimals, and the chart is only as wide as the segments need. ``narrow``:
    segments by number, model names wrapped, no colour bar (every cell holds its number), at least
    ``NARROW_WIDTH_IN`` wide."""
    plt = pyplot()
    data = per_segment.drop(columns="users").T  # rows: models, columns: segments
    labels = [_segment_label(names.get(str(s), str(s)), int(n), narrow)
              for s, n in zip(data.columns, per_segment["users"], strict=True)]
    n_models, n_segs = data.shape
    size = ((max(NARROW_WIDTH_IN, 1.2 + 0.45 * n_segs), 0.48 * n_models + 2.0) if narrow else
            (0.95 * n_segs + 3.6, 0.36 * n_models + 2.4))
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    values = data.to_numpy(np.float64)
    im = ax.imshow(values, cmap="Blues", aspect="auto")
    ax.set_xticks(np.arange(n_segs), labels, fontsize=_font(narrow))
    ax.xaxis.tick_top()
    models = [_wrap(str(m), 13) for m in data.index] if narrow else data.index
    ax.set_yticks(np.arange(n_models), models, fontsize=9)
    _heatmap_cells(ax, values)
    if not narrow:
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    title = f"NDCG@10 [{protocol}] by user segment (red: the segment's best model)"
    if narrow:  # over the whole figure: over the axes alone it would stick out on the right
        fig.suptitle(_wrap(title, 40) + "\n(S0, S1, ...: the segments above)", fontsize=10)
    else:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=DPI)


def _segment_label(name: str, users: int, narrow: bool) -> str:
    """A heatmap column's label: the segment's name wrapped, or in a narrow chart its number alone ("S2"; the
    page names the segments above the chart), and its users."""
    if narrow:
        return f"{name.split(' · ')[0]}\nn={users}"
    return _wrap(name, 16) + f"\n(n={users})"


def _heatmap_cells(ax, values: np.ndarray) -> None:
    """Each cell's number, the best of each column (every model that ties it) in bold and outlined in red."""
    plt = pyplot()
    vmax = np.nanmax(values) if np.isfinite(values).any() else 1.0
    n_models, n_segs = values.shape
    for j in range(n_segs):
        col = values[:, j]
        top = np.nanmax(col) if np.isfinite(col).any() else np.nan
        for i in range(n_models):
            v = col[i]
            best = bool(v == top)
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.3f}", ha="center", va="center", fontsize=HEATMAP_FONT_PT,
                    color="white" if v > 0.6 * vmax else "black", fontweight="bold" if best else "normal")
            if best:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#d62728", lw=1.5))
