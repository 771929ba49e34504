"""The result tables of README.md and docs/results.md are rendered from the committed files under docs/results/,
never typed by hand.

Fast: reads README.md and docs/results/*.json only (no data, no study). After `make docs`, or a
hand edit of a table, `python scripts/readme_tables.py render` brings the README back in line.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "readme_tables.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("readme_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rt = _load_script()
README = (ROOT / "README.md").read_text()


def _page(name: str) -> str:
    """The text of the page table ``name`` sits in."""
    return rt.PAGES[name].read_text()


@pytest.mark.parametrize("name", sorted(rt.SOURCES))
def test_readme_table_matches_its_results_file(name):
    source = ROOT / "docs" / "results" / rt.SOURCES[name]
    assert source.exists(), f"{source.relative_to(ROOT)} is missing: the README's {name} table has no source"
    in_readme = rt.readme_table(_page(name), name)
    page = rt.PAGES[name].relative_to(ROOT)
    assert in_readme is not None, f"{page} lacks <!-- table:{name} --> ... <!-- /table:{name} -->"
    assert in_readme == rt.render(name), (
        f"{page}'s {name} table differs from {source.relative_to(ROOT)}; "
        "run `python scripts/readme_tables.py render` (or `make docs` for fresh results)")


@pytest.mark.parametrize("name", sorted(rt.SOURCES))
def test_results_file_records_where_and_when(name):
    doc = json.loads((ROOT / "docs" / "results" / rt.SOURCES[name]).read_text())
    assert doc["date"] and doc["movierec"] and doc["results"]
    assert int(doc["machine"]["nproc"]) >= 1
    assert "cpu" in doc["machine"]


def test_a_hand_edited_number_is_caught(tmp_path):
    doc = rt.load("content-hybrid")
    doc["results"][0]["NDCG@10 [full]"] = 0.123456
    (tmp_path / rt.SOURCES["content-hybrid"]).write_text(json.dumps(doc))
    for name in ("study", "similar", "peers"):
        (tmp_path / rt.SOURCES[name]).write_text(json.dumps(rt.load(name)))
    assert "0.1235" in rt.render("content-hybrid", tmp_path)
    page, text = rt.PAGES["content-hybrid"], _page("content-hybrid")
    assert rt.readme_table(rt.rewrite(text, tmp_path, page), "content-hybrid") != rt.readme_table(text,
                                                                                                 "content-hybrid")


@pytest.mark.parametrize("page", sorted(set(rt.PAGES.values())), ids=lambda p: p.name)
def test_rewrite_touches_only_the_tables(page):
    text = page.read_text()
    rewritten = rt.rewrite(text, page=page)
    strip = text
    for name in (n for n in rt.SOURCES if rt.PAGES[n] == page):
        strip = strip.replace(rt.readme_table(text, name), "")
        rewritten = rewritten.replace(rt.readme_table(rewritten, name), "")
    assert rewritten == strip


def test_the_readme_is_a_front_door():
    """Under 200 lines: what movierec is, the two commands, install, the study's table, a tour and links."""
    lines = README.splitlines()
    assert len(lines) < 200
    assert lines[0] == "# movierec" and "make run" in README[:1500] and "make test" in README[:1500]
    for page in ("results", "protocols", "models", "scale", "serving", "reliability"):
        assert f"(docs/{page}.md)" in README and (ROOT / "docs" / f"{page}.md").is_file()


def test_make_run_writes_no_tracked_file():
    """`make run` writes under out/ only (the checkout stays clean); `make docs` alone refreshes the tables."""
    recipes: dict[str, list[str]] = {}
    target = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip())
        elif line and not line.startswith(("#", " ")) and ":" in line and "=" not in line.split(":")[0]:
            target = line.split(":")[0]
            recipes.setdefault(target, [])
    assert recipes["run"] and all(r.startswith("$(BIN)/movierec study ") and "--out out/" in r for r in recipes["run"])
    assert any("readme_tables.py collect --study" in r for r in recipes["docs"])
