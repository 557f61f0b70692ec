r"""Chapter 3: the practical compromises -- L-BFGS and Adam -- measured.

**L-BFGS.** The lecture writes the BFGS update of the inverse-Hessian approximation

.. math::
    H_{k+1}^{-1} = (I - \rho_k s_k y_k^\top)\, H_k^{-1}\, (I - \rho_k y_k s_k^\top)
                   + \rho_k s_k s_k^\top,\qquad \rho_k = \frac{1}{y_k^\top s_k},

(:func:`curvlib.quasi_newton.bfgs_inverse_update`, re-exported here, a dense :math:`n\times n`
matrix). L-BFGS never forms it: the
two-loop recursion (:func:`curvlib.quasi_newton.two_loop_direction`) applies the same
matrix, built from the last :math:`m` pairs on top of :math:`\gamma I`, to a vector in
:math:`O(mn)`. :func:`two_loop_check` holds the two against each other along a real run.
Liu & Nocedal (1989), "On the limited memory BFGS method for large scale optimization",
Math. Programming 45:503-528; Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, §7.2.

The experiments run on full-batch, L2-regularised logistic regression of scikit-learn's
breast-cancer set (:class:`curvlib.landscapes.LogisticRegression`, :math:`\lambda = 10^{-3}`): :func:`full_batch_race` (GD, heavy ball, Adam,
L-BFGS, Newton), :func:`history_sweep` (the history size :math:`m`), :func:`error_ratios`
(is the convergence superlinear?) and :func:`minibatch_grid` (L-BFGS on mini-batches, with
the curvature pair taken across two batches as ``torch.optim.LBFGS`` does, or on one batch
as in Schraudolph, Yu & Günter (2007), "A stochastic quasi-Newton method for online convex
optimization", AISTATS, and Berahas, Nocedal & Takáč (2016), "A multi-batch L-BFGS method
for machine learning", NeurIPS).

**Adam.** The lecture's Adam has no bias correction; Kingma & Ba (2015), "Adam: A Method for
Stochastic Optimization", ICLR, divide :math:`m_t` by :math:`1-\beta_1^t` and :math:`v_t` by
:math:`1-\beta_2^t`. :func:`bias_correction_ratio` measures how much larger the lecture's
first steps are. :func:`preconditioning_race` shows Adam as a *diagonal* preconditioner: it
removes ill-conditioning along the coordinate axes and not along rotated directions.
:func:`comparison_rows` rebuilds the lecture's comparison table with measured optimizer-state
bytes and measured convergence.
"""
from __future__ import annotations

import math

import numpy as np

from curvlib import methods, minimize, plots, rules
from curvlib._checks import check_int, check_positive, check_real, check_unit_interval
from curvlib.landscapes import LogisticRegression
from curvlib.quasi_newton import bfgs_inverse_update
from curvlib.runs import single_thread
from . import LECTURE_TABLE

__all__ = ["explicit_inverse_hessian", "two_loop_check",
           "full_batch_race", "plot_race", "extrapolated_iterations", "history_sweep", "error_ratios", "ratio_by_window",
           "stochastic_lbfgs", "stochastic_adam", "minibatch_grid", "plot_minibatch_grid",
           "bias_correction_ratio", "plot_bias_correction", "quadratic_problem", "jacobi_condition_number",
           "preconditioning_race", "plot_preconditioning", "state_bytes_rows", "comparison_rows", "comparison_markdown",
           "adam_explorer", "lbfgs_history_explorer"]


# --------------------------------------------------------------------------------------
# The problem: L2-regularised logistic regression on breast cancer
# --------------------------------------------------------------------------------------
def _problem(problem, l2=1e-3):
    """``problem``, or the chapter's default: logistic regression on breast cancer, ``l2``."""
    return LogisticRegression.breast_cancer(l2) if problem is None else problem


def _minimize(problem, method, **kw):
    """:func:`curvlib.minimizer.minimize` on ``problem`` from :math:`w = 0`, with its exact Hessian."""
    return minimize(problem.value_and_grad, problem.x0, jac=True, hess=problem.hess,
                    method=method, **kw)


# --------------------------------------------------------------------------------------
# BFGS as the lecture writes it, and the two-loop recursion
# --------------------------------------------------------------------------------------
def explicit_inverse_hessian(s_list, y_list, gamma):
    r"""The matrix L-BFGS applies implicitly: BFGS updates with the stored pairs, oldest first,
    starting from :math:`H^0 = \gamma I`."""
    n = len(s_list[0])
    H = check_positive("gamma", gamma) * np.eye(n)
    for s, y in zip(s_list, y_list):
        H = bfgs_inverse_update(H, s, y)
    return H


