r"""Chapter 3: the practical compromises -- L-BFGS and Adam -- measured.

**L-BFGS.** The lecture writes the BFGS update of the inverse-Hessian approximation

.. math::
    H_{k+1}^{-1} = (I - \rho_k s_k y_k^\top)\, H_k^{-1}\, (I - \rho_k y_k s_k^\top)
                   + \rho_k s_k s_k^\top,\qquad \rho_k = \frac{1}{y_k^\top s_k},

(:func:`curvlib.quasi_newton.bfgs_inverse_update`, a dense :math:`n\times n` matrix). L-BFGS
never forms it: the two-loop recursion (:func:`curvlib.quasi_newton.two_loop_direction`)
applies the same matrix, built from the last :math:`m` pairs on top of :math:`\gamma I`, to a vector in
:math:`O(mn)`. :func:`two_loop_check` holds the two against each other along a real run.
Liu & Nocedal (1989), "On the limited memory BFGS method for large scale optimization",
Math. Programming 45:503-528; Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, §7.2.

The experiments run on L2-regularised logistic regression of scikit-learn's breast-cancer set
(:meth:`curvlib.landscapes.LogisticRegression.breast_cancer`, :math:`\lambda = 10^{-3}`
unless said otherwise). Every comparison is made fair the same way: each contender is
tuned by one rule on one grid (:func:`tune`, which grows the grid until no optimum sits at an
edge) and budget, on tuning seeds apart from the seeds reported, and pairs of contenders are
compared by paired differences with 95% intervals (:func:`paired_interval`).
:func:`full_batch_study` (GD, heavy ball, Adam, L-BFGS, Newton), :func:`history_sweep` (the
history size :math:`m`), :func:`digits_per_step` (is the convergence superlinear?) and
:func:`minibatch_study` (L-BFGS on mini-batches, with the curvature pair taken across two
batches as ``torch.optim.LBFGS`` does, or on one batch as in Schraudolph, Yu & Günter (2007),
"A stochastic quasi-Newton method for online convex optimization", AISTATS, and Berahas,
Nocedal & Takáč (2016), "A multi-batch L-BFGS method for machine learning", NeurIPS).

**Adam.** The lecture's Adam has no bias correction; Kingma & Ba (2015), "Adam: A Method for
Stochastic Optimization", ICLR, divide :math:`m_t` by :math:`1-\beta_1^t` and :math:`v_t` by
:math:`1-\beta_2^t`. :func:`bias_correction_ratio` measures how much larger the lecture's
first steps are. :func:`preconditioning_study` shows Adam as a *diagonal* method: it removes
ill-conditioning along the coordinate axes and not along rotated directions, and
:func:`adam_rescaling_check` shows why (its iterates do not change when each coordinate of the
gradient is rescaled). :func:`comparison_rows` rebuilds the lecture's comparison table with
measured optimizer-state bytes and measured convergence.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from curvlib import plots, rules
from curvlib._checks import check_choice, check_int, check_positive, check_real, check_unit_interval
from curvlib.landscapes import LogisticRegression
from curvlib.quasi_newton import bfgs_inverse_update
from curvlib.runs import single_thread

__all__ = ["start_point", "solve", "PER_DECADE", "grid_value", "grid_index", "tune", "paired_interval",
           "FIRST_ORDER", "first_hit", "worst_case_scorer", "explicit_inverse_hessian",
           "two_loop_check", "FULL_BATCH_AXES", "minimize_kwargs", "full_batch_study", "full_batch_race",
           "extrapolated_iterations", "history_sweep", "error_ratios", "ratio_by_window", "digits_per_step",
           "plot_race", "DIVERGE_FACTOR", "stochastic_lbfgs", "stochastic_adam", "MINIBATCH_METHODS",
           "minibatch_study", "minibatch_landscape", "plot_minibatch_tuning", "plot_minibatch_comparison",
           "unit_step_gaps", "rules_adam_step", "bias_correction_ratio", "plot_bias_correction",
           "quadratic_problem", "jacobi_condition_number", "PRECONDITIONING_AXES", "preconditioning_study",
           "adam_rescaling_check", "plot_preconditioning", "state_bytes_rows", "comparison_rows",
           "comparison_markdown", "adam_explorer", "adam_bias_explorer", "lbfgs_history_explorer", "EXPLORERS"]


# --------------------------------------------------------------------------------------
# The problem: L2-regularised logistic regression on breast cancer
# --------------------------------------------------------------------------------------
def start_point(problem, seed=None):
    """A starting point for ``problem`` (a :class:`~curvlib.landscapes.LogisticRegression`):
    :math:`w = 0` for ``seed=None``, else standard normal coordinates drawn with ``seed``
    (about the size of :math:`w^\\star` on breast cancer)."""
    if seed is None:
        return problem.x0.copy()
    return np.random.default_rng(check_int("seed", seed, minimum=0)).standard_normal(problem.dim)


def solve(problem, method, x0=None, **kw):
    """:func:`curvlib.minimizer.minimize` on ``problem`` (a
    :class:`~curvlib.landscapes.LogisticRegression`) from ``x0`` (default :math:`w = 0`),
    with its exact gradient and Hessian."""
    from curvlib import minimize
    x0 = problem.x0 if x0 is None else x0
    return minimize(problem.value_and_grad, x0, jac=True, hess=problem.hess, method=method, **kw)


# --------------------------------------------------------------------------------------
# Fair comparisons: one grid, one rule, one budget for every contender
# --------------------------------------------------------------------------------------
#: Grid points per decade of every tuning grid (learning rates, and 1 - beta for momenta).
PER_DECADE = 8


def grid_value(kind, j, per_decade=PER_DECADE):
    r"""The ``j``-th point of a tuning axis on the lattice :math:`10^{j/d}` (:math:`d` = ``per_decade``).

    ``kind="log"`` (a step size): :math:`10^{j/d}` for every integer :math:`j`.
    ``kind="momentum"`` (a coefficient :math:`\beta \in [0, 1)`): :math:`1 - 10^{-j/d}` for
    :math:`j \ge 0`, so :math:`\beta = 0, 0.25, 0.44, \dots, 0.9, \dots` and the points
    crowd towards 1, where the count of steps is most sensitive to :math:`\beta`.
    Computed with Python floats (one ``pow``), so the grid is the same on every machine.
    """
    j = check_int("j", j, minimum=None if kind == "log" else 0)
    d = check_int("per_decade", per_decade, minimum=1)
    if kind == "log":
        return 10.0 ** (j / d)
    if kind == "momentum":
        return 1.0 - 10.0 ** (-j / d)
    raise ValueError(f"kind must be 'log' or 'momentum', got {kind!r}")


def grid_index(kind, value, per_decade=PER_DECADE):
    """The lattice index nearest to ``value`` on an axis of ``kind`` (inverse of :func:`grid_value`)."""
    value = check_real("value", value)
    if kind == "log":
        return int(round(math.log10(check_positive("value", value)) * per_decade))
    if kind == "momentum":
        if not 0 <= value < 1:
            raise ValueError(f"value must be in [0, 1) for a momentum axis, got {value}")
        return int(round(-math.log10(1.0 - value) * per_decade))
    raise ValueError(f"kind must be 'log' or 'momentum', got {kind!r}")


def tune(score, axes, *, per_decade=PER_DECADE, max_extensions=40):
    r"""Minimise ``score`` over a product grid, extending the grid until the optimum is interior.

    ``axes`` is ``{name: (kind, lo, hi)}``: each hyperparameter's axis kind (see
    :func:`grid_value`) and the range of lattice indices to start with. ``score(points,
    bound)`` gets a list of ``{name: value}`` dicts and returns one number per point (lower
    is better; ``inf`` for a run that failed: diverged, or did not reach its target). It may
    stop early and return ``inf`` for a point that cannot score below ``bound``, the best
    score so far; scores are never recomputed.

    The rule: take the best point (the first in grid order among equal scores); if it lies
    on an edge of the grid that can move (a momentum axis cannot go below
    :math:`\beta = 0`), add one grid line beyond that edge and repeat. Stops when the best
    point is interior on every axis (``interior`` then holds ``True`` for each), or after
    ``max_extensions`` extensions (``False`` for the axes still at an edge), or when no
    point succeeded at all (``best`` is ``None``: the starting grid must contain a setting
    that works, since nothing tells the rule which way to grow).

    Returns ``dict(best, score, interior, at_boundary, grid, scores, evaluated)``: the best
    point, its score, per-axis flags (``at_boundary``: the optimum sits at :math:`\beta = 0`,
    the edge of the domain, which no grid can extend), the final grid
    (``{name: [values]}``), the score array over it (axes in the order given) and the
    number of points evaluated.
    """
    if not callable(score):
        raise TypeError(f"score must be callable, got {score!r}")
    if not isinstance(axes, dict) or not axes:
        raise TypeError(f"axes must be a non-empty dict name -> (kind, lo, hi), got {axes!r}")
    ranges, kinds = {}, {}
    for name, spec in axes.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 3):
            raise TypeError(f"axes[{name!r}] must be (kind, lo, hi), got {spec!r}")
        kind, lo, hi = spec
        grid_value(kind, lo, per_decade)
        if check_int(f"axes[{name!r}] hi", hi) < lo:
            raise ValueError(f"axes[{name!r}]: hi must be >= lo, got {lo}, {hi}")
        ranges[name], kinds[name] = [int(lo), int(hi)], kind
    names = list(axes)
    cache = {}
    max_extensions = check_int("max_extensions", max_extensions, minimum=0)
    extensions = 0
    while True:
        lattice = [range(ranges[n][0], ranges[n][1] + 1) for n in names]
        points = list(itertools.product(*lattice))
        new = [p for p in points if p not in cache]
        if new:
            bound = min(cache.values(), default=math.inf)
            values = score([{n: grid_value(kinds[n], j, per_decade) for n, j in zip(names, p)}
                            for p in new], bound)
            values = [float(v) for v in values]
            if len(values) != len(new):
                raise ValueError(f"score returned {len(values)} values for {len(new)} points")
            cache.update(zip(new, values))
        scores = np.array([cache[p] for p in points]).reshape([len(r) for r in lattice])
        flat = int(np.argmin(scores))
        best_score = float(scores.flat[flat])
        if not math.isfinite(best_score):
            best, interior, at_boundary = None, {n: None for n in names}, {n: False for n in names}
            break
        idx = np.unravel_index(flat, scores.shape)
        best_j = {n: ranges[n][0] + int(i) for n, i in zip(names, idx)}
        at_boundary = {n: kinds[n] == "momentum" and best_j[n] == 0 for n in names}
        moves = {}
        for n in names:
            if best_j[n] == ranges[n][1]:
                moves[n] = (1, 1)
            elif best_j[n] == ranges[n][0] and not at_boundary[n]:
                moves[n] = (0, -1)
        interior = {n: n not in moves for n in names}
        if not moves or extensions >= max_extensions:
            best = {n: grid_value(kinds[n], best_j[n], per_decade) for n in names}
            break
        for n, (side, delta) in moves.items():
            ranges[n][side] += delta
        extensions += 1
    grid = {n: [grid_value(kinds[n], j, per_decade) for j in range(ranges[n][0], ranges[n][1] + 1)]
            for n in names}
    return dict(best=best, score=best_score, interior=interior, at_boundary=at_boundary,
                grid=grid, scores=scores, evaluated=len(cache), extensions=extensions)


def paired_interval(a, b, *, log=False, confidence=0.95):
    r"""Mean of the paired differences :math:`a_i - b_i` with a Student-t confidence interval.

    With ``log=True`` the differences are :math:`\ln a_i - \ln b_i` and the result is returned
    as a ratio: the geometric mean of :math:`a_i/b_i` and its interval. ``verdict`` is
    ``"a lower"`` when the whole interval lies below 0 (below 1 for ratios), ``"b lower"``
    when it lies above, and ``"inconclusive"`` when it contains it.
    """
    from scipy import stats
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"a and b must be 1-D arrays of one length >= 2, got shapes {a.shape}, {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a and b must be finite")
    if log:
        if np.any(a <= 0) or np.any(b <= 0):
            raise ValueError("a and b must be positive for log=True")
        d = np.log(a) - np.log(b)
    else:
        d = a - b
    level = check_unit_interval("confidence", confidence)
    n = d.size
    mean = float(d.mean())
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    verdict = "a lower" if hi < 0 else "b lower" if lo > 0 else "inconclusive"
    if log:
        mean, lo, hi = math.exp(mean), math.exp(lo), math.exp(hi)
    return dict(mean=mean, lo=lo, hi=hi, n=n, verdict=verdict, differences=d)


def _adam_betas(beta1, beta2):
    """Keyword arguments of :func:`curvlib.rules.adam` for the two betas, whichever form it takes."""
    import inspect
    if "betas" in inspect.signature(rules.adam).parameters:
        return {"betas": (beta1, beta2)}
    return {"beta1": beta1, "beta2": beta2}


#: The first-order contenders: the curvlib rule each runs and the hyperparameters tuned.
FIRST_ORDER = {"GD": ("gd", ("lr",)), "heavy ball": ("heavy_ball", ("lr", "momentum")),
               "Adam": ("adam", ("lr", "beta1"))}


def _rule_step(method, points):
    """``(init, step)`` running ``method`` (``gd``, ``heavy_ball`` or ``adam`` of
    :mod:`curvlib.rules`) with one row of hyperparameters per point."""
    lr = np.array([p["lr"] for p in points], dtype=np.float64)[:, None]
    if method == "gd":
        return rules.init_sgd, lambda X, G, s: rules.sgd(X, G, s, lr=lr)
    if method == "heavy_ball":
        beta = np.array([p["momentum"] for p in points], dtype=np.float64)[:, None]
        return rules.init_heavy_ball, lambda X, G, s: rules.heavy_ball(X, G, s, lr=lr, momentum=beta)
    if method == "adam":
        beta2 = {p.get("beta2", 0.999) for p in points}
        if len(beta2) != 1:  # the rule takes one beta2 (it enters through math.sqrt)
            raise ValueError(f"points must share one beta2, got {sorted(beta2)}")
        betas = _adam_betas(np.array([p.get("beta1", 0.9) for p in points], dtype=np.float64)[:, None],
                            float(beta2.pop()))
        return rules.init_adam, lambda X, G, s: rules.adam(X, G, s, lr=lr, **betas)
    raise ValueError(f"method must be 'gd', 'heavy_ball' or 'adam', got {method!r}")


def first_hit(grad_rows, x0, method, points, done, *, budget, stop_at_first=False):
    r"""Steps each hyperparameter point needs until ``done``; all points run at once, one per row.

    ``grad_rows(X)`` returns the gradient of every row of ``X``; ``done(X, G)`` says per row
    whether the target is met. Row :math:`i` runs ``method`` (a :mod:`curvlib.rules` rule,
    see :data:`FIRST_ORDER`) with ``points[i]`` from ``x0`` (one start for all rows, or one
    row each). Returns an array: the first step count :math:`k` at which row :math:`i` met
    the target, ``inf`` if it diverged (non-finite, or
    :math:`\|x\|_\infty > 10^8\max(1, \|x_0\|_\infty)`) or had not met it after ``budget``
    steps. ``stop_at_first=True`` stops at the first step at which some row is done (the
    others stay ``inf``): all a search for the smallest count needs.
    """
    budget = check_int("budget", budget, minimum=0)
    if not points:
        return np.zeros(0)
    x0 = np.asarray(x0, dtype=np.float64)
    X = np.array(np.broadcast_to(x0, (len(points), x0.shape[-1])))
    init, step = _rule_step(method, points)
    state = init(X)
    hits = np.full(len(points), np.inf)
    rows = np.arange(len(points))  # the rows still running, in X and state
    limit = 1e8 * max(1.0, float(np.max(np.abs(x0))))
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(budget + 1):
            G = grad_rows(X)
            alive = np.all(np.isfinite(G), axis=1) & (np.max(np.abs(X), axis=1) <= limit)
            newly = alive & done(X, G)
            hits[rows[newly]] = k
            if (stop_at_first and newly.any()) or k == budget:
                break
            keep = alive & ~newly
            if not keep.any():
                break
            if not keep.all():  # drop finished rows: the others run on alone
                rows, X, G = rows[keep], X[keep], G[keep]
                state = {key: v[keep] if isinstance(v, np.ndarray) and v.shape[:1] == keep.shape else v
                         for key, v in state.items()}
                step = _rule_step(method, [points[i] for i in rows])[1]
            step(X, G, state)
    return hits


def worst_case_scorer(count, problems, budget):
    r"""A ``score(points, bound)`` for :func:`tune`: the largest count over several tuning problems.

    ``count(problem, points, budget, stop_at_first)`` returns each point's count on one
    problem (``inf`` when not reached within ``budget``), as :func:`first_hit` does. A point
    scores its worst count over ``problems``, so the tuned hyperparameters must work on every
    tuning problem, not only on one lucky start. Only counts below ``bound`` (the best score
    so far) matter, so no run goes further; on the first call an upper bound is found first
    (the best point of the first problem, counted on all of them).
    """
    def score(points, bound):
        limit = min(budget, bound)
        if not math.isfinite(bound):  # first call: find a finite upper bound cheaply
            first = count(problems[0], points, budget, True)
            if np.isfinite(first).any():
                i = int(np.argmin(first))
                limit = max(float(count(p, [points[i]], budget, False)[0]) for p in problems)
                limit = min(budget, limit)
        limit = int(limit) if math.isfinite(limit) else budget
        worst = np.zeros(len(points))
        candidates = np.arange(len(points))  # points that can still score below the limit
        for p in problems:
            c = count(p, [points[i] for i in candidates], limit, False)
            worst[candidates] = np.maximum(worst[candidates], c)
            candidates = candidates[np.isfinite(c)]
        worst[~np.isfinite(worst)] = math.inf
        mask = np.zeros(len(points), dtype=bool)
        mask[candidates] = True
        worst[~mask] = math.inf
        return worst
    return score


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

    Runs :func:`curvlib.minimize` (L-BFGS, ``history_size`` :math:`m`) on ``problem``,
    recovers the pairs :math:`s_j = w_{j+1}-w_j`, :math:`y_j = \nabla f_{j+1} - \nabla f_j` from
    its path, and at every iteration :math:`k \ge 1` compares
    :func:`curvlib.quasi_newton.two_loop_direction` (last :math:`m` pairs,
    :math:`\gamma = s^\top y / y^\top y` of the newest) with :func:`explicit_inverse_hessian`
    times :math:`-\nabla f_k`. Returns the largest relative difference, the number of
    iterations compared and the bytes of the explicit matrix against those of the pairs.
    """
    from curvlib.quasi_newton import two_loop_direction
    problem = LogisticRegression.breast_cancer(1e-3) if problem is None else problem
    m = check_int("history_size", history_size, minimum=1)
    res = solve(problem, "lbfgs", history_size=m, maxiter=check_int("maxiter", maxiter, minimum=2),
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
# Full-batch logistic regression: GD, heavy ball, Adam, L-BFGS, Newton, tuned alike
# --------------------------------------------------------------------------------------
#: Starting ranges of the tuning grids (lattice indices, :data:`PER_DECADE` per decade);
#: :func:`tune` extends them until every optimum is interior.
FULL_BATCH_AXES = {
    "GD": {"lr": ("log", -8, 8)},
    "heavy ball": {"lr": ("log", -8, 8), "momentum": ("momentum", 0, 16)},
    "Adam": {"lr": ("log", -16, 0), "beta1": ("momentum", 0, 16)},
    "L-BFGS": {"lr": ("log", -8, 8)},
}


def _first_order_evaluations(start, label, points, budget, stop_at_first=False, *, gtol):
    """Gradient evaluations (steps + 1) each point of ``label`` needs to ``gtol``; ``start`` is
    ``(problem, x0)``."""
    problem, x0 = start
    hits = first_hit(problem.grad_rows, x0, FIRST_ORDER[label][0], points,
                     lambda X, G: np.max(np.abs(G), axis=1) <= gtol, budget=budget - 1,
                     stop_at_first=stop_at_first)
    return hits + 1


def _lbfgs_evaluations(start, points, budget, stop_at_first=False, *, gtol, history_size):
    """Function-and-gradient evaluations of L-BFGS (line search included) to ``gtol``, per point."""
    problem, x0 = start
    out = []
    for p in points:
        res = solve(problem, "lbfgs", x0, lr=p["lr"], history_size=history_size, gtol=gtol, maxiter=budget)
        out.append(res.nfev if res.success and res.nfev <= budget else math.inf)
    return np.array(out, dtype=float)


def minimize_kwargs(label, hyper, history_size=10):
    """The :func:`curvlib.minimize` arguments that run contender ``label`` with ``hyper``.

    The heavy ball runs as ``method="momentum"`` (torch's SGD form), whose iterates equal the
    lecture's :math:`v \\leftarrow \\beta v + \\eta g,\\ \\theta \\leftarrow \\theta - v` for a
    constant step.
    """
    if label == "GD":
        return dict(method="gd", lr=hyper["lr"])
    if label == "heavy ball":
        return dict(method="momentum", lr=hyper["lr"], momentum=hyper["momentum"])
    if label == "Adam":
        return dict(method="adam", lr=hyper["lr"], betas=(hyper["beta1"], hyper.get("beta2", 0.999)))
    if label.startswith("L-BFGS"):
        return dict(method="lbfgs", lr=hyper["lr"], history_size=history_size)
    if label == "Newton":
        return dict(method="newton")
    raise ValueError(f"label must be one of {list(FULL_BATCH_AXES) + ['Newton']}, got {label!r}")


@single_thread()
def full_batch_study(l2=1e-3, *, split_seed=0, tune_seeds=(0, 1, 2), report_seeds=tuple(range(3, 13)),
                     gtol=1e-8, budget=3000, history_size=10, axes=None, other_splits=tuple(range(1, 11))):
    r"""GD, heavy ball, Adam and L-BFGS tuned by one rule; Newton beside them; reported from fresh starts.

    **The rule.** Each contender's cost is the number of gradient evaluations from a start
    :math:`w_0` until :math:`\|\nabla f\|_\infty \le` ``gtol`` (for L-BFGS, every
    function-and-gradient evaluation of its strong-Wolfe line search counts), within
    ``budget`` evaluations, on
    :meth:`~curvlib.landscapes.LogisticRegression.breast_cancer` (training split ``split_seed``).
    The start of seed :math:`s` is :func:`start_point` (standard normal coordinates).
    Each contender is tuned over the hyperparameters that matter for it, on one log grid
    (:data:`PER_DECADE` points per decade; :func:`tune` extends it until no optimum sits at
    an edge), to minimise its *worst* count over the starts of ``tune_seeds``
    (:func:`worst_case_scorer`): GD its step :math:`\eta`; the heavy ball
    :math:`(\eta, \beta)`; Adam :math:`(\eta, \beta_1)` (:math:`\beta_2 = 0.999`,
    :math:`\epsilon = 10^{-8}`); L-BFGS (:math:`m` = ``history_size``) its first trial step.
    Newton (unit step) has nothing to tune.

    **The report.** The tuned hyperparameters then run from the starts of ``report_seeds``,
    where the evaluations are counted again. For reference, GD with :math:`\eta = 2/(L+\mu)`
    and the heavy ball with Polyak's :math:`\eta = 4/(\sqrt L+\sqrt\mu)^2,\
    \beta = ((\sqrt\kappa-1)/(\sqrt\kappa+1))^2` (:math:`\mu, L` the extreme eigenvalues of
    the Hessian at :math:`w^\star`, an oracle no practitioner has) are counted from the same
    starts. ``other_splits``: on the training splits of these seeds, whether the tuned GD and
    heavy ball are still stable at the minimum (:math:`\eta\lambda_{\max} < 2` and
    :math:`< 2(1+\beta)`, the quadratic model's limits).

    Returns ``dict(tuning, evaluations, newton_hessians, polyak, polyak_hyper, transfer, ...)``:
    ``tuning[label]`` is :func:`tune`'s result, ``evaluations[label]`` an array over
    ``report_seeds`` (``inf`` where the budget ran out).
    """
    from .momentum import optimal_parameters
    axes = FULL_BATCH_AXES if axes is None else axes
    budget = check_int("budget", budget, minimum=2)
    gtol = check_positive("gtol", gtol)
    m = check_int("history_size", history_size, minimum=1)
    lbfgs_label = f"L-BFGS (m={m})"
    tune_seeds = [check_int("tune_seeds", s, minimum=0) for s in tune_seeds]
    seeds = [check_int("report_seeds", s, minimum=0) for s in report_seeds]
    if not tune_seeds or len(seeds) < 2 or set(tune_seeds) & set(seeds):
        raise ValueError(f"tune_seeds and report_seeds (>= 2) must be disjoint and non-empty, "
                         f"got {tune_seeds} and {seeds}")

    def counter(label):
        if label == "L-BFGS":
            return lambda st, pts, b, first: _lbfgs_evaluations(st, pts, b, first, gtol=gtol, history_size=m)
        return lambda st, pts, b, first: _first_order_evaluations(st, label, pts, b, first, gtol=gtol)

    problem = LogisticRegression.breast_cancer(l2, seed=check_int("split_seed", split_seed, minimum=0))
    tuning_starts = [(problem, start_point(problem, s)) for s in tune_seeds]
    tuning = {}
    for label, ax in axes.items():
        tuning[lbfgs_label if label == "L-BFGS" else label] = tune(
            worst_case_scorer(counter(label), tuning_starts, budget), ax)
    lam = np.linalg.eigvalsh(problem.hess(problem.minimum))
    gd = optimal_parameters(lam[0], lam[-1], "gd")
    hb = optimal_parameters(lam[0], lam[-1], "heavy_ball")
    oracle = {"GD": {"lr": gd["lr"]}, "heavy ball": {"lr": hb["lr"], "momentum": hb["momentum"]}}
    starts = np.array([start_point(problem, s) for s in seeds])
    evaluations, polyak = {}, {}
    for label, t in tuning.items():  # the first-order methods run every start at once (rows)
        if t["best"] is None:
            evaluations[label] = np.full(len(seeds), math.inf)
        elif label == lbfgs_label:
            evaluations[label] = np.array([counter("L-BFGS")((problem, x0), [t["best"]], budget, False)[0]
                                           for x0 in starts])
        else:
            evaluations[label] = counter(label)((problem, starts), [t["best"]] * len(seeds), budget, False)
    for label, h in oracle.items():
        polyak[label] = counter(label)((problem, starts), [h] * len(seeds), budget, False)
    newton = [solve(problem, "newton", x0, gtol=gtol, maxiter=100, line_search_fn="backtracking")
              for x0 in starts]
    evaluations["Newton"] = np.array([float(r.nfev) if r.success else math.inf for r in newton])
    hessians = [int(r.nhev) for r in newton]
    transfer = []
    for s in other_splits:
        p = LogisticRegression.breast_cancer(l2, seed=check_int("other_splits", s, minimum=0))
        top = float(np.linalg.eigvalsh(p.hess(p.minimum))[-1])
        row = dict(seed=s, lambda_max=top)
        if tuning["GD"]["best"] is not None:
            row["gd_stable"] = bool(tuning["GD"]["best"]["lr"] * top < 2)
        if tuning["heavy ball"]["best"] is not None:
            b = tuning["heavy ball"]["best"]
            row["heavy_ball_stable"] = bool(b["lr"] * top < 2 * (1 + b["momentum"]))
        transfer.append(row)
    return dict(l2=l2, split_seed=split_seed, tune_seeds=tune_seeds, report_seeds=seeds, gtol=gtol,
                budget=budget, history_size=m, tuning=tuning, kappa=float(lam[-1] / lam[0]),
                evaluations={k: np.asarray(v, dtype=float) for k, v in evaluations.items()},
                newton_hessians=np.array(hessians), polyak={k: np.asarray(v, dtype=float) for k, v in polyak.items()},
                polyak_hyper=oracle, transfer=transfer)


@single_thread()
def full_batch_race(problem, hyper, *, gtol=1e-8, maxiter=5000):
    r"""Every contender from :math:`w=0` until :math:`\|\nabla f\|_\infty \le` ``gtol``, with its path.

    ``hyper`` maps a label (``"GD"``, ``"heavy ball"``, ``"Adam"``, ``"L-BFGS (m=10)"``,
    ``"Newton"``, ...) to its hyperparameters (:func:`minimize_kwargs`), e.g. the tuned ones
    of :func:`full_batch_study`. Returns ``{label: result}`` (:func:`curvlib.minimize`
    results, each with its ``path``) and adds ``error`` :math:`\|w_k - w^\star\|` and ``gap``
    :math:`f(w_k)-f^\star`.
    """
    out = {}
    for label, h in hyper.items():
        kw = minimize_kwargs(label, h, history_size=int(label.split("m=")[1].rstrip(")")) if "m=" in label else 10)
        res = solve(problem, gtol=gtol, maxiter=maxiter, **kw)
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
def history_sweep(problem=None, sizes=(1, 2, 3, 5, 10, 20, 50), gtol=1e-8, maxiter=2000,
                  starts=(None, 1, 2, 3, 4)):
    """Iterations and function evaluations L-BFGS needs to ``gtol`` for each history size ``m``.

    One run per start of ``starts`` (:func:`start_point` seeds; ``None`` is :math:`w = 0`):
    a single run's count moves by an iteration or two with the rounding of the arithmetic, so
    each row reports the median over the starts (``nit``, ``nfev``) and keeps every run's
    iterations (``nit_runs``).
    """
    problem = LogisticRegression.breast_cancer(1e-3) if problem is None else problem
    if not starts:
        raise ValueError("starts must name at least one start")
    x0s = [start_point(problem, s) for s in starts]
    rows = []
    for m in sizes:
        m = check_int("sizes", m, minimum=1)
        runs = [solve(problem, "lbfgs", x0, history_size=m, gtol=gtol, maxiter=maxiter) for x0 in x0s]
        rows.append(dict(m=m, nit=float(np.median([r.nit for r in runs])),
                         nfev=float(np.median([r.nfev for r in runs])),
                         nit_runs=[int(r.nit) for r in runs], success=all(r.success for r in runs),
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


#: Error windows of the rate panel: one per decade of :math:`e_k = \|w_k - w^\star\|`.
RATE_WINDOWS = tuple((10.0 ** -i, 10.0 ** -(i + 1)) for i in range(-1, 9))

#: Colours of the contenders, the same in every figure of the chapter.
COLORS = {"GD": "0.45", "heavy ball": "tab:blue", "Adam": "tab:red", "L-BFGS (m=10)": "tab:green",
          "L-BFGS (m=50)": "tab:olive", "Newton": "black", "L-BFGS": "tab:green"}
#: Figure width (inches) and type sizes: at the site's column width (about 760 pixels for a
#: 100-dpi figure this wide) 12-point type reads as large as the body text.
WIDTH = 7.6
FIGURE_RC = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 11,
             "ytick.labelsize": 11, "legend.fontsize": 11}


def _figure(nrows=1, ncols=1, height=4.2, **kw):
    """A chapter figure: :data:`WIDTH` wide, type sizes of :data:`FIGURE_RC` (ticks included,
    which matplotlib creates only when it draws)."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    with mpl.rc_context(FIGURE_RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height), layout="constrained", **kw)
    for ax in np.atleast_1d(axes).flat:
        _ticks(ax)
    return fig, axes


def _ticks(ax):
    ax.tick_params(labelsize=FIGURE_RC["xtick.labelsize"])


def digits_per_step(path, x_star, windows=RATE_WINDOWS):
    r"""Median of :math:`-\log_{10}(e_{k+1}/e_k)`, the correct digits gained per step, in each error window.

    A linearly converging method gains a constant number of digits per step (a flat line);
    a superlinear one gains more and more as :math:`e_k` shrinks (a rising line). Returns
    ``(centres, values)``: the geometric centre of each window holding an iteration, and the
    median there (windows where the error grew on the median step are left out).
    """
    ratios, e = error_ratios(path, x_star)
    centres, values = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = -np.log10(ratios)
    for hi, lo in windows:
        sel = (e <= hi) & (e > lo) & np.isfinite(digits)
        if sel.any() and np.median(digits[sel]) > 0:
            centres.append(math.sqrt(hi * lo))
            values.append(float(np.median(digits[sel])))
    return np.array(centres), np.array(values)


def plot_race(race, problem, axes=None):
    r"""Top: the gap :math:`f(w_k) - f^\star` against the iteration. Bottom: digits gained per
    step, :math:`-\log_{10}(e_{k+1}/e_k)`, against the error :math:`e_k` (medians per decade of
    error, :func:`digits_per_step`), each curve labelled at its end."""
    import matplotlib as mpl
    if axes is None:
        _, axes = _figure(2, 1, height=8.6)
    with mpl.rc_context(FIGURE_RC):
        for label, r in race.items():
            gap = np.maximum(r.gap, 1e-17)
            axes[0].loglog(np.arange(1, len(gap) + 1), gap, color=COLORS.get(label), lw=1.8, label=label)
        axes[0].set(xlabel="iteration $k + 1$", ylabel=r"$f(w_k) - f^\star$", title="loss gap, tuned step sizes")
        axes[0].legend(loc="lower left", ncol=2)
        for label, r in race.items():
            x, y = digits_per_step(r.path, problem.minimum)
            if not len(x):
                continue
            axes[1].loglog(x, y, "o-", color=COLORS.get(label), lw=1.8, ms=5)
            axes[1].annotate(label, (x[-1], y[-1]), xytext=(6, 0), textcoords="offset points", va="center",
                             color=COLORS.get(label))
        axes[1].invert_xaxis()
        axes[1].set(xlabel=r"error $e_k = \|w_k - w^\star\|$ (shrinking to the right)",
                    ylabel=r"digits per step, $-\log_{10}(e_{k+1}/e_k)$",
                    title="flat: linear convergence; rising: superlinear")
        lo, hi = axes[1].get_xlim()
        axes[1].set_xlim(lo, hi / 300)  # room for the labels at the right
    return axes


# --------------------------------------------------------------------------------------
# L-BFGS on mini-batches
# --------------------------------------------------------------------------------------
#: A run whose full loss exceeds this many times :math:`\max(f(w_0), 1)` (or turns non-finite)
#: has diverged (the factor of :mod:`curvlib`'s divergence rule).
DIVERGE_FACTOR = 1e4


def _diverged(f, f0):
    return not math.isfinite(f) or f > DIVERGE_FACTOR * max(abs(f0), 1.0)


def _batches(rng, N, bs, steps):
    """The index sets of ``steps`` mini-batches (``None``: the full batch), drawn without
    replacement within a batch; every method run with the same ``rng`` seed sees the same batches."""
    for _ in range(steps):
        yield rng.choice(N, bs, replace=False) if bs < N else None


@single_thread()
def stochastic_lbfgs(problem, batch_size, *, lr=1.0, steps=None, epochs=10, history_size=10,
                     same_batch_pairs=False, seed=0):
    r"""L-BFGS with mini-batch gradients and a fixed step ``lr``; the full-batch gap at the end.

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
    (:func:`curvlib.quasi_newton.update_memory`). Runs ``steps`` steps (default: ``epochs``
    passes over the data). Returns ``gap`` (:math:`f(w) - f^\star` at the end, ``inf`` if
    diverged) and ``diverged_at`` (the step at which the full loss broke
    :data:`DIVERGE_FACTOR`, checked after the first five steps and once per epoch, else ``None``).
    """
    from curvlib.quasi_newton import two_loop_direction, update_memory
    N = problem.n_samples
    bs = check_int("batch_size", batch_size, minimum=1)
    if bs > N:
        raise ValueError(f"batch_size must be <= {N}, got {bs}")
    lr = check_positive("lr", lr)
    m = check_int("history_size", history_size, minimum=1)
    per_epoch = N // bs
    steps = check_int("epochs", epochs, minimum=1) * per_epoch if steps is None else check_int("steps", steps, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    w = problem.x0.copy()
    f0 = problem.value(w)
    state = {"old_dirs": [], "old_stps": [], "ro": [], "H_diag": 1.0}
    pending = None
    for k, idx in enumerate(_batches(rng, N, bs, steps)):
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
        if k < 5 or (k + 1) % per_epoch == 0:
            f = problem.value(w) if np.all(np.isfinite(w)) else math.inf
            if _diverged(f, f0):
                return dict(gap=math.inf, diverged_at=k + 1)
    f = problem.value(w) if np.all(np.isfinite(w)) else math.inf
    if _diverged(f, f0):
        return dict(gap=math.inf, diverged_at=steps)
    return dict(gap=f - problem.minimum_value, diverged_at=None)


@single_thread()
def stochastic_adam(problem, batch_size, *, lr=0.03, steps=None, epochs=10, seed=0):
    """Adam (:func:`curvlib.rules.adam`, default betas) on the same mini-batches as
    :func:`stochastic_lbfgs` with the same ``seed``; the same return values."""
    N = problem.n_samples
    bs = check_int("batch_size", batch_size, minimum=1)
    if bs > N:
        raise ValueError(f"batch_size must be <= {N}, got {bs}")
    lr = check_positive("lr", lr)
    per_epoch = N // bs
    steps = check_int("epochs", epochs, minimum=1) * per_epoch if steps is None else check_int("steps", steps, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    w = problem.x0.copy()
    f0 = problem.value(w)
    state = rules.init_adam(w)
    for k, idx in enumerate(_batches(rng, N, bs, steps)):
        rules.adam(w, problem.grad(w, idx), state, lr=lr)
        if k < 5 or (k + 1) % per_epoch == 0:
            f = problem.value(w) if np.all(np.isfinite(w)) else math.inf
            if _diverged(f, f0):
                return dict(gap=math.inf, diverged_at=k + 1)
    f = problem.value(w)
    if _diverged(f, f0):
        return dict(gap=math.inf, diverged_at=steps)
    return dict(gap=f - problem.minimum_value, diverged_at=None)


#: The mini-batch contenders. Budget: ``epochs`` passes of gradient work; the same-batch
#: variant computes two gradients per batch, so it takes half as many steps (at full batch the
#: two variants are the same algorithm, and both take one step per pass).
MINIBATCH_METHODS = ("L-BFGS, pairs across batches", "L-BFGS, pairs on one batch", "Adam")


def _minibatch_run(problem, name, bs, lr, seed, epochs, history_size):
    N = problem.n_samples
    steps = epochs * (N // bs)
    if name == "Adam":
        return stochastic_adam(problem, bs, lr=lr, steps=steps, seed=seed)
    same = name == "L-BFGS, pairs on one batch" and bs < N
    return stochastic_lbfgs(problem, bs, lr=lr, steps=max(1, steps // 2) if same else steps,
                            history_size=history_size, same_batch_pairs=same, seed=seed)


@single_thread()
def minibatch_study(l2=1e-3, batch_sizes=(8, 32, 128, 426), *, epochs=10, history_size=10,
                    tune_seeds=(100, 101, 102), report_seeds=tuple(range(40)), lr_range=(-10, 4), per_decade=4):
    r"""L-BFGS (two ways of forming pairs) against Adam on mini-batches, each tuned per batch size.

    **Budget**: ``epochs`` passes of gradient work over the training split of
    breast-cancer logistic regression (the same-batch L-BFGS pays two gradients per batch, so it gets
    half the steps). **Measure**: :math:`\log_{10}` of the full-batch gap :math:`f - f^\star`
    at the end. **Rule**: at every batch size each method's step size is tuned on one log grid
    (``per_decade`` points per decade, starting at lattice indices ``lr_range`` and extended
    by :func:`tune` until the optimum is interior) to minimise the mean measure over
    ``tune_seeds``; a step size at which any tuning seed diverges is out. The seed fixes the
    batch sequence; all methods run with one seed see the same batches.

    **Report**: at each batch size, tuned Adam and the *better* tuned L-BFGS variant (the
    lower tuning score: the variant is one more hyperparameter) run on ``report_seeds``. A
    diverged report run counts as no progress (its gap is :math:`f(w_0) - f^\star`). Adam
    and L-BFGS are compared by the paired difference of the measure
    (:func:`paired_interval`; negative: Adam ends lower).

    Returns ``dict(batch_sizes, tuning, best_lbfgs, report, diverged, comparisons, ...)``:
    ``tuning[name][bs]`` is :func:`tune`'s result (at full batch the two variants are one
    algorithm, tuned once), ``report[key][bs]`` the measure per report seed (``key`` is
    ``"Adam"`` or ``"best L-BFGS"``), ``diverged[key][bs]`` the count of diverged report
    runs, ``comparisons[bs]`` the :func:`paired_interval` of Adam minus L-BFGS.
    """
    problem = LogisticRegression.breast_cancer(l2)
    N = problem.n_samples
    epochs = check_int("epochs", epochs, minimum=1)
    m = check_int("history_size", history_size, minimum=1)
    tune_seeds = [check_int("tune_seeds", s, minimum=0) for s in tune_seeds]
    seeds = [check_int("report_seeds", s, minimum=0) for s in report_seeds]
    if not tune_seeds or len(seeds) < 2 or set(tune_seeds) & set(seeds):
        raise ValueError(f"tune_seeds and report_seeds (>= 2) must be disjoint and non-empty, "
                         f"got {tune_seeds} and {seeds}")
    sizes = [check_int("batch_sizes", b, minimum=1) for b in batch_sizes]
    if max(sizes) > N:
        raise ValueError(f"batch_sizes must be <= {N}, got {max(sizes)}")
    no_progress = math.log10(problem.value(problem.x0) - problem.minimum_value)
    tuning = {name: {} for name in MINIBATCH_METHODS}
    for name in MINIBATCH_METHODS:
        for bs in sizes:
            if name == MINIBATCH_METHODS[1] and bs == N:  # the same algorithm as the other variant
                tuning[name][bs] = tuning[MINIBATCH_METHODS[0]][bs]
                continue

            def score(points, bound, name=name, bs=bs):
                out = []
                for p in points:
                    gaps = [_minibatch_run(problem, name, bs, p["lr"], s, epochs, m)["gap"] for s in tune_seeds]
                    out.append(float(np.mean(np.log10(gaps))) if all(map(math.isfinite, gaps)) else math.inf)
                return out
            tuning[name][bs] = tune(score, {"lr": ("log", *lr_range)}, per_decade=per_decade)
    best_lbfgs = {bs: min(MINIBATCH_METHODS[:2], key=lambda n: (tuning[n][bs]["score"], n)) for bs in sizes}
    report, diverged, comparisons = {"Adam": {}, "best L-BFGS": {}}, {"Adam": {}, "best L-BFGS": {}}, {}
    for bs in sizes:
        for key, name in (("Adam", "Adam"), ("best L-BFGS", best_lbfgs[bs])):
            t = tuning[name][bs]
            if t["best"] is None:
                report[key][bs], diverged[key][bs] = np.full(len(seeds), no_progress), len(seeds)
                continue
            gaps = [_minibatch_run(problem, name, bs, t["best"]["lr"], s, epochs, m)["gap"] for s in seeds]
            diverged[key][bs] = sum(not math.isfinite(g) for g in gaps)
            report[key][bs] = np.array([math.log10(g) if math.isfinite(g) else no_progress for g in gaps])
        comparisons[bs] = paired_interval(report["Adam"][bs], report["best L-BFGS"][bs])
    return dict(batch_sizes=sizes, epochs=epochs, history_size=m, tune_seeds=tune_seeds, report_seeds=seeds,
                per_decade=per_decade, tuning=tuning, report=report, diverged=diverged,
                comparisons=comparisons, best_lbfgs=best_lbfgs, no_progress=no_progress, n_samples=N)


def _text_color(rgba):
    """Black or white, whichever reads better on a cell of colour ``rgba`` (WCAG luminance)."""
    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if luminance > 0.179 else "white"


def minibatch_landscape(study, name):
    """``(lrs, batch_sizes, values)``: the tuning score (mean log10 gap on the tuning seeds) of
    method ``name`` on the union of its grids, ``nan`` where a step size was not tried and
    ``inf`` where a tuning seed diverged."""
    per_decade = study["per_decade"]
    js = sorted({grid_index("log", lr, per_decade) for bs in study["batch_sizes"]
                 for lr in study["tuning"][name][bs]["grid"]["lr"]})
    lrs = [grid_value("log", j, per_decade) for j in js]
    values = np.full((len(js), len(study["batch_sizes"])), np.nan)
    for col, bs in enumerate(study["batch_sizes"]):
        t = study["tuning"][name][bs]
        for lr, v in zip(t["grid"]["lr"], t["scores"]):
            values[js.index(grid_index("log", lr, per_decade)), col] = v
    return lrs, study["batch_sizes"], values


def plot_minibatch_tuning(study, axes=None):
    r"""One heat map per method: mean :math:`\log_{10}(f - f^\star)` on the tuning seeds over
    (step size, batch size), the tuned step of each batch size framed; one shared colorbar."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle
    names = list(study["tuning"])
    if axes is None:
        _, axes = _figure(len(names), 1, height=2.55 * len(names) + 1.3, sharex=True)
    fig = axes[0].figure
    land = {n: minibatch_landscape(study, n) for n in names}
    all_lrs = sorted({lr for n in names for lr in land[n][0]})
    finite = np.concatenate([v[np.isfinite(v)] for _, _, v in land.values()])
    norm = Normalize(vmin=float(finite.min()), vmax=float(finite.max()))
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="0.85")
    with mpl.rc_context(FIGURE_RC):
        for ax, name in zip(axes, names):
            lrs, sizes, values = land[name]
            Z = np.full((len(sizes), len(all_lrs)), np.nan)  # rows: batch sizes, columns: step sizes
            for i, lr in enumerate(lrs):
                Z[:, all_lrs.index(lr)] = values[i]
            im = ax.imshow(np.ma.masked_invalid(np.where(np.isfinite(Z), Z, np.nan)), cmap=cmap, norm=norm,
                           aspect="auto")
            for i in range(Z.shape[0]):
                for j in range(Z.shape[1]):
                    if np.isnan(Z[i, j]):
                        continue
                    text, color = ("div", "black") if not np.isfinite(Z[i, j]) else \
                        (f"{Z[i, j]:.1f}".replace("-", "−"), _text_color(cmap(norm(Z[i, j]))))
                    ax.text(j, i, text, ha="center", va="center", fontsize=10, color=color)
            for i, bs in enumerate(sizes):
                best = study["tuning"][name][bs]["best"]
                if best is not None:
                    j = all_lrs.index(grid_value("log", grid_index("log", best["lr"], study["per_decade"]),
                                                 study["per_decade"]))
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=2.5))
            ax.set_yticks(range(len(sizes)), [str(b) for b in sizes])
            ax.set_ylabel("batch size")
            ax.set_title(name)
            _ticks(ax)
        axes[-1].set_xticks(range(len(all_lrs)), [f"{lr:.2g}" for lr in all_lrs], rotation=90)
        axes[-1].set_xlabel("step size (lr); grey: not tried, div: a tuning seed diverged")
        cb = fig.colorbar(im, ax=list(axes), orientation="horizontal", shrink=0.8, aspect=40)
        cb.set_label(r"mean $\log_{10}(f - f^\star)$ after the budget (lower is better)")
        _ticks(cb.ax)
    return axes


