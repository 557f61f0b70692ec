"""Tests for curvbook.summary (chapter 10)."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from curvbook import claims, summary as sm
from curvlib.widgets import Explorer

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


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


def test_quadratic_task_has_the_stated_spectrum_and_gradient():
    t = sm.QuadraticTask(kappa=50.0, n=30)
    ev = np.linalg.eigvalsh(t.A)
    assert ev[0] == pytest.approx(1.0) and ev[-1] == pytest.approx(50.0)
    x = t.start(3)
    f, g = t(x)
    np.testing.assert_allclose(g, t.A @ x)
    assert f == pytest.approx(0.5 * x @ t.A @ x)
    np.testing.assert_array_equal(t.start(3), x)
    assert not np.allclose(t.start(4), x)
    with pytest.raises(ValueError, match="kappa"):
        sm.QuadraticTask(kappa=0.5)
    with pytest.raises(ValueError, match="n"):
        sm.QuadraticTask(n=1)


def test_tune_finds_an_interior_rate_and_widens_a_grid_that_is_too_narrow():
    t = sm.QuadraticTask(kappa=10.0, n=20)
    full = sm.tune(t, "SGD")
    assert not full["lr_at_edge"]
    # the optimal fixed step for gradient descent is 2 / (1 + kappa) = 0.18
    assert 0.05 < full["lr"] < 0.2
    narrow = sm.tune(t, "SGD", lrs=[0.01, 0.02])  # best at the upper end: the grid must grow
    assert narrow["lr"] > 0.02 and not narrow["lr_at_edge"]
    assert narrow["lr"] == full["lr"] and narrow["iterations"] == full["iterations"]
    hb = sm.tune(t, "SGD+Momentum")
    assert hb["momentum"] in sm.BETAS and hb["iterations"] < full["iterations"]
    with pytest.raises(ValueError, match="name"):
        sm.tune(t, "Newton")


def test_quadratic_study_rates_match_theory():
    s = sm.quadratic_study(kappa=100.0, n=60, seeds=(0, 1))
    assert list(s["Newton"]["iterations"]) == [1, 1]
    # Adam with a constant rate may miss the target from a start; the others may not
    assert all(v["converged"].all() for k, v in s.items() if k not in ("task", "Adam"))
    sq = 10.0
    # tuned on a grid, gradient descent contracts at best by (k-1)/(k+1), the heavy ball
    # about as fast as Polyak's (sqrt k - 1)/(sqrt k + 1)
    assert s["SGD"]["rho"].mean() >= 99 / 101 - 1e-3
    assert s["SGD+Momentum"]["rho"].mean() == pytest.approx((sq - 1) / (sq + 1), abs=0.05)
    it = {m: np.median(np.where(s[m]["converged"], s[m]["iterations"], np.inf)) for m in sm.METHODS}
    assert it["Newton"] < it["L-BFGS"] < it["SGD"] and it["SGD+Momentum"] < it["SGD"]
    adam = s["Adam"]["iterations"][s["Adam"]["converged"]]
    assert np.all(adam > it["SGD+Momentum"])  # where it arrives, Adam is slower than the heavy ball
    assert s["Adam"]["tuning"]["beta1"] in sm.BETAS and s["L-BFGS"]["tuning"] is None


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
    study = sm.quadratic_study(kappa=10.0, n=20, seeds=(0, 1))
    rows = sm.comparison_table(study, load=lambda stem: fake[stem])
    assert [r["method"] for r in rows] == list(sm.LECTURE_TABLE)
    assert rows[0]["memory"] == "O(n^2)" and rows[-1]["state_bytes"] == 0
    assert [r["tuned"] for r in rows] == [False, False, True, True, True]
    assert all(r["quad_reached"] <= r["quad_starts"] == 2 for r in rows)


def test_convergence_explorer_frames():
    ex = sm.convergence_explorer(kappas=(10, 100), memories=(1, 10), n=40, maxiter=300)
    assert isinstance(ex, Explorer)
    a, b = ex.set(kappa=10.0, m=1), ex.set(kappa=100.0, m=10)
    assert a.text != b.text and "Newton 1" in a.text
    full = sm.convergence_explorer.__defaults__
    assert all(len(v) >= 6 for v in full[:2]), "continuous sliders need at least 6 positions"


def test_chapter_10_renders_its_claims_from_the_records():
    nb = json.loads((CHAPTERS / "10_conclusion.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    ids = {m for src in code for m in re.findall(r'claims\.box\("([\w-]+)"', src)}
    assert ids == {r["id"] for r in claims.load_claims() if r["chapter"] == "10_conclusion"}
    text = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "**Verdict" not in text
