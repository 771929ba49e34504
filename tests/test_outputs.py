"""Outputs are sacred: a command writes only into a new path, an empty folder, or an output folder of its
own kind (a run is replaced only with --force), and it refuses anything else with one line before any work,
leaving what is there untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from movierec.errors import MovieRecError
from movierec.fsutil import MARKER, claim_output, output_kind


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_claim_output_rules(tmp_path: Path) -> None:
    assert claim_output(tmp_path / "new" / "study", "study") == tmp_path / "new" / "study"
    assert output_kind(tmp_path / "new" / "study") == "study"
    claim_output(tmp_path / "new" / "study", "study")  # a study continues in its own folder
    with pytest.raises(MovieRecError, match="holds a study output, not a eda output"):
        claim_output(tmp_path / "new" / "study", "eda")
    (tmp_path / "empty").mkdir()
    claim_output(tmp_path / "empty", "eda")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(MovieRecError, match=r"holds files movierec did not write \(e.g. 'thesis.tex'\)"):
        claim_output(tmp_path / "mine", "study")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(MovieRecError, match="is a file, not a folder"):
        claim_output(tmp_path / "file.txt", "run")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"format": "movierec-bundle"}')
    with pytest.raises(MovieRecError, match="pass --force to replace it"):
        claim_output(run, "run")
    claim_output(run, "run", force=True)
    assert not (run / MARKER).exists()  # a bundle is written whole; it needs no marker


def test_a_location_that_cannot_be_written_is_refused_before_work(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root passes permission bits: use a file system nobody can create files in
        target = Path("/proc/movierec-test/out")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "out"
    with pytest.raises(MovieRecError, match="is not writable"):
        claim_output(target, "study")
    assert not target.exists()


def _config(folder: Path) -> Path:
    path = folder / "one-run.toml"
    path.write_text('[[run]]\nname = "P"\nmodel = "popularity"\n')
    return path


def _movierec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from movierec.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "synth", 80, 300, 3000, seed=1)


@pytest.mark.parametrize("command", [
    ["train", "popularity", "--data", "{data}", "--out", "{out}"],
    ["split", "--data", "{data}", "--out", "{out}"],
    ["compare", "--data", "{data}", "--models", "popularity", "--out", "{out}"],
    ["eda", "--data", "{data}", "--out", "{out}"],
    ["segments", "--data", "{data}", "--out", "{out}"],
    ["study", "--data", "{data}", "--out", "{out}", "--config", "{config}"],
    ["experiment", "{config}", "--data", "{data}", "--out", "{out}"],
])
@pytest.mark.e2e  # each command in a subprocess, as a user runs it
def test_commands_never_write_over_the_users_files(command: list[str], dataset_dir: Path, tmp_path: Path) -> None:
    for target in (dataset_dir, tmp_path / "mine"):
        if target.name == "mine":
            target.mkdir()
            (target / "notes.md").write_text("mine")
        before = _snapshot(target)
        r = _movierec(*(a.format(data=dataset_dir, out=target, config=_config(tmp_path)) for a in command))
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "did not write" in r.stderr
        assert _snapshot(target) == before
    (tmp_path / "a-file").write_text("keep me")
    r = _movierec(*(a.format(data=dataset_dir, out=tmp_path / "a-file", config=_config(tmp_path)) for a in command))
    assert r.returncode == 2 and "is a file" in r.stderr and (tmp_path / "a-file").read_text() == "keep me"


@pytest.mark.e2e  # in subprocesses
def test_train_replaces_a_run_only_with_force(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _movierec("train", "popularity", "--data", str(dataset_dir), "--out", str(out)).returncode == 0
    before = _snapshot(out)
    again = _movierec("train", "itemknn", "--data", str(dataset_dir), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr and _snapshot(out) == before
    forced = _movierec("train", "itemknn", "--data", str(dataset_dir), "--out", str(out), "--force")
    assert forced.returncode == 0 and '"itemknn"' in (out / "config.json").read_text()


def test_csv_text_defuses_formulas_and_keeps_numbers() -> None:
    """Hand cases of OWASP's CSV-injection rule: = + - @ tab CR at a text cell's start get a leading '."""
    import pandas as pd

    from movierec.fsutil import csv_text

    frame = pd.DataFrame({"title": ["=1+1", "+cmd", "-2.5", "@SUM(A1)", "\tx", "plain", None, "a=b"],
                          "n": [1, -2, 3, 4, 5, 6, 7, 8]},
                         index=pd.Index(["=seg", "ok", "x", "y", "z", "u", "v", "w"], name="segment"))
    rows = csv_text(frame).splitlines()
    assert rows[1:] == ["'=1+1,1", "'+cmd,-2", "-2.5,3", "'@SUM(A1),4", "'\tx,5", "plain,6", ",7", "a=b,8"]
    assert csv_text(frame, index=True).splitlines()[1].startswith("'=seg,'=1+1,")
    assert frame["title"].iloc[0] == "=1+1"  # the caller's frame is not changed
