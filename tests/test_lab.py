"""The live notebook as a student meets it: JupyterLab with jupyterlab-myst, in Chromium.

A clean JupyterLab (``tools/lab.py``: free local port, no token, temporary per-user folders,
the venv's pinned kernel) serves a scratch copy of ``chapters/``. Chapter 1 (quick, with quoted
numbers and an Explorer) is opened:

* before it runs, its prose shows the committed numbers (from ``metadata.user_expressions``),
  its MyST renders (admonitions, math), and no ``{eval}`` expression shows as source;
* a copy with the committed numbers removed shows the expressions unevaluated; after
  Run > Run All Cells it has no error output, every quoted number is there, computed by the
  kernel, and moving an Explorer's slider changes its figure.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import lab  # noqa: E402

CHAPTER = "01_fundamental_question.ipynb"

# rendered Markdown cells: their text, and any {eval} expression left as source
# (jupyterlab-myst renders a Markdown cell into a ``.myst`` element beside the hidden editor)
PROSE_JS = """() => Array.from(document.querySelectorAll('.jp-MarkdownCell .myst'))
    .map(el => el.innerText).join('\\n')"""
UNEVALUATED_JS = """() => Array.from(document.querySelectorAll('.jp-MarkdownCell .myst code'))
    .map(el => el.textContent).filter(t => /^q(\\.|\\[)/.test(t))"""
EXPR_ERRORS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-MarkdownCell .myst [data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(e => e.textContent)"""


def quoted(nb):
    """{expression: committed text} of every text quote in the notebook's prose."""
    out = {}
    for cell in nb.cells:
        for e in cell.metadata.get("user_expressions", []) if cell.cell_type == "markdown" else []:
            data = e["result"].get("data", {})
            if "text/plain" in data and "text/markdown" not in data:
                out[e["expression"]] = data["text/plain"]
    return out


@pytest.fixture(scope="module")
def committed():
    nb = nbformat.read(ROOT / "chapters" / CHAPTER, as_version=4)
    texts = quoted(nb)
    assert len(texts) >= 10, f"{CHAPTER} quotes too few numbers for this test: {texts}"
    return nb, texts


@pytest.fixture(scope="module")
def served(tmp_path_factory, committed):
    """JupyterLab on a scratch copy of chapters/, plus a copy of the chapter whose committed
    numbers are removed (so only the kernel can make them appear)."""
    root = lab.copy_chapters(tmp_path_factory.mktemp("lab") / "chapters")
    nb = nbformat.read(root / CHAPTER, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("user_expressions", None)
    nbformat.write(nb, root / f"live_{CHAPTER}")
    with lab.running_lab(root) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    assert lab.CHROMIUM.exists(), "Chromium missing: apt-get install -y chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(lab.CHROMIUM), args=lab.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.js_errors, page.versions = [], []
    page.on("pageerror", lambda e: page.js_errors.append(str(e)))
    # webpack's module federation: an extension built for another JupyterLab says so here
    page.on("console", lambda m: "satisf" in m.text and page.versions.append(m.text))
    yield page
    context.close()


def prose_showing(page, texts, timeout=60_000):
    """The rendered prose once every one of ``texts`` is in it, or as it is after ``timeout``
    ms (the caller's assertion then names what is missing). jupyterlab-myst renders Markdown
    cells one by one, after the first math appears and slower on a busy machine: read too
    early, the prose lacks its later cells."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_function(f"(texts) => {{ const p = ({PROSE_JS})(); "
                               "return texts.every(t => p.includes(t)); }",
                               arg=list(texts), timeout=timeout, polling=500)
    except PlaywrightTimeout:
        pass
    return page.evaluate(PROSE_JS)


def distinctive(texts, prose_source):
    """Quoted texts that cannot appear in the prose by accident (not in its source)."""
    return {e: t for e, t in texts.items()
            if len(t) >= 3 and any(ch.isdigit() for ch in t) and t not in prose_source}


def test_committed_numbers_and_myst_render_before_the_notebook_runs(served, page, committed):
    nb, texts = committed
    lab.open_notebook(page, served, CHAPTER)
    # chapter 1's claim checks are code outputs now (claims.box); its prose has math from the top
    page.wait_for_selector(".jp-MarkdownCell .myst .katex", timeout=60_000)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    check = distinctive(texts, source)
    assert len(check) >= 5
    prose = prose_showing(page, check.values())
    missing = {e: t for e, t in check.items() if t not in prose}
    assert not missing, f"committed numbers not shown: {missing}"
    assert not page.evaluate(UNEVALUATED_JS), "expressions shown as source"
    assert "{glue" not in prose and "{eval}" not in prose and "{admonition}" not in prose
    assert page.locator(".jp-MarkdownCell .myst .katex").count() > 0  # math typeset
    assert "(ch01-" not in prose  # MyST labels are not text
    # the claim checks (claims.box: Markdown outputs with an admonition fence) render as boxes
    boxes = page.locator(".jp-OutputArea-output", has_text="Claim check")
    assert boxes.count() > 0
    assert boxes.locator("aside.myst-admonition").count() == boxes.count()
    assert "```" not in "".join(boxes.all_text_contents())
    assert not page.js_errors, page.js_errors
    assert not page.versions, f"extensions built for another JupyterLab: {page.versions[:3]}"


def test_run_all_computes_the_numbers_and_the_widget_responds(served, page, committed):
    nb, texts = committed
    lab.open_notebook(page, served, f"live_{CHAPTER}")
    # nothing committed: the expressions wait for the kernel
    page.wait_for_function(f"() => ({UNEVALUATED_JS})().length > 0", timeout=60_000)
    state = lab.run_all(page)
    assert not state["errors"], f"error outputs: {state['errors']}"
    assert state["unrun"] == 0 and state["code"] > 5
    page.wait_for_function(f"() => ({UNEVALUATED_JS})().length === 0", timeout=60_000)
    assert not page.evaluate(EXPR_ERRORS_JS), "an {eval} expression raised in the kernel"
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    check = distinctive(texts, source)
    prose = prose_showing(page, check.values())
    missing = {e: t for e, t in check.items() if t not in prose}
    assert not missing, f"numbers not computed into the prose: {missing}"
    handle, image = lab.slider_and_image(page)
    before, after = lab.move_slider(page, handle, image)
    assert before and after and before != after
    assert image.evaluate("el => el.complete && el.naturalWidth > 0")
    assert not page.js_errors, page.js_errors
