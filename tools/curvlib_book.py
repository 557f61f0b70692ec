"""Sphinx extension for the book (loaded through ``_config.yml``'s ``local_extensions``).

1. Offline assets: MathJax, require.js and the ipywidgets HTML manager come from
   ``node_modules`` (``npm ci`` from the committed ``package-lock.json``; ``make book`` runs it)
   and are copied into ``_build/html/_static/vendor``. ``_config.yml`` points ``mathjax_path``
   and myst-nb's ``nb_ipywidgets_js`` there, so no page asks another host for anything.
2. Notebook errors fail the build: with ``execute_notebooks: off`` a committed error output
   would otherwise be published silently. Every notebook in the table of contents is checked
   for error outputs and unexecuted code cells; each problem is a Sphinx warning, which
   ``-W`` turns into a failed build.
3. sphinx-thebe (a Jupyter Book default) is stripped from the pages: there is no live-code
   button, and its loader names a CDN.
4. Pages whose widgets are all Explorers (shown through their kernel-free HTML) do not load
   the ipywidgets HTML manager: it would render nothing there.
5. The API page: the line ``<!-- curvlib-api -->`` in ``chapters/a2_api.md`` becomes one
   section with ``automodule`` per public module of ``curvlib`` (each ``curvlib/*.py`` not
   starting with ``_``), so the reference follows the library as it grows.
6. Accessibility: bibliography entries are list items of their ARIA list (see
   ``citation_roles``).
7. The edition: the version in ``pyproject.toml`` (the one place it is written; curvlib's
   ``__version__`` reads the same number) becomes Sphinx's ``release`` and appears in every
   page's footer, next to a link to the whole book as a PDF (``make pdf`` writes
   ``_static/book.pdf``).
8. Numbers in the prose: the MyST inline role ``{eval}`q.key` `` renders the value committed
   in its Markdown cell's ``metadata.user_expressions`` (jupyterlab-myst's format, filled by
   ``tools/run_notebooks.py``; see ``curvbook.quotes``). myst-nb's own ``eval`` role would
   need a kernel at build time; the book is never executed by the build. An expression with
   no committed value, or whose committed evaluation failed, is a warning (an error under
   ``-W``) and never renders its source text. A Markdown-valued result (a table) is parsed as
   MyST; a block result must stand alone in its paragraph, which it then replaces.
"""
from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

from evalroles import METADATA_KEY  # tools/ is on sys.path (local_extensions)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

# (source inside node_modules, destination inside _static/vendor)
ASSETS = [
    ("mathjax/es5", "mathjax"),
    ("requirejs/require.js", "require.js"),
    ("@jupyter-widgets/html-manager/dist", "html-manager"),
    ("axe-core/axe.min.js", "axe.min.js"),  # loaded by the browser tests only (tests/test_site.py)
]
# files of the html-manager's dist/ that pages never load
_SKIP = ("*.map", "embed.js", "libembed-amd.js", "*.LICENSE.txt", "index.js")


# Loaded between require.js and the HTML manager (see nb_ipywidgets_js in _config.yml). The
# manager finds its chunks and fonts through its AMD module URI, which require.js would
# otherwise resolve against the page's own directory.
REQUIRE_CONFIG = """\
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.require.config({paths: {"@jupyter-widgets/html-manager/dist": here + "html-manager"}});
})();
"""


def _sources():
    missing = [src for src, _ in ASSETS if not (ROOT / "node_modules" / src).exists()]
    if missing:
        raise ExtensionError(
            f"front-end assets missing from node_modules: {missing}. Run `npm ci` "
            "(`make book` does) so MathJax and the widget scripts are served from the site.")


def copy_assets(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    dest_root = Path(app.outdir) / "_static" / "vendor"
    for src, dest in ASSETS:
        src, dest = ROOT / "node_modules" / src, dest_root / dest
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(*_SKIP))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    (dest_root / "require-config.js").write_text(REQUIRE_CONFIG)


def drop_thebe(app, pagename, templatename, context, doctree):
    """Remove sphinx-thebe's scripts (a constant naming a CDN URL and its loader): the book
    has no live-code button, and a page should not even mention another host's script."""
    if "script_files" in context:
        context["script_files"] = [
            js for js in context["script_files"]
            if "thebe" not in str(getattr(js, "filename", "") or "")
            and "THEBE_JS_URL" not in str(getattr(js, "attributes", {}).get("body", ""))]


