"""The study's charts (matplotlib, PNG): accuracy under both protocols, beyond-accuracy, segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec._html import save_figure
from movierec._optional import pyplot

FAMILY_COLOURS = {"baseline": "#8c8c8c", "collaborative": "#2a6fdb", "content": "#e07b39", "hybrid": "#3a9a5b",
                  "other": "#7f5fbf"}


def _colours(families: list[str]) -> list[str]:
    return [FAMILY_COLOURS.get(f, FAMILY_COLOURS["other"]) for f in families]


def _legend(fig_or_ax, families: list[str]) -> None:
    """Family colours; below the panels for a figure, inside the axes for a single plot."""
    from matplotlib.patches import Patch

    seen = list(dict.fromkeys(families))
    handles = [Patch(color=FAMILY_COLOURS.get(f, "#7f5fbf"), label=f) for f in seen]
    if hasattr(fig_or_ax, "suptitle"):
        fig_or_ax.legend(handles=handles, loc="outside lower center", ncol=len(seen), fontsize=8, frameon=False)
    else:
        fig_or_ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)


def _model_panels(table: pd.DataFrame, n_panels: int, panel_width: float):
    """A row of ``n_panels`` bar-chart panels sharing the model axis: (fig, axes, bar positions, bar colours)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, n_panels, figsize=(panel_width * n_panels, 0.34 * len(table) + 1.6), sharey=True,
                             layout="constrained")
    return fig, np.atleast_1d(axes), np.arange(len(table)), _colours(table["family"].tolist())


def _finish_panels(fig, axes, table: pd.DataFrame, title: str, path: Path) -> Path:
    """Model names on the first panel (top to bottom in table order), the family legend, the title; save."""
    axes[0].set_yticks(np.arange(len(table)), table.index)
    axes[0].invert_yaxis()
    _legend(fig, table["family"].tolist())
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def accuracy_chart(table: pd.DataFrame, errors: pd.DataFrame, path: Path) -> Path:
    """NDCG@10 and HR@10 under sampled-100 (left) and full ranking (right), one bar per model, ±1 SE.

    table: rows = models with a ``family`` column and ``NDCG@10 [protocol]`` style columns;
    errors: the same shape holding standard errors over users.
    """
    panels = [(p, m) for p in ("sampled-100", "full") for m in ("HR@10", "NDCG@10") if f"{m} [{p}]" in table]
    fig, axes, y, colours = _model_panels(table, len(panels), 3.3)
    for ax, (protocol, metric) in zip(axes, panels, strict=True):
        col = f"{metric} [{protocol}]"
        ax.barh(y, table[col], xerr=errors[col] if col in errors else None, color=colours,
                error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.set_title(f"{metric}\n[{protocol}]", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        err = errors[col].fillna(0) if col in errors else pd.Series(0.0, index=table.index)
        for yi, v, e in zip(y, table[col], err, strict=True):
            ax.text(v + e, yi, f" {v:.3f}", va="center", fontsize=7)
        ax.set_xlim(0, (table[col] + err).max() * 1.35 if table[col].max() > 0 else 1)
    return _finish_panels(fig, axes, table, "Accuracy on the test item (bars: mean over users, lines: ±1 standard "
                          "error)", path)


def beyond_chart(table: pd.DataFrame, path: Path) -> Path:
    """Catalogue coverage, intra-list diversity and novelty of the top-10 lists (full ranking)."""
    panels = [c for c in ("Coverage@10 [full]", "ILD@10 [full]", "Novelty@10 [full]", "Gini@10 [full]")
              if c in table]
    fig, axes, y, colours = _model_panels(table, len(panels), 3.2)
    for ax, col in zip(axes, panels, strict=True):
        ax.barh(y, table[col], color=colours)
        ax.set_title(col.replace(" [", "\n["), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return _finish_panels(fig, axes, table, "Beyond accuracy: the top-10 lists of all evaluated users", path)


def protocol_scatter(table: pd.DataFrame, path: Path) -> Path:
    """NDCG@10 under sampled-100 against full ranking: orderings that the two protocols disagree on."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.9), layout="constrained")
    x, y = table["NDCG@10 [sampled-100]"], table["NDCG@10 [full]"]
    ax.scatter(x, y, c=_colours(table["family"].tolist()), s=40, zorder=3)
    for name, xi, yi in zip(table.index, x, y, strict=True):
        ax.annotate(name, (xi, yi), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("NDCG@10 [sampled-100]")
    ax.set_ylabel("NDCG@10 [full]")
    ax.grid(alpha=0.3)
    ax.set_title("The two protocols side by side", fontsize=10)
    _legend(ax, table["family"].tolist())
    return save_figure(fig, path)


def segment_heatmap(per_segment: pd.DataFrame, names: dict[str, str], protocol: str, path: Path) -> Path:
    """Mean NDCG@10 per segment (rows) and model (columns); each row's best model is outlined."""
    plt = pyplot()
    data = per_segment.drop(columns="users")
    labels = [f"{names.get(s, s)} (n={int(n)})" for s, n in zip(data.index, per_segment["users"], strict=True)]
    fig, ax = plt.subplots(figsize=(1.0 * data.shape[1] + 3.5, 0.55 * data.shape[0] + 2.2), layout="constrained")
    im = ax.imshow(data.to_numpy(np.float64), cmap="Blues", aspect="auto")
    ax.set_xticks(np.arange(data.shape[1]), data.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(np.arange(data.shape[0]), labels, fontsize=8)
    vmax = np.nanmax(data.to_numpy(np.float64))
    for i in range(data.shape[0]):
        row = data.iloc[i].to_numpy(np.float64)
        top = np.nanmax(row) if np.isfinite(row).any() else np.nan
        for j in range(data.shape[1]):
            v = row[j]
            best = bool(v == top)
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * vmax else "black", fontweight="bold" if best else "normal")
            if best:  # every model that ties the segment's best value
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#d62728", lw=1.5))
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    ax.set_title(f"NDCG@10 [{protocol}] by user segment (red: the segment's best model)", fontsize=10)
    return save_figure(fig, path)
