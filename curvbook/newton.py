r"""Chapter 1: Newton's method against gradient descent.

Gradient descent steps along :math:`-\eta\nabla f`; Newton's method solves the local quadratic
model, :math:`x_{k+1} = x_k - [\nabla^2 f(x_k)]^{-1}\nabla f(x_k)`. On a quadratic Newton lands
on the minimum in one step whatever the condition number :math:`\kappa` and rotation, while
gradient descent with its best fixed step :math:`\eta = 2/(L+\mu)` needs about
:math:`\tfrac{\kappa}{2}\ln(1/\varepsilon)` steps (twice that with :math:`\eta = 1/L`).
A *diagonal* approximation of the Hessian (:func:`diagonal_newton_quadratic_path`) sits in
between, and only it depends on the rotation. Near a minimum with a positive definite,
Lipschitz Hessian Newton converges quadratically: the number of correct digits doubles each
step (Nocedal & Wright, 2006, *Numerical Optimization*, 2nd ed., Springer, Thm. 3.5). Far
from it, the pure step can go anywhere; a backtracking line search or damping makes it safe
(Boyd & Vandenberghe, 2004, *Convex Optimization*, Cambridge University Press, §9.5).

The runs go through :func:`curvlib.minimize` (``method="newton"`` and ``"gd"``). Fast paths,
tested against it, keep the notebook and the widget quick: :func:`gd_quadratic_path` and
:func:`diagonal_newton_quadratic_path` (closed form on a quadratic), :func:`gd_path` (a lean
loop for tens of thousands of gradient steps) and :func:`gd_steps_grid` (one vectorised run
per learning-rate grid, for tuning). Gradient descent is always tuned before it is compared:
:func:`tune_gd` picks the step on a grid by the number of steps to the tolerance, on a
starting point kept apart from the reported ones, and checks that the best step is not at
an edge of the grid.
"""
from __future__ import annotations

import math

import numpy as np

from curvlib import minimize
from curvlib._checks import check_int, check_positive, check_real
from curvlib.landscapes import LogisticRegression, Quadratic, Rosenbrock

from .stats import paired_ratio, verdict

__all__ = ["quadratic", "best_fixed_lr", "gd_quadratic_path", "diagonal_newton_quadratic_path",
           "gd_path", "gd_steps_grid", "lr_grid", "tune_gd", "steps_to", "span",
           "quadratic_race", "iteration_table", "rosenbrock_race", "reference_minimum",
           "newton_flops", "logistic_race", "newton_vs_gd", "digits_table",
           "error_panel", "plot_race", "plot_rosenbrock", "plot_logistic", "newton_explorer",
           "EXPLORERS"]


# --------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------
def quadratic(kappa, angle=0.0):
    r""":class:`~curvlib.landscapes.Quadratic` with :math:`L = 1`, :math:`\mu = 1/\kappa`.

    ``angle`` (radians) turns the eigenvectors; with :math:`L = 1` a learning rate reads in
    units of :math:`1/L`.
    """
    kappa = check_real("kappa", kappa)
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    return Quadratic(condition_number=kappa, angle=angle, smallest_eigenvalue=1.0 / kappa)


# --------------------------------------------------------------------------------------
# Fast paths (tested against curvlib.minimize)
# --------------------------------------------------------------------------------------
def gd_quadratic_path(f, x0, lr, steps):
    r"""Gradient descent on a :class:`~curvlib.landscapes.Quadratic` in closed form.

    With :math:`A = Q\Lambda Q^\top` and :math:`c` the minimiser,
    :math:`x_t - c = Q\,(I - \eta\Lambda)^t\,Q^\top (x_0 - c)`. Returns shape ``(steps+1, 2)``,
    equal to ``curvlib.minimize(f, x0, method="gd", lr=lr).path`` up to rounding.
    """
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, minimum=0)
    lam, Q = np.linalg.eigh(f.A)
    c0 = Q.T @ (np.asarray(x0, dtype=float) - f.center)
    t = np.arange(steps + 1)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        comps = c0 * (1 - lr * lam) ** t
    return f.center + comps @ Q.T


def best_fixed_lr(eigenvalues):
    r"""The fixed step :math:`\eta = 2/(\lambda_{\max} + \lambda_{\min})` that minimises the worst
    contraction :math:`\max_i |1 - \eta\lambda_i| = (\kappa - 1)/(\kappa + 1)` on a quadratic."""
    lam = np.asarray(eigenvalues, dtype=float)
    if lam.size == 0 or not np.all(np.isfinite(lam)) or lam.min() <= 0:
        raise ValueError(f"eigenvalues must be finite and positive, got {lam.tolist()}")
    return 2.0 / (float(lam.max()) + float(lam.min()))


def _jacobi(A):
    r""":math:`S = D^{-1/2}` (as a vector) and the eigen-decomposition of :math:`SAS`."""
    s = 1.0 / np.sqrt(np.diag(A))
    lam, V = np.linalg.eigh(s[:, None] * A * s[None, :])
    return s, lam, V


