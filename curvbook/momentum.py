r"""Chapter 4: momentum -- heavy ball and Nesterov, their rates, and the lecture's claims.

The lecture writes both methods with a velocity :math:`v` that already contains the
learning rate :math:`\eta`:

.. math::
    \text{heavy ball:}\quad v_t = \beta v_{t-1} + \eta\,\nabla L(\theta_t),\qquad
    \theta_{t+1} = \theta_t - v_t,

.. math::
    \text{Nesterov:}\quad v_t = \beta v_{t-1} + \eta\,\nabla L(\theta_t - \beta v_{t-1}),\qquad
    \theta_{t+1} = \theta_t - v_t .

:func:`lecture_momentum` runs them with :func:`curvlib.rules.heavy_ball` (the same rule
:mod:`curvlib.optim` uses), on one problem or on a whole grid of settings at once.
:func:`torch_equivalence` checks them against ``torch.optim.SGD``, which keeps an un-scaled
buffer :math:`b_t = \beta b_{t-1} + g_t` (so :math:`v_t = \eta b_t`) and, for Nesterov,
stores the *look-ahead* point :math:`\phi_t = \theta_t - \beta v_{t-1}` as its parameter
(Sutskever, Martens, Dahl & Hinton, 2013, "On the importance of initialization and momentum in
deep learning", ICML).

On a quadratic with Hessian eigenvalues :math:`\lambda` the error obeys a two-term linear
recurrence; :func:`spectral_radius` gives its exact rate, :func:`stability_limit` its stable
range (:math:`0 < \eta\lambda < 2 + 2\beta` for the heavy ball) and :func:`optimal_parameters`
the tuning of Polyak (1964), "Some methods of speeding up the convergence of iteration methods",
USSR Comput. Math. & Math. Phys. 4(5):1-17, with rate :math:`(\sqrt\kappa-1)/(\sqrt\kappa+1)`
against gradient descent's :math:`(\kappa-1)/(\kappa+1)`.

The lecture's ":math:`O(1/t^2)` vs :math:`O(1/t)`" is Nesterov's (1983) rate for convex smooth
functions with an *increasing* momentum :math:`\beta_t \to 1` (Nesterov, "A method for solving
the convex programming problem with convergence rate :math:`O(1/k^2)`", Soviet Math. Dokl.
27:372-376); :func:`sublinear_race` measures the log-log slopes. The heavy ball has no such
guarantee, and can even cycle on a smooth strongly convex function
(:func:`heavy_ball_counterexample`; Lessard, Recht & Packard, 2016, "Analysis and design of
optimization algorithms via integral quadratic constraints", SIAM J. Optim. 26(1):57-95).
"""
from __future__ import annotations

import math

import numpy as np

from curvlib import rules
from curvlib._checks import check_choice, check_int, check_positive, check_real, check_unit_interval

__all__ = ["lecture_momentum", "torch_sgd_path", "torch_equivalence", "characteristic_roots",
           "spectral_radius", "stability_limit", "optimal_parameters", "measured_rate",
           "rate_grid", "steps_to_tolerance", "rate_table", "oscillation_check", "nesterov_schedule",
           "sublinear_race", "lessard_gradient", "heavy_ball_counterexample", "digits_speedup",
           "plot_digits_tuning", "plot_rate_heatmap", "plot_rate_heatmaps", "plot_sublinear_race", "momentum_explorer"]

METHODS = ("gd", "heavy_ball", "nesterov")


# --------------------------------------------------------------------------------------
# The two updates as the lecture writes them
# --------------------------------------------------------------------------------------
def nesterov_schedule(t):
    r"""The increasing momentum :math:`\beta_t = (t-1)/(t+2)` of the :math:`O(1/t^2)` method.

    With it the lecture's Nesterov update is the accelerated method analysed by Su, Boyd &
    Candès (2016), "A differential equation for modeling Nesterov's accelerated gradient
    method", JMLR 17(153):1-43: for convex :math:`L` with :math:`\nabla L` Lipschitz (constant
    :math:`L_\nabla`) and :math:`\eta \le 1/L_\nabla`,
    :math:`f(\theta_t) - f^\star \le 2\|\theta_1-\theta^\star\|^2/(\eta (t+1)^2)`.
    """
    return (t - 1) / (t + 2)


