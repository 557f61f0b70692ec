"""Tests for curvbook.claims: the formula checks, the records, the rules, boxes and table, and
the chapters' handwritten verdicts against the computed ones."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from curvbook import claims


def test_adam_lecture_form_is_uncorrected_adam():
    out = claims.adam_forms(steps=30, n=5)
    assert out["torch_vs_kingma"] < 1e-12                       # torch = Algorithm 1
    assert out["first_step_ratio"] == pytest.approx(0.1 / 0.001 ** 0.5, rel=1e-6)
    assert out["max_step_ratio"] >= out["first_step_ratio"]


def test_momentum_forms_match_torch():
    out = claims.momentum_forms(steps=40, n=5)
    assert out["classical_gap"] < 1e-12
    assert out["nesterov_lookahead_gap"] < 1e-12
    assert out["nesterov_theta_gap"] > 1e-3                     # a different sequence


def test_weight_decay_adds_twice_the_coefficient():
    out = claims.weight_decay_hessian(0.0005)
    assert out["hessian_diagonal"] == pytest.approx(0.001)
    assert out["hessian_off_diagonal"] == 0
    assert out["torch_equivalent_penalty"] == pytest.approx(0.00025)
    assert claims.weight_decay_hessian(0.1)["hessian_diagonal"] == pytest.approx(0.2)


def test_bfgs_inverse_check_satisfies_secant_and_inverts_direct_update():
    out = claims.bfgs_inverse_check(n=5, seed=3)
    assert out["secant_residual"] < 1e-10
    assert out["inverse_of_direct_residual"] < 1e-10
    assert out["min_eigenvalue"] > 0


def test_gradient_norm_growth_matches_theory():
    out = claims.gradient_norm_growth(lr=0.3, lam_max=10.0)
    assert out["measured"] == pytest.approx(out["theory"], rel=1e-6)
    assert out["theory"] == pytest.approx(2.0)


def test_memory_arithmetic():
    mem = claims.memory_arithmetic()
    assert mem["resnet50_params"] == 25_557_032
    assert mem["ratio_to_500tb"] == pytest.approx(25_557_032 ** 2 * 4 / 500e12)
    assert mem["memory_doubling"] == pytest.approx(4)
    assert mem["flops_doubling"] == pytest.approx(8, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# The records, the rules and the verdicts
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
RESULTS = CHAPTERS / "results"


def _markdown_cells(stem):
    nb = json.loads((CHAPTERS / f"{stem}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def test_records_are_complete_and_include_the_lectures_table_claims():
    recs = claims.load_claims()
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)) >= 46
    quotes = " ".join(r["quote"] for r in recs)
    assert "Accessibility: easy implementation and tuning" in quotes
    assert "use case: small batches" in quotes
    assert {r["rule"]["kind"] for r in recs} == set(claims.RULES)
    assert claims.VERDICTS == ("correct", "approximately right", "wrong", "inconclusive", "unsupported")


def test_every_record_links_to_a_section_label_of_its_chapter():
    for rec in claims.load_claims():
        text = "\n".join(_markdown_cells(rec["chapter"]))
        assert f"({rec['label']})=" in text, f"{rec['id']}: no label {rec['label']} in {rec['chapter']}"
        assert rec["label"] != f"ch{rec['chapter'][:2]}", f"{rec['id']} links to a whole chapter"


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.M))
    for rec in claims.load_claims():
        assert set(rec["cite"]) <= keys, f"{rec['id']}: unknown {set(rec['cite']) - keys}"


def test_verdicts_are_computed_from_the_committed_results():
    got = claims.verdicts(directory=RESULTS)
    assert set(got) == {r["id"] for r in claims.load_claims()}
    assert all(v["verdict"] in claims.VERDICTS for v in got.values())
    counts = claims.verdict_counts(directory=RESULTS)
    assert sum(counts.values()) == len(got)
    # the ones the issue named, decided by their rules
    assert got["adam-lr-range"]["verdict"] == "wrong"            # window 0.003-0.03 outside 1e-5..1e-3
    assert got["resnet50-500tb"]["verdict"] == "wrong"           # 5.2x off
    assert got["momentum-faster"]["verdict"] == "inconclusive"   # interval straddles 10-30%
    # one measurement for one claim: chapter 3's ratios, not a second run of its own
    r3 = json.loads((RESULTS / "03_lbfgs_and_adam.json").read_text())
    assert got["lbfgs-superlinear"]["values"]["r"] == r3["ratio_windows"]["L-BFGS (m=10)"]


def test_missing_results_fail_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="run its notebook"):
        claims.verdicts(directory=tmp_path)
    (tmp_path / "05_regularization.json").write_text("{}")
    with pytest.raises(KeyError, match="adam-lr-range"):
        claims.verdict("adam-lr-range", directory=tmp_path)


@pytest.mark.parametrize("value, verdict", [(32, "correct"), (16, "wrong"), (32.1, "wrong")])
def test_rule_arithmetic(value, verdict):
    rule = {"kind": "arithmetic", "value": "x", "claimed": 32, "rel": 1e-3}
    assert claims.rule_arithmetic(rule, {"x": value})[0] == verdict


@pytest.mark.parametrize("claimed, value, verdict", [
    (1, 0.95, "correct"), (1, 1.9, "approximately right"), (1, 0.5, "approximately right"),
    (1, 2.1, "wrong"), (1, 0.45, "wrong"), ([10, 100], 30, "correct"), ([10, 100], 5.5, "approximately right"),
    ([10, 100], 1.9, "wrong"), ([10, 100], 250, "wrong")])
def test_rule_ratio(claimed, value, verdict):
    assert claims.rule_ratio({"value": "x", "claimed": claimed}, {"x": value})[0] == verdict


@pytest.mark.parametrize("claimed, verdict", [(0.01, "correct"), ([0.003, 0.03], "correct"),
                                              ([1e-3, 1e-2], "approximately right"),
                                              (0.002, "approximately right"), (0.001, "wrong"),
                                              ([1e-5, 1e-3], "wrong"), (0.1, "wrong")])
def test_rule_window(claimed, verdict):
    rule = {"kind": "window", "window": "w", "claimed": claimed}
    assert claims.rule_window(rule, {"w": [0.003, 0.03]})[0] == verdict


@pytest.mark.parametrize("interval, verdict", [([12, 25], "correct"), ([-10, 20], "inconclusive"),
                                               ([-10, 5], "wrong"), ([31, 40], "wrong"),
                                               ([5, 40], "inconclusive")])
def test_rule_interval(interval, verdict):
    rule = {"kind": "interval", "interval": "ci", "claimed": [10, 30]}
    assert claims.rule_interval(rule, {"ci": interval})[0] == verdict


def test_rule_cited_needs_a_verdict_on_the_scale():
    assert claims.rule_cited({"verdict": "unsupported"}, {})[0] == "unsupported"
    with pytest.raises(ValueError, match="verdict"):
        claims.rule_cited({"verdict": "half right"}, {})


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 vs 48/80 -> 0.2 [0.0524, 0.3339]
    est, lo, hi = claims.newcombe(56, 70, 48, 80)
    assert est == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=5e-4)
    with pytest.raises(ValueError, match="k1, n1"):
        claims.newcombe(3, 2, 1, 2)


def test_paired_percent():
    est, lo, hi = claims.paired_percent([110, 120, 100], [100, 100, 100])
    assert lo < est < hi
    assert est == pytest.approx(100 * (math.exp(np.mean(np.log([1.1, 1.2, 1.0]))) - 1))
    est, lo, hi = claims.paired_percent([200, 200], [100, 100])
    assert est == lo == hi == pytest.approx(100)
    with pytest.raises(ValueError, match="paired"):
        claims.paired_percent([1, 2, 3], [1, 2])


def test_expressions_allow_arithmetic_only():
    m = {"a": [1, 2, 3], "d": {"k": 4.0}}
    assert claims._eval("a[-1] / d['k'] + max(a)", m) == pytest.approx(3.75)
    for bad in ("a.__class__", "__import__('os')", "b + 1", "[x for x in a]"):
        with pytest.raises((ValueError, KeyError)):
            claims._eval(bad, m)


def test_box_renders_the_computed_verdict_and_its_sources():
    text = claims.box("momentum-faster", directory=RESULTS).data
    assert text.startswith("```{admonition} Claim check:") and text.endswith("```")
    assert "**Verdict: inconclusive.**" in text
    assert "{cite}`kidambi2018insufficiency`" in text
    assert "*Rule (interval):*" in text
    # the chapter's own measurements of this run take precedence over the saved file
    r4 = json.loads((RESULTS / "04_momentum.json").read_text())
    r4["digits_steps_to_target"] = {"SGD": [125, 124, 126, 125], "SGD+momentum": [100, 100, 100, 100]}
    faster = claims.box("momentum-faster", directory=RESULTS, results={"04_momentum": r4}).data
    assert "**Verdict: correct.**" in faster
    with pytest.raises(KeyError, match="no claim"):
        claims.box("no-such-claim")
    with pytest.raises(TypeError, match="results"):
        claims.box("momentum-faster", results=[r4])


def test_table_and_boxes_render_from_the_same_records():
    table = claims.table(directory=RESULTS).data
    rows = table.splitlines()[2:]
    recs = claims.load_claims()
    assert len(rows) == len(recs)
    got = claims.verdicts(directory=RESULTS)
    for row, rec in zip(rows, recs):
        assert f"**{got[rec['id']]['verdict']}**" in row
        assert f"<{rec['label']}>`" in row
        assert f"**Verdict: {got[rec['id']]['verdict']}.**" in claims.box(rec["id"], directory=RESULTS).data
    # pipes inside a cell are escaped, so every row has the same number of columns
    assert len({line.replace("\\|", "").count("|") for line in table.splitlines()}) == 1


def test_scale_and_rules_are_listed_once():
    assert claims.scale_markdown().data.count("\n") == len(claims.VERDICTS) - 1
    rules = claims.rules_markdown().data
    assert all(f"`{kind}`" in rules for kind in claims.RULES)


# ---------------------------------------------------------------------------------------------
# Handwritten verdicts in the chapters agree with the computed ones
# ---------------------------------------------------------------------------------------------

def _prose_verdicts():
    """(chapter, label, verdict text) for every "**Verdict: ...**" in a markdown cell."""
    out = []
    for path in sorted(CHAPTERS.glob("[01][0-9]_*.ipynb")):
        label = None
        for text in _markdown_cells(path.stem):
            events = sorted([(m.start(), "label", m.group(1))
                             for m in re.finditer(r"\((ch\d\d-[\w-]+)\)=", text)]
                            + [(m.start(), "verdict", m.group(1))
                               for m in re.finditer(r"\*\*Verdict:\s*(.*?)\*\*", text, re.S)])
            for _, kind, value in events:
                if kind == "label":
                    label = value
                else:
                    out.append((path.stem, label, " ".join(value.split())))
    return out


#: chapter sections whose handwritten verdict differs from the computed one, until the chapter
#: is converted to claims.box (or its text follows the rule); strict: a fixed one must go
PENDING = {
}


@pytest.mark.parametrize("chapter, label, text", _prose_verdicts(),
                         ids=[f"{c[:2]}:{lab}" for c, lab, _ in _prose_verdicts()])
def test_prose_verdict_matches_the_computed_one(chapter, label, text, request):
    if label in PENDING:
        request.applymarker(pytest.mark.xfail(reason=PENDING[label], strict=True))
    records = [r for r in claims.load_claims() if r["label"] == label and r["chapter"] == chapter]
    assert records, f"{chapter}: a verdict under {label}, which no claim record links to"
    hits = [(text.find(v), v) for v in claims.VERDICTS if v in text]
    assert hits, f"{chapter} {label}: '{text[:60]}' uses no verdict of the scale {claims.VERDICTS}"
    prose = min(hits)[1]
    computed = {r["id"]: claims.verdict(r["id"], directory=RESULTS) for r in records}
    assert all(v == prose for v in computed.values()), f"{label}: prose '{prose}', computed {computed}"


@pytest.mark.parametrize("stem", ["01_fundamental_question", "02_computational_reality",
                                  "03_lbfgs_and_adam", "04_momentum", "05_regularization",
                                  "06_modern_innovations", "07_key_insight",
                                  "08_empirical_evidence", "09_bottom_line", "10_conclusion"])
def test_converted_chapter_has_no_handwritten_verdicts(stem):
    assert not [t for c, _, t in _prose_verdicts() if c == stem]
    nb = json.loads((CHAPTERS / f"{stem}.ipynb").read_text())
    assert not [c for c in nb["cells"] if c["cell_type"] == "markdown"
                and "{admonition} Claim check" in "".join(c["source"])]
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    ids = set()
    for source in sources:
        if "claims.box(" in source:   # one id, or a loop over a tuple of ids
            ids |= set(re.findall(r'box\("([\w-]+)"', source))
            ids |= {i for t in re.findall(r"for claim_id in \(([^)]*)\)", source)
                    for i in re.findall(r"[\'\"]([\w-]+)[\'\"]", t)}
    assert ids == {r["id"] for r in claims.load_claims() if r["chapter"] == stem}
