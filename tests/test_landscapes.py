"""curvlib.landscapes: exact gradients and Hessians against torch.func, minima, bad input."""
import math

import numpy as np
import pytest
import torch

from curvlib import landscapes
from curvlib.landscapes import Beale, Quadratic, Rosenbrock, Saddle

ALL = [Quadratic(condition_number=50.0, angle=0.7, smallest_eigenvalue=0.5, center=(0.3, -1.0)),
       Quadratic(), Rosenbrock(), Rosenbrock(a=2.0, b=10.0), Beale(), Saddle(), Saddle(quartic=0.0)]


def _points(f, n=8, seed=0):
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = f.box
    return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], axis=1)


@pytest.mark.parametrize("f", ALL, ids=repr)
def test_gradient_and_hessian_match_autograd(f):
    for p in _points(f):
        x = torch.tensor(p, dtype=torch.float64)
        g_auto = torch.func.grad(f.value)(x)
        H_auto = torch.func.hessian(f.value)(x)
        g, H = f.grad(x), f.hess(x)
        assert isinstance(g, torch.Tensor) and g.dtype == torch.float64
        torch.testing.assert_close(g, g_auto, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(H, H_auto, rtol=1e-12, atol=1e-12)
        # the numpy path gives the same numbers
        np.testing.assert_allclose(f.grad(p), g.numpy(), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(f.hess(p), H.numpy(), rtol=1e-13, atol=1e-13)
        assert math.isclose(float(f(p)), float(f(x)), rel_tol=1e-14, abs_tol=1e-14)


@pytest.mark.parametrize("f", ALL, ids=repr)
def test_batched_points(f):
    pts = _points(f, n=12).reshape(3, 4, 2)
    v, g, H = f(pts), f.grad(pts), f.hess(pts)
    assert v.shape == (3, 4) and g.shape == (3, 4, 2) and H.shape == (3, 4, 2, 2)
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(g[i, j], f.grad(pts[i, j]), rtol=1e-14)
            np.testing.assert_allclose(H[i, j], f.hess(pts[i, j]), rtol=1e-14)
    X, Y, Z = f.grid(n=7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert math.isclose(Z[3, 2], float(f([X[3, 2], Y[3, 2]])), rel_tol=1e-14)


@pytest.mark.parametrize("f", [f for f in ALL if f.minimum is not None], ids=repr)
def test_minima_are_minima(f):
    for m in f.minima:
        np.testing.assert_allclose(f.grad(m), 0.0, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(f.hess(m)) > 0)
    # the minimum value is below the value anywhere on a fine grid of the plotting box
    _, _, Z = f.grid(n=101)
    assert f.minimum_value <= Z.min() + 1e-12
    (x0, x1), (y0, y1) = f.box
    assert x0 <= f.minimum[0] <= x1 and y0 <= f.minimum[1] <= y1


def test_known_values():
    assert Rosenbrock()([1.0, 1.0]) == 0.0
    assert Rosenbrock()([-1.2, 1.0]) == pytest.approx(24.2)
    assert Beale()([3.0, 0.5]) == 0.0
    assert Beale()([0.0, 0.0]) == pytest.approx(1.5 ** 2 + 2.25 ** 2 + 2.625 ** 2)
    s = Saddle()
    np.testing.assert_allclose(s.hess([0.0, 0.0]), np.diag([1.0, -1.0]))
    np.testing.assert_allclose(s.minima, [[0.0, 1.0], [0.0, -1.0]])
    assert s.minimum_value == -0.25
    assert Saddle(quartic=0.0).minimum is None
    np.testing.assert_allclose(s.saddle_points, [[0.0, 0.0]])


def test_quadratic_condition_number_and_rotation():
    f = Quadratic(condition_number=1e3, angle=0.3, smallest_eigenvalue=2.0)
    eig, vec = np.linalg.eigh(f.hess([0.1, 0.2]))
    np.testing.assert_allclose(eig, [2.0, 2e3], rtol=1e-12)
    assert eig[1] / eig[0] == pytest.approx(1e3)
    # the eigenvector of the smallest eigenvalue is (cos, sin) of the angle
    assert abs(vec[:, 0] @ np.array([math.cos(0.3), math.sin(0.3)])) == pytest.approx(1.0)
    # angle 0: axis-aligned, diagonal Hessian
    np.testing.assert_allclose(Quadratic(10.0).A, np.diag([1.0, 10.0]))


def test_drives_a_torch_optimizer():
    """A landscape works as the loss of a torch optimizer on a leaf tensor."""
    f = Quadratic(condition_number=4.0, angle=0.5)
    x = torch.tensor(f.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.2)
    for _ in range(200):
        opt.zero_grad()
        f(x).backward()
        opt.step()
    np.testing.assert_allclose(x.detach().numpy(), f.minimum, atol=1e-10)


def test_get_by_name():
    assert isinstance(landscapes.get("rosenbrock"), Rosenbrock)
    assert landscapes.get("quadratic", condition_number=3.0).condition_number == 3.0
    with pytest.raises(ValueError, match="name"):
        landscapes.get("himmelblau")


@pytest.mark.parametrize("kwargs, name", [
    (dict(condition_number=0.5), "condition_number"),
    (dict(condition_number=float("nan")), "condition_number"),
    (dict(angle=float("inf")), "angle"),
    (dict(angle=float("nan")), "angle"),
    (dict(smallest_eigenvalue=0.0), "smallest_eigenvalue"),
    (dict(center=(0.0, float("nan"))), "center"),
    (dict(center=(0.0, 1.0, 2.0)), "center"),
])
def test_quadratic_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Quadratic(**kwargs)


def test_other_bad_input():
    with pytest.raises(TypeError, match="angle"):
        Quadratic(angle="steep")
    with pytest.raises(ValueError, match="b"):
        Rosenbrock(b=-1.0)
    with pytest.raises(ValueError, match="quartic"):
        Saddle(quartic=-0.1)
    with pytest.raises(ValueError, match="x must have shape"):
        Rosenbrock()([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="n must be"):
        Rosenbrock().grid(n=1)


# ------------------------------------------------------------------ logistic regression
def test_logistic_regression_derivatives_match_autograd():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), (rng.random(40) < 0.5).astype(float)
    prob = landscapes.LogisticRegression(X, y, l2=0.1)
    assert prob.X.shape == (40, 5) and np.all(prob.X[:, -1] == 1)   # the bias column
    w = rng.normal(size=5)
    wt = torch.tensor(w, requires_grad=True)
    Xt, yt = torch.tensor(prob.X), torch.tensor(y)

    def f(v):
        z = Xt @ v
        return torch.mean(torch.nn.functional.softplus(z) - yt * z) + 0.05 * v @ v

    assert prob(w) == pytest.approx(f(wt).item(), rel=1e-12)
    g, = torch.autograd.grad(f(wt), wt)
    np.testing.assert_allclose(prob.grad(w), g.numpy(), rtol=1e-10, atol=1e-12)
    H = torch.autograd.functional.hessian(f, wt)
    np.testing.assert_allclose(prob.hess(w), H.numpy(), rtol=1e-10, atol=1e-12)
    assert prob.smoothness >= np.linalg.eigvalsh(prob.hess(w)).max()
    idx = np.arange(10)
    assert prob.value(w, idx) == pytest.approx(
        landscapes.LogisticRegression(X[:10], y[:10], l2=0.1).value(w), rel=1e-14)
    W = rng.normal(size=(3, 5))
    np.testing.assert_allclose(prob.grad_rows(W), [prob.grad(v) for v in W], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="W"):
        prob.grad_rows(W[:, :4])
    n, d = prob.X.shape
    assert (prob.flops_value, prob.flops_gradient) == (2 * n * d, 4 * n * d)
    assert prob.flops_newton == prob.flops_hessian + prob.flops_gradient == 2 * n * d * d + d ** 3 // 3 + 4 * n * d


def test_logistic_regression_minimum_and_breast_cancer():
    prob = landscapes.LogisticRegression.breast_cancer(1e-3)
    assert (prob.n_samples, prob.dim) == (426, 31)
    assert np.max(np.abs(prob.grad(prob.minimum))) < 1e-12
    assert prob.minimum_value == prob.value(prob.minimum) < prob.value(prob.x0)
    assert prob.condition_number() > 100   # ill-conditioned at l2 = 1e-3
    stronger = landscapes.LogisticRegression.breast_cancer(1e-1)
    assert stronger.condition_number() < prob.condition_number()
    from curvlib import minimize
    res = minimize(prob.value_and_grad, prob.x0, jac=True, hess=prob.hess, method="newton",
                   gtol=1e-10)
    np.testing.assert_allclose(res.x, prob.minimum, atol=1e-8)


@pytest.mark.parametrize("call, exc, word", [
    (lambda: landscapes.LogisticRegression(np.ones((3, 2)), np.array([0, 1, 2])), ValueError, "y"),
    (lambda: landscapes.LogisticRegression(np.ones((3, 2)), np.array([0, 1, 1]), l2=-1),
     ValueError, "l2"),
    (lambda: landscapes.LogisticRegression(np.ones(3), np.array([0, 1, 1])), ValueError, "X"),
    (lambda: landscapes.LogisticRegression(np.ones((3, 2)), np.array([0, 1, 1]), bias=1),
     TypeError, "bias"),
])
def test_logistic_regression_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