@single_thread()
def two_loop_check(problem=None, history_size=5, maxiter=40):
    r"""Along an L-BFGS run, compare the two-loop direction with :math:`-H_k^{-1}\nabla f_k` formed explicitly.

    Runs :func:`curvlib.minimizer.minimize` (L-BFGS, ``history_size`` :math:`m`) on ``problem``,
    recovers the pairs :math:`s_j = w_{j+1}-w_j`, :math:`y_j = \nabla f_{j+1} - \nabla f_j` from
    its path, and at every iteration :math:`k \ge 1` compares
    :func:`curvlib.quasi_newton.two_loop_direction` (last :math:`m` pairs,
    :math:`\gamma = s^\top y / y^\top y` of the newest) with :func:`explicit_inverse_hessian`
    times :math:`-\nabla f_k`. Returns the largest relative difference, the number of
    iterations compared and the bytes of the explicit matrix against those of the pairs.
    """
    from curvlib.quasi_newton import two_loop_direction
    problem = _problem(problem)
    m = check_int("history_size", history_size, minimum=1)
    res = _minimize(problem, "lbfgs", history_size=m, maxiter=check_int("maxiter", maxiter, minimum=2),
                           gtol=1e-10)
    W = res.path
    G = np.array([problem.grad(w) for w in W])
    S, Y = np.diff(W, axis=0), np.diff(G, axis=0)
    worst, compared = 0.0, 0
    for k in range(1, len(W)):
        pairs = [(s, y) for s, y in zip(S[:k], Y[:k]) if y @ s > np.finfo(float).eps * (y @ y)][-m:]
        if not pairs:
            continue
        s_list, y_list = [p[0] for p in pairs], [p[1] for p in pairs]
        gamma = float(s_list[-1] @ y_list[-1] / (y_list[-1] @ y_list[-1]))
        rho = [1.0 / float(y @ s) for s, y in pairs]
        d_two_loop = two_loop_direction(G[k], s_list, y_list, rho, gamma)
        d_explicit = -explicit_inverse_hessian(s_list, y_list, gamma) @ G[k]
        worst = max(worst, float(np.linalg.norm(d_two_loop - d_explicit) / np.linalg.norm(d_explicit)))
        compared += 1
    n = problem.dim
    return dict(max_relative_difference=worst, iterations_compared=compared, dim=n,
                explicit_bytes=8 * n * n, pair_bytes=8 * 2 * m * n)


# --------------------------------------------------------------------------------------
# Full-batch logistic regression: GD, heavy ball, Adam, L-BFGS, Newton
# --------------------------------------------------------------------------------------
@single_thread()
def full_batch_race(problem=None, *, gtol=1e-8, maxiter=5000, history_sizes=(10,), adam_lr=0.05):
    r"""Every method from :math:`w=0` until :math:`\|\nabla f\|_\infty \le` ``gtol``.

    Step sizes: GD and heavy ball (momentum 0.9) use :math:`1/L` with the global smoothness
    bound :math:`L` of the problem (``smoothness``) (the textbook safe step); Adam uses ``adam_lr``;
    L-BFGS (one run per entry of ``history_sizes``) and Newton take unit steps, L-BFGS with a
    strong-Wolfe line search. Returns ``{label: result}`` (:func:`curvlib.minimizer.minimize` results, each with its
    ``path``) and adds ``error`` :math:`\|w_k - w^\star\|` and ``gap`` :math:`f(w_k)-f^\star`.
    """
    problem = _problem(problem)
    lr = 1.0 / problem.smoothness
    runs = {"GD": dict(method="gd", lr=lr),
            "heavy ball": dict(method="momentum", lr=lr, momentum=0.9),
            "Adam": dict(method="adam", lr=check_positive("adam_lr", adam_lr))}
    for m in history_sizes:
        runs[f"L-BFGS (m={check_int('history_sizes', m, minimum=1)})"] = dict(method="lbfgs", history_size=m)
    runs["Newton"] = dict(method="newton")
    out = {}
    for label, kw in runs.items():
        res = _minimize(problem, gtol=gtol, maxiter=maxiter, **kw)
        res.error = np.linalg.norm(res.path - problem.minimum, axis=1)
        res.gap = np.maximum(res.fun_path - problem.minimum_value, 0.0)
        out[label] = res
    return out


def extrapolated_iterations(result, target_error, last=500):
    r"""Iterations a linearly converging run would need to reach ``target_error``.

    Fits the per-step ratio :math:`r = (e_K/e_{K-\ell})^{1/\ell}` over the ``last`` :math:`\ell`
    iterations of ``result.error`` (from :func:`full_batch_race`) and returns
    :math:`K + \log(e_{	ext{target}}/e_K)/\log r` with the ratio, or ``(K, r)`` when the run
    is already below the target.
    """
    e = np.asarray(result.error, dtype=float)
    last = min(check_int("last", last, minimum=1), len(e) - 1)
    K = len(e) - 1
    r = float((e[-1] / e[-1 - last]) ** (1 / last))
    target = check_positive("target_error", target_error)
    if e[-1] <= target:
        return K, r
    if not r < 1:
        return math.inf, r
    return K + math.log(target / e[-1]) / math.log(r), r


