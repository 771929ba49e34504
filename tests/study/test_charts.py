"""The study's charts stay readable with many models: scatter labels clear of each other, heatmap numbers large."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

from movierec.study import charts

PAGE_WIDTH_PX = 1240  # the widest the report's content column shows an image (_base.html.j2: 1300 px less padding)


def _png_width(path) -> int:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", head[16:20])[0]


def _table(n: int = 18) -> pd.DataFrame:
    """18 models, most of them crowded into two tight clusters (as the ItemKNN and content variants are)."""
    rng = np.random.default_rng(0)
    sampled = np.r_[0.36, 0.47 + rng.normal(0, 0.006, n // 2), 0.09 + rng.normal(0, 0.01, n - n // 2 - 1)]
    full = np.r_[0.018, 0.030 + rng.normal(0, 0.0012, n // 2), 0.002 + rng.normal(0, 0.001, n - n // 2 - 1)]
    families = ["baseline"] + ["collaborative"] * (n // 2) + ["content", "autoencoder", "sequential", "hybrid"] * 3
    return pd.DataFrame({"family": families[:n], "NDCG@10 [sampled-100]": sampled, "NDCG@10 [full]": full},
                        index=[f"Model number {i}" for i in range(n)])


def test_scatter_labels_do_not_collide() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    from matplotlib.text import Text

    t = _table()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    x, y = t["NDCG@10 [sampled-100]"].to_numpy(), t["NDCG@10 [full]"].to_numpy()
    ax.scatter(x, y, s=40)
    texts = charts.place_labels(ax, x, y, [str(i + 1) for i in range(len(t))])
    fig.canvas.draw()
    boxes = [Text.get_window_extent(tx) for tx in texts]  # the numbers, not their leader lines
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert not overlaps, overlaps
    frame = ax.get_window_extent()
    assert all(frame.x0 - 1 <= b.x0 and b.x1 <= frame.x1 + 1 and frame.y0 - 1 <= b.y0 and b.y1 <= frame.y1 + 1
               for b in boxes)  # inside the axes
    plt.close(fig)


def test_scatter_and_its_key(tmp_path) -> None:
    t = _table()
    t.iloc[5, 1:] = t.iloc[4, 1:]  # two models on the same spot still get a number each
    path = charts.protocol_scatter(t, tmp_path / "p.png")
    assert path.is_file() and _png_width(path) > 500
    key = charts.scatter_key(t)
    assert [k["number"] for k in key] == list(range(1, 19)) and [k["name"] for k in key] == list(t.index)
    assert key[0]["colour"] == charts.FAMILY_COLOURS["baseline"]
    assert {k["colour"] for k in key if k["family"] == "sequential"} == {charts.FAMILY_COLOURS["sequential"]}
    best_full = int(np.argmax(t["NDCG@10 [full]"]))
    assert key[best_full]["rank_full"] == 1 and key[4]["rank_sampled"] == key[5]["rank_sampled"]


@pytest.mark.parametrize("n_segments", [3, 8])
def test_heatmap_numbers_are_at_least_10_px_with_18_models(tmp_path, n_segments: int) -> None:
    rng = np.random.default_rng(1)
    models = [f"Model with a long name {i}" for i in range(18)]
    index = [str(s) for s in range(n_segments)] + ["all"]
    seg = pd.DataFrame(rng.random((n_segments + 1, 18)) * 0.05, index=index, columns=models)
    seg.insert(0, "users", rng.integers(30, 300, n_segments + 1))
    names = {str(s): f"S{s} · Comedy, Musical · harsh, recent" for s in range(n_segments)}
    path = charts.segment_heatmap(seg, names, "full", tmp_path / "h.png")
    width = _png_width(path)
    shown = charts.HEATMAP_FONT_PT * charts.DPI / 72 * min(1.0, PAGE_WIDTH_PX / width)
    assert shown >= 10, (shown, width)
