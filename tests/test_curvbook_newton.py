"""Chapter 1 machinery: Newton vs gradient descent, the fast paths, the widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from curvlib import minimize  # noqa: E402
from curvbook import newton as nw  # noqa: E402
from curvlib.landscapes import Rosenbrock  # noqa: E402


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


# ------------------------------------------------------------------ the claims of the chapter
@pytest.mark.parametrize("kappa", [1, 10, 100, 1000])
@pytest.mark.parametrize("angle", [0.0, math.pi / 5])
def test_newton_one_step_gd_about_kappa_log_steps(kappa, angle):
    r = nw.quadratic_race(kappa, angle, tol=1e-6)
    assert r["steps"]["Newton"] == 1
    e0 = np.linalg.norm(np.subtract(r["f"].start, r["f"].minimum))
    k = r["steps"]["gradient descent"]
    if kappa == 1:
        assert k == 1
    else:  # error ~ (1 - 1/kappa)^t along the flat direction
        assert 0.8 * kappa * math.log(e0 / 1e-6) < k <= 1.01 * kappa * math.log(e0 / 1e-6) + 2


def test_iteration_table_rows():
    rows = nw.iteration_table(kappas=(10, 100), angles=(0.0,))
    assert [r["kappa"] for r in rows] == [10, 100]
    assert rows[1]["gd_steps"] > 8 * rows[0]["gd_steps"]
    assert all(r["newton_steps"] == 1 for r in rows)


def test_rosenbrock_newton_variants_beat_gd():
    r = nw.rosenbrock_race(gd_maxiter=40_000)
    newton = [v for k, v in r["steps"].items() if k.startswith("Newton")]
    assert all(s is not None and s < 60 for s in newton)
    gd = r["steps"]["gradient descent (lr=0.001)"]
    assert gd is not None and gd > 100 * max(newton)
    # the line search never increases f; the pure step does (it leaves the valley)
    f = r["f"]
    vals = f(r["paths"]["Newton + line search"])
    assert np.all(np.diff(vals) <= 1e-12)
    assert np.any(np.diff(f(r["paths"]["Newton (pure)"])) > 0)


def test_quadratic_convergence_digits_double():
    r = nw.logistic_race(tol=1e-6, gd_maxiter=20_000)
    rows = nw.digits_table(r["paths"]["Newton"], r["w_star"])
    digits = [row["digits"] for row in rows]
    # once 1 digit is right, each step at least ~doubles the count (quadratic convergence),
    # until round-off: w* itself is known to about 12 digits
    late = [(a, b) for a, b in zip(digits, digits[1:]) if 1 <= a < 10]
    assert len(late) >= 2 and all(b >= 1.7 * a for a, b in late)
    assert max(digits) > 10
    ratios = [row["ratio"] for prev, row in zip(rows, rows[1:]) if prev["digits"] < 10]
    assert max(ratios) < 5  # |e_k| / |e_{k-1}|^2 stays bounded
    assert r["steps"]["Newton"] < 15 and r["steps"]["gradient descent"] > 100 * r["steps"]["Newton"]
    assert r["flops"]["Newton"] < r["flops"]["gradient descent"]


# ------------------------------------------------------------------ widget
def test_explorer_extremes_change_the_output():
    e = nw.newton_explorer()
    lo = e.set(kappa=1, angle=0)
    hi = e.set(kappa=1000, angle=70)
    assert lo.png != hi.png and lo.text != hi.text
    assert "gradient descent (lr = 1/L) 1 step," in lo.text
    k = int(hi.text.split("1/L) ")[1].split(" ")[0])
    assert k > 5000 and "Newton 1 step" in hi.text
    assert not lo.diverged and not hi.diverged
    # the live ipywidgets view follows the controls
    view = e.widget()
    before = e.image_widget.value
    e.control_widgets["kappa"].value = 10
    assert e.image_widget.value != before and view is e.widget()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, exc, word", [
    (lambda: nw.quadratic(0.5), ValueError, "kappa"),
    (lambda: nw.gd_path(lambda x: x, [1.0], -1.0, 3), ValueError, "lr"),
    (lambda: nw.gd_quadratic_path(nw.quadratic(2), [1.0, 1.0], 0.1, -1), ValueError, "steps"),
    (lambda: nw.quadratic_race(10, tol=0), ValueError, "tol"),
])
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