def plot_minibatch_comparison(study, ax=None):
    r"""Adam minus the better L-BFGS, :math:`\log_{10}` of the final gap, per batch size: mean
    and 95% interval of the paired differences over the report seeds."""
    import matplotlib as mpl
    if ax is None:
        _, ax = _figure(height=4.0)
    sizes = study["batch_sizes"]
    short = {"L-BFGS, pairs across batches": "across batches", "L-BFGS, pairs on one batch": "same batch"}
    with mpl.rc_context(FIGURE_RC):
        for i, bs in enumerate(sizes):
            c = study["comparisons"][bs]
            color = {"a lower": COLORS["Adam"], "b lower": COLORS["L-BFGS"]}.get(c["verdict"], "0.4")
            ax.errorbar([i], [c["mean"]], yerr=[[c["mean"] - c["lo"]], [c["hi"] - c["mean"]]], fmt="o",
                        color=color, capsize=7, ms=8, lw=2)
        ax.axhline(0, color="0.3", lw=1)
        ax.set_xticks(range(len(sizes)), [f"{bs}\n{short[study['best_lbfgs'][bs]]}" for bs in sizes])
        ax.set_xlim(-0.6, len(sizes) - 0.4)
        ax.set(xlabel="batch size, and the L-BFGS variant its tuning chose",
               ylabel="Adam − L-BFGS\n(decades of final gap)")
        ax.annotate("↑ L-BFGS ends lower", (-0.55, 0), xytext=(0, 6), textcoords="offset points",
                    color=COLORS["L-BFGS"], va="bottom")
        ax.annotate("↓ Adam ends lower", (-0.55, 0), xytext=(0, -6), textcoords="offset points",
                    color=COLORS["Adam"], va="top")
        _ticks(ax)
    return ax


