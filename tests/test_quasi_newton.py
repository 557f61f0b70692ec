"""curvlib.quasi_newton (the two-loop recursion, the line searches, the loops) and the torch
optimizers built on it, curvlib.optim.LBFGS and Newton."""
import copy
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits

from curvlib import quasi_newton as qn
from curvlib.landscapes import Rosenbrock
from curvlib.optim import LBFGS, Newton


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems; a second thread only adds contention
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------
def breast_cancer_arrays():
    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y.astype(float)


def logreg_problem(seed=0, l2=1e-3):
    X, y = breast_cancer_arrays()
    X, y = torch.tensor(X), torch.tensor(y)
    torch.manual_seed(seed)
    model = torch.nn.Linear(30, 1).double()

    def loss_fn():
        z = model(X).squeeze(1)
        reg = sum((p * p).sum() for p in model.parameters())
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y) + 0.5 * l2 * reg
    return model, loss_fn


def mlp_problem(seed=0):
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X[:600] / 16.0), torch.tensor(y[:600])
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 10)).double()
    return model, lambda: torch.nn.functional.cross_entropy(model(X), y)


class Point(torch.nn.Module):
    def __init__(self, x0):
        super().__init__()
        self.x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))


def rosenbrock_problem(seed=0):
    model, f = Point([-1.2, 1.0]), Rosenbrock()
    return model, lambda: f(model.x)


def run(make, cls, steps, seed=0, **settings):
    model, loss_fn = make(seed)
    opt = cls(model.parameters(), **settings)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)
    with torch.no_grad():
        return float(loss_fn()), model, opt


# --------------------------------------------------------------------------------------
# two-loop recursion = the lecture's BFGS update, written out as matrices
# --------------------------------------------------------------------------------------
def bfgs_inverse(pairs, gamma, n):
    """H^{-1}_{k+1} = (I - rho s y^T) H^{-1}_k (I - rho y s^T) + rho s s^T, from gamma I."""
    H, I = gamma * np.eye(n), np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (y @ s)
        H = (I - rho * np.outer(s, y)) @ H @ (I - rho * np.outer(y, s)) + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("m", [3, 8])
