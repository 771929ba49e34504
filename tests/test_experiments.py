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
    from movierec.experiments import expand_runs

    config = {"defaults": {"epochs": 3, "k": 7},
              "run": [{"name": "h", "model": "hybrid-blend", "a": "gmf", "b": "itemknn",
                       "a_settings": {"epochs": 5}}]}
    (spec,) = expand_runs(config)
    assert spec.settings["a_settings"] == {"epochs": 5}  # its own setting wins
    assert spec.settings["b_settings"] == {"k": 7}  # only settings the part has


# -- reuse: only results of exactly this data, these settings, this split and this version ---------------
def _small_config(**knn):
    """Popularity and ItemKNN (k = 20 unless ``knn`` says otherwise): fast on small data."""
    return {"experiment": {"ks": [10]},
            "run": [{"name": "pop", "model": "popularity"}, {"name": "knn", "model": "itemknn", "k": 20, **knn}]}


def _metrics(rows):
    return [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows]


def _run(config, dataset, out):
    """run_experiment's rows and the note said of each run (name -> note)."""
    notes = {}
    rows = run_experiment(config, dataset, out, lambda name, row, *note: notes.setdefault(name, note[:1]))
    return rows, {name: note[0] if note else None for name, note in notes.items()}


@pytest.fixture
def fits(monkeypatch):
    """The model names fitted from here on."""
    from movierec.models import base

    fitted: list[str] = []
    real = base.Recommender.fit

    def spy(self, *a, **k):
        fitted.append(self.name)
        return real(self, *a, **k)

    monkeypatch.setattr(base.Recommender, "fit", spy)
    return fitted


def test_the_same_config_on_other_data_into_one_out_retrains(tmp_path, fits) -> None:
    from movierec.data import load_dataset
    from movierec.experiments import REUSED
    from tests.data_edits import write_small

    # two data sets of the same name and shape: only their content differs
    a = load_dataset(str(write_small(tmp_path / "one" / "syn", seed=1)))
    b = load_dataset(str(write_small(tmp_path / "two" / "syn", seed=2)))
    config = _small_config()
    rows_a, notes_a = _run(config, a, tmp_path / "out")
    rows_b, notes_b = _run(config, b, tmp_path / "out")
    own_b, _ = _run(config, b, tmp_path / "b-alone")
    assert _metrics(rows_b) == _metrics(own_b) != _metrics(rows_a)  # B's numbers, not A's under B's name
    assert json.loads((tmp_path / "out" / "results.json").read_text())[0]["NDCG@10 [full]"] == \
        own_b[0]["NDCG@10 [full]"]
    assert notes_a == {"pop": "trained", "knn": "trained"}
    assert notes_b == {name: "retrained: the data changed since the stored result" for name in ("pop", "knn")}
    written = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert written["retrained"] == {"pop": "the data changed since the stored result",
                                    "knn": "the data changed since the stored result"}
    stored = json.loads((tmp_path / "out" / "runs" / "knn.json").read_text())
    assert stored["key"]["dataset"]["fingerprint"] == b.fingerprint() and stored["key"]["config"]["k"] == 20
    fits.clear()
    again, notes = _run(config, b, tmp_path / "out")
    assert fits == [] and notes == {"pop": REUSED, "knn": REUSED}
    assert _metrics(again) == _metrics(rows_b)


def test_a_changed_setting_retrains_that_run_only(tmp_path, fits, monkeypatch) -> None:
    from movierec import experiments
    from movierec.data import load_dataset
    from movierec.experiments import REUSED
    from tests.data_edits import write_small

    ds = load_dataset(str(write_small(tmp_path / "syn", seed=1)))
    out = tmp_path / "out"
    _run(_small_config(), ds, out)
    fits.clear()
    rows, notes = _run(_small_config(k=10), ds, out)
    assert fits == ["itemknn"]
    assert notes == {"pop": REUSED, "knn": "retrained: settings changed (k)"}
    assert rows[1]["settings"]["k"] == 10
    # writing out a default leaves the complete settings as they were: nothing retrains
    fits.clear()
    _, notes = _run(_small_config(k=10, shrink=0.0), ds, out)
    assert fits == [] and set(notes.values()) == {REUSED}
    # other cutoffs, another version, a file of an older version: retrained, and said why
    config = _small_config(k=10)
    config["experiment"]["ks"] = [5, 10]
    _, notes = _run(config, ds, out)
    assert notes == {name: "retrained: the cutoffs changed (ks [10] -> [5, 10])" for name in ("pop", "knn")}
    monkeypatch.setattr(experiments, "__version__", "99.0")
    _, notes = _run(config, ds, out)
    assert set(notes.values()) == {f"retrained: version changed ({__import__('movierec').__version__} -> 99.0)"}
    row = json.loads((out / "runs" / "pop.json").read_text())["row"]
    (out / "runs" / "pop.json").write_text(json.dumps(row))  # as the versions without keys wrote it
    fits.clear()
    _, notes = _run(config, ds, out)
    assert fits == ["popularity"] and notes["pop"].startswith("retrained: it was stored without")


def test_complete_settings_include_every_default_and_a_hybrids_parts() -> None:
    from movierec.experiments import resolved_settings

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
