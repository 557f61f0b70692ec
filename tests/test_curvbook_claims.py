"""Tests for curvbook.claims: the formula checks, the links and the audit table."""
import json

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


def test_bfgs_inverse_update_satisfies_secant_and_inverts_direct_update():
    out = claims.bfgs_inverse_update(n=5, seed=3)
    assert out["secant_residual"] < 1e-10
    assert out["inverse_of_direct_residual"] < 1e-10
    assert out["min_eigenvalue"] > 0


def test_lbfgs_is_linear_where_newton_is_not():
    out = claims.lbfgs_rates()
    assert out["newton_iterations"] < out["lbfgs_iterations"]
    last_lbfgs = [r for r in out["lbfgs"] if r is not None][-1]
    last_newton = [r for r in out["newton"] if r is not None][-1]
    assert last_lbfgs > 0.1 > 1e-3 > last_newton


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


def test_section_link_checks_labels(tmp_path):
    (tmp_path / "03_lbfgs_and_adam.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["(ch03-claim-x)=\n", "## X"]}]}))
    assert claims.section_link(3, "ch03-claim-x", tmp_path) == "{ref}`ch. 3 <ch03-claim-x>`"
    assert claims.section_link(9) == "{doc}`ch. 9 <09_bottom_line>`"
    with pytest.raises(ValueError, match="label"):
        claims.section_link(3, "ch03-claim-missing", tmp_path)
    with pytest.raises(ValueError, match="chapter"):
        claims.section_link(11)


def _fake_checks():
    return {"adam": claims.adam_forms(steps=15, n=4), "momentum": claims.momentum_forms(steps=10, n=4),
            "weight_decay": claims.weight_decay_hessian(), "bfgs": claims.bfgs_inverse_update(),
            "lbfgs": {"lbfgs": [0.6, 0.5, None], "newton": [0.2, 1e-3, None], "lbfgs_iterations": 50,
                      "newton_iterations": 8, "edges": [1, 1e-2, 1e-4, 1e-6], "history_size": 10},
            "grad_norm": claims.gradient_norm_growth()}


def test_audit_rows_from_stored_results():
    rows = claims.audit(checks=_fake_checks())
    assert len(rows) >= 35
    assert all(r["verdict"] in claims.VERDICTS for r in rows)
    assert all(r["sources"] and r["link"] for r in rows)
    assert sum(claims.verdict_counts(rows).values()) == len(rows)
    table = claims.audit_table(rows).data
    assert table.count("\n") == len(rows) + 1
    # pipes inside a cell are escaped, so every row has the same number of columns
    assert len({line.replace("\\|", "").count("|") for line in table.splitlines()}) == 1


def test_audit_fails_loudly_on_missing_results(tmp_path):
    with pytest.raises(KeyError):
        claims.audit(results={"01": {}}, checks=_fake_checks())


def test_bad_input():
    with pytest.raises(ValueError, match="steps"):
        claims.adam_forms(steps=0)
    with pytest.raises(ValueError, match="lr"):
        claims.momentum_forms(lr=-1)
    with pytest.raises(ValueError, match="coefficient"):
        claims.weight_decay_hessian(coefficient=0)
    with pytest.raises(ValueError, match="history_size"):
        claims.lbfgs_rates(history_size=0)
