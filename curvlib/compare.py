r"""Fair optimizer comparisons: tune every learning rate on one grid, then report over seeds.

A comparison of optimizers says little when one of them ran at a well-chosen learning rate
and the other at a default, or when each curve is a single lucky run. Following the protocol
of Choi et al. (2019), "On Empirical Comparisons of Optimizers for Deep Learning",
arXiv:1910.05446, and Schmidt, Schneider & Hennig (2021), "Descending through a Crowded
Valley -- Benchmarking Deep Learning Optimizers", ICML, :func:`tune_and_compare` does two
things for every optimizer, with the same budget for each:

1. **Tune.** Train once per learning rate of the shared grid ``lr_grid`` (on the tuning
   seeds, which are *not* the reporting seeds) and score the run by ``select``:

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

Each run is one call of :func:`curvlib.train.train` (the loop every chapter uses) -- the
readable reference path. The fast path trains all runs of one elementwise optimizer (SGD,
Adam, AdamW, RMSprop, Adagrad) at once: parameters stacked along a leading axis, the model
evaluated with :func:`torch.vmap`, so the runs share one vectorised forward and backward
pass per step. It follows the
same rules (initialisation, mini-batch order, divergence test) and is tested equal to the
reference up to floating-point rounding.
"""
from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import check_choice, check_int, check_positive

__all__ = ["RunStats", "Comparison", "as_split", "run_once", "run_seeds", "run_grid",
           "run_settings", "stats_from_runs", "tune_lr", "tune_and_compare", "plot_bands",
           "summary_rows", "DEFAULT_SEEDS", "LR_GRID"]

#: Five reporting seeds (the minimum the book allows for a comparison).
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
#: A log-spaced grid, half a decade apart, wide enough for SGD and Adam on the digits MLP.
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
#: A run has diverged when its loss is not finite or exceeds this times max(first loss, 1)
#: (the rule of :func:`curvlib.train.train`).
DIVERGE_FACTOR = 1e4


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
# One run
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


@torch.no_grad()
def _evaluate(model, X, y, loss_fn):
    was_training = model.training
    model.eval()
    try:
        out = model(X)
    finally:
        model.train(was_training)
    loss = float(loss_fn(out, y))
    acc = float((out.argmax(1) == y).float().mean()) if out.ndim == 2 and out.shape[1] > 1 else math.nan
    return loss, acc


