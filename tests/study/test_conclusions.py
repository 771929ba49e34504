"""Generated conclusions: paired differences against a hand computation, verdicts that follow the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.study.conclusions import conclusions, paired


def test_paired_difference_by_hand() -> None:
    a = pd.Series([1.0, 0.0, 0.5, 0.25], index=[0, 1, 2, 3])
    b = pd.Series([0.5, 0.0, 0.5, 0.0, 9.9], index=[0, 1, 2, 3, 4])  # user 4 only in b: ignored
    p = paired(a, b)
    d = np.array([0.5, 0.0, 0.0, 0.25])
    assert p.n == 4
    assert p.diff == pytest.approx(d.mean())
    assert p.se == pytest.approx(d.std(ddof=1) / 2)
    assert not p.significant  # 0.1875 against 2 × 0.1197


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
    assert "beyond 2 standard errors" in facts[0]
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