@single_thread()
def history_sweep(problem=None, sizes=(1, 2, 3, 5, 10, 20, 50), gtol=1e-8, maxiter=2000):
    """Iterations and function evaluations L-BFGS needs to ``gtol`` for each history size ``m``."""
    problem = _problem(problem)
    rows = []
    for m in sizes:
        m = check_int("sizes", m, minimum=1)
        res = _minimize(problem, "lbfgs", history_size=m, gtol=gtol, maxiter=maxiter)
        rows.append(dict(m=m, nit=int(res.nit), nfev=int(res.nfev), success=bool(res.success),
                         state_floats=(2 * m + 2) * problem.dim))
    return rows


def error_ratios(path, x_star):
    r""":math:`e_{k+1}/e_k` with :math:`e_k = \|x_k - x^\star\|`: tends to 0 for superlinear
    convergence, to a constant :math:`< 1` for linear convergence."""
    path = np.asarray(path, dtype=np.float64)
    e = np.linalg.norm(path - np.asarray(x_star, dtype=np.float64), axis=1)
    if np.any(e[:-1] == 0):
        e = e[: int(np.argmax(e == 0)) + 1]
    return e[1:] / e[:-1], e[:-1]


def ratio_by_window(path, x_star, windows=((1.0, 1e-2), (1e-2, 1e-4), (1e-4, 1e-6))):
    r"""Median of :math:`e_{k+1}/e_k` over the iterations whose error :math:`e_k` lies in each window.

    Superlinear convergence shows as medians that shrink from window to window; linear
    convergence as roughly equal medians. Windows without iterations give ``nan``.
    """
    ratios, e = error_ratios(path, x_star)
    out = []
    for hi, lo in windows:
        sel = (e <= hi) & (e > lo)
        out.append(float(np.median(ratios[sel])) if sel.any() else math.nan)
    return out


def plot_race(race, problem, axes=None):
    """Left: the gap :math:`f - f^\\star` against the iteration (log-log). Right: the error
    ratio :math:`e_{k+1}/e_k` against the error :math:`e_k` (read from right to left)."""
    import matplotlib.pyplot as plt
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = {k: np.maximum(r.gap, 1e-17) for k, r in race.items()}
    plots.convergence(curves, ax=axes[0], log_x=True, ylabel="f(w_k) - f*", xlabel="iteration k")
    axes[0].set_title("full-batch logistic regression (breast cancer)", fontsize=10)
    for label, r in race.items():
        ratios, e = error_ratios(r.path, problem.minimum)
        keep = e > 1e-9
        axes[1].semilogx(e[keep], ratios[keep], ".-", ms=3, lw=0.8, label=label)
    axes[1].invert_xaxis()
    axes[1].set(xlabel="error e_k = ||w_k - w*|| (decreasing to the right)",
                ylabel="e_{k+1} / e_k", ylim=(0, 1.2),
                title="superlinear: ratio -> 0; linear: ratio -> constant")
    axes[1].legend(fontsize=8)
    return axes


