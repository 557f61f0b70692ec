"""Tests for tools/robustness.py (the comparator, on synthetic notebooks) and tools/numerics.py."""
import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import numerics  # noqa: E402
import robustness as rb  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

def test_numbers_and_words():
    assert rb.split_numbers("97.2 ± 0.5 % (lr 0.1)") == ("# ± # % (lr #)", ["97.2", "0.5", "0.1"])
    assert rb.split_numbers("25,557,032 and −1.5e-03") == ("# and #", ["25,557,032", "−1.5e-03"])
    assert rb.split_numbers("ch04 64->32") == ("ch04 #->#", ["64", "32"])
    assert not rb.is_sentence("0.003 to 0.03") and not rb.is_sentence("2.61 PB")
    assert rb.is_sentence("loss bounces without progress") and rb.is_sentence("yes, for SGD")
    assert rb.is_decision("ch06_lr_shampoo") and rb.is_decision("ch05_n_neg")
    assert rb.is_decision("ch05_warm_fail04_0") and rb.is_decision("minibatch_unit_step_diverged_of_3")
    assert rb.is_decision("tuned lr") and not rb.is_decision("ch8_w_adam")
    assert not rb.is_decision("ch04_slope_nag")


@pytest.mark.parametrize("old, new, name, fails", [
    ("0.3", "1", "ch06_lr_shampoo", True),            # a tuned hyperparameter
    ("2", "1", "ch05_warm_fail04_0", True),           # a count of failures
    ("loss bounces (spread 13%)", "loss at 72% of its start", "ch09_raw_diag", True),
    ("97.2 ± 0.5", "97.1 ± 0.5", "ch05_acc", False),  # a plain number: reported
    ("97.2 ± 0.5", "97.1", "ch05_acc", True),         # the form of the quote changed
    ("0.37", "0.34", "ch8_w_rms", False),
    ("97.7 ± 0.4 % (lr 0.1)", "97.5 ± 0.4 % (lr 0.1)", "ch05_sched", False),  # same words
    ("97.7 ± 0.4 % (lr 0.1)", "97.7 ± 0.4 % (lr 0.3)", "ch05_sched", True),   # a chosen lr
    ("lr = 0.01, λ = 0.0001", "lr = 0.01, λ = 0.001", "ch05_setting", True),
])
def test_compare_value(old, new, name, fails):
    d = rb.compare_value("nb", "glue", name, old, new, decision=rb.is_decision(name))
    assert d.fails is fails
    if not fails:
        assert "changed by" in d.note and "no tolerance declared" in d.note


def test_decision_numbers():
    assert rb.decision_numbers("# ± # % (lr #)") == [2]
    assert rb.decision_numbers("peak lr #: # → #") == [0]
    assert rb.decision_numbers("lr = #, λ = #") == [0, 1]
    assert rb.decision_numbers("spread #% over the last # steps") == []


def test_compare_value_equal_is_no_difference():
    assert rb.compare_value("nb", "glue", "ch06_lr_shampoo", "0.3", "0.3", decision=True) is None


def test_relative_change():
    assert rb.relative_change(["0.37"], ["0.34"]) == pytest.approx(0.03 / 0.37)
    assert rb.relative_change(["1", "2"], ["1"]) is None
    assert rb.relative_change(["0"], ["1e-16"]) == float("inf")


def test_quotes_with_declared_tolerances():
    old = {"acc": {"value": 0.960, "text": "0.960", "tol": 0.01},
           "lr": {"value": 0.3, "text": "0.3", "tol": None},
           "curve": {"value": [1.0, 2.0], "text": "1, 2", "tol": 0.1}}
    new = {"acc": {"value": 0.955, "text": "0.955", "tol": 0.01},
           "lr": {"value": 1.0, "text": "1", "tol": None},
           "curve": {"value": [1.0, 2.5], "text": "1, 2.5", "tol": 0.1}}
    got = {d.name: d for d in rb.compare_quotes("nb", old, new)}
    assert not got["acc"].fails and "within the declared tol 0.01" in got["acc"].note
    assert got["lr"].fails and "no tolerance declared" in got["lr"].note
    assert got["curve"].fails and "2 moved to 2.5, beyond the declared tol 0.1" in got["curve"].note
    rel = rb.compare_quotes("nb", {"w": {"value": 0.37, "text": "0.37", "rtol": 0.05}},
                            {"w": {"value": 0.34, "text": "0.34", "rtol": 0.05}})
    assert rel[0].fails and "beyond the declared rtol 0.05" in rel[0].note
    rel = rb.compare_quotes("nb", {"w": {"value": 0.37, "text": "0.37", "rtol": 0.1}},
                            {"w": {"value": 0.34, "text": "0.34", "rtol": 0.1}})
    assert not rel[0].fails
    missing = rb.compare_quotes("nb", {"a": {"value": 1, "text": "1", "tol": None}}, {})
    assert missing[0].fails
    assert rb.compare_quotes("nb", old, old) == []


