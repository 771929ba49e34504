"""``movierec tune``: search spaces that name real settings within their limits, the four outputs (best.toml
trains and is an experiment and a study config), pruning of neural models, one-line errors, and an objective
that never reads the test part. Everything runs on a small synthetic data set (seconds)."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytest.importorskip("optuna")

from movierec.errors import MovieRecError
from movierec.models.registry import model_entry, validate_settings
from movierec.models.settings import bounds
from movierec.tuning import SPACES, Param, check_space, resolve_space, tune

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NEW_MODELS = ("ease", "ials")  # being written alongside: their spaces are checked once they import


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from movierec.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("tune") / "syn", 80, 300, 3000, seed=1)


@pytest.fixture(scope="module")
def ds(syn: Path):
    from movierec.data import load_dataset

    return load_dataset(str(syn))


@pytest.fixture(scope="module")
def split(ds):
    from movierec.data.splits import make_split

    return make_split(ds, "loo", 42)


def _loadable(model: str) -> bool:
    try:
        model_entry(model).load()
    except ImportError:
        return False
    return True


# -- spaces -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", sorted(SPACES))
def test_every_space_key_is_a_real_setting_within_its_declared_limits(model: str) -> None:
    if not _loadable(model):
        pytest.skip(f"{model} is not importable yet")
    names = {s.name for s in model_entry(model).settings()}
    fields = bounds(model_entry(model).load().config_class)
    for p in SPACES[model]:
        assert p.name in names, f"{model}: {p.name} is not a setting"
        if p.kind == "categorical":
            for c in p.choices:
                validate_settings(model, {p.name: c})
            continue
        assert p.low < p.high
        meta = fields[p.name]
        for bound in (p.low, p.high):
            if meta.get("ge") is not None:
                assert bound >= meta["ge"], (model, p)
            if meta.get("gt") is not None:
                assert bound > meta["gt"], (model, p)
            if meta.get("le") is not None:
                assert bound <= meta["le"], (model, p)
            if meta.get("lt") is not None:
                assert bound < meta["lt"], (model, p)
            validate_settings(model, {p.name: int(bound) if p.kind == "int" else float(bound)})
        if p.kind == "log" or p.log:
            assert p.low > 0
    check_space(model, SPACES[model])


def test_the_two_new_models_have_the_asked_spaces() -> None:
    assert {p.name: (p.kind, p.low, p.high) for p in SPACES["ease"]} == {"l2": ("log", 1.0, 5000.0)}
    assert {p.name: (p.kind, p.low, p.high) for p in SPACES["ials"]} == {
        "factors": ("int", 32, 256), "regularization": ("log", 1e-3, 1.0), "alpha": ("log", 0.1, 50.0),
        "iterations": ("int", 5, 30)}


@pytest.mark.parametrize(("param", "message"), [
    (Param("kk", "int", 1, 5), "unknown setting 'kk'; did you mean 'k'?"),
    (Param("k", "int", 0, 5), "k = 0 is invalid"),
    (Param("k", "int", 9, 5), "low 9 is above high 5"),
    (Param("shrink", "log", 0.0, 5.0), "needs low > 0"),
    (Param("k", "int", 1.5, 5), "integer bounds"),
])
def test_a_bad_space_is_refused_in_one_line(param: Param, message: str) -> None:
    with pytest.raises(MovieRecError, match=message.replace("?", r"\?")) as e:
        check_space("itemknn", [param])
    assert "\n" not in str(e.value)


def test_space_file_overrides_adds_and_fixes(tmp_path: Path) -> None:
    f = tmp_path / "space.toml"
    f.write_text('k = { kind = "int", low = 5, high = 20 }\nblock_size = 512\n')
    params, fixed = resolve_space("itemknn", f, {"shrink": 2.0})
    assert [p.name for p in params] == ["k"] and (params[0].low, params[0].high) == (5, 20)
    assert fixed == {"block_size": 512, "shrink": 2.0}


# -- the command end to end -------------------------------------------------------------------------------
def _best_run(folder: Path) -> dict:
    cfg = tomllib.loads((folder / "best.toml").read_text())
    assert list(cfg) == ["run"] and len(cfg["run"]) == 1
    return cfg["run"][0]


def test_tune_itemknn_writes_four_files_and_best_toml_trains(syn: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "tune"
    code, stdout, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "3",
                                "--out", str(out), "--json")
    assert code == 0, err
    assert {"best.toml", "trials.csv", "optuna.html", "study.json"} <= {p.name for p in out.iterdir()}
    lines = [ln for ln in err.splitlines() if "tune itemknn: trial #" in ln]
    assert len(lines) == 3 and "(3/3) complete: NDCG@10" in lines[-1]

    info = json.loads((out / "study.json").read_text())
    assert info["model"] == "itemknn" and info["trials"] == 3 and info["pruned"] == 0
    assert info["objective"] == {"metric": "NDCG@10", "protocol": "sampled-100", "part": "valid",
                                 "direction": "maximize"}
    assert info["split"]["protocol"] == "loo" and info["split"]["seed"] == 42 and info["version"]
    assert json.loads(stdout)["best_value"] == info["best_value"]
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"COMPLETE"}
    assert max(float(r["value"]) for r in rows) == pytest.approx(info["best_value"])
    assert all(json.loads(r["params"]).keys() == {"k", "shrink"} and float(r["seconds"]) > 0 for r in rows)
    page = (out / "optuna.html").read_text()
    assert "<svg" in page or "plotly" in page
    assert "https://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN

    run = _best_run(out)
    assert run["model"] == "itemknn" and {k: run[k] for k in ("k", "shrink")} == info["best_params"]
    from movierec.experiments import load_config
    from movierec.runs import validate_config

    for kind in ("experiment", "study"):  # a config of both as it stands
        validate_config(load_config(out / "best.toml"), kind, "best.toml")
    # train with the settings, as the file's comment spells out
    train_line = next(ln for ln in (out / "best.toml").read_text().splitlines() if "movierec train" in ln)
    sets = [a for a in train_line.split() if "=" in a and not a.startswith("--")]
    assert sorted(s.split("=")[0] for s in sets) == ["k", "shrink"]
    set_args = [x for s in sets for x in ("--set", s)]
    code, trained, err = run_cli(monkeypatch, capsys, "train", "itemknn", "--data", str(syn), "--out",
                                 str(tmp_path / "run"), *set_args, "--json")
    assert code == 0, err
    bundle = json.loads((tmp_path / "run" / "config.json").read_text())
    assert bundle["config"]["k"] == run["k"] and bundle["config"]["shrink"] == run["shrink"]
    # the same split and protocol: train's validation NDCG@10 is the best trial's value
    assert json.loads(trained)["valid"]["metrics"]["NDCG@10"] == pytest.approx(info["best_value"], abs=1e-12)
    # train --config reads the file as it stands, to the same settings
    code, _, err = run_cli(monkeypatch, capsys, "train", "itemknn", "--data", str(syn), "--out",
                           str(tmp_path / "run-config"), "--config", str(out / "best.toml"), "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "run-config" / "config.json").read_text())["config"] == bundle["config"]
    code, _, err = run_cli(monkeypatch, capsys, "train", "gmf", "--data", str(syn), "--out",
                           str(tmp_path / "run-wrong"), "--config", str(out / "best.toml"))
    assert code == 2 and "expected one [[run]] with model = 'gmf', found 0" in err and err.count("\n") == 1
    # and as an experiment config
    code, _, err = run_cli(monkeypatch, capsys, "experiment", str(out / "best.toml"), "--data", str(syn), "--out",
                           str(tmp_path / "exp"), "--json")
    assert code == 0, err
    assert (tmp_path / "exp" / "results.json").exists()

    # the results are not replaced without --force
    code, _, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "1",
                           "--out", str(out))
    assert code == 2 and "--force" in err and err.count("\n") == 1
    code, _, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "1",
                           "--out", str(out), "--force")
    assert code == 0, err
    assert json.loads((out / "study.json").read_text())["trials"] == 1


def test_gmf_prunes_trials_whose_epochs_fall_behind(ds, split, tmp_path: Path) -> None:
    from movierec.tuning import write_outputs

    space = [Param("lr", "categorical", choices=(0.05, 1e-6))]
    res = tune("gmf", ds, split, space, {"epochs": 2, "factors": 8, "patience": 0}, trials=4, seed=0,
               startup_trials=1)
    states = [t.state for t in res.trials]
    assert "PRUNED" in states and "COMPLETE" in states
    for t in res.trials:
        if t.state == "PRUNED":  # stopped after its first epoch, no value, below the median of epoch 1
            assert t.epochs == 1 and t.value is None and t.last_intermediate is not None
            assert t.params["lr"] == 1e-6
        else:
            assert t.epochs == 2 and t.value is not None
    assert res.best.params == {"lr": 0.05}
    info = write_outputs(tmp_path, res, {"name": "syn"}, split.summary(), "test")
    assert info["pruned"] == states.count("PRUNED")
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [r["state"] for r in rows] == states
    assert all(r["value"] == "" for r in rows if r["state"] == "PRUNED")


def test_gmf_through_the_command(syn: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "tune", "gmf", "--data", str(syn), "--trials", "2", "--out",
                           str(tmp_path / "t"), "--set", "epochs=2", "--set", "factors=8", "--seed", "3")
    assert code == 0, err
    run = _best_run(tmp_path / "t")
    assert run["epochs"] == 2 and run["factors"] == 8 and {"lr", "negatives", "l2"} <= set(run)
    rows = list(csv.DictReader((tmp_path / "t" / "trials.csv").open()))
    assert len(rows) == 2 and all(r["epochs"] == "2" for r in rows if r["state"] == "COMPLETE")


def test_trials_that_the_model_refuses_fail_alone(syn: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    space = tmp_path / "space.toml"  # no genome in the synthetic data: every sampled trial fails, one line each
    space.write_text('features = { choices = ["genome"] }\n')
    out = tmp_path / "t"
    code, _, err = run_cli(monkeypatch, capsys, "tune", "content", "--data", str(syn), "--trials", "3", "--out",
                           str(out), "--space", str(space))
    assert code == 0, err  # trial #0, the defaults, finished
    assert [r["state"] for r in csv.DictReader((out / "trials.csv").open())] == ["COMPLETE", "FAIL", "FAIL"]
    assert "genome" in (out / "trials.csv").read_text()
    # the defaults fail too (genome fixed): no trial finished
    out = tmp_path / "t2"
    code, _, err = run_cli(monkeypatch, capsys, "tune", "content", "--data", str(syn), "--trials", "2", "--out",
                           str(out), "--set", "features=genome")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: tune content: no trial finished")
    assert [r["state"] for r in csv.DictReader((out / "trials.csv").open())] == ["FAIL", "FAIL"]


def test_the_defaults_are_trial_0_and_kept_when_no_trial_beats_them(syn: Path, tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    from movierec.models.itemknn import ItemKNNSettings

    # a space whose every point is worse than the defaults on validation (a neighbourhood of 1 movie)
    space = tmp_path / "space.toml"
    space.write_text('k = { kind = "int", low = 1, high = 1 }\nshrink = 0.0\n')
    out = tmp_path / "t"
    code, stdout, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "3",
                                "--out", str(out), "--space", str(space))
    assert code == 0, err
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert json.loads(rows[0]["params"]) == {"k": ItemKNNSettings().k}
    assert all(float(r["value"]) < float(rows[0]["value"]) for r in rows[1:])
    best = (out / "best.toml").read_text()
    assert "no trial beat the model's defaults" in best and _best_run(out)["k"] == ItemKNNSettings().k
    info = json.loads((out / "study.json").read_text())
    assert info["best"]["trial"] == 0 and info["best"]["defaults"] and not info["beats_defaults"]
    assert "beat the defaults" in stdout


def test_timeout_starts_no_trial_after_it(syn: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "50",
                           "--timeout", "0.001", "--out", str(tmp_path / "t"))
    assert code == 0, err
    assert json.loads((tmp_path / "t" / "study.json").read_text())["trials"] == 1


def test_ctrl_c_keeps_the_finished_trials(syn: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import movierec.runs.engine as engine

    calls = []
    real = engine.fit_model

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "fit_model", interrupted_second)
    code, _, err = run_cli(monkeypatch, capsys, "tune", "itemknn", "--data", str(syn), "--trials", "5",
                           "--out", str(tmp_path / "t"))
    assert code == 130 and "interrupted after 1 trial;" in err
    info = json.loads((tmp_path / "t" / "study.json").read_text())
    assert info["interrupted"] and info["trials"] == 1 and info["complete"] == 1
    assert _best_run(tmp_path / "t")["model"] == "itemknn"


# -- bad inputs: one line, exit 2, before any data is read --------------------------------------------------
BAD = [
    (["tune", "itemknm"], "unknown model 'itemknm'; did you mean 'itemknn'?"),
    (["tune", "popularity"], "popularity has no built-in search space"),
    (["tune", "itemknn", "--trials", "0"], "--trials 0: need at least 1"),
    (["tune", "itemknn", "--timeout", "0"], "--timeout 0: need a number of seconds above 0"),
    (["tune", "itemknn", "--metric", "auc"], "--metric 'auc': expected one of sampled-100, full"),
    (["tune", "itemknn", "--split", "cold-items"], "no validation part"),
    (["tune", "itemknn", "--split", "vae-cf"], "add --metric full"),
    (["tune", "itemknn", "--set", "kk=3"], "unknown setting 'kk'; did you mean 'k'?"),
    (["tune", "itemknn", "--set", "k=3", "--set", "shrink=1"], "nothing left to search"),
    (["tune", "itemknn", "--space", "{tmp}/missing.toml"], "file not found"),
    (["tune", "itemknn", "--space", "{tmp}/bad.toml"], "unknown setting 'shrnk'; did you mean 'shrink'?"),
    (["tune", "itemknn", "--space", "{tmp}/range.toml"], "k = 0 is invalid"),
    (["tune", "itemknn", "--out", "{tmp}/mine"], "did not write"),
    (["tune", "itemknn", "--out", "{tmp}/a-file"], "is a file"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_inputs_are_one_line(args: list[str], message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "bad.toml").write_text('shrnk = { kind = "float", low = 0, high = 1 }\n')
    (tmp_path / "range.toml").write_text('k = { kind = "int", low = 0, high = 10 }\n')
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("mine")
    (tmp_path / "a-file").write_text("keep")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    # a dataset that does not exist: every check must come before the data is read
    code, _, err = run_cli(monkeypatch, capsys, *args, "--data", str(tmp_path / "no-such-data"))
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists() and (tmp_path / "mine" / "notes.md").read_text() == "mine"


# -- the objective never reads the test part ----------------------------------------------------------------
@pytest.mark.parametrize("metric", ["sampled-100", "full"])
def test_trial_values_do_not_depend_on_the_test_part(ds, split, metric: str) -> None:
    from movierec.data.splits import HeldOut

    rng = np.random.default_rng(0)
    t = split.test
    scrambled = dataclasses.replace(split, test=HeldOut(t.user.copy(), rng.permutation(t.item),
                                                        rng.permutation(t.negatives.ravel()).reshape(
                                                            t.negatives.shape), None, t.timestamp))
    space = list(SPACES["itemknn"])
    a = tune("itemknn", ds, split, space, trials=3, seed=1, metric=metric)
    b = tune("itemknn", ds, scrambled, space, trials=3, seed=1, metric=metric)
    assert [(r.params, r.value) for r in a.trials] == [(r.params, r.value) for r in b.trials]
    assert len({r.value for r in a.trials}) > 1  # the trials differ, so equality above means something


def test_cross_setting_checks_see_config_and_set_together(tmp_path: Path) -> None:
    from movierec.errors import MovieRecError
    from movierec.runs.folders import parse_overrides

    cfg = tmp_path / "sas.toml"
    cfg.write_text('[[run]]\nname = "s"\nmodel = "sasrec"\ndim = 96\n')
    assert parse_overrides("sasrec", ["heads=3"], cfg) == {"dim": 96, "heads": 3}
    with pytest.raises(MovieRecError, match=r"heads \(5\) must divide dim \(96\)"):
        parse_overrides("sasrec", ["heads=5"], cfg)
    with pytest.raises(MovieRecError, match=r"sasrec --set: heads \(3\) must divide dim \(64\)"):
        parse_overrides("sasrec", ["heads=3"])