def lecture_momentum(grad, x0, *, lr, momentum=0.9, steps=100, nesterov=False):
    r"""Run the lecture's heavy ball (or, with ``nesterov=True``, its Nesterov) update.

    Parameters
    ----------
    grad : callable
        :math:`\nabla L`, mapping an array of shape ``(..., d)`` to the same shape.
    x0 : array, shape ``(..., d)``
        Start :math:`\theta_1`; leading axes run many problems or settings at once.
    lr, momentum : float or array broadcastable against ``x0[..., :1]``, or for ``momentum``
        a function of the step ``t = 1, 2, ...`` (e.g. :func:`nesterov_schedule`).
    steps : int
        Number of updates.

    Returns a dict of arrays of shape ``(steps + 1, ..., d)``: ``x`` (:math:`\theta_t`),
    ``v`` (the velocity after each step, :math:`v_0 = 0` first) and ``lookahead``
    (:math:`\theta_t - \beta_t v_{t-1}`, where Nesterov evaluates the gradient; for the
    heavy ball it is ``x``). Overflow is allowed: a diverging run fills with inf/NaN.
    """
    steps = check_int("steps", steps, minimum=0)
    if not callable(grad):
        raise TypeError(f"grad must be callable, got {type(grad).__name__}")
    if callable(momentum):
        beta_of = momentum
    else:
        _check_array("momentum", momentum, low=0.0, high=1.0, high_open=True)
        beta_of = lambda t: momentum  # noqa: E731
    _check_array("lr", lr, low=0.0, low_open=True)
    x = np.array(x0, dtype=float)
    if x.ndim == 0:
        raise ValueError("x0 must have at least one axis (the coordinates)")
    state = rules.init_heavy_ball(x)
    xs, vs, looks = [x.copy()], [state["velocity"].copy()], []
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            beta = beta_of(t)
            look = x - beta * state["velocity"] if nesterov else x
            looks.append(look.copy())
            rules.heavy_ball(x, grad(look), state, lr=lr, momentum=beta)
            xs.append(x.copy())
            vs.append(state["velocity"].copy())
    beta = beta_of(steps + 1)
    looks.append(x - beta * state["velocity"] if nesterov else x.copy())
    return {"x": np.array(xs), "v": np.array(vs), "lookahead": np.array(looks)}


