"""The web page of ``movierec serve`` works in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the live app serving ItemKNN and GMF trained on ml-latest-small."""

from __future__ import annotations

import re

TIMEOUT_MS = 20_000


def open_app(browser, base_url: str, width: int = 1280, height: int = 900):
    """The page at ``base_url``/ and the list its console errors and warnings, page errors and failed requests
    go to."""
    problems: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:100]} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url[:100]}") if r.status >= 400 else None)
    page.goto(base_url + "/", wait_until="load")
    page.locator("#models-line").filter(has_text="Serving").wait_for()
    return page, problems


def rate(page, query: str, title: re.Pattern, rating: str) -> str:
    """Search ``query``, give the result whose title matches ``title`` the rating ``rating``; its title."""
    page.fill("#search", query)
    result = page.locator(".search-result").filter(has=page.locator(".title-link", has_text=title)).first
    result.wait_for()
    name = result.locator(".title-link").inner_text()
    result.locator("select.rate").select_option(rating)
    page.locator("#rated .rated-item").filter(has_text=name).wait_for()
    return name


def rate_three_and_recommend(page) -> list[str]:
    assert page.locator("#recommend").is_disabled()
    names = [rate(page, "toy", re.compile(r"^Toy Story \(1995\)"), "5"),
             rate(page, "heat", re.compile(r"^Heat \(1995\)"), "4.5"),
             rate(page, "matrix", re.compile(r"Matrix.*\(1999\)"), "4")]
    assert page.locator("#rated .rated-item").count() == 3
    assert page.locator("#recommend").is_enabled()
    page.click("#recommend")
    page.wait_for_function(
        "() => document.querySelectorAll('.model-column').length === 2 && "
        "!document.querySelector('.model-column[aria-busy]') && "
        "document.querySelectorAll('.model-column .rec-item').length === 20")
    return names


