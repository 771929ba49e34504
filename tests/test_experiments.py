import json

import pytest

from movierec.errors import MovieRecError
from movierec.experiments import expand_runs, load_config, run_experiment

CONFIG = """
[experiment]
name = "tiny"
ks = [10]

[defaults]
epochs = 1
batch_size = 4096

[[run]]
name = "pop"
model = "popularity"

[[grid]]
name = "GMF"
model = "gmf"
factors = [8, 16]
"""


def test_grid_expansion_and_defaults(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    runs = expand_runs(load_config(tmp_path / "c.toml"))
    assert [r.name for r in runs] == ["pop", "GMF factors=8", "GMF factors=16"]
    assert runs[0].settings == {}  # popularity takes none of the training defaults
    assert runs[1].settings == {"epochs": 1, "batch_size": 4096, "factors": 8}


def test_shipped_configs_expand() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    paper = expand_runs(load_config(root / "ncf-paper.toml"))
    assert len([r for r in paper if r.model == "mlp"]) == 20 and len([r for r in paper if r.model == "neumf"]) == 8
    study = expand_runs(load_config(root / "seed-study.toml"))
    assert {r.settings.get("layers") for r in study if r.model == "mlp"} == {3, 4}


def test_bad_configs_are_user_errors(tmp_path) -> None:
    (tmp_path / "bad.toml").write_text('[[run]]\nmodel = "gmf"\nfactorz = 8\n')
    with pytest.raises(MovieRecError, match="factorz"):
        expand_runs(load_config(tmp_path / "bad.toml"))
    (tmp_path / "broken.toml").write_text("[[run]\n")
    with pytest.raises(MovieRecError, match="invalid TOML"):
        load_config(tmp_path / "broken.toml")


def test_run_writes_table_and_a_restart_reuses_finished_runs(tmp_path, mls, monkeypatch) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    config = load_config(tmp_path / "c.toml")
    rows = run_experiment(config, mls, tmp_path / "out")
    assert [r["model"] for r in rows] == ["pop", "GMF factors=8", "GMF factors=16"]
    assert all("NDCG@10 [full]" in r and "HR@10 [sampled-100]" in r for r in rows)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "GMF factors=16" in md and "[sampled-100]" in md
    # a restart trains nothing that already finished
    from movierec.models import base

    def refuse(*a, **k):
        raise AssertionError("refit")

    monkeypatch.setattr(base.Recommender, "fit", refuse)
    again = run_experiment(config, mls, tmp_path / "out")
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)


def test_defaults_reach_hybrid_parts() -> None:
    from movierec.runs import expand_runs

    config = {"defaults": {"epochs": 3, "k": 7},
              "run": [{"name": "h", "model": "hybrid-blend", "a": "gmf", "b": "itemknn",
                       "a_settings": {"epochs": 5}}]}
    (spec,) = expand_runs(config)
    assert spec.settings["a_settings"] == {"epochs": 5}  # its own setting wins
    assert spec.settings["b_settings"] == {"k": 7}  # only settings the part has


def test_command_line_settings_go_over_every_run_and_part_that_has_them() -> None:
    from movierec.runs import expand_runs

    config = {"defaults": {"epochs": 3},
              "run": [{"name": "h", "model": "hybrid-blend", "a": "gmf", "b": "itemknn", "a_settings": {"epochs": 5}},
                      {"name": "n", "model": "neumf", "epochs": 9}, {"name": "p", "model": "popularity"}]}
    h, n, p = expand_runs(config, {"epochs": "1"})
    assert h.settings["a_settings"]["epochs"] == 1 and "epochs" not in h.settings["b_settings"]
    assert n.settings["epochs"] == 1 and "epochs" not in p.settings
    with pytest.raises(MovieRecError, match="--set epochz: no run of this config has that setting"):
        expand_runs(config, {"epochz": "1"})


