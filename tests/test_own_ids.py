"""The user's own item ids everywhere (issue 22, class 4): data imported with string item ids ("SKU-010", and labels
that look like numbers: "50", "7", "0042") is answered and asked by those ids on the command line (table, JSON,
--rate, the --users table) and over HTTP, never by the integer codes the import gave them. Code 50 is another item
than "50" here, so every test would fail on code that confused the two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_fails as fails
from tests.conftest import cli_ok as ok

NUMERIC = {"0042": "Forty-two", "50": "Fifty", "7": "Seven"}  # labels that look like numbers, and their titles
SKUS = [f"SKU-{i:03d}" for i in range(197)]  # 200 items: leave-one-out draws 99 negatives
LABELS = sorted([*NUMERIC, *SKUS])  # the import's codes are 1..n in this order: "0042" 1, "50" 2, "7" 3, "SKU-000" 4
N_USERS, PER_USER = 60, 25


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """An ItemKNN run folder on imported data with string item ids and an items file of titles."""
    root = tmp_path_factory.mktemp("own_ids")
    rng = np.random.default_rng(3)
    items = [*NUMERIC, *SKUS]  # the numeric-looking labels first: the most popular, so every model knows them
    p = 1.0 / np.arange(1, len(items) + 1) ** 0.7
    rows = [{"customer": f"u{u:03d}", "sku": items[i], "day": d, "stars": 1 + (u * 7 + d) % 5} for u in range(N_USERS)
            for d, i in enumerate(rng.choice(len(items), PER_USER, replace=False, p=p / p.sum()))]
    pd.DataFrame(rows).to_csv(root / "events.csv", index=False)
    titles = [{"sku": k, "name": NUMERIC.get(k) or f"Widget {k[4:]}"} for k in items]
    pd.DataFrame(titles).to_csv(root / "items.csv", index=False)
    ok("data", "import", str(root / "events.csv"), "--user", "customer", "--item", "sku", "--timestamp", "day",
       "--rating", "stars",
       "--items", str(root / "items.csv"), "--title", "name", "--name", "own-ids-shop")
    out = root / "run"
    ok("train", "itemknn", "--data", "own-ids-shop", "--out", str(out), "--json")
    return out


def test_the_import_gave_other_items_the_codes_that_look_like_labels(run: Path) -> None:
    from movierec.artifacts import load_bundle

    items = load_bundle(run / "model" if (run / "model").is_dir() else run).items
    code = dict(zip(items.ids.tolist(), items.labels.tolist(), strict=True))
    assert code[2] == "50" and code[50] != "50" and code[7] != "7" and code[42] != "0042"  # the trap is set


def test_a_known_users_list_names_items_by_their_own_ids(run: Path) -> None:
    out = json.loads(ok("recommend", str(run), "--user", "u001", "-k", "20", "--json"))
    got = [r["movieId"] for r in out["recommendations"]]
    assert len(got) == 20 and all(isinstance(m, str) and m in LABELS for m in got)
    titles = {k: NUMERIC.get(k) or f"Widget {k[4:]}" for k in LABELS}
    assert all(r["title"] == titles[r["movieId"]] for r in out["recommendations"])
    table = ok("recommend", str(run), "--user", "u001", "-k", "20")
    shown = [line.split("│")[2].strip() for line in table.splitlines() if line.startswith("│ ") and line[2].isdigit()]
    assert shown == got


def test_rate_by_own_id_even_where_titles_exist(run: Path) -> None:
    from movierec.serving import Service

    out = json.loads(ok("recommend", str(run), "--rate", "SKU-010=5", "--rate", "50=4", "--rate", "Seven=4.5",
                        "--json"))
    assert out["ratings"] == [{"movieId": "SKU-010", "rating": 5.0}, {"movieId": "50", "rating": 4.0},
                              {"movieId": "7", "rating": 4.5}]
    got = [r["movieId"] for r in out["recommendations"]]
    assert len(got) == 10 and not {"SKU-010", "50", "7"} & set(got)
    service = Service.open([run])
    api = service.for_person([("SKU-010", 5.0), ("50", 4.0), ("7", 4.5)], 10)
    assert got == [r["movie_id"] for r in api["recommendations"]]
    assert json.loads(ok("recommend", str(run), "--rate", "0042=5", "--json"))["ratings"][0]["movieId"] == "0042"


@pytest.mark.parametrize("text", ["4=5", "42=5", "2=5", "999=5"])
def test_a_number_that_is_only_an_import_code_names_nothing(run: Path, text: str) -> None:
    message = fails("recommend", str(run), "--rate", text)
    assert f"unknown movie id {text.split('=')[0]}" in message


def test_the_users_table_has_own_item_ids(run: Path, tmp_path: Path) -> None:
    ok("recommend", str(run), "--users", "all", "--out", str(tmp_path / "t.parquet"))
    table = pd.read_parquet(tmp_path / "t.parquet")
    assert list(table.columns) == ["user", "rank", "movie", "score"]
    assert table["movie"].dtype == "string" and table["movie"].isin(LABELS).all()
    first = json.loads(ok("recommend", str(run), "--user", "u000", "--json"))["recommendations"]
    assert table[table["user"] == "u000"]["movie"].tolist() == [r["movieId"] for r in first]
    ok("recommend", str(run), "--users", "all", "--out", str(tmp_path / "t.csv"))
    assert pd.read_csv(tmp_path / "t.csv", dtype=str)["movie"].isin(LABELS).all()


def test_http_takes_and_gives_own_ids(run: Path) -> None:
    from fastapi.testclient import TestClient

    from movierec.serving import Service
    from movierec.serving.api import create_app

    with TestClient(create_app(service=Service.open([run]))) as c:
        recs = c.get("/v1/users/u001/recommendations").json()["recommendations"]
        assert all(isinstance(r["movie_id"], str) and r["movie_id"] in LABELS for r in recs)
        assert all(r["because_movie_id"] is None or r["because_movie_id"] in LABELS for r in recs)
        body = {"ratings": [{"movie_id": "SKU-010", "rating": 5}, {"movie_id": 50, "rating": 4}]}
        a = c.post("/v1/recommendations", json=body)
        assert a.status_code == 200, a.text
        assert a.json()["rated"] == 2 and not {"SKU-010", "50"} & {r["movie_id"] for r in a.json()["recommendations"]}
        b = c.post("/v1/recommendations", json={"ratings": [{"movie_id": "SKU-010", "rating": 5},
                                                           {"movie_id": "50", "rating": 4}]})
        assert b.json() == a.json()  # the number 50 is the item "50"
        assert c.get("/v1/movies/50").json() == {**c.get("/v1/movies/50").json(), "movie_id": "50", "title": "Fifty"}
        assert c.get("/v1/movies/0042").json()["title"] == "Forty-two"
        for code in ("2", "4", "42"):  # codes of the import that are no item's own id
            assert c.get(f"/v1/movies/{code}").status_code == 404
        r = c.post("/v1/recommendations", json={"ratings": [{"movie_id": 4, "rating": 5}]})
        assert r.status_code == 404 and r.json()["detail"] == "unknown movie id 4"
        for by in ("content", "model"):
            sim = c.get("/v1/movies/SKU-010/similar", params={"by": by, "k": 5}).json()
            assert sim["movie"]["movie_id"] == "SKU-010"
            assert all(m["movie_id"] in LABELS and m["movie_id"] != "SKU-010" for m in sim["results"])
        assert c.get("/v1/movies", params={"q": "fifty"}).json()[0]["movie_id"] == "50"


def test_the_web_page_rates_and_recommends_by_own_ids(run: Path, browser) -> None:
    """The page of `movierec serve` with string ids: rate "Fifty" (id "50") and "Widget 010", get recommendations,
    open a recommendation's similar movies; the ratings stay shown on a new search (ids compared as text)."""
    import re
    import threading
    import time

    import uvicorn

    from movierec.serving import Service
    from movierec.serving.api import create_app
    from tests.serving.conftest import free_port
    from tests.serving.test_page import open_app, rate

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service=Service.open([run])), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        page, problems = open_app(browser, f"http://127.0.0.1:{port}")
        rate(page, "fifty", re.compile(r"^Fifty$"), "5")
        rate(page, "widget 010", re.compile(r"^Widget 010$"), "4")
        page.fill("#search", "fifty")
        page.locator(".search-result[data-movie-id='50']").wait_for()
        assert page.locator(".search-result[data-movie-id='50'] select.rate").input_value() == "5"
        page.click("#recommend")
        page.wait_for_function("() => document.querySelectorAll('.model-column .rec-item').length === 10")
        ids = page.eval_on_selector_all(".rec-item", "els => els.map(e => e.dataset.movieId)")
        assert set(ids) <= set(LABELS) and not {"50", "SKU-010"} & set(ids)
        page.locator(".rec-item .title-link").first.click()
        page.locator("#similar .similar-column[data-by=model] .similar-item").first.wait_for()
        page.locator("#similar .similar-column[data-by=content]").wait_for()  # no genres here: may be empty
        assert not problems, problems
        page.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_segment_names_the_user_by_own_id(run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from movierec.serving import Service
    from movierec.serving.api import create_app

    ok("segments", "--data", "own-ids-shop", "--out", str(tmp_path / "seg"), "--json")
    with TestClient(create_app(service=Service.open([run], segments=tmp_path / "seg"))) as c:
        body = c.get("/v1/users/u001/segment").json()
        assert body["user_id"] == "u001"  # not the import's integer code
        assert c.get("/v1/users/1/segment").status_code == 404