# ---------------------------------------------------------------------------------------------
# Notebooks
# ---------------------------------------------------------------------------------------------

def _glue(name, text):
    return nbformat.v4.new_output("display_data", {"application/papermill.record/text/plain": repr(text)},
                                  metadata={"scrapbook": {"name": name,
                                                          "mime_prefix": "application/papermill.record/"}})


def _notebook(lr="0.3", acc="0.960", rows=("Shampoo", "K-FAC"), diag="still falling", timing="1.0 s",
              stderr="warning"):
    table = "| method | tuned lr | test accuracy |\n|:---|---:|---:|\n" + "\n".join(
        f"| {m} | {lr if m == 'Shampoo' else '0.03'} | {acc} |" for m in rows)
    cells = [nbformat.v4.new_markdown_cell("(ch06-x)=\n# x"),
             nbformat.v4.new_code_cell("glue", outputs=[_glue("ch06_lr_shampoo", lr),
                                                         _glue("ch06_acc_shampoo", acc),
                                                         _glue("ch09_diag", diag)]),
             nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
                 "execute_result", {"text/markdown": table, "text/plain": "<Markdown>"}, execution_count=1)]),
             nbformat.v4.new_code_cell("print", outputs=[
                 nbformat.v4.new_output("stream", name="stdout", text=f"best: {rows[0]} at {acc}\n"),
                 nbformat.v4.new_output("stream", name="stderr", text=stderr)]),
             nbformat.v4.new_code_cell("time", outputs=[nbformat.v4.new_output(
                 "stream", name="stdout", text=timing)])]
    cells[-1].metadata["tags"] = ["nbval-ignore-output"]
    return nbformat.v4.new_notebook(cells=cells)


def _by_name(diffs):
    return {(d.kind, d.name): d for d in diffs}


def test_identical_notebooks_have_no_differences():
    assert rb.compare_notebook("nb", _notebook(), _notebook()) == []


def test_notebook_flips_are_mismatches_and_rounding_is_reported():
    old = _notebook()
    new = _notebook(lr="1", acc="0.952", diag="loss bounces without progress", timing="9 s",
                    stderr="another warning")
    got = _by_name(rb.compare_notebook("nb", old, new))
    assert got["glue", "ch06_lr_shampoo"].fails
    assert got["glue", "ch09_diag"].fails
    assert not got["glue", "ch06_acc_shampoo"].fails           # no tolerance declared: reported
    assert got["output", "cell 2 [Shampoo | tuned lr]"].fails  # a decision column
    assert not got["output", "cell 2 [Shampoo | test accuracy]"].fails
    assert not got["output", "cell 3"].fails                    # stdout: same words, a number moved
    assert not any("cell 4" in name for _, name in got)         # nbval-ignore-output
    assert all("stderr" not in d.old for d in got.values())


def test_a_ranking_that_changes_order_is_a_mismatch():
    got = rb.compare_notebook("nb", _notebook(), _notebook(rows=("K-FAC", "Shampoo")))
    assert any(d.fails and "method" in d.name for d in got)
    assert any(d.fails and d.name == "cell 3" for d in got)     # "best: K-FAC" in the printed text


def test_quoted_names_are_not_compared_twice():
    diffs = rb.compare_notebook("nb", _notebook(), _notebook(lr="1"), quoted={"ch06_lr_shampoo"})
    assert ("glue", "ch06_lr_shampoo") not in _by_name(diffs)


def test_structure_changes_are_mismatches():
    old, new = _notebook(), _notebook()
    new.cells.append(nbformat.v4.new_code_cell("extra"))
    assert rb.compare_notebook("nb", old, new)[-1].fails
    new = _notebook()
    new.cells[1].outputs.pop(0)
    assert _by_name(rb.compare_notebook("nb", old, new))["glue", "ch06_lr_shampoo"].fails


