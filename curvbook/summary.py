r"""Chapter 10: the lecture's comparison table with the book's measured columns beside it.

The lecture (section 3.2) sums up five methods in one table -- Method / Memory / Convergence /
Use case for Newton, L-BFGS, Adam, SGD+Momentum and SGD. :func:`comparison_table` puts next to
each row what the book measured:

* **state bytes** for the digits MLP 64-32-10 (2,410 parameters, float32), from
  :func:`curvlib.memory.optimizer_state_bytes` (Newton: the dense Hessian it forms each step);
* **iterations** to :math:`\|\nabla f\|_\infty \le 10^{-6}` on a rotated quadratic with
  condition number :math:`\kappa = 100` (:func:`quadratic_iterations`, computed here: cheap);
* the **measured contraction factor** :math:`\rho = \|x_{k+1}-x^\star\| / \|x_k-x^\star\|`
  (geometric mean over the last iterations before the stop) on that quadratic -- 0 means
  finite termination, :math:`\rho \to 0` superlinear, a constant :math:`\rho < 1` linear;
* numbers read back from the chapters' results (``chapters/results/*.json``): iterations on
  chapter 3's logistic regression, steps to a training loss of 0.1 on digits (chapter 8).
  A missing result shows as ``None`` (the chapter has not been run), never as a guess.

Rates: Nocedal & Wright (2006), *Numerical Optimization*, 2nd ed., Springer (Newton: Thm 3.5;
quasi-Newton superlinear: Thm 6.6); heavy ball on quadratics: Polyak (1964), USSR Comp. Math.
and Math. Phys. 4(5).
"""
from __future__ import annotations

import math

import numpy as np

from . import LECTURE_TABLE, load_results
from curvlib._checks import check_int, check_positive

__all__ = ["LECTURE_TABLE", "METHODS", "DIGITS_MLP_PARAMS", "state_bytes", "quadratic_iterations",
           "contraction_factor", "read_measured", "comparison_table"]

#: method -> (curvlib.minimize method, hyperparameters, curvlib.memory name, memory hyperparameters)
METHODS = {
    "Newton": ("newton", {}, "newton", {}),
    "L-BFGS": ("lbfgs", {"history_size": 10}, "lbfgs", {"history_size": 10}),
    "Adam": ("adam", {"lr": 0.1}, "adam", {}),
    "SGD+Momentum": ("momentum", {"momentum": 0.9}, "momentum", {}),
    "SGD": ("gd", {}, "sgd", {}),
}
#: Parameters of the digits MLP 64-32-10, 64*32 + 32 + 32*10 + 10.
DIGITS_MLP_PARAMS = 64 * 32 + 32 + 32 * 10 + 10


def state_bytes(method, n_params=DIGITS_MLP_PARAMS, dtype="float32"):
    """Bytes ``method`` (a key of :data:`METHODS`) keeps for ``n_params`` parameters."""
    from curvlib.memory import optimizer_state_bytes
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    n_params = check_int("n_params", n_params, minimum=1)
    _, _, name, hyper = METHODS[method]
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


def quadratic_iterations(kappa=100.0, angle=math.pi / 6, gtol=1e-6, maxiter=5000):
    r"""Iterations and contraction factor of each method on a rotated quadratic.

    :math:`f(x) = \frac12 (x-c)^\top A (x-c)` with eigenvalues 1 and :math:`\kappa`
    (:class:`curvlib.landscapes.Quadratic`). Plain gradient descent uses the optimal step
    :math:`2/(\lambda_1+\lambda_n)`; the heavy ball Polyak's optimal
    :math:`\eta = 4/(\sqrt{\lambda_1}+\sqrt{\lambda_n})^2`, :math:`\beta = ((\sqrt\kappa-1)/(\sqrt\kappa+1))^2`;
    Adam ``lr=0.1``; L-BFGS and Newton need no rate. Returns ``{method: {"iterations",
    "converged", "rho"}}``.
    """
    from curvlib.landscapes import Quadratic
    from curvlib.minimizer import minimize
    kappa = check_positive("kappa", kappa)
    q = Quadratic(condition_number=kappa, angle=angle)
    sq = math.sqrt(kappa)
    hyper = {"SGD": {"lr": 2.0 / (1.0 + kappa)},
             "SGD+Momentum": {"lr": 4.0 / (1.0 + sq) ** 2, "momentum": ((sq - 1) / (sq + 1)) ** 2}}
    x_star = np.asarray(q.minimum if hasattr(q, "minimum") else q.center, float)
    out = {}
    for name, (method, h, _, _) in METHODS.items():
        h = {**h, **hyper.get(name, {})}
        res = minimize(q, method=method, gtol=gtol, maxiter=maxiter, **h)
        out[name] = {"iterations": int(res.nit), "converged": bool(res.success),
                     "rho": contraction_factor(res.path, x_star)}
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


def comparison_table(kappa=100.0, load=load_results):
    """One dict per method: the lecture's three columns and the measured ones (see module doc)."""
    quad = quadratic_iterations(kappa)
    measured = read_measured(load)
    rows = []
    for name, (mem, conv, use) in LECTURE_TABLE.items():
        q = quad[name]
        rows.append({"method": name, "memory": mem, "convergence": conv, "use": use,
                     "state_bytes": state_bytes(name), "quad_iterations": q["iterations"],
                     "quad_converged": q["converged"], "quad_rho": q["rho"], **measured[name]})
    return rows
