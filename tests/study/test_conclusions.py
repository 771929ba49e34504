"""Generated conclusions: paired differences and the multiple-testing adjustment against hand computations,
verdicts that follow the numbers, families compared honestly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from movierec.study.conclusions import adjust_p, best_per_family, conclusions, paired, pairwise_tests


def test_paired_difference_by_hand() -> None:
    a = pd.Series([1.0, 0.0, 0.5, 0.25], index=[0, 1, 2, 3])
    b = pd.Series([0.5, 0.0, 0.5, 0.0, 9.9], index=[0, 1, 2, 3, 4])  # user 4 only in b: ignored
    p = paired(a, b)
    d = np.array([0.5, 0.0, 0.0, 0.25])
    assert p.n == 4
    assert p.diff == pytest.approx(d.mean())
    assert p.se == pytest.approx(d.std(ddof=1) / 2)
    t = d.mean() / (d.std(ddof=1) / 2)  # 1.566 on 3 degrees of freedom
    assert p.p == pytest.approx(2 * stats.t.sf(t, 3)) and p.p == pytest.approx(stats.ttest_rel(a[:4], b[:4]).pvalue)
    assert p.p_adj is None and not p.significant  # p = 0.215, uncorrected
    assert "uncorrected p = 0.22" in p.words()


def test_holm_by_hand() -> None:
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert adjust_p([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p([0.5, 0.4], "holm") == pytest.approx([0.8, 0.8])  # 0.4 x 2 = 0.8; max(0.8, 0.5 x 1)
    assert adjust_p([0.9, float("nan")], "holm") == pytest.approx([1.0, 1.0])  # capped at 1; NaN counts as 1
    assert len(adjust_p([], "holm")) == 0


def test_benjamini_hochberg_by_hand() -> None:
    # sorted: 0.005 x 4/1 = 0.02, 0.01 x 4/2 = 0.02, 0.03 x 4/3 = 0.04, 0.04 x 4/4 = 0.04 (running min from the top)
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    q = np.random.default_rng(3).random(50) ** 3
    assert adjust_p(q, "bh") == pytest.approx(stats.false_discovery_control(q, method="bh"))
    with pytest.raises(ValueError):
        adjust_p(p, "bonferroni-ish")


def test_chance_differences_do_not_survive_the_correction() -> None:
    """20 models that are the same up to noise: 190 pairs, about 5% of them under p = 0.05 by chance (and over
    two standard errors); after the correction none is called."""
    rng = np.random.default_rng(7)
    base = rng.random(300)
    per_user = {f"M{i}": pd.DataFrame({"NDCG@10 [full]": base + rng.normal(0, 0.2, 300)}) for i in range(20)}
    tests = pairwise_tests(per_user, ["NDCG@10 [full]"])
    assert tests.n_tests == 190 == tests.count("NDCG@10 [full]")[0]
    raw = [t.p for t in tests.tests.values()]
    assert sum(p < 0.05 for p in raw) >= 3  # what an uncorrected rule would have called
    assert sum(abs(t.diff) > 2 * t.se for t in tests.tests.values()) >= 3  # and the old 2-SE rule
    assert tests.count("NDCG@10 [full]")[1] == 0
    adj = [t.p_adj for t in tests.tests.values()]
    assert adj == pytest.approx(list(adjust_p(raw, "holm")))
    assert tests.get("M3", "M1", "NDCG@10 [full]").diff == pytest.approx(-tests.get("M1", "M3", "NDCG@10 [full]").diff)
    table = pd.DataFrame({"family": ["collaborative"] * 20,
                          "NDCG@10 [full]": [f["NDCG@10 [full]"].mean() for f in per_user.values()]},
                         index=list(per_user))
    facts = conclusions(table, per_user, {n: {} for n in per_user}, {n: "gmf" for n in per_user}, {}, {}, tests)
    assert "within noise (adjusted p = " in facts[0]
    assert facts[1].startswith("After the correction over all 190 paired tests, 19 of the other 19 models cannot "
                               "be told apart")
    assert "0 of the 190 pairs differ" in facts[1]
    text = tests.description()
    assert "paired t-test" in text and "Holm" in text and "alpha = 0.05" in text and "190" in text


def test_users_are_matched_by_id() -> None:
    """Per-user frames that list their users in different orders are paired user by user."""
    a = pd.DataFrame({"user": [0, 1, 2, 3], "NDCG@10 [full]": [1.0, 0.0, 0.5, 0.2]})
    b = pd.DataFrame({"user": [3, 2, 1, 0], "NDCG@10 [full]": [0.2, 0.5, 0.0, 1.0]})
    t = pairwise_tests({"A": a, "B": b}, ["NDCG@10 [full]"]).get("A", "B", "NDCG@10 [full]")
    assert t.diff == 0.0 and t.p == 1.0 and not t.significant


def _study(gap: float, n: int = 400) -> tuple[pd.DataFrame, dict, dict, dict]:
    rng = np.random.default_rng(0)
    base = rng.random(n)
    per_user = {
        "Popularity": pd.DataFrame({"NDCG@10 [full]": base * 0.5}),
        "NeuMF": pd.DataFrame({"NDCG@10 [full]": base * 0.5 + gap + rng.normal(0, 0.01, n)}),
        "Content": pd.DataFrame({"NDCG@10 [full]": base * 0.2}),
    }
    table = pd.DataFrame({"family": ["baseline", "collaborative", "content"],
                          "NDCG@10 [full]": [v["NDCG@10 [full]"].mean() for v in per_user.values()]},
                         index=list(per_user))
    return table, per_user, {n: {} for n in per_user}, {"Popularity": "popularity", "NeuMF": "neumf",
                                                         "Content": "content"}


def test_verdicts_follow_the_numbers() -> None:
    table, per_user, settings, classes = _study(gap=0.05)
    facts = conclusions(table, per_user, settings, classes, {}, {})
    assert facts[0].startswith("Under full ranking, NeuMF ranks the held-out movie best")
    assert ", significant (adjusted p = " in facts[0]
    assert any(f.startswith("Collaborative filtering beats content-based") for f in facts)

    table, per_user, settings, classes = _study(gap=0.0005)
    facts = conclusions(table, per_user, settings, classes, {}, {})
    assert "within noise" in next(f for f in facts if f.startswith("Against the Popularity baseline"))


def test_content_winning_is_reported_as_such() -> None:
    table, per_user, settings, classes = _study(gap=0.05)
    per_user["Content"] = pd.DataFrame({"NDCG@10 [full]": per_user["NeuMF"]["NDCG@10 [full]"] + 0.1})
    table.loc["Content", "NDCG@10 [full]"] = per_user["Content"]["NDCG@10 [full]"].mean()
    facts = conclusions(table, per_user, settings, classes, {}, {})
    assert any(f.startswith("Content-based filtering beats collaborative") for f in facts)


def test_a_difference_within_noise_is_called_level() -> None:
    table, per_user, settings, classes = _study(gap=0.05)
    noise = np.random.default_rng(1).normal(0, 0.3, 400)
    per_user["Content"] = pd.DataFrame({"NDCG@10 [full]": per_user["NeuMF"]["NDCG@10 [full]"] + 0.001 + noise})
    table.loc["Content", "NDCG@10 [full]"] = per_user["Content"]["NDCG@10 [full]"].mean()
    facts = conclusions(table, per_user, settings, classes, {}, {})
    assert any(f.startswith("Collaborative and content-based filtering are level") for f in facts)


def test_families_are_compared_with_the_correction() -> None:
    """Autoencoder and sequential models join: the best of each family against the overall best, called level
    when the corrected test cannot separate them; the sequential model is named as using the order of ratings."""
    rng = np.random.default_rng(0)
    n = 500
    base = rng.random(n)
    noise = rng.normal(0, 0.3, n)
    noise -= noise.mean()
    per_user = {
        "Popularity": base * 0.4,
        "NeuMF": base * 0.5 + 0.05 + rng.normal(0, 0.01, n),
        "Content": base * 0.2,
        "Mult-VAE": base * 0.5 + 0.045 + noise,  # a little behind NeuMF, much noisier
        "SASRec": base * 0.5 + 0.12 + rng.normal(0, 0.01, n),  # clearly the best
        "Hybrid: SASRec + content": base * 0.3 + rng.normal(0, 0.01, n),
    }
    per_user = {k: pd.DataFrame({"NDCG@10 [full]": v}) for k, v in per_user.items()}
    families = ["baseline", "collaborative", "content", "autoencoder", "sequential", "hybrid"]
    means = [f["NDCG@10 [full]"].mean() for f in per_user.values()]
    table = pd.DataFrame({"family": families, "NDCG@10 [full]": means}, index=list(per_user))
    classes = {"Popularity": "popularity", "NeuMF": "neumf", "Content": "content", "Mult-VAE": "multvae",
               "SASRec": "sasrec", "Hybrid: SASRec + content": "hybrid-blend"}
    settings = {k: {} for k in per_user} | {"Hybrid: SASRec + content": {"a": "sasrec", "b": "content"}}
    tests = pairwise_tests(per_user, ["NDCG@10 [full]"])
    rows = best_per_family(table, tests)
    assert [r["family"] for r in rows] == ["baseline", "collaborative", "content", "hybrid", "autoencoder",
                                           "sequential"]  # registry.FAMILIES order
    assert [r["best"] for r in rows if r["overall_best"]] == ["SASRec"]
    assert all(r["against_best"].significant and r["against_best"].diff < 0 for r in rows if not r["overall_best"])
    facts = conclusions(table, per_user, settings, classes, {}, {}, tests, "loo")
    fam = next(f for f in facts if f.startswith("The best of each family"))
    assert "autoencoder: Mult-VAE" in fam and "sequential: SASRec" in fam and "(the best overall)" in fam
    assert "is ahead of the best of every other family" in fam
    seq = next(f for f in facts if f.startswith("SASRec is sequential"))
    assert "in the order they were made" in seq and "Hybrid: SASRec + content, built on them" in seq
    assert "leave-one-out" in seq

    # without SASRec, NeuMF leads; Mult-VAE's difference to it is noise and is called so
    keep = [k for k in per_user if not k.startswith(("SASRec", "Hybrid"))]
    facts = conclusions(table.loc[keep], {k: per_user[k] for k in keep}, settings, classes, {}, {})
    fam = next(f for f in facts if f.startswith("The best of each family"))
    assert "autoencoder: Mult-VAE" in fam and "within noise" in fam
    assert "The best autoencoder model is within noise of NeuMF" in fam
    assert not any("sequential" in f for f in facts)
