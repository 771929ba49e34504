"""A screenshot of ``movierec serve``'s web page with recommendations shown, for the docs.

    python scripts/serve_screenshot.py RUN [RUN...] --out docs/images/serve.png

Serves the run folders (or bundles, or study folders) on uvicorn in a background thread on a free local port,
waits for ``/health`` to say ready, opens the page in headless Chromium (Debian's package, driven by
Playwright), searches and rates three movies, asks for recommendations, waits for every model's list and saves
the page as a PNG. It writes nothing but ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# as tests/study/test_browser.py
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# (search, a title that starts with, rating)
RATINGS = [("toy story", "Toy Story (1995)", "5"), ("heat", "Heat (1995)", "4.5"), ("matrix", "Matrix", "4")]
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout: float, thread: threading.Thread) -> dict:
    """``/health`` once it says ready; SystemExit when the models fail to load or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 503 while loading
            body = json.loads(e.read() or b"{}")
            if body.get("status") == "failed":
                raise SystemExit(f"the models failed to load: {body.get('error')}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        if not thread.is_alive():
            raise SystemExit("the server stopped")
        if time.monotonic() > deadline:
            raise SystemExit(f"the models were not ready after {timeout:.0f} s")
        time.sleep(0.25)


def screenshot(base: str, out: Path, chromium: str, full_page: bool) -> int:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(base + "/", wait_until="load")
            page.locator("#models-line").filter(has_text="Serving").wait_for()
            n_models = page.evaluate("() => fetch('/v1/models').then(r => r.json()).then(m => m.length)")
            for query, title, rating in RATINGS:
                page.fill("#search", query)
                hit = page.locator(".search-result").filter(
                    has=page.locator(".title-link", has_text=title)).first
                hit.wait_for()
                hit.locator("select.rate").select_option(rating)
            page.click("#recommend")
            page.wait_for_function(
                "n => document.querySelectorAll('.model-column').length === n && "
                "!document.querySelector('.model-column[aria-busy]')", arg=n_models)
            page.fill("#search", "")  # the search results folded away, so the lists show
            page.wait_for_function("() => !document.querySelector('.search-result')")
            page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
            page.screenshot(path=str(out), full_page=full_page, type="png")
        finally:
            browser.close()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, model bundles or study folders to serve")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write (replaced if it exists)")
    ap.add_argument("--viewport-only", action="store_true", help="only the first 1280x900, not the whole page")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the models to load")
    args = ap.parse_args(argv)

    out: Path = args.out
    if out.suffix.lower() != ".png":
        ap.error(f"--out must be a .png file (got {out})")
    if out.exists() and not out.is_file():
        ap.error(f"--out {out} exists and is not a file")
    missing = [str(r) for r in args.runs if not r.exists()]
    if missing:
        ap.error(f"not found: {', '.join(missing)}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        ap.error("chromium is not installed (apt-get install chromium)")

    import uvicorn

    from movierec.serving.api import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(create_app(paths=list(args.runs)), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        health = wait_ready(base, args.timeout, thread)
        print(f"serving {', '.join(health['models'])} at {base}", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        rc = screenshot(base, out, chromium, full_page=not args.viewport_only)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"wrote {out}" if rc == 0 else f"wrote {out}, but the page reported problems", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
