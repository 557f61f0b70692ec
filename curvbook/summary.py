r"""Chapter 10: the lecture's comparison table with the book's measured columns beside it.

The lecture (section 3.2) sums up five methods in one table -- Method / Memory / Convergence /
Use case for Newton, L-BFGS, Adam, SGD+Momentum and SGD. :func:`comparison_table` puts next to
each row what the book measured:

* **state bytes** for the digits MLP 64-32-10 (2,410 parameters, float32), from
  :func:`curvlib.memory.optimizer_state_bytes` (Newton: the dense Hessian it forms each step);
* **iterations** to :math:`\|\nabla f\|_\infty \le 10^{-6}` on a quadratic in :math:`n = 200`
  dimensions with condition number :math:`\kappa = 100` (:class:`QuadraticTask`), far more
  dimensions than L-BFGS's memory :math:`m = 10` (on a 2-D problem L-BFGS would be full BFGS).
  Every first-order method is tuned by one rule on one grid (:func:`tune`): fewest iterations
  from the slowest of five tuning starts, the learning rate on a grid of 4 points per decade extended until the
  best rate is inside it, and the momentum coefficient (heavy ball's :math:`\beta`, Adam's
  :math:`\beta_1`) on :data:`BETAS`. The tuned settings then run from five other starts;
* the **measured contraction factor** :math:`\rho = \|x_{k+1}-x^\star\| / \|x_k-x^\star\|`
  (geometric mean over the last 20 iterations before the stop) -- 0 means finite termination,
  :math:`\rho \to 0` superlinear, a constant :math:`\rho < 1` linear;
* numbers read back from the chapters' results (``chapters/results/*.json``): iterations on
  chapter 3's logistic regression, steps to a training loss of 0.1 on digits (chapter 8), both
  from rates tuned on a grid in those chapters. A missing result shows as ``None`` (the chapter
  has not been run), never as a guess.

Rates: Nocedal & Wright (2006), *Numerical Optimization*, 2nd ed., Springer (Newton: Thm 3.5;
quasi-Newton superlinear: Thm 6.6); heavy ball on quadratics: Polyak (1964), USSR Comp. Math.
and Math. Phys. 4(5); the heavy ball beyond quadratics: Lessard, Recht & Packard (2016), SIAM
J. Optim. 26(1).
"""
from __future__ import annotations

import math

import numpy as np

from . import LECTURE_TABLE, load_results
from curvlib._checks import check_int, check_positive

__all__ = ["LECTURE_TABLE", "METHODS", "DIGITS_MLP_PARAMS", "BETAS", "SEEDS", "TUNE_SEEDS",
           "QuadraticTask", "state_bytes", "contraction_factor", "tune", "quadratic_study",
           "read_measured", "comparison_table", "convergence_explorer"]

#: method -> (curvlib.minimize method, fixed hyperparameters, curvlib.memory name, memory
#: hyperparameters, the hyperparameters tuned besides ``lr``)
METHODS = {
    "Newton": ("newton", {}, "newton", {}, None),
    "L-BFGS": ("lbfgs", {"history_size": 10}, "lbfgs", {"history_size": 10}, None),
    "Adam": ("adam", {}, "adam", {}, "beta1"),
    "SGD+Momentum": ("momentum", {}, "momentum", {}, "momentum"),
    "SGD": ("gd", {}, "sgd", {}, ""),
}
#: Parameters of the digits MLP 64-32-10, 64*32 + 32 + 32*10 + 10.
DIGITS_MLP_PARAMS = 64 * 32 + 32 + 32 * 10 + 10
#: The one grid of momentum coefficients (heavy ball's beta, Adam's beta1).
BETAS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Starts the tuned settings are reported from; the tuning start is separate.
SEEDS = (0, 1, 2, 3, 4)
TUNE_SEEDS = (100, 101, 102, 103, 104)


def state_bytes(method, n_params=DIGITS_MLP_PARAMS, dtype="float32"):
    """Bytes ``method`` (a key of :data:`METHODS`) keeps for ``n_params`` parameters."""
    from curvlib.memory import optimizer_state_bytes
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    n_params = check_int("n_params", n_params, minimum=1)
    _, _, name, hyper, _ = METHODS[method]
    return int(optimizer_state_bytes(name, n_params, dtype, **hyper))


