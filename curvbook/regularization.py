r"""Chapter 5: weight decay as curvature control, and learning-rate strategies.

**Weight decay shifts the spectrum.** For :math:`L_c(\theta) = L(\theta) + c\,\|\theta\|_2^2`,

.. math:: \nabla^2 L_c = \nabla^2 L + 2c\,I, \qquad \lambda_i(\nabla^2 L_c) = \lambda_i + 2c,

so the lecture's :math:`L + 0.0005\|\theta\|^2` adds :math:`0.001\,I`, not :math:`0.0005\,I`.
``torch.optim``'s ``weight_decay=λ`` adds :math:`\lambda\theta` to the gradient, the gradient of
:math:`\tfrac{\lambda}{2}\|\theta\|^2`: it shifts the Hessian by :math:`\lambda` (Krogh & Hertz,
1992, "A Simple Weight Decay Can Improve Generalization", NeurIPS). :func:`hessian_shift`
checks the shift with autograd on a trained digits MLP, :func:`convex_shift` on logistic
regression, :func:`torch_weight_decay_gradient` the factor :math:`\tfrac12` of torch.

**L2 penalty vs decoupled decay under Adam.** Adam divides the penalty's gradient
:math:`\lambda\theta` by :math:`\sqrt{\hat v}+\epsilon` like any other gradient, so a weight
with small loss gradients is decayed hard and one with large gradients hardly at all; AdamW
shrinks every weight by the same factor :math:`1-\eta\lambda` (Loshchilov & Hutter, 2019,
"Decoupled Weight Decay Regularization", ICLR). :func:`decay_mechanism` shows this on the
digits pixels that are constant in the training set (their weights get no loss gradient);
:func:`l2_vs_decoupled` compares the two on a shared (lr, decay) grid over seeds.

**Learning-rate strategies.** :func:`lr_sensitivity` sweeps the learning rate of Adam and
SGD with momentum over one grid and five seeds (the lecture's recommended ranges);
:func:`warmup_large_batch` tests linear warmup at batch 1024 with linearly scaled rates
(Goyal et al., 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
arXiv:1706.02677); :func:`schedule_comparison` compares constant, step and cosine decay at
an equal budget with tuned rates (Loshchilov & Hutter, 2017, "SGDR: Stochastic Gradient
Descent with Warm Restarts", ICLR). :func:`schedule_designer` is the chapter's widget.
Every comparison goes through :mod:`curvlib.compare` (same grid for every contender, five
reporting seeds).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, curvature, data, models, optim, schedules
from curvlib._checks import check_choice, check_int, check_nonnegative, check_positive
from curvlib.train import minibatches, train

__all__ = ["hessian_shift", "convex_shift", "torch_weight_decay_gradient", "decay_mechanism",
           "l2_vs_decoupled", "lr_sensitivity", "good_window", "warmup_large_batch",
           "schedule_comparison", "make_schedule", "plot_spectrum_shift", "plot_decay_mechanism",
           "plot_lr_sensitivity", "plot_warmup", "schedule_designer"]

SEEDS = compare.DEFAULT_SEEDS


def _mlp(sizes, activation="tanh", dtype="float32"):
    return lambda seed: models.mlp(list(sizes), activation=activation, seed=seed, dtype=dtype)


def _kappa(eigenvalues):
    """:math:`\\lambda_{\\max}/\\lambda_{\\min}` when the spectrum is positive, else ``None``."""
    try:
        return curvature.condition_number(eigenvalues)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# Weight decay as a shift of the Hessian spectrum
# --------------------------------------------------------------------------------------
def _spectra(f, w, penalty):
    """Eigenvalues of the Hessians of ``f`` and of ``f + penalty * ||w||^2`` (each by autograd)."""
    f_reg = lambda v: f(v) + penalty * (v * v).sum()
    eig = torch.linalg.eigvalsh(curvature.hessian(f, w))
    eig_reg = torch.linalg.eigvalsh(curvature.hessian(f_reg, w))
    return eig.numpy(), eig_reg.numpy()


def _shift_summary(eig, eig_reg, penalty):
    diff = eig_reg - eig
    k, k_reg = _kappa(eig), _kappa(eig_reg)
    return {"penalty": penalty, "expected_shift": 2 * penalty, "lecture_shift": penalty,
            "measured_shift": float(np.median(diff)),
            "max_deviation": float(np.max(np.abs(diff - 2 * penalty))),
            "n_params": int(eig.size), "lambda_max": float(eig[-1]), "lambda_min": float(eig[0]),
            "n_negative": int((eig < 0).sum()), "n_negative_reg": int((eig_reg < 0).sum()),
            "n_below_shift": int((eig < -2 * penalty).sum()),
            "kappa": k, "kappa_reg": k_reg, "eig": eig, "eig_reg": eig_reg}


def hessian_shift(penalty=5e-4, *, sizes=(64, 8, 10), train_steps=150, lr=1e-2, n_examples=512,
                  seed=0):
    r"""Hessian spectra of a trained digits MLP without and with the penalty :math:`c\|\theta\|^2`.

    The MLP (tanh, float64) is trained with Adam for ``train_steps`` full-batch steps; at the
    point reached, the dense Hessians of :math:`L` and of :math:`L + c\|\theta\|^2` over the
    first ``n_examples`` training examples (``None``: all) are formed *separately* by autograd (:func:`curvlib.curvature.hessian`) and
    eigendecomposed. Returns a dict: the two spectra ``eig``/``eig_reg``, the
    ``measured_shift`` (median of the differences), its ``max_deviation`` from :math:`2c`,
    ``lambda_max``/``lambda_min``, the numbers of negative eigenvalues before and after,
    and :math:`\kappa` before and after (``None`` where the spectrum is not positive).
    """
    penalty = check_positive("penalty", penalty)
    train_steps = check_int("train_steps", train_steps, minimum=0)
    split = data.digits(dtype="float64")
    model = models.mlp(list(sizes), seed=seed, dtype="float64")
    if train_steps:
        train(model, torch.optim.Adam(model.parameters(), lr=lr), split.train, steps=train_steps)
    n = len(split.X_train) if n_examples is None else check_int("n_examples", n_examples, minimum=1)
    f, w = curvature.flat_loss(model, F.cross_entropy, split.X_train[:n], split.y_train[:n])
    return _shift_summary(*_spectra(f, w, penalty), penalty)


def convex_shift(penalty=5e-4, *, train_steps=200, lr=0.1):
    r"""The same check on logistic regression for the breast-cancer set, a convex problem.

    Trained by ``train_steps`` full-batch Adam steps from :math:`w=0` (no penalty). The
    Hessian :math:`X^\top D X/n` is positive semi-definite, so :math:`\kappa` is defined and the
    shift's effect on it is the textbook one:
    :math:`\kappa_c = (\lambda_{\max}+2c)/(\lambda_{\min}+2c)`.
    """
    penalty = check_positive("penalty", penalty)
    split = data.breast_cancer(dtype="float64")
    model = models.logistic_regression(split.n_features, dtype="float64")
    y = split.y_train.double()
    loss = lambda out, t: F.binary_cross_entropy_with_logits(out.reshape(-1), t)
    if train_steps:
        train(model, torch.optim.Adam(model.parameters(), lr=lr), (split.X_train, y),
              loss_fn=loss, steps=train_steps)
    f, w = curvature.flat_loss(model, loss, split.X_train, y)
    out = _shift_summary(*_spectra(f, w, penalty), penalty)
    out["kappa_formula"] = (out["lambda_max"] + 2 * penalty) / (out["lambda_min"] + 2 * penalty)
    return out


def torch_weight_decay_gradient(weight_decay=5e-4, *, seed=0):
    r"""Which penalty does ``torch.optim.SGD(weight_decay=λ)`` minimise?

    Takes one SGD step with ``lr=1`` from a digits MLP, so the step *is* the direction
    :math:`d = g + \lambda\theta`, and compares it with the autograd gradients of
    :math:`L + \tfrac{\lambda}{2}\|\theta\|^2` and of :math:`L + \lambda\|\theta\|^2`.
    Returns the largest absolute difference for each and the size of :math:`\lambda\theta`.
    """
    weight_decay = check_positive("weight_decay", weight_decay)
    split = data.digits(dtype="float64")
    model = models.mlp([64, 12, 10], seed=seed, dtype="float64")
    theta = [p.detach().clone() for p in model.parameters()]

    def penalised_grad(c):
        model.zero_grad()
        sq = sum((p * p).sum() for p in model.parameters())
        (F.cross_entropy(model(split.X_train), split.y_train) + c * sq).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    g_half, g_full = penalised_grad(weight_decay / 2), penalised_grad(weight_decay)
    opt = torch.optim.SGD(model.parameters(), lr=1.0, weight_decay=weight_decay)
    model.zero_grad()
    F.cross_entropy(model(split.X_train), split.y_train).backward()
    opt.step()
    d = torch.cat([(t - p.detach()).reshape(-1) for t, p in zip(theta, model.parameters())])
    flat = torch.cat([t.reshape(-1) for t in theta])
    return {"weight_decay": weight_decay,
            "diff_half": float((d - g_half).abs().max()),
            "diff_full": float((d - g_full).abs().max()),
            "decay_term": float((weight_decay * flat).abs().max())}


# --------------------------------------------------------------------------------------
# L2 penalty vs decoupled weight decay under Adam
# --------------------------------------------------------------------------------------
def _factory(method, weight_decay):
    check_choice("method", method, {"Adam+L2", "AdamW"})
    return optim.factory("adam" if method == "Adam+L2" else "adamw", weight_decay=weight_decay)


def decay_mechanism(weight_decay=1e-2, *, lr=1e-3, steps=300, batch_size=64, sizes=(64, 32, 10),
                    seed=0):
    r"""How far each kind of decay shrinks weights that get no loss gradient.

    A few digits pixels are 0 in every training image (the corners), so the first-layer
    weights attached to them receive no gradient from the loss: only the decay moves them.
    Under Adam with an L2 term their gradient is :math:`\lambda\theta`, which Adam rescales to
    a step of about :math:`\eta` per update whatever :math:`\lambda`; under AdamW they shrink
    by :math:`1-\eta\lambda` per update, like every other weight. Returns, for both methods,
    the norm of the "silent" weights and of the other first-layer weights, each relative to
    its initial value, at every step, and the number of silent inputs.
    """
    weight_decay = check_positive("weight_decay", weight_decay)
    steps = check_int("steps", steps, minimum=1)
    split = data.digits()
    silent = (split.X_train.std(0) == 0)
    out = {"n_silent": int(silent.sum()), "steps": np.arange(steps + 1),
           "weight_decay": weight_decay, "lr": lr}
    for method in ("Adam+L2", "AdamW"):
        model = models.mlp(list(sizes), seed=seed)
        W = model[0][0].weight  # first Linear layer: (hidden, 64)
        norms = lambda: (float(W.detach()[:, silent].norm()), float(W.detach()[:, ~silent].norm()))
        s0, a0 = norms()
        rec = [(1.0, 1.0)]
        opt = _factory(method, weight_decay)(model, lr)
        batches = minibatches(len(split.X_train), batch_size, seed)
        for _ in range(steps):
            idx = next(batches)
            opt.zero_grad()
            F.cross_entropy(model(split.X_train[idx]), split.y_train[idx]).backward()
            opt.step()
            s, a = norms()
            rec.append((s / s0, a / a0))
        out[method] = np.array(rec)
    return out


def l2_vs_decoupled(lrs=compare.lr_grid(1e-3, 1e-2), weight_decays=(1e-4, 1e-3, 1e-2, 1e-1),
                    *, steps=150, batch_size=64, sizes=(64, 32, 10), seeds=SEEDS,
                    tune_seeds=(100,)):
    r"""Adam with an L2 term vs AdamW, each tuned on the same (lr, weight-decay) grid.

    Each method trains every (decay, lr) pair of the grid from ``tune_seeds`` and is scored
    by the final validation loss (the protocol of :func:`curvlib.compare.tune_lr`, on a 2-D
    grid); its best pair is then trained from every seed in ``seeds``. Returns a dict with the
    ``scores`` grid (method -> array ``[decay, lr]``), the ``best`` ``(lr, decay)`` pair and
    the :class:`curvlib.compare.RunStats` of each method.
    """
    split = data.digits()
    make = _mlp(sizes)
    lrs = sorted(check_positive("lrs", v) for v in lrs)
    weight_decays = [check_nonnegative("weight_decays", v) for v in weight_decays]
    out = {"lrs": tuple(lrs), "weight_decays": tuple(weight_decays), "scores": {}, "best": {},
           "runs": {}}
    for method in ("Adam+L2", "AdamW"):
        factory = _factory(method, 0.0)
        pairs = [(wd, lr) for wd in weight_decays for lr in lrs]
        tuned = compare.run_settings(factory, [{"lr": lr, "weight_decay": wd} for wd, lr in pairs],
                                     make, split, steps=steps, seeds=tune_seeds,
                                     batch_size=batch_size)
        grid = np.array([r.val_loss.mean() for r in tuned]).reshape(len(weight_decays), len(lrs))
        wd, lr = pairs[int(np.argmin(grid))]
        out["scores"][method], out["best"][method] = grid, (lr, wd)
        out["runs"][method] = compare.run_seeds(_factory(method, wd), lr, make, split, steps=steps,
                                                seeds=seeds, batch_size=batch_size, name=method)
    return out


# --------------------------------------------------------------------------------------
# Learning-rate ranges
# --------------------------------------------------------------------------------------
OPTIMIZERS = {"Adam": optim.factory("adam"), "SGD+momentum": optim.factory("momentum")}
LR_GRID = compare.lr_grid(1e-5, 1.0)


def lr_sensitivity(lr_grid=LR_GRID, *, optimizers=None, steps=150, batch_size=64,
                   sizes=(64, 32, 10), seeds=SEEDS):
    r"""Final validation loss and accuracy over a learning-rate grid, for every seed.

    Every optimizer sees the same grid, model, data, budget and seeds. Returns
    ``{name: {"lr": array, "val_loss": array [lr, seed], "val_acc": array [lr, seed]}}``;
    diverged runs have loss ``inf`` and accuracy 0.
    """
    optimizers = OPTIMIZERS if optimizers is None else optimizers
    split = data.digits()
    make = _mlp(sizes)
    grid = sorted(check_positive("lr_grid", v) for v in lr_grid)
    out = {}
    for name, factory in optimizers.items():
        runs = compare.run_grid(factory, grid, make, split, steps=steps, seeds=seeds,
                                batch_size=batch_size, name=name)
        out[name] = {"lr": np.array(grid),
                     "val_loss": np.array([runs[lr].val_loss for lr in grid]),
                     "val_acc": np.array([runs[lr].val_acc for lr in grid])}
    return out


def good_window(sweep, tolerance=0.01):
    r"""The learning rates whose mean accuracy is within ``tolerance`` of the best mean.

    ``sweep`` is one entry of :func:`lr_sensitivity`. Returns ``(lowest, highest, best)``.
    """
    tolerance = check_nonnegative("tolerance", tolerance)
    acc = sweep["val_acc"].mean(axis=1)
    ok = acc >= acc.max() - tolerance
    lrs = sweep["lr"][ok]
    return float(lrs.min()), float(lrs.max()), float(sweep["lr"][np.argmax(acc)])


# --------------------------------------------------------------------------------------
# Warmup at large batch
# --------------------------------------------------------------------------------------
def warmup_large_batch(peak_lrs=(0.4, 0.8), warmup=(0, 75), *, batch_size=1024, steps=150,
                       sizes=(64, 32, 32, 32, 10), momentum=0.9, seeds=SEEDS, stuck_loss=1.0):
    r"""SGD with momentum at a large batch: linear warmup or not, at several peak rates.

    A ReLU MLP with three hidden layers trains on digits at ``batch_size`` for ``steps``
    updates; the rate ramps linearly from 0 to the peak over ``w`` steps
    (:func:`curvlib.schedules.linear_warmup`, ``w = 0``: no warmup). With the linear scaling
    rule of Goyal et al. (2017) a peak of ``0.8`` at batch 1024 is ``0.025`` at batch 32.
    A run *fails* if it diverges or ends with training loss above ``stuck_loss`` (a dead
    ReLU network sits at :math:`\ln 10 \approx 2.30`). Returns
    ``{w: {peak_lr: RunStats}}`` and, under ``"failures"``, ``{w: {peak_lr: count}}``.
    """
    split = data.digits()
    make = _mlp(sizes, activation="relu")
    factory = optim.factory("momentum", momentum=momentum)
    out = {"failures": {}, "peak_lrs": tuple(peak_lrs), "warmup": tuple(warmup),
           "batch_size": batch_size, "steps": steps}
    for w in warmup:
        w = check_int("warmup", w, minimum=0)
        sched = None if w == 0 else (lambda t, base, w=w: schedules.linear_warmup(
            t, base_lr=base, warmup_steps=w))
        out[w] = compare.run_grid(factory, list(peak_lrs), make, split, steps=steps, seeds=seeds,
                                  batch_size=batch_size, schedule=sched,
                                  name=f"warmup {w}" if w else "no warmup")
        out["failures"][w] = {lr: int(np.sum(~np.isfinite(r.train_loss) | (r.train_loss > stuck_loss)))
                              for lr, r in out[w].items()}
    return out


# --------------------------------------------------------------------------------------
# Schedules at an equal budget
# --------------------------------------------------------------------------------------
DECAYS = ("constant", "step", "cosine", "linear")


def make_schedule(decay, steps, warmup=0):
    r"""A ``(step, base_lr) -> lr`` function: optional linear warmup, then ``decay``.

    ``"constant"``; ``"step"`` (divide by 10 at 50 % and 75 % of the steps after warmup, the
    classic ResNet recipe); ``"cosine"`` to zero; ``"linear"`` to zero. Built from
    :mod:`curvlib.schedules`.
    """
    check_choice("decay", decay, set(DECAYS))
    steps = check_int("steps", steps, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    if warmup >= steps:
        raise ValueError(f"warmup must be < steps ({steps}), got {warmup}")
    rest = steps - warmup

    def after(t, base):
        if decay == "constant":
            return base
        if decay == "step":
            return schedules.multistep(t, base_lr=base, milestones=[rest // 2, (3 * rest) // 4])
        if decay == "cosine":
            return schedules.cosine(t, base_lr=base, total_steps=rest)
        return max(schedules.linear_decay(t, base_lr=base, total_steps=rest), 0.0)

    def schedule(t, base):
        if t < warmup:
            return schedules.linear_warmup(t, base_lr=base, warmup_steps=warmup)
        return after(t - warmup, base)

    return schedule


def schedule_comparison(lr_grid=compare.lr_grid(0.03, 0.3),
                        decays=("constant", "step", "cosine"), *, steps=200, batch_size=64,
                        sizes=(64, 32, 10), seeds=SEEDS, tune_seeds=(100,)):
    r"""Constant, step and cosine decay with SGD + momentum at the same budget.

    The protocol of :func:`curvlib.compare.tune_and_compare`, with every schedule in one
    vectorised batch: each schedule's base rate is tuned on ``lr_grid`` (final validation
    loss on ``tune_seeds``), then each winner is trained from every seed in ``seeds``.
    Returns ``(runs, best_lr, gap)``: ``{decay: RunStats}``, ``{decay: lr}`` and the paired
    accuracy gap cosine minus step in percentage points, one value per seed (the same seed
    gives both runs the same start and batches).
    """
    split = data.digits()
    make = _mlp(sizes)
    factory = optim.factory("momentum")
    grid = sorted(check_positive("lr_grid", v) for v in lr_grid)
    scheds = {d: make_schedule(d, steps) for d in decays}
    tuned = compare.run_settings(factory, [{"lr": lr, "schedule": scheds[d]} for d in decays
                                           for lr in grid], make, split, steps=steps,
                                 seeds=tune_seeds, batch_size=batch_size)
    best = {}
    for i, d in enumerate(decays):
        scores = [r.val_loss.mean() for r in tuned[i * len(grid):(i + 1) * len(grid)]]
        best[d] = grid[int(np.argmin(scores))]
    final = compare.run_settings(factory, [{"lr": best[d], "schedule": scheds[d], "name": d}
                                           for d in decays], make, split, steps=steps,
                                 seeds=seeds, batch_size=batch_size)
    runs = dict(zip(decays, final))
    gap = None
    if "cosine" in runs and "step" in runs:
        gap = 100 * (runs["cosine"].val_acc - runs["step"].val_acc)
    return runs, best, gap


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def plot_spectrum_shift(shift, ax=None, *, title=None):
    """Sorted eigenvalues before and after the penalty (symlog axis) and their difference."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    a, b = ax
    i = np.arange(shift["eig"].size)
    a.plot(i, shift["eig"], lw=1.5, label=r"$\nabla^2 L$")
    a.plot(i, shift["eig_reg"], lw=1.2, ls="--", label=r"$\nabla^2 (L + c\|\theta\|^2)$")
    a.set_yscale("symlog", linthresh=1e-4)
    a.axhline(0, color="0.5", lw=0.6)
    a.set_xlabel("eigenvalue index (sorted)")
    a.set_ylabel("eigenvalue")
    a.legend(fontsize=8)
    b.plot(i, shift["eig_reg"] - shift["eig"], ".", ms=2, label="measured")
    b.axhline(shift["expected_shift"], color="C2", lw=1.2, label=r"$2c$")
    b.axhline(shift["lecture_shift"], color="C3", lw=1.2, ls=":", label=r"$c$ (lecture)")
    b.set_xlabel("eigenvalue index (sorted)")
    b.set_ylabel(r"$\lambda_i^{reg} - \lambda_i$")
    b.set_ylim(0, 1.5 * shift["expected_shift"])
    b.legend(fontsize=8)
    if title:
        a.set_title(title)
    return ax