def test_two_loop_equals_explicit_bfgs_inverse(m):
    """Pairs from real L-BFGS steps on a 6-D quadratic; with m >= k the memory is full BFGS,
    with m < k it is BFGS over the last m pairs from gamma_k I."""
    rng = np.random.default_rng(0)
    n = 6
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = Q @ np.diag(np.logspace(0, 2, n)) @ Q.T
    b = rng.standard_normal(n)

    def fun(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b
    x, state, pairs = np.zeros(n), {}, []
    f, g = fun(x)
    for k in range(5):
        d, t = qn.lbfgs_direction(state, g, 1.0, m)
        if k > 0:  # the memory now holds the pairs of the previous steps
            kept = pairs[-m:]
            gamma = (kept[-1][0] @ kept[-1][1]) / (kept[-1][1] @ kept[-1][1])
            H = bfgs_inverse(kept, gamma, n)
            np.testing.assert_allclose(d, -H @ g, rtol=1e-10, atol=1e-12)
            assert state["H_diag"] == pytest.approx(gamma, rel=1e-14)
            assert len(state["old_stps"]) == min(k, m)
        state["prev_flat_grad"] = g
        t, f_new, g_new, _ = qn.strong_wolfe(lambda s: fun(x + s * d), d, f, g, t)
        pairs.append((t * d, g_new - g))
        state["d"], state["t"] = d, t
        x, f, g = x + t * d, f_new, g_new


def test_two_loop_runs_on_torch_and_numpy_alike():
    rng = np.random.default_rng(1)
    s = [rng.standard_normal(5) for _ in range(3)]
    y = [v + 0.1 * rng.standard_normal(5) for v in s]
    rho = [1 / (a @ b) for a, b in zip(s, y)]
    g = rng.standard_normal(5)
    d_np = qn.two_loop_direction(g, s, y, rho, 0.7)
    d_t = qn.two_loop_direction(torch.tensor(g), [torch.tensor(v) for v in s],
                                [torch.tensor(v) for v in y], rho, 0.7)
    np.testing.assert_allclose(d_t.numpy(), d_np, rtol=1e-13)
    np.testing.assert_allclose(d_np, -bfgs_inverse(list(zip(s, y)), 0.7, 5) @ g, rtol=1e-10)


def test_bfgs_inverse_update_is_the_formula_and_keeps_the_secant_equation():
    rng = np.random.default_rng(2)
    n = 5
    M = rng.standard_normal((n, n))
    H = M @ M.T + n * np.eye(n)
    A = rng.standard_normal((n, n))
    A = A @ A.T + np.eye(n)
    s = rng.standard_normal(n)
    y = A @ s
    H_new = qn.bfgs_inverse_update(H, s, y)
    rho, I = 1 / (y @ s), np.eye(n)
    expected = (I - rho * np.outer(s, y)) @ H @ (I - rho * np.outer(y, s)) + rho * np.outer(s, s)
    np.testing.assert_allclose(H_new, expected, rtol=1e-13)
    np.testing.assert_allclose(H_new @ y, s, rtol=1e-10)  # secant equation
    assert np.linalg.eigvalsh(H_new).min() > 0
    H_t = qn.bfgs_inverse_update(torch.tensor(H), torch.tensor(s), torch.tensor(y))
    np.testing.assert_allclose(H_t.numpy(), H_new, rtol=1e-13)
    # the two-loop recursion applies exactly these updates
    assert np.allclose(qn.two_loop_direction(y, [s], [A @ s], [rho], 1.0),
                       -qn.bfgs_inverse_update(np.eye(n), s, y) @ y)
    with pytest.raises(ValueError, match="curvature condition"):
        qn.bfgs_inverse_update(H, s, -y)
    with pytest.raises(ValueError, match="s and y must be vectors"):
        qn.bfgs_inverse_update(np.eye(4), s, y)


def test_lbfgs_loop_reports_why_it_stopped():
    f = Rosenbrock()
    x = np.array([-1.2, 1.0])
    run = qn.lbfgs(f.value_and_grad, x, *f.value_and_grad(x), {}, max_iter=500,
                   tolerance_grad=1e-8, tolerance_change=0.0, line_search_fn="strong_wolfe")
    assert run.reason == "tolerance_grad" and np.allclose(run.x, [1, 1], atol=1e-7)
    assert np.abs(run.g).max() <= 1e-8 and run.evals >= run.n_iter
    run = qn.lbfgs(f.value_and_grad, x, *f.value_and_grad(x), {}, max_iter=3, max_eval=100,
                   line_search_fn="strong_wolfe")
    assert run.reason == "max_iter" and run.n_iter == 3
    run = qn.lbfgs(f.value_and_grad, x, *f.value_and_grad(x), {}, max_iter=3, max_eval=100)
    assert run.reason == "max_iter" and run.f is None and run.g is None  # torch skips it
    run = qn.lbfgs(f.value_and_grad, x, *f.value_and_grad(x), {}, max_iter=500,
                   line_search_fn="strong_wolfe")  # torch's tolerance_change=1e-9
    assert run.reason in ("tolerance_change", "no_descent") and run.f < 1e-9
    run = qn.lbfgs(f.value_and_grad, x, *f.value_and_grad(x), {}, max_iter=50, max_eval=4,
                   line_search_fn="strong_wolfe")
    assert run.reason == "max_eval" and run.evals >= 4
    # a line search that finds no decrease leaves x where it was
    # (the slope at 0 claims descent, but f grows)
    z = np.zeros(2)
    run = qn.lbfgs(lambda z: (1.0 + z.sum(), np.ones(2)), z, 1.0, -np.ones(2), {},
                   max_iter=5, line_search_fn="strong_wolfe")
    assert run.reason == "line_search" and run.n_iter == 0 and run.x is z and run.f == 1.0


def test_newton_step_globalisations():
    from curvlib.landscapes import Saddle
    f = Saddle()
    x = np.array([1.5, 0.01])
    state = {}
    x_new, t = qn.newton_step(f, x, f(x), f.grad(x), f.hess(x), state)
    assert t == 1.0 and np.allclose(x_new, x - np.linalg.solve(f.hess(x), f.grad(x)))
    x_new, t = qn.newton_step(f, x, f(x), f.grad(x), f.hess(x), state,
                              line_search_fn="backtracking")
    assert f(x_new) < f(x)
    state = {}
    x_new, t = qn.newton_step(f, x, f(x), f.grad(x), f.hess(x), state, damping=1e-3,
                              adaptive_damping=True, lr=50.0)
    assert t == 0 and x_new is x and state["damping"] == pytest.approx(1e-2)  # rejected


def test_memory_skips_pairs_without_positive_curvature():
    state = {"old_dirs": [], "old_stps": [], "ro": [], "H_diag": 1.0}
    assert not qn.update_memory(state, np.array([1.0, 0.0]), np.array([-1.0, 0.0]), 5)
    assert state["old_stps"] == [] and state["H_diag"] == 1.0
    assert qn.update_memory(state, np.array([1.0, 0.0]), np.array([2.0, 0.0]), 1)
    assert qn.update_memory(state, np.array([0.0, 1.0]), np.array([0.0, 4.0]), 1)
    assert len(state["old_stps"]) == 1 and state["H_diag"] == 0.25  # s'y / y'y


# --------------------------------------------------------------------------------------
# line searches
# --------------------------------------------------------------------------------------
PHIS = {
    "quadratic": (lambda t: (t - 3.0) ** 2, lambda t: 2 * (t - 3.0)),
    "quartic": (lambda t: (t - 0.01) ** 4 - 1e-8 * t, lambda t: 4 * (t - 0.01) ** 3 - 1e-8),
    "steep": (lambda t: math.exp(5 * t) - 20 * t, lambda t: 5 * math.exp(5 * t) - 20),
    "overflow": (lambda t: -t if t < 0.5 else math.inf, lambda t: -1.0 if t < 0.5 else math.nan),
}


@pytest.mark.parametrize("name", PHIS)
@pytest.mark.parametrize("t0", [1e-3, 1.0, 100.0])
def test_strong_wolfe_conditions_hold(name, t0):
    f, df = PHIS[name]
    d = np.array([1.0])
    t, ft, gt, evals = qn.strong_wolfe(lambda t: (f(t), np.array([df(t)])), d, f(0.0),
                                       np.array([df(0.0)]), t0, max_evals=40)
    assert ft == f(t) and evals <= 40
    assert ft <= f(0.0) + 1e-4 * t * df(0.0)          # sufficient decrease
    if name != "overflow":
        assert abs(gt[0]) <= 0.9 * abs(df(0.0))      # curvature (strong form)
    else:
        assert 0 < t < 0.5


def test_strong_wolfe_reports_failure_as_zero_step():
    # the slope at 0 claims descent but f only grows: the search gives up with t = 0
    t, f, g, evals = qn.strong_wolfe(lambda t: (1.0 + t, np.array([1.0])), np.array([1.0]),
                                     1.0, np.array([-1.0]), 1.0, max_evals=10)
    assert t == 0.0 and f == 1.0 and evals == 10


def test_backtracking_armijo():
    t, f, evals = qn.backtracking(lambda t: (t - 0.1) ** 2, 0.01, -0.2, 1.0)
    assert f <= 0.01 - 1e-4 * t * 0.2 and t == 0.125 and evals == 4


@pytest.mark.parametrize("kwargs, name", [
    ({"c1": 1.0}, "c1"), ({"shrink": 0.0}, "shrink"), ({"shrink": 1.0}, "shrink"),
    ({"t": -1.0}, "t"), ({"max_evals": 0}, "max_evals"), ({"eps": -1e-16}, "eps"),
    ({"eps": float("nan")}, "eps")])
def test_backtracking_names_a_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        qn.backtracking(lambda t: 0.0, 1.0, -1.0, **kwargs)


@pytest.mark.parametrize("rise, accepted", [(1, True), (2, True), (8, False)])
def test_backtracking_forgives_the_last_digit_only(rise, accepted):
    # At the rounding floor the predicted decrease (1e-24 here) is below f's last digit: a
    # full step whose value rounds `rise` units of the last place up is noise for 1-2 units
    # (relaxed Armijo, 2 eps |f|), a real rise beyond that.
    f0 = 0.0941673382877293
    f1 = f0 + rise * np.spacing(f0)
    t, f, evals = qn.backtracking(lambda t: f1 if t == 1.0 else f0 + 1e-3, f0, -1e-24, 1.0,
                                  max_evals=3)
    assert (t, evals) == ((1.0, 1) if accepted else (0.0, 3))
    # float32's rounding is coarser: 8 units of float64's last place are noise there
    t32, _, _ = qn.backtracking(lambda t: f1, f0, -1e-24, 1.0, eps=float(np.finfo(np.float32).eps))
    assert t32 == 1.0


# --------------------------------------------------------------------------------------
# LBFGS against torch.optim.LBFGS
# --------------------------------------------------------------------------------------
SETTINGS = [dict(line_search_fn="strong_wolfe"),
            dict(line_search_fn="strong_wolfe", history_size=10),
            dict(line_search_fn=None, lr=0.5, history_size=10)]
PROBLEMS = {"logreg": logreg_problem, "mlp": mlp_problem, "rosenbrock": rosenbrock_problem}


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_lbfgs_reaches_a_loss_no_higher_than_torch(problem, settings):
    """Same settings, same number of step() calls (enough to converge). Both stop once the
    loss changes by less than tolerance_change = 1e-9 per iteration, so two converged runs
    may differ by about that much; on the MLP, whose loss creeps towards zero, they stop a
    few 1e-7 apart. That much is allowed, nothing more."""
    steps, slack = 8, (1e-6 if problem == "mlp" else 1e-9)
    for seed in (0, 1):
        ours, _, opt = run(PROBLEMS[problem], LBFGS, steps, seed, **settings)
        theirs, _, topt = run(PROBLEMS[problem], torch.optim.LBFGS, steps, seed, **settings)
        assert ours <= theirs + slack, (ours, theirs)
        assert math.isfinite(ours)
        state = opt.state[opt.param_groups[0]["params"][0]]
        assert state["func_evals"] <= steps * opt.param_groups[0]["max_eval"]


def test_lbfgs_converges_to_the_logistic_regression_optimum():
    from scipy.optimize import minimize as sp_minimize
    X, y = breast_cancer_arrays()
    Xb = np.hstack([X, np.ones((len(X), 1))])
    l2 = 1e-3

    def fun(w):  # same loss as logreg_problem (the bias is regularised too)
        z = Xb @ w
        return (np.mean(np.logaddexp(0, z) - y * z) + 0.5 * l2 * w @ w,
                Xb.T @ (1 / (1 + np.exp(-z)) - y) / len(y) + l2 * w)
    ref = sp_minimize(fun, np.zeros(31), jac=True, method="L-BFGS-B",
                      options=dict(gtol=1e-10, ftol=0, maxiter=10000))
    loss, model, _ = run(logreg_problem, LBFGS, 10, line_search_fn="strong_wolfe",
                         tolerance_grad=1e-10, tolerance_change=0.0)
    assert loss <= ref.fun + 1e-12
    w = torch.cat([model.weight.detach().ravel(), model.bias.detach()]).numpy()
    np.testing.assert_allclose(w, ref.x, atol=1e-6)


def _closure(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    return closure


def test_lbfgs_state_dict_round_trip():
    """Save after two steps, load into a fresh optimizer: the next steps are identical."""
    settings = dict(max_iter=3, history_size=4, line_search_fn="strong_wolfe")
    model, loss_fn = logreg_problem(seed=0)
    opt = LBFGS(model.parameters(), **settings)
    for _ in range(2):
        opt.step(_closure(opt, loss_fn))
    saved = copy.deepcopy(opt.state_dict())

    model2, loss_fn2 = logreg_problem(seed=5)
    model2.load_state_dict(model.state_dict())
    opt2 = LBFGS(model2.parameters(), **settings)
    opt2.load_state_dict(saved)
    state, state2 = opt.state[model.weight], opt2.state[model2.weight]
    assert state2["n_iter"] == state["n_iter"] > 2
    assert len(state2["old_stps"]) == len(state["old_stps"]) >= 2
    for _ in range(2):
        opt.step(_closure(opt, loss_fn))
        opt2.step(_closure(opt2, loss_fn2))
    for p, q in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_lbfgs_float32_and_scheduler():
    model = torch.nn.Linear(3, 1)
    X, y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(20, 1)
    opt = LBFGS(model.parameters(), lr=0.5, max_iter=5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def closure():
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        return loss
    first = float(closure().detach())
    for _ in range(3):
        opt.step(closure)
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.5 * 0.5 ** 3
    assert float(closure().detach()) < 1e-2 * first


def test_lbfgs_stops_at_a_stationary_point():
    model = Point([1.0, 1.0])  # the Rosenbrock minimum: the gradient is zero
    opt = LBFGS(model.parameters())
    f = Rosenbrock()

    def closure():
        opt.zero_grad()
        loss = f(model.x)
        loss.backward()
        return loss
    opt.step(closure)
    assert model.x.tolist() == [1.0, 1.0]
    assert opt.state[model.x]["func_evals"] == 1


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(max_iter=0), "max_iter"),
    (dict(max_eval=0), "max_eval"), (dict(history_size=0), "history_size"),
    (dict(tolerance_grad=-1.0), "tolerance_grad"), (dict(tolerance_change=-1e-9), "tolerance_change"),
    (dict(line_search_fn="armijo"), "line_search_fn"),
])
def test_lbfgs_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LBFGS([torch.zeros(2, requires_grad=True)], **kwargs)


