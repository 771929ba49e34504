"""Mult-VAE and Mult-DAE (movierec.models.vae) through the model contract, with short training on the synthetic
contract data, plus KL annealing, the vae-cf protocol (fold-in users, Recall@20 and NDCG@100) and resume."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data.history import History
from movierec.evaluation import evaluate_full
from movierec.models import build_model
from movierec.models.base import RunContext
from movierec.models.vae import MultDAE, MultVAE, anneal_beta
from movierec.testing import contract_dataset, contract_split

FAST = {"epochs": 3, "batch_size": 64, "patience": 0, "hidden": 32, "latent": 16}


# TestMultVAE and TestMultDAE (the shared contract) live in tests/contract/test_models.py with every model's.


def test_beta_anneals_and_the_chosen_beta_is_reported() -> None:
    assert anneal_beta(0, 0.2, 100) == 0.0
    assert anneal_beta(50, 0.2, 100) == 0.2 and anneal_beta(50, 1.0, 100) == 0.5
    assert anneal_beta(7, 0.3, 0) == 0.3
    split = contract_split()
    beta_max = 0.5
    m = MultVAE(**{**FAST, "epochs": 4}, beta_max=beta_max, total_anneal_steps=20).fit(split.train, None,
                                                                                        split.valid)
    report = m.fit_report_
    updates_per_epoch = -(-len(np.unique(split.train.user)) // FAST["batch_size"])
    expected = anneal_beta(report.best_epoch * updates_per_epoch, beta_max, 20)
    assert 0 < report.chosen["beta"] <= beta_max
    assert report.chosen["beta"] == pytest.approx(expected, abs=1e-4)
    assert "valid_NDCG@10" in report.train_log[0]


def test_vae_cf_protocol_gives_recall_and_ndcg_from_fold_in_histories() -> None:
    from movierec.data.splits import vae_cf

    split = vae_cf(contract_dataset().interactions, n_heldout_users=40, min_rating=3.0)
    for name in ("multvae", "multdae"):
        model = build_model(name, {**FAST, "epochs": 4})
        model.fit(split.train, None, split.valid)  # validation by full ranking of the fold-in users
        assert "valid_NDCG@100" in model.fit_report_.train_log[0]
        res = evaluate_full(model, split, "test", ks=(20, 100))
        assert len(res.users) == len(np.unique(split.test.user))
        assert 0 < res.metrics["Recall@20"] <= 1 and 0 < res.metrics["NDCG@100"] <= 1


def test_scores_are_deterministic_and_a_history_row_scores_like_the_user() -> None:
    split = contract_split()
    m = MultVAE(**FAST).fit(split.train)
    users = np.arange(12)
    assert np.array_equal(m.score(users), m.score(users))
    hist = History.from_interactions(split.train, users)
    assert np.array_equal(m.score_history(hist), m.score(users))
    assert m.user_vectors().shape == (split.n_users, FAST["latent"])
    assert m.item_vectors().shape == (split.n_items, FAST["hidden"])


def test_resume_continues_to_the_same_weights(tmp_path) -> None:
    split = contract_split()
    straight = MultVAE(**FAST).fit(split.train, None, split.valid)
    MultVAE(**FAST).fit(split.train, None, split.valid,
                        RunContext(checkpoint_dir=tmp_path / "c", on_epoch_end=lambda r: r["epoch"] < 2))
    resumed = MultVAE(**FAST).fit(split.train, None, split.valid,
                                  RunContext(checkpoint_dir=tmp_path / "c", resume=True))
    assert [r["epoch"] for r in resumed.fit_report_.train_log] == [1, 2, 3]
    assert np.allclose(resumed.score(np.arange(5)), straight.score(np.arange(5)), atol=1e-5)
    assert resumed.fit_report_.chosen == straight.fit_report_.chosen


def test_validation_ranks_all_items_by_default_or_the_sampled_candidates() -> None:
    from movierec.data.splits import Split

    split = contract_split()
    full = MultDAE(**{**FAST, "epochs": 1}).fit(split.train, None, split.valid)
    as_split = Split("loo", split.train, split.valid, split.valid)
    expected = evaluate_full(full, as_split, "valid", ks=(10,)).metrics["NDCG@10"]
    assert full.fit_report_.best_valid["NDCG@10"] == pytest.approx(expected, abs=1e-9)
    sampled = MultDAE(**{**FAST, "epochs": 1}, select_on="sampled").fit(split.train, None, split.valid)
    assert "MRR@10" in sampled.fit_report_.best_valid


def test_the_paper_config_holds_the_paper_settings() -> None:
    from pathlib import Path

    from movierec.experiments import load_config
    from movierec.runs import expand_runs, validate_config

    config = load_config(Path(__file__).parents[2] / "configs" / "vae-paper.toml")
    validate_config(config, "experiment", "vae-paper.toml")
    assert config["experiment"]["split"] == "vae-cf" and {20, 50, 100} <= set(config["experiment"]["ks"])
    runs = {r.name: r for r in expand_runs(config)}
    assert runs["Mult-VAE"].settings["beta_max"] == 0.2 and runs["Mult-VAE"].settings["latent"] == 200
    assert runs["Mult-DAE"].settings["l2"] == 0.01 and runs["EASE"].settings["l2"] == 500
