"""A screenshot of a study's report for the docs: the first 1280x900 of ``report.html`` in headless Chromium.

    python scripts/report_screenshot.py out/study-ml-latest-small --out docs/study-report.png

Opens the study's ``report.html`` from disk (it is self-contained) in Debian's Chromium driven by Playwright,
waits for it to load and saves the viewport as a PNG. It writes nothing but ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from serve_screenshot import BROWSER_FLAGS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study's output folder (holding report.html)")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    report = args.study / "report.html"
    if not report.is_file():
        ap.error(f"{report}: no report (run `make run` first)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        ap.error("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.resolve().as_uri(), wait_until="load")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), type="png")
        finally:
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
