"""Chapter 3's algorithm cells, read from the notebook, against curvlib's implementations.

The cells tagged ``algorithm`` in ``chapters/03_lbfgs_and_adam.ipynb`` write out the BFGS
inverse update, the L-BFGS two-loop recursion, a whole L-BFGS run and Adam (with and without
bias correction). Each must compute what curvlib computes: ``curvlib.quasi_newton`` (the
two-loop recursion and the dense update), ``curvlib.minimize(method="lbfgs")`` and
``curvlib.rules.adam``.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from curvlib import minimize, quasi_newton, rules
from curvlib.landscapes import LogisticRegression, Rosenbrock
from curvbook import quasi_newton_adam as qa

NOTEBOOK = Path(__file__).resolve().parent.parent / "chapters" / "03_lbfgs_and_adam.ipynb"
NAMES = ("bfgs_inverse_update", "two_loop", "lbfgs", "adam_step")


def algorithm_cells(path=NOTEBOOK):
    """The sources of the notebook's cells tagged ``algorithm``, in order."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and "algorithm" in c.get("metadata", {}).get("tags", [])]


@pytest.fixture(scope="module")
def cells():
    namespace = {}
    for source in algorithm_cells():
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


def _adam_kwargs(beta1, beta2):
    return qa._adam_betas(beta1, beta2)


def _pairs(n=6, m=4, seed=0):
    """``m`` curvature pairs of an SPD quadratic (``y = A s``) and a gradient."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    A = B @ B.T + 0.5 * np.eye(n)
    S = [rng.standard_normal(n) for _ in range(m)]
    return A, S, [A @ s for s in S], rng.standard_normal(n)


def test_every_algorithm_is_a_short_cell():
    sources = algorithm_cells()
    defined = [name for name in NAMES if any(f"def {name}(" in s for s in sources)]
    assert defined == list(NAMES)
    for source in sources:
        body = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("import")]
        assert 5 <= len(body) <= 25, source


def test_bfgs_update_equals_curvlib_and_satisfies_the_secant_equation(cells):
    update = cells["bfgs_inverse_update"]
    reference = quasi_newton.bfgs_inverse_update
    A, S, Y, _ = _pairs()
    H = 0.3 * np.eye(6)
    for s, y in zip(S, Y):
        mine, theirs = update(H, s, y), reference(H, s, y)
        assert np.allclose(mine, theirs, rtol=1e-12, atol=1e-14)
        H = mine
        assert np.allclose(H @ y, s, rtol=1e-10)           # the secant equation
        assert np.allclose(H, H.T) and np.linalg.eigvalsh(H).min() > 0
    assert not np.allclose(update(H, S[0], Y[0]), H)       # an update changes the matrix


def test_two_loop_equals_curvlib_and_the_dense_matrix(cells):
    two_loop, update = cells["two_loop"], cells["bfgs_inverse_update"]
    A, S, Y, g = _pairs(n=8, m=5, seed=3)
    gamma = (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    rho = [1.0 / (y @ s) for s, y in zip(S, Y)]
    r = two_loop(g.copy(), S, Y, gamma)
    d = quasi_newton.two_loop_direction(g.copy(), S, Y, rho, gamma)  # curvlib returns -H g
    assert np.allclose(r, -d, rtol=1e-12, atol=1e-14)
    H = gamma * np.eye(8)
    for s, y in zip(S, Y):
        H = update(H, s, y)
    assert np.allclose(r, H @ g, rtol=1e-10)
    assert np.allclose(two_loop(g.copy(), [], [], 2.0), 2.0 * g)   # no pairs: H = gamma I
    assert not np.allclose(two_loop(g.copy(), S[::-1], Y[::-1], gamma), r)  # order matters


@pytest.mark.parametrize("m", [1, 5])
def test_lbfgs_cell_takes_curvlib_minimize_steps(cells, m):
    problem = LogisticRegression.breast_cancer(1e-3)
    path = cells["lbfgs"](problem.value_and_grad, problem.x0, m=m)
    ref = minimize(problem.value_and_grad, problem.x0, jac=True, method="lbfgs", history_size=m, gtol=1e-8)
    assert ref.success and path.shape == ref.path.shape
    assert np.max(np.abs(path - ref.path)) <= 1e-10 * np.max(np.abs(ref.path))
    f = Rosenbrock()
    vg = lambda x: (float(f(x)), f.grad(x))
    path = cells["lbfgs"](vg, np.array(f.start, dtype=float), m=m, gtol=1e-6)
    ref = minimize(f, f.start, method="lbfgs", history_size=m, gtol=1e-6)
    assert path.shape == ref.path.shape and np.allclose(path, ref.path, rtol=1e-9, atol=1e-12)
    assert np.allclose(path[-1], [1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("bias_correction", [True, False])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.99), (0.0, 0.9)])
def test_adam_step_equals_curvlib_rules_adam(cells, bias_correction, betas):
    adam_step = cells["adam_step"]
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal(7)
    theta, m, v = theta0.copy(), np.zeros(7), np.zeros(7)
    ref, state = theta0.copy(), rules.init_adam(theta0)
    for t in range(1, 60):
        grad = rng.standard_normal(7) + 0.5
        theta, m, v = adam_step(theta, grad, m, v, t, lr=0.01, beta1=betas[0], beta2=betas[1], eps=1e-8,
                                bias_correction=bias_correction)
        rules.adam(ref, grad, state, lr=0.01, eps=1e-8, bias_correction=bias_correction, **_adam_kwargs(*betas))
        assert np.allclose(theta, ref, rtol=1e-12, atol=1e-14)
        assert np.allclose(m, state["exp_avg"], rtol=1e-12) and np.allclose(v, state["exp_avg_sq"], rtol=1e-12)
    assert not np.allclose(theta, theta0)


def test_adam_step_forms_differ_by_the_closed_form_ratio(cells):
    adam_step = cells["adam_step"]
    g = np.array([1.0, -2.0, 0.5])
    zero = np.zeros(3)
    corrected = adam_step(zero, g, zero, zero, 1, lr=1e-3, eps=0.0)[0]
    lecture = adam_step(zero, g, zero, zero, 1, lr=1e-3, eps=0.0, bias_correction=False)[0]
    assert np.allclose(lecture / corrected, 0.1 / np.sqrt(0.001))