@single_thread()
def unit_step_gaps(l2=1e-3, batch_sizes=(8, 32), seeds=(100, 101, 102), epochs=10, history_size=10):
    """The final full-batch gaps of L-BFGS with its natural unit step and pairs across batches
    (as ``torch.optim.LBFGS`` forms them), per batch size: ``{batch_size: array over seeds}``
    (``inf`` for a diverged run), with the gap at the start, ``f(w_0) - f*``, under ``"start"``."""
    problem = LogisticRegression.breast_cancer(l2)
    out = {bs: np.array([_minibatch_run(problem, MINIBATCH_METHODS[0], bs, 1.0, s, epochs, history_size)["gap"]
                         for s in seeds]) for bs in batch_sizes}
    out["start"] = problem.value(problem.x0) - problem.minimum_value
    return out


# --------------------------------------------------------------------------------------
# Adam: bias correction and diagonal preconditioning
# --------------------------------------------------------------------------------------
def rules_adam_step(theta, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=True):
    """:func:`curvlib.rules.adam` as a pure function of the chapter's signature: one step at
    step number ``t`` (1, 2, ...), returning new ``(theta, m, v)`` and leaving the inputs alone."""
    state = {"step": t - 1, "exp_avg": np.array(m, dtype=np.float64), "exp_avg_sq": np.array(v, dtype=np.float64)}
    theta = rules.adam(np.array(theta, dtype=np.float64), g, state, lr=lr, eps=eps,
                       bias_correction=bias_correction, **_adam_betas(beta1, beta2))
    return theta, state["exp_avg"], state["exp_avg_sq"]


