"""People and their ratings stored (serve --db): the store on SQLite and PostgreSQL, the /v1/people endpoints,
tokens, rate limits. Synthetic data: a popularity run trained in the test session."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient

from movierec.errors import MovieRecError
from movierec.serving.people import SCHEMA_VERSION, PeopleStore, PersonNotFound, database_url
from tests.serving.conftest import synthetic_run


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("people"), "itemknn")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a server process: e2e
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return database_url(str(tmp_path / "people.sqlite"), tmp_path)
    return request.getfixturevalue("postgres_url")


def test_the_store_keeps_ratings_in_time_order_and_checks_tokens(store_url: str) -> None:
    store = PeopleStore(store_url)
    assert store.version() == SCHEMA_VERSION
    a, token = store.new_person()
    b, other = store.new_person()
    assert a != b and len(token) >= 43  # 32 random bytes, url-safe base64
    store.check(a, token)
    for pid, tok in ((a, other), (b, token), (999_999, token)):
        with pytest.raises(PersonNotFound):
            store.check(pid, tok)
    store.put_rating(a, 50, 4.0)
    store.put_rating(a, "SKU-7", 3.5)
    store.put_rating(a, 12, 5.0)
    store.put_rating(a, 50, 2.0)  # re-rated: replaces, and becomes the latest
    assert [(r.movie_id, r.rating) for r in store.ratings_of(a)] == [("SKU-7", 3.5), (12, 5.0), (50, 2.0)]
    assert store.ratings_of(b) == []
    assert store.delete_rating(a, 12) and not store.delete_rating(a, 12) and not store.delete_rating(b, 50)
    assert [r.movie_id for r in store.ratings_of(a)] == ["SKU-7", 50]
    again = PeopleStore(store_url)  # a restart: same schema, same people
    again.check(a, token)
    assert [r.movie_id for r in again.ratings_of(a)] == ["SKU-7", 50]
    store.close()
    again.close()


def test_sqlite_is_durable_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "people.sqlite"
    PeopleStore(database_url(str(path), tmp_path)).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute("UPDATE movierec_schema SET version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(MovieRecError, match=r"written by a newer movierec \(schema 2"):
        PeopleStore(database_url(str(path), tmp_path))
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE people (x INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(MovieRecError, match="holds a 'people' table that movierec did not make"):
        PeopleStore(database_url(str(foreign), tmp_path))
    with pytest.raises(MovieRecError, match="a folder, not a database file"):
        PeopleStore(database_url(str(tmp_path), tmp_path))
    assert database_url("default", tmp_path) == f"sqlite:///{(tmp_path / 'people.sqlite').resolve()}"


@pytest.fixture
def client(run_folder: Path, tmp_path: Path):
    from movierec.serving.api import create_app

    store = PeopleStore(database_url(str(tmp_path / "people.sqlite"), tmp_path))
    app = create_app([run_folder], people=store, new_people_per_minute=3, writes_per_minute=50)
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while c.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/health").json()["people"] is True
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_person_rates_and_gets_recommendations_from_the_stored_history(client) -> None:
    made = client.post("/v1/people")
    assert made.status_code == 201
    pid, token = made.json()["person_id"], made.json()["token"]
    movies = [m["movie_id"] for m in client.get("/v1/movies", params={"q": "Synthetic", "limit": 5}).json()]
    assert len(movies) == 5
    for i, movie in enumerate(movies[:3]):
        r = client.put(f"/v1/people/{pid}/ratings/{movie}", json={"rating": 3 + i * 0.5}, headers=_auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["movie_id"] == movie and r.json()["rating"] == 3 + i * 0.5
    stored = client.get(f"/v1/people/{pid}/ratings", headers=_auth(token)).json()
    assert [r["movie_id"] for r in stored["ratings"]] == movies[:3]
    recs = client.get(f"/v1/people/{pid}/recommendations", params={"k": 5}, headers=_auth(token))
    assert recs.status_code == 200, recs.text
    same = client.post("/v1/recommendations", json={"ratings": [{"movie_id": r["movie_id"], "rating": r["rating"]}
                                                                for r in stored["ratings"]], "k": 5}).json()
    assert recs.json()["recommendations"] == same["recommendations"] and recs.json()["person_id"] == pid
    assert not {m["movie_id"] for m in recs.json()["recommendations"]} & set(movies[:3])
    assert client.delete(f"/v1/people/{pid}/ratings/{movies[0]}", headers=_auth(token)).status_code == 204
    assert client.delete(f"/v1/people/{pid}/ratings/{movies[0]}", headers=_auth(token)).status_code == 404
    assert len(client.get(f"/v1/people/{pid}/ratings", headers=_auth(token)).json()["ratings"]) == 2


def test_tokens_guard_every_person_endpoint(client) -> None:
    a = client.post("/v1/people").json()
    b = client.post("/v1/people").json()
    pid = a["person_id"]
    calls = [("put", f"/v1/people/{pid}/ratings/1", {"json": {"rating": 4}}), ("get", f"/v1/people/{pid}/ratings", {}),
             ("delete", f"/v1/people/{pid}/ratings/1", {}), ("get", f"/v1/people/{pid}/recommendations", {})]
    for method, url, kw in calls:
        none = getattr(client, method)(url, **kw)
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer", (url, none.text)
        assert getattr(client, method)(url, headers={"Authorization": "Basic x"}, **kw).status_code == 401
        assert getattr(client, method)(url, headers=_auth(b["token"]), **kw).status_code == 403
        assert getattr(client, method)(url, headers=_auth("x" * 43), **kw).status_code == 403
    assert client.get("/v1/people/999999/ratings", headers=_auth(a["token"])).status_code == 403
    assert client.get("/v1/people/0/ratings", headers=_auth(a["token"])).status_code == 422


def test_bad_ratings_and_movies_are_one_line_errors_and_nothing_is_stored(client) -> None:
    p = client.post("/v1/people").json()
    pid, auth = p["person_id"], _auth(p["token"])
    for movie, body, code in [(1, {"rating": 7}, 422), (1, {"rating": "x"}, 422), (1, {}, 422),
                              (1, {"rating": 4, "extra": 1}, 422), (987654321, {"rating": 4}, 404),
                              ("not-a-movie", {"rating": 4}, 404)]:
        r = client.put(f"/v1/people/{pid}/ratings/{movie}", json=body, headers=auth)
        assert r.status_code == code and "\n" not in r.json()["detail"], (movie, body, r.text)
    assert client.get(f"/v1/people/{pid}/ratings", headers=auth).json()["ratings"] == []
    none_yet = client.get(f"/v1/people/{pid}/recommendations", headers=auth)
    assert none_yet.status_code == 422 and "rated no movie yet" in none_yet.json()["detail"]


def test_new_people_and_writes_are_rate_limited_per_client(client) -> None:
    codes = [client.post("/v1/people").status_code for _ in range(4)]
    assert codes[-1] == 429  # 3 a minute in this app
    r = client.post("/v1/people")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "new people" in r.json()["detail"]


def test_serve_refuses_a_database_inside_a_served_folder(run_folder: Path) -> None:
    from movierec.cli.serving import _open_people

    with pytest.raises(MovieRecError, match="inside the served folder"):
        _open_people(str(run_folder / "people.sqlite"), [run_folder])
    assert not (run_folder / "people.sqlite").exists()


def test_the_rate_limit_window_slides() -> None:
    from movierec.serving.limits import ClientRateLimit

    limit = ClientRateLimit(2, window=60)
    assert limit.wait("a", 0) == 0 and limit.wait("a", 1) == 0
    assert limit.wait("a", 2) == pytest.approx(58) and limit.wait("b", 2) == 0
    assert limit.wait("a", 60.5) == 0  # the first (at 0) has left the window
    assert limit.wait("a", 61) == 0  # and the second (at 1) too; 60.5 and 61 are in it now
    assert limit.wait("a", 62) == pytest.approx(58.5)