def _check_common(factory, make_model, steps, batch_size):
    steps = check_int("steps", steps, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not callable(factory):
        raise TypeError(f"factory must be callable (params, lr) -> optimizer, got {factory!r}")
    if not callable(make_model):
        raise TypeError(f"make_model must be callable (seed) -> nn.Module, got {make_model!r}")
    return steps, batch_size


def run_once(factory, lr, make_model, data, *, steps, seed, batch_size=None, schedule=None,
             loss_fn=None, options=None):
    """Train ``make_model`` with ``factory(params, lr)`` for ``steps`` steps from ``seed``.

    The reference path: one run through :func:`curvlib.train.train`. ``make_model`` is
    ``seed -> nn.Module`` (e.g. ``lambda s: curvlib.models.mlp([64, 32, 10], seed=s)``) or a
    function of no argument, then called after ``torch.manual_seed(seed)``; ``seed`` also fixes
    the mini-batch order. ``schedule(step, base_lr) -> lr`` (optional) sets every step's rate.
    Returns a dict with per-step ``loss``, ``grad_norm``, ``lr`` (numpy arrays of length
    ``steps``, NaN from a divergence on), ``diverged_at`` (step or ``None``) and the final
    full-split ``train_loss``, ``val_loss``, ``val_acc`` (``inf``/``inf``/``0`` if diverged).
    ``options`` (a dict, e.g. ``{"weight_decay": 1e-3}``) overrides hyperparameters of every
    param group of the optimizer.
    """
    from .train import train

    lr = check_positive("lr", lr)
    steps, batch_size = _check_common(factory, make_model, steps, batch_size)
    loss_fn = torch.nn.functional.cross_entropy if loss_fn is None else loss_fn
    X_tr, y_tr, X_va, y_va = as_split(data)
    if batch_size is not None and batch_size >= len(X_tr):
        batch_size = None
    model = _build(make_model, seed)
    optimizer = factory(model.parameters(), lr)
    for group in optimizer.param_groups:
        group.update(options or {})
    scheduler = None if schedule is None else (lambda k: schedule(k, lr))
    res = train(model, optimizer, (X_tr, y_tr), loss_fn=loss_fn, steps=steps,
                batch_size=batch_size, seed=int(seed), scheduler=scheduler,
                diverge_factor=DIVERGE_FACTOR)
    losses, gnorms, lrs = (np.full(steps, np.nan) for _ in range(3))
    losses[res.step], gnorms[res.step], lrs[res.step] = res.loss, res.grad_norm, res.lr
    diverged_at = res.diverged_at
    if diverged_at is None:
        train_loss, _ = _evaluate(model, X_tr, y_tr, loss_fn)
        val_loss, val_acc = _evaluate(model, X_va, y_va, loss_fn)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            diverged_at = steps
    if diverged_at is not None:
        train_loss, val_loss, val_acc = math.inf, math.inf, 0.0
    return {"loss": losses, "grad_norm": gnorms, "lr": lrs, "diverged_at": diverged_at,
            "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}


# --------------------------------------------------------------------------------------
# Fast path: many runs of one elementwise optimizer in a single vectorised model
# --------------------------------------------------------------------------------------
def _elementwise_classes():
    classes = [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad,
               torch.optim.RMSprop, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam]
    try:
        from . import optim as _optim
        classes += [getattr(_optim, n) for n in ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop")
                    if hasattr(_optim, n)]
    except Exception:  # pragma: no cover - curvlib.optim missing or broken: torch's still work
        pass
    return tuple(classes)


@contextlib.contextmanager
def _one_thread():
    """Run the block with one intra-op thread, then restore the previous setting.

    The vectorised runs are many small kernels; on a shared two-core machine a second
    OpenMP thread made them 2-5x *slower* (spin-waiting for a busy core; measured with
    ``torch.set_num_threads``), and one thread also makes the numbers independent of
    ``OMP_NUM_THREADS``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _ensemble(factory, lrs, seeds, make_model, data, **kwargs):
    """:func:`_ensemble_runs` on one intra-op thread (see :func:`_one_thread`)."""
    with _one_thread():
        return _ensemble_runs(factory, lrs, seeds, make_model, data, **kwargs)


def _ensemble_runs(factory, lrs, seeds, make_model, data, *, steps, batch_size=None, schedule=None,
                   loss_fn=None, options=None):
    r"""Every run ``(lr, seed)`` for ``lr in lrs``, ``seed in seeds`` at once; ``None`` if the
    shortcut does not apply (then use :func:`run_once`).

    ``schedule`` may be one function or a list with one per entry of ``lrs``; ``options`` an
    optional list of param-group overrides, one dict per entry of ``lrs`` (e.g.
    ``{"weight_decay": 1e-3}``), so settings that differ in more than the rate share a batch.

    The runs' parameters are stacked along a new leading axis, one stacked tensor per lr
    (its own param group), and the model is evaluated for all of them with
    :func:`torch.vmap` over :func:`torch.func.functional_call`. For an optimizer whose update
    is elementwise (SGD, Adam, AdamW, RMSprop, Adagrad ...) a step on the stacked tensor is
    exactly the separate runs' steps, and each run keeps its own initial weights and
    mini-batch order, so the results equal :func:`run_once` up to floating-point rounding
    (tested). Models with buffers (batch norm) and other optimizers take the reference path.
    """
    loss_fn = torch.nn.functional.cross_entropy if loss_fn is None else loss_fn
    X_tr, y_tr, X_va, y_va = as_split(data)
    lrs, seeds = [float(v) for v in lrs], [int(s) for s in seeds]
    S, K = len(seeds), len(lrs)
    scheds = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule] * K
    options = [{}] * K if options is None else [dict(o) for o in options]
    if len(scheds) != K or len(options) != K:
        raise ValueError("schedule and options lists must have one entry per learning rate")
    models = [_build(make_model, s) for _ in lrs for s in seeds]
    template = models[0]
    if any(True for _ in template.buffers()):
        return None
    names = [n for n, _ in template.named_parameters()]
    leaves = []  # leaves[k][j]: parameter j of the S runs at lrs[k], shape (S, *shape)
    for k in range(K):
        ps = [dict(m.named_parameters()) for m in models[k * S:(k + 1) * S]]
        leaves.append([torch.stack([p[n].detach() for p in ps]).requires_grad_() for n in names])
    optimizer = factory([{**options[k], "params": leaves[k], "lr": lrs[k]} for k in range(K)],
                        lrs[0])
    if type(optimizer) not in _elementwise_classes():
        return None
    for group in optimizer.param_groups:  # torch picks the per-tensor loop on CPU by default
        if group.get("foreach", False) is None:
            group["foreach"] = True

    def member_loss(params, xb, yb):
        return loss_fn(torch.func.functional_call(template, params, (xb,)), yb)

    def stacked():
        return {n: torch.cat([leaves[k][j] for k in range(K)]) for j, n in enumerate(names)}

    n, M = len(X_tr), K * S
    full = batch_size is None or batch_size >= n
    first_loss = None
    f = torch.vmap(member_loss, in_dims=(0, None, None) if full else (0, 0, 0))
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    orders, cursor = None, n
    losses = np.full((M, steps), np.nan)
    gnorms = np.full((M, steps), np.nan)
    lr_rec = np.full((M, steps), np.nan)
    diverged_at = [None] * M
    alive = torch.ones(M, dtype=torch.bool)
    for t in range(steps):
        if full:
            xb, yb = X_tr, y_tr
        else:
            if cursor + batch_size > n:
                orders, cursor = torch.stack([torch.randperm(n, generator=g) for g in gens]), 0
            idx = orders[:, cursor:cursor + batch_size].repeat(K, 1)
            cursor += batch_size
            xb, yb = X_tr[idx], y_tr[idx]
        group_lr = [lrs[k] if scheds[k] is None else scheds[k](t, lrs[k]) for k in range(K)]
        for k, group in enumerate(optimizer.param_groups):
            group["lr"] = group_lr[k]
        optimizer.zero_grad(set_to_none=True)
        try:
            member = f(stacked(), xb, yb)
        except Exception:  # a model vmap cannot handle: reference path
            return None
        value = member.detach().double()
        if first_loss is None:
            first_loss = torch.where(torch.isfinite(value), value.abs(), 1.0).clamp(min=1.0)
        bad = ~torch.isfinite(value) | (value > DIVERGE_FACTOR * first_loss)
        for i in torch.nonzero(bad & alive).flatten().tolist():
            diverged_at[i] = t
        alive &= ~bad
        if not alive.any():
            break
        member[alive].sum().backward()
        gn = torch.cat([torch.linalg.vector_norm(torch.cat(
            [leaf.grad.detach().reshape(S, -1) for leaf in leaves[k]], dim=1), dim=1)
            for k in range(K)]).double()
        newly = alive & ~torch.isfinite(gn)
        for i in torch.nonzero(newly).flatten().tolist():
            diverged_at[i] = t
        alive &= ~newly
        a = alive.numpy()
        losses[a, t], gnorms[a, t] = value.numpy()[a], gn.numpy()[a]
        lr_rec[a, t] = np.repeat(group_lr, S)[a]
        with torch.no_grad():  # a dead run must not feed NaN into its own state
            for k in range(K):
                dead = ~alive[k * S:(k + 1) * S]
                if dead.any():
                    for leaf in leaves[k]:
                        leaf.grad[dead] = 0.0
        optimizer.step()

    results = []
    with torch.no_grad():
        P = stacked()
        ev = torch.vmap(lambda p, x: torch.func.functional_call(template, p, (x,)),
                        in_dims=(0, None))
        out_tr, out_va = ev(P, X_tr), ev(P, X_va)
    for i in range(M):
        r = {"loss": losses[i], "grad_norm": gnorms[i], "lr": lr_rec[i],
             "diverged_at": diverged_at[i]}
        if diverged_at[i] is None:
            tl = float(loss_fn(out_tr[i], y_tr))
            vl = float(loss_fn(out_va[i], y_va))
            va = float((out_va[i].argmax(1) == y_va).float().mean())
            if not (math.isfinite(tl) and math.isfinite(vl)):
                r["diverged_at"] = steps
        if r["diverged_at"] is not None:
            tl, vl, va = math.inf, math.inf, 0.0
        r.update(train_loss=tl, val_loss=vl, val_acc=va)
        results.append(r)
    return results


def _runs(factory, lrs, seeds, make_model, data, *, steps, batch_size, schedule, loss_fn, fast,
          options=None):
    """Results of every ``(lr, seed)`` pair, lr-major; fast path first when allowed."""
    for lr in lrs:
        check_positive("lr", lr)
    steps, batch_size = _check_common(factory, make_model, steps, batch_size)
    K = len(lrs)
    scheds = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule] * K
    opts = [{}] * K if options is None else list(options)
    if len(scheds) != K or len(opts) != K:
        raise ValueError("schedule and options lists must have one entry per learning rate")
    for sc in scheds:
        if sc is not None and not callable(sc):
            raise TypeError("schedule must be None or a (step, base_lr) -> lr function")
    if fast:
        out = _ensemble(factory, lrs, seeds, make_model, data, steps=steps,
                        batch_size=batch_size, schedule=scheds, loss_fn=loss_fn, options=opts)
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

    ``loss`` and ``grad_norm`` are ``(seeds, steps)`` arrays (NaN after a divergence);
    ``train_loss``, ``val_loss``, ``val_acc`` hold one final value per seed.
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

    @property
    def steps(self):
        return np.arange(self.loss.shape[1])

    def _per_step(self, fn):
        with np.errstate(all="ignore"):
            import warnings
            with warnings.catch_warnings():
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

    def steps_to(self, target):
        """Per seed, the first step whose loss is <= ``target`` (``inf`` if never)."""
        hit = self.loss <= target
        return np.array([float(np.argmax(h)) if h.any() else math.inf for h in hit])


def run_seeds(factory, lr, make_model, data, *, steps, seeds=DEFAULT_SEEDS, batch_size=None,
              schedule=None, loss_fn=None, name="", fast=True):
    """:func:`run_once` from each seed in ``seeds``; returns a :class:`RunStats`.

    ``fast=True`` trains all seeds at once in one vectorised model when the optimizer is
    elementwise and the model has no buffers (same numbers up to rounding); ``False`` forces
    the one-run-at-a-time reference loop.
    """
    seeds = tuple(check_int("seeds", s) for s in seeds)
    if len(seeds) == 0:
        raise ValueError("seeds must not be empty")
    lr = check_positive("lr", lr)
    runs = _runs(factory, [lr], seeds, make_model, data, steps=steps, batch_size=batch_size,
                 schedule=schedule, loss_fn=loss_fn, fast=fast)
    return stats_from_runs(runs, lr, seeds, name)


def run_grid(factory, lrs, make_model, data, *, steps, seeds=DEFAULT_SEEDS, batch_size=None,
             schedule=None, loss_fn=None, name="", fast=True):
    """Every learning rate of ``lrs`` from every seed: ``{lr: RunStats}`` (one vectorised batch
    on the fast path). The building block of learning-rate sweeps."""
    seeds = tuple(check_int("seeds", s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
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
    settings = [dict(s) for s in settings]
    if not settings or any("lr" not in s for s in settings):
        raise ValueError("settings must be a non-empty list of dicts, each with an 'lr'")
    seeds = tuple(check_int("seeds", s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
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
    return RunStats(name=name, lr=float(lr), seeds=tuple(seeds),
                    loss=np.stack([r["loss"] for r in runs]),
                    grad_norm=np.stack([r["grad_norm"] for r in runs]),
                    train_loss=np.array([r["train_loss"] for r in runs]),
                    val_loss=np.array([r["val_loss"] for r in runs]),
                    val_acc=np.array([r["val_acc"] for r in runs]),
                    diverged=[(s, r["diverged_at"]) for s, r in zip(seeds, runs)
                              if r["diverged_at"] is not None])


# --------------------------------------------------------------------------------------
# Tuning and the comparison
# --------------------------------------------------------------------------------------
def _check_grid(lr_grid):
    try:
        grid = sorted(check_positive("lr_grid", v) for v in lr_grid)
    except TypeError:
        raise TypeError(f"lr_grid must be a sequence of positive numbers, got {lr_grid!r}") from None
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
    tune_seeds = tuple(check_int("tune_seeds", s) for s in tune_seeds)
    if not tune_seeds:
        raise ValueError("tune_seeds must not be empty")
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
    the :class:`RunStats` of the chosen rate over the reporting seeds.
    """
    select: str
    lr_grid: tuple
    scores: dict
    best_lr: dict
    at_edge: dict
    runs: dict

    def __getitem__(self, name):
        return self.runs[name]

    @property
    def names(self):
        return list(self.runs)


def tune_and_compare(optimizers, lr_grid, make_model, data, *, steps, seeds=DEFAULT_SEEDS,
                     batch_size=None, select="val_loss", tune_seeds=(100,), schedule=None,
                     loss_fn=None, min_seeds=5, fast=True):
    """Tune each optimizer's learning rate on ``lr_grid``, then train it from every seed.

    Parameters
    ----------
    optimizers : dict name -> ``factory(params, lr) -> torch.optim.Optimizer``
    lr_grid : the learning rates every optimizer is tuned over (the same for all).
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
    """
    if not isinstance(optimizers, dict) or not optimizers:
        raise TypeError("optimizers must be a non-empty dict name -> factory(params, lr)")
    for name, f in optimizers.items():
        if not callable(f):
            raise TypeError(f"optimizers[{name!r}] must be callable (params, lr) -> optimizer")
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
                               loss_fn=loss_fn, name=name, fast=fast)
    return Comparison(select=select, lr_grid=tuple(grid), scores=scores, best_lr=best_lr,
                      at_edge=at_edge, runs=runs)


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
    runs = _as_runs(result)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    for i, r in enumerate(runs):
        rr = r if quantity == "loss" else RunStats(r.name, r.lr, r.seeds, r.grad_norm,
                                                    r.grad_norm, r.train_loss, r.val_loss,
                                                    r.val_acc, r.diverged)
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
    g = lambda v: f"{v:.{digits}g}"
    rows = []
    for r in _as_runs(result):
        row = {"name": r.name, "lr": f"{r.lr:g}", "seeds": len(r.seeds)}
        for metric in ("train_loss", "val_loss", "val_acc"):
            m, s, lo, hi = r.final(metric)
            row[metric] = f"{g(m)} ± {g(s)} [{g(lo)}, {g(hi)}]"
        row["diverged"] = len(r.diverged)
        rows.append(row)
    return rows
