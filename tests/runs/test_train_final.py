"""``movierec train`` through the engine, in-process on synthetic data: the run folder (its bundle is the model
the test read, its result.json the keyed result), --no-refit, --final with --like, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data_edits import write_small


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> str:
    return str(write_small(tmp_path_factory.mktemp("train-final") / "syn", seed=3))


def _train(monkeypatch, capsys, *args: str) -> dict:
    code, out, err = run_cli(monkeypatch, capsys, "train", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_train_tests_from_training_plus_validation_and_records_its_choices(syn, tmp_path, monkeypatch,
                                                                          capsys) -> None:
    from movierec.artifacts import load_bundle

    info = _train(monkeypatch, capsys, "gmf", "--data", syn, "--out", str(tmp_path / "gmf"), "--set", "epochs=3",
                  "--set", "factors=8")
    assert info["test_input"] == "refit" and set(info["test"]) == {"sampled-100", "full"}
    assert info["choices"] == {"epochs": info["best_epoch"], "patience": 0}
    bundle = load_bundle(tmp_path / "gmf")
    assert bundle.config["dataset"]["fit_on"] == "train+valid" and bundle.config["dataset"]["input"] == "train+valid"
    assert bundle.config["choices"] == info["choices"]
    result = json.loads((tmp_path / "gmf" / "result.json").read_text())
    assert result["key"]["test_input"] == "train+valid" and (tmp_path / "gmf" / "per_user.parquet").is_file()
    # evaluate reads the same test model: the same figures as train reported
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", str(tmp_path / "gmf"), "-k", "10", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["NDCG@10"] == pytest.approx(info["test"]["full"]["metrics"]["NDCG@10"])

    knn = _train(monkeypatch, capsys, "itemknn", "--data", syn, "--out", str(tmp_path / "knn"), "--no-refit")
    assert knn["test_input"] == "history"
    refit = _train(monkeypatch, capsys, "itemknn", "--data", syn, "--out", str(tmp_path / "knn-refit"))
    assert refit["test_input"] == "refit"
    assert refit["NDCG@10 [sampled-100, valid]"] == knn["NDCG@10 [sampled-100, valid]"]  # validation as before


def test_a_final_model_is_trained_like_an_evaluated_run(syn, tmp_path, monkeypatch, capsys) -> None:
    from movierec.artifacts import load_bundle
    from movierec.data import load_dataset

    first = _train(monkeypatch, capsys, "ease", "--data", syn, "--out", str(tmp_path / "ease"))
    lam = first["choices"]["l2"]
    final = _train(monkeypatch, capsys, "ease", "--data", syn, "--out", str(tmp_path / "final"), "--final",
                   "--like", str(tmp_path / "ease"))
    assert final["final"] is True and final["split"]["protocol"] == "all"
    bundle = load_bundle(tmp_path / "final")
    assert bundle.config["config"]["l2"] == lam  # λ chosen on validation by the evaluated run, not the default
    assert bundle.model.seen_.nnz == len(load_dataset(syn).interactions)
    # evaluate refuses it; recommend serves it like any run
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(tmp_path / "final"))
    assert code == 2 and "a final model" in err and err.strip().count("\n") == 0
    code, out, err = run_cli(monkeypatch, capsys, "recommend", str(tmp_path / "final"), "--user", "1", "-k", "3",
                             "--json")
    assert code == 0, err
    assert len(json.loads(out)["recommendations"]) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--like", "{ease}"], "--like goes with --final"),
    (["--final", "--refit"], "--refit and --final"),
    (["--final", "--no-refit"], "--no-refit and --final"),
    (["--final", "--like", "{nothing}"], "not a run folder or model bundle"),
    (["--final", "--like", "{knn}"], "a run of itemknn, not of ease"),
])
def test_bad_final_options_are_one_line(syn, tmp_path, monkeypatch, capsys, args, message) -> None:
    knn = tmp_path / "knn"
    _train(monkeypatch, capsys, "itemknn", "--data", syn, "--out", str(knn), "--set", "k=5")
    paths = {"ease": str(knn), "nothing": str(tmp_path / "nothing"), "knn": str(knn)}
    code, _, err = run_cli(monkeypatch, capsys, "train", "ease", "--data", syn, "--out", str(tmp_path / "x"),
                           *[a.format(**paths) for a in args])
    assert code == 2 and message in err and err.strip().count("\n") == 0
    assert not Path(tmp_path / "x").exists()