@single_thread()
def bias_correction_ratio(steps=1000, beta1=0.9, beta2=0.999, seed=0, adam=None):
    r"""How much larger the lecture's (uncorrected) Adam steps are than Kingma & Ba's.

    Runs the Adam step ``adam(theta, g, m, v, t, lr=, beta1=, beta2=, eps=, bias_correction=)``
    (default :func:`rules_adam_step`, i.e. :func:`curvlib.rules.adam`) with and without bias
    correction on the same random gradient sequence (standard normal entries plus a mean of
    1, 1000 coordinates) and returns the measured ratio of step lengths per step, beside the
    closed form :math:`(1-\beta_1^t)/\sqrt{1-\beta_2^t}` (exact up to :math:`\epsilon`,
    whatever the gradients: both estimates are rescaled by constants). Also returns the
    ratio's maximum and the step where it occurs.
    """
    steps = check_int("steps", steps, minimum=1)
    beta1 = check_unit_interval("beta1", beta1)
    beta2 = check_unit_interval("beta2", beta2)
    adam = rules_adam_step if adam is None else adam
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    grads = 1.0 + rng.standard_normal((steps, 1000))
    runs = {True: [np.zeros(1000)] * 3, False: [np.zeros(1000)] * 3}
    measured = np.empty(steps)
    for t in range(1, steps + 1):
        length = {}
        for corrected, (theta, m, v) in runs.items():
            new = adam(theta, grads[t - 1], m, v, t, lr=1e-3, beta1=beta1, beta2=beta2, eps=0.0,
                       bias_correction=corrected)
            length[corrected] = np.linalg.norm(new[0] - theta)
            runs[corrected] = list(new)
        measured[t - 1] = length[False] / length[True]
    t = np.arange(1, steps + 1)
    formula = (1 - beta1 ** t) / np.sqrt(1 - beta2 ** t)
    k = int(np.argmax(measured))
    return dict(step=t, measured=measured, formula=formula, first=float(measured[0]),
                max=float(measured[k]), argmax=k + 1,
                above_two_until=int(t[measured > 2][-1]) if np.any(measured > 2) else 0)


