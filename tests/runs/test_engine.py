"""The run engine, tested once for all its callers (train, compare, experiment, study, tune): reuse of a stored
result only under the same key, and why not otherwise; hybrids reusing the runs' fitted parts and their refits;
an interrupted run resumed from its checkpoint; the refit before the test; final models on all the data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from movierec.data import load_dataset
from movierec.runs import REUSED, RunSpec, Session
from tests.data_edits import write_small

FAST = {"epochs": 4, "patience": 0, "batch_size": 1024, "factors": 8}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_dataset(str(write_small(tmp_path_factory.mktemp("engine") / "syn", seed=1)))


@pytest.fixture
def fits(monkeypatch):
    """(model name, number of training interactions) of every fit from here on."""
    from movierec.models import base

    seen: list[tuple[str, int]] = []
    real = base.Recommender.fit

    def spy(self, train, *a, **k):
        seen.append((self.name, len(train)))
        return real(self, train, *a, **k)

    monkeypatch.setattr(base.Recommender, "fit", spy)
    return seen


def _metrics(row):
    return {k: v for k, v in row.items() if "seconds" not in k}


# -- reuse and staleness ----------------------------------------------------------------------------------
def test_a_stored_run_is_reused_only_under_its_key(small, tmp_path, fits, monkeypatch) -> None:
    root = tmp_path / "out"
    knn = RunSpec("knn", "itemknn", {"k": 20})
    first = Session(small, root=root).execute(knn)
    assert first.note == "trained" and (root / "runs" / "knn" / "result.json").is_file()
    assert (root / "runs" / "knn" / "model" / "config.json").is_file()
    stored = json.loads((root / "runs" / "knn" / "result.json").read_text())
    assert stored["key"]["dataset"]["fingerprint"] == small.fingerprint() and stored["key"]["config"]["k"] == 20
    assert stored["key"]["test_input"] == "train+valid" and stored["key"]["refit"] is True

    fits.clear()
    again = Session(small, root=root).execute(knn)
    assert fits == [] and again.note == REUSED and _metrics(again.row) == _metrics(first.row)
    assert again.per_user.equals(first.per_user)

    # a default written out changes nothing; a changed setting, cutoffs or refit choice retrains, and says why
    assert Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 20, "shrink": 0.0})).note == REUSED
    assert Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 10})).note == \
        "retrained: settings changed (k)"
    assert Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 10}, ks=(5, 10))).note == \
        "retrained: the cutoffs changed (ks [10] -> [5, 10])"
    assert Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 10}, ks=(5, 10), refit=False)).note \
        == "retrained: the refit before the test changed (refit True -> False)"
    from movierec.runs import store

    monkeypatch.setattr(store, "__version__", "99.0")
    note = Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 10}, ks=(5, 10), refit=False)).note
    assert note == f"retrained: version changed ({__import__('movierec').__version__} -> 99.0)"
    # a result of an older layout (no key, or the key of a version whose test read the training part only)
    meta = json.loads((root / "runs" / "knn" / "result.json").read_text())
    meta["key"]["format"] = 2
    (root / "runs" / "knn" / "result.json").write_text(json.dumps(meta))
    note = Session(small, root=root).execute(RunSpec("knn", "itemknn", {"k": 10}, ks=(5, 10), refit=False)).note
    assert note.startswith("retrained: it was stored without this version's key")


def test_other_data_of_the_same_name_and_shape_retrains(tmp_path, fits) -> None:
    a = load_dataset(str(write_small(tmp_path / "one" / "syn", seed=1)))
    b = load_dataset(str(write_small(tmp_path / "two" / "syn", seed=2)))
    spec = RunSpec("pop", "popularity")
    Session(a, root=tmp_path / "out").execute(spec)
    on_b = Session(b, root=tmp_path / "out").execute(spec)
    alone = Session(b).execute(spec)
    assert on_b.note == "retrained: the data changed since the stored result"
    assert _metrics(on_b.row) == _metrics(alone.row)  # B's numbers, not A's under B's name


# -- hybrids take the session's fitted parts, and their refits ----------------------------------------------
def test_a_hybrid_reuses_the_fitted_parts_and_their_refits(small, fits) -> None:
    session = Session(small)
    hybrid_settings = {"a": "neumf", "b": "itemknn", "a_settings": FAST, "b_settings": {"k": 20}}
    neumf = session.execute(RunSpec("NeuMF", "neumf", FAST, refit=False))
    knn = session.execute(RunSpec("KNN", "itemknn", {"k": 20}, refit=False))
    fits.clear()
    hybrid = session.execute(RunSpec("Hybrid", "hybrid-blend", hybrid_settings, refit=False))
    assert fits == [("hybrid-blend", len(session.split_for(hybrid.spec).train))]  # no part fitted again
    assert hybrid.row["reused_parts"] == ["NeuMF", "KNN"] and hybrid.row["test_input"] == "parts"
    a, b = hybrid.tested.parts()
    assert a is neumf.tested  # NeuMF's refit on training + validation, not a second one
    assert b.name == "itemknn" and b.w_ is knn.fitted.w_  # ItemKNN as fitted, reading training + validation

    # refitted, the hybrid is fitted again on training + validation from both parts' refits, its weight kept
    session = Session(small)
    refits = [session.execute(RunSpec(n, m, s)).tested for n, m, s in
              (("NeuMF", "neumf", FAST), ("KNN", "itemknn", {"k": 20}))]
    fits.clear()
    hybrid = session.execute(RunSpec("Hybrid", "hybrid-blend", hybrid_settings))
    assert [n for n, _ in fits] == ["hybrid-blend", "hybrid-blend"]  # its fit and its refit; no part again
    assert list(hybrid.tested.parts()) == refits and hybrid.tested.weight_ == hybrid.fitted.weight_


# -- interruption and resume --------------------------------------------------------------------------------
def test_an_interrupted_run_resumes_from_its_checkpoint(small, tmp_path) -> None:
    spec = RunSpec("GMF", "gmf", {**FAST, "epochs": 5})
    root = tmp_path / "out"
    epochs: list[int] = []

    def stop_after_two(record):
        epochs.append(record["epoch"])
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Session(small, root=root).execute(spec, on_epoch_end=stop_after_two)
    assert not (root / "runs" / "GMF").exists()  # nothing finished is claimed
    assert len(list((root / "runs").glob("GMF.*.ckpt"))) == 1
    epochs.clear()
    resumed = Session(small, root=root).execute(spec, on_epoch_end=lambda r: epochs.append(r["epoch"]))
    assert epochs == [3, 4, 5] and resumed.note == "trained"
    assert not list((root / "runs").glob("GMF.*.ckpt"))  # removed once the run is kept
    whole = Session(small).execute(spec)
    assert _metrics(resumed.row) == _metrics(whole.row)


def test_the_trainer_tells_every_epoch_the_stopping_one_included(small) -> None:
    epochs: list[int] = []
    result = Session(small).execute(RunSpec("GMF", "gmf", {**FAST, "epochs": 30, "patience": 1, "lr": 0.05}),
                                    on_epoch_end=lambda r: epochs.append(r["epoch"]))
    assert result.row["epochs_run"] < 30  # stopped early
    assert epochs == list(range(1, result.row["epochs_run"] + 1))


# -- the test part's input and the refit --------------------------------------------------------------------
def test_the_test_reads_training_plus_validation_never_validation_alone(small, fits) -> None:
    from movierec.data.history import History
    from movierec.evaluation import evaluate

    session = Session(small)
    split = session.split_for(RunSpec("x", "ease"))
    ease = session.execute(RunSpec("EASE", "ease", refit=False))
    assert ease.row["test_input"] == "history"
    inputs = split.test_input()
    users = np.unique(split.test.user)
    expected = ease.fitted.score_history(History.from_interactions(inputs, users))
    assert np.allclose(ease.tested.score(users), expected, atol=1e-6)
    # validation is scored by the fitted model, from the training part only: as before the rule changed
    assert ease.row["NDCG@10 [sampled-100, valid]"] == evaluate(ease.fitted, split, "sampled-100", "valid",
                                                                (10,)).metrics["NDCG@10"]
    fits.clear()
    gmf = session.execute(RunSpec("GMF", "gmf", FAST, refit=False))  # per-user parameters: refitted anyway
    assert gmf.row["test_input"] == "refit" and [n for n, _ in fits] == ["gmf", "gmf"]
    assert fits[1][1] == fits[0][1] + len(split.valid)  # the refit: training + validation
    best = gmf.fitted.fit_report_.best_epoch
    assert gmf.tested.config.train.epochs == best and gmf.tested.fit_report_.epochs == best  # the choice held fixed


def test_refit_refits_every_model_with_its_choices_fixed(small) -> None:
    session = Session(small)
    ease = session.execute(RunSpec("EASE", "ease"))  # refit is the default
    assert ease.row["test_input"] == "refit"
    assert ease.tested.config.l2 == ease.fitted.fit_report_.chosen["l2"] > 0  # λ chosen on validation, kept
    content = session.execute(RunSpec("Content", "content"))
    assert content.tested.config.blend == [float(w) for w in content.fitted.blend_]
    assert np.array_equal(content.tested.blend_, content.fitted.blend_)


# -- final models -------------------------------------------------------------------------------------------
def test_a_final_run_holds_every_interaction(small, tmp_path) -> None:
    from movierec.artifacts import load_bundle
    from movierec.runs.folders import train_run

    evaluated, _ = train_run("gmf", small, tmp_path / "gmf", FAST)
    _, split = train_run("gmf", small, tmp_path / "final", evaluated.fixed_settings, final=True)
    assert split.protocol == "all" and split.valid is None and len(split.test) == 0
    bundle = load_bundle(tmp_path / "final")
    inter = small.interactions
    seen = bundle.model.seen_
    assert seen.nnz == len(set(zip(inter.user.tolist(), inter.item.tolist(), strict=True)))
    assert np.asarray(seen[inter.user, inter.item]).ravel().all()
    assert bundle.config["dataset"]["final"] is True and bundle.config["config"]["epochs"] == \
        evaluated.fitted.fit_report_.best_epoch
    assert not (tmp_path / "final" / "split").exists()


def test_a_study_config_names_only_its_own_runs_to_serve() -> None:
    from movierec.errors import MovieRecError
    from movierec.runs import validate_config

    config = {"study": {"serve": ["KNN"]}, "run": [{"name": "KNN", "model": "itemknn"}]}
    validate_config(config, "study")
    config["study"]["serve"] = ["KMN"]
    with pytest.raises(MovieRecError, match="unknown run 'KMN'; did you mean 'KNN'"):
        validate_config(config, "study")
    with pytest.raises(MovieRecError, match="refit"):
        validate_config({"study": {"refit": "sometimes"}, "run": [{"name": "KNN", "model": "itemknn"}]}, "study")
