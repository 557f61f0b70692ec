"""Chapter 1 machinery: Newton vs gradient descent, the fast paths, the widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from curvlib import minimize  # noqa: E402
from curvbook import newton as nw  # noqa: E402
from curvlib.landscapes import LogisticRegression, Rosenbrock  # noqa: E402


# ------------------------------------------------------------------ fast paths = reference
@pytest.mark.parametrize("kappa, angle, lr", [(10, 0.0, 1.0), (100, 0.7, 1.0), (30, 1.2, 1.9)])
def test_closed_form_gd_equals_minimize(kappa, angle, lr):
    f = nw.quadratic(kappa, angle)
    ref = minimize(f, f.start, method="gd", lr=lr, maxiter=300, gtol=0.0).path
    fast = nw.gd_quadratic_path(f, f.start, lr, 300)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


def test_lean_gd_loop_equals_minimize_on_rosenbrock():
    f = Rosenbrock()
    ref = minimize(f, f.start, method="gd", lr=1e-3, maxiter=500, gtol=0.0).path
    fast = nw.gd_path(f.grad, f.start, 1e-3, 500)
    np.testing.assert_array_equal(fast, ref)


def test_gd_path_stops_at_tolerance_and_on_divergence():
    f = nw.quadratic(4)
    p = nw.gd_path(f.grad, f.start, 1.0, 10_000, x_star=f.minimum, tol=1e-3)
    assert np.linalg.norm(p[-1] - f.minimum) <= 1e-3 < np.linalg.norm(p[-2] - f.minimum)
    blow = nw.gd_path(f.grad, f.start, 2.5, 5000)  # lr*L = 2.5 > 2: diverges
    assert len(blow) < 5001 and np.all(np.isfinite(blow))


def test_diagonal_newton_closed_form_equals_the_loop():
    f = nw.quadratic(50, 0.6)
    D = np.diag(f.A)
    x = np.array(f.start, dtype=float)
    loop = [x]
    for _ in range(40):
        x = x - 0.9 * f.grad(x) / D
        loop.append(x)
    np.testing.assert_allclose(nw.diagonal_newton_quadratic_path(f, f.start, 40, lr=0.9),
                               np.array(loop), rtol=0, atol=1e-12)


def test_diagonal_newton_is_newton_on_axes_and_gd_at_45_degrees():
    r = nw.quadratic_race(100, 0.0)
    assert r["steps"]["diagonal Newton"] == 1
    r90 = nw.quadratic_race(100, math.pi / 2)
    assert r90["steps"]["diagonal Newton"] == 1
    f = nw.quadratic(100, math.pi / 4)
    diag = nw.diagonal_newton_quadratic_path(f, f.start, 50)
    gd = nw.gd_quadratic_path(f, f.start, nw.best_fixed_lr(f.eigenvalues), 50)
    np.testing.assert_allclose(diag, gd, rtol=0, atol=1e-12)
    # in between, rotation matters: more than one step, fewer than gradient descent
    r30 = nw.quadratic_race(100, math.pi / 6)
    assert 1 < r30["steps"]["diagonal Newton"] < r30["steps"]["gradient descent"]


def test_best_fixed_lr_is_the_two_dimensional_diagonal_newton_step():
    assert nw.best_fixed_lr([1.0, 3.0]) == pytest.approx(0.5)
    for angle in (0.1, 0.5, 1.0):
        s, lam, _ = nw._jacobi(nw.quadratic(37, angle).A)
        assert nw.best_fixed_lr(lam) == pytest.approx(1.0)


# ------------------------------------------------------------------ the claims of the chapter
@pytest.mark.parametrize("kappa", [1, 10, 100, 1000])
@pytest.mark.parametrize("angle", [0.0, math.pi / 5])
def test_newton_one_step_gd_about_half_kappa_log_steps(kappa, angle):
    r = nw.quadratic_race(kappa, angle, tol=1e-6)
    assert r["steps"]["Newton"] == 1
    e0 = np.linalg.norm(np.subtract(r["f"].start, r["f"].minimum))
    k = r["steps"]["gradient descent"]
    if kappa == 1:
        assert k == 1
    else:  # error ~ ((kappa - 1)/(kappa + 1))^t with the best fixed step 2/(L + mu)
        estimate = math.log(e0 / 1e-6) / math.log((kappa + 1) / (kappa - 1))
        assert 0.8 * estimate < k <= 1.01 * estimate + 2
        slow = nw.quadratic_race(kappa, angle, tol=1e-6, lr=1.0)["steps"]["gradient descent"]
        assert 1.7 * k < slow < 2.1 * k  # eta = 1/L needs about twice as many


def test_iteration_table_rows():
    rows = nw.iteration_table(kappas=(10, 100), angles=(0.0, math.pi / 6))
    assert [r["kappa"] for r in rows] == [10, 10, 100, 100]
    assert rows[2]["gd_steps"] > 8 * rows[0]["gd_steps"]
    assert all(r["newton_steps"] == 1 for r in rows)
    assert [r["diagonal_steps"] == 1 for r in rows] == [True, False, True, False]
    assert all(r["gd_steps_1_over_L"] > r["gd_steps"] for r in rows)


def test_gd_steps_grid_and_tuning_find_the_best_step():
    f = nw.quadratic(30, 0.4)
    grid = nw.lr_grid(0.1, 10.0)
    assert len(grid) == 33 and grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(10.0)
    t = nw.tune_gd(f.grad, f.start, f.minimum, 1e-6, grid, 5000)
    ratio = grid[1] / grid[0]
    assert not t["at_edge"]
    assert nw.best_fixed_lr(f.eigenvalues) / ratio**2 < t["lr"] < nw.best_fixed_lr(f.eigenvalues) * ratio
    # the count is the lean loop's count at that step
    path = nw.gd_path(f.grad, f.start, t["lr"], 5000, x_star=f.minimum, tol=1e-6)
    assert t["steps"] == len(path) - 1
    # a grid entirely below the best step is extended until the winner is inside
    t2 = nw.tune_gd(f.grad, f.start, f.minimum, 1e-6, nw.lr_grid(0.1, 0.3), 5000)
    assert not t2["at_edge"] and t2["grid"][-1] > 0.3 and t2["lr"] == pytest.approx(t["lr"])


def test_rosenbrock_newton_variants_beat_tuned_gd():
    r = nw.rosenbrock_race(gd_maxiter=40_000)
    newton = [v for k, v in r["steps"].items() if k.startswith("Newton")]
    assert all(s is not None and s < 60 for s in newton)
    gd = r["steps"]["gradient descent"]
    assert not r["gd_tuning"]["at_edge"]
    assert gd is not None and gd > 100 * max(newton)
    # the tuned step sits below the stability limit 2 / lambda_max at the minimum
    assert r["gd_tuning"]["lr"] < 2 / np.linalg.eigvalsh(r["f"].hess(np.array([1.0, 1.0]))).max()
    # the line search never increases f; the pure step does (it leaves the valley)
    f = r["f"]
    vals = f(r["paths"]["Newton + line search"])
    assert np.all(np.diff(vals) <= 1e-12)
    assert np.any(np.diff(f(r["paths"]["Newton (pure)"])) > 0)


def test_quadratic_convergence_digits_double():
    r = nw.logistic_race(tol=1e-6, gd_maxiter=20_000)
    rows = nw.digits_table(r["paths"]["Newton"], r["w_star"])
    digits = [row["digits"] for row in rows]
    # once 1 digit is right, each step at least ~doubles the count (quadratic convergence)
    late = [(a, b) for a, b in zip(digits, digits[1:]) if a >= 1]
    assert len(late) >= 2 and all(b >= 1.7 * a for a, b in late)
    assert max(digits) > 10
    ratios = [row["ratio"] for row in rows[1:]]
    assert max(ratios) < 5  # |e_k| / |e_{k-1}|^2 stays bounded
    slow_name, best_name = r["lrs"]
    slow, best = (f"gradient descent ({k})" for k in r["lrs"])
    assert r["steps"]["Newton"] < 15
    # the global bound L is pessimistic at the solution: 1/L is far slower than 2/(lmax+lmin)
    assert r["steps"][slow] > 10 * r["steps"][best] > 10 * r["steps"]["Newton"]
    assert r["lrs"][best_name] == pytest.approx(nw.best_fixed_lr(r["eigenvalues"]))


def test_newton_flops_count_hessians_gradients_and_trials():
    prob = LogisticRegression.breast_cancer(1e-2)
    w0 = np.zeros(prob.X.shape[1])
    # from w = 0 every line search accepts the full step at its first trial
    for k in (1, 3):
        assert nw.newton_flops(prob, w0, k) == k * (prob.flops_hessian + prob.flops_gradient
                                                    + prob.flops_value)
    assert nw.newton_flops(prob, w0, 0) == 0


def test_fair_count_newton_against_tuned_gd():
    rows = nw.newton_vs_gd(tols=(1e-3, 1e-9), seeds=(0, 1, 2))
    loose, tight = rows
    for r in rows:
        assert not r["lr_at_edge"] and len(r["gd_steps"]) == 3
        assert r["low"] <= r["ratio"] <= r["high"]
        assert r["verdict"] in ("Newton cheaper", "gradient descent cheaper", "inconclusive")
    # tuned GD is competitive: within a factor 3 either way, and Newton's edge grows with
    # the accuracy asked for (linear against quadratic convergence)
    assert 1 / 3 < loose["ratio"] < tight["ratio"] < 3
    assert loose["verdict"] == "gradient descent cheaper" and tight["verdict"] == "Newton cheaper"


def test_reference_minimum_polishes_past_an_armijo_stall(monkeypatch):
    # At the rounding floor Armijo's test can reject Newton's good full step (it did with
    # AVX-512 kernels, leaving the gradient at 2e-13): the reference must not depend on it.
    prob = LogisticRegression.breast_cancer(1e-2)
    w0 = np.zeros(prob.dim)
    good, bound = nw.reference_minimum(prob, w0)
    assert np.linalg.norm(prob.grad(good)) < 1e-15
    assert bound < 1e-14 * np.linalg.norm(good)
    stalled = good + 1e-11 * np.random.default_rng(0).standard_normal(prob.dim)
    run = nw._newton_run
    monkeypatch.setattr(nw, "_newton_run", lambda p, w, **kw: type(
        "R", (), {"x": stalled, "path": run(p, w, **kw).path})())
    assert np.linalg.norm(prob.grad(stalled)) > 1e-13
    w, b = nw.reference_minimum(prob, w0)
    assert np.linalg.norm(w - good) < 1e-14 * np.linalg.norm(good)
    assert b < 1e-14 * np.linalg.norm(good)
    # without polishing the stalled point's error bound is honest about it
    _, b_stalled = nw.reference_minimum(prob, w0, polish=0)
    assert b_stalled > 1e-12


def test_targets_below_the_reference_accuracy_are_refused():
    with pytest.raises(ValueError, match="tols"):
        nw.newton_vs_gd(tols=(1e-3, 1e-17), seeds=(0, 1))
    with pytest.raises(ValueError, match="tol"):
        nw.logistic_race(tol=1e-17)
    with pytest.raises(ValueError, match="polish"):
        nw.reference_minimum(LogisticRegression.breast_cancer(1e-2), np.zeros(31), polish=-1)


# ------------------------------------------------------------------ widget
def test_explorer_rotation_matters_and_frames_are_readable():
    e = nw.newton_explorer()
    assert all(len(v) >= 6 for v in e.controls.values())
    lo = e.set(kappa=1, angle=0)
    assert "gradient descent 1 step," in lo.text
    aligned = e.set(kappa=1000, angle=0)
    rotated = e.set(kappa=1000, angle=30)
    assert aligned.png != rotated.png and aligned.text != rotated.text
    assert "diagonal Newton 1 step" in aligned.text and "Newton 1 step" in rotated.text
    k_gd = int(rotated.text.split("gradient descent ")[1].split(" ")[0])
    k_diag = int(rotated.text.split("diagonal Newton ")[1].split(" ")[0])
    assert 1 < k_diag < k_gd and k_gd > 5000
    # the gradient descent count does not depend on the rotation, diagonal Newton's does
    assert f"gradient descent {k_gd} steps" in aligned.text
    assert not lo.diverged and not rotated.diverged
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(rotated.png)).size == (720, 360)
    # the live ipywidgets view follows the controls
    view = e.widget()
    before = e.image_widget.value
    e.control_widgets["angle"].value = 60
    assert e.image_widget.value != before and view is e.widget()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, exc, word", [
    (lambda: nw.quadratic(0.5), ValueError, "kappa"),
    (lambda: nw.gd_path(lambda x: x, [1.0], -1.0, 3), ValueError, "lr"),
    (lambda: nw.gd_quadratic_path(nw.quadratic(2), [1.0, 1.0], 0.1, -1), ValueError, "steps"),
    (lambda: nw.quadratic_race(10, tol=0), ValueError, "tol"),
    (lambda: nw.lr_grid(1.0, 0.5), ValueError, "high"),
    (lambda: nw.lr_grid(-1.0, 0.5), ValueError, "low"),
    (lambda: nw.tune_gd(lambda x: x, [1.0], [0.0], 1e-3, [0.1, 0.2], 10), ValueError, "lr_grid"),
    (lambda: nw.best_fixed_lr([0.0, 1.0]), ValueError, "eigenvalues"),
    (lambda: nw.diagonal_newton_quadratic_path(nw.quadratic(2), [1.0, 1.0], 3, lr=0), ValueError, "lr"),
    (lambda: nw.gd_steps_grid(lambda x: x, [1.0], [0.0], 1e-3, [0.1], 0), ValueError, "maxiter"),
])
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_logistic_race_reference_is_reference_minimum_of_its_own_newton_run():
    r = nw.logistic_race(tol=1e-3, gd_maxiter=5_000)
    w, bound = nw.reference_minimum(r["problem"], np.zeros(r["problem"].dim))
    assert np.array_equal(r["w_star"], w) and r["reference_error"] == bound
    # the Newton path it races is the run the reference was polished from
    assert np.linalg.norm(r["paths"]["Newton"][-1] - w) <= 1e-12 * np.linalg.norm(w)
