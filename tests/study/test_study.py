"""The study end to end (quick config): files, numbers traceable to the run, restart reuse, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.evaluation import evaluate
from movierec.runs import slug as _slug

from .conftest import QUICK, REPO


class TableRows(HTMLParser):
    """Cell texts of every row of the table with id ``table_id``."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_study_writes_everything(quick_study) -> None:
    out, ctx, steps = quick_study
    for name in ("report.html", "results.csv", "results.md", "results.json", "study.json", "eda/eda.html",
                 "segments/segments.parquet", "segments/profiles.csv", "segments/per_segment_ndcg10_full.csv",
                 "figures/accuracy.png", "figures/beyond.png", "figures/segments-full.png"):
        assert (out / name).exists(), name
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results] == ["Popularity", "ItemKNN", "Content (weighted genres, dot)",
                                             "MLP-3 + diversity", "GMF", "Hybrid: GMF + content"]
    assert all(f"training {r['model']}" in steps for r in results)
    assert steps[0] == "exploring the data" and steps[-1] == "done"
    assert ctx["seconds"] > 0


def test_report_numbers_come_from_the_run(quick_study, mls) -> None:
    out, _, _ = quick_study
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    parser = TableRows("comparison")
    parser.feed((out / "report.html").read_text())
    header = parser.rows[1]
    body = [r for r in parser.rows[2:] if r]
    assert [r[0] for r in body] == list(results)
    for row in body:
        res = results[row[0]]
        for label, cell in zip(header, row[2:], strict=False):
            value = res[label]
            expected = f"{value:.1%}" if label.startswith("Coverage") else f"{value:.2f}" if label.startswith(
                "Novelty") else f"{value:.4f}"
            assert cell == expected, (row[0], label)


def test_popularity_row_matches_an_independent_evaluation(quick_study, mls) -> None:
    """The quick study refits every model on training + validation before the test (the default): Popularity
    counted over both parts, evaluated by hand on the test items."""
    from movierec.data.dataset import Interactions
    from movierec.data.splits import leave_one_out
    from movierec.models.popularity import Popularity

    out, _, _ = quick_study
    row = next(r for r in json.loads((out / "results.json").read_text()) if r["model"] == "Popularity")
    assert row["test_input"] == "refit"
    split = leave_one_out(mls.interactions, seed=42)
    t, v = split.train, split.valid
    before_test = Interactions(np.concatenate([t.user, v.user]), np.concatenate([t.item, v.item]),
                               np.ones(len(t) + len(v)), np.zeros(len(t) + len(v)), t.n_users, t.n_items)
    model = Popularity().fit(before_test)
    for protocol in ("sampled-100", "full"):
        metrics = evaluate(model, split, protocol, "test", (10,)).metrics
        assert row[f"NDCG@10 [{protocol}]"] == pytest.approx(metrics["NDCG@10"], abs=1e-12)
        assert row[f"HR@10 [{protocol}]"] == pytest.approx(metrics["HR@10"], abs=1e-12)


def test_segment_tables_are_consistent(quick_study) -> None:
    out, _, _ = quick_study
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    for protocol in ("full", "sampled-100"):
        t = pd.read_csv(out / "segments" / f"per_segment_ndcg10_{protocol}.csv", index_col=0)
        for model, r in results.items():
            assert t.at["all", model] == pytest.approx(r[f"NDCG@10 [{protocol}]"], abs=1e-12)
            seg = t.drop(index="all")
            weighted = (seg[model] * seg["users"]).sum() / seg["users"].sum()
            assert weighted == pytest.approx(t.at["all", model], abs=1e-12)  # every evaluated user has a segment
    labels = pd.read_parquet(out / "segments" / "segments.parquet")
    assert labels["segment"].max() + 1 == len(pd.read_csv(out / "segments" / "profiles.csv"))


def test_report_sections(quick_study) -> None:
    out, _, _ = quick_study
    html = (out / "report.html").read_text()
    study = json.loads((out / "study.json").read_text())
    best = max(study["results"], key=lambda r: r["NDCG@10 [full]"])["model"]
    assert any(best in c for c in study["conclusions"])
    for anchor in ('id="results"', 'id="conclusions"', 'id="segments"', 'id="examples"', 'id="similar"', 'id="data"'):
        assert anchor in html
    assert "Toy Story 3 (2010)" in html  # the similar-movies section found Toy Story's neighbours
    assert html.count("data:image/png;base64,") >= 8
    assert "src=\"http" not in html and "href=\"http" not in html  # self-contained


def test_restart_reuses_finished_work(quick_study, mls, monkeypatch, tmp_path) -> None:
    import shutil

    from movierec.experiments import load_config
    from movierec.runs import REUSED, Session
    from movierec.study import run_study

    out, _, _ = quick_study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    redo = "GMF"
    shutil.rmtree(copy / "runs" / _slug(redo))  # as if interrupted while training GMF
    trained: list[str] = []
    real = Session.execute

    def spy(self, spec, *args, **kwargs):
        result = real(self, spec, *args, **kwargs)
        if result.note != REUSED:
            trained.append(spec.name)
        return result

    monkeypatch.setattr(Session, "execute", spy)
    monkeypatch.setattr("movierec.eda.run_eda", lambda *a, **k: pytest.fail("the EDA ran again"))
    run_study(mls, copy, load_config(QUICK))
    assert trained == [redo]
    before = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    after = {r["model"]: r for r in json.loads((copy / "results.json").read_text())}
    assert before.keys() == after.keys()
    for name in before:
        if name != redo:
            assert before[name] == after[name]
    # CPU training is deterministic: the retrained model gets the same numbers
    assert after[redo]["NDCG@10 [full]"] == pytest.approx(before[redo]["NDCG@10 [full]"], abs=1e-9)

    # a changed setting retrains that run only; changed data invalidates the EDA
    config = load_config(QUICK)
    changed = next(r for r in config["run"] if r["model"] == "content")
    changed["measure"] = "cosine"
    trained.clear()
    run_study(mls, copy, config)
    assert trained == [changed["name"]]
    stored = json.loads((copy / "runs" / _slug(changed["name"]) / "result.json").read_text())
    assert stored["settings"]["measure"] == "cosine"
    (copy / "eda" / "key.json").write_text("written for other data")

    class EdaRan(Exception):
        pass

    def eda_again(*a, **k):
        raise EdaRan

    monkeypatch.setattr("movierec.eda.run_eda", eda_again)
    with pytest.raises(EdaRan):
        run_study(mls, copy, config)


