"""The report renders in a real browser: headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import json


def open_page(browser, path, tmp_path):
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, problems


def image_states(page) -> list[dict]:
    return page.eval_on_selector_all(
        "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, w: e.naturalWidth, h: e.naturalHeight}))")


def test_study_report_renders(browser, quick_study, tmp_path) -> None:
    out, _, _ = quick_study
    page, problems = open_page(browser, out / "report.html", tmp_path)
    images = image_states(page)
    assert len(images) >= 8  # the study's charts and the EDA figures
    broken = [i["alt"] for i in images if not (i["complete"] and i["w"] > 100 and i["h"] > 100)]
    assert not broken, f"figures that did not load: {broken}"
    results = json.loads((out / "results.json").read_text())
    rows = page.locator("#comparison tbody tr")
    assert rows.count() == len(results)
    assert page.locator("#comparison tbody tr").first.locator("td").first.inner_text() == results[0]["model"]
    headers = " ".join(page.locator("#comparison thead tr").nth(1).inner_text().split())
    assert "NDCG@10 [full]" in headers and "HR@10 [sampled-100]" in headers
    assert page.locator("ul.conclusions li").count() >= 3
    assert page.locator(".cards .card").count() >= 2
    assert page.title().startswith("movierec study")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert not problems, problems


def test_eda_report_renders(browser, quick_study, tmp_path) -> None:
    out, _, _ = quick_study
    page, problems = open_page(browser, out / "eda" / "eda.html", tmp_path)
    images = image_states(page)
    assert len(images) >= 6
    assert all(i["complete"] and i["w"] > 100 for i in images), images
    assert not problems, problems


def test_the_checks_catch_a_broken_page(browser, tmp_path) -> None:
    """The same checks on a page with a broken figure and a script error do fail."""
    page_file = tmp_path / "broken.html"
    page_file.write_text('<!doctype html><html><head><link rel="icon" href="data:,"><title>x</title></head><body>'
                         '<img alt="bad" src="data:image/png;base64,bm90IGEgcG5n">'
                         '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    page, problems = open_page(browser, page_file, tmp_path)
    images = image_states(page)
    assert images[0]["w"] == 0
    assert any("boom" in p for p in problems) and any("undefinedFunction" in p for p in problems)
