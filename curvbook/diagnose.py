r"""Chapter 9: the lecture's practical recommendations as a working recipe, and run diagnosis.

The lecture closes with five recommendations: Adam with learning rate 0.001 as the default;
SGD with lr 0.1 and momentum 0.9 for vision; warmup for large batches; gradient-norm
monitoring to detect ill-conditioning; weight decay between 1e-4 and 1e-3.

* :func:`recommend` turns them, corrected by what chapters 5 and 8 measured, into a
  :class:`Recipe`: optimizer, learning rate, momentum, weight decay, warmup and schedule,
  with the reason for each choice. ``recipe.factory()`` (a ``(model, lr) -> optimizer``
  factory) and ``recipe.lr_at`` train a model directly.
* :func:`diagnose` reads a run's loss and gradient-norm curves and names what went wrong:
  divergence, a gradient-norm spike (the usual first sign of a step too large for the
  curvature, :math:`\eta\lambda_{\max} > 2`), oscillation, a dead network, a plateau.
  :func:`monitored_run` shows the gradient norm flagging a run before its loss blows up,
  and :func:`conditioning_demo` an ill-conditioned problem (unscaled inputs) seen through
  the gradient norm and the top Hessian eigenvalue.
* :func:`default_check` and :func:`weight_decay_sweep` test the defaults over seeds;
  :func:`run_doctor` is the chapter's widget.

Sources: Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", ICLR (lr 0.001);
Goyal et al. (2017), "Accurate, Large Minibatch SGD", arXiv:1706.02677 (linear scaling,
warmup); Loshchilov & Hutter (2019), "Decoupled Weight Decay Regularization", ICLR (AdamW);
Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent neural networks",
ICML (gradient-norm monitoring and clipping); Cohen et al. (2021), "Gradient Descent on Neural
Networks Typically Occurs at the Edge of Stability", ICLR.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, curvature, data, models, optim, schedules
from curvlib._checks import check_choice, check_int, check_positive
from curvlib.runs import divergence_step, first_spike
from curvlib.train import train

__all__ = ["Recipe", "recommend", "Diagnosis", "diagnose", "first_spike", "first_loss_rise",
           "lead_study", "monitored_run",
           "conditioning_demo", "plot_monitored", "plot_weight_decay",
           "default_check", "weight_decay_sweep", "run_doctor", "TASKS", "PRIORITIES"]

TASKS = ("general", "vision", "language", "tabular", "small-deterministic")
PRIORITIES = ("speed", "generalization")
SEEDS = compare.DEFAULT_SEEDS


# --------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------
@dataclass
class Recipe:
    """A training recipe: what to use, with a reason for every choice.

    ``optimizer`` is ``"AdamW"``, ``"SGD"`` (with momentum) or ``"LBFGS"``; ``lr`` the peak
    learning rate; ``warmup_steps`` the length of the linear warmup; ``schedule`` the decay
    after it (``"cosine"`` or ``"constant"``); ``grad_norm_factor`` the spike factor of
    :func:`curvlib.runs.is_spike` (:class:`curvlib.curvature.GradNormMonitor`).
    """
    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    total_steps: int = 1000
    grad_norm_factor: float = 10.0
    reasons: list = field(default_factory=list)

    def factory(self):
        """The recipe's optimizer as a ``(model, lr) -> optimizer`` factory
        (:func:`curvlib.optim.factory`); its default lr is the recipe's."""
        if self.optimizer == "AdamW":
            return optim.factory("adamw", lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "SGD":
            return optim.factory("nesterov" if self.momentum > 0 else "sgd", lr=self.lr,
                                 momentum=self.momentum, weight_decay=self.weight_decay)
        return optim.factory("lbfgs", lr=self.lr, history_size=10, line_search_fn="strong_wolfe")

    def lr_at(self, step, base_lr=None):
        """The learning rate of update ``step``: linear warmup, then the decay."""
        base = self.lr if base_lr is None else base_lr
        step = check_int("step", step, minimum=0)
        if step < self.warmup_steps:
            return schedules.linear_warmup(step, base_lr=base, warmup_steps=self.warmup_steps)
        if self.schedule == "cosine":
            rest = max(self.total_steps - self.warmup_steps, 1)
            return schedules.cosine(step - self.warmup_steps, base_lr=base, total_steps=rest)
        return base

    def as_settings(self):
        """The recipe as a :func:`curvlib.compare.run_settings` entry."""
        out = {"lr": self.lr, "schedule": lambda t, base: self.lr_at(t, base),
               "name": self.optimizer}
        if self.optimizer != "LBFGS":
            out["weight_decay"] = self.weight_decay
        return out

    def describe(self):
        """One line per choice, with its reason."""
        head = f"{self.optimizer}, lr {self.lr:g}"
        if self.optimizer == "SGD":
            head += f", momentum {self.momentum:g} (Nesterov)"
        if self.optimizer != "LBFGS":
            head += f", weight decay {self.weight_decay:g}, warmup {self.warmup_steps} steps, " \
                    f"{self.schedule} decay over {self.total_steps} steps"
        return "\n".join([head] + [f"- {r}" for r in self.reasons])


def recommend(task="general", *, batch_size=128, dataset_size=None, total_steps=1000,
              priority="speed", n_params=None, full_batch=False, deterministic=False):
    r"""Pick optimizer, learning rate, weight decay, warmup and schedule for a problem.

    The rules (each reason is stored in ``Recipe.reasons``):

    1. A small (``n_params <= 10_000``), deterministic, full-batch problem gets L-BFGS with a
       strong-Wolfe line search (chapter 3; lecture: "consider L-BFGS for small, deterministic
       problems").
    2. ``task="vision"`` with ``priority="generalization"`` gets SGD with Nesterov momentum 0.9
       and lr :math:`0.1 \cdot B/256` (the linear scaling rule of Goyal et al. from the
       ResNet recipe's 0.1 at batch 256), weight decay :math:`5\cdot10^{-4}`.
    3. Everything else gets AdamW with lr :math:`10^{-3}` (Kingma & Ba's default) and
       decoupled weight decay 0.01 -- not the lecture's :math:`10^{-4}`, which is an L2
       coefficient for SGD: AdamW's decay per step is :math:`\eta\lambda`, so comparable
       strength needs a larger :math:`\lambda` (chapters 5 and 9).
    4. Warmup: always for AdamW and for a linearly scaled SGD rate (:math:`B > 256`); its
       length is 5% of the steps (at least one epoch when ``dataset_size`` is given, at most
       10% of the steps). For :math:`B \ge 1024` the lecture calls it critical; chapter 5
       found that the rate, not the batch, is what matters.
    5. Cosine decay to zero after the warmup (chapters 5: no worse than step decay, one
       hyperparameter fewer).
    """
    check_choice("task", task, set(TASKS))
    check_choice("priority", priority, set(PRIORITIES))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    if dataset_size is not None:
        dataset_size = check_int("dataset_size", dataset_size, minimum=1)
        if batch_size > dataset_size:
            raise ValueError(f"batch_size must be <= dataset_size ({dataset_size}), got {batch_size}")
    if n_params is not None:
        n_params = check_int("n_params", n_params, minimum=1)
    for name, flag in (("full_batch", full_batch), ("deterministic", deterministic)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")

    small = n_params is not None and n_params <= 10_000
    if task == "small-deterministic" or (small and full_batch and deterministic):
        return Recipe("LBFGS", lr=1.0, schedule="constant", total_steps=total_steps, reasons=[
            "small, deterministic, full-batch problem: L-BFGS with a strong-Wolfe line search "
            "uses curvature at O(mn) memory and needs no learning-rate tuning (lr=1 is the "
            "quasi-Newton step)",
            "no weight decay or warmup: the line search controls the step"])

    reasons = []
    if task == "vision" and priority == "generalization":
        lr = 0.1 * batch_size / 256
        recipe = Recipe("SGD", lr=float(f"{lr:.4g}"), momentum=0.9, weight_decay=5e-4,
                        total_steps=total_steps, reasons=reasons)
        reasons.append("vision with generalization first: SGD with momentum 0.9, the lecture's "
                       "second recommendation (well-tuned SGD+momentum is the usual choice "
                       "for CNNs on ImageNet-type tasks)")
        reasons.append(f"lr = 0.1 x batch/256 = {recipe.lr:g} (linear scaling rule, "
                       "Goyal et al. 2017)")
        reasons.append("weight decay 5e-4 as an L2 term: the ResNet/CIFAR convention; the "
                       "lecture's 1e-4 to 1e-3 range applies to this coupled form")
        scaled = batch_size > 256
    else:
        recipe = Recipe("AdamW", lr=1e-3, weight_decay=1e-2, total_steps=total_steps,
                        reasons=reasons)
        reasons.append("default: Adam's lr 1e-3 (Kingma & Ba 2015), with decoupled weight "
                       "decay (AdamW, Loshchilov & Hutter 2019)")
        reasons.append("weight decay 0.01 (decoupled): shrinks weights by lr x wd = 1e-5 "
                       "per step; the lecture's 1e-4 would be 1e-7 per step, negligible")
        scaled = True
    warm = scaled or batch_size >= 1024
    if warm:
        length = max(1, round(0.05 * total_steps))
        if dataset_size is not None:
            length = max(length, math.ceil(dataset_size / batch_size))
        length = min(length, max(1, total_steps // 10))
        recipe.warmup_steps = int(length)
        why = "Adam's early second-moment estimates are noisy (Liu et al. 2020)" \
            if recipe.optimizer == "AdamW" else "the linearly scaled rate is large at the start"
        reasons.append(f"linear warmup over {recipe.warmup_steps} steps: {why}")
        if batch_size >= 1024:
            reasons.append("batch >= 1024: the lecture's 'always warm up for large batches'")
    reasons.append("cosine decay to 0 after warmup: as good as step decay when both are tuned, "
                   "one hyperparameter fewer")
    reasons.append("monitor the gradient norm; a spike of 10x its running median means the "
                   "step is too large for the curvature: halve the lr or lengthen the warmup")
    return recipe


# --------------------------------------------------------------------------------------
# Diagnosis of a run
# --------------------------------------------------------------------------------------
@dataclass
class Diagnosis:
    """What :func:`diagnose` found: a ``status`` keyword, the ``step`` it refers to (or
    ``None``), a one-line ``message`` and the ``advice``."""
    status: str
    step: int | None
    message: str
    advice: str

    def __str__(self):
        return f"{self.message} -> {self.advice}"


_ADVICE = {
    "diverged": "lower the learning rate (try /3 to /10) or add warmup; clip the gradient norm",
    "spike": "the step is too large for the local curvature: lower the lr or lengthen warmup",
    "rising": "the step is too large: lower the learning rate (try /3 to /10)",
    "oscillating": "the loss is bouncing: lower the learning rate (or check the input scaling)",
    "dead": "the network stopped learning (constant prediction): restart with a smaller lr",
    "slow": "raise the learning rate (x3 to x10) or train longer",
    "healthy": "nothing to fix",
}


def first_loss_rise(losses, *, factor=2.0):
    r"""First step whose loss exceeds ``factor`` times the lowest loss before it, or is not
    finite: the plain loss-watching rule the gradient-norm :func:`first_spike` is measured
    against. Returns ``None`` if no step qualifies."""
    loss = np.asarray(losses, dtype=float)
    factor = check_positive("factor", factor)
    if loss.ndim != 1:
        raise ValueError("losses must be 1-D")
    low = np.inf
    for t in range(len(loss)):
        if not np.isfinite(loss[t]) or (t > 0 and loss[t] > factor * low):
            return t if t > 0 else None
        low = min(low, loss[t])
    return None


def diagnose(losses, grad_norms, *, spike_factor=10.0, window=20, n_classes=None,
             slow_level=0.15, noise_fraction=0.1, high_fraction=0.1):
    r"""Name what is wrong with a run from its loss and gradient-norm curves.

    Checks, in order (the first that applies wins):

    * **diverged** -- the loss diverged (:func:`curvlib.runs.divergence_step`; NaN marks the
      steps after a divergence, as :mod:`curvlib.compare` records them) or the gradient norm
      is not finite; the message says when the gradient norm first spiked, if it did;
    * **spike** -- :func:`curvlib.runs.first_spike` found a step;
    * **dead** -- the final loss within 2% of :math:`\ln C` (a constant prediction over
      ``n_classes`` balanced classes) and a gradient norm that fell below 1% of its start;
    * **rising** -- the mean loss of the last third is more than 10% above the start;
    * **oscillating** -- over the last third the smoothed loss (running mean over 1/30 of the
      run) has stopped falling, the raw loss's standard deviation exceeds ``noise_fraction``
      of its mean, and the loss is still above ``high_fraction`` of its start (mini-batch
      noise around a low loss is not oscillation);
    * **slow** -- the loss of the last third is still above ``slow_level`` of its start;
    * **healthy** otherwise.
    """
    loss = np.asarray(losses, dtype=float)
    gn = np.asarray(grad_norms, dtype=float)
    if loss.ndim != 1 or gn.shape != loss.shape or loss.size < 3:
        raise ValueError("losses and grad_norms must be 1-D, of equal length >= 3")
    spike_factor = check_positive("spike_factor", spike_factor)
    window = check_int("window", window, minimum=2)
    k = divergence_step(loss)
    bad_gn = np.flatnonzero(~np.isfinite(gn))
    if bad_gn.size and (k is None or bad_gn[0] < k):
        k = int(bad_gn[0])
    spike = first_spike(gn, factor=spike_factor, window=window)
    if k is not None:
        early = f" (gradient norm spiked at step {spike})" if spike is not None and spike < k else ""
        return Diagnosis("diverged", k, f"diverged at step {k}{early}", _ADVICE["diverged"])
    if spike is not None:
        ref = np.median(gn[max(0, spike - window):spike])
        return Diagnosis("spike", spike, f"gradient-norm spike at step {spike} "
                         f"({gn[spike] / ref:.0f}x the recent median)", _ADVICE["spike"])
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, minimum=2)
        if abs(loss[-1] - math.log(n_classes)) < 0.02 * math.log(n_classes) \
                and gn[-5:].mean() < 0.01 * gn[:5].mean():
            return Diagnosis("dead", len(loss) - 1, f"stuck at loss {loss[-1]:.2f} = ln "
                             f"{n_classes} with vanishing gradient", _ADVICE["dead"])
    w = max(4, len(loss) // 3)
    k = max(1, len(loss) // 30)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")  # mini-batch noise averaged out
    tail = smooth[-w:]
    stalled = tail[len(tail) // 2:].mean() >= 0.95 * tail[:len(tail) // 2].mean()
    start = loss[:min(5, len(loss))].mean()
    end = loss[-w:].mean()
    spread = loss[-w:].std() / end if end > 0 else 0.0
    if end > 1.1 * start:
        return Diagnosis("rising", len(loss) - w, f"loss ended at {100 * end / start:.0f}% of its "
                         "start", _ADVICE["rising"])
    if stalled and spread > noise_fraction and end > high_fraction * start:
        return Diagnosis("oscillating", len(loss) - w,
                         f"loss bounces without progress (spread {100 * spread:.0f}% over the last "
                         f"{w} steps, at {100 * end / start:.0f}% of its start)",
                         _ADVICE["oscillating"])
    if end > slow_level * start:
        trend = "stalled" if stalled else "still falling"
        return Diagnosis("slow", None, f"loss at {100 * end / start:.0f}% of its start after "
                         f"{len(loss)} steps, {trend}", _ADVICE["slow"])
    return Diagnosis("healthy", None, f"loss fell to {100 * end / start:.1f}% of its start in "
                     f"{len(loss)} steps", _ADVICE["healthy"])


def _runs_worst(runs, n_classes=10):
    """The most serious diagnosis over the seeds of a :class:`curvlib.compare.RunStats`."""
    order = ["diverged", "spike", "dead", "rising", "oscillating", "slow", "healthy"]
    found = [diagnose(runs.loss[i], runs.grad_norm[i], n_classes=n_classes)
             for i in range(len(runs.seeds))]
    worst = min(found, key=lambda d: order.index(d.status))
    count = sum(d.status == worst.status for d in found)
    return worst, count


# --------------------------------------------------------------------------------------
# Monitoring on real runs
# --------------------------------------------------------------------------------------
def monitored_run(lr=1.6, *, steps=40, batch_size=1024, sizes=(64, 32, 32, 32, 10),
                  momentum=0.9, factor=10.0, seed=0):
    r"""A run that diverges, watched through its gradient norm.

    A ReLU MLP (three hidden layers) trains on digits with SGD + momentum at a large batch
    and a large rate, through :func:`curvlib.train.train`, which records the gradient norm
    of every step. Returns a dict with the per-step ``loss`` and ``grad_norm`` (NaN after a
    divergence), ``spike`` (the first step :func:`curvlib.runs.first_spike` flags),
    ``diverged_at`` (where the loss diverged, :mod:`curvlib.runs`) and the
    :class:`Diagnosis`. The point of monitoring is the gap between the two steps.
    """
    split = data.digits()
    model = models.mlp(list(sizes), activation="relu", seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=check_positive("lr", lr), momentum=momentum)
    res = train(model, opt, split.train, steps=steps, batch_size=batch_size, seed=seed)
    loss, gn = np.full(steps, np.nan), np.full(steps, np.nan)
    loss[res.step], gn[res.step] = res.loss, res.grad_norm
    return {"loss": loss, "grad_norm": gn, "spike": first_spike(gn, factor=factor),
            "diverged_at": res.diverged_at, "diagnosis": diagnose(loss, gn, spike_factor=factor),
            "lr": lr, "batch_size": batch_size}


def conditioning_demo(*, lr=0.6, steps=150, batch_size=64, sizes=(64, 32, 10), seeds=SEEDS):
    r"""The same network and learning rate on standardised and on raw digits pixels (0-16).

    Raw pixels make the Hessian's top eigenvalue much larger (the input covariance enters
    it), so the same step lies above the stability limit: the loss and the gradient norm show
    it. Returns, per input scaling, the top Hessian eigenvalue at each seed's initialisation
    (Lanczos on the training loss), the stability limit :math:`2(1+\beta)/\lambda_{\max}` of
    heavy-ball momentum for their mean, the training curves ``(seeds, steps)``, the
    :class:`Diagnosis` of every seed and ``status``: the diagnosis most seeds share with the
    number of seeds (``(status, count)``).
    """
    out = {}
    for name, standardize in (("standardised", True), ("raw pixels", False)):
        split = data.digits(standardize=standardize)
        lams, losses, gns, diags = [], [], [], []
        for seed in seeds:
            model = models.mlp(list(sizes), seed=int(seed))
            f, w = curvature.flat_loss(model, F.cross_entropy, split.X_train, split.y_train)
            lams.append(float(curvature.top_eigenvalues(f, w, k=1)[0]))
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            res = train(model, opt, split.train, steps=steps, batch_size=batch_size, seed=int(seed))
            loss, gn = np.full(steps, np.nan), np.full(steps, np.nan)
            loss[res.step], gn[res.step] = res.loss, res.grad_norm
            losses.append(loss)
            gns.append(gn)
            diags.append(diagnose(loss, gn, n_classes=10))
        statuses = [d.status for d in diags]
        top = max(set(statuses), key=lambda st: (statuses.count(st), st))
        lam = float(np.mean(lams))
        out[name] = {"lambda_max": lam, "lambda_max_seeds": np.array(lams),
                     "lr_limit": 2 * (1 + 0.9) / lam, "lr": lr, "loss": np.array(losses),
                     "grad_norm": np.array(gns), "diagnoses": diags,
                     "status": (top, statuses.count(top))}
    return out


def lead_study(lr=1.6, *, seeds=SEEDS, rise_factor=2.0, **kwargs):
    r"""How many steps the gradient-norm spike rule fires before a plain loss-rise rule.

    Runs :func:`monitored_run` from every seed and returns ``{"spike": [...], "rise": [...],
    "lead": array}`` per seed: the step :func:`first_spike` flags, the step
    :func:`first_loss_rise` flags (loss above ``rise_factor`` times its lowest value so far),
    and ``rise - spike`` (positive: the gradient norm warned earlier; NaN if either rule never
    fired).
    """
    out = {"spike": [], "rise": [], "lead": []}
    for s in seeds:
        r = monitored_run(lr, seed=int(s), **kwargs)
        rise = first_loss_rise(r["loss"], factor=rise_factor)
        out["spike"].append(r["spike"])
        out["rise"].append(rise)
        out["lead"].append(float("nan") if r["spike"] is None or rise is None else rise - r["spike"])
    out["lead"] = np.array(out["lead"])
    return out


# --------------------------------------------------------------------------------------
# The defaults, checked over seeds
# --------------------------------------------------------------------------------------
#: name -> (factory, the lecture's default learning rate)
DEFAULTS = {"Adam": (optim.factory("adam"), 1e-3), "SGD+momentum": (optim.factory("momentum"), 0.1)}


def default_check(lr_grid=compare.LR_GRID, *, steps=150,
                  batch_size=64, sizes=(64, 32, 10), seeds=SEEDS, tune_seeds=(100,)):
    r"""The lecture's default learning rate against the rate tuned on ``lr_grid``.

    For Adam (default 0.001) and SGD with momentum 0.9 (default 0.1): tune on the grid (final
    validation loss, ``tune_seeds``), then train the default and the tuned rate from every
    seed. Returns ``{name: {"default": RunStats, "tuned": RunStats, "tuned_lr": lr,
    "scores": {lr: score}}}``.
    """
    split = data.digits()
    make = lambda s: models.mlp(list(sizes), seed=s)
    out = {}
    for name, (factory, default) in DEFAULTS.items():
        best, scores = compare.tune_lr(factory, lr_grid, make, split, steps=steps,
                                       batch_size=batch_size, tune_seeds=tune_seeds)
        d, t = compare.run_settings(factory, [{"lr": default, "name": f"{name} default"},
                                              {"lr": best, "name": f"{name} tuned"}],
                                    make, split, steps=steps, seeds=seeds, batch_size=batch_size)
        out[name] = {"default": d, "tuned": t, "tuned_lr": best, "default_lr": default,
                     "scores": scores}
    return out


def weight_decay_sweep(weight_decays=(0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), *, steps=300,
                       batch_size=64, sizes=(64, 64, 10), n_train=300, seeds=SEEDS,
                       lr_grid=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0),
                       tune_seeds=(100,)):
    r"""Validation accuracy against weight decay for SGD + momentum (L2 form) and AdamW.

    Uses only ``n_train`` training images (the rest of the split is unchanged), so that the
    network can overfit and regularisation has something to do. Each optimizer's learning rate
    is first tuned without decay on ``lr_grid`` (final validation loss on ``tune_seeds``, which
    are not reported; ``lr_grid=None`` keeps the defaults, SGD 0.1 and AdamW 0.001). Then every
    decay value is trained at that rate from every seed. Returns ``{name: {"weight_decay":
    array, "lr", "at_edge" (the tuned rate is an end of the grid), "val_acc": array [wd, seed],
    "val_loss": ...}}``.
    """
    full = data.digits()
    split = (full.X_train[:n_train], full.y_train[:n_train], full.X_test, full.y_test)
    make = lambda s: models.mlp(list(sizes), seed=s)
    optimizers = {"SGD+momentum (L2)": (optim.factory("momentum"), 0.1),
                  "AdamW (decoupled)": (optim.factory("adamw"), 1e-3)}
    out = {}
    for name, (factory, lr) in optimizers.items():
        at_edge = False
        if lr_grid is not None:
            lr, _ = compare.tune_lr(factory, lr_grid, make, split, steps=steps,
                                    batch_size=batch_size, tune_seeds=tune_seeds)
            at_edge = lr in (min(lr_grid), max(lr_grid))
        runs = compare.run_settings(factory, [{"lr": lr, "weight_decay": wd} for wd in weight_decays],
                                    make, split, steps=steps, seeds=seeds, batch_size=batch_size)
        out[name] = {"weight_decay": np.array(weight_decays, dtype=float), "lr": lr, "at_edge": at_edge,
                     "val_acc": np.array([r.val_acc for r in runs]),
                     "val_loss": np.array([r.val_loss for r in runs])}
    return out


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def plot_monitored(run, ax=None, *, label=None):
    """Loss and gradient norm of one run on log axes, the first spike and the divergence marked."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    t = np.arange(len(run["loss"]))
    ax.plot(t, run["loss"], color="C0", label="training loss")
    ax.plot(t, run["grad_norm"], color="C1", label="gradient norm")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    if run.get("spike") is not None:
        ax.axvline(run["spike"], color="C3", ls="--", lw=1, label=f"flagged at step {run['spike']}")
    if run.get("diverged_at") is not None:
        ax.axvline(run["diverged_at"], color="k", ls=":", lw=1,
                   label=f"diverged at step {run['diverged_at']}")
    if label:
        ax.set_title(label, fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_weight_decay(sweep, ax=None, *, lecture=(1e-4, 1e-3)):
    """Validation accuracy (mean and min-max over seeds) against weight decay; the lecture's
    range shaded. Zero decay is drawn at the left edge."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    for k, (name, s) in enumerate(sweep.items()):
        wd = s["weight_decay"].copy()
        zero = wd == 0
        x = np.where(zero, wd[~zero].min() / 10, wd)
        v = s["val_acc"]
        ax.plot(x, v.mean(1), "o-", color=f"C{k}", ms=3, label=f"{name}, lr {s['lr']:g}")
        ax.fill_between(x, v.min(1), v.max(1), color=f"C{k}", alpha=0.2, lw=0)
    ax.axvspan(*lecture, color="0.5", alpha=0.15, label="lecture's range")
    # y-range: the accuracies within 5 points of the best mean; collapsed runs are noted below
    means = np.concatenate([s["val_acc"].mean(1) for s in sweep.values()])
    keep = np.concatenate([s["val_acc"].min(1) for s in sweep.values()])[means >= means.max() - 0.05]
    lo, hi = keep.min(), max(s["val_acc"].max() for s in sweep.values())
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    off = [f"{n.split(' ')[0]} at λ = {wd:g}: {100 * m:.0f}%" for n, s in sweep.items()
           for wd, m in zip(s["weight_decay"], s["val_acc"].mean(1)) if m < lo - 0.1 * (hi - lo)]
    if off:
        ax.text(0.01, 0.02, "below the axis: " + "; ".join(off), transform=ax.transAxes)
    ax.set_xscale("log")
    ticks = list(x)
    ax.set_xticks(ticks, ["0"] + [f"{t:g}" for t in ticks[1:]])
    ax.set_xlabel("weight decay λ")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------------------
# Widget: diagnose my training run
# --------------------------------------------------------------------------------------
def run_doctor(lrs=compare.lr_grid(1e-3, 1.0, per_decade=1), optimizers=("SGD+momentum", "Adam"),
               weight_decays=(0.0, 0.01), warmups=(0, 30), *, steps=150, batch_size=64,
               sizes=(64, 32, 32, 10), seeds=(0, 1, 2)):
    r"""Explorer: optimizer, learning rate, weight decay and warmup in; the loss and
    gradient-norm curves of ``seeds`` and a diagnosis (:func:`diagnose`) out.

    Every combination is trained when the factory runs (one vectorised batch per
    optimizer), so moving a control only draws.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    from curvlib.widgets import Explorer

    split = data.digits()
    make = lambda s: models.mlp(list(sizes), activation="relu", seed=s)
    factories = {"SGD+momentum": optim.factory("momentum"), "Adam": optim.factory("adamw")}
    for o in optimizers:
        check_choice("optimizers", o, set(factories))
    curves = {}
    for o in optimizers:
        keys = [(lr, wd, w) for lr in lrs for wd in weight_decays for w in warmups]
        settings = []
        for lr, wd, w in keys:
            sched = None if w == 0 else (lambda t, base, w=w: schedules.linear_warmup(
                t, base_lr=base, warmup_steps=w))
            # Adam's weight decay is AdamW's (decoupled); SGD's is the L2 term
            settings.append({"lr": lr, "weight_decay": wd, "schedule": sched})
        runs = compare.run_settings(factories[o], settings, make, split, steps=steps, seeds=seeds,
                                    batch_size=batch_size)
        for key, r in zip(keys, runs):
            curves[(o,) + key] = (r, _runs_worst(r))

    def render(fig, optimizer, lr, weight_decay, warmup):
        r, (diag, count) = curves[optimizer, lr, weight_decay, warmup]
        a, b = fig.subplots(1, 2)
        for i in range(len(r.seeds)):
            a.plot(r.steps, r.loss[i], color="C0", lw=1, alpha=0.8)
            b.plot(r.steps, r.grad_norm[i], color="C1", lw=1, alpha=0.8)
        for ax, lo, hi, ticks in ((a, 1e-3, 1e2, [1e-3, 1e-2, 1e-1, 1, 10, 100]),
                                  (b, 1e-3, 1e3, [1e-3, 1e-1, 10, 1e3])):
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.set_ylim(lo, hi)
            ax.set_xlim(0, steps)
            ax.set_xlabel("step")
        a.set_ylabel(f"training loss ({len(r.seeds)} seeds)")
        b.set_ylabel("gradient norm")
        if diag.step is not None:
            for ax in (a, b):
                ax.axvline(diag.step, color="C3", ls="--", lw=1)
        seeds_txt = f"{count}/{len(r.seeds)} seeds"
        if diag.status == "diverged":
            return f"diverged at step {diag.step} ({seeds_txt}): {diag.advice}"
        return f"{diag.message} ({seeds_txt}): {diag.advice}"

    return Explorer(render, {"optimizer": list(optimizers), "lr": list(lrs),
                             "weight_decay": list(weight_decays), "warmup": list(warmups)},
                    labels={"lr": "learning rate", "weight_decay": "weight decay",
                            "warmup": "warmup steps"},
                    initial={"optimizer": optimizers[0], "lr": lrs[len(lrs) // 2],
                             "weight_decay": weight_decays[0], "warmup": warmups[0]},
                    figsize=(7.6, 3.0),
                    alt="Loss and gradient-norm curves of a training run, with a diagnosis")

