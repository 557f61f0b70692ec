r"""Fair optimizer comparisons: tune every learning rate on one grid, then report over seeds.

A comparison of optimizers says little when one of them ran at a well-chosen learning rate
and the other at a default, or when each curve is a single lucky run. Following the protocol
of Choi et al. (2019), "On Empirical Comparisons of Optimizers for Deep Learning",
arXiv:1910.05446, and Schmidt, Schneider & Hennig (2021), "Descending through a Crowded
Valley -- Benchmarking Deep Learning Optimizers", ICML, :func:`tune_and_compare` does two
things for every optimizer, with the same budget for each:

1. **Tune.** Train once per learning rate of the shared grid (on the tuning seeds, which are
   *not* the reporting seeds) and score the run by ``select``:

   * ``"val_loss"`` (default): cross-entropy on the held-out validation split after the
     last step -- the honest choice when the question is generalisation;
   * ``"train_loss"``: full training-set loss after the last step -- the choice when the
     question is optimisation speed.

   A run that diverges scores :math:`+\infty`. The lowest score wins; the result records
   whether the winner sits at an edge of the grid (then the grid was too narrow and the
   comparison is suspect).
2. **Report.** Train the chosen setting from ``len(seeds)`` fresh seeds (the seed fixes the
   initial weights and the mini-batch order) and keep every per-step loss, so the figure
   can show the mean with a band (one standard deviation, or min--max) instead of one run.

For a quantity :math:`x_s` measured on seeds :math:`s = 1..S` the summary is the mean
:math:`\bar x = \frac1S\sum_s x_s`, the sample standard deviation
:math:`\sqrt{\frac1{S-1}\sum_s (x_s-\bar x)^2}` and the range :math:`[\min_s x_s, \max_s x_s]`.

**Conventions.** An optimizer is a factory ``(model, lr) -> torch.optim.Optimizer``, as
:func:`curvlib.optim.factory` makes them (``factory("adam")``, ``factory("kfac")``: K-FAC
needs the model, the others its parameters). A learning-rate grid is :func:`lr_grid`: powers
of ten and the points between them, rounded to one significant digit. A run has diverged by
the rule of :mod:`curvlib.runs`.

Each run is one call of :func:`curvlib.train.train`, the readable reference loop. For an
elementwise optimizer (``factory.elementwise``: SGD, Adam, AdamW, RMSprop, Adagrad) the runs
of one batch go through its fast path :func:`curvlib.train.train_stacked` instead: all of them
at once in one vectorised model, tested equal to the reference up to rounding.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ._checks import check_choice, check_flag, check_int, check_positive, check_real
from .runs import single_thread
from .train import accuracy, loss_and_accuracy, train, train_stacked

__all__ = ["RunStats", "Comparison", "as_split", "lr_grid", "run_once", "run_seeds", "run_grid",
           "run_settings", "stats_from_runs", "smooth", "steps_to_target", "tune_lr", "tune_and_compare", "plot_bands",
           "summary_rows", "DEFAULT_SEEDS", "LR_GRID"]

#: Five reporting seeds (the minimum the book allows for a comparison).
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def lr_grid(low, high, per_decade=2, digits=1):
    r"""The learning rates :math:`10^{k/n}` (:math:`n` = ``per_decade``, :math:`k` whole) from
    ``low`` to ``high``, each rounded to ``digits`` significant digits: ``lr_grid(1e-3, 1)`` is ``(0.001, 0.003, 0.01, 0.03, 0.1,
    0.3, 1.0)``. The book's one way of writing a grid: even on a log axis, readable numbers.

    ``low`` and ``high`` are kept when they are grid points after rounding (``lr_grid(0.1, 3)``
    ends at 3, the rounded :math:`10^{1/2}`).
    """
    low, high = check_positive("low", low), check_positive("high", high)
    if low > high:
        raise ValueError(f"low must be <= high, got {low} and {high}")
    per_decade = check_int("per_decade", per_decade, minimum=1)
    digits = check_int("digits", digits, minimum=1)
    first = math.floor(per_decade * math.log10(low)) - 1
    last = math.ceil(per_decade * math.log10(high)) + 1
    points = (float(f"{10 ** (k / per_decade):.{digits - 1}e}") for k in range(first, last + 1))
    return tuple(v for v in points if low * (1 - 1e-9) <= v <= high * (1 + 1e-9))


#: Half a decade apart from 1e-4 to 1, wide enough for SGD and Adam on the digits MLP.
LR_GRID = lr_grid(1e-4, 1.0)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
def _tensor(a, dtype):
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def as_split(data):
    """Normalise ``data`` to ``(X_train, y_train, X_val, y_val)`` torch tensors.

    Accepts a 4-tuple such as a :class:`curvlib.data.Split`, a dict with those keys
    (``X_train``/``x_train`` ...; ``X_test``/``y_test`` also name the validation part), or an
    object with such attributes. Features become float32, labels int64.
    """
    names = ("X_train", "y_train", "X_val", "y_val")
    alias = {"X_val": "X_test", "y_val": "y_test"}
    if isinstance(data, (tuple, list)):
        if len(data) != 4:
            raise ValueError(f"data must have 4 parts (X_train, y_train, X_val, y_val), got {len(data)}")
        parts = list(data)
    else:
        one = (lambda k: data.get(k, data.get(k.lower()))) if isinstance(data, dict) else \
              (lambda k: getattr(data, k, getattr(data, k.lower(), None)))
        get = lambda k: one(k) if one(k) is not None else (one(alias[k]) if k in alias else None)
        parts = [get(k) for k in names]
        if any(p is None for p in parts):
            raise TypeError("data must be (X_train, y_train, X_val, y_val) or have those "
                            f"fields, got {type(data).__name__}")
    X_tr, y_tr, X_va, y_va = (_tensor(parts[0], torch.float32), _tensor(parts[1], torch.int64),
                              _tensor(parts[2], torch.float32), _tensor(parts[3], torch.int64))
    if len(X_tr) != len(y_tr) or len(X_va) != len(y_va):
        raise ValueError("data: features and labels must have the same length")
    if len(X_tr) == 0 or len(X_va) == 0:
        raise ValueError("data: training and validation splits must be non-empty")
    return X_tr, y_tr, X_va, y_va


# --------------------------------------------------------------------------------------
# Runs: the reference loop one at a time, or the fast path all at once
# --------------------------------------------------------------------------------------
def _build(make_model, seed):
    """``make_model(seed)`` if it takes an argument, else ``make_model()`` after seeding torch."""
    try:
        takes_seed = len(inspect.signature(make_model).parameters) > 0
    except (TypeError, ValueError):  # builtins without a signature
        takes_seed = False
    if takes_seed:
        return make_model(int(seed))
    torch.manual_seed(int(seed))
    return make_model()


def _check_common(factory, make_model, steps, batch_size):
    steps = check_int("steps", steps, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not callable(factory):
        raise TypeError(f"factory must be callable (model, lr) -> optimizer, got {factory!r}")
    if not callable(make_model):
        raise TypeError(f"make_model must be callable (seed) -> nn.Module, got {make_model!r}")
    return steps, batch_size


def _padded(res, steps):
    """A :class:`~curvlib.train.TrainResult`'s curves as arrays of length ``steps`` (NaN where
    nothing was recorded, i.e. from a divergence on)."""
    out = {}
    for key in ("loss", "grad_norm", "lr", "time"):
        out[key] = np.full(steps, np.nan)
        out[key][res.step] = getattr(res, key)
    return out


def _finish(curves, diverged_at, steps, final):
    """One run's result dict; ``final()`` gives ``(train_loss, val_loss, val_acc)``."""
    if diverged_at is None:
        train_loss, val_loss, val_acc = final()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            diverged_at = steps
    if diverged_at is not None:
        train_loss, val_loss, val_acc = math.inf, math.inf, 0.0
    return {**curves, "diverged_at": diverged_at, "train_loss": train_loss,
            "val_loss": val_loss, "val_acc": val_acc}