def diagonal_newton_quadratic_path(f, x0, steps, lr=None):
    r"""Gradient descent preconditioned by the Hessian's diagonal, on a quadratic, in closed form.

    .. math:: x_{t+1} = x_t - \eta\, D^{-1}\nabla f(x_t),\qquad D = \operatorname{diag}(A).

    With :math:`S = D^{-1/2}` and :math:`SAS = V\Lambda V^\top`,
    :math:`x_t - c = S V (I - \eta\Lambda)^t V^\top S^{-1}(x_0 - c)`. The default ``lr`` is the
    best fixed step for the preconditioned matrix, :math:`2/(\lambda_{\max} + \lambda_{\min})`
    of :math:`SAS`; in two dimensions that is exactly 1, because :math:`SAS` has unit
    diagonal and so eigenvalues :math:`1 \pm \rho`. On an axis-aligned quadratic
    :math:`D = A` and this is Newton's method; rotated by 45° :math:`D` is a multiple of the
    identity and it is gradient descent with its best step. Returns shape ``(steps+1, d)``.
    """
    steps = check_int("steps", steps, minimum=0)
    s, lam, V = _jacobi(f.A)
    lr = best_fixed_lr(lam) if lr is None else check_positive("lr", lr)
    c0 = V.T @ ((np.asarray(x0, dtype=float) - f.center) / s)
    t = np.arange(steps + 1)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        comps = c0 * (1 - lr * lam) ** t
    return f.center + (comps @ V.T) * s


def gd_path(grad, x0, lr, steps, *, x_star=None, tol=None):
    r"""Gradient descent :math:`x_{t+1} = x_t - \eta\nabla f(x_t)` in a lean loop.

    The arithmetic of :func:`curvlib.rules.sgd` without momentum, so the path equals
    ``curvlib.minimize(..., method="gd")``'s, about ten times faster (no per-step bookkeeping).
    With ``x_star`` and ``tol`` it stops once :math:`\|x_t - x^\star\| \le` ``tol``.
    Returns shape ``(t+1, d)``; it stops early, at the last finite point, if the run diverges.
    """
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, minimum=0)
    x = np.array(x0, dtype=float)
    out = [x.copy()]
    stop = x_star is not None and tol is not None
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            x = x - lr * grad(x)
            if not np.all(np.isfinite(x)):
                break
            out.append(x)
            if stop and np.linalg.norm(x - x_star) <= tol:
                break
    return np.array(out)


def _horizon(c0, rates, scale, tol):
    r"""A step count by which :math:`\|x_t - x^\star\| \le` ``tol`` surely holds when the error is
    ``scale`` times a vector whose components shrink as :math:`|c_i|\,r_i^t` (inf-safe)."""
    need = 1
    bound = tol / (math.sqrt(len(c0)) * scale)
    for ci, ri in zip(np.abs(c0), np.abs(rates)):
        if ci <= bound or ri == 0:
            continue
        if ri >= 1:
            return 10 ** 9
        need = max(need, math.ceil(math.log(bound / ci) / math.log(ri)))
    return need + 1


def _gd_quadratic_horizon(f, lr, tol):
    lam, Q = np.linalg.eigh(f.A)
    return _horizon(Q.T @ (np.asarray(f.start, dtype=float) - f.center), 1 - lr * lam, 1.0, tol)


def _diagonal_newton_horizon(f, lr, tol):
    s, lam, V = _jacobi(f.A)
    lr = best_fixed_lr(lam) if lr is None else lr
    return _horizon(V.T @ ((np.asarray(f.start, dtype=float) - f.center) / s), 1 - lr * lam,
                    float(s.max()), tol)


def steps_to(path, x_star, tol):
    """First index ``t`` with :math:`\\|x_t - x^\\star\\| \\le` ``tol``, or ``None``."""
    err = np.linalg.norm(np.asarray(path) - np.asarray(x_star), axis=-1)
    hit = np.flatnonzero(err <= check_positive("tol", tol))
    return int(hit[0]) if hit.size else None


def gd_steps_grid(grad, x0, x_star, tol, lrs, maxiter):
    r"""Steps to :math:`\|x_t - x^\star\| \le` ``tol`` of gradient descent at every step in ``lrs``.

    One vectorised run: ``grad`` must accept a batch of points of shape ``(k, d)``. Runs
    stop when they reach ``tol``, blow up (non-finite, or :math:`10^6` times the first error)
    or once the fastest has arrived, since the others cannot beat it. Returns an array of
    step counts, ``None`` where a run did not arrive first or at all within ``maxiter``: the
    minimum is the fastest step of the grid.
    """
    tol = check_positive("tol", tol)
    maxiter = check_int("maxiter", maxiter, minimum=1)
    lrs = np.asarray([check_positive("lrs", lr) for lr in lrs], dtype=float)
    x_star = np.asarray(x_star, dtype=float)
    X = np.tile(np.asarray(x0, dtype=float), (len(lrs), 1))
    err0 = float(np.linalg.norm(X[0] - x_star))
    steps = np.full(len(lrs), None, dtype=object)
    active = np.ones(len(lrs), bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, maxiter + 1):
            X[active] = X[active] - lrs[active, None] * grad(X[active])
            err = np.linalg.norm(X - x_star, axis=1)
            hit = active & (err <= tol)
            if hit.any():
                steps[hit] = t
                break
            active &= np.isfinite(err) & (err <= 1e6 * max(err0, tol))
            if not active.any():
                break
    return steps


