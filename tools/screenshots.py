"""Screenshots of the built site for a human look (``make screenshots``; output in screenshots/).

The intro and two chapters, at desktop (1280 px) and phone (390 px) widths, in the light and
the dark theme: a full-page image of each, plus a close-up of the first kernel-free widget on
the page. The site in ``_build/html`` is served on 127.0.0.1 and opened in Debian's Chromium.

Usage: ``python tools/screenshots.py [page.html ...]`` (default: the intro, chapters 1 and 3).
"""
from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
OUT = ROOT / "screenshots"
PAGES = ["index.html", "chapters/01_fundamental_question.html", "chapters/03_lbfgs_and_adam.html"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(pages):
    if not (SITE / "index.html").exists():
        sys.exit(f"no site in {SITE}: run `make book` first")
    OUT.mkdir(exist_ok=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for page_path in pages:
            stem = Path(page_path).stem
            for device, (width, height) in WIDTHS.items():
                for theme in ("light", "dark"):
                    ctx = browser.new_context(viewport={"width": width, "height": height},
                                              device_scale_factor=1, color_scheme=theme)
                    ctx.add_init_script(f"localStorage.setItem('mode', '{theme}');"
                                        f"localStorage.setItem('theme', '{theme}');")
                    page = ctx.new_page()
                    page.goto(base + page_path, wait_until="networkidle")
                    page.wait_for_function("() => !window.MathJax || (MathJax.startup && "
                                           "MathJax.startup.promise)", timeout=20_000)
                    page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
                    name = f"{stem}-{device}-{theme}"
                    page.screenshot(path=OUT / f"{name}.png", full_page=True)
                    widget = page.locator(".curvlib-explorer").first
                    if widget.count():
                        widget.scroll_into_view_if_needed()
                        widget.screenshot(path=OUT / f"{name}-widget.png")
                    print(f"screenshots/{name}.png")
                    ctx.close()
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:] or PAGES)
