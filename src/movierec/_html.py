"""Small helpers shared by the HTML reports (EDA, study): figures saved as PNG and inlined as data URIs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from movierec.fsutil import atomic_write_bytes


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it; returns the path."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


def data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` for a PNG, so a report stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