def tune_gd(grad, x0, x_star, tol, lr_grid, maxiter, *, max_extensions=20):
    r"""The step of gradient descent that reaches ``tol`` in the fewest steps, on a grid.

    Starts from ``lr_grid`` (increasing, geometric) and extends it by the grid's own ratio at
    an end while the best step sits there (at most ``max_extensions`` times), so that the
    winner has a slower neighbour on each side. Ties go to the smaller step. Returns a dict:
    ``lr``, ``steps``, ``grid`` (the final grid), ``counts`` (steps per grid point, ``None``
    for runs that did not arrive first) and ``at_edge`` (True only if the extensions ran out).
    """
    grid = [float(v) for v in lr_grid]
    if len(grid) < 3 or any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"lr_grid must hold at least 3 increasing steps, got {grid}")
    ratio = grid[1] / grid[0]
    for _ in range(max_extensions + 1):
        counts = gd_steps_grid(grad, x0, x_star, tol, grid, maxiter)
        scores = [math.inf if c is None else c for c in counts]
        best = int(np.argmin(scores))
        if not math.isfinite(scores[best]):
            raise ValueError(f"no step in the grid reached tol={tol} within maxiter={maxiter}")
        if 0 < best < len(grid) - 1:
            break
        if best == 0:
            grid.insert(0, grid[0] / ratio)
        else:
            grid.append(grid[-1] * ratio)
    return {"lr": grid[best], "steps": int(scores[best]), "grid": grid, "counts": list(counts),
            "at_edge": best in (0, len(grid) - 1)}


def span(values, sep="–"):
    """``"7–8"`` for the range of ``values``, or ``"7"`` when they are all equal."""
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}{sep}{hi}"


# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------
def lr_grid(low, high, per_decade=16):
    """The step-size grid gradient descent is tuned on in this chapter: geometric from ``low``
    to ``high`` with ``per_decade`` points per decade (16: neighbours 15% apart).
    :func:`tune_gd` extends it at an end when the best step sits there."""
    low, high = check_positive("low", low), check_positive("high", high)
    per_decade = check_int("per_decade", per_decade, minimum=1)
    if high <= low:
        raise ValueError(f"high must be larger than low, got {low} and {high}")
    k = np.arange(math.floor(per_decade * math.log10(low) + 1e-9),
                  math.ceil(per_decade * math.log10(high) - 1e-9) + 1)
    return tuple(10.0 ** (k / per_decade))


QUADRATIC_METHODS = ("gradient descent", "diagonal Newton", "Newton")


def quadratic_race(kappa, angle=0.0, *, tol=1e-6, maxiter=100_000, lr=None):
    r"""Gradient descent, diagonal Newton and Newton on :func:`quadratic`.

    Gradient descent takes ``lr`` (in units of :math:`1/L`; default its best fixed step
    :math:`2/(L+\mu)`), diagonal Newton its own best fixed step
    (:func:`diagonal_newton_quadratic_path`), Newton the full step. All start at the
    landscape's ``start``. Returns a dict with the landscape ``f``, the ``lr`` used by GD,
    the ``paths`` (cut where they reach ``tol``), and ``steps`` to
    :math:`\|x - x^\star\| \le` ``tol`` for each (``None`` if more than ``maxiter``).
    """
    f = quadratic(kappa, angle)
    tol = check_positive("tol", tol)
    maxiter = check_int("maxiter", maxiter, minimum=1)
    lr = best_fixed_lr(f.eigenvalues) if lr is None else check_positive("lr", lr)
    paths = {
        "gradient descent": gd_quadratic_path(
            f, f.start, lr, min(maxiter, _gd_quadratic_horizon(f, lr, tol))),
        "diagonal Newton": diagonal_newton_quadratic_path(
            f, f.start, min(maxiter, _diagonal_newton_horizon(f, None, tol))),
        "Newton": minimize(f, f.start, method="newton", maxiter=10, gtol=1e-14).path}
    steps = {k: steps_to(p, f.minimum, tol) for k, p in paths.items()}
    paths = {k: p if steps[k] is None else p[:steps[k] + 1] for k, p in paths.items()}
    return {"f": f, "lr": lr, "tol": tol, "paths": paths, "steps": steps}