def test_study_set_goes_over_its_runs_and_refuses_a_setting_no_run_has(tmp_path, monkeypatch, capsys) -> None:
    from movierec.study import default_config
    from movierec.study.pipeline import study_specs
    from tests.conftest import run_cli

    specs = study_specs(default_config(), {"epochs": "1"})
    assert all(s.settings.get("epochs", 1) == 1 for s in specs) and any("epochs" in s.settings for s in specs)
    code, _, err = run_cli(monkeypatch, capsys, "study", "--data", str(tmp_path / "no-such-data"), "--out",
                           str(tmp_path / "out"), "--set", "epochz=1")
    assert code == 2 and "--set epochz: no run of this config has that setting" in err  # before the data is read
    assert not (tmp_path / "out").exists()


# -- reuse and staleness are the engine's: tests/runs/test_engine.py ----------------------------------------
def test_an_experiment_keeps_each_run_in_the_engines_layout(tmp_path) -> None:
    from movierec.data import load_dataset
    from tests.data_edits import write_small

    ds = load_dataset(str(write_small(tmp_path / "syn", seed=1)))
    config = {"experiment": {"ks": [10]}, "run": [{"name": "knn k=20", "model": "itemknn", "k": 20}]}
    run_experiment(config, ds, tmp_path / "out")
    stored = json.loads((tmp_path / "out" / "runs" / "knn_k_20" / "result.json").read_text())
    assert stored["key"]["config"]["k"] == 20 and stored["row"]["test_input"] == "refit"
    assert not (tmp_path / "out" / "runs" / "knn_k_20" / "model").exists()  # experiments keep no bundles


def test_complete_settings_include_every_default_and_a_hybrids_parts() -> None:
    from movierec.runs import resolved_settings

    assert resolved_settings("itemknn", {"k": 5}) == {"k": 5, "shrink": 0.0, "block_size": 2048}
    hybrid = resolved_settings("hybrid-blend", {"a": "itemknn", "b": "popularity", "a_settings": {"k": 5}})
    assert hybrid["a_settings"] == {"k": 5, "shrink": 0.0, "block_size": 2048}


def test_the_command_says_what_it_reused_and_why_it_retrained(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from movierec.cli import app
    from tests.data_edits import write_small

    monkeypatch.setenv("COLUMNS", "200")
    a = write_small(tmp_path / "one" / "syn", seed=1)
    b = write_small(tmp_path / "two" / "syn", seed=2)
    (tmp_path / "c.toml").write_text('[[run]]\nname = "pop"\nmodel = "popularity"\n')

    def lines(data):
        r = CliRunner().invoke(app, ["experiment", str(tmp_path / "c.toml"), "--data", str(data), "--out",
                                     str(tmp_path / "out")])
        assert r.exit_code == 0, r.output
        return [line for line in r.output.splitlines() if line.startswith("[1/1] pop:")]

    assert lines(a)[0].endswith("s; trained")
    assert lines(a)[0].endswith("s; reused (same data, settings, split and version)")
    assert lines(b)[0].endswith("s; retrained: the data changed since the stored result")


def test_results_csv_is_safe_to_open_in_a_spreadsheet(tmp_path) -> None:
    """A run name that a spreadsheet would run as a formula is written with a leading ' (CSV injection)."""
    import pandas as pd

    from movierec.data import load_dataset
    from tests.data_edits import write_small

    ds = load_dataset(str(write_small(tmp_path / "syn", seed=1)))
    name = '=HYPERLINK("http://example.invalid","x")'
    config = {"experiment": {"ks": [10]}, "run": [{"name": name, "model": "popularity"},
                                                  {"name": "-1 popularity", "model": "popularity"}]}
    run_experiment(config, ds, tmp_path / "out")
    text = (tmp_path / "out" / "results.csv").read_text()
    assert '"\'=HYPERLINK(' in text and "\n=" not in text and ",=" not in text
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["model"].tolist()[:2] == ["'" + name, "'-1 popularity"]
    assert json.loads((tmp_path / "out" / "results.json").read_text())[0]["model"] == name  # JSON keeps it as is
