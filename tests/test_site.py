"""The built website in a real browser: Debian's Chromium driven by Playwright.

The site in ``_build/html`` (``make book``; ``make test`` builds it first) is served on
127.0.0.1 by a Python ``http.server`` thread. Every page must load with no failed request,
no HTTP error, no request to any other host and no JavaScript error; mathematics must be
typeset by the locally served MathJax with no error; every image must load; each
kernel-free widget must change its figure when a control moves, also from the keyboard; the
next/previous links and the search must work.

Accessibility: axe-core (from npm, served by the site as ``_static/vendor/axe.min.js`` but
loaded by these tests only) checks every page in the light theme with all its rules and in the
dark theme for colour contrast; no serious or critical violation is allowed, except the few
listed in ``AXE_EXCLUDED`` (upstream theme markup, each limited to one rule and one element).
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

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

    def __init__(self, browser, url, width=1280, theme=None):
        self.requests, self.failed, self.http_errors, self.js_errors = [], [], [], []
        self.context = browser.new_context(viewport={"width": width, "height": 900},
                                           color_scheme=theme or "light")
        if theme:  # the theme's own switch remembers the choice in localStorage
            self.context.add_init_script(f"localStorage.setItem('mode', '{theme}');"
                                         f"localStorage.setItem('theme', '{theme}');")
        # every wait's upper bound (not a timing): make test runs these beside other stages
        self.context.set_default_timeout(60_000)
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
                               "MathJax.startup.promise)")
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


MATH_JS = """() => {
    const math = Array.from(document.querySelectorAll('.math'));
    return {math: math.length,
            typeset: math.filter(m => m.querySelector('mjx-container')).length,
            errors: Array.from(document.querySelectorAll('mjx-merror, merror'))
                         .map(e => e.textContent || e.getAttribute('data-mjx-error'))};
}"""
IMAGES_JS = """() => Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.currentSrc.slice(0, 80) || img.outerHTML.slice(0, 80))"""


# axe-core rules that upstream markup breaks and neither _config.yml nor CSS can change; each is
# limited to the elements named (pydata-sphinx-theme 0.17.1, the navbar of every page):
AXE_EXCLUDED = {
    # label-content-name-mismatch (serious): the search button's accessible name is its
    # aria-label "Search", but it also shows the shortcut "Ctrl + K" as text; the colour-mode
    # button is named "Color mode" and shows an icon titled "Light", "Dark" or "System
    # Settings". Both names still say what the button does; voice control can use them.
    "label-content-name-mismatch": "button.search-button-field, button.theme-switch-button",
}

AXE_JS = """async ({excluded, rules}) => {
    const options = {resultTypes: ["violations"]};
    if (rules) options.runOnly = {type: "rule", values: rules};
    const result = await axe.run(document, options);
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.filter(n => {
            const el = document.querySelector(n.target[0]);
            return !(excluded[v.id] && el && el.matches(excluded[v.id]));
        }).map(n => n.target.join(" ") + ": " + n.failureSummary.split("\\n").slice(1).join(" "))
    })).filter(v => v.nodes.length);
}"""


# pydata-sphinx-theme's colour-mode switch sets both attributes on <html>; its CSS keys on them.
# Returns the theme and the page's background colour, which must then be dark. Transitions are
# switched off first, so that axe does not sample a colour half-way from light to dark.
DARK_JS = """() => {
    const still = document.createElement("style");  // no colour transitions half-way through
    still.textContent = "*, *::before, *::after { transition: none !important; }";
    document.head.appendChild(still);
    document.documentElement.dataset.mode = "dark";
    document.documentElement.dataset.theme = "dark";
    return [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor];
}"""


def axe(page, base_url, rules=None):
    """Serious and critical axe-core violations on the loaded page: ``["rule (impact): ..."]``."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(url=base_url + "_static/vendor/axe.min.js")
    violations = page.evaluate(AXE_JS, {"excluded": AXE_EXCLUDED, "rules": rules})
    return [f"{v['id']} ({v['impact']}, {v['help']}): {n}" for v in violations
            if v["impact"] in ("serious", "critical") for n in v["nodes"]]