def _check_options(optimizer, options, name="options"):
    """A checked copy of ``options``, hyperparameters to set in every param group of
    ``optimizer``: a dict whose keys the optimizer takes (``ValueError`` naming a misspelt
    one, which would otherwise be stored and never read), with values the optimizer's own
    check accepts (curvlib's optimizers; a torch.optim one checks the keys only)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict of hyperparameters, got {options!r}")
    unknown = sorted(set(options) - set(optimizer.defaults))
    if unknown or "params" in options:
        bad = ", ".join(unknown or ["params"])
        raise ValueError(f"{name}: unknown hyperparameter(s) {bad} for "
                         f"{type(optimizer).__name__}; it takes "
                         f"{', '.join(sorted(optimizer.defaults))}")
    check = getattr(optimizer, "check_hyper", None)
    if check is None:
        return dict(options)
    checked = check({**optimizer.defaults, **options})
    return {k: checked[k] for k in options}


def run_once(factory, lr, make_model, data, *, steps, seed, batch_size=None, schedule=None,
             loss_fn=None, options=None):
    """Train ``make_model`` with ``factory(model, lr)`` for ``steps`` steps from ``seed``.

    The reference path: one run through :func:`curvlib.train.train`. ``make_model`` is
    ``seed -> nn.Module`` (e.g. ``lambda s: curvlib.models.mlp([64, 32, 10], seed=s)``) or a
    function of no argument, then called after ``torch.manual_seed(seed)``; ``seed`` also fixes
    the mini-batch order. ``schedule(step, base_lr) -> lr`` (optional) sets every step's rate.
    Returns a dict with per-step ``loss``, ``grad_norm``, ``lr`` and ``time`` (numpy arrays
    of length ``steps``, NaN from a divergence on), ``diverged_at`` (step or ``None``) and the
    final full-split ``train_loss``, ``val_loss``, ``val_acc`` (``inf``/``inf``/``0`` if
    diverged). ``options`` (a dict, e.g. ``{"weight_decay": 1e-3}``) overrides
    hyperparameters of every param group of the optimizer.
    """
    lr = check_positive("lr", lr)
    steps, batch_size = _check_common(factory, make_model, steps, batch_size)
    loss_fn = torch.nn.functional.cross_entropy if loss_fn is None else loss_fn
    X_tr, y_tr, X_va, y_va = as_split(data)
    if batch_size is not None and batch_size >= len(X_tr):
        batch_size = None
    model = _build(make_model, seed)
    optimizer = factory(model, lr)
    options = _check_options(optimizer, options)
    for group in optimizer.param_groups:
        group.update(options)
    scheduler = None if schedule is None else (lambda k: schedule(k, lr))
    res = train(model, optimizer, (X_tr, y_tr), loss_fn=loss_fn, steps=steps,
                batch_size=batch_size, seed=int(seed), scheduler=scheduler)

    def final():
        train_loss, _ = loss_and_accuracy(model, X_tr, y_tr, loss_fn)
        return (train_loss,) + loss_and_accuracy(model, X_va, y_va, loss_fn)

    return _finish(_padded(res, steps), res.diverged_at, steps, final)


def _fast_runs(factory, lrs, seeds, make_model, data, *, steps, batch_size=None, schedules=None,
               loss_fn=None, options=None):
    """Every run ``(lr, seed)``, lr-major, through :func:`curvlib.train.train_stacked` on one
    thread (many small kernels: a second thread only waits); ``None`` if the fast path does
    not apply. Same result dicts as :func:`run_once`, equal to them up to rounding (tested).
    """
    loss_fn = torch.nn.functional.cross_entropy if loss_fn is None else loss_fn
    X_tr, y_tr, X_va, y_va = as_split(data)
    if not getattr(factory, "elementwise", False):
        return None
    models = [_build(make_model, s) for _ in lrs for s in seeds]
    with single_thread():
        out = train_stacked(models, factory, (X_tr, y_tr), lrs=lrs, seeds=seeds, steps=steps,
                            batch_size=batch_size, schedules=schedules, options=options,
                            loss_fn=loss_fn)
        if out is None:
            return None
        results, stack = out
        with torch.no_grad():
            out_tr, out_va = stack.outputs(X_tr), stack.outputs(X_va)
    final = lambda i: (float(loss_fn(out_tr[i], y_tr)), float(loss_fn(out_va[i], y_va)),  # noqa: E731
                       accuracy(out_va[i], y_va))
    return [_finish(_padded(res, steps), res.diverged_at, steps, lambda i=i: final(i))
            for i, res in enumerate(results)]


def _runs(factory, lrs, seeds, make_model, data, *, steps, batch_size, schedule, loss_fn, fast,
          options=None):
    """Results of every ``(lr, seed)`` pair, lr-major; fast path first when allowed."""
    for lr in lrs:
        check_positive("lr", lr)
    fast = check_flag("fast", fast)
    steps, batch_size = _check_common(factory, make_model, steps, batch_size)
    K = len(lrs)
    scheds = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule] * K
    opts = [{}] * K if options is None else list(options)
    if len(scheds) != K or len(opts) != K:
        raise ValueError("schedule and options lists must have one entry per learning rate")
    for sc in scheds:
        if sc is not None and not callable(sc):
            raise TypeError("schedule must be None or a (step, base_lr) -> lr function")
    if any(o for o in opts):  # checked once, on one optimizer, for both paths
        probe = factory(_build(make_model, seeds[0]), lrs[0])
        opts = [_check_options(probe, o, f"options[{k}]") for k, o in enumerate(opts)]
        getattr(probe, "remove_hooks", lambda: None)()
    if fast:
        out = _fast_runs(factory, lrs, seeds, make_model, data, steps=steps,
                         batch_size=batch_size, schedules=scheds, loss_fn=loss_fn, options=opts)
        if out is not None:
            return out
    return [run_once(factory, lr, make_model, data, steps=steps, seed=s, batch_size=batch_size,
                     schedule=scheds[k], loss_fn=loss_fn, options=opts[k])
            for k, lr in enumerate(lrs) for s in seeds]


# --------------------------------------------------------------------------------------
# Many seeds
# --------------------------------------------------------------------------------------
@dataclass
class RunStats:
    """One setting trained from several seeds.

    ``loss``, ``grad_norm`` and ``time`` (wall-clock seconds after each step) are
    ``(seeds, steps)`` arrays, NaN after a divergence; ``train_loss``, ``val_loss``,
    ``val_acc`` hold one final value per seed. ``time`` is each run's own only when the runs
    went through the reference loop (``fast=False``); on the fast path it is the batch's.
    """
    name: str
    lr: float
    seeds: tuple
    loss: np.ndarray
    grad_norm: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    diverged: list = field(default_factory=list)
    time: np.ndarray | None = None

    @property
    def steps(self):
        return np.arange(self.loss.shape[1])

    def _per_step(self, fn):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(self.loss, axis=0)

    @property
    def mean(self):
        """Per-step mean loss over the seeds that have not diverged by that step."""
        return self._per_step(np.nanmean)

    @property
    def std(self):
        """Per-step sample standard deviation (ddof=1) of the loss over seeds."""
        return self._per_step(lambda a, axis: np.nanstd(a, axis=axis, ddof=1))

    @property
    def low(self):
        return self._per_step(np.nanmin)

    @property
    def high(self):
        return self._per_step(np.nanmax)

    def final(self, metric="val_acc"):
        """``(mean, std, min, max)`` of a final metric over seeds."""
        check_choice("metric", metric, {"train_loss", "val_loss", "val_acc"})
        x = np.asarray(getattr(self, metric), dtype=float)
        std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
        return float(np.mean(x)), std, float(np.min(x)), float(np.max(x))

    def steps_to(self, target, window=1):
        """Per seed, the first step whose loss (running mean over ``window`` steps, see
        :func:`smooth`) is <= ``target``; ``inf`` if never."""
        return steps_to_target(self.loss, target, window)

    def select(self, index):
        """The runs of the seeds at positions ``index`` (an int or a list), as a new RunStats."""
        idx = np.atleast_1d(index)
        seeds = tuple(self.seeds[i] for i in idx)
        return replace(self, seeds=seeds, loss=self.loss[idx], grad_norm=self.grad_norm[idx],
                       train_loss=self.train_loss[idx], val_loss=self.val_loss[idx],
                       val_acc=self.val_acc[idx],
                       diverged=[(s, k) for s, k in self.diverged if s in seeds],
                       time=None if self.time is None else self.time[idx])


def smooth(loss, window=10):
    r"""Running mean over the last ``window`` steps (fewer at the start) along the last axis:
    :math:`\tilde L_t = \frac{1}{\min(t+1,w)}\sum_{s=\max(0,t-w+1)}^{t} L_s`. A NaN (a
    diverged run) makes every later value ``inf``."""
    window = check_int("window", window, minimum=1)
    a = np.asarray(loss, dtype=float)
    c = np.cumsum(np.nan_to_num(a, nan=np.inf), axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    n = np.minimum(np.arange(a.shape[-1]) + 1, window)
    with np.errstate(invalid="ignore"):
        out = out / n
    out[~np.isfinite(out)] = np.inf
    return out


def steps_to_target(loss, target, window=10):
    """First step at which the :func:`smooth`-ed loss is ``<= target``, per row; ``inf`` if
    never. ``loss`` is ``(steps,)`` (returns a float) or ``(seeds, steps)`` (an array)."""
    target = check_real("target", target)
    s = np.atleast_2d(smooth(loss, window))
    hit = s <= target
    out = np.where(hit.any(axis=1), hit.argmax(axis=1).astype(float), np.inf)
    return out if np.ndim(loss) > 1 else float(out[0])


def _seeds(seeds, name="seeds"):
    seeds = tuple(check_int(name, s) for s in seeds)
    if not seeds:
        raise ValueError(f"{name} must not be empty")
    return seeds


def run_seeds(factory, lr, make_model, data, *, steps, seeds=DEFAULT_SEEDS, batch_size=None,
              schedule=None, loss_fn=None, name="", fast=True):
    """:func:`run_once` from each seed in ``seeds``; returns a :class:`RunStats`.

    ``fast=True`` trains all seeds at once in one vectorised model when the optimizer is
    elementwise and the model has no buffers (same numbers up to rounding); ``False`` forces
    the one-run-at-a-time reference loop.
    """
    seeds = _seeds(seeds)
    lr = check_positive("lr", lr)
    runs = _runs(factory, [lr], seeds, make_model, data, steps=steps, batch_size=batch_size,
                 schedule=schedule, loss_fn=loss_fn, fast=fast)
    return stats_from_runs(runs, lr, seeds, name)


def run_grid(factory, lrs, make_model, data, *, steps, seeds=DEFAULT_SEEDS, batch_size=None,
             schedule=None, loss_fn=None, name="", fast=True):
    """Every learning rate of ``lrs`` from every seed: ``{lr: RunStats}`` (one vectorised batch
    on the fast path). The building block of learning-rate sweeps."""
    seeds = _seeds(seeds)
    lrs = [check_positive("lrs", lr) for lr in lrs]
    if not lrs:
        raise ValueError("lrs must not be empty")
    runs = _runs(factory, lrs, seeds, make_model, data, steps=steps, batch_size=batch_size,
                 schedule=schedule, loss_fn=loss_fn, fast=fast)
    S = len(seeds)
    return {lr: stats_from_runs(runs[k * S:(k + 1) * S], lr, seeds, name)
            for k, lr in enumerate(lrs)}


def run_settings(factory, settings, make_model, data, *, steps, seeds=DEFAULT_SEEDS,
                 batch_size=None, loss_fn=None, fast=True):
    """Several settings of one optimizer from every seed, in one vectorised batch when possible.

    ``settings`` is a list of dicts with key ``"lr"``, optional ``"schedule"`` (a
    ``(step, base_lr) -> lr`` function), optional ``"name"`` and any other keys as param-group
    hyperparameters (``"weight_decay"``, ``"momentum"`` ...). Returns one :class:`RunStats`
    per setting, in order.
    """
    if not isinstance(settings, (list, tuple)) or not all(isinstance(s, dict) for s in settings):
        raise TypeError(f"settings must be a list of dicts, got {settings!r}")
    settings = [dict(s) for s in settings]
    if not settings or any("lr" not in s for s in settings):
        raise ValueError("settings must be a non-empty list of dicts, each with an 'lr'")
    seeds = _seeds(seeds)
    lrs = [check_positive("settings lr", s.pop("lr")) for s in settings]
    scheds = [s.pop("schedule", None) for s in settings]
    names = [s.pop("name", "") for s in settings]
    runs = _runs(factory, lrs, seeds, make_model, data, steps=steps, batch_size=batch_size,
                 schedule=scheds, loss_fn=loss_fn, fast=fast, options=settings)
    S = len(seeds)
    return [stats_from_runs(runs[k * S:(k + 1) * S], lr, seeds, names[k])
            for k, lr in enumerate(lrs)]


def stats_from_runs(runs, lr, seeds, name=""):
    """A :class:`RunStats` from the result dicts of :func:`run_once` (one per seed)."""
    stack = lambda key: np.stack([r[key] for r in runs])  # noqa: E731
    return RunStats(name=name, lr=float(lr), seeds=tuple(seeds), loss=stack("loss"),
                    grad_norm=stack("grad_norm"),
                    train_loss=np.array([r["train_loss"] for r in runs]),
                    val_loss=np.array([r["val_loss"] for r in runs]),
                    val_acc=np.array([r["val_acc"] for r in runs]),
                    diverged=[(s, r["diverged_at"]) for s, r in zip(seeds, runs)
                              if r["diverged_at"] is not None],
                    time=stack("time"))


# --------------------------------------------------------------------------------------
# Tuning and the comparison
# --------------------------------------------------------------------------------------
def _check_grid(grid):
    try:
        grid = sorted(check_positive("lr_grid", v) for v in grid)
    except TypeError:
        raise TypeError(f"lr_grid must be a sequence of positive numbers, got {grid!r}") from None
    if not grid:
        raise ValueError("lr_grid must not be empty")
    return grid


def tune_lr(factory, lr_grid, make_model, data, *, steps, tune_seeds=(100,), batch_size=None,
            schedule=None, select="val_loss", loss_fn=None, fast=True):
    """Score every learning rate in ``lr_grid``; return ``(best_lr, {lr: score})``.

    The score is the mean over ``tune_seeds`` of the final ``select`` metric (``"val_loss"``
    or ``"train_loss"``), ``inf`` for a diverged run. Ties go to the smaller learning rate.
    """
    check_choice("select", select, {"val_loss", "train_loss"})
    grid = _check_grid(lr_grid)
    tune_seeds = _seeds(tune_seeds, "tune_seeds")
    runs = _runs(factory, grid, tune_seeds, make_model, data, steps=steps, batch_size=batch_size,
                 schedule=schedule, loss_fn=loss_fn, fast=fast)
    S = len(tune_seeds)
    scores = {lr: float(np.mean([r[select] for r in runs[k * S:(k + 1) * S]]))
              for k, lr in enumerate(grid)}
    best = min(grid, key=lambda lr: (scores[lr], lr))
    if not math.isfinite(scores[best]):
        raise RuntimeError("every learning rate in lr_grid diverged; extend the grid downwards")
    return best, scores


@dataclass
class Comparison:
    """What :func:`tune_and_compare` found.

    ``scores[name][lr]`` is the tuning score, ``best_lr[name]`` the chosen rate,
    ``at_edge[name]`` whether it is the smallest or largest rate of the grid, ``runs[name]``
    the :class:`RunStats` of the chosen rate over the reporting seeds; ``steps`` and
    ``batch_size`` the budget every optimizer had.
    """
    select: str
    lr_grid: tuple
    scores: dict
    best_lr: dict
    at_edge: dict
    runs: dict
    steps: int = 0
    batch_size: int | None = None

    def __getitem__(self, name):
        return self.runs[name]

    @property
    def names(self):
        return list(self.runs)

    def steps_to(self, target):
        """Per optimizer, the median over seeds of the first step whose loss is <= ``target``
        (``inf`` if a seed never gets there)."""
        return {n: float(np.median(r.steps_to(target))) for n, r in self.runs.items()}


def tune_and_compare(optimizers, lr_grid, make_model, data, *, steps, seeds=DEFAULT_SEEDS,
                     batch_size=None, select="val_loss", tune_seeds=(100,), schedule=None,
                     loss_fn=None, min_seeds=5, fast=True, timed=False):
    """Tune each optimizer's learning rate on ``lr_grid``, then train it from every seed.

    Parameters
    ----------
    optimizers : dict name -> ``factory(model, lr) -> torch.optim.Optimizer``
        (e.g. ``{"Adam": curvlib.optim.factory("adam"), "K-FAC": factory("kfac")}``).
    lr_grid : the learning rates every optimizer is tuned over (the same for all), e.g.
        :func:`lr_grid`.
    make_model : ``seed -> nn.Module`` (or ``() -> nn.Module``, called after
        ``torch.manual_seed(seed)``).
    data : ``(X_train, y_train, X_val, y_val)`` or an object/dict with those fields.
    steps, batch_size : the budget, equal for every optimizer (``batch_size=None``: full batch).
    seeds : reporting seeds (at least ``min_seeds``, default 5); ``tune_seeds`` are separate,
        so the rate is not chosen on the runs that are reported.
    select : ``"val_loss"`` or ``"train_loss"``, the tuning criterion (see the module docstring).
    schedule : ``None``, a ``(step, base_lr) -> lr`` function for every optimizer, or a dict
        name -> such a function (``None`` entries mean constant).
    fast : train the runs of one optimizer together in a vectorised model when possible
        (see :func:`run_seeds`); the numbers equal the reference loop's up to rounding.
    timed : report through the reference loop, so every run's ``time`` is its own wall
        clock (for plots against time); tuning may still take the fast path.
    """
    if not isinstance(optimizers, dict) or not optimizers:
        raise TypeError("optimizers must be a non-empty dict name -> factory(model, lr)")
    for name, f in optimizers.items():
        if not callable(f):
            raise TypeError(f"optimizers[{name!r}] must be callable (model, lr) -> optimizer")
    min_seeds = check_int("min_seeds", min_seeds, minimum=1)
    seeds = tuple(seeds)
    if len(seeds) < min_seeds:
        raise ValueError(f"seeds must hold at least {min_seeds} seeds for a fair comparison, "
                         f"got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    grid = _check_grid(lr_grid)
    if isinstance(schedule, dict):
        unknown = set(schedule) - set(optimizers)
        if unknown:
            raise ValueError(f"schedule has entries for unknown optimizers: {sorted(unknown)}")
        schedules = {name: schedule.get(name) for name in optimizers}
    else:
        if schedule is not None and not callable(schedule):
            raise TypeError("schedule must be None, a (step, base_lr) -> lr function or a dict")
        schedules = {name: schedule for name in optimizers}

    scores, best_lr, at_edge, runs = {}, {}, {}, {}
    for name, factory in optimizers.items():
        best, sc = tune_lr(factory, grid, make_model, data, steps=steps, tune_seeds=tune_seeds,
                           batch_size=batch_size, schedule=schedules[name], select=select,
                           loss_fn=loss_fn, fast=fast)
        scores[name], best_lr[name] = sc, best
        at_edge[name] = len(grid) > 1 and best in (grid[0], grid[-1])
        runs[name] = run_seeds(factory, best, make_model, data, steps=steps, seeds=seeds,
                               batch_size=batch_size, schedule=schedules[name],
                               loss_fn=loss_fn, name=name, fast=fast and not timed)
    return Comparison(select=select, lr_grid=tuple(grid), scores=scores, best_lr=best_lr,
                      at_edge=at_edge, runs=runs, steps=steps, batch_size=batch_size)


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------
def _as_runs(result):
    if isinstance(result, Comparison):
        return list(result.runs.values())
    if isinstance(result, RunStats):
        return [result]
    if isinstance(result, dict):
        return list(result.values())
    return list(result)


def plot_bands(result, ax=None, *, band="std", logy=True, quantity="loss", title=None,
               labels=None):
    """Mean curve per setting with a band over seeds: ``band="std"`` (mean +- one standard
    deviation) or ``"minmax"`` (the range of the seeds). ``result`` is a :class:`Comparison`,
    a :class:`RunStats`, or a list/dict of them. Returns the axes.
    """
    import matplotlib.pyplot as plt
    check_choice("band", band, {"std", "minmax"})
    check_choice("quantity", quantity, {"loss", "grad_norm"})
    logy = check_flag("logy", logy)
    runs = _as_runs(result)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    for i, r in enumerate(runs):
        rr = r if quantity == "loss" else replace(r, loss=r.grad_norm)
        mean = rr.mean
        lo, hi = (mean - rr.std, mean + rr.std) if band == "std" else (rr.low, rr.high)
        if logy:
            lo = np.where(lo > 0, lo, np.nan)
        label = labels[i] if labels else f"{r.name} (lr={r.lr:g}, {len(r.seeds)} seeds)"
        line, = ax.plot(rr.steps, mean, lw=1.6, label=label)
        ax.fill_between(rr.steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" if quantity == "loss" else "gradient norm")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def summary_rows(result, digits=3):
    """One row per setting: name, lr, final train loss / val loss / val accuracy as
    ``mean +- std [min, max]`` strings rounded to ``digits`` significant digits, and the
    number of diverged seeds. Printable with any table tool, stable across thread counts.
    """
    digits = check_int("digits", digits, minimum=1)
    g = lambda v: f"{v:.{digits}g}"  # noqa: E731
    rows = []
    for r in _as_runs(result):
        row = {"name": r.name, "lr": f"{r.lr:g}", "seeds": len(r.seeds)}
        for metric in ("train_loss", "val_loss", "val_acc"):
            m, s, lo, hi = r.final(metric)
            row[metric] = f"{g(m)} ± {g(s)} [{g(lo)}, {g(hi)}]"
        row["diverged"] = len(r.diverged)
        rows.append(row)
    return rows