def _check_array(name, value, *, low=None, high=None, low_open=False, high_open=False):
    a = np.asarray(value, dtype=float) if not isinstance(value, (bool, str)) else None
    if a is None or a.dtype.kind != "f":
        raise TypeError(f"{name} must be a real number or an array of them, got {value!r}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (np.any(a <= low) if low_open else np.any(a < low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (np.any(a >= high) if high_open else np.any(a > high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return a


def torch_sgd_path(grad, x0, *, lr, momentum, steps, nesterov=False, optimizer=None):
    r"""Parameters and momentum buffers of ``torch.optim.SGD`` (float64) on the same problem.

    ``grad`` maps a numpy array of shape ``(d,)`` to the gradient. ``optimizer`` is the class
    to run (default ``torch.optim.SGD``; pass :class:`curvlib.optim.SGD` to check curvlib's).
    Returns ``(params, buffers)``, arrays of shape ``(steps + 1, d)`` (the buffer is zero
    before the first step).
    """
    import torch
    steps = check_int("steps", steps, minimum=0)
    cls = torch.optim.SGD if optimizer is None else optimizer
    p = torch.tensor(np.asarray(x0, dtype=float), dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=lr, momentum=momentum, nesterov=nesterov)
    params = [p.detach().numpy().copy()]
    bufs = [np.zeros_like(params[0])]
    for _ in range(steps):
        p.grad = torch.as_tensor(np.asarray(grad(p.detach().numpy()), dtype=float))
        opt.step()
        params.append(p.detach().numpy().copy())
        bufs.append(opt.state[p]["momentum_buffer"].detach().numpy().copy())
    return np.array(params), np.array(bufs)


def torch_equivalence(grad, x0, *, lr, momentum=0.9, steps=100, optimizer=None):
    r"""How far the lecture's forms are from torch's, step by step (max absolute differences).

    * ``heavy_ball_x``: :math:`\theta_t` of the lecture vs torch's parameter;
      ``heavy_ball_v``: :math:`v_t` vs :math:`\eta b_t`.
    * ``nesterov_lookahead``: the lecture's look-ahead :math:`\theta_t - \beta v_{t-1}` vs torch's
      parameter, ``nesterov_v``: :math:`v_t` vs :math:`\eta b_t` -- both at rounding level:
      torch's Nesterov is the lecture's, written in the look-ahead variable.
    * ``nesterov_x``: :math:`\theta_t` vs torch's parameter -- *not* small: the two store
      different points of the same trajectory.
    """
    lr = check_positive("lr", lr)
    momentum = check_unit_interval("momentum", momentum)
    hb = lecture_momentum(grad, x0, lr=lr, momentum=momentum, steps=steps)
    nag = lecture_momentum(grad, x0, lr=lr, momentum=momentum, steps=steps, nesterov=True)
    p_hb, b_hb = torch_sgd_path(grad, x0, lr=lr, momentum=momentum, steps=steps,
                                optimizer=optimizer)
    p_nag, b_nag = torch_sgd_path(grad, x0, lr=lr, momentum=momentum, steps=steps,
                                  nesterov=True, optimizer=optimizer)

    def gap(a, b):
        return float(np.max(np.abs(a - b)))

    return {"heavy_ball_x": gap(hb["x"], p_hb), "heavy_ball_v": gap(hb["v"], lr * b_hb),
            "nesterov_lookahead": gap(nag["lookahead"], p_nag),
            "nesterov_v": gap(nag["v"], lr * b_nag), "nesterov_x": gap(nag["x"], p_nag)}


# --------------------------------------------------------------------------------------
# Quadratic theory
# --------------------------------------------------------------------------------------
def characteristic_roots(lr, momentum, eigenvalue, method="heavy_ball"):
    r"""Roots of the error recurrence along one eigenvector of a quadratic.

    Along an eigenvector with eigenvalue :math:`\lambda`, with :math:`h = \eta\lambda`, the
    error :math:`e_t` of each method satisfies :math:`e_{t+1} = a\,e_t - b\,e_{t-1}`, i.e. it
    is a combination of :math:`z_1^t, z_2^t` with :math:`z^2 - a z + b = 0`:

    * gradient descent: :math:`z = 1 - h` (a single root; returned twice);
    * heavy ball: :math:`a = 1 + \beta - h,\ b = \beta`;
    * Nesterov: :math:`a = (1+\beta)(1-h),\ b = \beta(1-h)`.

    Arguments broadcast; returns two complex arrays.
    """
    check_choice("method", method, set(METHODS))
    h = np.asarray(lr, dtype=float) * np.asarray(eigenvalue, dtype=float)
    beta = np.asarray(momentum, dtype=float)
    if method == "gd":
        z = (1 - h + 0 * beta).astype(complex)
        return z, z
    if method == "heavy_ball":
        a, b = 1 + beta - h, beta + 0 * h
    else:
        a, b = (1 + beta) * (1 - h), beta * (1 - h)
    disc = np.sqrt((a * a - 4 * b).astype(complex))
    return (a + disc) / 2, (a - disc) / 2


def spectral_radius(lr, momentum, eigenvalues, method="heavy_ball"):
    r"""The asymptotic rate :math:`\rho = \max_\lambda \max(|z_1|, |z_2|)` on a quadratic.

    ``eigenvalues`` is a 1-D array (the Hessian's spectrum); ``lr`` and ``momentum`` broadcast
    against each other. The error then shrinks like :math:`\rho^t` (times a polynomial in
    :math:`t` when a root is double); :math:`\rho \ge 1` means no convergence.
    """
    lam = np.asarray(eigenvalues, dtype=float).reshape(-1)
    if lam.size == 0 or np.any(lam <= 0):
        raise ValueError("eigenvalues must be a non-empty array of positive numbers")
    lr, momentum = np.broadcast_arrays(np.asarray(lr, float), np.asarray(momentum, float))
    z1, z2 = characteristic_roots(lr[..., None], momentum[..., None], lam, method)
    return np.max(np.maximum(np.abs(z1), np.abs(z2)), axis=-1)


def stability_limit(momentum, method="heavy_ball"):
    r"""Largest :math:`\eta\lambda` for which the recurrence converges (for :math:`0\le\beta<1`).

    Heavy ball: :math:`0 < \eta\lambda < 2 + 2\beta`; Nesterov: :math:`0 < \eta\lambda <
    (2+2\beta)/(1+2\beta)`; gradient descent: :math:`0 < \eta\lambda < 2`. (Jury's criterion
    for :math:`z^2 - a z + b`: :math:`|b| < 1` and :math:`|a| < 1 + b`.)
    """
    check_choice("method", method, set(METHODS))
    beta = _check_array("momentum", momentum, low=0.0, high=1.0, high_open=True)
    if method == "gd":
        return 2.0 + 0 * beta
    if method == "heavy_ball":
        return 2 + 2 * beta
    return (2 + 2 * beta) / (1 + 2 * beta)


def optimal_parameters(mu, L, method="heavy_ball"):
    r"""The classical tuning for a quadratic with eigenvalues in :math:`[\mu, L]`.

    * gradient descent: :math:`\eta = 2/(L+\mu)`, rate :math:`(\kappa-1)/(\kappa+1)`;
    * heavy ball (Polyak, 1964): :math:`\eta = 4/(\sqrt L+\sqrt\mu)^2`,
      :math:`\beta = \big((\sqrt\kappa-1)/(\sqrt\kappa+1)\big)^2`, rate
      :math:`(\sqrt\kappa-1)/(\sqrt\kappa+1)`;
    * Nesterov (Nesterov, 2004, *Introductory Lectures on Convex Optimization*, Springer,
      §2.2): :math:`\eta = 1/L`, :math:`\beta = (\sqrt\kappa-1)/(\sqrt\kappa+1)`, guaranteed
      rate :math:`1 - 1/\sqrt\kappa` for every :math:`\mu`-strongly convex :math:`L`-smooth
      function (the ``rate`` returned is its exact spectral radius on the quadratic).

    Returns a dict with ``lr``, ``momentum`` and ``rate``; :math:`\kappa = L/\mu`.
    """
    mu, L = check_positive("mu", mu), check_positive("L", L)
    if mu > L:
        raise ValueError(f"mu must be <= L, got mu={mu}, L={L}")
    check_choice("method", method, set(METHODS))
    kappa = L / mu
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    if method == "gd":
        lr, beta = 2 / (L + mu), 0.0
        rate = (kappa - 1) / (kappa + 1)
    elif method == "heavy_ball":
        lr, beta = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, q * q
        rate = q
    else:
        lr, beta = 1 / L, q
        rate = float(spectral_radius(lr, beta, np.linspace(mu, L, 2001), "nesterov"))
    return {"lr": lr, "momentum": beta, "rate": rate}


# --------------------------------------------------------------------------------------
# Measured rates on quadratics
# --------------------------------------------------------------------------------------
def _run_diagonal(eigenvalues, lr, momentum, method, steps, x0=None):
    """Errors on the diagonal quadratic ``0.5 * sum(lam * x^2)`` (minimum at 0), batched over
    the broadcast shape of ``lr`` and ``momentum``: returns ``||x_t||`` of shape (steps+1, ...)."""
    lam = np.asarray(eigenvalues, dtype=float)
    lr, momentum = np.broadcast_arrays(np.asarray(lr, float), np.asarray(momentum, float))
    shape = lr.shape + lam.shape
    x0 = np.ones(shape) if x0 is None else np.broadcast_to(np.asarray(x0, float), shape)
    run = lecture_momentum(lambda x: lam * x, x0, lr=lr[..., None],
                           momentum=0 * momentum[..., None] if method == "gd" else momentum[..., None],
                           steps=steps, nesterov=method == "nesterov")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.sum(run["x"] ** 2, axis=-1))


