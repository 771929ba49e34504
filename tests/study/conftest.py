"""One quick study on ml-latest-small per test session, shared by the study and browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "study-quick.toml"


@pytest.fixture(scope="session")
def quick_study(mls, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    """(output folder, the returned context, the progress steps seen)."""
    from movierec.experiments import load_config
    from movierec.study import run_study

    out = tmp_path_factory.mktemp("study")
    steps: list[str] = []
    ctx = run_study(mls, out, load_config(QUICK), progress=lambda what, frac: steps.append(what))
    return out, ctx, steps
