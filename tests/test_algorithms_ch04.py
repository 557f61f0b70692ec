"""Chapter 4's algorithm cells (the heavy ball, Nesterov) equal curvlib's implementation."""
import numpy as np
import pytest

from curvlib import minimize, rules
from curvlib.landscapes import Quadratic, Rosenbrock
from curvbook import momentum as mo
from notebook_cells import algorithm_cells, algorithm_namespace, cell_function_lengths

NOTEBOOK = "04_momentum.ipynb"


@pytest.fixture(scope="module")
def cells():
    return algorithm_namespace(NOTEBOOK)


def test_the_cells_define_short_functions():
    lengths = cell_function_lengths(NOTEBOOK)
    assert {"heavy_ball", "nesterov"} <= set(lengths)
    assert all(3 <= n <= 25 for n in lengths.values()), lengths


def _rules_path(grad, x0, lr, beta, steps, nesterov):
    """curvlib.rules.heavy_ball driven step by step, the gradient at the look-ahead for Nesterov."""
    x = np.array(x0, dtype=float)
    state = rules.init_heavy_ball(x)
    path = [x.copy()]
    for _ in range(steps):
        look = x - beta * state["velocity"] if nesterov else x
        rules.heavy_ball(x, grad(look), state, lr=lr, momentum=beta)
        path.append(x.copy())
    return np.array(path)


def problems():
    q = Quadratic(10, 0.4)
    r = Rosenbrock()
    yield "quadratic", q.grad, np.array(q.start), 0.05
    yield "rosenbrock", r.grad, np.array(r.start), 1e-4
    yield "lessard", mo.lessard_gradient, np.array([3.3]), 0.04


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov"])
@pytest.mark.parametrize("name, grad, x0, lr", list(problems()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_cell_equals_curvlib_rule(cells, method, name, grad, x0, lr):
    ours = cells[method](grad, x0, lr, beta=0.9, steps=150)
    ref = _rules_path(grad, x0, lr, 0.9, 150, nesterov=method == "nesterov")
    assert ours.shape == ref.shape == (151, len(x0))
    np.testing.assert_array_equal(ours, ref)
    # and the chapter's batched runner, which the experiments use
    np.testing.assert_array_equal(
        ours, mo.lecture_momentum(grad, x0, lr=lr, momentum=0.9, steps=150,
                                  nesterov=method == "nesterov")["x"])


@pytest.mark.parametrize("method", ["momentum", "nesterov"])
def test_cell_equals_curvlib_minimize_up_to_rounding(cells, method):
    """curvlib.minimize runs torch's form: the same iterates (for Nesterov, torch's parameter
    is the look-ahead point θ_t - β v_{t-1})."""
    f = Quadratic(10, 0.4)
    x0, lr, beta, steps = np.array(f.start), 0.05, 0.9, 120
    ref = minimize(f, x0, method=method, lr=lr, momentum=beta, maxiter=steps, gtol=0).path
    if method == "momentum":
        ours = cells["heavy_ball"](f.grad, x0, lr, beta=beta, steps=steps)
    else:
        ours = cells["nesterov"](f.grad, x0, lr, beta=beta, steps=steps)
        v = -np.diff(ours, axis=0)                       # v_t = θ_t - θ_{t+1}
        ours = np.vstack([ours[:1], ours[1:] - beta * v])  # θ_{t+1} - β v_t
    assert ref.shape == ours.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_an_edited_cell_would_be_caught(cells):
    """The comparison is sharp: Nesterov's gradient taken at θ_t instead of the look-ahead
    point is the heavy ball, and its path differs."""
    f = Quadratic(10, 0.4)
    x0 = np.array(f.start)
    hb = cells["heavy_ball"](f.grad, x0, 0.05, steps=50)
    nag = cells["nesterov"](f.grad, x0, 0.05, steps=50)
    assert np.abs(hb - nag).max() > 1e-3