def test_search_rate_recommend_and_similar(browser, live_server) -> None:
    page, problems = open_app(browser, live_server)
    results = page.locator(".search-result")
    page.fill("#search", "toy")
    results.first.wait_for()
    first = results.first.inner_text()
    assert "Toy Story" in first and "Animation" in first  # title with its year, and genres
    assert results.first.locator("select.rate").get_attribute("aria-label").startswith("Your rating of ")

    names = rate_three_and_recommend(page)
    assert page.locator("#status").inner_text() == "Recommendations from 2 models."
    # changing a rating in "your ratings" keeps the movie in its place; removing one takes it out
    page.locator("#rated .rated-item").first.locator("select.rate").select_option("3.5")
    assert page.locator("#rated .rated-item").first.inner_text().startswith(names[0])

    columns = page.locator(".model-column")
    assert [columns.nth(i).get_attribute("data-model") for i in range(2)] == ["itemknn", "gmf"]
    for i in range(2):
        items = columns.nth(i).locator(".rec-item")
        assert items.count() == 10
        assert items.first.locator(".rank").inner_text() == "1"
        rec_titles = items.locator(".title-link").all_inner_texts()
        assert not set(rec_titles) & set(names), "a rated movie was recommended"
    reasons = page.locator(".rec-item .reason")
    assert reasons.count() >= 1
    assert reasons.first.inner_text().startswith("because you rated ")
    boxes = [columns.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"], "the columns should sit side by side"

    # a recommended title shows movies like it: by content, and by the column's model
    rec = columns.first.locator(".rec-item .title-link").first
    rec_title = rec.inner_text()
    rec.click()
    similar = page.locator("#similar")
    similar.wait_for(state="visible")
    assert rec_title in page.locator("#similar-heading").inner_text()
    by_content = similar.locator(".similar-column[data-by=content] .similar-item")
    by_model = similar.locator(".similar-column[data-by=model] .similar-item")
    by_content.first.wait_for()
    by_model.first.wait_for()
    assert 1 <= by_content.count() <= 10 and 1 <= by_model.count() <= 10
    assert rec_title not in by_model.locator(".title-link").all_inner_texts()

    # a search result's title shows movies like it by content
    page.fill("#search", "heat")
    page.locator(".search-result").first.wait_for()
    page.locator(".search-result .title-link").first.click()
    page.wait_for_function("() => document.querySelectorAll('#similar .similar-column').length === 1 && "
                           "document.querySelectorAll('#similar .similar-item').length > 0")

    page.locator("#rated .rated-item").last.locator("button.remove").click()
    assert page.locator("#rated .rated-item").count() == 2
    assert not problems, problems
    page.close()


def test_phone_width_does_not_scroll_sideways(browser, live_server, tmp_path) -> None:
    page, problems = open_app(browser, live_server, width=390, height=844)
    rate_three_and_recommend(page)
    page.locator(".model-column .reason").first.scroll_into_view_if_needed()
    widths = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, "
                           "client: document.documentElement.clientWidth})")
    assert widths["scroll"] <= widths["client"], widths
    boxes = [page.locator(".model-column").nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"], "the columns should be stacked on a phone"
    # tap targets: the controls a person uses are at least 40 px tall
    small = page.evaluate("""() => [...document.querySelectorAll('#search, select.rate, button')]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect().height])
        .filter(([, h]) => h < 40)""")
    assert not small, small
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert not problems, problems
    page.close()


def test_api_error_shows_in_the_status_line(browser, live_server) -> None:
    page, problems = open_app(browser, live_server)
    detail = "rating 7 is outside the scale 0.5 to 5"
    page.route("**/v1/recommendations", lambda route: route.fulfill(
        status=422, json={"detail": detail}))
    rate(page, "toy", re.compile(r"^Toy Story \(1995\)"), "5")
    page.click("#recommend")
    status = page.locator("#status")
    page.wait_for_function("d => document.querySelector('#status').textContent.includes(d)", arg=detail)
    assert status.get_attribute("role") == "status"
    assert status.is_visible()
    assert page.locator(".model-column .error-note").count() == 2

    # the real answer once the route is gone; then a model without similar movies is reported in its block
    page.unroute("**/v1/recommendations")
    page.click("#recommend")
    page.wait_for_function("() => document.querySelectorAll('.model-column .rec-item').length === 20")
    assert status.inner_text() == "Recommendations from 2 models."
    no_similar = "gmf has no notion of similar movies; ask by content instead"
    page.route(re.compile(r".*/similar\?.*by=model.*"), lambda route: route.fulfill(
        status=422, json={"detail": no_similar}))
    page.locator(".model-column[data-model=gmf] .rec-item .title-link").first.click()
    page.locator("#similar .similar-column[data-by=content] .similar-item").first.wait_for()
    assert no_similar in page.locator("#similar .similar-column[data-by=model] .unavailable").inner_text()
    # the only problems are the answers the routes made fail (Chromium logs a failed fetch to the console)
    unexpected = [p for p in problems if "422" not in p]
    assert not unexpected, unexpected
    page.close()


def test_api_docs_render_offline(browser, live_server) -> None:
    """/docs (Swagger UI) and /redoc render with every request to anywhere but the server refused: their
    scripts and styles come from the app itself (issue 22, class 8), not from a CDN."""
    outside: list[str] = []

    def only_the_server(route) -> None:
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/*", only_the_server)
    page.goto(live_server + "/docs", wait_until="load")
    page.locator(".swagger-ui .info .title").filter(has_text="movierec").wait_for()
    page.locator(".opblock-summary-path").filter(has_text="/v1/recommendations").first.wait_for()
    page.goto(live_server + "/redoc", wait_until="load")
    page.locator("h1").filter(has_text="movierec").wait_for()
    page.locator("h2").filter(has_text="Person Recommendations").first.wait_for()
    # ReDoc's "API docs by Redocly" badge always asks its CDN for a logo, and hides it when that fails: the one
    # request to the outside, decorative; everything the pages need came from the server
    assert [u for u in outside if u != "https://cdn.redoc.ly/redoc/logo-mini.svg"] == [], outside
    page.close()