WIDGET_VIEW = 'type="application/vnd.jupyter.widget-view+json"'


def drop_unused_widget_manager(app, pagename, templatename, context, doctree):
    """Load require.js and the ipywidgets HTML manager (3.6 MB) only where a live widget view
    is shown. Explorer outputs show their kernel-free HTML instead, so a page whose only widgets
    are Explorers needs neither the manager nor the saved widget state."""
    if "script_files" not in context or WIDGET_VIEW in context.get("body", ""):
        return
    context["script_files"] = [
        js for js in context["script_files"]
        if not any(part in str(getattr(js, "filename", "") or "")
                   for part in ("vendor/require", "vendor/html-manager"))
        and getattr(js, "attributes", {}).get("type") != "application/vnd.jupyter.widget-state+json"]


_COLON = "\ue000"  # stands in for ":" while napoleon reads data docstrings


def hide_colons(app, what, name, obj, options, lines):
    """Napoleon reads a data docstring such as ``#: name -> loss(output, target): ...`` as
    "type: description" and cross-references the "type". Module constants in curvlib are
    documented in prose, so their colons are hidden from napoleon and restored after it."""
    if what in ("data", "attribute"):
        lines[:] = [line.replace(":", _COLON) for line in lines]


def restore_colons(app, what, name, obj, options, lines):
    if what in ("data", "attribute"):
        lines[:] = [line.replace(_COLON, ":") for line in lines]


