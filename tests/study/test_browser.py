"""The report renders in a real browser: headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import base64
import json
import re
import struct


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
    """At 390 px the page never scrolls sideways: wide tables and figures scroll in their own box."""
    out, _, _ = quick_study
    page = _page_at(browser, out / "report.html", 390)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # open everything too
    size = page.evaluate("({sw: document.documentElement.scrollWidth, vw: window.innerWidth})")
    assert size["sw"] <= size["vw"] == 390, size
    # a figure wider than the screen scrolls inside its own box (test_study_report_reads_on_a_phone)
    widths = page.eval_on_selector_all("figure", "els => els.map(e => e.getBoundingClientRect().right)")
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


# ------------------------------------------------------------------------------------------------ on a phone
PHONE_PX = 390  # an iPhone 12-15's viewport width in CSS px (device scale factor 1 here: CSS px = screen px)
MIN_TEXT_PX = 11.0  # the smallest text a reader should have to read, tables and charts alike
MIN_CELL_EM = 6  # a table cell shows its text on one line or is at least this wide: a few words a line
#: a full-ranking metric column's header: the templates write the protocol under the metric's name,
#: "NDCG@10 <br><span class="proto">[full]</span>"; beyond-accuracy measures ("Coverage@10 [full]") are not ranking
#: metrics and may scroll
FULL_RANKING_HEADER = re.compile(r"^(HR|NDCG|MAP|Recall|Precision)@\d+ \[full\]$")

SMALL_TABLE_TEXT = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('table, table *')) {
    if (!el.getClientRects().length) continue;  // not rendered (display: none)
    const own = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (own && size < MIN) bad.push([el.tagName, el.textContent.trim().slice(0, 30), size]);
    const after = getComputedStyle(el, '::after');
    if (!['none', 'normal'].includes(after.content) && parseFloat(after.fontSize) < MIN)
      bad.push([el.tagName + '::after', after.content.slice(0, 30), parseFloat(after.fontSize)]);
  }
  return bad;
}"""

#: each rendered cell's content width against min(its text on one line, MIN_CELL_EM em): the one-line width is
#: measured with every cell set to white-space: nowrap for a moment
CRAMPED_CELLS = """(minEm) => {
  const cells = [...document.querySelectorAll('th, td')].filter(c => c.getClientRects().length && c.innerText.trim());
  const inner = cells.map(c => { const s = getComputedStyle(c);
    return c.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); });
  const nowrap = document.createElement('style');
  nowrap.textContent = 'th, td, th *, td * { white-space: nowrap !important; }';
  document.head.append(nowrap);
  const oneLine = cells.map(c => { const r = document.createRange(); r.selectNodeContents(c);
    return r.getBoundingClientRect().width; });
  nowrap.remove();
  return cells.map((c, i) => ({text: c.innerText.trim().replace(/\\s+/g, ' ').slice(0, 40), width: inner[i],
                               need: Math.min(oneLine[i], minEm * parseFloat(getComputedStyle(c).fontSize))}))
              .filter(x => x.width + 0.5 < x.need);
}"""

#: every header cell's box on the page as first shown, with the box its table scrolls in (or the viewport)
HEADER_BOXES = """() => [...document.querySelectorAll('th')].filter(th => th.getClientRects().length).map(th => {
  const r = th.getBoundingClientRect(), box = th.closest('.scroll');
  const b = box ? box.getBoundingClientRect() : {left: 0, right: window.innerWidth};
  const t = th.closest('table');
  return {text: th.innerText.replace(/\\s+/g, ' ').trim(), table: t.id || t.className, left: r.left, right: r.right,
          box_left: b.left, box_right: box ? b.left + box.clientWidth : b.right};
})"""

#: each figure image: the PNG it shows (a <picture> may pick a narrow one) and its width on the page, borders off
IMAGES = """els => els.map(e => { const s = getComputedStyle(e);
  return {alt: e.alt, src: e.currentSrc, width: e.getBoundingClientRect().width - parseFloat(s.borderLeftWidth)
          - parseFloat(s.borderRightWidth)}; })"""


