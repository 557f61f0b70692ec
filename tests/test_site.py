"""The built website in a real browser: Debian's Chromium driven by Playwright.

The site in ``_build/html`` (``make book``; ``make test`` builds it first) is served on
127.0.0.1 by a Python ``http.server`` thread. Every page must load with no failed request,
no HTTP error, no request to any other host and no JavaScript error; mathematics must be
typeset by the locally served MathJax with no error; every image must load; each
kernel-free widget must change its figure when a control moves; the next/previous links and
the search must work.
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

if not (SITE / "index.html").is_file():
    pytest.skip(f"no built site in {SITE}: run `make book` first (`make test` does)",
                allow_module_level=True)

PAGES = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
               if not p.relative_to(SITE).as_posix().startswith(("_static/", "_sources/")))
CHAPTERS = [p for p in PAGES if re.match(r"chapters/\d\d_", p)]
EXPLORER_PAGES = [p for p in PAGES if 'class="curvlib-explorer"' in (SITE / p).read_text()]
MATH_PAGES = [p for p in PAGES if 'class="math' in (SITE / p).read_text()]
# External addresses may appear only as plain links (<a href>): never as something loaded.
LOADED_ATTRS = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?\b(src|href|data)="
    r"[\"'](https?:)?//", re.I)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def base_url():
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), "Chromium missing: apt-get install -y chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page load with every request, failure, HTTP error and JS error recorded."""

    def __init__(self, browser, url, width=1280):
        self.requests, self.failed, self.http_errors, self.js_errors = [], [], [], []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = page = self.context.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.http_errors.append(
            f"{r.status} {r.url}"))
        page.on("pageerror", lambda e: self.js_errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and self.js_errors.append(m.text))
        page.goto(url, wait_until="load")
        # MathJax typesets asynchronously: wait for its promise when the page loads it
        page.wait_for_function("() => !window.MathJax || (MathJax.startup && "
                               "MathJax.startup.promise)", timeout=20_000)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")
        page.wait_for_load_state("networkidle")

    def foreign(self, base_url):
        host = urlsplit(base_url).netloc
        return [u for u in self.requests
                if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                and urlsplit(u).netloc != host]

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    opened = []

    def _visit(path, **kwargs):
        v = Visit(browser, base_url + path, **kwargs)
        opened.append(v)
        return v
    yield _visit
    for v in opened:
        v.close()


def test_site_has_the_toc_pages():
    """Every page of _toc.yml was built (a placeholder at least)."""
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    assert files, "no chapters in _toc.yml"
    missing = [f for f in files if f"{f}.html" not in PAGES]
    assert not missing, f"pages missing from the build: {missing}"


@pytest.mark.parametrize("path", PAGES)
def test_no_page_loads_anything_from_another_host(path):
    """Static check of the HTML: scripts, styles, images and frames are all local."""
    html = (SITE / path).read_text()
    loaded = [m.group(0) for m in LOADED_ATTRS.finditer(html)]
    assert not loaded, f"{path} loads from another host: {loaded}"
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, re.S)
    urls = [u for body in inline for u in re.findall(r"https?://[^\s\"'<>]+", body)]
    assert not urls, f"{path}: inline script names another host: {urls[:5]}"


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(visit, base_url, path):
    v = visit(path)
    assert not v.foreign(base_url), f"requests to another host: {v.foreign(base_url)}"
    assert not v.failed, f"failed requests: {v.failed}"
    assert not v.http_errors, f"HTTP errors: {v.http_errors}"
    assert not v.js_errors, f"JavaScript errors: {v.js_errors}"
    # every image, including the ones below the fold, decodes
    v.page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    v.page.wait_for_load_state("networkidle")
    broken = v.page.evaluate("""() => Array.from(document.images)
        .filter(img => !(img.complete && img.naturalWidth > 0))
        .map(img => img.currentSrc.slice(0, 80) || img.outerHTML.slice(0, 80))""")
    assert not broken, f"images that did not load: {broken}"