def measured_rate(errors, burn_in=None, window=None):
    r"""Geometric mean rate :math:`(\hat e_T/\hat e_{T_0})^{1/(T-T_0)}` of an error sequence.

    ``errors`` has shape ``(T+1, ...)``; ``burn_in`` :math:`T_0` defaults to ``T // 4`` so the
    start-up transient is left out. :math:`\hat e_t` is the largest error over the ``window``
    steps up to :math:`t` (default ``T // 8``): with complex roots the error oscillates, and
    the envelope, not a single value, shrinks like :math:`\rho^t`. NaN where the run diverged
    or hit exact zero.
    """
    e = np.asarray(errors, dtype=float)
    T = len(e) - 1
    if T < 2:
        raise ValueError(f"errors must have at least 3 entries, got {len(e)}")
    T0 = T // 4 if burn_in is None else check_int("burn_in", burn_in, minimum=0)
    if T0 >= T:
        raise ValueError(f"burn_in must be < {T}, got {T0}")
    w = max(1, T // 8) if window is None else check_int("window", window, minimum=1)
    w = min(w, T0 + 1)
    with np.errstate(all="ignore"):
        end, start = np.max(e[T - w + 1:T + 1], axis=0), np.max(e[T0 - w + 1:T0 + 1], axis=0)
        r = (end / start) ** (1.0 / (T - T0))
    return np.where(np.isfinite(r) & (end > 0), r, np.nan)


def rate_grid(kappa=100.0, *, lrs=None, momenta=None, method="heavy_ball", steps=400):
    r"""Measured and theoretical rates over a grid of (lr, momentum) on a 2-D quadratic.

    The quadratic has eigenvalues :math:`\mu = 1/\kappa` and :math:`L = 1`, so ``lr`` reads
    in units of :math:`1/L`. Every setting runs at once (arrays of settings through
    :func:`curvlib.rules.heavy_ball`). Returns a dict: ``lrs``, ``momenta``, ``measured`` and
    ``theory`` (shape ``(len(momenta), len(lrs))``, NaN where the run diverged), the optimal
    setting ``best`` (from :func:`optimal_parameters`) and ``max_gap``, the largest
    :math:`|\rho_{\text{measured}} - \rho_{\text{theory}}|` over the converging cells.
    """
    kappa = check_positive("kappa", kappa)
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    check_choice("method", method, set(METHODS))
    lrs = np.geomspace(0.01, 10.0, 61) if lrs is None else np.asarray(lrs, float)
    momenta = np.linspace(0.0, 0.99, 45) if momenta is None else np.asarray(momenta, float)
    LR, B = np.meshgrid(lrs, momenta)
    eig = np.array([1.0 / kappa, 1.0])
    errors = _run_diagonal(eig, LR, B, method, check_int("steps", steps, minimum=8))
    measured = measured_rate(errors)
    theory = spectral_radius(LR, B, eig, method)
    measured = np.where(measured < 1, measured, np.nan)
    ok = np.isfinite(measured) & (theory < 1)
    gap = float(np.max(np.abs(measured - theory)[ok])) if ok.any() else math.nan
    return {"lrs": lrs, "momenta": momenta, "measured": measured, "theory": theory,
            "kappa": kappa, "method": method, "max_gap": gap,
            "best": optimal_parameters(1.0 / kappa, 1.0, method)}


def steps_to_tolerance(errors, tol):
    """First step at which ``errors`` (shape (T+1, ...)) is <= ``tol`` times its start; inf if never."""
    e = np.asarray(errors, dtype=float)
    with np.errstate(invalid="ignore"):
        hit = e <= tol * e[0]
    first = np.argmax(hit, axis=0).astype(float)
    return np.where(hit.any(axis=0), first, np.inf)


def rate_table(kappas=(10, 100, 1000), *, tol=1e-6):
    r"""Gradient descent, heavy ball and Nesterov, each at its classical tuning, per :math:`\kappa`.

    For each condition number: the theoretical rate, the measured rate (on a 2-D quadratic
    with eigenvalues :math:`1/\kappa` and 1, start (1, 1), over a run long enough to shrink the
    error to about :math:`10^{-13}`; no envelope, as the tuned roots are real), the steps to shrink the error by ``tol`` and the speed-up
    over gradient descent in steps. Returns a list of dicts, one per ``kappa``.
    """
    tol = check_positive("tol", tol)
    if tol >= 1:
        raise ValueError(f"tol must be < 1, got {tol}")
    rows = []
    for kappa in kappas:
        kappa = check_positive("kappa", kappa)
        if kappa <= 1:
            raise ValueError(f"kappa must be > 1, got {kappa}")
        mu, L = 1.0 / kappa, 1.0
        row = {"kappa": kappa}
        for method in METHODS:
            p = optimal_parameters(mu, L, method)
            # long enough to reach ~1e-13 (and tol), short enough to stay clear of underflow
            T = int(1.2 * math.log(min(tol, 1e-13)) / math.log(p["rate"])) + 40
            err = _run_diagonal([mu, L], p["lr"], p["momentum"], method, T)
            row[f"{method}_theory"] = p["rate"]
            row[f"{method}_measured"] = float(measured_rate(err, window=1))
            row[f"{method}_steps"] = float(steps_to_tolerance(err, tol))
        row["speedup_heavy_ball"] = row["gd_steps"] / row["heavy_ball_steps"]
        row["speedup_nesterov"] = row["gd_steps"] / row["nesterov_steps"]
        rows.append(row)
    return rows


def oscillation_check(kappa=100.0, *, lr=1.5, momentum=0.9, steps=200):
    r"""Does momentum damp oscillation? Gradient descent and the heavy ball at the same ``lr``
    (units of :math:`1/L`) on the quadratic with :math:`L=1`, :math:`\mu=1/\kappa`, start (1, 1).

    With :math:`1 < \eta L < 2` gradient descent zig-zags across the valley: its steep
    coordinate flips sign every step and shrinks by :math:`|1-\eta L|`. Returns a dict with, for
    ``gd`` and ``heavy_ball``: ``steep_*``, the steep coordinate's size after ``steps`` steps;
    ``flips_*``, how often it changed sign; ``increases_*``, how often :math:`f` went up.
    """
    kappa = check_positive("kappa", kappa)
    lr = check_positive("lr", lr)
    momentum = check_unit_interval("momentum", momentum)
    steps = check_int("steps", steps, minimum=2)
    lam = np.array([1.0 / kappa, 1.0])
    out = {"steps": steps, "lr": lr, "momentum": momentum}
    for method, beta in (("gd", 0.0), ("heavy_ball", momentum)):
        x = lecture_momentum(lambda z: lam * z, np.ones(2), lr=lr, momentum=beta, steps=steps)["x"]
        f = 0.5 * np.sum(lam * x * x, axis=1)
        out[f"steep_{method}"] = float(abs(x[-1, 1]))
        out[f"flips_{method}"] = int(np.sum(np.sign(x[1:, 1]) != np.sign(x[:-1, 1])))
        out[f"increases_{method}"] = int(np.sum(np.diff(f) > 0))
    return out


# --------------------------------------------------------------------------------------
# O(1/t) versus O(1/t^2): convex, not strongly convex
# --------------------------------------------------------------------------------------
def sublinear_race(*, dim=400, smallest=1e-8, steps=2000, fit=(100, 1000), beta=0.9,
                   spectrum="log"):
    r"""Suboptimality :math:`f(\theta_t)-f^\star` of four methods on a nearly flat convex quadratic.

    :math:`f(\theta) = \tfrac12\sum_i \lambda_i\theta_i^2` with ``dim`` eigenvalues spread
    evenly in the logarithm over :math:`[` ``smallest`` :math:`, 1]`, start
    :math:`\theta_1 = (1,\dots,1)`, :math:`\eta = 1/L = 1`. For :math:`t \ll 1/\sqrt{\lambda_{\min}}`
    this behaves like a convex function that is not strongly convex, the setting of the
    :math:`O(1/t)` and :math:`O(1/t^2)` bounds. Methods: gradient descent, the lecture's heavy
    ball and Nesterov with constant :math:`\beta`, and Nesterov with
    :math:`\beta_t = (t-1)/(t+2)` (:func:`nesterov_schedule`).

    Returns ``t`` (1..steps), ``gap`` (name -> :math:`f - f^\star` at each t), ``slopes``
    (least-squares slope of :math:`\log(f-f^\star)` against :math:`\log t` over ``fit``) and
    the two upper bounds ``bound_gd`` :math:`\|\theta_1-\theta^\star\|^2/(2\eta t)` and
    ``bound_nesterov`` :math:`2\|\theta_1-\theta^\star\|^2/(\eta(t+1)^2)`.

    ``spectrum="log"`` (eigenvalues even in the logarithm) puts the same share of
    :math:`f(\theta_1)` in every decade of curvature: at step :math:`t` the components with
    :math:`\lambda \lesssim 1/t` are still untouched, so the gap falls like the worst-case
    bounds. ``"uniform"`` (even in :math:`\lambda`) puts almost all of it at large
    :math:`\lambda`; gradient descent then falls faster than :math:`1/t`.
    """
    dim = check_int("dim", dim, minimum=2)
    smallest = check_positive("smallest", smallest)
    steps = check_int("steps", steps, minimum=10)
    beta = check_unit_interval("beta", beta)
    t0, t1 = (check_int("fit[0]", fit[0], minimum=1), check_int("fit[1]", fit[1], minimum=2))
    if not t0 < t1 <= steps:
        raise ValueError(f"fit must satisfy 1 <= fit[0] < fit[1] <= steps, got {fit}")
    check_choice("spectrum", spectrum, {"log", "uniform"})
    lam = np.geomspace(smallest, 1.0, dim) if spectrum == "log" else np.linspace(smallest, 1.0, dim)
    x0 = np.ones(dim)

    def f(x):
        return 0.5 * np.sum(lam * x * x, axis=-1)

    def grad(x):
        return lam * x

    specs = {"gradient descent": (0.0, False),
             f"heavy ball, β={beta:g}": (beta, False),
             f"Nesterov, β={beta:g}": (beta, True),
             "Nesterov, β_t=(t-1)/(t+2)": (nesterov_schedule, True)}
    gap, slopes = {}, {}
    t = np.arange(1, steps + 1, dtype=float)
    sel = (t >= t0) & (t <= t1)
    for name, (b, nag) in specs.items():
        x = lecture_momentum(grad, x0, lr=1.0, momentum=b, steps=steps, nesterov=nag)["x"]
        gap[name] = f(x[:steps])  # f(theta_t), t = 1..steps
        slopes[name] = float(np.polyfit(np.log(t[sel]), np.log(gap[name][sel]), 1)[0])
    r2 = float(x0 @ x0)
    return {"t": t, "gap": gap, "slopes": slopes, "fit": (t0, t1),
            "bound_gd": r2 / (2 * t), "bound_nesterov": 2 * r2 / (t + 1) ** 2}


def lessard_gradient(x):
    r"""Gradient of the 1-D strongly convex function of Lessard, Recht & Packard (2016, §4.6).

    .. math:: f'(x) = \begin{cases} 25x & x < 1\\ x + 24 & 1 \le x < 2\\ 25x - 24 & x \ge 2\end{cases}

    :math:`f` is :math:`\mu = 1` strongly convex and :math:`L = 25` smooth, with its minimum at 0.
    """
    x = np.asarray(x, dtype=float)
    return np.where(x < 1, 25 * x, np.where(x < 2, x + 24, 25 * x - 24))


def heavy_ball_counterexample(x0=3.3, steps=60):
    r"""The heavy ball, tuned optimally for quadratics with :math:`\mu=1, L=25`, on Lessard's function.

    Returns ``{name: iterates}`` for the heavy ball (Polyak's tuning), Nesterov (its
    strongly convex tuning) and gradient descent (:math:`\eta = 2/(L+\mu)`), all from
    ``x0``, plus ``cycle``: the heavy ball's last three iterates (it settles on a 3-cycle
    instead of converging to 0), and ``lr``: the step each method used.
    """
    x0 = check_real("x0", x0)
    steps = check_int("steps", steps, minimum=3)
    out, lrs = {}, {}
    for method, name in (("heavy_ball", "heavy ball (Polyak's tuning)"),
                         ("nesterov", "Nesterov"), ("gd", "gradient descent")):
        p = optimal_parameters(1.0, 25.0, method)
        lrs[name] = p["lr"]
        out[name] = lecture_momentum(lessard_gradient, np.array([x0]), lr=p["lr"],
                                     momentum=p["momentum"], steps=steps,
                                     nesterov=method == "nesterov")["x"][:, 0]
    out["cycle"] = out["heavy ball (Polyak's tuning)"][-3:].copy()
    out["lr"] = lrs
    return out


# --------------------------------------------------------------------------------------
# "10-30% faster" on a real network
# --------------------------------------------------------------------------------------
DIGITS_MOMENTA = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def digits_speedup(*, steps=120, batch_size=64, hidden=64, seeds=tuple(range(10)),
                   tune_seeds=(100, 101, 102), lr_grid=None, momenta=DIGITS_MOMENTA,
                   target=None, window=20):
    r"""SGD vs SGD with momentum on an MLP for scikit-learn's digits, both tuned by one rule.

    Both optimizers (:class:`curvlib.optim.SGD`) get the same budget and the same
    learning-rate grid (default ``curvlib.compare.lr_grid(0.01, 30)``); momentum's
    :math:`\beta` is tuned too, over ``momenta``. The rule is the same for every contender:
    the setting with the lowest final training loss, averaged over ``tune_seeds``
    (:func:`curvlib.compare.tune_lr`, ties to the smaller rate). Then both are trained from
    ``seeds``, which are not tuning seeds. The speed measure is the number of steps until the
    mini-batch loss, averaged over the last ``window`` steps
    (:func:`curvlib.compare.steps_to_target`), first falls below ``target`` (default: the
    highest smoothed final loss among the SGD runs, a level every SGD run reaches).

    Training runs on one thread (:func:`curvlib.runs.single_thread`). Returns a dict: ``names``
    (SGD, momentum), ``scores`` (``{beta: {lr: score}}``, ``beta = 0`` for SGD), ``best_lr``,
    ``best_momentum``, ``at_edge`` (which chosen value sits at an end of its grid), ``margin``
    (relative gap between the best and the runner-up setting of each contender), ``runs``
    (:class:`~curvlib.compare.RunStats` per name), ``target``, per-seed ``steps_to_target``,
    ``speedup`` (mean SGD steps / mean momentum steps) and ``paired``
    (:func:`curvbook.claims.paired_percent` of the steps: how much faster momentum is, with
    its 95% interval).
    """
    from curvlib import compare, models, optim
    from curvlib import data as cdata
    from curvlib.runs import single_thread
    from curvbook.claims import paired_percent

    steps = check_int("steps", steps, minimum=2 * window)
    momenta = tuple(float(check_unit_interval("momenta", b)) for b in momenta)
    if len(momenta) < 3 or len(set(momenta)) != len(momenta) or any(b <= 0 for b in momenta):
        raise ValueError(f"momenta must hold at least 3 distinct values in (0, 1), got {momenta}")
    seeds, tune_seeds = tuple(seeds), tuple(tune_seeds)
    if set(seeds) & set(tune_seeds):
        raise ValueError(f"seeds and tune_seeds must be disjoint, got {seeds} and {tune_seeds}")
    data = cdata.digits()
    grid = compare.lr_grid(0.01, 30.0) if lr_grid is None else tuple(lr_grid)
    names = ("SGD", "SGD+momentum")

    def make(s):
        return models.mlp([64, hidden, 10], seed=s)

    def factory(beta):
        return optim.factory("sgd") if beta == 0 else optim.factory("momentum", momentum=beta)

    budget = dict(steps=steps, batch_size=batch_size)
    with single_thread():
        scores = {b: compare.tune_lr(factory(b), grid, make, data, tune_seeds=tune_seeds,
                                     select="train_loss", **budget)[1]
                  for b in (0.0,) + momenta}
        settings = {0.0: [(0.0, lr) for lr in grid],
                    "mom": [(b, lr) for b in momenta for lr in grid]}
        chosen, margin = {}, {}
        for key, name in ((0.0, names[0]), ("mom", names[1])):
            ranked = sorted(settings[key], key=lambda s: (scores[s[0]][s[1]], s[1], s[0]))
            chosen[name] = ranked[0]
            best, second = (scores[b][lr] for b, lr in ranked[:2])
            margin[name] = float(second / best - 1) if best > 0 else math.inf
        runs = {name: compare.run_seeds(factory(b), lr, make, data, seeds=seeds, name=name,
                                        **budget)
                for name, (b, lr) in chosen.items()}
    if target is None:
        finals = compare.smooth(runs[names[0]].loss, window)[:, -1]
        target = float(np.max(finals[np.isfinite(finals)]))
    reached = {name: compare.steps_to_target(r.loss, target, window) for name, r in runs.items()}
    if not all(np.isfinite(v).all() for v in reached.values()):
        raise RuntimeError(f"a run never reached the target loss {target:.3g}; lower it or "
                           "raise steps")
    best_lr = {name: lr for name, (b, lr) in chosen.items()}
    beta = chosen[names[1]][0]
    at_edge = {"SGD: learning rate": best_lr[names[0]] in (grid[0], grid[-1]),
               "momentum: learning rate": best_lr[names[1]] in (grid[0], grid[-1]),
               "momentum: β": beta in (momenta[0], momenta[-1])}
    return {"names": names, "scores": scores, "lr_grid": grid, "momenta": momenta,
            "best_lr": best_lr, "best_momentum": beta, "at_edge": at_edge, "margin": margin,
            "runs": runs, "seeds": seeds, "tune_seeds": tune_seeds, "target": target,
            "steps_to_target": reached,
            "speedup": float(np.mean(reached[names[0]]) / np.mean(reached[names[1]])),
            "paired": paired_percent(reached[names[0]], reached[names[1]])}


def plot_digits_tuning(d, ax=None):
    """Left panel of the digits experiment: final training loss (mean over the tuning seeds)
    against the learning rate, for SGD and for every momentum; the chosen settings circled."""
    import matplotlib.pyplot as plt
    ax = ax or plt.gca()
    grid = np.array(d["lr_grid"])
    cmap = plt.get_cmap("viridis")
    for k, b in enumerate((0.0,) + d["momenta"]):
        y = np.array([d["scores"][b][lr] for lr in grid])
        y = np.where(np.isfinite(y) & (y < 10), y, np.nan)
        chosen = b == 0 or b == d["best_momentum"]
        ax.plot(grid, y, "o-" if chosen else ".-", lw=2 if chosen else 1,
                color="k" if b == 0 else cmap(k / (len(d["momenta"]) + 0.5)),
                label="SGD (β = 0)" if b == 0 else f"β = {b:g}", alpha=1 if chosen else 0.7)
    for name in d["names"]:
        b = 0.0 if name == d["names"][0] else d["best_momentum"]
        lr = d["best_lr"][name]
        ax.plot(lr, d["scores"][b][lr], "o", ms=14, mfc="none", mec="C3", mew=2)
    ax.set(xscale="log", yscale="log", xlabel="learning rate η",
           ylabel="final training loss\n(mean of tuning seeds)")
    ax.legend(fontsize="small", ncols=2)
    return ax


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
RATE_LABEL = "{which} rate per step (smaller is faster)"


def plot_rate_heatmap(grid, ax=None, *, which="measured", vmin=None, vmax=1.0, colorbar=True):
    r"""Heat map of the rate over (lr, momentum), with the theory's stable boundary
    :math:`\eta L = 2 + 2\beta` (heavy ball) or its Nesterov analogue and the optimum marked.
    ``vmin``/``vmax`` fix the colour scale (:func:`plot_rate_heatmaps` gives several maps one
    scale and one colour bar)."""
    from curvlib import plots
    check_choice("which", which, {"measured", "theory"})
    V = np.where(grid[which] < 1, grid[which], np.nan)
    ax = plots.heatmap(V, grid["lrs"], grid["momenta"], ax=ax, log_x=True, vmin=vmin, vmax=vmax,
                       cmap="magma_r", xlabel=r"learning rate $\eta$ (units of $1/L$)",
                       ylabel=r"momentum $\beta$", colorbar=colorbar,
                       colorbar_label=RATE_LABEL.format(which=which))
    b = np.linspace(0, grid["momenta"].max(), 100)
    ax.plot(stability_limit(b, grid["method"]), b, "c--", lw=1.5,
            label="stability limit (theory)")
    best = grid["best"]
    ax.plot(best["lr"], best["momentum"], "c*", ms=14, markeredgecolor="k",
            label=f"optimum, rate {best['rate']:.3f}")
    ax.set_xlim(grid["lrs"][0], grid["lrs"][-1])
    ax.set_ylim(grid["momenta"][0], grid["momenta"][-1])
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_rate_heatmaps(grids, axes, *, which="measured"):
    """Several :func:`plot_rate_heatmap` panels on one colour scale (the smallest rate of any
    of them to 1) with one labelled colour bar; returns the colour bar."""
    vmin = min(float(np.nanmin(np.where(g[which] < 1, g[which], np.nan))) for g in grids)
    for g, ax in zip(grids, axes):
        plot_rate_heatmap(g, ax, which=which, vmin=vmin, vmax=1.0, colorbar=False)
    axes = list(axes)
    cb = axes[0].figure.colorbar(axes[0].collections[0], ax=axes)
    cb.set_label(RATE_LABEL.format(which=which))
    cb.ax.set_title("grey:\ndiverged", fontsize="small")
    return cb


def plot_sublinear_race(race, ax=None):
    """Log-log plot of :func:`sublinear_race` with the two textbook bounds as dashed lines."""
    from curvlib import plots
    curves = {f"{name} (slope {race['slopes'][name]:.2f})": g for name, g in race["gap"].items()}
    ax = plots.convergence(curves, x=race["t"], ax=ax, log_x=True, log_y=True,
                           xlabel="step t", ylabel=r"$f(\theta_t) - f^\star$")
    ax.plot(race["t"], race["bound_gd"], "k:", lw=1, label=r"GD bound $R^2/(2\eta t)$")
    ax.plot(race["t"], race["bound_nesterov"], "k--", lw=1,
            label=r"Nesterov bound $2R^2/(\eta (t+1)^2)$")
    ax.axvspan(*race["fit"], color="0.9", zorder=0)
    ax.legend(fontsize="x-small")
    return ax


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------
EXPLORER_LRS = (0.05, 0.2, 1.0, 1.8, 2.5, 3.5, 5.0)
EXPLORER_MOMENTA = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)