# --------------------------------------------------------------------------------------
# L-BFGS on mini-batches
# --------------------------------------------------------------------------------------
@single_thread()
def stochastic_lbfgs(problem, batch_size, *, lr=1.0, epochs=10, history_size=10,
                     same_batch_pairs=False, seed=0):
    r"""L-BFGS with mini-batch gradients and a fixed step ``lr``; full-batch gap after each epoch.

    Each step draws a batch :math:`B_k` (without replacement within the step), takes
    :math:`w_{k+1} = w_k - \eta H_k \nabla f_{B_k}(w_k)` with the two-loop recursion, and
    stores a curvature pair :math:`s_k = w_{k+1}-w_k` with

    * ``same_batch_pairs=False``: :math:`y_k = \nabla f_{B_{k+1}}(w_{k+1}) - \nabla f_{B_k}(w_k)`,
      two different batches -- what ``torch.optim.LBFGS`` does when each ``step`` gets a new
      batch (it keeps ``prev_flat_grad`` across calls);
    * ``same_batch_pairs=True``: :math:`y_k = \nabla f_{B_k}(w_{k+1}) - \nabla f_{B_k}(w_k)`,
      one extra gradient per step on the same batch (Schraudolph et al. 2007; Berahas et al.
      2016), so :math:`y_k` measures curvature, not batch-to-batch noise.

    Pairs with :math:`y^\top s \le \epsilon\, y^\top y` are skipped
    (:func:`curvlib.quasi_newton.update_memory`). Returns ``gaps`` (one per epoch) and
    ``diverged_at`` (the step at which the full loss exceeded 100 or turned non-finite, else
    ``None``).
    """
    from curvlib.quasi_newton import two_loop_direction, update_memory
    N = problem.n_samples
    bs = check_int("batch_size", batch_size, minimum=1)
    if bs > N:
        raise ValueError(f"batch_size must be <= {N}, got {bs}")
    lr = check_positive("lr", lr)
    m = check_int("history_size", history_size, minimum=1)
    steps_per_epoch = N // bs
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    w = problem.x0.copy()
    state = {"old_dirs": [], "old_stps": [], "ro": [], "H_diag": 1.0}
    pending, gaps = None, []
    for k in range(check_int("epochs", epochs, minimum=1) * steps_per_epoch):
        idx = rng.choice(N, bs, replace=False) if bs < N else None
        g = problem.grad(w, idx)
        if pending is not None:  # pair across two batches
            update_memory(state, pending[0], g - pending[1], m)
        d = (two_loop_direction(g, state["old_stps"], state["old_dirs"], state["ro"], state["H_diag"])
             if state["old_dirs"] else -g)
        step = lr * d
        w = w + step
        if same_batch_pairs:
            update_memory(state, step, problem.grad(w, idx) - g, m)
        else:
            pending = (step, g)
        if (k + 1) % steps_per_epoch == 0 or k < 5:
            f = problem.value(w) if np.all(np.isfinite(w)) else math.inf
            if not math.isfinite(f) or f > 100:
                return dict(gaps=np.array(gaps), diverged_at=k + 1)
            if (k + 1) % steps_per_epoch == 0:
                gaps.append(f - problem.minimum_value)
    return dict(gaps=np.array(gaps), diverged_at=None)


@single_thread()
def stochastic_adam(problem, batch_size, *, lr=0.03, epochs=10, seed=0):
    """Adam (:func:`curvlib.rules.adam`) on the same mini-batches, for comparison."""
    N = problem.n_samples
    bs = check_int("batch_size", batch_size, minimum=1)
    if bs > N:
        raise ValueError(f"batch_size must be <= {N}, got {bs}")
    lr = check_positive("lr", lr)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    w = problem.x0.copy()
    state = rules.init_adam(w)
    steps_per_epoch, gaps = N // bs, []
    for k in range(check_int("epochs", epochs, minimum=1) * steps_per_epoch):
        idx = rng.choice(N, bs, replace=False) if bs < N else None
        rules.adam(w, problem.grad(w, idx), state, lr=lr)
        if (k + 1) % steps_per_epoch == 0:
            f = problem.value(w) if np.all(np.isfinite(w)) else math.inf
            if not math.isfinite(f) or f > 100:
                return dict(gaps=np.array(gaps), diverged_at=k + 1)
            gaps.append(f - problem.minimum_value)
    return dict(gaps=np.array(gaps), diverged_at=None)


@single_thread()
def minibatch_grid(problem=None, batch_sizes=(8, 32, 128, 426), lrs=(1.0, 0.3, 0.1, 0.03),
                   epochs=10, seeds=(0, 1, 2), history_size=10):
    r"""Final full-batch gap :math:`f - f^\star` after ``epochs`` for each (batch size, step size).

    Three methods: L-BFGS with pairs across batches (torch's behaviour), L-BFGS with pairs on
    one batch, and Adam; each cell is the median over ``seeds`` (``inf`` when any seed
    diverged, with the count in ``diverged``). Every method sees the same number of epochs,
    so cells compare equal amounts of data (the same-batch variant pays one extra gradient
    per step).
    """
    problem = _problem(problem)
    methods = {"L-BFGS, pairs across batches": lambda bs, lr, s: stochastic_lbfgs(
                   problem, bs, lr=lr, epochs=epochs, history_size=history_size, seed=s),
               "L-BFGS, pairs on one batch": lambda bs, lr, s: stochastic_lbfgs(
                   problem, bs, lr=lr, epochs=epochs, history_size=history_size,
                   same_batch_pairs=True, seed=s),
               "Adam": lambda bs, lr, s: stochastic_adam(problem, bs, lr=lr, epochs=epochs, seed=s)}
    out = {}
    for name, run in methods.items():
        gap = np.full((len(lrs), len(batch_sizes)), np.inf)
        diverged = np.zeros((len(lrs), len(batch_sizes)), dtype=int)
        for i, lr in enumerate(lrs):
            for j, bs in enumerate(batch_sizes):
                finals = []
                for s in seeds:
                    r = run(bs, lr, s)
                    finals.append(math.inf if r["diverged_at"] is not None else float(r["gaps"][-1]))
                diverged[i, j] = sum(not math.isfinite(v) for v in finals)
                gap[i, j] = np.median(finals) if diverged[i, j] == 0 else np.inf
        out[name] = dict(gap=gap, diverged=diverged)
    return dict(methods=out, batch_sizes=list(batch_sizes), lrs=list(lrs), epochs=epochs,
                seeds=list(seeds))