def plot_bias_correction(result, ax=None, label="measured"):
    """The measured step ratio (lecture's Adam over Kingma & Ba's) against the step, with the formula."""
    import matplotlib as mpl
    if ax is None:
        _, ax = _figure(height=4.0)
    with mpl.rc_context(FIGURE_RC):
        ax.semilogx(result["step"], result["measured"], lw=3, color=COLORS["Adam"], label=label)
        ax.semilogx(result["step"], result["formula"], "k--", lw=1.2,
                    label=r"$(1-\beta_1^t)\,/\sqrt{1-\beta_2^t}$")
        ax.axhline(1, color="0.6", lw=0.8)
        ax.set(xlabel="step $t$", ylabel="uncorrected / corrected step",
               title="how much larger the lecture's Adam steps are")
        ax.legend()
        _ticks(ax)
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


#: Starting grids of the rotation race (lattice indices); extended by :func:`tune`.
PRECONDITIONING_AXES = {
    "GD": {"lr": ("log", -40, 0)},
    "heavy ball": {"lr": ("log", -40, 0), "momentum": ("momentum", 0, 24)},
    "Adam": {"lr": ("log", -24, -4), "beta1": ("momentum", 0, 16)},
}


def _quadratic_steps(problem, label, points, budget, stop_at_first=False, *, tol):
    """Steps until :math:`\\|x\\| \\le` ``tol`` :math:`\\|x_0\\|` on :math:`\\tfrac12 x^\\top A x`, per point."""
    A, x0 = problem
    norm0 = float(np.linalg.norm(x0))
    return first_hit(lambda X: X @ A, x0, FIRST_ORDER[label][0], points,
                     lambda X, G: np.linalg.norm(X, axis=1) <= tol * norm0, budget=budget,
                     stop_at_first=stop_at_first)


