"""curvlib.minimize: paths equal to the torch optimizers, L-BFGS against scipy, bad input."""
import math

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.datasets import load_breast_cancer

import curvlib.optim as co
from curvlib import minimize
from curvlib.landscapes import Beale, Quadratic, Rosenbrock, Saddle


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def torch_path(make_opt, f, x0, steps, *, autograd=False):
    """Iterates of a torch optimizer on the landscape ``f``, from ``x0``, in float64.

    The gradient is the landscape's exact one (the same arithmetic as minimize uses), or
    autograd's with ``autograd=True``."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = make_opt([x])
    path = [x.detach().clone()]

    def closure():
        opt.zero_grad()
        loss = f(x)
        if autograd:
            loss.backward()
        else:
            x.grad = f.grad(x.detach())
        return loss
    for _ in range(steps):
        opt.step(closure)
        path.append(x.detach().clone())
    return torch.stack(path).numpy()


# --------------------------------------------------------------------------------------
# first-order methods: minimize's path == curvlib.optim's == torch.optim's
# --------------------------------------------------------------------------------------
FIRST_ORDER = [
    ("gd", dict(lr=1e-3), lambda ps, h: torch.optim.SGD(ps, **h)),
    ("gd", dict(lr=1e-3, weight_decay=0.1), lambda ps, h: torch.optim.SGD(ps, **h)),
    ("momentum", dict(lr=1e-3), lambda ps, h: torch.optim.SGD(ps, momentum=0.9, **h)),
    ("momentum", dict(lr=5e-4, momentum=0.5, dampening=0.2),
     lambda ps, h: torch.optim.SGD(ps, **h)),
    ("nesterov", dict(lr=1e-3), lambda ps, h: torch.optim.SGD(ps, momentum=0.9, nesterov=True, **h)),
    ("adagrad", dict(lr=0.3), lambda ps, h: torch.optim.Adagrad(ps, **h)),
    ("adagrad", dict(lr=0.3, lr_decay=0.01, initial_accumulator_value=0.1),
     lambda ps, h: torch.optim.Adagrad(ps, **h)),
    ("rmsprop", dict(lr=1e-2), lambda ps, h: torch.optim.RMSprop(ps, **h)),
    ("rmsprop", dict(lr=1e-3, momentum=0.5, centered=True), lambda ps, h: torch.optim.RMSprop(ps, **h)),
    ("adam", dict(lr=1e-2), lambda ps, h: torch.optim.Adam(ps, **h)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True, weight_decay=1e-2),
     lambda ps, h: torch.optim.Adam(ps, **h)),
    ("adamw", dict(lr=1e-2), lambda ps, h: torch.optim.AdamW(ps, **h)),
]
IDS = [f"{m}-{h}" for m, h, _ in FIRST_ORDER]


@pytest.mark.parametrize("method, hyper, torch_opt", FIRST_ORDER, ids=IDS)
def test_first_order_path_equals_curvlib_optim_and_torch(method, hyper, torch_opt):
    f, steps = Rosenbrock(), 60
    res = minimize(f, f.start, method=method, maxiter=steps, gtol=0.0, **hyper)
    assert res.nit == steps and res.path.shape == (steps + 1, 2)
    ours = torch_path(lambda ps: co.make_optimizer(method, ps, foreach=False, **hyper), f, f.start, steps)
    np.testing.assert_allclose(res.path, ours, rtol=1e-13, atol=1e-15)
    fast = torch_path(lambda ps: co.make_optimizer(method, ps, **hyper), f, f.start, steps)
    np.testing.assert_allclose(res.path, fast, rtol=1e-12, atol=1e-14)
    theirs = torch_path(lambda ps: torch_opt(ps, hyper), f, f.start, steps, autograd=True)
    np.testing.assert_allclose(res.path, theirs, rtol=1e-11, atol=1e-13)
    assert res.fun_path[-1] == pytest.approx(float(f(res.path[-1])), rel=1e-15)


def test_adam_without_bias_correction_is_the_lecture_form():
    f = Quadratic(condition_number=10.0, angle=0.4)
    res = minimize(f, f.start, method="adam", lr=1e-3, bias_correction=False, maxiter=3, gtol=0)
    x, m, v = np.array(f.start), 0.0, 0.0
    for k in range(3):
        g = f.grad(x)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        x = x - 0.001 * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(res.path[k + 1], x, rtol=1e-14)


# --------------------------------------------------------------------------------------
# L-BFGS and Newton: minimize's path == curvlib's torch optimizer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", [Rosenbrock(), Beale(), Quadratic(100.0, 0.3)], ids=repr)
@pytest.mark.parametrize("hyper", [dict(history_size=5), dict(), dict(line_search_fn=None, lr=0.2)],
                         ids=str)
def test_lbfgs_path_equals_the_torch_optimizer(f, hyper):
    """One minimize iteration is one step(max_iter=1) with minimize's line-search budget:
    both run curvlib.quasi_newton.lbfgs. The landscape's value and gradient are computed by
    numpy here and by torch there; their rounding differs in the last bit, and Rosenbrock's
    valley amplifies that to ~1e-10 in 25 steps, hence the tolerance."""
    res = minimize(f, f.start, method="lbfgs", maxiter=25, gtol=1e-10, **hyper)
    settings = {**dict(max_iter=1, max_eval=26, tolerance_grad=0.0, tolerance_change=0.0,
                       line_search_fn="strong_wolfe"), **hyper}
    theirs = torch_path(lambda ps: co.LBFGS(ps, **settings), f, f.start, res.nit)
    np.testing.assert_allclose(res.path, theirs, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("f, hyper", [
    (Rosenbrock(), dict()), (Rosenbrock(), dict(line_search_fn="backtracking")),
    (Rosenbrock(), dict(damping=1.0, adaptive_damping=True)), (Beale(), dict(damping=0.5)),
    (Saddle(), dict()), (Saddle(), dict(line_search_fn="backtracking", lr=0.5)),
], ids=str)
def test_newton_path_equals_the_torch_optimizer(f, hyper):
    res = minimize(f, f.start, method="newton", maxiter=15, gtol=1e-12, **hyper)
    x = torch.tensor(f.start, dtype=torch.float64, requires_grad=True)
    opt = co.Newton([x], tolerance_grad=0.0, **hyper)
    path = [x.detach().clone()]
    for _ in range(res.nit):
        opt.step(lambda: f(x))
        path.append(x.detach().clone())
    np.testing.assert_allclose(res.path, torch.stack(path).numpy(), rtol=1e-9, atol=1e-12)


def test_newton_solves_a_quadratic_in_one_step_and_finds_the_saddle():
    f = Quadratic(condition_number=1e4, angle=1.0, center=(0.5, -0.5))
    res = minimize(f, f.start, method="newton")
    assert res.success and res.nit == 1
    np.testing.assert_allclose(res.x, f.center, atol=1e-12)
    res = minimize(Saddle(), method="newton")  # pure Newton: drawn to the saddle point
    assert res.success and np.abs(res.x).max() < 1e-5
    res = minimize(Saddle(), method="newton", line_search_fn="backtracking")
    assert res.success and np.allclose(res.x, [0.0, 1.0], atol=1e-6)
    assert np.all(np.diff(res.fun_path) <= 0)


# --------------------------------------------------------------------------------------
# L-BFGS against scipy's L-BFGS-B
# --------------------------------------------------------------------------------------
def rosenbrock_fun():
    f = Rosenbrock()
    return f.value_and_grad, np.array([-1.2, 1.0])


def logreg_fun(l2=1e-3):
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X = np.hstack([X, np.ones((len(X), 1))])

    def fun(w):
        z = X @ w
        p = 1.0 / (1.0 + np.exp(-z))
        return (np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w,
                X.T @ (p - y) / len(y) + l2 * w)
    return fun, np.zeros(X.shape[1])


@pytest.mark.parametrize("problem", [rosenbrock_fun, logreg_fun])
@pytest.mark.parametrize("gtol", [1e-5, 1e-6, 1e-8])
@pytest.mark.parametrize("m", [10, 100])
def test_lbfgs_needs_no_more_evaluations_than_scipy(problem, gtol, m):
    """Both stop when the gradient's infinity norm is <= gtol (scipy's pgtol test; its ftol
    test is switched off so that it too runs to the gradient tolerance), with the same
    memory m (scipy's maxcor)."""
    fun, x0 = problem()
    ref = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                  options=dict(gtol=gtol, ftol=0.0, maxcor=m, maxiter=10_000))
    assert "PROJECTED GRADIENT" in ref.message and np.abs(ref.jac).max() <= gtol
    res = minimize(fun, x0, jac=True, method="lbfgs", gtol=gtol, history_size=m)
    assert res.success, res.message
    assert np.abs(res.jac).max() <= gtol
    assert np.abs(fun(res.x)[1]).max() <= gtol
    assert res.nfev <= ref.nfev, (res.nfev, ref.nfev)
    assert res.fun <= ref.fun + 1e-12