def iteration_table(kappas=(1, 10, 100, 1000), angles=(0.0, math.pi / 6), *, tol=1e-6):
    r"""Steps to ``tol`` per :math:`(\kappa, \text{angle})`: gradient descent with
    :math:`\eta = 1/L` and with its best fixed step :math:`2/(L+\mu)`, the estimate
    :math:`\ln(\|e_0\|/\varepsilon)/\ln\frac{\kappa+1}{\kappa-1}` for the latter, diagonal
    Newton and Newton."""
    rows = []
    for kappa in kappas:
        for angle in angles:
            r = quadratic_race(kappa, angle, tol=tol)
            slow = quadratic_race(kappa, angle, tol=tol, lr=1.0)
            e0 = float(np.linalg.norm(np.subtract(r["f"].start, r["f"].minimum)))
            rate = (kappa - 1) / (kappa + 1)
            rows.append({"kappa": kappa, "angle_deg": math.degrees(angle),
                         "gd_steps_1_over_L": slow["steps"]["gradient descent"],
                         "gd_steps": r["steps"]["gradient descent"],
                         "gd_estimate": (math.log(e0 / tol) / -math.log(rate)) if rate > 0 else 1.0,
                         "diagonal_steps": r["steps"]["diagonal Newton"],
                         "newton_steps": r["steps"]["Newton"]})
    return rows


def _batch_grad(f):
    """``f.grad`` on a batch of points: landscapes take ``(k, 2)`` arrays as they are."""
    return f.grad


def rosenbrock_race(*, tol=1e-6, gd_maxiter=60_000, gd_grid=None):
    r"""Newton (pure, with backtracking line search, with adaptive damping) and gradient
    descent, tuned, on Rosenbrock's function from (-1.2, 1).

    Gradient descent's fixed step is chosen by :func:`tune_gd` on ``gd_grid`` (default
    :func:`lr_grid` from :math:`10^{-4}` to :math:`10^{-2}`): the step that reaches ``tol``
    in the fewest steps from this very start, the most favourable choice it could have.
    Returns a dict: ``f``, ``paths`` (name -> iterates), ``steps`` (name -> first step within
    ``tol`` of the minimum (1, 1), or ``None``), ``evaluations`` (name -> (function,
    gradient, Hessian) evaluations of the ``curvlib.minimize`` runs; for GD one gradient a
    step) and ``gd_tuning`` (the :func:`tune_gd` result).
    """
    f = Rosenbrock()
    x0, xs = np.array(f.start), f.minimum
    runs = {"Newton (pure)": {},
            "Newton + line search": {"line_search_fn": "backtracking"},
            "Newton + damping": {"damping": 1.0, "adaptive_damping": True}}
    paths, steps, evals = {}, {}, {}
    for name, hyper in runs.items():
        r = minimize(f, x0, method="newton", maxiter=200, gtol=1e-12, **hyper)
        paths[name], steps[name] = r.path, steps_to(r.path, xs, tol)
        evals[name] = (r.nfev, r.njev, r.nhev)
    grid = lr_grid(1e-4, 1e-2) if gd_grid is None else gd_grid
    tuning = tune_gd(_batch_grad(f), x0, xs, tol, grid, gd_maxiter)
    gd = gd_path(f.grad, x0, tuning["lr"], gd_maxiter, x_star=xs, tol=tol)
    name = "gradient descent"
    paths[name], steps[name] = gd, steps_to(gd, xs, tol)
    evals[name] = (0, len(gd) - 1, 0)
    return {"f": f, "tol": tol, "paths": paths, "steps": steps, "evaluations": evals,
            "gd_tuning": tuning}


def _newton_run(prob, w0, maxiter=50, gtol=1e-13):
    return minimize(prob, w0, jac=prob.grad, hess=prob.hess, method="newton", maxiter=maxiter,
                    gtol=gtol, line_search_fn="backtracking")


_POLISH = 5  # full Newton steps that polish a reference (reference_minimum)


def reference_minimum(prob, w0, *, polish=_POLISH):
    r"""The reference :math:`w^\star` of a strongly convex ``prob``, and a bound on its error.

    Newton with backtracking from ``w0`` until :math:`\|\nabla f\|_\infty \le 10^{-13}`,
    then up to ``polish`` *full* Newton steps, keeping the iterate with the smallest gradient.
    The full steps matter at the rounding floor: there the loss no longer decreases
    measurably, Armijo's test can reject a good step (or accept it) by one unit in the last
    place, and which happens depends on the CPU's vector kernels. The error bound is
    :math:`\|\nabla f(w)\|/\lambda_{\min}(\nabla^2 f(w))` (exact for a quadratic, and
    first-order accurate this close). Returns ``(w, bound)``.
    """
    polish = check_int("polish", polish, minimum=0)
    return _polished(prob, _newton_run(prob, w0).x, polish)


def _polished(prob, w, polish):
    """:func:`reference_minimum` from the end ``w`` of a finished Newton run."""
    g = prob.grad(w)
    for _ in range(polish):
        trial = w - np.linalg.solve(prob.hess(w), g)
        g_trial = prob.grad(trial)
        if not np.linalg.norm(g_trial) < np.linalg.norm(g):
            break
        w, g = trial, g_trial
    lam_min = float(np.linalg.eigvalsh(prob.hess(w))[0])
    return w, float(np.linalg.norm(g)) / lam_min


def _check_reference(name, thr, bound):
    """Targets must lie 100x above the reference's own error, or steps to them measure noise."""
    if thr < 100 * bound:
        raise ValueError(f"{name} asks for a distance {thr:.3g} to w*, less than 100x the "
                         f"reference's own error bound {bound:.3g}: choose a larger {name}")