@single_thread()
def preconditioning_study(kappas=(1e1, 1e2, 1e3, 1e4), dim=20, *, tol=1e-3, budget=5000, tune_seeds=(0, 1, 2),
                          report_seeds=(3, 4, 5, 6, 7), axes=None):
    r"""Steps to shrink :math:`\|x\|` by ``tol`` on axis-aligned and rotated quadratics, every method tuned.

    For each :math:`\kappa` and frame (:func:`quadratic_problem`: eigenvalues log-spaced in
    :math:`[1, \kappa]`, on the axes or turned by a random rotation; the seed draws the
    rotation and the start), GD (:math:`\eta`), the heavy ball (:math:`\eta, \beta`) and
    Adam (:math:`\eta, \beta_1`; :math:`\beta_2 = 0.999`) are tuned by :func:`tune` to
    minimise their worst count over the problems of ``tune_seeds``
    (:func:`worst_case_scorer`), the grids extended until no optimum sits at an edge, and
    then run on the problems of ``report_seeds``. ``inf``: not reached within ``budget`` steps.

    Returns ``dict(kappa, jacobi, tuning, steps, budget, ...)`` with ``tuning[(label, frame)]``
    a list (one :func:`tune` result per :math:`\kappa`) and ``steps[(label, frame)]`` an
    array of shape ``(len(kappas), len(report_seeds))``.
    """
    axes = PRECONDITIONING_AXES if axes is None else axes
    budget = check_int("budget", budget, minimum=1)
    tol = check_positive("tol", tol)
    tune_seeds = [check_int("tune_seeds", s, minimum=0) for s in tune_seeds]
    seeds = [check_int("report_seeds", s, minimum=0) for s in report_seeds]
    if not tune_seeds or len(seeds) < 2 or set(tune_seeds) & set(seeds):
        raise ValueError(f"tune_seeds and report_seeds (>= 2) must be disjoint and non-empty, "
                         f"got {tune_seeds} and {seeds}")
    out = {"kappa": [float(k) for k in kappas], "jacobi": {}, "tuning": {}, "steps": {}, "budget": budget,
           "tol": tol, "dim": dim, "tune_seeds": tune_seeds, "report_seeds": seeds}
    for frame, rotated in (("axis-aligned", False), ("rotated", True)):
        out["jacobi"][frame] = []
        for kappa in kappas:
            tuning_problems = [quadratic_problem(dim, kappa, rotated, s) for s in tune_seeds]
            out["jacobi"][frame].append(jacobi_condition_number(tuning_problems[0][0]))
            reports = [quadratic_problem(dim, kappa, rotated, s) for s in seeds]
            for label, ax in axes.items():
                def count(p, pts, b, first, label=label):
                    return _quadratic_steps(p, label, pts, b, first, tol=tol)
                t = tune(worst_case_scorer(count, tuning_problems, budget), ax)
                out["tuning"].setdefault((label, frame), []).append(t)
                row = [math.inf if t["best"] is None else float(count(p, [t["best"]], budget, False)[0])
                       for p in reports]
                out["steps"].setdefault((label, frame), []).append(row)
    out["steps"] = {k: np.array(v) for k, v in out["steps"].items()}
    return out