# --------------------------------------------------------------------------------------
# the result object, gradients, divergence
# --------------------------------------------------------------------------------------
def test_result_fields():
    f = Rosenbrock()
    res = minimize(f, [-1.2, 1.0])
    assert res.success and res.message == "gradient norm below gtol"
    assert res.path.shape == (res.nit + 1, 2) and res.fun_path.shape == (res.nit + 1,)
    np.testing.assert_array_equal(res.path[0], [-1.2, 1.0])
    np.testing.assert_array_equal(res.x, res.path[-1])
    assert res.fun == res.fun_path[-1] == pytest.approx(float(f(res.x)), rel=1e-15)
    np.testing.assert_allclose(res.jac, f.grad(res.x))
    assert res.nfev == res.njev >= res.nit + 1
    np.testing.assert_allclose(res.x, f.minimum, atol=1e-5)
    res = minimize(f, [-1.2, 1.0], method="adam", maxiter=0)
    assert res.nit == 0 and res.path.shape == (1, 2) and not res.success
    assert res.message == "maximum number of iterations reached"


def test_gradient_sources_agree():
    f = Beale()
    exact = minimize(f, [1.0, 1.0], method="lbfgs")
    pair = minimize(f.value_and_grad, [1.0, 1.0], jac=True)
    separate = minimize(f.value, [1.0, 1.0], jac=f.grad)
    numerical = minimize(lambda x: float(f.value(x)), [1.0, 1.0], method="lbfgs")
    for r in (pair, separate):
        np.testing.assert_array_equal(r.path, exact.path)
        assert r.nfev == exact.nfev
    assert numerical.success
    np.testing.assert_allclose(numerical.x, f.minimum, atol=1e-6)
    assert numerical.nfev >= 5 * numerical.njev  # 1 value + 2n = 4 per central-difference gradient
    newton_fd = minimize(lambda x: float(f.value(x)), [1.0, 1.0], method="newton",
                         line_search_fn="backtracking")
    newton = minimize(f, [1.0, 1.0], method="newton", line_search_fn="backtracking")
    assert newton_fd.success and newton.nit == newton_fd.nit
    np.testing.assert_allclose(newton_fd.path, newton.path, atol=1e-5)
    for extra in (dict(line_search_fn="backtracking"), dict(damping=1.0, adaptive_damping=True)):
        a = minimize(f.value_and_grad, [1.0, 1.0], jac=True, hess=f.hess, method="newton", **extra)
        b = minimize(f, [1.0, 1.0], method="newton", **extra)
        np.testing.assert_array_equal(a.path, b.path)
        assert a.nfev == b.nfev and a.nhev == b.nhev == a.nit


