"""Chapter 1's algorithm cells (Newton with a line search, with damping) equal curvlib's Newton."""
import numpy as np
import pytest

from curvlib import minimize
from curvlib.landscapes import Beale, LogisticRegression, Rosenbrock, Saddle
from curvlib.quasi_newton import newton_direction
from notebook_cells import algorithm_namespace, cell_function_lengths

NOTEBOOK = "01_fundamental_question.ipynb"


@pytest.fixture(scope="module")
def cells():
    return algorithm_namespace(NOTEBOOK)


def test_the_cells_define_short_functions():
    lengths = cell_function_lengths(NOTEBOOK)
    assert {"descent_direction", "newton_line_search", "newton_damped"} <= set(lengths)
    assert all(3 <= n <= 25 for n in lengths.values()), lengths


def problems():
    prob = LogisticRegression.breast_cancer(1e-2)
    yield "rosenbrock", (f := Rosenbrock()), f.grad, f.hess, np.array(f.start)
    yield "beale", (f := Beale()), f.grad, f.hess, np.array(f.start)
    yield "saddle", (f := Saddle()), f.grad, f.hess, np.array(f.start)   # indefinite Hessian
    yield "logistic", prob, prob.grad, prob.hess, np.zeros(prob.X.shape[1])


@pytest.mark.parametrize("name, f, grad, hess, x0", list(problems()), ids=lambda v: v if isinstance(v, str) else "")
def test_line_search_cell_equals_curvlib(cells, name, f, grad, hess, x0):
    ours = cells["newton_line_search"](f, grad, hess, x0, steps=60)
    ref = minimize(f, x0, jac=grad, hess=hess, method="newton", maxiter=60, gtol=1e-12,
                   line_search_fn="backtracking").path
    assert ours.shape == ref.shape and len(ours) > 2
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("name, f, grad, hess, x0", list(problems()), ids=lambda v: v if isinstance(v, str) else "")
def test_damped_cell_equals_curvlib(cells, name, f, grad, hess, x0):
    ours = cells["newton_damped"](f, grad, hess, x0, steps=60)
    ref = minimize(f, x0, jac=grad, hess=hess, method="newton", maxiter=60, gtol=1e-12,
                   damping=1.0, adaptive_damping=True).path
    assert ours.shape == ref.shape and len(ours) > 2
    np.testing.assert_array_equal(ours, ref)


def test_descent_direction_points_downhill_and_equals_curvlib(cells):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    H = Q @ np.diag([-2.0, -0.1, 0.5, 1.0, 3.0]) @ Q.T   # indefinite
    g = rng.normal(size=5)
    d = cells["descent_direction"](g, H)
    assert g @ d < 0
    np.testing.assert_array_equal(d, newton_direction(g, H, 0.0, positive_definite=True)[0])
    # positive definite: the plain Newton direction, untouched
    A = Q @ np.diag([0.5, 1.0, 2.0, 3.0, 4.0]) @ Q.T
    np.testing.assert_allclose(cells["descent_direction"](g, A), -np.linalg.solve(A, g), rtol=1e-12)


def test_an_edited_cell_would_be_caught(cells):
    """The comparison is sharp: Armijo with c1 = 0.5 instead of 1e-4 gives another path."""
    f = Rosenbrock()
    x0 = np.array(f.start)
    edited = cells["newton_line_search"](f, f.grad, f.hess, x0, steps=60, c1=0.5)
    ref = minimize(f, x0, method="newton", maxiter=60, gtol=1e-12, line_search_fn="backtracking").path
    assert edited.shape != ref.shape or not np.array_equal(edited, ref)