def plot_minibatch_grid(grid, axes=None):
    """One heat map per method: log10 of the final gap over (batch size, step size)."""
    import matplotlib.pyplot as plt
    names = list(grid["methods"])
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True)
    finite = np.concatenate([g["gap"][np.isfinite(g["gap"])] for g in grid["methods"].values()])
    vmin, vmax = np.log10(finite.min()), np.log10(finite.max())
    for ax, name in zip(axes, names):
        g = grid["methods"][name]["gap"]
        z = np.ma.masked_invalid(np.log10(g))
        im = ax.imshow(z, cmap="viridis_r", vmin=vmin, vmax=vmax, aspect="auto")
        im.cmap.set_bad("0.8")
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                ax.text(j, i, "div." if not np.isfinite(g[i, j]) else f"{g[i, j]:.0e}",
                        ha="center", va="center", fontsize=7,
                        color="k" if not np.isfinite(g[i, j]) or z[i, j] > (vmin + vmax) / 2 else "w")
        ax.set_xticks(range(len(grid["batch_sizes"])), [str(b) for b in grid["batch_sizes"]])
        ax.set_yticks(range(len(grid["lrs"])), [f"{lr:g}" for lr in grid["lrs"]])
        ax.set(xlabel="batch size", title=name)
    axes[0].set_ylabel("step size (lr)")
    return axes


# --------------------------------------------------------------------------------------
# Adam: bias correction and diagonal preconditioning
# --------------------------------------------------------------------------------------
@single_thread()
def bias_correction_ratio(steps=1000, beta1=0.9, beta2=0.999, seed=0):
    r"""How much larger the lecture's (uncorrected) Adam steps are than Kingma & Ba's.

    Runs :func:`curvlib.rules.adam` with and without ``bias_correction`` on the same random
    gradient sequence (standard normal entries plus a mean of 1, 1000 coordinates) and returns
    the measured ratio of step lengths per step, beside the closed form
    :math:`(1-\beta_1^t)/\sqrt{1-\beta_2^t}` (exact up to :math:`\epsilon`, whatever the
    gradients: both estimates are rescaled by constants). Also returns the ratio's maximum
    and the step where it occurs.
    """
    steps = check_int("steps", steps, minimum=1)
    beta1 = check_unit_interval("beta1", beta1)
    beta2 = check_unit_interval("beta2", beta2)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    grads = 1.0 + rng.standard_normal((steps, 1000))
    p_kb, p_lec = np.zeros(1000), np.zeros(1000)
    s_kb, s_lec = rules.init_adam(p_kb), rules.init_adam(p_lec)
    measured = np.empty(steps)
    for t in range(steps):
        before_kb, before_lec = p_kb.copy(), p_lec.copy()
        rules.adam(p_kb, grads[t], s_kb, lr=1e-3, betas=(beta1, beta2), eps=0.0)
        rules.adam(p_lec, grads[t], s_lec, lr=1e-3, betas=(beta1, beta2), eps=0.0,
                   bias_correction=False)
        measured[t] = np.linalg.norm(p_lec - before_lec) / np.linalg.norm(p_kb - before_kb)
    t = np.arange(1, steps + 1)
    formula = (1 - beta1 ** t) / np.sqrt(1 - beta2 ** t)
    k = int(np.argmax(measured))
    return dict(step=t, measured=measured, formula=formula, first=float(measured[0]),
                max=float(measured[k]), argmax=k + 1,
                above_two_until=int(t[measured > 2][-1]) if np.any(measured > 2) else 0)


def plot_bias_correction(result, ax=None):
    """The measured step ratio (lecture's Adam over Kingma & Ba's) against the step, with the formula."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    ax.semilogx(result["step"], result["measured"], lw=2, label="measured with curvlib.rules.adam")
    ax.semilogx(result["step"], result["formula"], "k--", lw=1,
                label="(1 - beta1^t) / sqrt(1 - beta2^t)")
    ax.axhline(1, color="0.6", lw=0.8)
    ax.set(xlabel="step t", ylabel="uncorrected / corrected step",
           title="how much larger the lecture's Adam steps are")
    ax.legend(fontsize=8)
    return ax


def quadratic_problem(dim, kappa, rotated, seed=0):
    r"""A ``dim``-dimensional quadratic :math:`\tfrac12 x^\top A x` with eigenvalues log-spaced in
    :math:`[1, \kappa]`; ``rotated=False`` makes :math:`A` diagonal (eigenvectors on the axes),
    ``rotated=True`` turns them by a random orthogonal :math:`Q` (:math:`A = Q\Lambda Q^\top`).
    Returns ``(A, x0)`` with a seeded random start."""
    dim = check_int("dim", dim, minimum=2)
    kappa = check_real("kappa", kappa)
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    lam = np.logspace(0, np.log10(kappa), dim)
    x0 = rng.standard_normal(dim)
    if not rotated:
        return np.diag(lam), x0
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (Q * lam) @ Q.T, x0


def jacobi_condition_number(A):
    r""":math:`\kappa(D^{-1/2} A D^{-1/2})` with :math:`D = \operatorname{diag}(A)`: the best a
    fixed diagonal rescaling built from the Hessian's diagonal can do."""
    A = np.asarray(A, dtype=np.float64)
    d = 1 / np.sqrt(np.diag(A))
    lam = np.linalg.eigvalsh(A * d[:, None] * d[None, :])
    return float(lam[-1] / lam[0])


