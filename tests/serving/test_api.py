"""The HTTP API through FastAPI's test client: every endpoint, every error, and agreement with the CLI."""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from movierec.cli import app as cli_app

runner = CliRunner()
TOY_STORY, HEAT, MATRIX = 1, 6, 2571


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_health_and_models(client) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["models"] == ["itemknn", "gmf"]
    models = client.get("/v1/models").json()
    assert [m["name"] for m in models] == ["itemknn", "gmf"]
    assert all(m["users"] == 610 and m["movies"] == 9724 and m["family"] == "collaborative" for m in models)
    assert not any(m["segments"] for m in models)


def test_known_user(client, service) -> None:
    r = client.get("/v1/users/1/recommendations", params={"k": 10, "model": "itemknn"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "itemknn" and body["user_id"] == 1
    recs = body["recommendations"]
    assert [x["rank"] for x in recs] == list(range(1, 11))
    scores = [x["score"] for x in recs]
    assert scores == sorted(scores, reverse=True)
    assert {"movie_id", "title", "year", "genres", "score", "reason", "because_movie_id"} <= set(recs[0])
    assert all(type(x["movie_id"]) is int for x in recs)  # MovieLens ids stay JSON numbers
    assert all(x["because_movie_id"] is None or type(x["because_movie_id"]) is int for x in recs)
    # never a movie the user rated: training ratings or the held-out validation and test movies
    served = service.models["itemknn"]
    u = served.user_index(1)
    rated = set(served.bundle.items.raw(served.exclude[u].indices).tolist())
    assert len(rated) > served.model.seen_[u].nnz  # the held-out movies are in there too
    assert not rated & {x["movie_id"] for x in recs}
    # reasons name a movie the user rated, as the title says
    with_reason = [x for x in recs if x["reason"]]
    assert with_reason
    for x in with_reason:
        assert x["because_movie_id"] in rated
        title = client.get(f"/v1/movies/{x['because_movie_id']}").json()["title"]
        assert x["reason"] == f"because you rated {title}"


def test_default_model_is_the_first(client) -> None:
    assert client.get("/v1/users/1/recommendations").json()["model"] == "itemknn"


def test_new_person(client) -> None:
    body = {"ratings": [{"movie_id": TOY_STORY, "rating": 5}, {"movie_id": HEAT, "rating": 4},
                        {"movie_id": MATRIX, "rating": 4.5}], "k": 10}
    for model in ("itemknn", "gmf"):
        r = client.post("/v1/recommendations", json={**body, "model": model})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model"] == model and out["rated"] == 3 and out["ignored"] == []
        ids = [x["movie_id"] for x in out["recommendations"]]
        assert len(ids) == 10 and not {TOY_STORY, HEAT, MATRIX} & set(ids)
        assert any(x["because_movie_id"] in (TOY_STORY, HEAT, MATRIX) for x in out["recommendations"])


def test_new_person_order_is_kept_and_answers_repeat(client) -> None:
    body = {"ratings": [{"movie_id": MATRIX, "rating": 5}, {"movie_id": TOY_STORY, "rating": 3}], "model": "gmf"}
    a = client.post("/v1/recommendations", json=body).json()
    b = client.post("/v1/recommendations", json=body).json()
    assert a == b  # the fold-in is seeded


def test_movie_search(client) -> None:
    r = client.get("/v1/movies", params={"q": "toy story", "limit": 3})
    assert r.status_code == 200
    titles = [m["title"] for m in r.json()]
    assert titles[0] == "Toy Story (1995)" and len(titles) == 3 and all("Toy Story" in t for t in titles)
    assert client.get("/v1/movies", params={"q": "TOY"}).json()[0]["movie_id"] == TOY_STORY  # case ignored
    assert client.get("/v1/movies", params={"q": "zzzzqqq"}).json() == []
    movie = client.get(f"/v1/movies/{TOY_STORY}").json()
    assert movie["year"] == 1995 and "Animation" in movie["genres"] and movie["ratings"] > 100


def test_similar_by_content_and_by_model(client) -> None:
    content = client.get(f"/v1/movies/{TOY_STORY}/similar", params={"k": 5}).json()
    assert content["by"] == "content" and content["movie"]["movie_id"] == TOY_STORY
    assert len(content["results"]) == 5 and TOY_STORY not in [m["movie_id"] for m in content["results"]]
    assert all("Animation" in m["genres"] or "Children" in m["genres"] for m in content["results"])
    model = client.get(f"/v1/movies/{TOY_STORY}/similar", params={"k": 5, "by": "model", "model": "gmf"}).json()
    assert model["by"] == "model" and model["model"] == "gmf" and len(model["results"]) == 5
    scores = [m["score"] for m in model["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(("method", "url", "body", "status", "message"), [
    ("get", "/v1/users/999999/recommendations", None, 404, "unknown user id 999999"),
    ("get", "/v1/users/abc/recommendations", None, 404, "unknown user id abc"),
    ("get", "/v1/users/1/recommendations?model=nope", None, 404, "unknown model 'nope' (served: itemknn, gmf)"),
    ("get", "/v1/users/1/recommendations?k=0", None, 422, "k: Input should be greater than or equal to 1"),
    ("get", "/v1/users/1/recommendations?k=101", None, 422, "k: Input should be less than or equal to 100"),
    ("get", "/v1/movies/424242424", None, 404, "unknown movie id 424242424"),
    ("get", "/v1/movies/424242424/similar", None, 404, "unknown movie id 424242424"),
    ("get", "/v1/movies/1/similar?by=taste", None, 422, "by: String should match pattern"),
    ("get", "/v1/movies/1/similar?by=model&model=nope", None, 404, "unknown model 'nope'"),
    ("get", "/v1/movies", None, 422, "q: Field required"),
    ("get", "/v1/movies?q=", None, 422, "q: String should have at least 1 character"),
    ("get", "/v1/movies?q=toy&limit=0", None, 422, "limit: Input should be greater than or equal to 1"),
    ("get", "/v1/users/1/segment", None, 404, "does not come from a study with segments"),
    ("post", "/v1/recommendations", {"ratings": []}, 422, "ratings: rate at least one movie"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 6}]}, 422,
     "rating 6 is outside the scale 0.5 to 5"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 0}]}, 422, "outside the scale"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 424242424, "rating": 4}]}, 404,
     "unknown movie id 424242424"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1}]}, 422, "ratings.0.rating: Field required"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": "x", "rating": 4}]}, 404, "unknown movie id x"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1.5, "rating": 4}]}, 422, "ratings.0.movie_id: "),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": True, "rating": 4}]}, 422, "ratings.0.movie_id: "),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 10**30, "rating": 4}]}, 404,
     "unknown movie id 1000000000000000000000000000000"),
    ("get", f"/v1/movies/{10**30}", None, 404, "unknown movie id 1000000000000000000000000000000"),
    ("get", "/v1/movies/-1", None, 404, "unknown movie id -1"),
    ("get", "/v1/movies/abc", None, 404, "unknown movie id abc"),
    ("get", f"/v1/users/{10**30}/recommendations", None, 404, "unknown user id 1000000000000000000000000000000"),
    ("get", f"/v1/users/{'9' * 5000}/recommendations", None, 422, "user_id: String should have at most 1000"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 4}] * 1001}, 422,
     "ratings: at most 1000 per request (got 1001)"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 4}], "k": 0}, 422, "k: "),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 4}], "k": 500}, 422, "k: "),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 4}], "model": "nope"}, 404,
     "unknown model 'nope'"),
    ("post", "/v1/recommendations", {"ratings": [{"movie_id": 1, "rating": 4}], "extra": 1}, 422, "extra: "),
    ("post", "/v1/recommendations", {"rating": [{"movie_id": 1, "rating": 4}]}, 422, "ratings: Field required"),
    ("post", "/v1/recommendations", [1, 2], 422, "Input should be a valid dictionary"),
])
def test_errors_are_one_clear_line(client, method, url, body, status, message) -> None:
    r = client.get(url) if method == "get" else client.post(url, json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and message in detail, detail


def test_malformed_json_body(client) -> None:
    r = client.post("/v1/recommendations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)


def test_openapi_and_page(client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/v1/models", "/v1/recommendations", "/v1/users/{user_id}/recommendations", "/v1/movies",
            "/v1/movies/{movie_id}/similar", "/v1/users/{user_id}/segment"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN: works offline


def test_health_says_loading_then_failed(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from movierec.serving.api import create_app

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    with TestClient(create_app([tmp_path / "bad"])) as c:
        deadline = time.monotonic() + 30
        while (r := c.get("/health")).json()["status"] == "loading" and time.monotonic() < deadline:
            assert r.status_code == 503
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "not a movierec bundle" in r.json()["error"]
        r = c.get("/v1/models")
        assert r.status_code == 503 and "failed to load" in r.json()["detail"]


def test_loading_in_the_background_then_ready(served_runs) -> None:
    from fastapi.testclient import TestClient

    from movierec.serving.api import create_app

    with TestClient(create_app([served_runs["itemknn"]])) as c:
        deadline = time.monotonic() + 60
        while c.get("/health").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/health").json()["status"] == "ready"
        assert len(c.get("/v1/users/1/recommendations").json()["recommendations"]) == 10


def test_the_server_never_writes_to_what_it_serves(served_runs, service, client) -> None:
    before = {name: _tree_digest(path) for name, path in served_runs.items()}
    client.get("/v1/users/1/recommendations")
    client.post("/v1/recommendations", json={"ratings": [{"movie_id": 1, "rating": 5}], "model": "gmf"})
    client.get("/v1/movies/1/similar?by=model&model=gmf")
    assert {name: _tree_digest(path) for name, path in served_runs.items()} == before


def test_binds_to_localhost_unless_told() -> None:
    from movierec.cli.serving import serve_cmd
    from movierec.serving.api import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(serve_cmd).parameters["host"].default == "127.0.0.1"


@pytest.mark.parametrize("model", ["itemknn", "gmf"])
def test_server_answer_equals_the_cli(client, served_runs, model) -> None:
    """A known user's list from the server is `movierec recommend RUN --user U`'s list, movie for movie."""
    for user in (1, 414):
        api = client.get(f"/v1/users/{user}/recommendations", params={"k": 10, "model": model}).json()
        r = runner.invoke(cli_app, ["recommend", str(served_runs[model]), "--user", str(user), "--json"])
        assert r.exit_code == 0, r.output
        cli = json.loads(r.output)["recommendations"]
        assert [x["movieId"] for x in cli] == [x["movie_id"] for x in api["recommendations"]]
        assert np.allclose([x["score"] for x in cli], [x["score"] for x in api["recommendations"]], rtol=1e-6)
        assert [x["reason"] for x in cli] == [x["reason"] for x in api["recommendations"]]


def test_cache_gives_what_scoring_gives(service) -> None:
    served = service.models["gmf"]
    for user, k in ((0, 5), (7, 10), (0, 10), (0, 3), (0, 20)):  # reasons of a kept list are filled in as asked
        cached = served.recommend_user(user, k)
        fresh = served.recommend_users(np.array([user]), k)
        assert np.array_equal(cached.items, fresh.items) and np.array_equal(cached.because, fresh.because)
        assert np.array_equal(cached.scores, fresh.scores)


def test_segments_from_a_segments_folder(served_runs, shared_data_dir: Path, tmp_path: Path) -> None:
    """`serve --segments DIR` answers GET /v1/users/{id}/segment from a `movierec segments --out` folder."""
    from fastapi.testclient import TestClient

    from movierec.errors import DataError
    from movierec.serving import Service
    from movierec.serving.api import create_app

    data = str(shared_data_dir / "ml-latest-small")
    r = runner.invoke(cli_app, ["segments", "--data", data, "--out", str(tmp_path / "seg"), "--json"])
    assert r.exit_code == 0, r.output
    with TestClient(create_app(service=Service.open([served_runs["itemknn"]], segments=tmp_path / "seg"))) as c:
        body = c.get("/v1/users/1/segment").json()
        assert isinstance(body["segment"], int) and body["name"].startswith(f"S{body['segment']}")
    with pytest.raises(DataError, match="not a segments folder"):
        Service.open([served_runs["itemknn"]], segments=tmp_path)


def test_rating_scale_comes_from_the_bundle(served_runs, service) -> None:
    from movierec.fsutil import read_json

    recorded = read_json(served_runs["gmf"] / "config.json")["dataset"]["rating_scale"]
    assert recorded == [0.5, 5.0] and service.models["gmf"].rating_scale == (0.5, 5.0)
    assert service.models["gmf"].segments_folder is None and service.models["gmf"].segments_dir() is None
