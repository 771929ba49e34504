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


#: the quick study's page (6 models) at 1280 px, EDA and long tables folded: measured 6,466 px; the 13-model
#: study's page was 21,987 px before (7,591 after), an 18-model one 8,331; the bound leaves some room
QUICK_PAGE_HEIGHT_MAX = 8000


def _page_at(browser, path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 844})
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page


def test_study_report_fits_a_phone(browser, quick_study) -> None:
    """At 390 px the page never scrolls sideways: wide tables scroll in their own box, images scale down."""
    out, _, _ = quick_study
    page = _page_at(browser, out / "report.html", 390)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # open everything too
    size = page.evaluate("({sw: document.documentElement.scrollWidth, vw: window.innerWidth})")
    assert size["sw"] <= size["vw"] == 390, size
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.getBoundingClientRect().right)")
    assert widths and max(widths) <= 390
    box = page.evaluate("(() => { const t = document.querySelector('#comparison'); const b = t.parentElement;"
                        " return {table: t.scrollWidth, box: b.clientWidth, over: getComputedStyle(b).overflowX}; })()")
    assert box["table"] > box["box"] and box["over"] == "auto", box  # the table scrolls inside its box
    page.close()


def test_study_report_is_short_and_its_figures_readable(browser, quick_study) -> None:
    from movierec.study import charts

    out, _, _ = quick_study
    page = _page_at(browser, out / "report.html", 1280)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= QUICK_PAGE_HEIGHT_MAX, height
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # the EDA (and its tables) and the per-segment tables are there, folded
    assert page.locator("#data-details section.eda").count() >= 6
    assert page.evaluate("document.querySelector('#data-details').open") is False
    assert page.locator("details.segment-table-box table.segment-table").count() >= 1
    # the segment heatmap's numbers at the size the page shows them: at least 10 px
    img = page.eval_on_selector("img[alt^='NDCG@10 [full] by segment']",
                                "e => ({w: e.getBoundingClientRect().width, n: e.naturalWidth})")
    px = charts.HEATMAP_FONT_PT * charts.DPI / 72 * img["w"] / img["n"]
    assert px >= 10, (px, img)
    # the protocol scatter has one numbered row per model in its key
    results = json.loads((out / "results.json").read_text())
    assert page.locator("#protocol-key tbody tr").count() == len(results)
    assert page.locator("#protocol-key tbody tr td.text").all_inner_texts() == [r["model"] for r in results]
    # the significance method is stated
    note = page.locator("#significance").inner_text()
    assert "paired t-test" in note and "Holm" in note and "alpha = 0.05" in note
    page.close()
