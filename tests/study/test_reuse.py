"""The study reuses a finished step only for exactly the same data: an edited ratings file with the same
counts retrains every model and redoes the EDA, and says why; an unchanged rerun reuses everything."""

from __future__ import annotations

import json

from movierec.data import load_dataset
from movierec.experiments import load_config
from tests.data_edits import edit_cell, other_rating, write_small

CONFIG = """
[study]
examples = 1
save_models = false
eda_sample = 5000

[segments]
k_min = 2
k_max = 3

[[run]]
name = "Popularity"
model = "popularity"

[[run]]
name = "ItemKNN"
model = "itemknn"
k = 20
"""


def test_edited_ratings_with_the_same_counts_retrain_everything(tmp_path, monkeypatch) -> None:
    import movierec.eda
    from movierec.runs import REUSED, Session
    from movierec.study import run_study

    folder = write_small(tmp_path / "syn", seed=5)
    (tmp_path / "study.toml").write_text(CONFIG)
    config = load_config(tmp_path / "study.toml")
    out = tmp_path / "study"
    first = run_study(load_dataset(str(folder)), out, config)

    trained: list[str] = []
    eda_runs: list[int] = []
    real_train, real_eda = Session.execute, movierec.eda.run_eda

    def spy_train(self, spec, *a, **k):
        result = real_train(self, spec, *a, **k)
        if result.note != REUSED:
            trained.append(spec.name + (" (final)" if spec.final else ""))
        return result

    def spy_eda(*a, **k):
        eda_runs.append(1)
        return real_eda(*a, **k)

    monkeypatch.setattr(Session, "execute", spy_train)
    monkeypatch.setattr(movierec.eda, "run_eda", spy_eda)

    def rerun(dataset):
        trained.clear()
        eda_runs.clear()
        steps: list[str] = []
        ctx = run_study(dataset, out, config, progress=lambda what, frac: steps.append(what))
        return list(trained), len(eda_runs), ctx, steps, json.loads((out / "study.json").read_text())

    same_trained, same_eda, same_ctx, same_steps, same_json = rerun(load_dataset(str(folder)))
    # one rating changed, every count the same
    first_rating = (folder / "ratings.csv").read_text().splitlines()[1].split(",")[2]
    edit_cell(folder / "ratings.csv", 0, "rating", other_rating(first_rating))
    edited = load_dataset(str(folder))
    assert edited.info() == first["dataset"]  # the same name, sizes and counts
    new_trained, new_eda, new_ctx, new_steps, new_json = rerun(edited)

    assert same_trained == [] and same_eda == 0  # unchanged: everything reused
    # edited: everything done again, the final model of the best run too
    assert new_trained[:2] == ["Popularity", "ItemKNN"] and new_eda == 1
    assert len(new_trained) == 3 and new_trained[2].endswith(" (final)")

    # what was reused and why the rest was not: in the progress steps and in study.json
    assert first["reused"] == [] and first["retrained"] == {} and first["eda"] == "ran"
    assert same_ctx["reused"] == ["Popularity", "ItemKNN"] and same_ctx["eda"] == "reused"
    assert same_json["reused"] == ["Popularity", "ItemKNN"] and same_json["retrained"] == {}
    assert "reusing ItemKNN (finished earlier)" in same_steps
    reason = "the data changed since the stored result"
    assert f"Popularity: retraining, {reason}" in new_steps and f"ItemKNN: retraining, {reason}" in new_steps
    assert f"exploring the data again: {reason}" in new_steps
    assert new_ctx["reused"] == [] and new_json["retrained"] == {"Popularity": reason, "ItemKNN": reason}
    assert new_json["eda"] == f"ran again: {reason}" and new_json["fingerprint"] == edited.fingerprint()
    stored = json.loads((out / "runs" / "ItemKNN" / "result.json").read_text())
    assert stored["key"]["dataset"]["fingerprint"] == edited.fingerprint()
    assert json.loads((out / "eda" / "key.json").read_text())["key"]["dataset"]["fingerprint"] == \
        edited.fingerprint()
