"""The web page in stored mode (``serve --db``): the page's person lives in the browser's localStorage, its
ratings are written to the server and come back after a reload, and recommendations come from the stored history.
Headless Chromium against the live app serving ItemKNN and GMF trained on ml-latest-small, with a SQLite store."""

from __future__ import annotations

import json
import re

import pytest

from tests.serving.conftest import app_in_thread
from tests.serving.test_page import open_app, rate

pytest.importorskip("sqlalchemy")

PERSON_KEY = "movierec.person"


@pytest.fixture(scope="module")
def stored_server(service, tmp_path_factory):
    """The app with a store of people (a SQLite file) on uvicorn in a background thread: yields its base URL."""
    from movierec.serving.api import create_app
    from movierec.serving.people import PeopleStore, database_url

    tmp_dir = tmp_path_factory.mktemp("page-people")
    store = PeopleStore(database_url(str(tmp_dir / "people.sqlite"), tmp_dir))
    yield from app_in_thread(create_app(service=service, people=store))
    store.close()


def recommend_and_wait(page) -> None:
    page.click("#recommend")
    page.wait_for_function(
        "() => document.querySelectorAll('.model-column').length === 2 && "
        "!document.querySelector('.model-column[aria-busy]') && "
        "document.querySelectorAll('.model-column .rec-item').length === 20")


def reload_and_wait(page, n: int) -> None:
    """Reload the page and wait until its models are served and ``n`` stored ratings are listed again."""
    page.reload(wait_until="load")
    page.locator("#models-line").filter(has_text="Serving").wait_for()
    page.wait_for_function("n => document.querySelectorAll('#rated .rated-item').length === n && "
                           "!document.querySelector('#rated[aria-busy]')", arg=n)


def written(page, method: str):
    """A context that waits for the page's next rating write (PUT or DELETE) to be answered."""
    return page.expect_response(lambda r: r.request.method == method and "/ratings/" in r.url)


def rated_list(page) -> list[tuple[str, str]]:
    """(title, selected rating) of each movie in "Your ratings", in order."""
    items = page.locator("#rated .rated-item")
    return [(items.nth(i).locator(".title-link").inner_text(), items.nth(i).locator("select.rate").input_value())
            for i in range(items.count())]


def test_ratings_are_stored_and_come_back_after_a_reload(browser, stored_server) -> None:
    import httpx

    page, problems = open_app(browser, stored_server)
    note = page.locator("#person-note")
    assert note.is_hidden(), "no person before the first rating"
    assert page.evaluate(f"localStorage.getItem('{PERSON_KEY}')") is None
    names = [rate(page, "toy", re.compile(r"^Toy Story \(1995\)"), "5"),
             rate(page, "heat", re.compile(r"^Heat \(1995\)"), "4.5"),
             rate(page, "matrix", re.compile(r"Matrix.*\(1999\)"), "4")]
    recommend_and_wait(page)  # waits for the ratings' writes first
    assert page.locator("#status").inner_text() == "Recommendations from 2 models."
    note.wait_for(state="visible")
    person = json.loads(page.evaluate(f"localStorage.getItem('{PERSON_KEY}')"))
    assert isinstance(person["person_id"], int) and person["token"]
    assert f"person #{person['person_id']}" in note.inner_text()

    # the server has the three ratings, oldest first
    with httpx.Client(base_url=stored_server, timeout=20) as http:
        headers = {"Authorization": f"Bearer {person['token']}"}
        r = http.get(f"/v1/people/{person['person_id']}/ratings", headers=headers)
        assert r.status_code == 200, r.text
        assert [(x["title"], x["rating"]) for x in r.json()["ratings"]] == list(zip(names, [5.0, 4.5, 4.0],
                                                                                        strict=True))

    # a reload lists them again, in the order rated, with their ratings, and the note says whose they are
    reload_and_wait(page, 3)
    assert rated_list(page) == list(zip(names, ["5", "4.5", "4"], strict=True))
    assert page.locator("#rated .rated-item").first.locator(".genres").inner_text()  # the movie's full details
    assert note.is_visible() and f"person #{person['person_id']}" in note.inner_text()
    assert page.locator("#forget").is_visible()
    assert page.locator("#recommend").is_enabled()

    # recommendations from the stored history: 10 per model, no rated movie among them
    asked: list[str] = []
    page.on("request", lambda r: asked.append(f"{r.method} {r.url}") if "recommendations" in r.url else None)
    recommend_and_wait(page)
    stored = f"GET {stored_server}/v1/people/{person['person_id']}/recommendations?k=10&model="
    assert sorted(asked) == [stored + "gmf", stored + "itemknn"], asked
    assert page.locator("#status").inner_text() == "Recommendations from 2 models."
    columns = page.locator(".model-column")
    assert [columns.nth(i).get_attribute("data-model") for i in range(2)] == ["itemknn", "gmf"]
    for i in range(2):
        items = columns.nth(i).locator(".rec-item")
        assert items.count() == 10
        assert not set(items.locator(".title-link").all_inner_texts()) & set(names), "a rated movie was recommended"

    # a removal is stored too
    with written(page, "DELETE") as deleted:
        page.locator("#rated .rated-item").filter(has_text=names[1]).locator("button.remove").click()
    assert deleted.value.status == 204
    assert page.locator("#rated .rated-item").count() == 2
    reload_and_wait(page, 2)
    assert rated_list(page) == [(names[0], "5"), (names[2], "4")]
    assert not problems, problems
    page.close()


