r"""Chapter 1: Newton's method against gradient descent.

Gradient descent steps along :math:`-\eta\nabla f`; Newton's method solves the local quadratic
model, :math:`x_{k+1} = x_k - [\nabla^2 f(x_k)]^{-1}\nabla f(x_k)`. On a quadratic Newton lands
on the minimum in one step whatever the condition number :math:`\kappa` and rotation, while
gradient descent with :math:`\eta = 1/L` needs about :math:`\kappa\ln(1/\varepsilon)` steps.
Near a minimum with a positive definite, Lipschitz Hessian Newton converges quadratically,
:math:`\|e_{k+1}\| \le M\|e_k\|^2`: the number of correct digits doubles each step (Nocedal &
Wright, 2006, *Numerical Optimization*, 2nd ed., Springer, Thm. 3.5). Far from it, the pure
step can go anywhere; a backtracking line search or damping makes it safe (Boyd &
Vandenberghe, 2004, *Convex Optimization*, Cambridge University Press, §9.5).

The runs go through :func:`curvlib.minimizer.minimize` (``method="newton"`` and ``"gd"``). Two fast
paths, tested against it, keep the notebook and the widget quick: :func:`gd_quadratic_path`
(gradient descent on a quadratic in closed form) and :func:`gd_path` (a lean loop for tens
of thousands of gradient steps).
"""
from __future__ import annotations

import math

import numpy as np

from curvlib import minimize
from curvlib._checks import check_int, check_positive, check_real
from curvlib.landscapes import LogisticRegression, Quadratic, Rosenbrock

__all__ = ["quadratic", "gd_quadratic_path", "gd_path", "steps_to", "quadratic_race",
           "iteration_table", "rosenbrock_race", "logistic_race", "digits_table", "plot_race", "newton_explorer"]


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


def _gd_quadratic_horizon(f, lr, tol):
    r"""A step count by which GD on the quadratic ``f`` is surely within ``tol``: the first
    :math:`t` at which every eigen-component is below :math:`\text{tol}/\sqrt2` (inf-safe)."""
    lam, Q = np.linalg.eigh(f.A)
    c0 = np.abs(Q.T @ (np.asarray(f.start, dtype=float) - f.center))
    r = np.abs(1 - lr * lam)
    need = 1
    for ci, ri in zip(c0, r):
        if ci * math.sqrt(2) <= tol or ri == 0:
            continue
        if ri >= 1:
            return 10 ** 9
        need = max(need, math.ceil(math.log(tol / (math.sqrt(2) * ci)) / math.log(ri)))
    return need + 1


def steps_to(path, x_star, tol):
    """First index ``t`` with :math:`\\|x_t - x^\\star\\| \\le` ``tol``, or ``None``."""
    err = np.linalg.norm(np.asarray(path) - np.asarray(x_star), axis=-1)
    hit = np.flatnonzero(err <= check_positive("tol", tol))
    return int(hit[0]) if hit.size else None


# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------
def quadratic_race(kappa, angle=0.0, *, tol=1e-6, maxiter=100_000, lr=1.0):
    r"""Gradient descent (``lr`` in units of :math:`1/L`) and Newton on :func:`quadratic`.

    Both start at the landscape's ``start``. Returns a dict with the landscape ``f``, the
    ``paths`` (GD cut where it reaches ``tol``), and ``steps`` to :math:`\|x - x^\star\| \le`
    ``tol`` for each (``None`` if GD needs more than ``maxiter``).
    """
    f = quadratic(kappa, angle)
    tol = check_positive("tol", tol)
    maxiter = check_int("maxiter", maxiter, minimum=1)
    gd = gd_quadratic_path(f, f.start, lr, min(maxiter, _gd_quadratic_horizon(f, lr, tol)))
    k_gd = steps_to(gd, f.minimum, tol)
    newton = minimize(f, f.start, method="newton", maxiter=10, gtol=1e-14).path
    return {"f": f, "lr": lr, "tol": tol,
            "paths": {"gradient descent": gd if k_gd is None else gd[:k_gd + 1],
                      "Newton": newton},
            "steps": {"gradient descent": k_gd, "Newton": steps_to(newton, f.minimum, tol)}}


def iteration_table(kappas=(1, 10, 100, 1000), angles=(0.0, math.pi / 6), *, tol=1e-6):
    r"""Steps to ``tol`` for gradient descent (:math:`\eta = 1/L`) and Newton, per
    :math:`(\kappa, \text{angle})`, with the estimate :math:`\kappa\ln(\|e_0\|/\varepsilon)`."""
    rows = []
    for kappa in kappas:
        for angle in angles:
            r = quadratic_race(kappa, angle, tol=tol)
            e0 = float(np.linalg.norm(np.subtract(r["f"].start, r["f"].minimum)))
            rows.append({"kappa": kappa, "angle_deg": math.degrees(angle),
                         "gd_steps": r["steps"]["gradient descent"],
                         "gd_estimate": kappa * math.log(e0 / tol),
                         "newton_steps": r["steps"]["Newton"]})
    return rows


