"""`movierec recommend RUN --user U` never lists a movie the user is known to have rated: training ratings and,
for a run folder, the user's held-out validation and test movies; titles in square brackets print intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data.synthetic import write_synthetic

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("known_user")
    folder = write_synthetic(root / "syn", 80, 300, 3000, seed=1)
    movies = pd.read_csv(folder / "movies.csv")
    movies["title"] = [f"[REC] {i} (2007)" for i in range(len(movies))]
    movies.to_csv(folder / "movies.csv", index=False)
    out = root / "run"
    invoke("train", "itemknn", "--data", str(folder), "--out", str(out), "--set", "k=20", "--json")
    return out


def _known(run_dir: Path) -> tuple[object, dict[int, set[int]], dict[int, set[int]]]:
    """The bundle, and per raw user id: the raw movie ids held out (valid + test) and rated in training."""
    from movierec.runs.folders import load_run

    bundle, split = load_run(run_dir)
    held: dict[int, set[int]] = {}
    for part in (split.valid, split.test):
        for u, i in zip(part.user.tolist(), part.item.tolist(), strict=True):
            held.setdefault(int(bundle.users.raw(u)), set()).add(int(bundle.items.raw(i)))
    train: dict[int, set[int]] = {}
    for u, i in zip(split.train.user.tolist(), split.train.item.tolist(), strict=True):
        train.setdefault(int(bundle.users.raw(u)), set()).add(int(bundle.items.raw(i)))
    return bundle, held, train


def test_held_out_items_are_never_recommended(run_dir: Path) -> None:
    bundle, held, train = _known(run_dir)
    k = 40
    # users whose held-out movies the model alone would list: the case the exclusion is for
    leaking = []
    for user in sorted(held):
        items, _ = bundle.model.recommend(bundle.users.index(user), k)
        raw = {int(bundle.items.raw(i)) for i in items[0] if i >= 0}
        if raw & held[user]:
            leaking.append(user)
    assert leaking, "the model lists no held-out movie in any top-k: the test would prove nothing"
    for user in leaking[:8]:
        out = json.loads(invoke("recommend", str(run_dir), "--user", str(user), "-k", str(k), "--json"))
        got = [r["movieId"] for r in out["recommendations"]]
        assert len(got) == k and len(set(got)) == k
        assert not set(got) & held[user]
        assert not set(got) & train[user]
        # the rest keep the model's order: the model's own list without the held-out movies
        items, _ = bundle.model.recommend(bundle.users.index(user), k + len(held[user]))
        expected = [int(bundle.items.raw(i)) for i in items[0] if i >= 0]
        assert got == [m for m in expected if m not in held[user]][:k]


def test_a_bundle_without_its_split_still_recommends(run_dir: Path, tmp_path: Path) -> None:
    bundle, held, _ = _known(run_dir)
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    shutil.rmtree(bare / "split")
    user = sorted(held)[0]
    out = json.loads(invoke("recommend", str(bare), "--user", str(user), "-k", "10", "--json"))
    items, _ = bundle.model.recommend(bundle.users.index(user), 10)
    assert [r["movieId"] for r in out["recommendations"]] == [int(bundle.items.raw(i)) for i in items[0]]


def test_titles_in_square_brackets_print_intact(run_dir: Path) -> None:
    _, held, _ = _known(run_dir)
    text = invoke("recommend", str(run_dir), "--user", str(sorted(held)[0]), "-k", "3")
    rows = [line for line in text.splitlines() if line.startswith("│ ") and line[2].isdigit()]
    assert len(rows) == 3 and all(line.count("[REC] ") >= 1 for line in rows)  # the title (and the reason)
    assert np.all([line.count("[REC]") <= 2 for line in text.splitlines()])


def test_recommend_help_says_held_out_movies_are_excluded() -> None:
    text = " ".join(invoke("recommend", "--help").split())
    assert "validation and test" in text