def plot_decay_mechanism(mech, ax=None):
    """Relative norm of the silent and the active first-layer weights under each method."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    for k, method in enumerate(("Adam+L2", "AdamW")):
        r = mech[method]
        ax.plot(mech["steps"], r[:, 0], color=f"C{k}", lw=1.8, label=f"{method}: silent inputs")
        ax.plot(mech["steps"], r[:, 1], color=f"C{k}", lw=1.2, ls="--",
                label=f"{method}: other inputs")
    ax.set_xlabel("step")
    ax.set_ylabel("weight norm / initial")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)
    return ax


def plot_lr_sensitivity(sweep, ax=None, *, ranges=None, metric="val_acc"):
    """Mean and min-max over seeds of the final metric against the learning rate;
    ``ranges`` (name -> (low, high)) shades a recommended range per optimizer."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for k, (name, s) in enumerate(sweep.items()):
        v = s[metric]
        ax.plot(s["lr"], v.mean(axis=1), "o-", color=f"C{k}", ms=3, label=f"{name} (mean of {v.shape[1]})")
        ax.fill_between(s["lr"], v.min(axis=1), v.max(axis=1), color=f"C{k}", alpha=0.2, lw=0)
        if ranges and name in ranges:
            lo, hi = ranges[name]
            ax.axvspan(lo, hi, color=f"C{k}", alpha=0.08)
            ax.annotate(f"lecture: {name}", xy=(math.sqrt(lo * hi), 0.02 + 0.07 * k),
                        xycoords=("data", "axes fraction"), ha="center", fontsize=7, color=f"C{k}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy" if metric == "val_acc" else "validation loss")
    ax.legend(fontsize=8, loc="center left")
    return ax


