r"""Chapter 8: the lecture's four "performance statistics", each as a small fair experiment.

The lecture's section 8 lists four numbers without sources: Adam converges 2-5x faster than
SGD; well-tuned SGD with momentum often generalises best; L-BFGS reaches similar accuracy in
50-70% fewer iterations; adaptive methods reduce the sensitivity to the learning rate by
10-100x. Each function below measures one of them on scikit-learn's digits (an MLP
64-32-10) or breast-cancer set, with the protocol of :mod:`curvlib.compare`: every optimizer
gets its learning rate tuned on the *same* grid (on a tuning seed that is not reported), then
is trained from five fresh seeds and reported with its spread.

The published benchmarks that asked the same questions, cited by the chapter:

* Wilson, Roelofs, Stern, Srebro & Recht (2017), "The Marginal Value of Adaptive Gradient
  Methods in Machine Learning", NeurIPS -- generalisation of adaptive methods vs SGD;
* Choi, Shallue, Nado, Lee, Maddison & Dahl (2019), "On Empirical Comparisons of Optimizers
  for Deep Learning", arXiv:1910.05446 -- rankings depend on the tuning protocol;
* Schmidt, Schneider & Hennig (2021), "Descending through a Crowded Valley -- Benchmarking
  Deep Learning Optimizers", ICML -- no optimizer dominates, Adam stays competitive;
* Dahl et al. (2023), "Benchmarking Neural Network Training Algorithms", arXiv:2306.07179
  (AlgoPerf) -- time to a target as the measure of speed.

Definitions used throughout. A smoothed loss curve is the running mean of the per-step
mini-batch loss over ``window`` steps; the *steps to target* :math:`T(\tau)` is the first step
at which it is :math:`\le \tau`. The *good-lr window* at tolerance :math:`X` is the set of
learning rates whose mean final loss :math:`\bar L(\eta)` satisfies
:math:`\bar L(\eta) \le (1+X)\,\min_{\eta'} \bar L(\eta')`; its width is
:math:`\log_{10}(\eta_{\max}/\eta_{\min})` decades (end points interpolated linearly in
:math:`\log\eta` between grid points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from curvlib import compare, optim
from curvlib._checks import check_int, check_positive
from curvlib.landscapes import LogisticRegression
from curvlib.widgets import Explorer

__all__ = ["OPTIMIZERS", "ADAPTIVE", "LR_GRID", "WIDE_GRID", "Problem", "digits_problem", "make_mlp", 
           "speed_study", "generalization_study", "lbfgs_study",
           "savings_curve", "grid_study", "fine_window_study", "effective_rate", "TUNE_SEED", "final_losses", "good_window", "window_table",
           "bands_explorer", "sensitivity_explorer"]


#: The optimizers of the lecture's claims, as ``(model, lr) -> optimizer`` factories.
OPTIMIZERS = {"SGD": optim.factory("sgd"), "SGD+momentum": optim.factory("momentum"),
              "Adam": optim.factory("adam")}
#: Extra adaptive methods for the sensitivity study.
ADAPTIVE = {"RMSprop": optim.factory("rmsprop"), "Adagrad": optim.factory("adagrad")}
#: The shared tuning grid, the book's grid (:data:`curvlib.compare.LR_GRID`) extended to 3
#: (plain SGD likes large rates).
LR_GRID = compare.lr_grid(1e-4, 3.0)
#: A wide log grid, half a decade apart, for the learning-rate sensitivity study.
WIDE_GRID = compare.lr_grid(1e-4, 10.0, digits=3)


# --------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A classification problem with three splits: ``tune`` = (train, val) picks learning rates,
    ``report`` = (train, test) is what the chapter reports."""
    name: str
    tune: tuple
    report: tuple
    n_features: int
    n_classes: int


def digits_problem(train_size=None, seed=0):
    """Digits: 25% test split; 20% of the rest is the validation set used for tuning.

    ``train_size`` (optional) keeps only that many training examples (stratified by order of
    a seeded permutation) -- the "harder", small-data split.
    """
    from curvlib.data import digits
    d = digits(test_size=0.25, seed=seed)
    X, y = d.X_train, d.y_train
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(X), generator=g)
    n_val = len(X) // 5
    val, train = perm[:n_val], perm[n_val:]
    if train_size is not None:
        train_size = check_int("train_size", train_size, minimum=20)
        if train_size > len(train):
            raise ValueError(f"train_size must be at most {len(train)}, got {train_size}")
        train = train[:train_size]
    Xt, yt = X[train], y[train]
    name = "digits" if train_size is None else f"digits ({train_size} training examples)"
    return Problem(name, (Xt, yt, X[val], y[val]), (Xt, yt, d.X_test, d.y_test), 64, 10)