@pytest.mark.parametrize("method, hyper", [
    ("gd", dict(lr=0.03)), ("momentum", dict(lr=0.05)), ("nesterov", dict(lr=0.03)),
    ("adam", dict(lr=1e300)), ("lbfgs", dict(line_search_fn=None, lr=50.0)),
    ("newton", dict(lr=3.0)),
])
def test_divergence_stops_cleanly(method, hyper):
    # lambda_max = 100; GD is stable for lr * lambda_max < 2, heavy ball (momentum 0.9) for
    # lr * lambda_max < 2 + 2 * 0.9, so these settings all leave the stable region
    f = Quadratic(condition_number=100.0)
    with np.errstate(all="raise"):  # no overflow warnings escape either
        res = minimize(f, f.start, method=method, maxiter=5000, **hyper)
    assert not res.success
    k = int(res.message.removeprefix("diverged at step "))
    assert res.message == f"diverged at step {k}" and len(res.path) == k == res.nit + 1
    assert np.all(np.isfinite(res.path)) and np.all(np.isfinite(res.fun_path))
    assert np.isfinite(res.fun) and np.all(np.isfinite(res.jac))


def test_divergence_on_an_unbounded_function():
    res = minimize(Saddle(quartic=0.0), [1.0, 1e-3], method="gd", lr=0.5, maxiter=100_000)
    assert not res.success and res.message.startswith("diverged at step ")
    assert np.all(np.isfinite(res.path))


