"""Hot swap: POST /v1/admin/reload (behind the admin key) and SIGHUP load new runs in the background and swap
them in whole, without failing a request; serve refuses a network address without an admin key."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from movierec.errors import MovieRecError

KEY = "k" * 24


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from movierec.data import load_dataset
    from movierec.data.synthetic import write_synthetic
    from movierec.runs.folders import train_run

    root = tmp_path_factory.mktemp("reload")
    data = load_dataset(write_synthetic(root / "syn", 60, 300, 2000, seed=5))
    _, split = train_run("popularity", data, root / "popularity")
    train_run("itemknn", data, root / "itemknn", split=split)
    return {"popularity": root / "popularity", "itemknn": root / "itemknn"}


def _ready(c: TestClient) -> None:
    deadline = time.monotonic() + 30
    while c.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_reload(c: TestClient, headers: dict) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = c.get("/v1/admin/reload", headers=headers).json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.02)
    raise AssertionError("the reload did not end in 60 s")


def test_a_reload_swaps_runs_without_failing_a_request(runs: dict[str, Path]) -> None:
    from movierec.serving.api import create_app

    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app([runs["popularity"]], api_key=KEY)) as c:
        _ready(c)
        before = c.get("/v1/models").json()
        assert [m["name"] for m in before] == ["popularity"] and len(before[0]["run_id"]) == 12
        movie = c.get("/v1/movies", params={"q": "Synthetic", "limit": 1}).json()[0]["movie_id"]
        codes: list[int] = []
        stop = threading.Event()

        def hammer() -> None:  # a person's list and the models, over and over, while the reload runs
            while not stop.is_set():
                codes.append(c.post("/v1/recommendations", json={"ratings": [{"movie_id": movie, "rating": 5}]}
                                    ).status_code)
                codes.append(c.get("/v1/models").status_code)

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            r = c.post("/v1/admin/reload", json={"runs": [str(runs["itemknn"]), str(runs["popularity"])]},
                       headers=auth)
            assert r.status_code == 202 and r.json()["status"] == "loading"
            assert c.post("/v1/admin/reload", headers=auth).status_code in (409, 202)
            status = _wait_reload(c, auth)
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert status["status"] == "done", status
        assert codes and set(codes) == {200}, sorted(set(codes))
        after = c.get("/v1/models").json()
        assert [m["name"] for m in after] == ["itemknn", "popularity"]
        assert after[1]["loaded_at"] >= before[0]["loaded_at"]
        # a reload that fails keeps what is served
        bad = c.post("/v1/admin/reload", json={"runs": [str(runs["itemknn"] / "nope")]}, headers=auth)
        assert bad.status_code == 422 and "not found" in bad.json()["detail"]
        assert [m["name"] for m in c.get("/v1/models").json()] == ["itemknn", "popularity"]


def test_admin_endpoints_need_the_key(runs: dict[str, Path]) -> None:
    from movierec.serving.api import create_app

    with TestClient(create_app([runs["popularity"]], api_key=KEY)) as c:
        _ready(c)
        assert c.post("/v1/admin/reload").status_code == 401
        assert c.post("/v1/admin/reload", headers={"Authorization": "Bearer " + "x" * 24}).status_code == 403
        assert c.get("/v1/admin/reload").status_code == 401
    with TestClient(create_app([runs["popularity"]])) as c:  # no key: the admin endpoints are off
        _ready(c)
        off = c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {KEY}"})
        assert off.status_code == 403 and "--api-key-file" in off.json()["detail"]


def test_serve_refuses_a_network_address_without_a_key_and_a_bad_key_file(runs: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    from movierec.cli.serving import _is_loopback, _read_api_key, serve_cmd

    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("no-such-host.invalid")
    with pytest.raises(MovieRecError, match=r"--host 0.0.0.0: reachable from other machines; give --api-key-file"):
        serve_cmd([runs["popularity"]], host="0.0.0.0", port=8000, cache_users=10, access_log=False,
                  segments=None, db=None, api_key_file=None)
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(MovieRecError, match="16 or more characters"):
        _read_api_key(short)
    with pytest.raises(MovieRecError, match="not found"):
        _read_api_key(tmp_path / "missing")
    good = tmp_path / "key"
    good.write_text(KEY + "\n")
    assert _read_api_key(good) == KEY
