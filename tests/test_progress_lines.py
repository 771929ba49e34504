"""Progress of the long commands when stderr is not a terminal (CI, nohup, ``| tee``): timestamped plain lines on
stderr, one per step or epoch, while ``--json`` keeps stdout pure JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def run(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, stdout and stderr piped (so neither is a terminal)."""
    return subprocess.run([sys.executable, "-m", "movierec.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


def progress_lines(stderr: str, command: str) -> list[str]:
    """The timestamped lines of ``command`` on stderr, timestamps removed; every line of it is checked."""
    lines = [line for line in stderr.splitlines() if STAMP.match(line)]
    assert lines, f"no timestamped progress lines on stderr:\n{stderr}"
    out = []
    for line in lines:
        rest = STAMP.sub("", line)
        assert rest.startswith(command), line
        out.append(rest)
    return out


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from movierec.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("progress") / "syn", 80, 300, 3000, seed=0)


def test_train_prints_start_epochs_and_end_with_json_on_stdout(syn: Path, tmp_path: Path) -> None:
    r = run("train", "gmf", "--data", str(syn), "--out", str(tmp_path / "gmf"), "--set", "epochs=2",
            "--set", "patience=0", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)  # progress never reaches stdout
    assert info["model"] == "gmf" and info["epochs_run"] == 2
    lines = progress_lines(r.stderr, "train gmf: ")
    assert "fitting on syn" in lines[0] and "80 users" in lines[0] and "train" in lines[0]
    epochs = [line for line in lines if re.search(r": epoch \d+/2, loss \d\.\d{4}, valid NDCG@10 \d\.\d{4} \(", line)]
    assert [re.search(r"epoch (\d)", e).group(1) for e in epochs] == ["1", "2"]  # one line per epoch, no more
    assert re.search(r"done in \d+\.\d s .*2 epochs, best epoch \d", lines[-1]), lines[-1]
    assert len(lines) == 4, lines


def test_compare_names_each_model_in_order(syn: Path) -> None:
    r = run("compare", "--data", str(syn), "--models", "popularity,itemknn", "--json")
    assert r.returncode == 0, r.stderr
    assert [row["model"] for row in json.loads(r.stdout)["rows"]] == ["popularity", "itemknn"]
    lines = progress_lines(r.stderr, "compare: ")
    steps = [line.removeprefix("compare: ") for line in lines]
    fitting = [s for s in steps if s.startswith("fitting ")]  # each run fits, validates and tests in one step
    assert fitting == ["fitting popularity (1/2)", "fitting itemknn (2/2)"]
    assert any(re.fullmatch(r"itemknn \(2/2\) done in \d+\.\d s", s) for s in steps), steps


def test_experiment_reports_each_run_started_done_and_reused(syn: Path, tmp_path: Path) -> None:
    config = tmp_path / "grid.toml"
    config.write_text('[[run]]\nname = "pop"\nmodel = "popularity"\n\n'
                      '[[run]]\nname = "gmf-2"\nmodel = "gmf"\nepochs = 2\npatience = 0\n')
    out = tmp_path / "out"
    r = run("experiment", str(config), "--data", str(syn), "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = [line.removeprefix("experiment: ") for line in progress_lines(r.stderr, "experiment: ")]
    assert lines[0].startswith("2 runs of ")
    assert lines[1] == "run 'pop' (1/2) started (popularity)"
    assert re.fullmatch(r"run 'pop' \(1/2\) done in \d+\.\d s \(trained; .*\)", lines[2]), lines[2]
    assert lines[3] == "run 'gmf-2' (2/2) started (gmf)"
    assert [line.split(",")[0] for line in lines[4:6]] == ["run 'gmf-2' (2/2) epoch 1/2", "run 'gmf-2' (2/2) epoch 2/2"]
    assert re.fullmatch(r"run 'gmf-2' \(2/2\) done in \d+\.\d s \(trained; .*\)", lines[6]), lines[6]
    assert lines[7].startswith("done in ") and len(lines) == 8, lines

    again = run("experiment", str(config), "--data", str(syn), "--out", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert [row["model"] for row in json.loads(again.stdout)["rows"]] == ["pop", "gmf-2"]
    lines = [line.removeprefix("experiment: ") for line in progress_lines(again.stderr, "experiment: ")]
    assert [line for line in lines if line.startswith("run ")] == [
        "run 'pop' (1/2) reused (same data, settings, split and version)",
        "run 'gmf-2' (2/2) reused (same data, settings, split and version)"]


def test_reporter_is_silent_on_a_terminal_and_plain_elsewhere(monkeypatch, capsys) -> None:
    from movierec.cli.common import Reporter, epoch_text

    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty, self.text = tty, ""

        def isatty(self) -> bool:
            return self.tty

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    for tty in (True, False):
        err = Tty(tty)
        monkeypatch.setattr(sys, "stderr", err)
        rep = Reporter("train gmf")
        rep.epoch_printer(30)({"epoch": 3, "loss": 0.31214, "seconds": 12.34, "valid_NDCG@10": 0.40123})
        if tty:
            assert err.text == ""
        else:
            assert STAMP.match(err.text)
            assert STAMP.sub("", err.text) == "train gmf: epoch 3/30, loss 0.3121, valid NDCG@10 0.4012 (12.3 s)\n"
    assert epoch_text({"epoch": 2, "loss": 0.5, "seconds": 1.0}) == "epoch 2, loss 0.5000 (1.0 s)"