def contraction_factor(path, x_star, last=5):
    r"""Geometric mean of :math:`\|x_{k+1}-x^\star\|/\|x_k-x^\star\|` over the last ``last`` steps
    of ``path`` (rows are iterates) with a nonzero error; 0.0 if the path hits :math:`x^\star`."""
    last = check_int("last", last, minimum=1)
    err = np.linalg.norm(np.asarray(path, float) - np.asarray(x_star, float), axis=1)
    if len(err) < 2:
        raise ValueError("path must have at least two iterates")
    if err[-1] <= 1e-14 * max(err[0], 1e-300) and len(err) <= last + 2:
        return 0.0
    ok = np.flatnonzero(err > 1e-14 * err[0])
    e = err[ok[0]:ok[-1] + 1]
    if len(e) < 2:
        return 0.0
    r = e[1:] / e[:-1]
    r = r[-last:]
    return float(np.exp(np.mean(np.log(np.maximum(r, 1e-300)))))


class QuadraticTask:
    r""":math:`f(x) = \tfrac12 x^\top A x` with :math:`A = Q\,\mathrm{diag}(\lambda)\,Q^\top`:
    ``n`` eigenvalues log-spaced from 1 to ``kappa``, :math:`Q` a random rotation (``seed``).
    The minimiser is :math:`x^\star = 0`; ``start(seed)`` draws a standard normal start.
    Call it for ``(f, gradient)`` (``jac=True`` in :func:`curvlib.minimize`)."""

    def __init__(self, kappa=100.0, n=200, seed=0):
        self.kappa = check_positive("kappa", kappa)
        if self.kappa < 1:
            raise ValueError(f"kappa must be >= 1, got {kappa}")
        self.n = check_int("n", n, minimum=2)
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((self.n, self.n)))
        self.eigenvalues = np.logspace(0.0, math.log10(self.kappa), self.n)
        self.A = (q * self.eigenvalues) @ q.T

    def __call__(self, x):
        g = self.A @ x
        return 0.5 * float(x @ g), g

    def hess(self, x):
        return self.A

    def start(self, seed):
        return np.random.default_rng([int(seed), 7]).standard_normal(self.n)


def _run(task, name, seed, gtol, maxiter, **hyper):
    from curvlib.minimizer import minimize
    method, fixed, _, _, _ = METHODS[name]
    if "beta1" in hyper:  # Adam's beta1, with its default beta2
        hyper = dict(hyper)
        hyper["betas"] = (hyper.pop("beta1"), 0.999)
    with np.errstate(over="ignore", invalid="ignore"):
        return minimize(task, task.start(seed), jac=True, hess=task.hess if method == "newton" else None,
                        method=method, gtol=gtol, maxiter=maxiter, **{**fixed, **hyper})


def tune(task, name, *, lrs=None, betas=BETAS, gtol=1e-6, maxiter=5000, seeds=TUNE_SEEDS,
         margin=0.05, extend=4):
    r"""The setting of first-order method ``name`` with the fewest iterations to ``gtol`` from
    the slowest of the tuning starts ``seeds`` (not reported): ``lr`` on ``lrs`` (default 4
    points per decade, :math:`10^{-3}` to 1), extended by a decade, at most ``extend`` times, while the best rate
    is at an end; the momentum coefficient on ``betas``. A setting that misses ``gtol`` within
    ``maxiter`` from any tuning start scores infinity. Of the settings within ``margin`` of the
    fewest iterations the smallest rate (then the smallest coefficient) is chosen: the fastest
    rate often sits at the border of failure, where another start fails. Returns ``{"lr",
    <beta name>, "iterations", "lr_at_edge", "beta_at_edge", "lrs"}``.
    """
    from curvlib.compare import lr_grid
    if METHODS.get(name, (None,) * 5)[4] is None:
        raise ValueError(f"name must be a first-order method of {list(METHODS)}, got {name!r}")
    beta_name = METHODS[name][4]
    lrs = sorted(lr_grid(1e-3, 1.0, per_decade=4) if lrs is None else lrs)
    bs = tuple(betas) if beta_name else (None,)
    scores, fewest = {}, maxiter
    for _ in range(extend + 1):
        for lr in lrs[::-1]:  # large rates first: they fail fast, and the best so far stops the rest
            for b in bs:
                if (lr, b) not in scores:
                    hyper = {"lr": lr} if b is None else {"lr": lr, beta_name: b}
                    # a run slower than the best so far (and its margin) cannot win: stop it there
                    score = 0
                    for s in seeds:  # the slowest tuning start counts
                        r = _run(task, name, s, gtol, int((1 + margin) * fewest), **hyper)
                        score = max(score, r.nit if r.success else math.inf)
                        if not math.isfinite(score):
                            break
                    scores[(lr, b)] = score
                    fewest = min(fewest, score)
        fewest = min(scores.values())
        if not math.isfinite(fewest):
            raise RuntimeError(f"{name}: no setting on the grid reached gtol={gtol} in {maxiter} steps")
        # within `margin` of the fewest iterations, the smallest rate: a rate at the border of
        # failure that saves a few iterations would not survive another start
        lr, b = min(k for k, v in scores.items() if v <= (1 + margin) * fewest)
        lo, hi = lrs[0], lrs[-1]
        if lr == lo:
            lrs = sorted(set(lrs) | set(lr_grid(lo / 10, lo, per_decade=4)))
        elif lr == hi:
            lrs = sorted(set(lrs) | set(lr_grid(hi, hi * 10, per_decade=4)))
        else:
            break
    out = {"lr": lr, "iterations": scores[(lr, b)], "lr_at_edge": lr in (lrs[0], lrs[-1]), "lrs": lrs,
           "beta_at_edge": b is not None and b in (bs[0], bs[-1])}
    if b is not None:
        out[beta_name] = b
    return out