def make_mlp(seed, sizes=(64, 32, 10)):
    """The chapter's network: ``curvlib.models.mlp(sizes)`` with tanh, weights drawn from ``seed``."""
    from curvlib.models import mlp
    return mlp(list(sizes), seed=seed)


# --------------------------------------------------------------------------------------
# Claim 1: speed (steps to a target loss)
# --------------------------------------------------------------------------------------
TUNE_SEED = 100


def grid_study(problem=None, *, lr_grid=WIDE_GRID, steps=100, batch_size=64,
               seeds=compare.DEFAULT_SEEDS, optimizers=None):
    """Every optimizer at every lr of ``lr_grid``, from the tuning seed 100 and every seed.

    One vectorised batch per optimizer (:func:`curvlib.compare.run_grid`) on
    ``problem.tune`` (training part without the validation set; ``val_loss`` is the validation
    loss). The three claims about speed, generalisation and sensitivity all read this one
    batch. Returns ``{name: {"tune": {lr: RunStats of seed 100}, "report": {lr: RunStats of
    seeds}}}``.
    """
    problem = digits_problem() if problem is None else problem
    optimizers = {**OPTIMIZERS, "RMSprop": ADAPTIVE["RMSprop"]} if optimizers is None else optimizers
    seeds = tuple(int(s) for s in seeds)
    if TUNE_SEED in seeds:
        raise ValueError(f"seeds must not contain the tuning seed {TUNE_SEED}")
    out = {}
    for name, factory in optimizers.items():
        grid = compare.run_grid(factory, lr_grid, make_mlp, problem.tune, steps=steps,
                                seeds=(TUNE_SEED,) + seeds, batch_size=batch_size, name=name)
        out[name] = {"tune": {lr: st.select(0) for lr, st in grid.items()},
                     "report": {lr: st.select(list(range(1, len(seeds) + 1)))
                                for lr, st in grid.items()}}
    return out


def speed_study(grid, *, target=0.15, window=10, names=("SGD", "SGD+momentum", "Adam")):
    """Steps to reach a smoothed training loss of ``target``, from a :func:`grid_study`.

    Each optimizer's lr is the grid point that reaches the target soonest on the tuning seed
    (ties: lower final training loss). Returns ``{"per": {name: {"lr", "at_edge", "steps"
    (per reporting seed, inf = never), "runs"}}, "ratio": {name: steps[name]/steps["Adam"]}}``
    (paired by seed).
    """
    target = check_positive("target", target)
    out = {"target": target, "per": {}}
    for name in names:
        tune = grid[name]["tune"]
        score = {lr: (float(compare.steps_to_target(st.loss[0], target, window)), float(st.train_loss[0]))
                 for lr, st in tune.items()}
        lr = min(score, key=lambda r: (score[r], r))
        runs = grid[name]["report"][lr]
        out["per"][name] = {"lr": lr, "at_edge": lr in (min(tune), max(tune)),
                            "steps": compare.steps_to_target(runs.loss, target, window), "runs": runs}
    ref = out["per"].get("Adam")
    out["ratio"] = {} if ref is None else \
        {n: p["steps"] / ref["steps"] for n, p in out["per"].items() if n != "Adam"}
    return out