@pytest.mark.parametrize("path", MATH_PAGES)
def test_math_is_typeset(visit, path):
    v = visit(path)
    result = v.page.evaluate("""() => {
        const math = Array.from(document.querySelectorAll('.math'));
        return {math: math.length,
                typeset: math.filter(m => m.querySelector('mjx-container')).length,
                errors: Array.from(document.querySelectorAll('mjx-merror, merror'))
                             .map(e => e.textContent || e.getAttribute('data-mjx-error'))};
    }""")
    assert result["math"] > 0
    assert result["typeset"] == result["math"], f"untypeset math on {path}: {result}"
    assert not result["errors"], f"MathJax errors on {path}: {result['errors']}"


def test_the_book_has_kernel_free_widgets():
    assert EXPLORER_PAGES, "no page carries a curvlib.widgets.Explorer"
    assert set(EXPLORER_PAGES) <= set(CHAPTERS) | set(PAGES)


@pytest.mark.parametrize("path", EXPLORER_PAGES)
def test_kernel_free_widgets_respond(visit, path):
    """Every control of every Explorer, moved to each end, changes the figure or its text."""
    v = visit(path)
    explorers = v.page.locator(".curvlib-explorer")
    assert explorers.count() > 0
    for e in range(explorers.count()):
        root = explorers.nth(e)
        img, text = root.locator("img.cx-frame"), root.locator(".cx-text")

        def state():
            return img.get_attribute("src"), text.text_content()

        controls = root.locator("[data-cx]")
        assert controls.count() > 0
        for c in range(controls.count()):
            ctrl = controls.nth(c)
            ctrl.scroll_into_view_if_needed()
            last = ctrl.evaluate("el => el.tagName === 'SELECT' ? el.options.length - 1"
                                 " : +el.max")
            if last == 0:
                continue  # a single value: nothing to move

            def move(to_end):
                if ctrl.evaluate("el => el.tagName") == "SELECT":
                    ctrl.select_option(index=last if to_end else 0)
                else:  # a range input, moved with the keyboard as a reader would
                    ctrl.focus()
                    ctrl.press("End" if to_end else "Home")
                return state()

            first = move(False)
            end = move(True)
            assert end != first, (f"{path}: explorer {e}, control {c}: moving it from its "
                                  "first to its last value changed neither figure nor text")
            assert img.evaluate("el => el.complete && el.naturalWidth > 0")
            assert move(False) == first, "moving back did not restore the first frame"
    assert not v.js_errors, v.js_errors


def test_next_and_previous_links_walk_the_book(visit, base_url):
    toc = (ROOT / "_toc.yml").read_text()
    expected = ["index"] + re.findall(r"file:\s*(\S+)", toc)
    v = visit("index.html")
    seen = [urlsplit(v.page.url).path]
    for _ in expected[1:]:
        v.page.locator("a.right-next").first.click()
        v.page.wait_for_load_state("load")
        seen.append(urlsplit(v.page.url).path)
    assert [p.removeprefix("/").removesuffix(".html") for p in seen] == expected
    assert v.page.locator("a.right-next").count() == 0, "the last page has a next link"
    v.page.locator("a.left-prev").first.click()
    v.page.wait_for_load_state("load")
    assert urlsplit(v.page.url).path.removesuffix(".html").endswith(expected[-2])


def test_search_finds_the_hessian(visit, base_url):
    v = visit("index.html")
    v.page.locator("button.search-button-field").first.click()
    box = v.page.locator("dialog input[name=q], .search-button__search-container input[name=q]")
    box.first.fill("Hessian")
    box.first.press("Enter")
    v.page.wait_for_url(re.compile(r"search\.html\?q=Hessian"))
    results = v.page.locator("#search-results li")
    results.first.wait_for(timeout=20_000)
    assert results.count() >= 2
    hrefs = results.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert any("01_fundamental_question" in h or "index" in h for h in hrefs), hrefs
    assert not v.js_errors, v.js_errors
