import numpy as np
import pytest

from movierec.data.dataset import Interactions
from movierec.data.sampling import is_positive, positive_keys
from movierec.data.splits import Split, export_ncf, leave_one_out, load_ncf_folder, vae_cf


def tiny() -> Interactions:
    # user 0: items 0..4 at times 10..50; latest = item 4, second latest = item 3
    # user 1: items 5, 6, 7 with a timestamp tie at the end: the later row (item 7) is the test item
    # user 2: only two interactions -> stays in train, not evaluated
    u = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    i = [2, 0, 4, 1, 3, 5, 6, 7, 1, 2]
    t = [30, 10, 50, 20, 40, 5, 9, 9, 1, 2]
    return Interactions(np.array(u), np.array(i), np.ones(10), np.array(t), 3, 120)


def test_loo_holds_out_latest_and_second_latest() -> None:
    s = leave_one_out(tiny(), seed=42)
    assert s.test.user.tolist() == [0, 1] and s.test.item.tolist() == [4, 7]
    assert s.valid.user.tolist() == [0, 1] and s.valid.item.tolist() == [3, 6]
    assert len(s.train) == 10 - 4
    assert set(zip(s.train.user.tolist(), s.train.item.tolist(), strict=True)) == {
        (0, 2), (0, 0), (0, 1), (1, 5), (2, 1), (2, 2)}


def test_loo_negatives_avoid_every_interaction_and_differ_between_parts() -> None:
    inter = tiny()
    s = leave_one_out(inter, seed=42)
    keys = positive_keys(inter.user, inter.item, inter.n_items)
    for part in (s.valid, s.test):
        assert part.negatives.shape == (2, 99)
        assert not is_positive(keys, part.user[:, None], part.negatives, inter.n_items).any()
    assert not (s.valid.negatives == s.test.negatives).all()
    again = leave_one_out(inter, seed=42)
    assert (again.test.negatives == s.test.negatives).all()
    other = leave_one_out(inter, seed=7)
    assert not (other.test.negatives == s.test.negatives).all()


def test_loo_on_ml_latest_small(mls) -> None:
    s = leave_one_out(mls.interactions)
    assert len(s.test) == len(s.valid) == 610
    assert len(s.train) == 100_836 - 2 * 610
    inter = mls.interactions
    # the test item of every user is (one of) their latest
    latest = np.zeros(inter.n_users, np.int64)
    np.maximum.at(latest, inter.user, inter.timestamp)
    test_ts = {(int(u), int(i)): int(t) for u, i, t in zip(inter.user, inter.item, inter.timestamp, strict=True)}
    assert all(test_ts[(int(u), int(i))] == latest[u] for u, i in zip(s.test.user, s.test.item, strict=True))


def test_save_load_round_trip(tmp_path) -> None:
    s = leave_one_out(tiny())
    s.save(tmp_path / "split")
    r = Split.load(tmp_path / "split")
    assert r.protocol == "loo" and r.n_items == 120
    assert (r.test.negatives == s.test.negatives).all()
    assert (r.train.item == s.train.item).all() and (r.valid.item == s.valid.item).all()
    assert (r.valid.rating == s.valid.rating).all()


def test_the_test_input_is_everything_before_the_test_item() -> None:
    from movierec.data.history import History

    inter = tiny()
    inter.rating[:] = np.arange(10) / 2 + 0.5  # each row's own rating
    s = leave_one_out(inter, seed=42)
    test_input = s.test_input()
    assert len(test_input) == len(s.train) + len(s.valid)  # training + validation, never the test item
    pairs = set(zip(test_input.user.tolist(), test_input.item.tolist(), strict=True))
    assert not pairs & set(zip(s.test.user.tolist(), s.test.item.tolist(), strict=True))
    history = History.from_interactions(test_input, np.array([0, 1]))
    assert history.item[history.row == 0].tolist() == [0, 1, 2, 3]  # time order, the validation item last
    assert history.item[history.row == 1].tolist() == [5, 6]
    assert history.rating[history.row == 0][-1] == 2.5  # the validation rating kept (row 4 of tiny())


def test_ncf_export_import_round_trip(tmp_path, mls) -> None:
    s = leave_one_out(mls.interactions)
    paths = export_ncf(s, tmp_path, "mls")
    assert [p.name for p in paths] == ["mls.train.rating", "mls.test.rating", "mls.test.negative"]
    first = (tmp_path / "mls.test.negative").read_text().splitlines()[0].split("\t")
    assert first[0] == f"({s.test.user[0]},{s.test.item[0]})" and len(first) == 100
    ds = load_ncf_folder(tmp_path)
    r = ds.predefined_split
    assert (r.test.user == s.test.user).all() and (r.test.item == s.test.item).all()
    assert (r.test.negatives == s.test.negatives).all()
    # the validation item is carved from train again: the latest train row of each user
    assert (r.valid.item == s.valid.item).all()
    assert len(r.train) == len(s.train)


def test_ncf_import_reports_a_bad_negative_file(tmp_path) -> None:
    from movierec.errors import DataError

    (tmp_path / "x.train.rating").write_text("0\t1\t1\t5\n1\t2\t1\t6\n")
    (tmp_path / "x.test.rating").write_text("0\t3\t1\t7\n1\t4\t1\t8\n")
    (tmp_path / "x.test.negative").write_text("(0,3)\t5\t6\n(1,4)\tseven\t8\n")
    with pytest.raises(DataError, match=r"x\.test\.negative"):
        load_ncf_folder(tmp_path)


def test_vae_cf_strong_generalisation() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 80
    u = np.repeat(np.arange(n_users), 20)
    i = np.concatenate([rng.choice(n_items, 20, replace=False) for _ in range(n_users)])
    r = rng.choice([1.0, 3.0, 4.0, 5.0], len(u))
    s = vae_cf(Interactions(u, i, r, np.zeros(len(u)), n_users, n_items), n_heldout_users=50)
    tr_users, va_users, te_users = set(s.train.user.tolist()), set(s.valid.user.tolist()), set(s.test.user.tolist())
    assert not (tr_users & va_users) and not (tr_users & te_users) and not (va_users & te_users)
    assert len(te_users) <= 50
    assert (s.train.rating >= 4).all()
    # held-out share is about 20% of each test user's positives
    fold, held = s.test.fold_in, s.test
    share = len(held) / (len(held) + len(fold))
    assert 0.18 < share < 0.3


def test_vae_cf_fold_in_parts_survive_save_and_load(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    inter = Interactions(rng.integers(0, 60, n), rng.integers(0, 80, n), np.full(n, 5.0), rng.integers(0, 10**6, n),
                         60, 80)
    s = vae_cf(inter, n_heldout_users=10)
    s.save(tmp_path / "split")
    r = Split.load(tmp_path / "split")
    for a, b in ((s.valid, r.valid), (s.test, r.test)):
        assert b.fold_in is not None and len(b.fold_in) == len(a.fold_in) > 0
        for col in ("user", "item", "rating", "timestamp"):
            assert np.array_equal(getattr(a.fold_in, col), getattr(b.fold_in, col))
    assert r.test.fold_in.n_items == s.n_items
