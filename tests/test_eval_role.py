"""The site's ``{eval}`` role (tools/curvlib_book.py): committed values, never keys.

A small Sphinx project with myst-nb and the book's role is built from a notebook whose Markdown
cells carry ``metadata.user_expressions`` in jupyterlab-myst's format."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / "tools")!r})
import curvlib_book
extensions = ["myst_nb"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
exclude_patterns = ["_build"]
def setup(app):
    app.add_role("eval", curvlib_book.eval_role, override=True)
    app.add_transform(curvlib_book.HoistQuoteBlocks)
"""


def ok(expression, **data):
    return {"expression": expression,
            "result": {"status": "ok", "metadata": {}, "data": data}}


def build(tmp_path, markdown_cells):
    """Build index.ipynb made of a code cell and ``markdown_cells`` (source, expressions)."""
    from sphinx.cmd.build import build_main
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Page")]
    code = nbformat.v4.new_code_cell("q = ...")
    code.execution_count = 1
    nb.cells.append(code)
    for source, exprs in markdown_cells:
        cell = nbformat.v4.new_markdown_cell(source)
        if exprs is not None:
            cell.metadata["user_expressions"] = exprs
        nb.cells.append(cell)
    nbformat.write(nb, src / "index.ipynb")
    warnings = tmp_path / "warnings.txt"
    status = build_main([str(src), str(out), "-b", "html", "-W", "--keep-going", "-q", "-E",
                         "-w", str(warnings)])
    body = (out / "index.html").read_text() if (out / "index.html").exists() else ""
    body = body[body.find('<h1'):body.find('<footer')] if '<h1' in body else body
    return status, body, warnings.read_text() if warnings.exists() else ""


def test_committed_values_render_as_text_tables_as_tables(tmp_path):
    table = "| peak lr | failures |\n|---|---|\n| 0.4 | 2 / 5 |"
    status, body, warnings = build(tmp_path, [
        ("The gap is {eval}`q.gap` and the word {eval}`q.word`.",
         [ok("q.gap", **{"text/plain": "0.006"}), ok("q.word", **{"text/plain": "'inside'"})]),
        ("```{admonition} Claim check\n:class: tip\n**We measured** {eval}`q.flips` flips.\n```",
         [ok("q.flips", **{"text/plain": "87"})]),
        ("Failures:\n\n{eval}`q.table`\n\nAfter.",
         [ok("q.table", **{"text/markdown": table, "text/plain": table})]),
    ])
    assert status == 0, warnings
    assert '<span class="quote">0.006</span>' in body
    assert '<span class="quote">inside</span>' in body  # the quotes of a str repr stripped
    assert re.search(r'admonition.*<span class="quote">87</span> flips', body, re.S)
    assert "<table" in body and "<p><div" not in body and not re.search(r"<p>[^<]*<table", body)
    assert "2 / 5" in body
    assert "q.gap" not in body and "q.table" not in body and "{eval}" not in body


def test_missing_or_failed_values_fail_the_build_and_never_show_the_key(tmp_path):
    status, body, warnings = build(tmp_path, [
        ("Never run: {eval}`q.missing`.", None),
        ("Failed: {eval}`q.bad`.",
         [{"expression": "q.bad", "result": {"status": "error", "ename": "AttributeError",
                                             "evalue": "no quote 'bad'", "traceback": []}}]),
        ("Stale: {eval}`q.renamed`.", [ok("q.old_name", **{"text/plain": "3"})]),
    ])
    assert status != 0
    assert "{eval}`q.missing`: no committed value in Markdown cell 2" in warnings
    assert "{eval}`q.bad`: its committed evaluation failed: AttributeError" in warnings
    assert "{eval}`q.renamed`: no committed value in Markdown cell 4" in warnings
    assert "q.missing" not in body and "q.bad" not in body and "q.renamed" not in body
    assert body.count("quote-missing") == 3


def test_a_block_value_inside_a_sentence_is_reported(tmp_path):
    table = "| a |\n|---|\n| 1 |"
    status, _, warnings = build(tmp_path, [
        ("Text before {eval}`q.table` and after.",
         [ok("q.table", **{"text/markdown": table, "text/plain": table})])])
    assert status != 0 and "must stand alone in its paragraph" in warnings


@pytest.mark.parametrize("line, index", [(10001, 0), (20001, 1), (29999, 1), (120005, 11)])
def test_line_numbers_map_to_cells_as_myst_nb_numbers_them(line, index):
    import curvlib_book
    assert curvlib_book._cell_index(nbformat.v4.new_notebook(), line) == index