# --------------------------------------------------------------------------------------
# Claim 2: generalisation (test accuracy)
# --------------------------------------------------------------------------------------
def generalization_study(grid, problem=None, *, steps=100, batch_size=64,
                         seeds=compare.DEFAULT_SEEDS, names=("SGD", "SGD+momentum", "Adam")):
    """Test accuracy of each optimizer, lr tuned on the validation loss of the tuning seed.

    The rate is the grid point of ``grid`` (a :func:`grid_study` on ``problem``) with the
    lowest validation loss on seed 100; the reported runs train from ``seeds`` on the same
    training set and are scored on the test split. Returns ``{name: {"lr", "at_edge",
    "test_acc" (per seed), "train_loss" (per seed), "runs"}}``.
    """
    problem = digits_problem() if problem is None else problem
    out = {}
    for name in names:
        tune = grid[name]["tune"]
        lr = min(tune, key=lambda r: (float(tune[r].val_loss[0]), r))
        runs = compare.run_seeds(OPTIMIZERS[name], lr, make_mlp, problem.report, steps=steps,
                                 seeds=seeds, batch_size=batch_size, name=name)
        out[name] = {"lr": lr, "at_edge": lr in (min(tune), max(tune)),
                     "test_acc": np.asarray(runs.val_acc, float),
                     "train_loss": np.asarray(runs.train_loss, float), "runs": runs}
    return out


