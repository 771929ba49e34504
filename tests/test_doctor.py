"""`movierec --version` and `movierec doctor`: what the installation has, as a table and as JSON."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from movierec import __version__
from movierec.cli import app

runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"movierec {__version__}"


def test_doctor_json(shared_data_dir, monkeypatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(shared_data_dir))
    r = runner.invoke(app, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["movierec"] == __version__ and info["packages"]["numpy"]
    assert set(info["extras"]) == {"study", "serve", "test"} and info["extras"]["test"]["installed"]
    assert info["compute"]["device"] in ("cpu", "cuda") and info["compute"]["cpu_threads"] >= 1
    assert info["cache"]["path"] == os.environ["MOVIEREC_CACHE_DIR"] and info["cache"]["set_by"] == "MOVIEREC_CACHE_DIR"
    assert info["data"]["MOVIEREC_DATA_DIR"] == [str(shared_data_dir)]
    assert {"name": "ml-latest-small", "status": "complete"}.items() <= next(
        f for f in info["data"]["found"] if f["name"] == "ml-latest-small").items()


def test_doctor_table_names_a_missing_extra(monkeypatch) -> None:
    from movierec.cli import doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda m: None if m == "fastapi" else real(m))
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())
    assert "extra [serve] not installed (missing fastapi; pip install 'movierec[serve]')" in text
    assert "compute" in text and "cache" in text and "chromium" in text


def test_doctor_names_the_data_a_study_here_read(tmp_path, monkeypatch) -> None:
    """A command run outside `make` can find the data `make run` used: doctor reads out/*/study.json."""
    study = tmp_path / "out" / "study-mine"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"dataset": {"name": "ml-latest-small", "source": "/data/mls"}}))
    (tmp_path / "out" / "broken").mkdir()
    (tmp_path / "out" / "broken" / "study.json").write_text("{")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["data"]["studies"] == [
        {"folder": str(study), "dataset": "ml-latest-small", "source": "/data/mls"}]
    r = runner.invoke(app, ["doctor"], terminal_width=200)
    text = " ".join(r.output.replace("│", " ").split())
    assert "a study here" in text and "read ml-latest-small from /data/mls" in text