def rosenbrock_race(*, gd_lr=1e-3, tol=1e-6, gd_maxiter=60_000):
    r"""Newton (pure, with backtracking line search, with adaptive damping) and gradient
    descent on Rosenbrock's function from (-1.2, 1).

    Returns a dict: ``f``, ``paths`` (name -> iterates), ``steps`` (name -> first step within
    ``tol`` of the minimum (1, 1), or ``None``) and ``evaluations`` (name -> (function,
    gradient, Hessian) evaluations of the ``curvlib.minimize`` runs; for GD one gradient a step).
    """
    f = Rosenbrock()
    x0, xs = np.array(f.start), f.minimum
    runs = {"Newton (pure)": {},
            "Newton + line search": {"line_search_fn": "backtracking"},
            "Newton + adaptive damping": {"damping": 1.0, "adaptive_damping": True}}
    paths, steps, evals = {}, {}, {}
    for name, hyper in runs.items():
        r = minimize(f, x0, method="newton", maxiter=200, gtol=1e-12, **hyper)
        paths[name], steps[name] = r.path, steps_to(r.path, xs, tol)
        evals[name] = (r.nfev, r.njev, r.nhev)
    gd = gd_path(f.grad, x0, gd_lr, gd_maxiter, x_star=xs, tol=tol)
    name = f"gradient descent (lr={gd_lr:g})"
    paths[name], steps[name] = gd, steps_to(gd, xs, tol)
    evals[name] = (0, len(gd) - 1, 0)
    return {"f": f, "tol": tol, "paths": paths, "steps": steps, "evaluations": evals}


def logistic_race(l2=1e-2, *, tol=1e-6, gd_maxiter=50_000):
    r"""Newton and gradient descent (:math:`\eta = 1/L`) on logistic regression for breast
    cancer (:meth:`curvlib.landscapes.LogisticRegression.breast_cancer`).

    The reference :math:`w^\star` is Newton's iterate once the gradient is below
    :math:`10^{-13}`. Counts steps to :math:`\|w - w^\star\| \le` ``tol`` :math:`\|w^\star\|`,
    and the work in flops (``flops_newton`` per Newton step,
    ``flops_gradient`` per GD step). Returns a dict with ``problem``, ``w_star``, ``paths``,
    ``steps``, ``flops`` and ``kappa`` (condition number of the Hessian at :math:`w^\star`).
    """
    prob = LogisticRegression.breast_cancer(l2)
    w0 = prob.x0
    r = minimize(prob, w0, jac=prob.grad, hess=prob.hess, method="newton", maxiter=50,
                 gtol=1e-13, line_search_fn="backtracking")
    w_star = r.x
    thr = check_positive("tol", tol) * float(np.linalg.norm(w_star))
    gd = gd_path(prob.grad, w0, 1.0 / prob.smoothness, gd_maxiter, x_star=w_star, tol=thr)
    paths = {"Newton": r.path, "gradient descent": gd}
    steps = {k: steps_to(p, w_star, thr) for k, p in paths.items()}
    flops = {"Newton": None if steps["Newton"] is None else steps["Newton"] * prob.flops_newton,
             "gradient descent": None if steps["gradient descent"] is None
             else steps["gradient descent"] * prob.flops_gradient}
    ev = np.linalg.eigvalsh(prob.hess(w_star))
    return {"problem": prob, "w_star": w_star, "paths": paths, "steps": steps, "flops": flops,
            "kappa": float(ev[-1] / ev[0]), "tol": tol}