def test_hybrid_reuses_the_study_runs_of_its_parts(quick_study) -> None:
    out, _, _ = quick_study
    hybrid = next(r for r in json.loads((out / "results.json").read_text()) if r["family"] == "hybrid")
    assert hybrid["reused_parts"] == ["GMF"]  # [defaults] reached its part; its content part has other settings
    assert "tuned_weight" in hybrid and hybrid["test_input"] == "refit"  # the quick study refits (the default)


def test_the_study_ends_with_final_models_that_serve(quick_study, mls) -> None:
    from movierec.artifacts import load_bundle
    from movierec.serving.served import study_bundles

    out, ctx, _ = quick_study
    results = json.loads((out / "results.json").read_text())
    best = max(results, key=lambda r: r["NDCG@10 [full]"])["model"]
    assert [f["name"] for f in ctx["finals"]] == [best]  # the quick study names no [study] serve
    (bundle,) = study_bundles(out)
    assert bundle == out / "final" / _slug(best) / "model"
    final = load_bundle(bundle)
    assert final.config["dataset"]["final"] is True
    assert final.model.seen_.nnz == len(mls.interactions)  # every rating, nothing held out
    stored = json.loads((out / "runs" / _slug(best) / "result.json").read_text())
    assert final.config["config"] == {**final.config["config"], **stored["settings"], **stored["choices"]}
    assert "Served by <code>movierec serve</code>" in (out / "report.html").read_text()


def test_study_config_errors_are_one_line(mls, tmp_path) -> None:
    from movierec.errors import MovieRecError
    from movierec.experiments import load_config
    from movierec.study import run_study

    config = load_config(QUICK)
    config["run"] = [{"name": "Content (dot)", "model": "content"}, {"name": "Content [dot]", "model": "content"}]
    with pytest.raises(MovieRecError, match="share the folder"):
        run_study(mls, tmp_path, config)
    config = load_config(QUICK)
    config["segments"]["seed"] = 3
    with pytest.raises(MovieRecError, match=r"\[segments\] has unknown"):
        run_study(mls, tmp_path, config)


def test_cli_study_on_a_finished_folder(quick_study, shared_data_dir) -> None:
    out, _, _ = quick_study
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(shared_data_dir)}
    r = subprocess.run([sys.executable, "-m", "movierec.cli", "study", "--data", "ml-latest-small", "--out",
                        str(out), "--config", str(QUICK), "--json"], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert Path(payload["report"]).exists() and len(payload["rows"]) == 6
    assert "NaN" not in (out / "results.json").read_text()


def test_cli_study_bad_config_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[run]]\nname = 'x'\nmodel = 'mlp'\nwidth = 3\n")
    r = subprocess.run([sys.executable, "-m", "movierec.cli", "study", "--out", str(tmp_path / "o"), "--config",
                        str(bad)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "width" in r.stderr


def test_example_users_spread_over_segments() -> None:
    from movierec.data.dataset import Interactions
    from movierec.data.splits import HeldOut, Split
    from movierec.study.pipeline import pick_example_users

    n_users = 30
    user = np.repeat(np.arange(n_users), 20)
    train = Interactions(user, np.tile(np.arange(20), n_users), np.ones(len(user)), np.zeros(len(user)), n_users, 40)
    test = HeldOut(np.arange(n_users, dtype=np.int32), np.full(n_users, 25, np.int32))
    split = Split("loo", train, None, test)
    labels = np.arange(n_users) % 3
    picked = pick_example_users(labels, split, 3, seed=0)
    assert sorted(labels[picked].tolist()) == [0, 1, 2]
    assert np.array_equal(picked, pick_example_users(labels, split, 3, seed=0))


def test_segments_can_use_a_runs_learned_user_embeddings(quick_study, mls, tmp_path) -> None:
    import shutil

    from movierec.errors import MovieRecError
    from movierec.experiments import load_config
    from movierec.study import run_study

    out, _, _ = quick_study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    config = load_config(QUICK)
    config["segments"]["embeddings"] = "GMF"
    # every run is reused and the quick study saves no models: nothing to read the embeddings from
    with pytest.raises(MovieRecError, match="save_models"):
        run_study(mls, copy, config)
    (copy / "runs" / "GMF" / "result.json").unlink()  # GMF retrains, so its model is in memory
    run_study(mls, copy, config)
    assert "the user embeddings GMF learned" in (copy / "report.html").read_text()
    config["segments"]["embeddings"] = "no such run"
    with pytest.raises(MovieRecError, match="not the name of a"):
        run_study(mls, copy, config)