def png_facts(src: str) -> dict:
    """A data-URI PNG's pixel width, dpi (its pHYs chunk, which matplotlib writes from savefig's dpi) and
    smallest text in points (the "Smallest text" tEXt chunk movierec._html.save_figure writes, "8 pt")."""
    data, facts, pos = base64.b64decode(src.split(",", 1)[1]), {}, 8
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            facts["width"] = struct.unpack(">I", body[:4])[0]
        elif kind == b"pHYs" and body[8] == 1:  # pixels per metre
            facts["dpi"] = struct.unpack(">I", body[:4])[0] * 0.0254
        elif kind == b"tEXt" and body.partition(b"\0")[0] == b"Smallest text":  # _html.SMALLEST_TEXT_KEY
            facts["pt"] = float(body.partition(b"\0")[2].split()[0])
        pos += 12 + size
    return facts


#: the smallest text any figure of the report draws (eda/plots.py: the genre correlations' numbers; charts.py
#: draws nothing under charts.FONT_PT = 8 pt), taken for a PNG that does not record its own
SMALLEST_FIGURE_PT = 7.0


def chart_text_px(image: dict) -> float:
    """The height in CSS px of a chart's smallest text as the page shows it: the figure's smallest font size
    (points) times the dpi it was saved at over 72 is its size in the PNG's pixels (charts.py: charts.FONT_PT =
    8 pt at charts.DPI = 110 is 12.2 px in a wide chart, charts.NARROW_FONT_PT = 9 pt is 13.75 px in a narrow
    one; the EDA's genre correlations, 7 pt, are saved at 114 dpi); the page scales those pixels by the width it
    shows the image at over the PNG's width."""
    facts = png_facts(image["src"])
    return facts.get("pt", SMALLEST_FIGURE_PT) * facts["dpi"] / 72 * image["width"] / facts["width"]


def test_study_report_reads_on_a_phone(browser, quick_study, tmp_path) -> None:
    """At 390 px every table and chart of the report (the EDA's included) reads without zooming: text of 11 px
    and more, no cell squeezed to a word a line, the full-ranking columns on screen beside the model names, and
    the page never wider than the screen."""
    from movierec.study import charts

    out, _, _ = quick_study
    page = _page_at(browser, out / "report.html", PHONE_PX)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # the EDA's tables too
    problems: dict[str, list] = {}
    width = page.evaluate("document.documentElement.scrollWidth")
    problems["the page scrolls sideways"] = [width] if width > PHONE_PX else []
    problems["table text under 11 px"] = page.evaluate(SMALL_TABLE_TEXT.replace("MIN", str(MIN_TEXT_PX)))
    problems["cramped cells"] = page.evaluate(CRAMPED_CELLS, MIN_CELL_EM)
    full = [h for h in page.evaluate(HEADER_BOXES) if FULL_RANKING_HEADER.match(h["text"])]
    assert {h["table"] for h in full} >= {"comparison", "protocol-key", "families"}, full
    problems["full-ranking columns off screen"] = [
        h for h in full if h["left"] < max(0, h["box_left"]) or h["right"] > min(PHONE_PX, h["box_right"])]
    images = page.eval_on_selector_all("figure img", IMAGES)
    assert len(images) >= 8
    problems["charts with text under 11 px"] = [(i["alt"], round(chart_text_px(i), 1)) for i in images
                                                if chart_text_px(i) < MIN_TEXT_PX]
    study_charts = [png_facts(i["src"]) for i in page.eval_on_selector_all("figure picture img", IMAGES)]
    page.screenshot(path=str(tmp_path / "phone.png"))
    page.close()
    assert not any(problems.values()), {k: v[:8] for k, v in problems.items() if v}
    # the study's charts (accuracy, beyond accuracy, the protocols, the segments) are in their narrow layout
    assert len(study_charts) == 4
    assert all(f["pt"] == charts.NARROW_FONT_PT and round(f["dpi"]) == charts.DPI for f in study_charts), study_charts
