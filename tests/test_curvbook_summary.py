"""Tests for curvbook.summary (chapter 10)."""

import numpy as np
import pytest

from curvbook import summary as sm


def test_state_bytes_ordering_and_values():
    n = sm.DIGITS_MLP_PARAMS
    assert n == 2410
    b = {m: sm.state_bytes(m) for m in sm.METHODS}
    assert b["SGD"] == 0
    assert b["SGD+Momentum"] == 4 * n
    assert 2 * 4 * n <= b["Adam"] <= 2 * 4 * n + 16
    assert b["Newton"] == 4 * n * n
    assert b["SGD"] < b["SGD+Momentum"] < b["Adam"] < b["L-BFGS"] < b["Newton"]
    with pytest.raises(ValueError, match="method"):
        sm.state_bytes("KFAC")
    with pytest.raises(ValueError, match="n_params"):
        sm.state_bytes("Adam", 0)


def test_contraction_factor():
    path = np.array([[0.5 ** k, 0.0] for k in range(20)])
    assert sm.contraction_factor(path, [0.0, 0.0]) == pytest.approx(0.5)
    assert sm.contraction_factor([[1.0, 1.0], [0.0, 0.0]], [0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="path"):
        sm.contraction_factor([[1.0, 1.0]], [0.0, 0.0])


def test_quadratic_rates_match_theory():
    q = sm.quadratic_iterations(kappa=100.0)
    assert q["Newton"]["iterations"] == 1
    assert q["SGD"]["rho"] == pytest.approx(99 / 101, abs=1e-3)       # (kappa-1)/(kappa+1)
    assert q["SGD+Momentum"]["rho"] == pytest.approx(9 / 11, abs=0.02)  # (sqrt k-1)/(sqrt k+1)
    assert q["L-BFGS"]["iterations"] < q["SGD+Momentum"]["iterations"] < q["SGD"]["iterations"]
    assert all(v["converged"] for v in q.values())
    # a tenfold kappa costs gradient descent about ten times more iterations
    q10 = sm.quadratic_iterations(kappa=10.0)
    assert 5 < q["SGD"]["iterations"] / q10["SGD"]["iterations"] < 20
    with pytest.raises(ValueError, match="kappa"):
        sm.quadratic_iterations(kappa=-1.0)


def test_read_measured_missing_and_present():
    def missing(stem):
        raise FileNotFoundError(stem)
    m = sm.read_measured(missing)
    assert all(v is None for row in m.values() for v in row.values())
    fake = {"03_lbfgs_and_adam": {"iterations": {"Newton": 9, "GD": 5000, "Adam": 7,
                                                  "L-BFGS (m=10)": 61, "heavy ball": 33}},
            "04_momentum": {"rates": [{"kappa": 100.0, "gd_measured": 0.98, "heavy_ball_measured": 0.82}]},
            "08_empirical_evidence": {"speed_steps_mean": {"Adam": 30.0, "SGD": 31.0}}}
    m = sm.read_measured(lambda stem: fake[stem])
    assert m["Newton"]["ch3_iterations"] == 9 and m["SGD"]["ch4_rate_kappa100"] == 0.98
    assert m["Adam"]["ch8_steps_to_0.1"] == 30.0 and m["SGD+Momentum"]["ch8_steps_to_0.1"] is None
    rows = sm.comparison_table(kappa=10.0, load=lambda stem: fake[stem])
    assert [r["method"] for r in rows] == list(sm.LECTURE_TABLE)
    assert rows[0]["memory"] == "O(n^2)" and rows[-1]["state_bytes"] == 0