def test_lbfgs_bad_input_types_and_groups():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="history_size"):
        LBFGS([p], history_size=2.5)
    with pytest.raises(TypeError, match="max_iter"):
        LBFGS([p], max_iter="20")
    with pytest.raises(ValueError, match="parameter list"):
        LBFGS([])
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)]}])
    with pytest.raises(TypeError, match="real"):
        LBFGS([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
    with pytest.raises(TypeError, match="closure"):
        LBFGS([p]).step(None)


# --------------------------------------------------------------------------------------
# Newton
# --------------------------------------------------------------------------------------
def logreg_newton_reference(w, X, y, l2):
    """Gradient and Hessian of the regularised logistic loss written out by hand."""
    p = 1 / (1 + np.exp(-(X @ w)))
    g = X.T @ (p - y) / len(y) + l2 * w
    H = (X * (p * (1 - p))[:, None]).T @ X / len(y) + l2 * np.eye(len(w))
    return g, H


def test_newton_step_equals_the_hand_computed_step():
    X, y = breast_cancer_arrays()
    Xb = np.hstack([X, np.ones((len(X), 1))])
    l2 = 1e-3
    model, loss_fn = logreg_problem(seed=3, l2=l2)
    opt = Newton(model.parameters())
    w0 = torch.cat([model.weight.detach().ravel(), model.bias.detach()]).numpy()
    opt.step(loss_fn)  # the closure returns the loss; Newton differentiates it itself
    w1 = torch.cat([model.weight.detach().ravel(), model.bias.detach()]).numpy()
    g, H = logreg_newton_reference(w0, Xb, y, l2)
    np.testing.assert_allclose(w1, w0 - np.linalg.solve(H, g), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.weight.grad.ravel().numpy(), g[:30], rtol=1e-10, atol=1e-14)


def test_newton_converges_quadratically_on_logistic_regression():
    model, loss_fn = logreg_problem(seed=0)
    opt = Newton(model.parameters(), line_search_fn="backtracking", tolerance_grad=0.0)
    norms = []  # p.grad holds the gradient at the point where each step starts
    for _ in range(11):
        opt.step(loss_fn)
        norms.append(float(torch.cat([p.grad.ravel() for p in model.parameters()]).abs().max()))
    assert norms[-1] < 1e-10
    # once close, the error is squared at each step: g_{k+1} <= C g_k^2. C is about 150
    # here (it grows like 1/lambda_min, and the L2 term gives lambda_min ~ 1e-3).
    first, last = (next(i for i, v in enumerate(norms) if v < tol) for tol in (1e-3, 1e-10))
    tail = norms[first:last + 1]  # beyond that only rounding is left
    assert len(tail) >= 3
    assert all(b <= 1e3 * a * a for a, b in zip(tail, tail[1:]))


def test_newton_damping_and_levenberg_state():
    model, loss_fn = logreg_problem(seed=0)
    opt = Newton(model.parameters(), damping=1.0, adaptive_damping=True)
    losses = [float(loss_fn())]
    for _ in range(6):
        opt.step(loss_fn)
        losses.append(float(loss_fn()))
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # rejected steps leave it unchanged
    assert opt.state[model.weight]["damping"] == pytest.approx(1e-6)  # six accepted steps
    assert opt.state_dict()["state"][0]["damping"] == pytest.approx(1e-6)


def test_newton_on_a_saddle():
    from curvlib.landscapes import Saddle
    f = Saddle()
    model = Point([1.5, 0.01])
    opt = Newton(model.parameters())
    for _ in range(5):
        opt.step(lambda: f(model.x))
    assert model.x.abs().max() < 1e-8  # pure Newton is drawn to the saddle
    model = Point([1.5, 0.01])
    opt = Newton(model.parameters(), line_search_fn="backtracking")
    for _ in range(30):
        opt.step(lambda: f(model.x))
    np.testing.assert_allclose(model.x.detach().numpy(), [0.0, 1.0], atol=1e-8)


def test_newton_says_its_closure_does_not_call_backward():
    assert Newton.closure_backward is False
    assert not hasattr(LBFGS, "closure_backward")  # the usual closure: calls backward()


def test_newton_closure_that_calls_backward_gets_a_clear_error():
    model, loss_fn = logreg_problem()
    opt = Newton(model.parameters())

    def closure():
        loss = loss_fn()
        loss.backward()
        return loss
    with pytest.raises(RuntimeError, match="backward"):
        opt.step(closure)
    with pytest.raises(RuntimeError, match="graph"):
        opt.step(lambda: torch.tensor(1.0))


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(lr=-1.0), ValueError, "lr"), (dict(damping=-1.0), ValueError, "damping"),
    (dict(damping=float("nan")), ValueError, "damping"),
    (dict(adaptive_damping=True), ValueError, "damping"),
    (dict(adaptive_damping=1), TypeError, "adaptive_damping"),
    (dict(line_search_fn="strong_wolfe"), ValueError, "line_search_fn"),
    (dict(damping=1.0, adaptive_damping=True, line_search_fn="backtracking"), ValueError,
     "line_search_fn"),
    (dict(tolerance_grad=-1.0), ValueError, "tolerance_grad"),
])
def test_newton_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        Newton([torch.zeros(2, requires_grad=True)], **kwargs)


def test_newton_direction_modified_cholesky():
    H = np.diag([2.0, -1.0])
    g = np.array([1.0, 1.0])
    d, lam = qn.newton_direction(g, H)
    np.testing.assert_allclose(d, [-0.5, 1.0])  # the saddle-seeking Newton step
    d, lam = qn.newton_direction(g, H, positive_definite=True)
    assert lam > 1.0 and g @ d < 0             # shifted until positive definite: descent
    dt, lamt = qn.newton_direction(torch.tensor(g), torch.tensor(H), positive_definite=True)
    np.testing.assert_allclose(dt.numpy(), d, rtol=1e-14)
    assert lamt == lam