def test_line_search_shortens_overflowing_steps():
    def fun(x):  # overflows (inf) far from the origin
        v = float(np.exp(np.sum(x * x)) - 1.0) if np.sum(x * x) < 700 else math.inf
        return v, 2 * x * (v + 1.0)
    res = minimize(fun, np.array([2.0, -1.0]), jac=True, method="lbfgs", lr=100.0)
    assert res.success and np.abs(res.x).max() < 1e-5


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def quad(x):
    return float(x @ x)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(method="bfgs"), ValueError, "method"),
    (dict(method=3), TypeError, "method"),
    (dict(method="gd", lr=-1.0), ValueError, "lr"),
    (dict(method="adam", lr=float("nan")), ValueError, "lr"),
    (dict(method="lbfgs", lr=-1.0), ValueError, "lr"),
    (dict(method="newton", lr=-1.0), ValueError, "lr"),
    (dict(maxiter=-1), ValueError, "maxiter"),
    (dict(maxiter=2.5), TypeError, "maxiter"),
    (dict(gtol=-1e-5), ValueError, "gtol"),
    (dict(gtol=float("nan")), ValueError, "gtol"),
    (dict(method="adam", betas=(0.9, 1.0)), ValueError, "beta"),
    (dict(method="adam", betas=0.9), (TypeError, ValueError), "betas"),
    (dict(method="nesterov", momentum=0.0), ValueError, "momentum"),
    (dict(method="momentum", momentum=-0.5), ValueError, "momentum"),
    (dict(method="rmsprop", alpha=-0.1), ValueError, "alpha"),
    (dict(method="adagrad", eps=-1.0), ValueError, "eps"),
    (dict(method="gd", history_size=3), ValueError, "unknown hyperparameter.*history_size"),
    (dict(method="lbfgs", momentum=0.9), ValueError, "unknown hyperparameter.*momentum"),
    (dict(method="adam", foreach=False), ValueError, "unknown hyperparameter.*foreach"),
    (dict(method="newton", tolerance_grad=1e-3), ValueError, "tolerance_grad is minimize's gtol"),
    (dict(method="lbfgs", max_iter=3), ValueError, "max_iter is minimize's maxiter"),
    (dict(method="lbfgs", max_eval=None), TypeError, "max_eval"),
    (dict(method="kfac"), ValueError, "method.*torch model"),
    (dict(method="gd", momentum=0.9), ValueError, "fixes momentum"),
    (dict(method="lbfgs", history_size=0), ValueError, "history_size"),
    (dict(method="lbfgs", history_size=2.0), TypeError, "history_size"),
    (dict(method="lbfgs", line_search_fn="armijo"), ValueError, "line_search_fn"),
    (dict(method="lbfgs", max_eval=0), ValueError, "max_eval"),
    (dict(method="newton", damping=-1.0), ValueError, "damping"),
    (dict(method="newton", adaptive_damping=True), ValueError, "damping"),
    (dict(method="newton", adaptive_damping="yes", damping=1.0), TypeError, "adaptive_damping"),
    (dict(method="newton", line_search_fn="strong_wolfe"), ValueError, "line_search_fn"),
    (dict(jac="2-point"), TypeError, "jac"),
    (dict(hess=np.eye(2)), TypeError, "hess"),
])
def test_bad_hyperparameters(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        minimize(quad, np.ones(2), **kwargs)


@pytest.mark.parametrize("x0, exc, match", [
    (np.ones((2, 2)), ValueError, "x0 must be a non-empty 1-D array"),
    (np.ones(0), ValueError, "x0 must be a non-empty 1-D array"),
    (5.0, ValueError, "x0 must be a non-empty 1-D array"),
    ([1.0, float("nan")], ValueError, "x0 must be finite"),
    (["a", "b"], TypeError, "x0"),
    ("ab", TypeError, "x0"),
    (np.array([1 + 1j, 0]), TypeError, "x0"),
    (None, TypeError, "x0"),
])
def test_bad_x0(x0, exc, match):
    with pytest.raises(exc, match=match):
        minimize(quad, x0)


def test_bad_functions():
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        minimize(Rosenbrock(), np.zeros(3))
    with pytest.raises(TypeError, match="fun must be callable"):
        minimize(3.0, np.zeros(2))
    with pytest.raises(TypeError, match="fun must return a scalar"):
        minimize(lambda x: x, np.ones(2), jac=lambda x: np.ones(2))
    with pytest.raises(ValueError, match=r"jac must return an array of shape \(2,\)"):
        minimize(quad, np.ones(2), jac=lambda x: np.ones(3))
    with pytest.raises(TypeError, match="pair"):
        minimize(quad, np.ones(2), jac=True)
    with pytest.raises(ValueError, match=r"hess must return an array of shape \(2, 2\)"):
        minimize(quad, np.ones(2), jac=lambda x: 2 * x, hess=lambda x: np.eye(3), method="newton")
    with pytest.raises(ValueError, match="finite at x0"):
        minimize(lambda x: math.inf, np.ones(2), jac=lambda x: x)
