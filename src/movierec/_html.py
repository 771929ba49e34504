"""Small helpers shared by the HTML reports (EDA, study): figures saved as PNG and inlined as data URIs.

A narrow screen shows every figure at its natural size, one image pixel to one CSS pixel (in a box of its own
that scrolls sideways where the figure is wider than the screen), so :func:`save_figure` makes sure that the
smallest text of every figure is at least ``MIN_TEXT_PX`` pixels tall in the PNG it writes.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from pathlib import Path
from typing import Any

from movierec.fsutil import atomic_write_bytes

MIN_TEXT_PX = 11.0  # the smallest text a figure's PNG may hold, in pixels (a point is dpi / 72 pixels)
SMALLEST_TEXT_KEY = "Smallest text"  # the PNG text chunk recording the figure's smallest font size, "8 pt"


def smallest_text_pt(fig: Any) -> float | None:
    """The font size in points of the smallest visible, non-empty text of a drawn figure (None: no text)."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return float(min(sizes)) if sizes else None


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it; returns the path.

    The PNG is written at ``dpi``, or at the higher dpi that makes the figure's smallest text ``MIN_TEXT_PX``
    pixels tall where it would come out smaller; it records that text's size in points (``SMALLEST_TEXT_KEY``)
    beside the dpi (pHYs), so a reader can tell the width below which the figure's text gets too small."""
    import matplotlib.pyplot as plt

    png = _png_bytes(fig, dpi)  # drawing the figure gives its tick labels their text
    smallest = smallest_text_pt(fig)
    if smallest is not None:
        needed = math.ceil(MIN_TEXT_PX * 72 / smallest)
        if needed > dpi:
            png = _png_bytes(fig, needed)
        png = _with_text(png, SMALLEST_TEXT_KEY, f"{smallest:g} pt")
    plt.close(fig)
    return atomic_write_bytes(Path(path), png)


def _png_bytes(fig: Any, dpi: int) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _with_text(png: bytes, key: str, value: str) -> bytes:
    """``png`` with a tEXt chunk holding ``key`` and ``value`` right after its header (the IHDR chunk)."""
    body = b"tEXt" + key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    end = 8 + 25  # the PNG signature, then IHDR: length, type, 13 bytes of data, CRC
    return png[:end] + chunk + png[end:]


def data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` for a PNG, so a report stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