def check_notebooks(app):
    """Warn (so ``-W`` fails the build) about error outputs and unexecuted cells."""
    for path in sorted(Path(app.srcdir).glob("chapters/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        rel = path.relative_to(app.srcdir)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if cell.get("execution_count") is None:
                logger.warning(f"{rel}: code cell {i} was never executed; run `make notebooks`",
                               location=str(rel.with_suffix("")))
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    logger.warning(f"{rel}: code cell {i} raised {out.get('ename')}: "
                                   f"{out.get('evalue')}", location=str(rel.with_suffix("")))


API_MARKER = "<!-- curvlib-api -->"


def _module_sections(package):
    parts = []
    modules = [p for p in (ROOT / package).iterdir()
               if p.suffix == ".py" or (p / "__init__.py").is_file()]
    for path in sorted(modules):
        if path.name.startswith("_"):
            continue
        name = f"{package}.{path.stem}"
        # eval-rst: autodoc writes reStructuredText, which MyST would read as Markdown
        parts.append(f"### `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n"
                     f"   :members:\n```\n")
    return parts


def api_markdown():
    """MyST text documenting every public module of curvlib, then of the book package."""
    parts = _module_sections("curvlib")
    parts += ["## curvbook: the chapters' own code\n",
              "`curvbook` holds each chapter's experiments, figures, explorers and claim "
              "records. It imports curvlib; curvlib never imports it.\n",
              "```{eval-rst}\n.. automodule:: curvbook\n   :members:\n```\n"]
    parts += _module_sections("curvbook")
    return "\n".join(parts)


def insert_api(app, docname, source):
    """Replace the marker of the API page with the generated module sections."""
    if API_MARKER in source[0]:
        source[0] = source[0].replace(API_MARKER, api_markdown())


def api_outdated(app, env, added, changed, removed):
    """Re-read the API page on every build: its content comes from curvlib's docstrings."""
    return ["chapters/a2_api"] if "chapters/a2_api" in env.all_docs else []


def book_version():
    """The edition: ``project.version`` of ``pyproject.toml``."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


PDF = "_static/book.pdf"  # written by tools/book_pdf.py (`make pdf`)


def set_release(app, config):
    config.release = config.version = book_version()


def edition_footer(app, pagename, templatename, context, doctree):
    """Footer of every page: the edition, a link to the PDF, then ``html.extra_footer``."""
    pdf = context["pathto"](PDF, 1)
    edition = (f'<p class="curvlib-edition">Edition {app.config.release} · '
               f'<a href="{pdf}">the whole book as a PDF</a></p>')
    extra = context.get("theme_extra_footer") or ""
    if extra and not extra.lstrip().startswith("<"):
        extra = f"<p>{extra}</p>"
    context["theme_extra_footer"] = edition + extra


def citation_roles(app, pagename, templatename, context, doctree):
    """The bibliography is an ARIA list (docutils writes ``role="list"``) whose entries carry
    the deprecated ``role="doc-biblioentry"``, which is no list item: screen readers then see a
    list without items (axe: aria-required-children, critical). Entries become list items."""
    if 'role="doc-biblioentry"' in context.get("body", ""):
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')
class quote_block(nodes.General, nodes.Element):
    """Block content (a Markdown table) returned by the inline ``eval`` role; hoisted out
    of its paragraph by :class:`HoistQuoteBlocks` before anything is written."""


_QUOTED = re.compile(r"^([\"'])(.*)\1$")  # jupyterlab-myst strips these around text/plain


def _cell_index(notebook, line):
    """The notebook cell a source line belongs to (myst-nb numbers cell k's lines from
    (k + 1) * 10000 + 1, or from ``metadata.source_map`` for text notebooks)."""
    smap = notebook.metadata.get("source_map")
    if smap:
        starts = [i for i, start in enumerate(smap) if start + 1 <= line]
        return starts[-1] if starts else None
    return (line - 1) // 10000 - 1


def eval_role(name, rawtext, text, lineno, inliner, options=None, content=()):
    """``{eval}`expr` ``: the committed result of ``expr`` in this Markdown cell."""
    document = inliner.document
    source, line = inliner.reporter.get_source_and_line(lineno)
    expr = text.strip()

    def fail(msg):
        logger.warning(f"{{eval}}`{expr}`: {msg}", location=(source, line))
        return [nodes.inline("", "??", classes=["quote-missing"])], []

    renderer = document.get("nb_renderer")
    if renderer is None:
        return fail("only notebooks (executed by tools/run_notebooks.py) can quote values")
    notebook = renderer.renderer.nb_client.notebook
    index = _cell_index(notebook, line or 0)
    if index is None or not 0 <= index < len(notebook.cells) \
            or notebook.cells[index].cell_type != "markdown":
        return fail(f"cannot tell which Markdown cell line {line} is in")
    cell = notebook.cells[index]
    entries = [e for e in cell.metadata.get(METADATA_KEY, [])
               if str(e.get("expression", "")).strip() == expr]
    if not entries:
        return fail(f"no committed value in Markdown cell {index}: run the notebook with "
                    "tools/run_notebooks.py (make notebooks)")
    result = entries[-1].get("result", {})
    if result.get("status") != "ok":
        return fail(f"its committed evaluation failed: {result.get('ename')}: "
                    f"{result.get('evalue')}")
    data = result.get("data", {})
    if "text/markdown" in data:
        holder = nodes.Element()
        md = renderer.renderer
        with md.current_node_context(holder):
            md.nested_render_text(str(data["text/markdown"]), lineno)
        children = list(holder.children)
        if len(children) == 1 and isinstance(children[0], nodes.paragraph):
            return list(children[0].children), []
        return [quote_block("", *children)], []
    if "text/plain" not in data:
        return fail(f"committed result has no text/plain or text/markdown: {sorted(data)}")
    value = _QUOTED.sub(r"\2", str(data["text/plain"]))
    return [nodes.inline(value, value, classes=["quote"])], []


class HoistQuoteBlocks(SphinxTransform):
    """A paragraph holding only a block quote (a table) is replaced by the block."""

    default_priority = 200

    def apply(self, **kwargs):
        for block in list(self.document.findall(quote_block)):
            para = block.parent
            others = [c for c in para.children
                      if c is not block and not (isinstance(c, nodes.Text) and not c.strip())]
            if isinstance(para, nodes.paragraph) and not others:
                para.replace_self(block.children)
            else:
                logger.warning("a Markdown block quoted with {eval} must stand alone in its "
                               "paragraph", location=block.parent)
                block.replace_self(block.children)


def setup(app):
    _sources()
    app.connect("config-inited", set_release)
    # after myst-nb (an extension listed earlier), whose own `eval` role needs a live kernel
    app.add_role("eval", eval_role, override=True)
    app.add_transform(HoistQuoteBlocks)
    app.connect("builder-inited", check_notebooks)
    app.connect("html-page-context", edition_footer)
    app.connect("html-page-context", citation_roles)
    app.connect("build-finished", copy_assets)
    app.connect("html-page-context", drop_thebe)
    app.connect("html-page-context", drop_unused_widget_manager)
    app.connect("source-read", insert_api)
    app.connect("autodoc-process-docstring", hide_colons, priority=400)    # napoleon: 500
    app.connect("autodoc-process-docstring", restore_colons, priority=600)
    app.connect("env-get-outdated", api_outdated)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
