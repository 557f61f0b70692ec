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
:func:`l2_vs_decoupled` tunes each over (lr, decay) by one rule (:func:`tune_on_grid`, which grows
a grid until its best point is inside it) and compares them paired over seeds.

**Learning-rate strategies.** :func:`lr_sensitivity` sweeps the learning rate of Adam and
SGD with momentum over one grid and five seeds (the lecture's recommended ranges);
:func:`warmup_batches` tests linear warmup at several batch sizes and peak rates
(Goyal et al., 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
arXiv:1706.02677); :func:`schedule_comparison` compares constant, step and cosine decay at
an equal budget, each base rate tuned by :func:`tune_on_grid` (Loshchilov & Hutter, 2017,
"SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR). :func:`schedule_designer` is
the chapter's widget. Runs go through :mod:`curvlib.compare`; two contenders are compared by
:func:`paired_difference` (a Student-t interval of the per-seed differences).
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, curvature, data, models, optim, schedules
from curvlib._checks import check_choice, check_int, check_nonnegative, check_positive
from curvlib.train import minibatches, train

from .hessian_cost import spectrum_summary

#: chapter 2's threshold (:func:`curvbook.hessian_cost.spectrum_summary`): an eigenvalue is
#: negative when it lies below ``-NEG_TOL * lambda_max``
NEG_TOL = inspect.signature(spectrum_summary).parameters["neg_tol"].default

__all__ = ["hessian_shift", "convex_shift", "torch_weight_decay_gradient", "decay_mechanism",
           "grid_neighbour", "tune_on_grid", "grid_array", "paired_difference",
           "l2_vs_decoupled", "lr_sensitivity", "good_window", "warmup_batches",
           "schedule_comparison", "make_schedule", "plot_spectrum_shift", "plot_decay_mechanism",
           "plot_lr_sensitivity", "plot_decay_grids", "plot_warmup_outcomes", "schedule_designer"]

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
            # chapter 2's rule: negative means below -NEG_TOL * lambda_max, not rounding noise
            "neg_tol": NEG_TOL, "n_negative": spectrum_summary(eig)["negative"],
            "n_negative_reg": spectrum_summary(eig_reg)["negative"],
            "n_negative_raw": int((eig < 0).sum()), "n_below_shift": int((eig < -2 * penalty).sum()),
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
# Tuning on a grid that grows until its best point is inside it
# --------------------------------------------------------------------------------------
def grid_neighbour(value, up):
    """The next point of the book's half-decade grid (:func:`curvlib.compare.lr_grid`) above
    (``up=True``) or below ``value``."""
    value = check_positive("value", value)
    g = compare.lr_grid(value / 5, value * 5)
    i = min(range(len(g)), key=lambda k: abs(math.log(g[k] / value)))
    return g[i + 1] if up else g[i - 1]


def tune_on_grid(score, axes, *, max_rounds=4, tie=0.0, prefer=None):
    r"""Minimise ``score`` over a product grid, extending an axis while the best point is on
    its edge.

    ``axes`` is ``{name: values}``; ``score(points)`` gets a list of points (dicts name ->
    value) and returns one score each (lower is better; ``inf`` for a diverged run). After
    each round, an axis whose best value is its largest grows by one half-decade point
    (:func:`grid_neighbour`), and one whose best value is its smallest *positive* value grows
    downwards (between 0 and that value); a best value of 0 (no decay) is a natural end, never
    an edge. At most ``max_rounds`` extensions.
    Scores within a relative ``tie`` of the lowest count as equal; among them the point that
    ``prefer`` (a function point dict -> sort key) ranks first wins (default: the lowest score),
    so that a near-tie between settings the data cannot tell apart is broken by a stated rule.
    Returns ``{"axes", "scores" (point tuple -> score), "best" (dict), "edge" (the axes whose
    best value is still at an edge), "rounds"}``.
    """
    if not isinstance(axes, dict) or not axes:
        raise TypeError(f"axes must be a non-empty dict name -> values, got {axes!r}")
    max_rounds = check_int("max_rounds", max_rounds, minimum=0)
    axes = {k: sorted(float(v) for v in vals) for k, vals in axes.items()}
    names = list(axes)
    scores = {}
    for rounds in range(max_rounds + 1):
        grid = [tuple(float(x) for x in p) for p in np.array(np.meshgrid(*axes.values(), indexing="ij")).reshape(len(names), -1).T]
        new = [p for p in grid if p not in scores]
        if new:
            for p, s in zip(new, score([dict(zip(names, p)) for p in new])):
                scores[p] = float(s)
        low = min(scores[p] for p in grid)
        tied = [p for p in grid if scores[p] <= low + tie * abs(low)]
        rank = (lambda p: (prefer(dict(zip(names, p))), scores[p])) if prefer else \
            (lambda p: (scores[p], p))
        best = min(tied, key=rank)
        edge = {}
        for k, v in zip(names, best):
            if v == axes[k][-1]:
                edge[k] = True
            elif v > 0 and v == min(x for x in axes[k] if x > 0):
                edge[k] = False
        if not edge or rounds == max_rounds:
            break
        for k, up in edge.items():
            v = axes[k][-1] if up else min(x for x in axes[k] if x > 0)
            axes[k].insert(len(axes[k]) if up else axes[k].index(v), grid_neighbour(v, up))
    return {"axes": axes, "scores": scores, "best": dict(zip(names, best)), "edge": sorted(edge),
            "rounds": rounds, "tie": tie}


def grid_array(tuned, rows, cols):
    """The scores of :func:`tune_on_grid` over two of its axes as an array ``[row, col]``."""
    a = tuned["axes"]
    key = lambda r, c: tuple({rows: r, cols: c}[k] for k in a)  # noqa: E731
    return np.array([[tuned["scores"][key(r, c)] for c in a[cols]] for r in a[rows]])


def paired_difference(a, b, confidence=0.95):
    r"""Mean of the paired differences ``a - b`` (one pair per seed) and its Student-t interval:
    ``[mean, low, high]``."""
    from scipy import stats
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"a and b must be paired finite values, at least 2, got shape {d.shape}")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * d.std(ddof=1) / math.sqrt(len(d))
    return [float(d.mean()), float(d.mean() - half), float(d.mean() + half)]


def _mean_score(runs, metric="val_loss"):
    return [float(np.mean(getattr(r, metric))) if np.all(np.isfinite(getattr(r, metric)))
            else math.inf for r in runs]


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


REPORT_SEEDS = tuple(range(10))
TUNE_SEEDS = (100, 101)
#: tuning scores closer than this (relative) are a tie: far below the seeds' spread
TIE = 0.01


def l2_vs_decoupled(lrs=compare.lr_grid(1e-3, 1e-1), weight_decays=(0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                    *, steps=400, batch_size=64, sizes=(64, 32, 10), seeds=REPORT_SEEDS,
                    tune_seeds=TUNE_SEEDS, max_rounds=3, tie=TIE):
    r"""Adam with an L2 term vs AdamW, each tuned over (learning rate, decay) by one rule.

    Each method starts from the same grid and is tuned by :func:`tune_on_grid`: score = mean
    final validation loss over ``tune_seeds`` (not reported), the grid extended while the
    best pair sits on an edge; scores within ``tie`` (relative) of the best are a tie, broken
    towards the stronger decay. Its best pair is then trained from every seed in ``seeds``
    (the same seeds for both, so the runs pair up: same start, same batches). Returns a dict
    with each method's ``tuned`` grid, ``best`` ``(lr, decay)``, ``runs``
    (:class:`curvlib.compare.RunStats`), and the paired differences L2 minus AdamW of the
    validation loss and accuracy (``diff_loss``, ``diff_acc``: ``[mean, low, high]``).
    """
    split = data.digits()
    make = _mlp(sizes)
    steps = check_int("steps", steps, minimum=1)
    axes = {"lr": [check_positive("lrs", v) for v in lrs],
            "weight_decay": [check_nonnegative("weight_decays", v) for v in weight_decays]}
    out = {"steps": steps, "batch_size": batch_size, "tuned": {}, "best": {}, "runs": {},
           "tune_seeds": tuple(tune_seeds), "seeds": tuple(seeds)}
    for method in ("Adam+L2", "AdamW"):
        factory = _factory(method, 0.0)

        def score(points):
            return _mean_score(compare.run_settings(factory, points, make, split, steps=steps,
                                                    seeds=tune_seeds, batch_size=batch_size))

        tuned = tune_on_grid(score, axes, max_rounds=max_rounds, tie=tie,
                             prefer=lambda p: -p["weight_decay"])
        lr, wd = tuned["best"]["lr"], tuned["best"]["weight_decay"]
        out["tuned"][method], out["best"][method] = tuned, (lr, wd)
        out["runs"][method] = compare.run_settings(
            factory, [{"lr": lr, "weight_decay": wd, "name": method}], make, split, steps=steps,
            seeds=seeds, batch_size=batch_size)[0]
    a, b = out["runs"]["Adam+L2"], out["runs"]["AdamW"]
    out["diff_loss"] = paired_difference(a.val_loss, b.val_loss)
    out["diff_acc"] = paired_difference(100 * a.val_acc, 100 * b.val_acc)
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
# Warmup at several batch sizes
# --------------------------------------------------------------------------------------
def warmup_batches(batch_sizes=(64, 256, 1024), peak_lrs=(0.2, 0.4, 0.8), warmup=75, *,
                   steps=150, sizes=(64, 32, 32, 32, 10), momentum=0.9, seeds=REPORT_SEEDS,
                   stuck_loss=1.0):
    r"""SGD with momentum with and without linear warmup, at several batch sizes and peak rates.

    A ReLU MLP with three hidden layers trains on digits for ``steps`` updates; the rate ramps
    linearly from 0 to the peak over ``warmup`` steps (:func:`curvlib.schedules.linear_warmup`)
    or starts at the peak. The same peaks are tried at every batch size, so the experiment
    separates the rate from the batch. A run *fails* if it diverges or ends with training loss
    above ``stuck_loss`` (a dead ReLU network sits at :math:`\ln 10 \approx 2.30`). Returns
    ``final`` (``{(batch, w, peak): final training loss per seed}``, ``inf`` where a run
    diverged) and ``failures`` (``{batch: {w: {peak: count}}}``).
    """
    split = data.digits()
    make = _mlp(sizes, activation="relu")
    factory = optim.factory("momentum", momentum=momentum)
    warmup = check_int("warmup", warmup, minimum=1)
    if warmup >= steps:
        raise ValueError(f"warmup must be < steps ({steps}), got {warmup}")
    sched = {0: None, warmup: lambda t, base: schedules.linear_warmup(t, base_lr=base,
                                                                         warmup_steps=warmup)}
    peaks = [check_positive("peak_lrs", v) for v in peak_lrs]
    out = {"batch_sizes": tuple(batch_sizes), "peak_lrs": tuple(peaks), "warmup": (0, warmup),
           "steps": steps, "seeds": tuple(seeds), "stuck_loss": stuck_loss, "final": {},
           "failures": {}}
    for B in batch_sizes:
        B = check_int("batch_sizes", B, minimum=1)
        keys = [(w, lr) for w in (0, warmup) for lr in peaks]
        runs = compare.run_settings(factory, [{"lr": lr, "schedule": sched[w]} for w, lr in keys],
                                    make, split, steps=steps, seeds=seeds, batch_size=B)
        out["failures"][B] = {w: {} for w in (0, warmup)}
        for (w, lr), r in zip(keys, runs):
            final = np.where(np.isfinite(r.train_loss), r.train_loss, np.inf)
            out["final"][B, w, lr] = final
            out["failures"][B][w][lr] = int(np.sum(final > stuck_loss))
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


def schedule_comparison(lr_grid=compare.lr_grid(0.01, 0.3), decays=("constant", "step", "cosine"),
                        *, steps=600, batch_size=16, sizes=(64, 32, 10), weight_decay=5e-4,
                        seeds=REPORT_SEEDS, tune_seeds=TUNE_SEEDS, max_rounds=3):
    r"""Constant, step and cosine decay with SGD + momentum 0.9 at the same budget.

    Small batches and a weight-decay term (``weight_decay``, torch's form) give the gradient
    noise that a constant rate cannot average out, so it stalls at a level set by the rate.
    Each schedule's base rate is tuned by :func:`tune_on_grid` (mean final validation loss
    over ``tune_seeds``, the grid extended while the best rate is on an edge), then trained
    from every seed in ``seeds`` (same starts and batches for every schedule). Returns a dict:
    ``runs`` (decay -> RunStats), ``best_lr``, ``tuned``, ``gap`` (cosine minus step,
    validation accuracy in points, paired: ``[mean, low, high]``) and ``window_loss``
    (decay -> mean mini-batch loss over steps 40-50 % and 90-100 % of the budget, averaged
    over the seeds: how much each schedule still gained in the second half).
    """
    split = data.digits()
    make = _mlp(sizes)
    factory = optim.factory("momentum")
    steps = check_int("steps", steps, minimum=10)
    grid = sorted(check_positive("lr_grid", v) for v in lr_grid)
    scheds = {d: make_schedule(d, steps) for d in decays}
    out = {"steps": steps, "batch_size": batch_size, "weight_decay": weight_decay, "tuned": {},
           "best_lr": {}, "runs": {}, "seeds": tuple(seeds), "tune_seeds": tuple(tune_seeds)}
    for d in decays:
        def score(points, d=d):
            return _mean_score(compare.run_settings(
                factory, [{**p, "schedule": scheds[d], "weight_decay": weight_decay} for p in points],
                make, split, steps=steps, seeds=tune_seeds, batch_size=batch_size))

        out["tuned"][d] = tune_on_grid(score, {"lr": grid}, max_rounds=max_rounds)
        out["best_lr"][d] = out["tuned"][d]["best"]["lr"]
    final = compare.run_settings(factory, [{"lr": out["best_lr"][d], "schedule": scheds[d],
                                            "weight_decay": weight_decay, "name": d}
                                           for d in decays], make, split, steps=steps,
                                 seeds=seeds, batch_size=batch_size)
    out["runs"] = dict(zip(decays, final))
    w = lambda r, a, b: float(np.nanmean(r.loss[:, int(a * steps):int(b * steps)]))  # noqa: E731
    out["window_loss"] = {d: (w(r, 0.4, 0.5), w(r, 0.9, 1.0)) for d, r in out["runs"].items()}
    if "cosine" in out["runs"] and "step" in out["runs"]:
        out["gap"] = paired_difference(100 * out["runs"]["cosine"].val_acc,
                                       100 * out["runs"]["step"].val_acc)
    return out


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def plot_spectrum_shift(shift, ax=None, *, title=None):
    """The spectrum of the unpenalised Hessian (symlog axis; the penalised one differs by
    ``2c``, invisible at this scale) and, on the right, the measured shift of every eigenvalue."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    a, b = ax
    i = np.arange(shift["eig"].size)
    neg = shift["eig"] < -shift["neg_tol"] * shift["lambda_max"]
    a.plot(i, shift["eig"], lw=1.5, color="C0", label=r"$\lambda_i(\nabla^2 L)$")
    a.plot(i[neg], shift["eig"][neg], ".", ms=4, color="tab:red",
           label=f"clearly negative ({int(neg.sum())})")
    a.set_yscale("symlog", linthresh=1e-4)
    a.axhline(0, color="0.5", lw=0.6)
    a.set_xlabel("eigenvalue index (sorted)")
    a.set_ylabel("eigenvalue")
    a.legend(fontsize=9)
    b.plot(i, shift["eig_reg"] - shift["eig"], ".", ms=2, label="measured")
    b.axhline(shift["expected_shift"], color="C2", lw=1.2, label=r"$2c$")
    b.axhline(shift["lecture_shift"], color="C3", lw=1.2, ls=":", label=r"$c$ (lecture)")
    b.set_xlabel("eigenvalue index (sorted)")
    b.set_ylabel(r"$\lambda_i^{reg} - \lambda_i$")
    b.set_ylim(0, 1.5 * shift["expected_shift"])
    b.legend(fontsize=9)
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


def plot_decay_grids(l2w, axes=None):
    """Heat maps of the tuning score of each method over its (grown) (lr, decay) grid, on one
    colour scale, the chosen pair marked; one labelled colorbar beside both."""
    import matplotlib.pyplot as plt
    methods = list(l2w["tuned"])
    if axes is None:
        _, axes = plt.subplots(1, len(methods), figsize=(10, 3.8), layout="constrained")
    grids = {m: grid_array(l2w["tuned"][m], "weight_decay", "lr") for m in methods}
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    vmin, vmax = float(finite.min()), float(np.quantile(finite, 0.9))
    for ax, m in zip(axes, methods):
        t = l2w["tuned"][m]
        im = ax.imshow(np.clip(grids[m], None, vmax), origin="lower", cmap="viridis_r",
                       vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(t["axes"]["lr"])), [f"{v:g}" for v in t["axes"]["lr"]])
        ax.set_yticks(range(len(t["axes"]["weight_decay"])),
                      [f"{v:g}" for v in t["axes"]["weight_decay"]])
        j = t["axes"]["lr"].index(t["best"]["lr"])
        k = t["axes"]["weight_decay"].index(t["best"]["weight_decay"])
        ax.plot(j, k, marker="*", ms=14, color="white", mec="black")
        ax.set(xlabel="learning rate", ylabel="weight decay λ", title=m)
    cb = plt.gcf().colorbar(im, ax=axes, shrink=0.9, pad=0.02)
    cb.set_label(f"validation loss\n(mean of {len(l2w['tune_seeds'])} tuning seeds)")
    return axes


def plot_warmup_outcomes(warm, ax=None):
    """Every run's final training loss (one dot per seed), without and with warmup, per batch
    size and peak rate; diverged runs drawn at the top. The failure threshold is dashed."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.8))
    rng = np.random.default_rng(0)
    top = 30.0
    ticks, labels = [], []
    x = 0
    for B in warm["batch_sizes"]:
        for lr in warm["peak_lrs"]:
            for k, w in enumerate(warm["warmup"]):
                v = warm["final"][B, w, lr]
                jit = x + (k - 0.5) * 0.36 + rng.uniform(-0.1, 0.1, len(v))
                ax.plot(jit, np.where(np.isfinite(v), v, top), "o" if w == 0 else "s", ms=4,
                        color=f"C{3 if w == 0 else 0}", alpha=0.75, mec="none",
                        label=(f"warmup {w} steps" if w else "no warmup") if x == 0 else None)
            ticks.append(x)
            labels.append(f"{lr:g}")
            x += 1
        ax.text(x - len(warm["peak_lrs"]) / 2 - 0.5, 1.02, f"batch {B}", ha="center",
                transform=ax.get_xaxis_transform(), fontsize=10)
        ax.axvline(x - 0.5, color="0.8", lw=0.8)
        x += 0.0
    ax.axhline(warm["stuck_loss"], color="0.3", ls="--", lw=1, label="failure threshold")
    ax.set_yscale("log")
    ax.set_ylim(None, top * 2)
    ax.set_xticks(ticks, labels)
    ax.set_xlim(-0.5, x - 0.5)
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final training loss\n(top row: diverged)")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


# --------------------------------------------------------------------------------------
# Widget: the schedule designer
# --------------------------------------------------------------------------------------
def schedule_designer(base_lrs=(0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                      decays=("constant", "step", "cosine"), warmups=(0, 15, 30, 45, 60, 75), *,
                      steps=150, batch_size=64, sizes=(64, 16, 10), seeds=(0, 1, 2)):
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

    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    def render(fig, base_lr, decay, warmup):
        with plt.rc_context({"font.size": 13}):
            return _draw(fig, base_lr, decay, warmup)

    def _draw(fig, base_lr, decay, warmup):
        # fixed ticks and no axes titles: matplotlib's tick and title layout is most of a
        # frame's cost, and the widget must redraw in well under 100 ms
        lr_curve, r = curves[decay, warmup, base_lr]
        a, b = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.96, wspace=0.38)
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

    n_frames = len(base_lrs) * len(decays) * len(warmups)

    return Explorer(render, {"base_lr": list(base_lrs), "decay": list(decays),
                             "warmup": list(warmups)},
                    labels={"base_lr": "base lr", "warmup": "warmup steps"},
                    initial={"base_lr": base_lrs[len(base_lrs) // 2], "decay": decays[-1],
                             "warmup": warmups[len(warmups) // 2]},
                    figsize=(7.6, 3.2), dpi=90, max_frames=n_frames,
                    alt="Learning-rate schedule and the training loss it produces")

