import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.data.dataset import Interactions
from movierec.data.splits import HeldOut, Split
from movierec.evaluation import evaluate_full, evaluate_sampled, protocols
from tests.evaluation.reference import metrics_at_k, ranked_list


class FixedScores:
    """A stand-in model that returns rows of a fixed score matrix [n_users, n_items]."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores.astype(np.float32)

    def score(self, users, items=None):
        full = self.scores[np.asarray(users)]
        return full if items is None else np.take_along_axis(full, np.asarray(items, np.int64), axis=1)


def random_split(rng: np.random.Generator, n_users=40, n_items=160, multi=False) -> Split:
    users, items = [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=rng.integers(5, 30), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
    users, items = np.array(users), np.array(items)
    inter = Interactions(users, items, np.ones(len(users)), np.arange(len(users)), n_users, n_items)
    # hold out the last 1 (or up to 4) rows of each user as test, the one before as validation
    test_mask = np.zeros(len(users), bool)
    valid_mask = np.zeros(len(users), bool)
    ends = np.cumsum(np.bincount(users, minlength=n_users))
    for e in ends:
        n_test = rng.integers(1, 5) if multi else 1
        test_mask[e - n_test: e] = True
        valid_mask[e - n_test - 1] = True
    neg = np.stack([rng.choice(np.setdiff1d(np.arange(n_items), items[users == u]), 99, replace=False)
                    for u in range(n_users)]) if not multi else None
    valid = HeldOut(users[valid_mask].astype(np.int32), items[valid_mask].astype(np.int32))
    test = HeldOut(users[test_mask].astype(np.int32), items[test_mask].astype(np.int32), neg)
    return Split("loo", inter.subset(~(test_mask | valid_mask)), valid, test)


@pytest.mark.parametrize("multi", [False, True])
def test_full_ranking_matches_brute_force_reference(multi: bool) -> None:
    rng = np.random.default_rng(0 if not multi else 1)
    split = random_split(rng, multi=multi)
    scores = rng.random((split.n_users, split.n_items)).astype(np.float32)  # distinct: no ties
    res = evaluate_full(FixedScores(scores), split, "test", ks=(1, 5, 10))
    train, valid = split.train, split.valid
    expected: dict[str, list[float]] = {}
    for u in res.users:
        excluded = set(train.item[train.user == u]) | set(valid.item[valid.user == u])
        cand = {i: float(scores[u, i]) for i in range(split.n_items) if i not in excluded}
        relevant = set(split.test.item[split.test.user == u].tolist())
        ranking = ranked_list(cand)
        for k in (1, 5, 10):
            for name, v in metrics_at_k(ranking, relevant, k).items():
                expected.setdefault(name, []).append(v)
    for name, values in expected.items():
        assert res.metrics[name] == pytest.approx(np.mean(values), abs=1e-12), name
        assert np.allclose(res.per_user[name], values)


def test_sampled_matches_brute_force_reference() -> None:
    rng = np.random.default_rng(2)
    split = random_split(rng)
    scores = rng.random((split.n_users, split.n_items)).astype(np.float32)
    res = evaluate_sampled(FixedScores(scores), split, "test", ks=(5, 10))
    hr, ndcg = [], []
    for row, u in enumerate(split.test.user):
        pos = split.test.item[row]
        rank = sum(1 for j in split.test.negatives[row] if scores[u, j] > scores[u, pos])
        hr.append(1.0 if rank < 10 else 0.0)
        ndcg.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    assert res.metrics["HR@10"] == pytest.approx(np.mean(hr))
    assert res.metrics["NDCG@10"] == pytest.approx(np.mean(ndcg))
    assert res.protocol == "sampled-100"


def test_ties_are_broken_at_random_not_in_favour_of_the_held_out_item() -> None:
    rng = np.random.default_rng(3)
    split = random_split(rng, n_users=400, n_items=400)
    const = FixedScores(np.zeros((split.n_users, split.n_items)))
    res = evaluate_sampled(const, split, "test", ks=(10,))
    # a constant model ranks the test item uniformly among 100 candidates: HR@10 = 0.1 in expectation
    assert 0.05 < res.metrics["HR@10"] < 0.15
    full = evaluate_full(const, split, "test", ks=(10,))
    assert full.metrics["HR@10"] < 0.1


def test_results_do_not_depend_on_the_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    split = random_split(rng)
    scores = np.round(rng.random((split.n_users, split.n_items)) * 4).astype(np.float32)  # many ties
    model = FixedScores(scores)
    a_full, a_s = evaluate_full(model, split), evaluate_sampled(model, split)
    monkeypatch.setattr(protocols, "_SCORE_BUDGET", 300)
    b_full, b_s = evaluate_full(model, split), evaluate_sampled(model, split)
    assert a_full.metrics == b_full.metrics
    assert a_s.metrics == b_s.metrics
    assert (a_full.recs == b_full.recs).all()


def test_full_ranking_never_recommends_train_or_validation_items() -> None:
    rng = np.random.default_rng(5)
    split = random_split(rng)
    scores = np.zeros((split.n_users, split.n_items), np.float32)
    scores[split.train.user, split.train.item] = 100.0  # the model loves what it has seen
    scores[split.valid.user, split.valid.item] = 100.0
    res = evaluate_full(FixedScores(scores), split, "test", ks=(10,))
    seen = set(zip(split.train.user.tolist(), split.train.item.tolist(), strict=True))
    seen |= set(zip(split.valid.user.tolist(), split.valid.item.tolist(), strict=True))
    for u, row in zip(res.users, res.recs, strict=True):
        assert not any((int(u), int(i)) in seen for i in row)


FLOAT32 = st.floats(-(2.0**99), 2.0**99, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=50, deadline=None)
@given(st.lists(FLOAT32, min_size=2, max_size=40))
def test_tie_breaking_never_reorders_distinct_scores(values: list[float]) -> None:
    s = np.array(values, dtype=np.float32)
    s = np.concatenate([s, np.nextafter(s, np.float32(np.inf)), np.nextafter(s, np.float32(-np.inf))])
    adj = protocols.break_ties(s[None, :], np.array([7]), np.arange(len(s)))[0]
    i, j = np.nonzero(s[:, None] > s[None, :])
    assert (adj[i] > adj[j]).all()
    # equal scores become strictly ordered
    assert len(np.unique(adj)) == len(adj) or len(np.unique(s)) < len(s)


def test_tie_keys_are_deterministic_and_uniform() -> None:
    u = np.repeat(np.arange(100), 100)
    i = np.tile(np.arange(100), 100)
    k1, k2 = protocols.tie_keys(u, i), protocols.tie_keys(u, i)
    assert (k1 == k2).all()
    assert ((k1 >= 0) & (k1 < 1)).all()
    hist = np.histogram(k1, bins=10, range=(0, 1))[0]
    assert hist.min() > 850 and hist.max() < 1150
    assert not (protocols.tie_keys(u, i, seed=1) == k1).all()