def adam_rescaling_check(kappa=1e4, dim=20, steps=300, lr=0.05, seed=0, adam=None):
    r"""Adam's iterates on :math:`\tfrac12 x^\top \mathrm{diag}(\lambda) x` against those on :math:`\tfrac12\|x\|^2`.

    With :math:`\epsilon = 0`, multiplying coordinate :math:`i` of every gradient by
    :math:`c_i > 0` multiplies :math:`m_i` by :math:`c_i` and :math:`\sqrt{v_i}` by
    :math:`c_i`, so the step :math:`\hat m_i/\sqrt{\hat v_i}` does not change. On a diagonal
    quadratic the gradient is :math:`g_i = \lambda_i x_i`, :math:`\lambda_i` times the gradient
    of :math:`\tfrac12\|x\|^2`, so Adam takes *the same steps* on both, whatever the
    :math:`\lambda_i`: its step count cannot depend on :math:`\kappa`. ``adam(theta, g, m, v, t,
    lr=..., eps=...)`` is the step function (default :func:`rules_adam_step`);
    returns the largest difference between the two paths relative to :math:`\|x_0\|`, with
    :math:`\epsilon = 10^{-8}` (Adam's default) and with :math:`\epsilon = 0`.
    """
    lam, x0 = np.logspace(0, math.log10(check_positive("kappa", kappa)), dim), \
        np.random.default_rng(check_int("seed", seed, minimum=0)).standard_normal(dim)
    adam = rules_adam_step if adam is None else adam
    out = {}
    for eps in (1e-8, 0.0):
        paths = []
        for scale in (lam, np.ones(dim)):
            x, m, v = x0.copy(), np.zeros(dim), np.zeros(dim)
            path = [x]
            for t in range(1, check_int("steps", steps, minimum=1) + 1):
                x, m, v = adam(x, scale * x, m, v, t, lr=lr, eps=eps)
                path.append(x)
            paths.append(np.array(path))
        out[eps] = float(np.max(np.abs(paths[0] - paths[1])) / np.linalg.norm(x0))
    return dict(kappa=kappa, max_difference=out[1e-8], max_difference_eps0=out[0.0])


def plot_preconditioning(result, ax=None):
    """Steps to tolerance against the condition number: median over the report seeds, bars from
    the fewest to the most; solid on the axes, dashed rotated; open triangles at the budget."""
    import matplotlib as mpl
    from matplotlib.lines import Line2D
    if ax is None:
        _, ax = _figure(height=5.0)
    kappa = np.asarray(result["kappa"], dtype=float)
    budget = float(result["budget"])
    with mpl.rc_context(FIGURE_RC):
        for (label, frame), steps in result["steps"].items():
            steps = np.asarray(steps, dtype=float)
            shift = {"axis-aligned": 0.96, "rotated": 1.04}[frame]  # keep the error bars apart
            ok = np.all(np.isfinite(steps), axis=1)
            med = np.median(steps, axis=1)
            color = COLORS.get(label)
            ax.errorbar(kappa[ok] * shift, med[ok],
                        yerr=[med[ok] - steps[ok].min(axis=1), steps[ok].max(axis=1) - med[ok]],
                        fmt="o-" if frame == "axis-aligned" else "s--", color=color, capsize=3, lw=1.6, ms=5)
            if not ok.all():
                ax.plot(kappa[~ok] * shift, np.full((~ok).sum(), budget), "^", color=color, mfc="none", ms=9)
        ax.axhline(budget, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel=r"condition number $\kappa$",
               ylabel=fr"steps to $\|x\| \leq {result['tol']:g}\,\|x_0\|$ (tuned)",
               title="a diagonal preconditioner helps only on the axes")
        methods = [Line2D([], [], color=COLORS.get(n), lw=2, label=n)
                   for n in dict.fromkeys(k[0] for k in result["steps"])]
        frames = [Line2D([], [], color="0.3", ls="-", marker="o", label="on the axes"),
                  Line2D([], [], color="0.3", ls="--", marker="s", label="rotated"),
                  Line2D([], [], color="0.3", ls="none", marker="^", mfc="none", label=f"not in {budget:,.0f}")]
        first = ax.legend(handles=methods, loc="upper left")
        ax.add_artist(first)
        ax.legend(handles=frames, loc="lower right")
        _ticks(ax)
    return ax


# --------------------------------------------------------------------------------------
# The lecture's comparison table, measured
# --------------------------------------------------------------------------------------
def _digits_model(hidden=32):
    from curvlib import models
    return models.mlp([64, hidden, 10], seed=0)