def momentum_explorer(kappa=20.0, angle=math.pi / 6, steps=150, tol=1e-6):
    r"""Widget: learning rate and momentum on a rotated quadratic, heavy ball vs Nesterov.

    Left: both paths (the lecture's forms) on the contours of
    :class:`curvlib.landscapes.Quadratic` with :math:`L = 1`, :math:`\mu = 1/\kappa`. Right:
    :math:`f(\theta_t) - f^\star` on a log scale. The summary line gives the steps each method
    needs to bring the error below ``tol`` of its start, or "diverged at step k". Every
    frame is computed in the factory (one batched run per method), so a move only draws.
    """
    from curvlib import plots
    from curvlib.landscapes import Quadratic
    from curvlib.runs import divergence_step
    from curvlib.widgets import Explorer

    f = Quadratic(condition_number=kappa, angle=angle, smallest_eigenvalue=1.0 / kappa)
    steps = check_int("steps", steps, minimum=2)
    LR, B = np.meshgrid(np.array(EXPLORER_LRS), np.array(EXPLORER_MOMENTA), indexing="ij")
    x0 = np.broadcast_to(np.array(f.start), LR.shape + (2,))
    runs = {}
    for name, nag in (("heavy ball", False), ("Nesterov", True)):
        x = lecture_momentum(f.grad, x0, lr=LR[..., None], momentum=B[..., None],
                             steps=steps, nesterov=nag)["x"]
        with np.errstate(over="ignore", invalid="ignore"):
            gap = f(x) - 0.0
        runs[name] = (x, gap)
    grid = f.grid(n=121)
    f0 = float(f(np.array(f.start)))

    def render(fig, lr, momentum):
        i, j = EXPLORER_LRS.index(lr), EXPLORER_MOMENTA.index(momentum)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.25], gridspec_kw={"wspace": 0.4})
        paths, curves, summary = {}, {}, []
        for name, (x, gap) in runs.items():
            k = divergence_step(gap[:, i, j])
            n_tol = steps_to_tolerance(gap[:, i, j] / f0, tol ** 2)
            paths[name] = x[:, i, j] if k is None else np.vstack([x[:k, i, j], [np.nan, np.nan]])
            g = gap[:, i, j] if k is None else np.r_[gap[:k, i, j], np.nan]
            curves[name] = g
            if k is not None:
                summary.append(f"{name}: diverged at step {k}")
            elif np.isfinite(n_tol):
                summary.append(f"{name}: {int(n_tol)} steps to error < {tol:g}")
            else:
                summary.append(f"{name}: error {math.sqrt(gap[-1, i, j] / f0):.1e} after {steps} steps")
        plots.contour(f, grid=grid, paths=paths, ax=ax1, legend=False, levels=14,
                      path_kw={"lw": 1.2})
        ax1.set_title(f"lr={lr:g}/L, β={momentum:g}, κ={kappa:g}")
        ax1.set_xticks([])
        ax1.set_yticks([])
        plots.convergence(curves, ax=ax2, ylabel="f(θₜ) − f*", legend=True)
        ax2.set_ylim(1e-14 * f0, 1e3 * f0)
        plots.plain_log_ticks(ax2)
        return " | ".join(summary)

    return Explorer(render, {"lr": list(EXPLORER_LRS), "momentum": list(EXPLORER_MOMENTA)},
                    labels={"lr": "learning rate (× 1/L)", "momentum": "momentum β"},
                    initial={"lr": 1.0, "momentum": 0.8}, dpi=120,
                    alt="Heavy-ball and Nesterov paths on a rotated quadratic, with their loss curves")