@pytest.fixture(scope="module")
def loaded(browser, base_url):
    """Each page loaded once; what the tests below check, recorded."""
    cache = {}

    def _loaded(path):
        if path not in cache:
            v = Visit(browser, base_url + path)
            try:
                v.page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
                v.page.wait_for_load_state("networkidle")
                cache[path] = {"foreign": v.foreign(base_url), "failed": v.failed,
                               "http_errors": v.http_errors, "js_errors": v.js_errors,
                               "broken_images": v.page.evaluate(IMAGES_JS),
                               "math": v.page.evaluate(MATH_JS),
                               "axe": axe(v.page, base_url)}
                # the dark theme on the same page, as the theme's switch sets it (a fresh load
                # in the dark theme is tested by test_figures_sit_on_white_in_the_dark_theme)
                cache[path]["theme"] = v.page.evaluate(DARK_JS)
                cache[path]["axe_dark"] = axe(v.page, base_url, rules=["color-contrast"])
            finally:
                v.close()
        return cache[path]
    return _loaded


@pytest.mark.parametrize("path", PAGES)
def test_widget_manager_only_where_a_live_widget_is_shown(path):
    """require.js and the ipywidgets HTML manager (local copies) load exactly on the pages
    that show an ipywidgets view; Explorer outputs show their kernel-free HTML instead."""
    html = (SITE / path).read_text()
    has_view = 'type="application/vnd.jupyter.widget-view+json"' in html
    loads_manager = bool(re.search(r'<script[^>]+src="[^"]*_static/vendor/html-manager/'
                                   r'embed-amd\.js', html))
    assert has_view == loads_manager
    if has_view:
        assert re.search(r'<script[^>]+src="[^"]*_static/vendor/require\.js', html)


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(loaded, path):
    r = loaded(path)
    assert not r["foreign"], f"requests to another host: {r['foreign']}"
    assert not r["failed"], f"failed requests: {r['failed']}"
    assert not r["http_errors"], f"HTTP errors: {r['http_errors']}"
    assert not r["js_errors"], f"JavaScript errors: {r['js_errors']}"


@pytest.mark.parametrize("path", PAGES)
def test_every_image_loads(loaded, path):
    """Every image, including those below the fold, decodes."""
    assert not loaded(path)["broken_images"], "images that did not load"


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violation(loaded, path):
    """axe-core, every rule, light theme."""
    assert not loaded(path)["axe"], "\n".join(loaded(path)["axe"])


@pytest.mark.parametrize("path", PAGES)
def test_dark_theme_has_enough_contrast(loaded, path):
    """axe-core's colour-contrast rule in the dark theme (the other rules do not depend on it)."""
    theme, background = loaded(path)["theme"]
    rgb = [float(c) for c in re.findall(r"[\d.]+", background)[:3]]
    assert theme == "dark" and len(rgb) == 3 and max(rgb) < 80, (theme, background)
    assert not loaded(path)["axe_dark"], "\n".join(loaded(path)["axe_dark"])


def test_figures_sit_on_white_in_the_dark_theme(visit):
    """Matplotlib draws dark lines on white: in the dark theme figures keep a white panel and are
    not dimmed (the theme's brightness filter would fade thin lines)."""
    v = visit("chapters/01_fundamental_question.html", theme="dark")
    styles = v.page.evaluate("""() => Array.from(document.querySelectorAll(
        '.cell_output img')).map(img => { const s = getComputedStyle(img);
        return [s.backgroundColor, s.filter]; })""")
    assert len(styles) >= 3  # figures and the widget's frame
    assert all(bg == "rgb(255, 255, 255)" and f == "none" for bg, f in styles), styles


def test_widget_sliders_work_from_the_keyboard(visit):
    """Tab reaches a widget's slider, which shows a visible focus ring; the arrow keys move it,
    and the figure, its alternative text and the shown value follow."""
    path = next(p for p in EXPLORER_PAGES
                if 'type="range"' in (SITE / p).read_text())
    v = visit(path)
    root = v.page.locator(".curvlib-explorer").first
    root.scroll_into_view_if_needed()
    # focus starts just before the widget, as if the reader had tabbed through the text above
    root.evaluate("r => { const s = document.createElement('span'); s.tabIndex = -1;"
                  " r.before(s); s.focus(); }")
    v.page.keyboard.press("Tab")
    focused = v.page.evaluate("""() => { const el = document.activeElement, s = getComputedStyle(el);
        return {range: el.matches('.curvlib-explorer input[type=range]'),
                visible: el.matches(':focus-visible'), outline: s.outlineStyle,
                width: parseFloat(s.outlineWidth), value: +el.value, max: +el.max}; }""")
    assert focused["range"], "Tab did not reach the widget's first slider"
    assert focused["visible"] and focused["outline"] != "none" and focused["width"] >= 2, focused
    img, out = root.locator("img.cx-frame"), root.locator("output").first
    before = img.get_attribute("src"), img.get_attribute("alt"), out.text_content()
    key = "ArrowRight" if focused["value"] < focused["max"] else "ArrowLeft"
    v.page.keyboard.press(key)
    after = img.get_attribute("src"), img.get_attribute("alt"), out.text_content()
    assert after[0] != before[0], "the arrow key did not change the figure"
    assert after[1] != before[1] and after[2] in after[1], (before[1], after[1])
    assert after[2] != before[2]
    assert not v.js_errors, v.js_errors


VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_the_edition_and_links_the_pdf(path):
    html = (SITE / path).read_text()
    assert f"Edition {VERSION}" in html
    links = re.findall(r'href="([^"]*_static/book\.pdf)"', html)
    assert links, f"{path} does not link the PDF"
    for link in links:
        assert (SITE / path).parent.joinpath(link).resolve() == (SITE / "_static" / "book.pdf")


@pytest.mark.parametrize("path", CHAPTERS)
def test_launch_buttons_use_the_repository_setting(path):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug = repo["url"].rstrip("/").removeprefix("https://github.com/")
    html = (SITE / path).read_text()
    notebook = path.removesuffix(".html") + ".ipynb"
    assert (f'href="https://mybinder.org/v2/gh/{slug}/{repo["branch"]}?urlpath=lab/tree/'
            f'{notebook}"') in html
    assert (f'href="https://colab.research.google.com/github/{slug}/blob/{repo["branch"]}/'
            f'{notebook}"') in html


@pytest.mark.parametrize("path", MATH_PAGES)
def test_math_is_typeset(loaded, path):
    result = loaded(path)["math"]
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
            # the alternative text names the frame shown: "label = value" of this control
            shown = ctrl.evaluate("el => el.parentNode.querySelector('span').textContent + "
                                  "' = ' + (el.tagName === 'SELECT' ? "
                                  "el.options[el.selectedIndex].text : "
                                  "el.parentNode.querySelector('output').textContent)")
            assert shown in img.get_attribute("alt"), (shown, img.get_attribute("alt"))
            assert img.evaluate("el => el.complete && el.naturalWidth > 0")
            assert move(False) == first, "moving back did not restore the first frame"
    assert not v.js_errors, v.js_errors


def test_next_and_previous_links_walk_the_book(browser, base_url):
    """From the intro, "next" visits every page of _toc.yml in order; "previous" goes back."""
    toc = (ROOT / "_toc.yml").read_text()
    expected = ["index"] + re.findall(r"file:\s*(\S+)", toc)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # only the links matter here: skip images, fonts, scripts and styles to keep the walk quick
    context.route("**/*", lambda route: route.abort()
                  if route.request.resource_type in ("image", "font", "media", "script", "stylesheet")
                  else route.continue_())
    page = context.new_page()
    try:
        page.goto(base_url + "index.html", wait_until="domcontentloaded")
        seen = [urlsplit(page.url).path]
        for _ in expected[1:]:
            with page.expect_navigation(wait_until="domcontentloaded"):
                page.locator("a.right-next").first.click()
            seen.append(urlsplit(page.url).path)
        assert [p.removeprefix("/").removesuffix(".html") for p in seen] == expected
        assert page.locator("a.right-next").count() == 0, "the last page has a next link"
        with page.expect_navigation(wait_until="domcontentloaded"):
            page.locator("a.left-prev").first.click()
        assert urlsplit(page.url).path.removesuffix(".html").endswith(expected[-2])
    finally:
        context.close()


def test_search_finds_the_hessian(visit, base_url):
    v = visit("index.html")
    v.page.locator("button.search-button-field:visible").first.click()
    box = v.page.locator("dialog input[name=q], .search-button__search-container input[name=q]")
    box.first.fill("Hessian")
    box.first.press("Enter")
    v.page.wait_for_url(re.compile(r"search\.html\?q=Hessian"))
    results = v.page.locator("#search-results li")
    results.first.wait_for()
    # Sphinx fills the list progressively and writes its summary when it is done;
    # the order among chapters is its own scoring, so ask only that chapters are found.
    v.page.locator("#search-results p.search-summary").wait_for()
    v.page.wait_for_function(
        "document.querySelector('#search-results p.search-summary').textContent.trim().length > 0")
    assert results.count() >= 2
    hrefs = results.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    chapters = [h for h in hrefs if re.search(r"chapters/\d\d_", h)]
    assert len(chapters) >= 3, hrefs
    assert not v.js_errors, v.js_errors