def test_forget_me_starts_afresh(browser, stored_server) -> None:
    page, problems = open_app(browser, stored_server)
    with written(page, "PUT") as put:
        rate(page, "toy", re.compile(r"^Toy Story \(1995\)"), "5")
    assert put.value.status == 200
    page.locator("#person-note").wait_for(state="visible")
    first = json.loads(page.evaluate(f"localStorage.getItem('{PERSON_KEY}')"))
    page.click("#forget")
    assert page.locator("#person-note").is_hidden()
    assert page.locator("#rated .rated-item").count() == 0
    assert page.locator("#recommend").is_disabled()
    assert page.evaluate(f"localStorage.getItem('{PERSON_KEY}')") is None
    reload_and_wait(page, 0)
    assert page.locator("#person-note").is_hidden()

    # the next rating makes a new person
    with written(page, "PUT") as put:
        rate(page, "heat", re.compile(r"^Heat \(1995\)"), "4.5")
    assert put.value.status == 200
    page.locator("#person-note").wait_for(state="visible")
    second = json.loads(page.evaluate(f"localStorage.getItem('{PERSON_KEY}')"))
    assert second["person_id"] != first["person_id"]
    reload_and_wait(page, 1)
    assert rated_list(page)[0][1] == "4.5"
    assert not problems, problems
    page.close()


def test_a_person_unknown_to_the_server_is_forgotten(browser, stored_server) -> None:
    """A person saved in the browser that this server does not know (a new database) is dropped: the page starts
    empty, and says so."""
    page, problems = open_app(browser, stored_server)
    page.evaluate(f"localStorage.setItem('{PERSON_KEY}', JSON.stringify({{person_id: 999999, token: 'nope'}}))")
    held = []  # the list of models answers only after the person's 403: its arrival must not clear the message
    page.route("**/v1/models", lambda route: held.append(route))
    page.reload(wait_until="load")
    page.wait_for_function(f"() => localStorage.getItem('{PERSON_KEY}') === null")
    page.locator("#status").filter(has_text="not on this server").wait_for()
    for route in held:
        route.continue_()
    page.locator("#models-line").filter(has_text="Serving").wait_for()
    assert "not on this server" in page.locator("#status").inner_text()
    assert page.locator("#person-note").is_hidden()
    assert page.locator("#rated .rated-item").count() == 0
    # the one problem is the 403 that told the page (Chromium logs a failed fetch to the console)
    unexpected = [p for p in problems if "403" not in p]
    assert not unexpected, unexpected
    page.close()


def test_after_a_refresh_and_a_reload_the_person_is_a_user_of_the_new_model(browser, served_runs, tmp_path) -> None:
    """The page's person rates three movies; `movierec refresh` trains the served run again with them, the server
    swaps to the new run (POST /v1/admin/reload), and after a page reload the person's list is that of the
    trained user the person became; a new rating makes the list come from the stored history again."""
    import time

    import httpx

    from movierec.serving.api import create_app
    from movierec.serving.people import PeopleStore, database_url
    from tests.conftest import cli_ok

    db = tmp_path / "people.sqlite"
    store = PeopleStore(database_url(str(db), tmp_path))
    app = create_app(paths=[served_runs["itemknn"]], people=store, api_key="admin-key")
    server = app_in_thread(app)
    base = next(server)
    try:
        deadline = time.monotonic() + 60  # the run loads in the background: open the page once it is served
        while httpx.get(base + "/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the server did not load the run"
            time.sleep(0.2)
        page, problems = open_app(browser, base)
        [rate(page, "toy", re.compile(r"^Toy Story \(1995\)"), "5"),
         rate(page, "heat", re.compile(r"^Heat \(1995\)"), "4.5"),
         rate(page, "matrix", re.compile(r"Matrix.*\(1999\)"), "4")]
        recommend_one(page)
        assert page.locator(".model-column .learnt").count() == 0, "scored from the history before a refresh"
        person = json.loads(page.evaluate(f"localStorage.getItem('{PERSON_KEY}')"))

        new_run = tmp_path / "itemknn-refreshed"
        assert "1 people with 3 ratings join" in cli_ok("refresh", str(served_runs["itemknn"]), "--db", str(db),
                                                        "--out", str(new_run))
        offset = json.loads((new_run / "people.json").read_text())["offset"]
        with httpx.Client(base_url=base, timeout=20, headers={"Authorization": "Bearer admin-key"}) as http:
            assert http.post("/v1/admin/reload", json={"runs": [str(new_run)]}).status_code == 202
            deadline = time.monotonic() + 60
            while (status := http.get("/v1/admin/reload").json())["status"] == "loading":
                assert time.monotonic() < deadline, "the reload did not finish"
                time.sleep(0.2)
            assert status["status"] == "done", status
            assert [m["name"] for m in http.get("/v1/models").json()] == ["itemknn"]

        reload_and_wait(page, 3)
        recommend_one(page)
        learnt = page.locator(".model-column .learnt")
        you = offset + person["person_id"]
        assert learnt.inner_text() == f"This model was trained on your ratings: you are its user {you}."

        # a rating given after the refresh: the model has not learnt it, so the stored history is scored again
        with written(page, "PUT") as put:
            rate(page, "jumanji", re.compile(r"^Jumanji \(1995\)"), "3")
        assert put.value.status == 200
        recommend_one(page)
        assert page.locator(".model-column .learnt").count() == 0
        assert not problems, problems
        page.close()
    finally:
        next(server, None)
        store.close()


def recommend_one(page) -> None:
    """Ask the one served model and wait for its ten movies."""
    page.click("#recommend")
    page.wait_for_function(
        "() => document.querySelectorAll('.model-column').length === 1 && "
        "!document.querySelector('.model-column[aria-busy]') && "
        "document.querySelectorAll('.model-column .rec-item').length === 10")