def quadratic_study(kappa=100.0, n=200, *, seeds=SEEDS, gtol=1e-6, maxiter=5000):
    r"""Every method of :data:`METHODS` on :class:`QuadraticTask` ``(kappa, n)``: first-order
    methods tuned by :func:`tune`, then each run from every start of ``seeds``.

    Returns ``{method: {"hyper", "tuning", "iterations", "converged", "rho", "nfev"}}`` (arrays
    over the seeds; ``tuning`` is :func:`tune`'s answer or None) and ``"task"``.
    """
    task = QuadraticTask(kappa, n)
    out = {"task": task}
    for name, (_, fixed, _, _, beta) in METHODS.items():
        tuning = None if beta is None else tune(task, name, gtol=gtol, maxiter=maxiter)
        hyper = dict(fixed) if tuning is None else \
            {k: tuning[k] for k in ("lr", beta) if k}
        runs = [_run(task, name, s, gtol, maxiter, **({} if tuning is None else hyper)) for s in seeds]
        out[name] = {"hyper": hyper, "tuning": tuning,
                     "iterations": np.array([r.nit for r in runs]),
                     "converged": np.array([r.success for r in runs]),
                     "rho": np.array([contraction_factor(r.path, np.zeros(n), last=20) for r in runs]),
                     "nfev": np.array([r.nfev for r in runs])}
    return out


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def read_measured(load=load_results):
    """What chapters 3, 4 and 8 stored, per method: ``{method: {"ch3_iterations",
    "ch8_steps_to_0.1", "ch4_rate_kappa100"}}``; ``None`` where a result is missing."""
    def safe(stem):
        try:
            return load(stem)
        except FileNotFoundError:
            return {}
    r3, r4, r8 = safe("03_lbfgs_and_adam"), safe("04_momentum"), safe("08_empirical_evidence")
    it3 = _get(r3, "iterations") or {}
    steps8 = _get(r8, "speed_steps_mean") or {}
    rates = {row.get("kappa"): row for row in (_get(r4, "rates") or []) if isinstance(row, dict)}
    k100 = rates.get(100.0) or rates.get(100) or {}
    return {
        "Newton": {"ch3_iterations": it3.get("Newton"), "ch8_steps_to_0.1": None,
                   "ch4_rate_kappa100": None},
        "L-BFGS": {"ch3_iterations": it3.get("L-BFGS (m=10)"), "ch8_steps_to_0.1": None,
                   "ch4_rate_kappa100": None},
        "Adam": {"ch3_iterations": it3.get("Adam"), "ch8_steps_to_0.1": steps8.get("Adam"),
                 "ch4_rate_kappa100": None},
        "SGD+Momentum": {"ch3_iterations": it3.get("heavy ball"),
                         "ch8_steps_to_0.1": steps8.get("SGD+momentum"),
                         "ch4_rate_kappa100": k100.get("heavy_ball_measured")},
        "SGD": {"ch3_iterations": it3.get("GD"), "ch8_steps_to_0.1": steps8.get("SGD"),
                "ch4_rate_kappa100": k100.get("gd_measured")},
    }


