"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache per test, and no data folders from the environment."""
    d = tmp_path / "cache"
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(d))
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    return d