def state_bytes_rows(hidden=32, history_size=10):
    r"""Optimizer-state bytes measured on a digits MLP after a few steps, beside the formula.

    Builds each optimizer of :mod:`curvlib.optim` (L-BFGS from :mod:`curvlib.quasi_newton` if
    ``curvlib.optim`` does not list it), takes three steps (L-BFGS: enough inner iterations to
    fill its history) on
    a batch of digits, and measures ``optimizer.state`` with :func:`curvlib.memory.state_bytes`.
    For Newton the Hessian it forms at each step is not kept between steps, so the row reports
    :func:`curvlib.memory.hessian_bytes` (what one step must hold) as its "measured" figure.
    """
    import torch
    from curvlib import data, memory, optim, quasi_newton
    LBFGS = optim.LBFGS
    split = data.digits()
    X, y = split.X_train[:256], split.y_train[:256]
    rows = []
    specs = [("Newton", "newton", None, {}),
             (f"L-BFGS (m={history_size})", "lbfgs",
              lambda p: LBFGS(p, history_size=history_size, max_iter=history_size // 2 + 2),
              {"history_size": history_size}),
             ("Adam", "adam", lambda p: optim.Adam(p), {}),
             ("SGD+Momentum", "momentum", lambda p: optim.SGD(p, lr=0.1, momentum=0.9), {"momentum": 0.9}),
             ("SGD", "sgd", lambda p: optim.SGD(p, lr=0.1), {})]
    for label, name, make, hyper in specs:
        model = _digits_model(hidden)
        n = sum(p.numel() for p in model.parameters())
        k = len(list(model.parameters()))
        formula = memory.optimizer_state_bytes(name, n, n_tensors=k, **hyper)
        if make is None:
            measured = memory.hessian_bytes(n, "float32")
        else:
            opt = make(model.parameters())

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


def comparison_rows(study, race, state_rows, problem, windows=((1.0, 1e-2), (1e-2, 1e-4), (1e-4, 1e-6))):
    r"""The lecture's table with our measured columns: state bytes, evaluations, error ratios.

    ``study`` comes from :func:`full_batch_study` (tuned contenders, evaluations from the
    report starts), ``race`` from :func:`full_batch_race` with the tuned hyperparameters (its
    paths give the error ratios) and ``state_rows`` from :func:`state_bytes_rows`. The measured
    convergence is the median number of gradient evaluations to the study's tolerance, and
    the median error ratio :math:`e_{k+1}/e_k` in each error window (:func:`ratio_by_window`):
    a constant ratio is linear convergence, a shrinking one superlinear.
    """
    lbfgs = f"L-BFGS (m={study['history_size']})"
    by_lecture = {"Newton": "Newton", "L-BFGS": lbfgs, "Adam": "Adam", "SGD+Momentum": "heavy ball",
                  "SGD": "GD"}
    state = {r["method"].split(" (")[0]: r for r in state_rows}
    rows = []
    from . import LECTURE_TABLE
    for method, (mem, conv, use) in LECTURE_TABLE.items():
        label = by_lecture[method]
        ev = study["evaluations"][label]
        rows.append(dict(method=method, label=label, lecture_memory=mem, lecture_convergence=conv,
                         lecture_use=use, state_bytes=state[method]["measured_bytes"],
                         n_params=state[method]["n_params"], evaluations=float(np.median(ev)),
                         evaluations_range=(float(np.min(ev)), float(np.max(ev))),
                         ratios=ratio_by_window(race[label].path, problem.minimum, windows)))
    return rows


def comparison_markdown(rows):
    """The comparison table as Markdown."""
    from curvlib.memory import format_bytes
    n = rows[0]["n_params"]
    lines = [f"| method | lecture: memory | measured state, MLP with {n:,} parameters | lecture: convergence "
             "| gradient evaluations to tolerance, tuned (median, range) "
             "| median $e_{k+1}/e_k$ per error window | lecture: use |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["evaluations_range"]
        ev = f"{r['evaluations']:,.0f} ({lo:,.0f}–{hi:,.0f})" if math.isfinite(hi) else "not reached"
        ratios = " → ".join("–" if math.isnan(x) else f"{x:.2f}" for x in r["ratios"])
        lines.append(f"| {r['method']} | ${r['lecture_memory']}$ | {format_bytes(r['state_bytes'])} | "
                     f"{r['lecture_convergence']} | {ev} | {ratios} | {r['lecture_use']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------
#: Frames of the chapter's widgets: wide enough that 12-point type reads as body text at the
#: site's column width (about 760 pixels).
FRAME = dict(figsize=(7.6, 4.2), dpi=100)
#: Type sizes inside the frames.
FRAME_RC = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 11,
            "ytick.labelsize": 11, "legend.fontsize": 11}
#: The Adam explorer's controls: step size and beta1, 6 positions each.
ADAM_LRS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_BETA1S = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
#: beta2 positions of the bias-correction explorer.
ADAM_BETA2S = (0.9, 0.99, 0.995, 0.999, 0.9995, 0.9999)


def _frame_axes(fig, ratios=(1.15, 1)):
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": list(ratios)})
    for ax in axes:
        _ticks(ax)
    return axes


def _quadratic_paths(f, method, points, steps):
    """Paths of ``method`` (:data:`FIRST_ORDER` rules) on the 2-D quadratic landscape ``f``
    from ``f.start``, one per hyperparameter point, all run at once: shape ``(steps + 1, k, 2)``."""
    X = np.tile(np.asarray(f.start, dtype=np.float64), (len(points), 1))
    init, step = _rule_step(method, points)
    state = init(X)
    paths = [X.copy()]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            step(X, (X - f.center) @ f.A, state)
            paths.append(X.copy())
    return np.array(paths)


@single_thread()
def adam_explorer(kappa=20.0, angle=math.pi / 6, steps=300, lrs=ADAM_LRS, beta1s=ADAM_BETA1S, beta2=0.999):
    r"""Explorer: Adam's ``lr`` and ``beta1`` on a rotated quadratic of condition ``kappa``.

    All paths are run in the factory, at once, with :func:`curvlib.rules.adam` (the rule of
    :class:`curvlib.optim.Adam`; ``beta2`` fixed, :math:`\epsilon = 10^{-8}`); the contour
    grid is evaluated once, so an update only draws.
    """
    import matplotlib as mpl
    from curvlib import plots
    from curvlib.landscapes import Quadratic
    from curvlib.runs import divergence_step
    from curvlib.widgets import Explorer
    f = Quadratic(check_positive("kappa", kappa), check_real("angle", angle))
    steps = check_int("steps", steps, minimum=1)
    beta2 = check_unit_interval("beta2", beta2)
    grid = f.grid(121)
    keys = [(lr, b1) for lr in lrs for b1 in beta1s]
    paths = _quadratic_paths(f, "adam", [{"lr": lr, "beta1": b1, "beta2": beta2} for lr, b1 in keys], steps)
    runs = {key: paths[:, i] for i, key in enumerate(keys)}
    f0 = float(f(np.asarray(f.start)))

    def render(fig, lr, beta1):
        path = runs[(lr, beta1)]
        k = divergence_step(path)
        if k is not None:
            return f"diverged at step {k}"
        values = np.array([float(f(x)) for x in path])
        with mpl.rc_context(FRAME_RC):
            ax, ax2 = _frame_axes(fig)
            plots.contour(grid=grid, paths={"Adam": path}, ax=ax, legend=False, path_kw={"color": COLORS["Adam"]})
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"path, lr={lr:g}, β1={beta1:g}")
            plots.convergence({"f - f*": np.maximum(values, 1e-16)}, ax=ax2, ylabel="", legend=False,
                              xlabel="step", styles={"f - f*": {"color": COLORS["Adam"]}})
            plots.plain_log_ticks(ax2, "y", numticks=30, every=4)
            ax2.set_title(f"f − f*  (κ={kappa:g}, β2={beta2:g})")
        below = np.flatnonzero(values <= 1e-6 * f0)
        return (f"f falls below 1e-6 f(x0) at step {below[0]}" if below.size else
                f"after {steps} steps f = {values[-1]:.1e} (f(x0) = {f0:.2g})")

    return Explorer(render, {"lr": list(lrs), "beta1": list(beta1s)},
                    initial={"lr": 0.1 if 0.1 in lrs else lrs[0], "beta1": 0.9 if 0.9 in beta1s else beta1s[0]},
                    labels={"lr": "step size lr", "beta1": "beta1"}, **FRAME,
                    alt="Adam's path on a rotated ill-conditioned quadratic and its loss curve")


@single_thread()
def adam_bias_explorer(kappa=20.0, angle=math.pi / 6, steps=200, lr=0.05, beta1=0.9, beta2s=ADAM_BETA2S,
                       adam=None):
    r"""Explorer: Adam with and without bias correction, for a chosen :math:`\beta_2`.

    Both forms run from the same start on a rotated quadratic; the left panel shows the two
    paths, the right one the length of each step. ``adam`` is the step function (default
    :func:`rules_adam_step`); all runs are made in the factory.
    """
    import matplotlib as mpl
    from curvlib import plots
    from curvlib.landscapes import Quadratic
    from curvlib.widgets import Explorer
    f = Quadratic(check_positive("kappa", kappa), check_real("angle", angle))
    adam = rules_adam_step if adam is None else adam
    steps = check_int("steps", steps, minimum=1)
    grid = f.grid(121)
    runs = {}
    for b2 in beta2s:
        for corrected in (True, False):
            x, m, v = np.asarray(f.start, dtype=float), np.zeros(2), np.zeros(2)
            path = [x]
            for t in range(1, steps + 1):
                x, m, v = adam(x, f.grad(x), m, v, t, lr=lr, beta1=beta1, beta2=b2, eps=1e-8,
                               bias_correction=corrected)
                path.append(x)
            runs[(b2, corrected)] = np.array(path)
    labels = {True: "Kingma & Ba (corrected)", False: "lecture (uncorrected)"}
    colors = {True: "tab:red", False: "tab:purple"}

    def render(fig, beta2):
        with mpl.rc_context(FRAME_RC):
            ax, ax2 = _frame_axes(fig)
            plots.contour(grid=grid, ax=ax, legend=False)
            for c in (False, True):  # the corrected path on top
                p = runs[(beta2, c)]
                ax.plot(p[:, 0], p[:, 1], "-", color=colors[c], lw=3.2 if not c else 1.6)
                ax.plot(*p[0], "o", color="0.2", ms=6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"paths, β2={beta2:g}")
            t = np.arange(1, steps + 1)
            for c in (True, False):
                ax2.loglog(t, np.linalg.norm(np.diff(runs[(beta2, c)], axis=0), axis=1), color=colors[c],
                           lw=1.8, label=labels[c].split(" (")[0])
            plots.plain_log_ticks(ax2, "y", numticks=30, every=1)
            ax2.set(xlabel="step t", title="step length")
            ax2.legend(loc="lower left", fontsize=10)
        first = [float(np.linalg.norm(runs[(beta2, c)][1] - runs[(beta2, c)][0])) for c in (False, True)]
        return f"first step: uncorrected {first[0] / first[1]:.2f}x the corrected one (lr={lr:g}, β1={beta1:g})"

    return Explorer(render, {"beta2": list(beta2s)}, initial={"beta2": 0.999 if 0.999 in beta2s else beta2s[0]},
                    labels={"beta2": "beta2"}, **FRAME,
                    alt="Adam with and without bias correction: paths and step lengths")


@single_thread()
def lbfgs_history_explorer(sizes=(1, 2, 5, 10, 20, 50), l2s=(3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4),
                           gtol=1e-8):
    r"""Explorer: L-BFGS history size ``m`` and the L2 strength (which sets :math:`\kappa`) on
    breast-cancer logistic regression; the loss gap per iteration beside Newton's and GD's.

    Every run is made in the factory: L-BFGS for each pair, and per problem Newton and GD
    with :math:`\eta = 2/(\lambda_{\max} + \lambda_{\min})` of the Hessian at :math:`w^\star`
    (the best fixed step on the quadratic model, capped at 1000 iterations).
    """
    import matplotlib as mpl
    from curvlib import plots
    from curvlib.widgets import Explorer
    problems = {l2: LogisticRegression.breast_cancer(l2) for l2 in l2s}
    kappas = {l2: p.condition_number() for l2, p in problems.items()}
    runs, refs = {}, {}
    for l2, p in problems.items():
        lam = np.linalg.eigvalsh(p.hess(p.minimum))
        refs[l2] = {"Newton": solve(p, "newton", gtol=gtol, maxiter=100),
                    "GD": solve(p, "gd", lr=2 / (lam[0] + lam[-1]), gtol=gtol, maxiter=1000)}
        for m in sizes:
            runs[(m, l2)] = solve(p, "lbfgs", history_size=m, gtol=gtol, maxiter=3000)

    def render(fig, m, l2):
        with mpl.rc_context(FRAME_RC):
            ax = fig.subplots()
            _ticks(ax)
            p = problems[l2]
            res = runs[(m, l2)]
            curves = {f"L-BFGS m={m}": np.maximum(res.fun_path - p.minimum_value, 1e-17)}
            for label, r in refs[l2].items():
                curves[label] = np.maximum(r.fun_path - p.minimum_value, 1e-17)
            plots.convergence(curves, ax=ax, ylabel="f − f*", xlabel="iteration", styles={
                f"L-BFGS m={m}": {"color": COLORS["L-BFGS"], "lw": 2.2},
                "Newton": {"color": "0.2", "ls": "--"}, "GD": {"color": "0.5", "ls": ":"}}, legend=False)
            ax.legend(loc="upper right", fontsize=11)
            ax.set_xlim(0, max(150, res.nit + 5))
            plots.plain_log_ticks(ax, "y", numticks=30, every=3)
            ax.set_title(f"logistic regression, l2={l2:g} (κ at w* = {kappas[l2]:.3g})")
        status = "" if res.success else f" ({res.message})"
        return (f"m={m}: {res.nit} iterations, {res.nfev} evaluations to |grad| <= {gtol:g}{status}; "
                f"state {(2 * m + 2) * p.dim} floats vs {p.dim ** 2} for the Hessian")

    sizes, l2s = list(sizes), list(l2s)
    initial = {"m": 5 if 5 in sizes else sizes[0], "l2": 1e-3 if 1e-3 in l2s else l2s[0]}
    return Explorer(render, {"m": sizes, "l2": l2s}, initial=initial,
                    labels={"m": "history size m", "l2": "L2 strength"}, **FRAME,
                    alt="Loss gap of L-BFGS against iterations for a chosen history size and L2 strength")


EXPLORERS = [adam_explorer, adam_bias_explorer, lbfgs_history_explorer]