def plot_warmup(warm, peak_lr, ax=None):
    """Training-loss bands (min-max over seeds) at one peak rate, with and without warmup."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    runs = [warm[w][peak_lr] for w in warm["warmup"]]
    compare.plot_bands(runs, ax=ax, band="minmax",
                       labels=[f"{r.name}: {warm['failures'][w][peak_lr]}/{len(r.seeds)} failed"
                               for r, w in zip(runs, warm["warmup"])],
                       title=f"batch {warm['batch_size']}, peak lr {peak_lr:g}")
    return ax


# --------------------------------------------------------------------------------------
# Widget: the schedule designer
# --------------------------------------------------------------------------------------
def schedule_designer(base_lrs=(0.03, 0.3, 1.0), decays=("constant", "step", "cosine"),
                      warmups=(0, 60), *, steps=150, batch_size=64, sizes=(64, 16, 10),
                      seeds=(0, 1, 2)):
    r"""Explorer: warmup length, decay type and base rate in; the lr curve and the training
    loss it produces (SGD + momentum 0.9 on digits, mean and range of ``seeds``) out.

    Every combination is trained when the factory runs (one vectorised batch per schedule),
    so moving a control only draws.
    """
    from curvlib.widgets import Explorer

    split = data.digits()
    factory = optim.factory("momentum")
    S = len(seeds)
    keys = [(d, w, lr) for d in decays for w in warmups for lr in base_lrs]
    scheds = {(d, w): make_schedule(d, steps, w) for d in decays for w in warmups}
    runs = compare.run_settings(factory, [{"lr": lr, "schedule": scheds[d, w]} for d, w, lr in keys],
                                _mlp(sizes), split, steps=steps, seeds=seeds,
                                batch_size=batch_size)
    curves = {(d, w, lr): (np.array([scheds[d, w](t, lr) for t in range(steps)]), r)
              for (d, w, lr), r in zip(keys, runs)}

    from matplotlib.ticker import FixedLocator, NullLocator

    def render(fig, base_lr, decay, warmup):
        # fixed ticks and no axes titles: matplotlib's tick and title layout is most of a
        # frame's cost, and the widget must redraw in well under 100 ms
        lr_curve, r = curves[decay, warmup, base_lr]
        a, b = fig.subplots(1, 2)
        a.plot(lr_curve, color="C1")
        a.set_xlabel("step")
        a.set_ylabel("learning rate")
        a.set_ylim(0, 1.05 * max(base_lrs))
        ok = np.isfinite(r.loss).all(axis=0)
        if ok.any():
            b.plot(r.steps[ok], r.mean[ok], color="C0")
            b.fill_between(r.steps[ok], r.low[ok], r.high[ok], color="C0", alpha=0.25, lw=0)
        b.set_yscale("log")
        b.yaxis.set_major_locator(FixedLocator([1e-2, 1e-1, 1, 10]))
        b.yaxis.set_minor_locator(NullLocator())
        b.set_ylim(3e-3, 20)
        b.set_xlim(0, steps)
        b.set_xlabel("step")
        b.set_ylabel(f"training loss ({S} seeds)")
        if r.diverged:
            first = min(k for _, k in r.diverged)
            return f"diverged at step {first} ({len(r.diverged)} of {S} seeds)"
        m = r.final("val_acc")
        return (f"{decay}, warmup {warmup}: final training loss {np.mean(r.train_loss):.3g}, "
                f"validation accuracy {m[0]:.3f} (mean of {S} seeds; band: their range)")

    return Explorer(render, {"base_lr": list(base_lrs), "decay": list(decays),
                             "warmup": list(warmups)},
                    labels={"base_lr": "base lr", "warmup": "warmup steps"},
                    initial={"base_lr": base_lrs[len(base_lrs) // 2], "decay": decays[-1],
                             "warmup": warmups[len(warmups) // 2]},
                    figsize=(7.6, 3.0),
                    alt="Learning-rate schedule and the training loss it produces")

