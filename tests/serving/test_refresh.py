"""movierec refresh: a run trained again as a final run on its data plus every stored rating; people become
users (offset + person id, people.json), and the new run serves them as known users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from tests.conftest import cli_fails, cli_ok


@pytest.fixture(scope="module")
def final_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from movierec.data import load_dataset
    from movierec.data.synthetic import write_synthetic
    from movierec.runs.folders import like_settings, train_run

    root = tmp_path_factory.mktemp("refresh")
    data = load_dataset(write_synthetic(root / "syn", 60, 300, 2500, seed=9))
    train_run("itemknn", data, root / "knn", {"k": 20})
    train_run("itemknn", data, root / "knn-final", like_settings(root / "knn", "itemknn"), final=True)
    return root / "knn-final"


def test_people_become_users_of_the_refreshed_run(final_run: Path, tmp_path: Path) -> None:
    from movierec.artifacts import load_bundle
    from movierec.serving import Service
    from movierec.serving.people import PeopleStore, database_url

    old = load_bundle(final_run)
    movies = old.items.ids[:5].tolist()
    db = str(tmp_path / "people.sqlite")
    store = PeopleStore(database_url(db, tmp_path))
    a, _ = store.new_person()
    b, _ = store.new_person()
    for i, m in enumerate(movies[:3]):
        store.put_rating(a, m, 4.0 + i * 0.5)
    store.put_rating(b, movies[3], 3.0)
    store.put_rating(b, 99_999_999, 5.0)  # a movie the data does not have: left out, counted
    out = tmp_path / "refreshed"
    said = cli_ok("refresh", str(final_run), "--db", db, "--out", str(out))
    assert "2 people with 4 ratings join" in said and "1 ratings of movies it lacks left out" in said
    new = load_bundle(out)
    assert new.model.n_users == old.model.n_users + 2 and new.model.n_items == old.model.n_items
    assert new.config["config"] == old.config["config"] and new.config["dataset"]["final"]
    people = json.loads((out / "people.json").read_text())
    offset = people["offset"]
    assert people["users"] == {str(a): offset + a, str(b): offset + b} and offset == int(old.users.ids.max())
    assert set(people["histories"]) == {str(a), str(b)}
    service = Service.open([out])
    recs = service.for_user(offset + a, 10)
    assert recs["user_id"] == offset + a and len(recs["recommendations"]) == 10
    assert not {r["movie_id"] for r in recs["recommendations"]} & set(movies[:3])  # never what they rated
    # a person whose stored ratings are those the model learnt is that user; one who rated since is scored afresh
    stored = service.for_stored(a, store.ratings_of(a), 10)
    assert stored["as_user"] == offset + a and stored["rated"] == 3
    assert stored["recommendations"] == recs["recommendations"]
    assert service.for_stored(b, store.ratings_of(b), 5)["ignored"] == [99_999_999]
    store.put_rating(a, movies[4], 2.5)
    again = service.for_stored(a, store.ratings_of(a), 10)
    assert again["as_user"] is None and again["rated"] == 4
    assert movies[4] not in {r["movie_id"] for r in again["recommendations"]}
    assert Service.open([final_run]).for_stored(b, store.ratings_of(b), 5)["as_user"] is None  # not refreshed
    # the same person's stored ratings read as the trained user's row
    row = new.users.index(np.array([offset + a]))[0]
    assert sorted(new.model.seen_[row].indices.tolist()) == sorted(new.items.index(np.array(movies[:3])).tolist())
    # a refresh never replaces what it did not write, and says what is wrong in one line
    assert "--out" in cli_fails("refresh", str(final_run), "--db", db, "--out", str(final_run))
    config = json.loads((final_run / "config.json").read_text())  # a run whose data set has changed since
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("weights.safetensors", "ids.parquet"):
        (changed / name).write_bytes((final_run / name).read_bytes())
    (changed / "config.json").write_text(json.dumps({**config, "dataset": {**config["dataset"], "users": 61}}))
    assert "refresh needs the data the run was trained on" in cli_fails("refresh", str(changed), "--db", db,
                                                                        "--out", str(tmp_path / "y"))
    assert not (tmp_path / "y").exists()  # nothing written
    assert config["dataset"]["fingerprint"]  # the same counts but other ratings: the content fingerprint says so
    (changed / "config.json").write_text(json.dumps({**config, "dataset": {**config["dataset"], "fingerprint": "0"}}))
    assert "ratings of" in cli_fails("refresh", str(changed), "--db", db, "--out", str(tmp_path / "z"))
    assert not (tmp_path / "z").exists()
    assert "not a run folder or model bundle" in cli_fails("refresh", str(tmp_path), "--db", db, "--out",
                                                            str(tmp_path / "x"))


def test_own_string_ids_are_matched_by_label_and_people_get_labels() -> None:
    from movierec.data.dataset import Dataset, IdMap, Interactions
    from movierec.serving.refresh import with_people

    users = IdMap(np.array([1, 2], np.int64), "user", np.array(["u1", "u2"], dtype=object))
    items = IdMap(np.array([1, 2, 3], np.int64), "movie", np.array(["A", "B", "C"], dtype=object))
    inter = Interactions(np.array([0, 1]), np.array([0, 2]), np.ones(2), np.zeros(2, np.int64), 2, 3)
    ds = Dataset("own", inter, users, items)
    merged, added = with_people(ds, [(7, "B", 4.5, 2_000_000_000_000_000_000), (7, "Z", 3.0, 0)])
    assert (added.people, added.ratings, added.unknown_movies, added.offset) == (1, 1, 1, 2)
    assert merged.users.labels.tolist() == ["u1", "u2", "person-7"] and merged.users.ids.tolist() == [1, 2, 9]
    last = len(merged.interactions) - 1
    assert merged.interactions.item[last] == 1 and merged.interactions.rating[last] == 4.5
    assert merged.interactions.timestamp[last] == 2_000_000_000 and merged.interactions.user[last] == 2