def comparison_table(study, load=load_results):
    """One dict per method: the lecture's three columns and the measured ones (module doc).
    ``study`` is :func:`quadratic_study`'s answer; iterations (a start that missed the target
    counts as infinite) are medians over the starts, contraction factors medians over the
    starts that reached the target (``quad_reached`` of them)."""
    measured = read_measured(load)
    rows = []
    for name, (mem, conv, use) in LECTURE_TABLE.items():
        s = study[name]
        rows.append({"method": name, "memory": mem, "convergence": conv, "use": use,
                     "state_bytes": state_bytes(name), "hyper": s["hyper"],
                     "tuned": s["tuning"] is not None,
                     "quad_iterations": float(np.median(np.where(s["converged"], s["iterations"], np.inf))),
                     "quad_reached": int(np.sum(s["converged"])), "quad_starts": len(s["converged"]),
                     "quad_rho": float(np.median(s["rho"][s["converged"]] if s["converged"].any() else s["rho"])),
                     **measured[name]})
    return rows


# ---------------------------------------------------------------------------------------------
# The chapter's explorer
# ---------------------------------------------------------------------------------------------

def convergence_explorer(kappas=(10, 30, 100, 300, 1000, 3000), memories=(1, 2, 5, 10, 20, 50),
                         n=200, gtol=1e-6, maxiter=1000):
    r"""Gradient norm against iteration on :class:`QuadraticTask` for gradient descent and the
    heavy ball at their optimal constant settings (the best fixed rates for a quadratic with
    known :math:`\lambda_{\min}, \lambda_{\max}`), L-BFGS with memory ``m`` and Newton.

    Controls: ``kappa`` (condition number) and ``m`` (L-BFGS's memory). Every run is made in the
    factory; a frame only draws.
    """
    from curvlib.minimizer import minimize
    from curvlib.widgets import Explorer
    kappas = [float(k) for k in kappas]
    runs, tasks = {}, {}
    for k in kappas:
        task = tasks[k] = QuadraticTask(k, n)
        sq = math.sqrt(k)
        x0 = task.start(0)
        common = dict(gtol=gtol, maxiter=maxiter)
        runs[(k, "GD")] = _run(task, "SGD", 0, lr=2.0 / (1.0 + k), **common)
        runs[(k, "heavy ball")] = _run(task, "SGD+Momentum", 0, lr=4.0 / (1.0 + sq) ** 2,
                                       momentum=((sq - 1) / (sq + 1)) ** 2, **common)
        runs[(k, "Newton")] = _run(task, "Newton", 0, **common)
        for m in memories:
            runs[(k, m)] = minimize(task, x0, jac=True, method="lbfgs", history_size=int(m), **common)

    curves = {key: np.abs(r.path @ tasks[key[0]].A).max(axis=1) for key, r in runs.items()}
    colors = {"GD": "C4", "heavy ball": "C3", "L-BFGS": "C1", "Newton": "C0"}

    def render(fig, kappa, m):
        ax = fig.subplots()
        parts = []
        for label, key in (("GD", (kappa, "GD")), ("heavy ball", (kappa, "heavy ball")),
                           (f"L-BFGS (m={m})", (kappa, m)), ("Newton", (kappa, "Newton"))):
            g = np.maximum(curves[key], 1e-8)  # Newton lands on round-off: show it at the floor
            color = colors[label.split(" (")[0]]
            ax.semilogy(np.arange(len(g)), g, color=color, lw=1.5, label=label,
                        marker="o" if len(g) < 5 else None)
            r = runs[key]
            parts.append(f"{label} {r.nit}" if r.success else f"{label} not within {maxiter}")
        ax.axhline(gtol, color="gray", lw=0.8, ls="--")
        ax.set_ylim(0.5e-8, None)
        ax.set_xlabel("iteration")
        ax.set_ylabel("gradient norm (max)")
        ax.set_title(f"quadratic, n = {n}, κ = {kappa:g}")
        ax.legend(fontsize=8, loc="upper right")
        return f"iterations to a gradient of {gtol:g}: " + ", ".join(parts)

    return Explorer(render, {"kappa": kappas, "m": list(memories)},
                    labels={"kappa": "condition number κ", "m": "L-BFGS memory m"}, layout="constrained",
                    initial={"kappa": 100.0 if 100.0 in kappas else kappas[0],
                             "m": 10 if 10 in memories else memories[0]},
                    alt="Gradient norm against iteration on a 200-dimensional quadratic for "
                        "gradient descent, the heavy ball, L-BFGS and Newton's method")