def newton_flops(prob, w0, steps):
    r"""Floating-point operations of ``steps`` Newton steps with backtracking from ``w0``.

    Counted from the evaluations ``curvlib.minimize`` reports for exactly those steps: each
    step forms the Hessian and solves with it (``flops_hessian``), needs the gradient at its
    start (``flops_gradient``) and one loss evaluation (``flops_value``) per trial step of
    its line search.
    """
    steps = check_int("steps", steps, minimum=0)
    if steps == 0:
        return 0
    r = _newton_run(prob, w0, maxiter=steps, gtol=0.0)
    trials = r.nfev - r.njev
    return (r.nhev * prob.flops_hessian + (r.njev - 1) * prob.flops_gradient
            + trials * prob.flops_value)


def logistic_race(l2=1e-2, *, tol=1e-6, gd_lrs=None, gd_maxiter=50_000):
    r"""Newton and gradient descent on breast-cancer logistic regression, both from :math:`w = 0`.

    The problem is :meth:`curvlib.landscapes.LogisticRegression.breast_cancer` (``l2``).

    The reference :math:`w^\star` is :func:`reference_minimum` from :math:`w = 0`; a ``tol``
    less than 100 times its error bound raises. ``gd_lrs`` maps names to gradient-descent
    steps (default: the global smoothness bound's :math:`1/L` and
    :math:`2/(\lambda_{\max}+\lambda_{\min})` of the Hessian at :math:`w^\star`, the best
    fixed step for the local quadratic). Counts steps to
    :math:`\|w - w^\star\| \le` ``tol`` :math:`\|w^\star\|` and their floating-point
    operations (:func:`newton_flops`; ``flops_gradient`` per GD step). Returns a dict with
    ``problem``, ``w_star``, ``reference_error`` (its error bound), ``eigenvalues`` (of the
    Hessian at :math:`w^\star`), ``kappa``, ``lrs``, ``paths``, ``steps`` and ``flops``; the GD keys are ``"gradient descent
    (<name>)"``.
    """
    prob = LogisticRegression.breast_cancer(l2)
    w0 = np.zeros(prob.X.shape[1])
    r = _newton_run(prob, w0)
    w_star, bound = _polished(prob, r.x, _POLISH)  # reference_minimum(prob, w0), this run
    ev = np.linalg.eigvalsh(prob.hess(w_star))
    if gd_lrs is None:
        gd_lrs = {"η = 1/L": 1.0 / prob.smoothness, "η = 2/(λmax+λmin)": best_fixed_lr(ev)}
    thr = check_positive("tol", tol) * float(np.linalg.norm(w_star))
    _check_reference("tol", thr, bound)
    paths = {"Newton": r.path}
    for name, lr in gd_lrs.items():
        paths[f"gradient descent ({name})"] = gd_path(prob.grad, w0, lr, gd_maxiter,
                                                      x_star=w_star, tol=thr)
    steps = {k: steps_to(p, w_star, thr) for k, p in paths.items()}
    flops = {k: None if steps[k] is None else
             (newton_flops(prob, w0, steps[k]) if k == "Newton" else steps[k] * prob.flops_gradient)
             for k in paths}
    return {"problem": prob, "w_star": w_star, "reference_error": bound,
            "eigenvalues": ev, "kappa": float(ev[-1] / ev[0]),
            "lrs": dict(gd_lrs), "paths": paths, "steps": steps, "flops": flops, "tol": tol}