def digits_table(path, x_star, *, floor=1e-15):
    r"""Correct digits of each iterate: rows ``k``, ``error`` :math:`\|x_k - x^\star\|`,
    ``digits`` :math:`-\log_{10}(\|x_k - x^\star\|/\|x^\star\|)` and ``ratio``
    :math:`\|e_{k}\|/\|e_{k-1}\|^2` (bounded for quadratic convergence; ``None`` for ``k = 0``).

    Rows stop once the relative error is below ``floor`` (double precision has about 16
    digits; beyond that the "error" is rounding) or is exactly zero.
    """
    x_star = np.asarray(x_star, dtype=float)
    scale = max(float(np.linalg.norm(x_star)), np.finfo(float).tiny)
    rows, prev = [], None
    for k, x in enumerate(np.asarray(path, dtype=float)):
        e = float(np.linalg.norm(x - x_star))
        if e == 0:  # landed exactly on the reference: no digits left to count
            break
        rel = e / scale
        rows.append({"k": k, "error": e, "digits": 0.0 - math.log10(rel),  # never "-0.0"
                     "ratio": e / prev ** 2 if prev else None})
        prev = e
        if rel < floor:
            break
    return rows


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def plot_race(race, axes=None, *, x_star=None, log_x=False):
    """Paths on the contours (left) and :math:`\\|x_t - x^\\star\\|` against the step (right)
    for the result of :func:`quadratic_race` or :func:`rosenbrock_race`."""
    from curvlib import plots
    if axes is None:
        import matplotlib.pyplot as plt
        _, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    f = race["f"]
    x_star = f.minimum if x_star is None else x_star
    plots.contour(f, paths=race["paths"], ax=axes[0], path_kw={"lw": 1.2})
    errors = {name: np.linalg.norm(p - x_star, axis=1) for name, p in race["paths"].items()}
    plots.convergence(errors, ax=axes[1], log_x=log_x, start=1 if log_x else 0,
                      ylabel=r"$\|x_t - x^\star\|$", xlabel="step t")
    if "tol" in race:
        axes[1].axhline(race["tol"], color="0.5", ls=":", lw=1)
    return axes


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------
EXPLORER_KAPPAS = (1, 3, 10, 30, 100, 300, 1000)
EXPLORER_ANGLES = (0, 20, 45, 70)
_SYMLOG_TICKS = (0, 1, 10, 100, 1000, 10000)


def newton_explorer(tol=1e-6, maxiter=20_000):
    r"""Widget: condition number and rotation of a quadratic; GD and Newton paths and counts.

    Gradient descent uses :math:`\eta = 1/L`; Newton takes the full step. The summary gives the
    steps each needs to bring :math:`\|x - x^\star\|` below ``tol``. Everything is computed in
    the factory (closed-form GD paths), so moving a slider only draws.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from curvlib import plots
    from curvlib.widgets import Explorer

    tol = check_positive("tol", tol)
    frames = {}
    for kappa in EXPLORER_KAPPAS:
        for angle in EXPLORER_ANGLES:
            f = quadratic(kappa, math.radians(angle))
            gd = gd_quadratic_path(f, f.start, 1.0, maxiter)
            k = steps_to(gd, f.minimum, tol)
            newton = f.start - np.linalg.solve(f.A, f.grad(np.array(f.start)))
            frames[kappa, angle] = (f, f.grid(n=101), gd if k is None else gd[:k + 1], k,
                                    np.array([f.start, newton]))

    def render(fig, kappa, angle):
        f, grid, gd, k, newton = frames[kappa, angle]
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.25])
        plots.contour(f, grid=grid, ax=ax1, levels=12, legend=False, path_kw={"lw": 1.2},
                      paths={"gradient descent": gd, "Newton": newton})
        ax1.set_xticks([])
        ax1.set_yticks([])
        ax1.set_title(f"κ={kappa}, rotation {angle}°", fontsize="small")
        # an exact zero (Newton on a quadratic) is drawn at 1e-12, below the window
        err = {name: np.maximum(np.linalg.norm(p - f.minimum, axis=1), 1e-12)
               for name, p in (("gradient descent", gd), ("Newton", newton))}
        plots.convergence(err, ax=ax2, ylabel="‖x − x*‖", xlabel="step (0, then log scale)")
        ax2.set_xscale("symlog", linthresh=1)
        ax2.set_xlim(0, max(10, 1.3 * len(gd)))
        ax2.xaxis.set_major_locator(FixedLocator(_SYMLOG_TICKS))
        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax2.xaxis.set_minor_locator(NullLocator())
        ax2.axhline(tol, color="0.5", ls=":", lw=1)
        ax2.set_ylim(tol / 100, 10)
        plots.plain_log_ticks(ax2)
        texts = [f"{name} {n} step{'s' if n != 1 else ''}" if n is not None
                 else f"{name} more than {maxiter} steps"
                 for name, n in (("gradient descent (lr = 1/L)", k),
                                 ("Newton", steps_to(newton, f.minimum, tol)))]
        return f"to ‖x − x*‖ ≤ {tol:g}: " + ", ".join(texts)

    return Explorer(render, {"kappa": list(EXPLORER_KAPPAS), "angle": list(EXPLORER_ANGLES)},
                    labels={"kappa": "condition number κ", "angle": "rotation (degrees)"},
                    initial={"kappa": 30, "angle": 20},
                    alt="Gradient descent and Newton paths on a quadratic of chosen condition "
                        "number and rotation, with their errors against the step")