def _steps_to_tol(method, A, x0, lrs, steps, tol, hyper):
    """Run ``method`` at every lr at once (rows of X); first step with ||x||/||x0|| <= tol."""
    m = methods.METHODS[method]
    init, step = m.init, m.step
    X = np.tile(x0, (len(lrs), 1))
    lr = np.asarray(lrs, dtype=np.float64)[:, None]
    state = init(X, **hyper)
    hit = np.full(len(lrs), np.inf)
    norm0 = np.linalg.norm(x0)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            step(X, X @ A, state, lr=lr, **hyper)  # A symmetric: row-wise gradient A x
            err = np.linalg.norm(X, axis=1) / norm0
            newly = (err <= tol) & ~np.isfinite(hit)
            hit[newly] = k
            bad = ~np.isfinite(err) | (err > 1e6)
            X[bad] = 0.0  # parked: a diverged row is never counted as converged
            hit[bad & ~np.isfinite(hit)] = -1
            if np.all(np.isfinite(hit)):
                break
    hit[hit < 0] = np.inf
    return hit


@single_thread()
def preconditioning_race(kappas=(1e1, 1e2, 1e3, 1e4), dim=20, steps=2000, tol=1e-3,
                         lrs=None, seed=0):
    r"""Steps to shrink :math:`\|x\|` by ``tol`` on axis-aligned vs rotated quadratics.

    For each :math:`\kappa`, each method (Adam, heavy ball with momentum 0.9, GD) runs at every
    step size of ``lrs`` (10 values log-spaced from 1e-4 to 3 by default) and the best count is
    kept, so each method is tuned; ``inf`` means no step size reached ``tol`` within ``steps``. Returns the counts and the Jacobi-preconditioned condition number
    (:func:`jacobi_condition_number`) of each problem.
    """
    lrs = np.logspace(-4, 0.5, 10) if lrs is None else np.asarray(lrs, dtype=float)
    steps = check_int("steps", steps, minimum=1)
    tol = check_positive("tol", tol)
    methods = {"Adam": ("adam", {}), "heavy ball": ("momentum", {"momentum": 0.9}), "GD": ("gd", {})}
    out = {"kappa": list(kappas), "jacobi": {}, "steps": {}, "max_steps": steps}
    for rotated in (False, True):
        key = "rotated" if rotated else "axis-aligned"
        out["jacobi"][key] = []
        for kappa in kappas:
            A, x0 = quadratic_problem(dim, kappa, rotated, seed)
            out["jacobi"][key].append(jacobi_condition_number(A))
            for label, (method, hyper) in methods.items():
                best = float(np.min(_steps_to_tol(method, A, x0, lrs, steps, tol, hyper)))
                out["steps"].setdefault((label, key), []).append(best)
    return out


