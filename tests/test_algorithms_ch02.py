"""Chapter 2's algorithm cells: the Hessian-vector product, conjugate gradients and the
Hessian-free Newton step, against curvlib's hvp, dense linear algebra and curvbook's reference."""
import math

import numpy as np
import pytest
import torch

from curvlib import curvature
from curvbook import hessian_cost as hc
from notebook_cells import algorithm_namespace, cell_function_lengths

NOTEBOOK = "02_computational_reality.ipynb"


@pytest.fixture(scope="module")
def cells():
    return algorithm_namespace(NOTEBOOK, extra={"torch": torch, "math": math})


def test_the_cells_define_short_functions():
    lengths = cell_function_lengths(NOTEBOOK)
    assert {"hvp", "conjugate_gradient", "hessian_free_step"} <= set(lengths)
    assert all(3 <= n <= 25 for n in lengths.values()), lengths


def test_hvp_cell_equals_curvlib_and_the_dense_hessian(cells):
    f, w = hc.mlp_hessian_problem(3, n_samples=32, seed=1)
    H = curvature.hessian(f, w)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(w.numel(), generator=gen, dtype=w.dtype)
        ours = cells["hvp"](f, w, v)
        torch.testing.assert_close(ours, curvature.hvp(f, w, v), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ours, H @ v, rtol=1e-10, atol=1e-12)
    assert torch.equal(cells["hvp"](f, w, v), hc.hvp(f, w, v))


def test_hvp_cell_on_a_quadratic_is_exact(cells):
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([0.3, -0.7], dtype=torch.float64)
    v = torch.tensor([1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(cells["hvp"](lambda x: 0.5 * x @ A @ x + x.sum(), w, v), A @ v)


def spd(n, seed, low=0.1, high=10.0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.linspace(low, high, n, dtype=torch.float64)) @ Q.T


def test_conjugate_gradient_cell_solves_spd_systems(cells):
    A = spd(30, 0)
    b = torch.arange(30, dtype=torch.float64) - 10
    x, r, products = cells["conjugate_gradient"](lambda v: A @ v, b, torch.zeros(30, dtype=torch.float64), 200)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(r, b - A @ x, rtol=1e-6, atol=1e-9)
    assert products <= 60  # exact arithmetic needs at most n = 30
    # a warm start costs one product for its residual; from the answer one more ends it
    x2, _, p2 = cells["conjugate_gradient"](lambda v: A @ v, b, x, 200, tol=1e-6)
    assert p2 == 2 and torch.allclose(x2, x)
    # identical to the reference in curvbook, product for product
    ref = hc.conjugate_gradient(lambda v: A @ v, b, torch.zeros(30, dtype=torch.float64), 7)
    ours = cells["conjugate_gradient"](lambda v: A @ v, b, torch.zeros(30, dtype=torch.float64), 7)
    assert torch.equal(ours[0], ref[0]) and ours[2] == ref[2] == 7


def test_conjugate_gradient_cell_stops_on_negative_curvature(cells):
    A = torch.diag(torch.tensor([-1.0, 2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    x, r, products = cells["conjugate_gradient"](lambda v: A @ v, b, torch.zeros(3, dtype=torch.float64), 10)
    assert products == 1 and torch.equal(x, torch.zeros(3, dtype=torch.float64))


def test_hessian_free_cell_equals_the_reference_step_for_step(cells):
    f, w = hc.curvature_problem(seed=0, hidden=3, n_samples=64)
    states = {"cell": (w, 1.0, torch.zeros_like(w)), "reference": (w, 1.0, torch.zeros_like(w))}
    steps = {"cell": cells["hessian_free_step"], "reference": hc.hessian_free_step}
    for _ in range(6):
        out = {}
        for name, step in steps.items():
            wk, lam, d = states[name]
            out[name] = step(f, wk, lam, 5, d)
            states[name] = (out[name][0], out[name][1], out[name][2])
        a, b = out["cell"], out["reference"]
        assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2]) and a[3] == b[3]
    assert float(f(states["cell"][0])) < float(f(w))


def test_hessian_free_cell_is_the_damped_newton_step(cells):
    f, w = hc.curvature_problem(seed=2, hidden=3, n_samples=64)
    n = w.numel()
    H = curvature.hessian(f, w)
    lam = 2 * abs(float(torch.linalg.eigvalsh(H)[0])) + 0.1  # H + lam I positive definite
    wg = w.detach().requires_grad_(True)
    g, = torch.autograd.grad(f(wg), wg)
    dense = torch.linalg.solve(H + lam * torch.eye(n, dtype=H.dtype), -g)
    _, _, d, evals = cells["hessian_free_step"](f, w, lam, 10 * n, torch.zeros_like(w))
    torch.testing.assert_close(d, dense, rtol=1e-6, atol=1e-9)
    assert 2 < evals <= 10 * n + 2


def test_hessian_free_cell_damping_rule(cells):
    # exact quadratic model: rho = 1, the step is taken and the damping shrinks by 1.5
    A = spd(4, 1, 1.0, 3.0)
    f = lambda x: 0.5 * x @ A @ x   # noqa: E731
    w = torch.ones(4, dtype=torch.float64)
    w1, lam, d, evals = cells["hessian_free_step"](f, w, 1e-9, 50, torch.zeros_like(w))
    assert lam == pytest.approx(1e-9 / 1.5) and float(f(w1)) < 1e-12
    # negative curvature in the first CG direction: no step, damping grows by 1.5
    g = lambda x: -(x @ x)          # noqa: E731
    w2, lam2, d2, evals2 = cells["hessian_free_step"](g, w, 0.5, 50, torch.zeros_like(w))
    assert torch.equal(w2, w) and lam2 == pytest.approx(0.75)
    assert torch.equal(d2, torch.zeros_like(w)) and evals2 == 3