def newton_vs_gd(l2=1e-2, tols=(1e-3, 1e-6, 1e-9, 1e-12), *, seeds=(0, 1, 2, 3, 4),
                 tune_seed=100, grid=None, gd_maxiter=20_000):
    r"""Floating-point operations of Newton and of *tuned* gradient descent, paired over starts.

    For each relative tolerance :math:`\|w - w^\star\| \le \text{tol}\,\|w^\star\|` on
    :meth:`curvlib.landscapes.LogisticRegression.breast_cancer`: gradient descent's step is
    tuned by :func:`tune_gd` on
    ``grid`` (default :func:`lr_grid` from 0.1 to 100) from the start drawn with
    ``tune_seed``; both methods then run from the starts drawn with ``seeds`` (standard
    normal entries divided by :math:`\sqrt d`, so :math:`\|w_0\| \approx 1`). Newton has no
    step to tune (full step, Armijo backtracking). Returns one dict per tolerance: ``tol``,
    ``lr`` and ``lr_at_edge`` (of the tuning), ``gd_steps``, ``newton_steps``, ``gd_flops``,
    ``newton_flops`` (lists over ``seeds``), and ``ratio``, ``low``, ``high``: the geometric
    mean of GD's flops over Newton's and its 95% interval (:func:`curvbook.stats.paired_ratio`; above 1
    means Newton is cheaper), with ``verdict`` "Newton cheaper", "gradient descent cheaper"
    or "inconclusive" (the interval contains 1). The reference :math:`w^\star` is
    :func:`reference_minimum` from :math:`w = 0`; a tolerance less than 100 times its error
    bound raises, since steps to it would count rounding, not convergence.
    """
    prob = LogisticRegression.breast_cancer(l2)
    d = prob.X.shape[1]
    w_star, bound = reference_minimum(prob, np.zeros(d))
    scale = float(np.linalg.norm(w_star))

    def start(seed):
        return np.random.default_rng(seed).standard_normal(d) / math.sqrt(d)

    grid = lr_grid(0.1, 100.0) if grid is None else grid
    newton_paths = {s: _newton_run(prob, start(s)).path for s in seeds}
    rows = []
    for tol in tols:
        thr = check_positive("tols", tol) * scale
        _check_reference("tols", thr, bound)
        tuning = tune_gd(prob.grad_rows, start(tune_seed), w_star, thr, grid, gd_maxiter)
        gd_steps, nt_steps = [], []
        for s in seeds:
            gd = gd_path(prob.grad, start(s), tuning["lr"], gd_maxiter, x_star=w_star, tol=thr)
            gd_steps.append(steps_to(gd, w_star, thr))
            nt_steps.append(steps_to(newton_paths[s], w_star, thr))
        if None in gd_steps or None in nt_steps:
            raise ValueError(f"a run did not reach tol={tol}: GD {gd_steps}, Newton {nt_steps}")
        gd_flops = [k * prob.flops_gradient for k in gd_steps]
        nt_flops = [newton_flops(prob, start(s), k) for s, k in zip(seeds, nt_steps)]
        ratio, low, high = paired_ratio(gd_flops, nt_flops)
        rows.append({"tol": tol, "lr": tuning["lr"], "lr_at_edge": tuning["at_edge"],
                     "gd_steps": gd_steps, "newton_steps": nt_steps, "gd_flops": gd_flops,
                     "newton_flops": nt_flops, "ratio": ratio, "low": low, "high": high,
                     "verdict": verdict(low, high, "Newton cheaper", "gradient descent cheaper")})
    return rows


def digits_table(path, x_star, *, floor=1e-14):
    r"""Correct digits of each iterate: rows ``k``, ``error`` :math:`\|x_k - x^\star\|`,
    ``digits`` :math:`-\log_{10}(\|x_k - x^\star\|/\|x^\star\|)` and ``ratio``
    :math:`\|e_{k}\|/\|e_{k-1}\|^2` (bounded for quadratic convergence; ``None`` for ``k = 0``).

    Rows stop before the first iterate whose relative error is below ``floor`` or exactly
    zero: double precision has about 16 digits, and a solution of a problem with condition
    number :math:`\kappa` is only determined to about :math:`\kappa\epsilon` relative
    (:math:`10^{-14}` for :math:`\kappa \approx 20`), so smaller "errors" are rounding.
    """
    x_star = np.asarray(x_star, dtype=float)
    scale = max(float(np.linalg.norm(x_star)), np.finfo(float).tiny)
    rows, prev = [], None
    for k, x in enumerate(np.asarray(path, dtype=float)):
        e = float(np.linalg.norm(x - x_star))
        if e == 0:  # landed exactly on the reference: no digits left to count
            break
        rel = e / scale
        if rel < floor:
            break
        rows.append({"k": k, "error": e, "digits": 0.0 - math.log10(rel),  # never "-0.0"
                     "ratio": e / prev ** 2 if prev else None})
        prev = e
    return rows


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
#: Type size of every figure and widget frame of the chapter, in points: at the 100 dpi the
#: figures are drawn at (and shown 1:1 up to 7.5 inches wide) this is about 17 px, no
#: smaller than the site's body text (16 px).
FONT_SIZE = 12
_COLORS = {"gradient descent": "C0", "diagonal Newton": "C2", "Newton": "C3",
           "Newton (pure)": "C3", "Newton + line search": "C1", "Newton + damping": "C4"}


def _style(name, n_points, i, markers=None):
    """Line style of a method: its colour, a marker on every iterate of a short run (or of
    the runs named in ``markers``), grey and dashed for gradient descent at :math:`1/L`."""
    color = next((c for k, c in _COLORS.items() if name == k), None)
    if color is None:
        color = next((c for k, c in _COLORS.items() if name.startswith(k)), f"C{i}")
    kw = {"color": color, "lw": 1.8}
    if "1/L" in name:
        kw.update(color="0.45", ls="--")
    if (n_points <= 80) if markers is None else (name in markers):
        kw.update(marker="s", ms=8) if name == "diagonal Newton" else kw.update(marker="o", ms=5)
    return kw


