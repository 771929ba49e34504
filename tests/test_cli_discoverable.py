"""Discoverable settings: examples in every --help, `study --print-config`, one spelling of the dataset
(`--data`, the old positional still working with a note), and the `data import` a config needs."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.errors import MovieRecError

runner = CliRunner()
COMMANDS = [["data", "list"], ["data", "fetch"], ["data", "import"], ["data", "info"], ["data", "synth"],
            ["data", "cache", "list"], ["data", "cache", "clear"], ["split"], ["train"], ["evaluate"], ["recommend"],
            ["experiment"], ["eda"], ["segments"], ["study"], ["compare"], ["similar"], ["models"], ["serve"],
            ["refresh"], ["doctor"], ["tune"]]


def _commands_of(group, prefix=()) -> list[list[str]]:
    out = []
    for cmd in group.registered_commands:
        out.append([*prefix, cmd.name])
    for sub in group.registered_groups:
        out.extend(_commands_of(sub.typer_instance, (*prefix, sub.name)))
    return out


def test_the_list_is_every_command() -> None:
    assert sorted(map(tuple, _commands_of(app))) == sorted(map(tuple, COMMANDS))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_help_ends_with_examples(command: list[str]) -> None:
    r = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())
    assert "Examples: movierec " + " ".join(command) in text, text[-400:]


def test_print_config_is_the_built_in_study_and_loads(tmp_path: Path) -> None:
    from movierec.experiments import load_config
    from movierec.runs import validate_config

    r = runner.invoke(app, ["study", "--print-config"])
    assert r.exit_code == 0
    assert r.output == files("movierec.study").joinpath("study.toml").read_text()
    assert r.output.startswith("# ")  # with its comments
    (tmp_path / "my-study.toml").write_text(r.output)
    cfg = load_config(tmp_path / "my-study.toml")
    validate_config(cfg, "study", "my-study.toml")
    assert len(cfg["run"]) >= 13


OLD_SPELLING = [["data", "info"], ["split", "--out", "{tmp}/split"], ["eda", "--out", "{tmp}/eda"]]


@pytest.mark.parametrize("command", OLD_SPELLING, ids=lambda c: c[0] if c[0] != "data" else "data info")
def test_dataset_is_data_everywhere_old_spelling_still_works(command, shared_data_dir: Path, tmp_path: Path) -> None:
    data = str(shared_data_dir / "ml-latest-small")
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    new = subprocess.run([sys.executable, "-m", "movierec", *args, "--data", data], capture_output=True, text=True)
    assert new.returncode == 0 and "deprecated" not in new.stderr, new.stderr
    old_args = [*args[:2], data, *args[2:]] if args[0] == "data" else [args[0], data, *args[1:]]
    old_args = [a.replace(str(tmp_path), str(tmp_path / "old")) for a in old_args]
    (tmp_path / "old").mkdir(exist_ok=True)
    old = subprocess.run([sys.executable, "-m", "movierec", *old_args], capture_output=True, text=True)
    assert old.returncode == 0, old.stderr
    assert f"--data {data}`" in old.stderr and "deprecated" in old.stderr
    both = runner.invoke(app, [*old_args, "--data", data])
    assert isinstance(both.exception, MovieRecError) and "give the dataset once" in str(both.exception)


def test_missing_data_is_one_line() -> None:
    for command in (["split", "--out", "x"], ["eda", "--out", "x"], ["data", "info"]):
        r = runner.invoke(app, command)
        assert isinstance(r.exception, MovieRecError) and "missing option --data" in str(r.exception)


def test_experiment_names_the_import_its_config_needs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    config = Path(__file__).resolve().parents[1] / "configs" / "ncf-paper.toml"
    r = runner.invoke(app, ["experiment", str(config), "--data", "ncf-ml-1m", "--out", str(tmp_path / "out")])
    assert isinstance(r.exception, MovieRecError)
    assert "unknown dataset 'ncf-ml-1m'" in str(r.exception)
    assert "says to get it with: movierec data import path/to/Data --name ncf-ml-1m" in str(r.exception)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_is_plain_text_flags_show_as_flags(command: list[str]) -> None:
    """Help is not rich markup (``[[run]]`` would vanish) and a flag shows no ``<bool>`` value."""
    r = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output and "╭" not in r.output
    if command == ["train"]:
        assert "its [[run]] of MODEL" in r.output
        assert any(line.split()[:1] == ["--resume"] for line in r.output.splitlines())