def plot_preconditioning(result, ax=None):
    """Steps to tolerance against the condition number, axis-aligned (solid) vs rotated (dashed)."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    colors = {"Adam": "tab:red", "heavy ball": "tab:blue", "GD": "tab:gray"}
    kappa = np.asarray(result["kappa"], dtype=float)
    for (label, key), steps in result["steps"].items():
        steps = np.asarray(steps, dtype=float)
        ok = np.isfinite(steps)
        ax.loglog(kappa[ok], steps[ok], "o-" if key == "axis-aligned" else "s--",
                  color=colors.get(label), label=f"{label}, {key}")
        if not ok.all():  # not reached within the budget: an arrow at the budget
            ax.loglog(kappa[~ok], np.full((~ok).sum(), float(result["max_steps"])), "^",
                      color=colors.get(label), mfc="none", ms=8)
    ax.axhline(float(result["max_steps"]), color="0.7", lw=0.8, ls=":")
    ax.text(kappa[0], float(result["max_steps"]) * 1.08, "budget (open triangles: not reached)",
            fontsize=7, color="0.4")
    ax.set(xlabel="condition number kappa", ylabel="steps to ||x|| <= 1e-3 ||x0|| (best lr)",
           title="a diagonal preconditioner only helps on the axes")
    ax.legend(fontsize=8, ncol=2)
    return ax


# --------------------------------------------------------------------------------------
# The lecture's comparison table, measured
# --------------------------------------------------------------------------------------
def _digits_model(hidden=32):
    from curvlib import models
    return models.mlp([64, hidden, 10], seed=0)


def state_bytes_rows(hidden=32, history_size=10):
    r"""Optimizer-state bytes measured on a digits MLP after a few steps, beside the formula.

    Builds each optimizer with :func:`curvlib.optim.factory`, takes three steps (L-BFGS: enough
    inner iterations to fill its history) on a batch of digits, and measures ``optimizer.state`` with :func:`curvlib.memory.state_bytes`.
    For Newton the Hessian it forms at each step is not kept between steps, so the row reports
    :func:`curvlib.memory.hessian_bytes` (what one step must hold) as its "measured" figure.
    """
    import torch
    from curvlib import data, memory, optim
    split = data.digits()
    X, y = split.X_train[:256], split.y_train[:256]
    rows = []
    m = history_size
    specs = [("Newton", "newton", None, {}),
             (f"L-BFGS (m={m})", "lbfgs", {"history_size": m, "max_iter": m // 2 + 2},
              {"history_size": m}),
             ("Adam", "adam", {}, {}),
             ("SGD+Momentum", "momentum", {"lr": 0.1}, {"momentum": 0.9}),
             ("SGD", "sgd", {"lr": 0.1}, {})]
    for label, name, hyper, memory_hyper in specs:
        model = _digits_model(hidden)
        n = sum(p.numel() for p in model.parameters())
        k = len(list(model.parameters()))
        formula = memory.optimizer_state_bytes(name, n, n_tensors=k, **memory_hyper)
        if hyper is None:
            measured = memory.hessian_bytes(n, "float32")
        else:
            opt = optim.factory(name, **hyper)(model)

            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X), y)
                loss.backward()
                return loss

            with single_thread():
                for _ in range(3):
                    opt.step(closure)
            measured = memory.state_bytes(opt)
        rows.append(dict(method=label, n_params=n, measured_bytes=int(measured), formula_bytes=int(formula)))
    return rows


def comparison_rows(race, state_rows, problem=None, windows=((1.0, 1e-2), (1e-2, 1e-4), (1e-4, 1e-6))):
    r"""The lecture's table with our measured columns: state bytes, iterations, error ratios.

    ``race`` comes from :func:`full_batch_race` and ``state_rows`` from
    :func:`state_bytes_rows`. The measured convergence is the number of iterations to the
    race's gradient tolerance and the median error ratio :math:`e_{k+1}/e_k` in each error
    window (:func:`ratio_by_window`): a constant ratio is linear convergence, a shrinking one
    superlinear.
    """
    problem = _problem(problem)
    by_lecture = {"Newton": "Newton", "L-BFGS": next(k for k in race if k.startswith("L-BFGS")),
                  "Adam": "Adam", "SGD+Momentum": "heavy ball", "SGD": "GD"}
    state = {r["method"].split(" (")[0]: r for r in state_rows}
    rows = []
    for method, (mem, conv, use) in LECTURE_TABLE.items():
        res = race[by_lecture[method]]
        rows.append(dict(method=method, lecture_memory=mem, lecture_convergence=conv, lecture_use=use,
                         state_bytes=state[method]["measured_bytes"], n_params=state[method]["n_params"],
                         nit=int(res.nit), success=bool(res.success),
                         ratios=ratio_by_window(res.path, problem.minimum, windows)))
    return rows


def comparison_markdown(rows):
    """The comparison table as Markdown."""
    from curvlib.memory import format_bytes
    n = rows[0]["n_params"]
    lines = [f"| method | lecture: memory | measured state, MLP with {n:,} parameters | lecture: convergence "
             "| iterations to tolerance (logistic regression) | median $e_{k+1}/e_k$ per error window | lecture: use |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        its = f"{r['nit']:,}" if r["success"] else f"> {r['nit']:,}"
        ratios = " → ".join("–" if math.isnan(x) else f"{x:.2f}" for x in r["ratios"])
        lines.append(f"| {r['method']} | ${r['lecture_memory']}$ | {format_bytes(r['state_bytes'])} | "
                     f"{r['lecture_convergence']} | {its} | {ratios} | {r['lecture_use']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------
@single_thread()
def adam_explorer(kappa=20.0, angle=math.pi / 6, steps=300):
    r"""Explorer: Adam's ``lr``, ``beta1`` and ``beta2`` on a rotated quadratic of condition ``kappa``.

    All 24 paths are run in the factory with :func:`curvlib.minimizer.minimize` (the same
    :func:`curvlib.rules.adam` as :class:`curvlib.optim.Adam`); the contour grid is evaluated
    once, so an update only draws.
    """
    from curvlib.landscapes import Quadratic
    from curvlib.widgets import Explorer
    f = Quadratic(check_positive("kappa", kappa), check_real("angle", angle))
    steps = check_int("steps", steps, minimum=1)
    grid = f.grid(121)
    controls = {"lr": [0.01, 0.03, 0.1, 0.3], "beta1": [0.0, 0.5, 0.9], "beta2": [0.9, 0.999]}
    runs = {}
    for lr in controls["lr"]:
        for b1 in controls["beta1"]:
            for b2 in controls["beta2"]:
                res = minimize(f, f.start, method="adam", lr=lr, betas=(b1, b2), maxiter=steps, gtol=0.0)
                runs[(lr, b1, b2)] = res
    f0 = float(f(np.asarray(f.start)))

    def render(fig, lr, beta1, beta2):
        ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
        res = runs[(lr, beta1, beta2)]
        plots.contour(grid=grid, paths={"Adam": res.path}, ax=ax, legend=False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"lr={lr:g}, beta1={beta1:g}, beta2={beta2:g}", fontsize=9)
        plots.convergence({"f - f*": np.maximum(res.fun_path, 1e-16)}, ax=ax2, ylabel="f - f*", legend=False)
        plots.plain_log_ticks(ax2, "y", numticks=30, every=3)
        ax2.set_ylabel("")
        ax2.set_title(f"f - f* (kappa={kappa:g}, rotated {math.degrees(angle):.0f} deg)", fontsize=9)
        below = np.flatnonzero(res.fun_path <= 1e-6 * f0)
        if not res.success and "diverged" in res.message:
            return res.message
        return (f"f reaches 1e-6 of f(x0) at step {below[0]}" if below.size else
                f"after {steps} steps f = {res.fun_path[-1]:.1e} (f(x0) = {f0:.2g})")

    return Explorer(render, controls, initial={"lr": 0.1, "beta1": 0.9, "beta2": 0.999},
                    labels={"lr": "lr", "beta1": "beta1", "beta2": "beta2"},
                    alt="Adam's path on a rotated ill-conditioned quadratic and its loss curve")


@single_thread()
def lbfgs_history_explorer(sizes=(1, 2, 3, 5, 10, 20, 50), l2s=(1e-2, 1e-3, 1e-4), gtol=1e-8):
    r"""Explorer: L-BFGS history size ``m`` (and the L2 strength, which sets :math:`\kappa`) on
    breast-cancer logistic regression; the loss gap per iteration beside GD's and Newton's.

    Every run is done in the factory (21 L-BFGS runs, one Newton run per problem and a capped
    GD run per problem for reference).
    """
    from curvlib.widgets import Explorer
    problems = {l2: LogisticRegression.breast_cancer(l2) for l2 in l2s}
    kappas = {l2: p.condition_number() for l2, p in problems.items()}
    runs, refs = {}, {}
    for l2, p in problems.items():
        refs[l2] = {"Newton": _minimize(p, "newton", gtol=gtol, maxiter=100),
                    "GD (lr = 1/L)": _minimize(p, "gd", lr=1 / p.smoothness, gtol=gtol, maxiter=300)}
        for m in sizes:
            runs[(m, l2)] = _minimize(p, "lbfgs", history_size=m, gtol=gtol, maxiter=3000)

    def render(fig, m, l2):
        ax = fig.subplots()
        p = problems[l2]
        res = runs[(m, l2)]
        curves = {f"L-BFGS m={m}": np.maximum(res.fun_path - p.minimum_value, 1e-17)}
        for label, r in refs[l2].items():
            curves[label] = np.maximum(r.fun_path - p.minimum_value, 1e-17)
        plots.convergence(curves, ax=ax, ylabel="f - f*", styles={
            "Newton": {"color": "0.5", "ls": "--"}, "GD (lr = 1/L)": {"color": "0.5", "ls": ":"}})
        ax.set_xlim(0, max(150, res.nit + 5))
        plots.plain_log_ticks(ax, "y", numticks=30, every=3)
        ax.set_ylabel("")
        ax.set_title(f"f - f*, logistic regression, l2={l2:g} (kappa at w* = {kappas[l2]:.3g})",
                     fontsize=9)
        status = "" if res.success else f" ({res.message})"
        return (f"m={m}: {res.nit} iterations, {res.nfev} evaluations to |grad| <= {gtol:g}{status}; "
                f"state {(2 * m + 2) * p.dim} floats vs {p.dim ** 2} for the Hessian")

    sizes, l2s = list(sizes), list(l2s)
    initial = {"m": 5 if 5 in sizes else sizes[0], "l2": l2s[len(l2s) // 2]}
    return Explorer(render, {"m": sizes, "l2": l2s}, initial=initial,
                    labels={"m": "history size m", "l2": "L2 strength"},
                    alt="Loss gap of L-BFGS against iterations for a chosen history size")