def error_panel(ax, errors, *, tol=None, floor=None, xmax=None, xlabel="step t",
                ylabel="‖x_t − x*‖", legend=True, markers=None, fontsize=FONT_SIZE):
    r"""Errors against the step on a *linear* step axis and a log error axis.

    On a linear step axis a linear rate (a constant factor per step) is a straight line and
    Newton's quadratic phase a bend downwards; short runs get a marker on every iterate, so
    a one-step method shows as two points, not as a vertical line (``markers`` names the
    runs to mark instead, when the curves are cut short). Exact zeros (Newton on a
    quadratic) and any error below ``floor`` are drawn on the bottom edge, at ``floor``,
    whose tick reads "0" (all of them exact zeros) or "≤1e-9" (say).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    errors = {k: np.asarray(v, dtype=float) for k, v in errors.items()}
    positive = np.concatenate([e[e > 0] for e in errors.values()])
    if floor is None:
        floor = 10 ** math.floor(math.log10(positive.min())) / 10
    for i, (name, e) in enumerate(errors.items()):
        ax.plot(np.arange(len(e)), np.maximum(e, floor), label=name,
                **_style(name, len(e), i, markers))
    if tol is not None:
        ax.axhline(tol, color="0.4", ls=":", lw=1.2)
    ax.set_yscale("log")
    top = 10 ** math.ceil(math.log10(positive.max()))
    ax.set_ylim(floor / 1.5, top * 1.5)
    lo, hi = round(math.log10(floor)), round(math.log10(top))
    step = max(1, math.ceil((hi - lo) / 4))
    below = np.concatenate([e[e < floor] for e in errors.values()])
    exact = below.size > 0
    floor_label = "0" if exact and np.all(below == 0) else f"≤1e{lo}"
    exponents = sorted({lo, *range(hi, lo, -step)} if exact else set(range(hi, lo - 1, -step)))
    if exact and len(exponents) > 1 and exponents[1] - lo < step / 2:
        exponents.pop(1)  # keep the "0" tick clear of its neighbour
    ax.yaxis.set_major_locator(FixedLocator([10.0 ** k for k in exponents]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: floor_label if exact and round(math.log10(v)) == lo
        else f"1e{round(math.log10(v))}"))
    if xmax is not None:
        ax.set_xlim(-0.02 * xmax, xmax)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    if legend:
        ax.legend(fontsize=fontsize, frameon=False, handlelength=1.5)
    return ax


def _contours(ax, f, paths, grid=None, fontsize=FONT_SIZE, levels=12, log_levels=True):
    """Contours of ``f`` with each method's path in its colour; long zig-zags thin, underneath."""
    from curvlib import plots
    plots.contour(f, grid=grid, ax=ax, levels=levels, legend=False, log_levels=log_levels)
    for i, (name, p) in enumerate(paths.items()):
        p = np.asarray(p, dtype=float)
        kw = _style(name, len(p), i)
        thin = len(p) > 80
        ax.plot(p[:, 0], p[:, 1], color=kw["color"], lw=1.0 if thin else 1.8,
                zorder=3 if thin else 4, label=name)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=kw["color"], ms=5, zorder=5)
    ax.plot(*f.start, "o", color="k", ms=5, zorder=6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("x₁", fontsize=fontsize)
    ax.set_ylabel("x₂", fontsize=fontsize)
    return ax


def plot_race(race, axes=None, *, figsize=(7.2, 3.4)):
    """Paths on the contours (left) and :math:`\\|x_t - x^\\star\\|` against the step on a
    linear axis (right), for the result of :func:`quadratic_race`."""
    if axes is None:
        import matplotlib.pyplot as plt
        _, axes = plt.subplots(1, 2, figsize=figsize, layout="constrained",
                               width_ratios=[1, 1.35])
    f = race["f"]
    _contours(axes[0], f, race["paths"], log_levels=False)
    errors = {name: np.linalg.norm(p - f.minimum, axis=1) for name, p in race["paths"].items()}
    error_panel(axes[1], errors, tol=race["tol"], floor=race["tol"] / 1e3)
    return axes


def plot_rosenbrock(race, *, zoom=40, figsize=(7.2, 6.4)):
    """Rosenbrock: paths on the contours, the first ``zoom`` steps of every method, and the
    whole gradient-descent run, each error panel on a linear step axis."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=figsize, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    ax_c, ax_z = top.subplots(1, 2, width_ratios=[1, 1.2])
    f, xs = race["f"], race["f"].minimum
    _contours(ax_c, f, race["paths"], grid=f.grid(n=161), levels=30)
    errors = {k: np.linalg.norm(p - xs, axis=1) for k, p in race["paths"].items()}
    error_panel(ax_z, {k: e[:zoom + 1] for k, e in errors.items()}, tol=race["tol"],
                xmax=zoom, legend=False, markers=[k for k, e in errors.items() if len(e) <= 200])
    ax_z.set_title(f"the first {zoom} steps", fontsize=FONT_SIZE)
    handles, labels = ax_z.get_legend_handles_labels()
    bottom_ax = bottom.subplots()
    gd = {k: e for k, e in errors.items() if k.startswith("gradient descent")}
    error_panel(bottom_ax, gd, tol=race["tol"], legend=False)
    bottom_ax.set_title("gradient descent, every step (a straight line: a linear rate)",
                        fontsize=FONT_SIZE)
    bottom_ax.legend(handles, labels, fontsize=FONT_SIZE, frameon=False, loc="upper right",
                     ncols=2)
    return fig


def plot_logistic(race, tuned_name, *, figsize=(7.2, 6.2)):
    """Logistic regression: error against the step (top) and against the floating-point
    operations spent (bottom), both on linear axes, for :func:`logistic_race`."""
    import matplotlib.pyplot as plt
    prob, w_star = race["problem"], race["w_star"]
    errors = {k: np.linalg.norm(p - w_star, axis=1) for k, p in race["paths"].items()}
    fig, (ax_s, ax_f) = plt.subplots(2, 1, figsize=figsize, layout="constrained")
    xmax = 1.15 * race["steps"][tuned_name]
    shown = {}
    for k, e in errors.items():
        label = k if len(e) <= xmax else f"{k}: {race['steps'][k]:,} steps"
        shown[label] = e[:int(xmax) + 2]
    error_panel(ax_s, shown, tol=race["tol"] * np.linalg.norm(w_star), xmax=xmax,
                ylabel="‖w_t − w*‖", floor=1e-12)
    per_step = {}
    for k, e in errors.items():
        if k == "Newton":
            cost = [newton_flops(prob, np.zeros_like(w_star), t) for t in range(len(e))]
        else:
            cost = prob.flops_gradient * np.arange(len(e))
        per_step[k] = (np.asarray(cost, dtype=float) / 1e6, e)
    fmax = 1.15 * race["flops"][tuned_name] / 1e6
    for i, (k, (c, e)) in enumerate(per_step.items()):
        keep = c <= fmax * 1.02
        ax_f.plot(c[keep], e[keep], **_style(k, len(e), i))
    ax_f.set_yscale("log")
    ax_f.set_ylim(*ax_s.get_ylim())
    ax_f.yaxis.set_major_locator(ax_s.yaxis.get_major_locator())
    ax_f.yaxis.set_major_formatter(ax_s.yaxis.get_major_formatter())
    ax_f.yaxis.set_minor_locator(ax_s.yaxis.get_minor_locator())
    ax_f.axhline(race["tol"] * np.linalg.norm(w_star), color="0.4", ls=":", lw=1.2)
    ax_f.set_xlim(0, fmax)
    ax_f.set_xlabel("floating-point operations (millions)", fontsize=FONT_SIZE)
    ax_f.set_ylabel("‖w_t − w*‖", fontsize=FONT_SIZE)
    ax_f.tick_params(labelsize=FONT_SIZE)
    return fig


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------
EXPLORER_KAPPAS = (1, 3, 10, 30, 100, 300, 1000)
EXPLORER_ANGLES = (0, 15, 30, 45, 60, 75, 90)


def newton_explorer(tol=1e-6, maxiter=20_000):
    r"""Widget: condition number and rotation of a quadratic; three methods' paths and counts.

    Gradient descent takes its best fixed step :math:`2/(L+\mu)`, diagonal Newton (gradient
    descent preconditioned by the Hessian's diagonal) its own best fixed step, Newton the
    full step. Only diagonal Newton depends on the rotation: the other two are
    rotation-equivariant. The summary gives the steps each needs to bring
    :math:`\|x - x^\star\|` below ``tol``. Everything is computed in the factory (closed-form
    paths), so moving a slider only draws. Frames are 720 x 360 pixels with 12-point type.
    """
    from curvlib.widgets import Explorer

    tol = check_positive("tol", tol)
    frames = {}
    for kappa in EXPLORER_KAPPAS:
        for angle in EXPLORER_ANGLES:
            r = quadratic_race(kappa, math.radians(angle), tol=tol, maxiter=maxiter)
            frames[kappa, angle] = (r, r["f"].grid(n=101))

    def render(fig, kappa, angle):
        r, grid = frames[kappa, angle]
        f = r["f"]
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.5])
        fig.subplots_adjust(left=0.04, right=0.98, bottom=0.16, top=0.9, wspace=0.42)
        _contours(ax1, f, r["paths"], grid=grid, log_levels=False)
        ax1.set_title(f"κ = {kappa}, rotated {angle}°", fontsize=FONT_SIZE)
        errors = {name: np.linalg.norm(p - f.minimum, axis=1) for name, p in r["paths"].items()}
        n = max(len(e) for e in errors.values())
        error_panel(ax2, errors, tol=tol, floor=tol / 1e3, xmax=max(10, 1.05 * (n - 1)),
                    legend=True)
        texts = [f"{name} {k} step{'s' if k != 1 else ''}" if k is not None
                 else f"{name} more than {maxiter} steps"
                 for name, k in r["steps"].items()]
        return f"to ‖x − x*‖ ≤ {tol:g}: " + ", ".join(texts)

    return Explorer(render, {"kappa": list(EXPLORER_KAPPAS), "angle": list(EXPLORER_ANGLES)},
                    labels={"kappa": "condition number κ", "angle": "rotation (degrees)"},
                    initial={"kappa": 30, "angle": 30}, figsize=(7.2, 3.6), dpi=100,
                    max_frames=len(EXPLORER_KAPPAS) * len(EXPLORER_ANGLES),
                    alt="Paths of gradient descent, diagonal Newton and Newton on a quadratic of "
                        "chosen condition number and rotation, with their errors against the step")


EXPLORERS = [newton_explorer]