# --------------------------------------------------------------------------------------
# Claim 3: L-BFGS iterations (full batch)
# --------------------------------------------------------------------------------------
def _flat_objective(model, X, y):
    """``x -> (loss, grad)`` in float64 numpy for ``model``'s parameters flattened into ``x``."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    model = model.double()
    Xd = X.double()

    def fun(x):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        parts = torch.split(t, sizes)
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes)}
        loss = torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (Xd,)), y)
        (g,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), g.numpy()

    x0 = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()]).numpy()
    return fun, x0


def _first_order_numpy(fun, x0s, method, lr_grid, steps):
    """Tune ``method`` (curvlib.minimize) on the grid from the tuning start ``x0s[0]`` by the
    final value; return (lr, losses of the reporting starts ``x0s[1:]``)."""
    from curvlib.minimizer import minimize
    kw = {"momentum": {"momentum": 0.9}}.get(method, {})
    method_name = {"SGD": "gd", "SGD+momentum": "momentum", "Adam": "adam"}[method]

    def path(x0, lr):
        r = minimize(fun, x0, jac=True, method=method_name, maxiter=steps, gtol=0.0, lr=lr, **kw)
        fp = np.full(steps + 1, np.inf)
        fp[:len(r.fun_path)] = r.fun_path
        if r.success and len(r.fun_path) < steps + 1:
            fp[len(r.fun_path):] = r.fun_path[-1]
        return fp
    scores = {lr: path(x0s[0], lr)[-1] for lr in lr_grid}
    lr = min(scores, key=lambda v: (scores[v], v))
    return lr, np.array([path(x0, lr) for x0 in x0s[1:]])


def lbfgs_study(model="logistic", *, steps=200, lr_grid=LR_GRID, seeds=compare.DEFAULT_SEEDS,
                history_size=10, n_train=300, gtol=1e-10):
    r"""Full-batch training loss per iteration: first-order methods (tuned) vs L-BFGS.

    ``model="logistic"``: L2-regularised logistic regression on breast cancer
    (:class:`curvlib.landscapes.LogisticRegression`, :math:`\lambda = 10^{-2}`, on the float32
    features of the chapter's networks), every method through
    :func:`curvlib.minimizer.minimize` from a random start drawn from the seed (tuning start: seed 100).
    ``model="mlp"``: the digits MLP 64-32-10 on ``n_train`` training examples, first-order
    methods through :mod:`curvlib.compare` (vectorised), L-BFGS through :func:`curvlib.minimizer.minimize`
    on the flattened float64 weights, from the same initial weights. First-order learning rates
    are tuned on ``lr_grid`` by the final training loss; L-BFGS (``history_size``, strong Wolfe
    line search, stopped at gradient norm ``gtol`` or ``steps`` iterations) has none. Returns ``{name: {"loss": (seeds, steps+1), "lr", "nfev": (seeds,)
    function evaluations used}}``; first-order methods use one evaluation per iteration.
    """
    from curvlib.data import breast_cancer
    from curvlib.minimizer import minimize
    T = check_int("steps", steps, minimum=2)
    seeds = tuple(seeds)
    out = {}
    if model == "logistic":
        d = breast_cancer(test_size=0.25, seed=0, as_torch=False)
        fun = LogisticRegression(d.X_train, d.y_train, l2=1e-2).value_and_grad
        x0s = [0.1 * np.random.default_rng(s).standard_normal(31) for s in (100,) + seeds]
        for name in OPTIMIZERS:
            lr, loss = _first_order_numpy(fun, x0s, name, lr_grid, T)
            out[name] = {"loss": loss, "lr": lr, "nfev": np.full(len(seeds), float(T))}
        starts = [(fun, x0) for x0 in x0s[1:]]
    elif model == "mlp":
        p = digits_problem(train_size=n_train)
        data = p.report
        for name, factory in OPTIMIZERS.items():
            grid = compare.run_grid(factory, lr_grid, make_mlp, data, steps=T, seeds=(100,) + seeds)
            lr = min(grid, key=lambda r: (float(grid[r].train_loss[0]), r))
            st = grid[lr]
            loss = np.column_stack([st.loss[1:], st.train_loss[1:]])
            loss[~np.isfinite(loss)] = np.inf
            out[name] = {"loss": loss, "lr": lr, "nfev": np.full(len(seeds), float(T))}
        starts = [_flat_objective(make_mlp(s), data[0], data[1]) for s in seeds]
    else:
        raise ValueError(f"model must be 'logistic' or 'mlp', got {model!r}")
    losses, nfev, nit = [], [], []
    for f, x0 in starts:
        res = minimize(f, x0, jac=True, method="lbfgs", maxiter=T, gtol=gtol,
                       history_size=history_size)
        fp = np.full(T + 1, res.fun_path[-1])  # converged early: the loss stays where it stopped
        fp[:len(res.fun_path)] = res.fun_path
        losses.append(fp)
        nfev.append(float(res.nfev))
        nit.append(float(res.nit))
    # nfev and nit count the same run to the same stopping test (gradient norm gtol or T iterations)
    out["L-BFGS"] = {"loss": np.array(losses), "lr": 1.0, "nfev": np.array(nfev),
                     "nit": np.array(nit)}
    return out


def savings_curve(study, gaps, *, reference=None):
    r"""Iterations each method needs to bring the training loss within ``gap`` of the best.

    :math:`f^\star` is the lowest loss any method reached (the L-BFGS run, in practice). For each
    relative gap :math:`\delta` the target is :math:`f^\star + \delta\,(f_0 - f^\star)`; returns
    ``{name: (seeds, len(gaps)) iterations}`` (``inf`` = not within the budget) and, under
    ``"saving"``, :math:`1 - T_{\text{L-BFGS}} / \min_{\text{first order}} T` per seed and gap
    (paired by seed; ``reference`` names the first-order method to compare with instead).
    """
    gaps = np.asarray(gaps, float)
    if gaps.ndim != 1 or np.any(gaps <= 0):
        raise ValueError(f"gaps must be a 1-D array of positive numbers, got {gaps!r}")
    names = [n for n in study if n != "L-BFGS"]
    fstar = min(np.nanmin(study[n]["loss"]) for n in study)
    out = {}
    for n in study:
        L = study[n]["loss"]
        f0 = L[:, :1]
        targets = fstar + gaps[None, :] * (f0 - fstar)          # (seeds, gaps)
        hit = L[:, :, None] <= targets[:, None, :]               # (seeds, steps, gaps)
        out[n] = np.where(hit.any(axis=1), hit.argmax(axis=1).astype(float), np.inf)
    first = out[reference] if reference is not None else np.min([out[n] for n in names], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["saving"] = np.where(np.isfinite(first), 1.0 - out["L-BFGS"] / first, np.nan)
    return out


# --------------------------------------------------------------------------------------
# Claim 4: learning-rate sensitivity
# --------------------------------------------------------------------------------------
def final_losses(grid):
    """``(lrs, mean final training loss per lr)`` from ``{lr: RunStats}`` (``inf`` if any seed
    diverged)."""
    lrs = np.array(sorted(grid))
    mean = np.array([np.mean(grid[lr].train_loss) for lr in lrs])
    mean[~np.isfinite(mean)] = np.inf
    return lrs, mean


def good_window(lrs, losses, tolerance):
    r"""Contiguous lr interval around the best whose loss is :math:`\le (1+X)\,L_{\min}`.

    ``lrs`` increasing, ``losses`` the mean final loss at each. The end points are interpolated
    linearly in :math:`\log_{10}\eta` where the loss crosses the threshold (an end at the edge
    of the grid stays at the grid's end). Returns ``(lo, hi, width_in_decades)``.
    """
    tolerance = check_positive("tolerance", tolerance)
    lrs, L = np.asarray(lrs, float), np.asarray(losses, float)
    if lrs.shape != L.shape or lrs.ndim != 1 or len(lrs) < 2:
        raise ValueError("lrs and losses must be 1-D arrays of the same length >= 2")
    if not np.all(np.diff(lrs) > 0):
        raise ValueError("lrs must be increasing")
    if not np.isfinite(L).any():
        raise ValueError("losses has no finite value: every run diverged")
    x = np.log10(lrs)
    i = int(np.nanargmin(np.where(np.isfinite(L), L, np.inf)))
    thr = (1.0 + tolerance) * L[i]
    lo = i
    while lo > 0 and L[lo - 1] <= thr:
        lo -= 1
    hi = i
    while hi < len(L) - 1 and L[hi + 1] <= thr:
        hi += 1

    def cross(a, b):  # a inside, b outside: where the log-lr line crosses thr
        if not np.isfinite(L[b]):
            return x[a] + 0.5 * (x[b] - x[a])   # diverged neighbour: half way
        t = (thr - L[a]) / (L[b] - L[a])
        return x[a] + t * (x[b] - x[a])
    xlo = x[lo] if lo == 0 else cross(lo, lo - 1)
    xhi = x[hi] if hi == len(L) - 1 else cross(hi, hi + 1)
    return 10 ** xlo, 10 ** xhi, float(xhi - xlo)


def window_table(grid, tolerances=(0.1, 0.5, 1.0)):
    """``{name: {tolerance: width in decades}}`` from a :func:`grid_study` (reporting seeds)."""
    out = {}
    for name, g in grid.items():
        lrs, L = final_losses(g["report"])
        out[name] = {t: good_window(lrs, L, t)[2] for t in tolerances}
    return out


def fine_window_study(problem, grid, *, steps=80, batch_size=64, per_decade=8, span=1.0,
                      tolerances=(0.1, 0.5, 1.0), seeds=compare.DEFAULT_SEEDS, optimizers=None):
    r"""Good-lr windows on a fine grid: ``per_decade`` rates per decade around each optimizer's
    best rate of the coarse :func:`grid_study` ``grid``, ``span`` decades either side.

    The coarse grid (half a decade apart) is wider than the windows it measures; this one is
    fine enough (1/8 decade by default) that a window's ends are interpolated over at most an
    eighth of a decade. Every rate is trained from every reporting seed. Returns ``{name:
    {"lrs", "loss" (mean final training loss per lr), "width": {X: decades of the seed-mean
    curve}, "seed_widths": {X: array, one width per seed}, "sd": {X: seed sd of the widths},
    "at_edge": {X: bool, the window touches the fine grid's end}}}``.
    """
    per_decade = check_int("per_decade", per_decade, minimum=2)
    span = check_positive("span", span)
    optimizers = {**OPTIMIZERS, "RMSprop": ADAPTIVE["RMSprop"]} if optimizers is None else optimizers
    k = int(round(span * per_decade))
    out = {}
    for name, factory in optimizers.items():
        if name not in grid:
            raise ValueError(f"grid has no optimizer {name!r}")
        lrs0, L0 = final_losses(grid[name]["report"])
        centre = math.log10(float(lrs0[int(np.argmin(L0))]))
        lrs = [float(10 ** (centre + j / per_decade)) for j in range(-k, k + 1)]
        runs = compare.run_grid(factory, lrs, make_mlp, problem.tune, steps=steps,
                                seeds=tuple(seeds), batch_size=batch_size, name=name)
        lr_arr, L = final_losses(runs)
        per_seed = np.array([[float(runs[lr].train_loss[i]) for lr in lr_arr]
                             for i in range(len(tuple(seeds)))])
        per_seed[~np.isfinite(per_seed)] = np.inf
        rec = {"lrs": lr_arr, "loss": L, "width": {}, "seed_widths": {}, "sd": {}, "at_edge": {}}
        for t in tolerances:
            lo, hi, w = good_window(lr_arr, L, t)
            rec["width"][t] = w
            rec["at_edge"][t] = bool(np.isclose(lo, lr_arr[0]) or np.isclose(hi, lr_arr[-1]))
            sw = np.array([good_window(lr_arr, row, t)[2] for row in per_seed])
            rec["seed_widths"][t] = sw
            rec["sd"][t] = float(sw.std(ddof=1))
        out[name] = rec
    return out


def effective_rate(lr, momentum):
    r"""The step heavy-ball momentum takes on a constant gradient, :math:`\eta/(1-\beta)`."""
    lr = check_positive("lr", lr)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    return lr / (1.0 - momentum)


# --------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------
_COLORS = {"SGD": "C0", "SGD+momentum": "C1", "Adam": "C2", "RMSprop": "C3", "Adagrad": "C4"}


def _default_grid():
    """A small, quick grid study for the factories' defaults (tests and benchmarks)."""
    return grid_study(lr_grid=WIDE_GRID[::2], steps=40, seeds=(0, 1, 2, 3, 4))


def sensitivity_explorer(grid=None, tolerances=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0)):
    """Final loss against lr for every optimizer, the good-lr window shaded at a tolerance.

    Controls: ``tolerance`` X (a run is "good" within (1+X) of the best loss) and ``highlight``
    (one optimizer or all). Everything is computed in the factory; a frame only draws.
    """
    grid = _default_grid() if grid is None else grid
    curves = {n: final_losses(g["report"]) for n, g in grid.items()}
    names = list(curves)
    windows = {(n, t): good_window(*curves[n], t) for n in names for t in tolerances}

    def render(fig, tolerance, highlight):
        ax = fig.subplots()
        for n in names:
            lrs, L = curves[n]
            on = highlight in ("all", n)
            ax.plot(lrs, np.where(np.isfinite(L), L, np.nan), "o-", ms=3, color=_COLORS.get(n),
                    alpha=1.0 if on else 0.2, label=n)
            if on:
                lo, hi, _ = windows[(n, tolerance)]
                ax.axvspan(lo, hi, color=_COLORS.get(n), alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final training loss (mean of seeds)")
        ax.legend(fontsize=7, loc="upper right")
        shown = names if highlight == "all" else [highlight]
        return "good-lr window width: " + ", ".join(
            f"{n} {windows[(n, tolerance)][2]:.2f} decades" for n in shown)

    return Explorer(render, {"tolerance": list(tolerances), "highlight": ["all"] + names},
                    labels={"tolerance": "tolerance X", "highlight": "optimizer"},
                    initial={"tolerance": 0.5 if 0.5 in tolerances else tolerances[0]},
                    alt="Final loss against learning rate with the good-lr window shaded")


def bands_explorer(grid=None, lrs=None):
    """Loss curves (mean and min-max band over seeds) of one optimizer at one learning rate.

    Controls: ``optimizer`` and ``lr`` (every other point of the grid by default). A diverging
    setting shows "diverged at step k" for its first diverged seed.
    """
    from curvlib.plots import mean_band
    grid = _default_grid() if grid is None else grid
    sensitivity = {n: g["report"] for n, g in grid.items()}
    names = list(sensitivity)
    all_lrs = sorted(next(iter(sensitivity.values())))
    lrs = list(all_lrs[::2]) if lrs is None else list(lrs)

    def render(fig, optimizer, lr):
        stats = sensitivity[optimizer][lr]
        ax = fig.subplots()
        loss = stats.loss
        x = np.arange(loss.shape[1])
        ok = np.isfinite(loss).all(axis=1)
        if ok.any():
            mean_band(x, compare.smooth(loss[ok], 5), ax=ax, band="minmax", log_y=True,
                      color=_COLORS.get(optimizer), label=f"{optimizer}, lr={lr:g}")
            ax.legend(fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(5e-3, 1e2)
        ax.set_xlabel("step")
        ax.set_ylabel("mini-batch loss (smoothed)")
        bad = sorted(k for _, k in stats.diverged if k is not None)
        if not ok.all():
            first = np.argmax(~np.isfinite(loss[~ok][0]))
            return f"diverged at step {int(bad[0]) if bad else int(first)} " \
                   f"({int((~ok).sum())} of {len(ok)} seeds)"
        fin = np.asarray(stats.train_loss, float)
        return f"final training loss {np.mean(fin):.3g} (min {fin.min():.3g}, max {fin.max():.3g})"

    return Explorer(render, {"optimizer": names, "lr": lrs},
                    labels={"optimizer": "optimizer", "lr": "learning rate"},
                    initial={"optimizer": names[-1], "lr": min(lrs, key=lambda v: abs(v - 1e-3))},
                    alt="Training loss band over five seeds for a chosen optimizer and learning rate")

