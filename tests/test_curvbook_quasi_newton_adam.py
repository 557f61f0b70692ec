"""Chapter 3's machinery: BFGS and the two-loop recursion, the races, Adam's bias, the widgets."""
import math

import numpy as np
import pytest

from curvbook import quasi_newton_adam as q
from curvlib.landscapes import LogisticRegression


@pytest.fixture(scope="module")
def problem():
    return LogisticRegression.breast_cancer(1e-3)


def test_bfgs_update_satisfies_the_secant_equation():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((6, 6))
    A = A @ A.T + np.eye(6)
    s = rng.standard_normal(6)
    y = A @ s
    H = q.bfgs_inverse_update(np.eye(6), s, y)
    assert np.allclose(H @ y, s)                      # H_{k+1} y_k = s_k
    assert np.allclose(H, H.T)
    assert np.linalg.eigvalsh(H).min() > 0
    with pytest.raises(ValueError, match="curvature condition"):
        q.bfgs_inverse_update(np.eye(6), s, -y)
    with pytest.raises(ValueError, match="n x n"):
        q.bfgs_inverse_update(np.eye(5), s, y)


def test_two_loop_equals_explicit_inverse(problem):
    c = q.two_loop_check(problem, history_size=5, maxiter=30)
    assert c["iterations_compared"] >= 20
    assert c["max_relative_difference"] < 1e-10
    assert c["explicit_bytes"] == 8 * problem.dim ** 2


def test_full_batch_race_orders_the_methods(problem):
    race = q.full_batch_race(problem, maxiter=2500)
    nit = {k: r.nit for k, r in race.items()}
    assert race["Newton"].success and race["L-BFGS (m=10)"].success
    assert nit["Newton"] < nit["L-BFGS (m=10)"] < 100 < nit["Adam"]
    assert not race["GD"].success  # GD at 1/L needs tens of thousands of steps
    total, rate = q.extrapolated_iterations(race["GD"], race["L-BFGS (m=10)"].error[-1])
    assert total > 2500 and 0.99 < rate < 1
    # Newton: the error ratio collapses; L-BFGS (m=10): it stays roughly constant (linear)
    newton = q.ratio_by_window(race["Newton"].path, problem.minimum, ((1e-1, 1e-8),))[0]
    lbfgs = q.ratio_by_window(race["L-BFGS (m=10)"].path, problem.minimum)
    assert newton < 0.1
    assert all(0.5 < r < 0.95 for r in lbfgs)


def test_history_size_helps(problem):
    rows = q.history_sweep(problem, sizes=(1, 50))
    assert rows[1]["nit"] < rows[0]["nit"] and all(r["success"] for r in rows)
    with pytest.raises(ValueError, match="sizes"):
        q.history_sweep(problem, sizes=(0,))


def test_error_ratios_of_a_geometric_sequence():
    path = 0.5 ** np.arange(10)[:, None] * np.ones((1, 3))
    ratios, e = q.error_ratios(path, np.zeros(3))
    assert np.allclose(ratios, 0.5)
    assert q.ratio_by_window(path, np.zeros(3), ((10, 1e-1), (1e-1, 1e-6)))[0] == pytest.approx(0.5)


def test_minibatch_lbfgs_is_sensitive_to_batch_size(problem):
    full = q.stochastic_lbfgs(problem, problem.n_samples, lr=1.0, epochs=10)
    assert full["diverged_at"] is None and full["gaps"][-1] < full["gaps"][0] < 1
    for seed in range(3):  # batches of 8 with the unit step: blown up, or far off the minimum
        small = q.stochastic_lbfgs(problem, 8, lr=1.0, epochs=3, seed=seed)
        assert small["diverged_at"] is not None or small["gaps"][-1] > 1.0
    adam = q.stochastic_adam(problem, 8, lr=0.03, epochs=3)
    assert adam["diverged_at"] is None
    with pytest.raises(ValueError, match="batch_size"):
        q.stochastic_lbfgs(problem, 10_000)
    with pytest.raises(ValueError, match="lr"):
        q.stochastic_adam(problem, 8, lr=-1)


def test_minibatch_grid_shape(problem):
    g = q.minibatch_grid(problem, batch_sizes=(32, 426), lrs=(1.0, 0.1), epochs=2, seeds=(0,))
    for v in g["methods"].values():
        assert v["gap"].shape == (2, 2)
    assert np.isfinite(g["methods"]["Adam"]["gap"]).all()


def test_bias_correction_ratio_matches_the_closed_form():
    b = q.bias_correction_ratio(steps=300)
    assert b["first"] == pytest.approx(math.sqrt(1000) / 10, rel=1e-9)
    assert np.allclose(b["measured"], b["formula"], rtol=1e-9)
    assert b["argmax"] == 12 and 6 < b["max"] < 7
    with pytest.raises(ValueError, match="beta2"):
        q.bias_correction_ratio(beta2=1.0)


def test_adam_is_a_diagonal_preconditioner():
    r = q.preconditioning_race(kappas=(10, 1000), steps=800)
    aligned, rotated = r["steps"][("Adam", "axis-aligned")], r["steps"][("Adam", "rotated")]
    assert aligned[0] == aligned[1]                  # kappa does not matter on the axes
    assert rotated[1] > 1.3 * aligned[1]             # it does once the axes are turned
    assert r["jacobi"]["axis-aligned"] == pytest.approx([1.0, 1.0])
    assert r["jacobi"]["rotated"][1] > 100
    with pytest.raises(ValueError, match="kappa"):
        q.quadratic_problem(4, 0.5, True)


def test_state_bytes_measured_against_formula():
    rows = {r["method"].split(" (")[0]: r for r in q.state_bytes_rows(hidden=8)}
    n = rows["SGD"]["n_params"]
    assert rows["SGD"]["measured_bytes"] == 0
    assert rows["SGD+Momentum"]["measured_bytes"] == 4 * n
    assert abs(rows["Adam"]["measured_bytes"] - 8 * n) <= 16
    assert abs(rows["L-BFGS"]["measured_bytes"] - rows["L-BFGS"]["formula_bytes"]) <= 4 * 22
    assert rows["Newton"]["measured_bytes"] == 4 * n * n


def test_comparison_table(problem):
    race = q.full_batch_race(problem, maxiter=300)
    rows = q.comparison_rows(race, q.state_bytes_rows(hidden=8), problem)
    assert [r["method"] for r in rows] == ["Newton", "L-BFGS", "Adam", "SGD+Momentum", "SGD"]
    md = q.comparison_markdown(rows)
    assert "Superlinear" in md and "> 300" in md


def test_adam_explorer_extremes():
    e = q.adam_explorer(steps=60)
    lo = e.set(lr=0.01, beta1=0.0, beta2=0.9)
    hi = e.set(lr=0.3, beta1=0.9, beta2=0.999)
    assert lo.text != hi.text and lo.png != hi.png


def test_lbfgs_explorer_extremes():
    e = q.lbfgs_history_explorer(sizes=(1, 50), l2s=(1e-2, 1e-4))
    a = e.set(m=1, l2=1e-2)
    b = e.set(m=50, l2=1e-4)
    assert a.text != b.text and a.png != b.png
    assert "m=1" in a.text and "m=50" in b.text
