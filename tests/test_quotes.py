"""curvbook.quotes (the registry of quoted numbers), the {eval} scanner, run_notebooks' filling
of ``user_expressions`` and tools/glue_to_eval.py (the conversion from glue)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from curvbook import Quote, Quotes, power_of_ten, significant

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import evalroles  # noqa: E402
import glue_to_eval  # noqa: E402


# ------------------------------------------------------------------ the formatters
def test_power_of_ten_writes_superscript_exponents():
    assert power_of_ten(-15) == "10⁻¹⁵" and power_of_ten(3) == "10³" and power_of_ten(0) == "10⁰"
    assert power_of_ten(np.int64(-6)) == "10⁻⁶"
    for bad in (1.5, "3", True, None):
        with pytest.raises(TypeError, match="exponent"):
            power_of_ten(bad)


def test_significant_rounds_without_exponent_or_trailing_zeros():
    assert significant(251.3) == "250" and f"{251.3:.2g}" == "2.5e+02"
    assert significant(0.2349) == "0.23" and significant(27.0) == "27"
    assert significant(1.0) == "1" and significant(0.16) == "0.16"
    assert significant(np.float64(13.49), 3) == "13.5"
    for x, d in ((float("inf"), 2), (float("nan"), 2), ("1", 2), (1.0, 0), (1.0, 2.0)):
        with pytest.raises(ValueError, match="digits" if x == 1.0 else "x must"):
            significant(x, d)


# ------------------------------------------------------------------ the registry
def test_quote_displays_as_its_text_without_quotes():
    q = Quotes("04_momentum")
    q.add("flips", np.int64(87), "{:.0f}")
    q.add("phrase", "inside")
    assert repr(q.flips) == "87" and str(q.flips) == "87" and f"{q.flips}" == "87"
    assert repr(q.phrase) == "inside"  # not "'inside'"
    assert q["flips"] is q.flips and isinstance(q.flips, Quote)
    assert q.flips.value == 87 and q.flips._repr_markdown_() is None
    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(q.phrase)
    assert data == {"text/plain": "inside"}


def test_formats_templates_tuples_functions_and_markdown():
    q = Quotes("x")
    q.add("a", 3.14159, "{:.2f}")
    q.add("b", (10.4, 2.25), "{:.0f} ± {:.1f}")
    q.add("c", 2048, lambda n: f"{n / 1024:g} KiB")
    q.add("d", 1234567, "{:,}")
    q.add("e", 7)
    q.add("t", "| a |\n|---|\n| 1 |", markdown=True)
    assert [q[k].text for k in "abcde"] == ["3.14", "10 ± 2.2", "2 KiB", "1,234,567", "7"]
    assert q.t._repr_markdown_() == "| a |\n|---|\n| 1 |"
    assert q.keys() == ["a", "b", "c", "d", "e", "t"] and len(q) == 6 and "a" in q


def test_adding_again_replaces():
    q = Quotes("x")
    q.add("a", 1)
    q.add("a", 2)
    assert q.a.text == "2" and len(q) == 1


@pytest.mark.parametrize("key", ["", "1st", "with space", "class", "_private", "add", "save",
                                 "path", "keys", "chapter", 3])
def test_bad_keys_are_refused(key):
    with pytest.raises(ValueError, match="key"):
        Quotes("x").add(key, 1)


def test_bad_arguments_are_refused():
    q = Quotes("x")
    with pytest.raises(ValueError, match="chapter"):
        Quotes("")
    with pytest.raises(ValueError, match="fields"):
        q.add("a", (1, 2, 3), "{} {}")
    with pytest.raises(TypeError, match="fmt"):
        q.add("a", 1, 5)
    with pytest.raises(TypeError, match="str"):
        q.add("a", 1, lambda v: v)
    with pytest.raises(ValueError, match="empty"):
        q.add("a", "  ")
    with pytest.raises(ValueError, match="numeric"):
        q.add("a", "inside", tol=0.1)
    with pytest.raises(ValueError, match="tol"):
        q.add("a", 1.0, tol=-1)
    with pytest.raises(TypeError, match="rtol"):
        q.add("a", 1.0, rtol="5%")
    with pytest.raises(TypeError, match="markdown"):
        q.add("a", "x", markdown="yes")


def test_missing_quote_names_the_key_and_the_known_ones():
    q = Quotes("04_momentum")
    q.add("flips", 3)
    with pytest.raises(AttributeError, match="'flops'.*04_momentum.*flips"):
        q.flops
    with pytest.raises(KeyError, match="flops"):
        q["flops"]


def test_save_writes_values_texts_and_tolerances(tmp_path, monkeypatch):
    q = Quotes("04_momentum")
    q.add("rate", np.float64(0.8181), "{:.3f}", tol=0.002)
    q.add("grid", np.array([1.5, 2.0]), "{}", rtol=0.01)
    q.add("verdict", "inside")
    q.add("bad", float("nan"), "{}")
    q.add("t", "| a |", markdown=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CURVBOOK_RESULTS", raising=False)
    assert q.save() is None  # a cell ending in q.save() shows nothing
    data = json.loads((tmp_path / "results" / "04_momentum.quotes.json").read_text())
    assert data["chapter"] == "04_momentum"
    assert data["quotes"]["rate"] == {"value": 0.8181, "text": "0.818", "tol": 0.002}
    assert data["quotes"]["grid"] == {"value": [1.5, 2.0], "text": "[1.5 2. ]", "rtol": 0.01}
    assert data["quotes"]["verdict"] == {"value": "inside", "text": "inside"}
    assert data["quotes"]["bad"]["value"] == "nan"
    assert data["quotes"]["t"]["markdown"] is True
    with pytest.raises(ValueError, match="no quotes"):
        Quotes("empty").save(tmp_path)


# ------------------------------------------------------------------ finding {eval} roles
def test_expressions_are_found_where_jupyterlab_myst_finds_them():
    md = ("A {eval}`q.a` and `{eval}` in code, $x$ and {eval}`q.a`.\n\n"
          "```{admonition} Claim\n:class: tip\n**We** measured {eval}`q.b`.\n\n"
          "| x | y |\n|---|---|\n| {eval}`q.c` | 1 |\n```\n\n"
          "```python\n{eval}`q.not_code`\n```\n\n:::{note}\n{eval}`q.d`\n:::\n")
    assert evalroles.expressions(md) == ["q.a", "q.a", "q.b", "q.c", "q.d"]


# ------------------------------------------------------------------ run_notebooks
def _run(tmp_path, cells):
    import run_notebooks
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    run_notebooks.execute(path, timeout=120)
    return nbformat.read(path, as_version=4)


def test_run_notebooks_stores_each_markdown_cells_results_as_jupyterlab_does(tmp_path, capsys):
    nb = _run(tmp_path, [
        nbformat.v4.new_code_cell('from curvbook import Quotes\nq = Quotes("t")\n'
                                  'q.add("a", 3.14159, "{:.2f}")'),
        nbformat.v4.new_markdown_cell("Pi is about {eval}`q.a`; below, {eval}`q.b`."),
        nbformat.v4.new_code_cell('q.add("b", 2.0, "{:.1f}")'),
        nbformat.v4.new_markdown_cell("Then {eval}`q.b`, and {eval}`q.b`."),
        nbformat.v4.new_markdown_cell("No role."),
    ])
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    ok = {"status": "ok", "metadata": {}}
    pi = {"expression": "q.a", "result": {**ok, "data": {"text/plain": "3.14"}}}
    two = {"expression": "q.b", "result": {**ok, "data": {"text/plain": "2.0"}}}
    assert md[0].metadata["user_expressions"] == [pi, two]
    assert md[1].metadata["user_expressions"] == [two, two]
    assert "user_expressions" not in md[2].metadata
    # the expressions take no execution count: nbval's comparison is unaffected
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]
    # "Run All" in JupyterLab reaches q.b before the cell that adds it: reported
    out = capsys.readouterr().out
    assert "cell 2 quotes {eval}`q.b` before the cell that computes it" in out
    assert "q.a" not in out


def test_a_quote_not_yet_added_reads_the_committed_file_unless_strict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CURVBOOK_RESULTS", raising=False)
    monkeypatch.delenv("CURVBOOK_QUOTES_STRICT", raising=False)
    done = Quotes("04_momentum")
    done.add("later", 0.8181, "{:.3f}", tol=0.01)
    done.save()
    live = Quotes("04_momentum")
    assert live.later.text == "0.818" and live.later.committed and live["later"].tol == 0.01
    assert "later" not in live and repr(live.later) == "0.818"
    live.add("later", 0.5, "{:.3f}")
    assert live.later.text == "0.500" and not live.later.committed
    with pytest.raises(AttributeError, match="never"):
        Quotes("04_momentum").never
    monkeypatch.setenv("CURVBOOK_QUOTES_STRICT", "1")
    with pytest.raises(AttributeError, match="later"):
        Quotes("04_momentum").later


def test_run_notebooks_stops_on_an_expression_that_fails(tmp_path):
    from nbclient.exceptions import CellExecutionError
    with pytest.raises(CellExecutionError, match=r"q\.missing"):
        _run(tmp_path, [
            nbformat.v4.new_code_cell('from curvbook import Quotes\nq = Quotes("t")'),
            nbformat.v4.new_markdown_cell("Here {eval}`q.missing`."),
        ])


# ------------------------------------------------------------------ the conversion
GLUE_SETUP = ('import numpy as np\nfrom myst_nb import glue\nfrom IPython.display import Markdown\n'
              '\n\ndef g(name, text):\n    glue(name, text, display=False)  # numbers quoted\n')
GLUE_CODE = ('x = 1234.5678\nsteps = {"gd": 7}\n'
             'g("ch04_x", f"{x:.1f}")\n'
             'g("ch04_x_big", f"{x:,.0f} steps")\n'
             'g("ch04_pair", f"{x:.0f} ± {x / 1e3:.2f}")\n'
             'g("ch04_gd", f"{steps[\'gd\']}")\n'
             'for k in (1, 2):\n    g(f"ch04_k_{k}", f"{k * x:.0f}")\n'
             'g("ch04_word", "big" if x > 1 else "small")\n'
             'g("ch04_500_n", str(500))\n'
             'g("ch04_hex", hex(255))\n'
             'g("ch04_table", Markdown("| a |\\n|---|\\n| 1 |"))\n')
GLUE_MD = ("We got {glue:text}`ch04_x` ({glue:text}`ch04_x_big`), {glue:text}`ch04_pair`,\n"
           "{glue:text}`ch04_gd`, {glue:text}`ch04_k_1`, {glue:text}`ch04_k_2`, "
           "{glue}`ch04_word`, {glue:text}`ch04_500_n` and {glue:text}`ch04_hex`.\n\n"
           "```{glue:md} ch04_table\n:format: myst\n```\n")


def _glue_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(GLUE_SETUP), nbformat.v4.new_code_cell(GLUE_CODE),
                nbformat.v4.new_markdown_cell(GLUE_MD)]
    return nb


def test_conversion_rewrites_code_and_prose():
    nb = _glue_notebook()
    glue_to_eval.convert(nb, "04_momentum")
    setup, code, md = (c.source for c in nb.cells[:3])
    assert "myst_nb" not in setup and "def g" not in setup
    assert "from curvbook import Quotes" in setup and 'q = Quotes("04_momentum")' in setup
    for line in ['q.add("x", x, "{:.1f}")', 'q.add("x_big", x, "{:,.0f} steps")',
                 'q.add("pair", (x, x / 1e3), "{:.0f} ± {:.2f}")', 'q.add("gd", steps["gd"])',
                 'q.add(f"k_{k}", k * x, "{:.0f}")',
                 'q.add("word", "big" if x > 1 else "small")',
                 'q.add("ch04_500_n", 500)',  # "500_n" cannot be read as q.500_n
                 'q.add("hex", 255, hex)', 'q.add("table", "| a |\\n|---|\\n| 1 |", markdown=True)']:
        assert line in code, line
    assert "glue" not in md
    assert "{eval}`q.x` ({eval}`q.x_big`), {eval}`q.pair`" in md
    assert "{eval}`q.ch04_500_n`" in md and "{eval}`q.word`" in md
    assert "\n\n{eval}`q.table`\n" in md  # the directive becomes a paragraph of its own
    assert nb.cells[-1].source.startswith("q.save()")
    assert nb.cells[-1].metadata["tags"] == ["remove-cell"]


def test_conversion_is_idempotent_and_refuses_a_clashing_name():
    nb = _glue_notebook()
    glue_to_eval.convert(nb, "04_momentum")
    once = nbformat.writes(nb)
    glue_to_eval.convert(nb, "04_momentum")
    assert nbformat.writes(nb) == once
    clash = _glue_notebook()
    clash.cells.append(nbformat.v4.new_code_cell("q = 3"))
    with pytest.raises(glue_to_eval.ConversionError, match="'q'"):
        glue_to_eval.convert(clash, "04_momentum")


def test_converted_notebook_quotes_what_the_glued_one_showed(tmp_path):
    """Run the glue notebook, convert it (the committed glue values fill user_expressions),
    run the converted one: the kernel's results are the converter's, text for text."""
    from nbclient import NotebookClient
    glued = _glue_notebook()
    NotebookClient(glued, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    converted = nbformat.reads(nbformat.writes(glued), as_version=4)
    notes = glue_to_eval.convert(converted, "t")
    assert notes == []
    filled = converted.cells[2].metadata["user_expressions"]
    texts = {e["expression"]: e["result"]["data"]["text/plain"] for e in filled}
    assert texts["q.x"] == "1234.6" and texts["q.pair"] == "1235 ± 1.23"
    assert texts["q.hex"] == "0xff" and texts["q.word"] == "big"
    assert not any(o.get("metadata", {}).get("scrapbook")
                   for c in converted.cells for o in c.get("outputs", []))
    rerun = _run(tmp_path, converted.cells)
    md = next(c for c in rerun.cells if c.cell_type == "markdown")
    assert md.metadata["user_expressions"] == filled
    saved = json.loads((tmp_path / "results" / "t.quotes.json").read_text())
    assert saved["quotes"]["pair"]["value"] == [1234.5678, 1.2345678]
