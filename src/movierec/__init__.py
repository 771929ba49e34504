"""movierec: movie recommendation on MovieLens."""

from __future__ import annotations

__version__ = "0.1.0"


def load_dataset(name_or_path: str, **kwargs):
    """Load a MovieLens release by name, an imported name, or a folder. See movierec.data.load."""
    from movierec.data.load import load_dataset as _load

    return _load(name_or_path, **kwargs)


__all__ = ["__version__", "load_dataset"]