def test_results_decision_keys_exact_measurements_reported():
    old = {"best_lr": {"SGD": 3.0}, "acc": [97.1, 0.4], "note": "ok", "warmup_failures_of_5": {"0": 2}}
    new = {"best_lr": {"SGD": 1.0}, "acc": [97.0, 0.4], "note": "ok", "warmup_failures_of_5": {"0": 1}}
    got = _by_name(rb.compare_results("nb", old, new))
    assert got["result", "best_lr.SGD"].fails
    assert got["result", "warmup_failures_of_5.0"].fails
    assert not got["result", "acc.0"].fails
    assert ("result", "note") not in got


def test_compare_reads_quotes_files_and_notebooks(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for d, lr, q in ((old, "0.3", 0.96), (new, "1", 0.955)):
        (d / "results").mkdir(parents=True)
        nbformat.write(_notebook(lr=lr), d / "06_x.ipynb")
        (d / "results" / "06_x.quotes.json").write_text(json.dumps(  # curvbook.quotes' format
            {"chapter": "06_x", "quotes": {"ch06_acc_shampoo": {"value": q, "text": f"{q:.3f}", "tol": 0.01}}}))
    diffs = rb.compare(old, new, ["06_x"], verdicts=False)
    got = _by_name(diffs)
    assert got["glue", "ch06_lr_shampoo"].fails
    assert not got["quote", "ch06_acc_shampoo"].fails
    assert ("glue", "ch06_acc_shampoo") not in got               # the quote replaces the glue value
    text = rb.render(diffs)
    assert text.splitlines()[2].split()[:3] == ["06_x", "glue", "ch06_lr_shampoo"]  # failures first
    assert "2 must-match value(s) differ" in rb.summary(diffs)  # the glue value and the table cell


def test_markdown_table_parsing():
    header, rows = rb.markdown_table("| a | b \\| c |\n|:---|---:|\n| 1 | 2 |")
    assert header == ["a", "b \\| c"] and rows == [["1", "2"]]
    assert rb.markdown_table("not | a table") is None


def test_regimes():
    assert rb.regime_env("native")["ATEN_CPU_CAPABILITY"] is None
    assert rb.regime_env("perturbed")["ATEN_CPU_CAPABILITY"] == "default"
    with pytest.raises(ValueError, match="regime"):
        rb.regime_env("fast")
    env = rb.kernel_env("/tmp/w", "perturbed")
    assert env["OMP_NUM_THREADS"] == "1" and env["CURVBOOK_RESULTS"] == "/tmp/w/chapters/results"
    assert env["CURVLIB_EXPLORER_PICTURES"] == "0"   # text is compared, pictures are not drawn


# ---------------------------------------------------------------------------------------------
# tools/numerics.py
# ---------------------------------------------------------------------------------------------

def test_pinned_and_perturbed_settings_differ_where_it_matters():
    pinned, perturbed = numerics.pinned_env(), numerics.perturbed_env()
    assert pinned["PYTHONHASHSEED"] == perturbed["PYTHONHASHSEED"] == "0"
    assert perturbed["ATEN_CPU_CAPABILITY"] == "default"
    if numerics.is_x86() and numerics.has_avx2():
        assert pinned["ATEN_CPU_CAPABILITY"] == "avx2"
        dispatch = numerics.numpy_simd()[0]
        assert set(pinned["NPY_DISABLE_CPU_FEATURES"].split()) == set(numerics.above_avx2(dispatch))
        assert set(perturbed["NPY_DISABLE_CPU_FEATURES"].split()) == set(dispatch)
        # every name is one this numpy knows (an unknown one only warns, and pins nothing)
        assert set(pinned["NPY_DISABLE_CPU_FEATURES"].split()) <= set(dispatch)


def test_above_avx2():
    assert numerics.above_avx2(["X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR"]) == [
        "X86_V4", "AVX512_ICL", "AVX512_SPR"]
    assert numerics.above_avx2(["SSE41", "AVX2", "FMA3", "AVX512F", "AVX512_SKX"]) == ["AVX512F", "AVX512_SKX"]
    assert numerics.above_avx2(["ASIMDHP", "ASIMDDP"]) == []


def test_options_before_the_command_only():
    assert numerics.parse(["--perturbed", "--", "python", "x.py"]) == (True, ["python", "x.py"])
    assert numerics.parse(["--", "python", "x.py", "--perturbed"]) == (False, ["python", "x.py", "--perturbed"])
    assert numerics.parse([]) == (False, [])
