"""A short training loop that records what a chapter plots and stops cleanly when a run diverges.

:func:`train` runs ``steps`` optimizer updates and returns a :class:`TrainResult` with, per
recorded step, the loss and gradient norm at the parameters *before* the update, the
learning rate the update used, and the wall time since the start. Every update goes through a
closure, so first-order optimizers, L-BFGS-type optimizers that re-evaluate the loss, and
second-order optimizers that differentiate the closure's loss themselves
(:class:`curvlib.optim.Newton`) run the same way.

When the loss diverges (:mod:`curvlib.runs`: not finite, or past ``diverge_factor``
times its starting value), training stops with ``status = "diverged at step k"``: no
exception, and the recorded curves hold only finite numbers (the diverging step itself is not
recorded).

:func:`train` is the readable reference loop. :func:`train_stacked` is its fast path, as
torch.optim keeps a multi-tensor path beside its single-tensor one: many seeds and learning
rates of one architecture at once, in one vectorised model (:class:`StackedModels`). Both use
the same pieces (:func:`minibatches`, :func:`loss_function`, the divergence rule of
:mod:`curvlib.runs`), and the tests hold them equal up to rounding. :mod:`curvlib.compare`
picks the fast path whenever it applies.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_flag, check_int, check_nonnegative, check_positive
from .runs import DIVERGE_FACTOR, divergence_limit, is_diverged

__all__ = ["train", "evaluate", "accuracy", "loss_and_accuracy", "loss_function", "minibatches",
           "train_stacked", "StackedModels", "TrainResult", "LOSSES"]


def _bce(out, y):
    return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y.to(out.dtype))


def _mse(out, y):
    if out.shape != y.shape and out.shape[-1] == 1:
        out = out.reshape(y.shape)
    return F.mse_loss(out, y.to(out.dtype))


#: name -> ``loss(output, target)``. ``cross_entropy`` takes integer labels and class logits,
#: ``bce`` one logit per example and 0/1 labels, ``mse`` real targets.
LOSSES = {"cross_entropy": F.cross_entropy, "bce": _bce, "mse": _mse}


def loss_function(loss_fn):
    """The callable ``(output, target) -> loss`` for a name of :data:`LOSSES` or a callable."""
    if isinstance(loss_fn, str):
        if loss_fn not in LOSSES:
            raise ValueError(f"loss_fn must be one of {sorted(LOSSES)} or a callable, got {loss_fn!r}")
        return LOSSES[loss_fn]
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable or a name, got {loss_fn!r}")
    return loss_fn


def minibatches(n, batch_size, seed):
    """Endless minibatch indices: each epoch a fresh permutation of ``range(n)`` from a generator
    seeded by ``seed``, cut into ``batch_size`` pieces (an incomplete tail is dropped).

    The order depends only on ``(n, batch_size, seed)``, so runs from the same seed see the
    same batches whichever loop trains them.
    """
    n = check_int("n", n, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}), got {batch_size}")
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))

    def batches():
        while True:
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n - batch_size + 1, batch_size):
                yield perm[start:start + batch_size]

    return batches()


@dataclass
class TrainResult:
    """Curves of one run. ``step[i]`` is the update whose starting loss is ``loss[i]``."""
    step: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray
    time: np.ndarray  # seconds since the start, after the update
    status: str = "completed"
    diverged_at: int | None = None
    n_steps: int = 0  # updates performed
    eval_step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    eval_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_accuracy: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def diverged(self):
        return self.diverged_at is not None

    @property
    def final_loss(self):
        """The last recorded training loss (``None`` if nothing was recorded)."""
        return float(self.loss[-1]) if len(self.loss) else None

    def __repr__(self):
        last = f", final loss {self.final_loss:.4g}" if len(self.loss) else ""
        return f"TrainResult({self.status}, {self.n_steps} steps{last})"


def _xy(data, name):
    if hasattr(data, "X_train"):  # a curvlib.data.Split
        data = (data.X_train, data.y_train) if name == "data" else (data.X_test, data.y_test)
    try:
        X, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be (X, y) tensors or a curvlib.data.Split") from None
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"{name} must hold torch tensors, got {type(X).__name__}, {type(y).__name__}")
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"{name}: X and y must have the same, non-zero length, got {len(X)} and {len(y)}")
    return X, y


def _grad_norm(params):
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def accuracy(out, y):
    """Fraction of correct predictions: one output column (or a 1-D output) is a binary logit
    (class 1 when positive), several columns are read by their argmax."""
    pred = (out.reshape(-1) > 0).long() if out.ndim == 1 or out.shape[-1] == 1 else out.argmax(-1)
    return float((pred == y.reshape(-1).long()).double().mean())


def loss_and_accuracy(model, X, y, loss_fn="cross_entropy"):
    """``(loss, accuracy)`` of ``model`` on ``(X, y)``, in eval mode and without gradients
    (the mode is restored after). ``loss_fn`` as in :func:`train`; ``None`` skips the loss."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X, y = _xy((X, y), "X, y")
    loss = None if loss_fn is None else loss_function(loss_fn)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(X)
    finally:
        model.train(was_training)
    return (None if loss is None else float(loss(out, y))), accuracy(out, y)


def evaluate(model, X, y):
    """Classification accuracy of ``model`` on ``(X, y)`` (see :func:`accuracy`), in eval mode
    and without gradients."""
    return loss_and_accuracy(model, X, y, loss_fn=None)[1]


def _as_optimizer(optimizer, model):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or a factory, got {optimizer!r}")
    optimizer = optimizer(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer factory must return a torch.optim.Optimizer")
    return optimizer


def train(model, optimizer, data, loss_fn="cross_entropy", steps=100, batch_size=None, seed=0,
          scheduler=None, record_every=1, *, eval_data=None, eval_every=None,
          diverge_factor=DIVERGE_FACTOR, backward_in_closure=None):
    """Train ``model`` for ``steps`` updates and record its curves.

    Parameters
    ----------
    optimizer : a ``torch.optim.Optimizer`` over ``model``'s parameters, or a factory
        ``(model, lr=None) -> optimizer`` such as ``curvlib.optim.factory("adam", lr=1e-3)``,
        called with the model alone. ``optimizer.step`` is always given a closure, so
        L-BFGS works.
    data : ``(X, y)`` tensors or a :class:`curvlib.data.Split` (its training part).
    loss_fn : ``"cross_entropy"``, ``"bce"``, ``"mse"`` or a callable ``(output, y) -> loss``.
    batch_size : ``None`` for full batch; otherwise :func:`minibatches` seeded by ``seed``.
    scheduler : a torch LR scheduler (stepped after every update; ``ReduceLROnPlateau`` gets
        the loss) or a function ``step -> lr`` such as
        ``functools.partial(curvlib.schedules.cosine, base_lr=0.1, total_steps=steps)``,
        which sets every group's lr before each update.
    record_every : record every k-th update (and the last one); the gradient norm is only
        computed on recorded updates.
    eval_data, eval_every : record loss and accuracy on ``eval_data`` (``(X, y)`` or a Split's
        test part) after every ``eval_every`` updates, before the first and after the last.
    diverge_factor : the factor of the divergence rule (:mod:`curvlib.runs`): stop when
        the loss exceeds it times ``max(initial loss, 1)``; ``None`` stops only on a non-finite
        loss or gradient.
    backward_in_closure : whether the closure calls ``backward()``. ``None`` (default) decides
        from the optimizer: ``False`` for optimizers that differentiate the returned loss
        themselves (any class with ``closure_backward = False``, such as curvlib's ``Newton``),
        whose gradient is then read from ``p.grad`` after the step.

    Randomness (minibatches, dropout) comes from ``seed`` inside a forked generator: the
    global torch random state is left as it was.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    optimizer = _as_optimizer(optimizer, model)
    X, y = _xy(data, "data")
    loss = loss_function(loss_fn)
    steps = check_int("steps", steps, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    batches = None if batch_size is None else minibatches(len(X), batch_size, seed)
    record_every = check_int("record_every", record_every, minimum=1)
    if diverge_factor is not None:
        diverge_factor = check_positive("diverge_factor", diverge_factor)
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every, minimum=1)
        if eval_data is None:
            raise ValueError("eval_every needs eval_data")
        Xe, ye = _xy(eval_data, "eval_data")
    torch_scheduler = scheduler is not None and hasattr(scheduler, "step")
    if scheduler is not None and not torch_scheduler and not callable(scheduler):
        raise TypeError(f"scheduler must be a torch LR scheduler or a function step -> lr, got {scheduler!r}")
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if backward_in_closure is None:
        backward_in_closure = bool(getattr(optimizer, "closure_backward", True))
    else:
        backward_in_closure = check_flag("backward_in_closure", backward_in_closure)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    rec = {k: [] for k in ("step", "loss", "grad_norm", "lr", "time")}
    ev = {k: [] for k in ("eval_step", "eval_loss", "eval_accuracy")}
    status, diverged_at, done, limit = "completed", None, 0, math.inf

    def record_eval(u):
        value, acc = loss_and_accuracy(model, Xe, ye, loss)
        if math.isfinite(value):  # a blown-up update shows as divergence at the next step
            ev["eval_step"].append(u)
            ev["eval_loss"].append(value)
            ev["eval_accuracy"].append(acc)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        if eval_every is not None:
            record_eval(0)
        start = time.perf_counter()
        for k in range(steps):
            if batches is None:
                xb, yb = X, y
            else:
                idx = next(batches)
                xb, yb = X[idx], y[idx]
            if scheduler is not None and not torch_scheduler:
                lr_k = check_nonnegative("scheduler(step)", scheduler(k))
                for g in optimizer.param_groups:
                    g["lr"] = lr_k
            lr_used = float(optimizer.param_groups[0]["lr"])
            recording = k % record_every == 0 or k == steps - 1
            first = {}

            def closure():
                optimizer.zero_grad()
                with torch.enable_grad():
                    value = loss(model(xb), yb)
                    if backward_in_closure:
                        value.backward()
                if not first:
                    first["loss"] = float(value.detach())
                    if recording and backward_in_closure:
                        first["grad_norm"] = _grad_norm(params)
                return value

            optimizer.step(closure)
            done = k + 1
            if recording and not backward_in_closure:  # the optimizer left the gradient in p.grad
                first["grad_norm"] = _grad_norm(params)
            value, gnorm = first["loss"], first.get("grad_norm", 0.0)
            if k == 0 and diverge_factor is not None:
                limit = float(divergence_limit(value, diverge_factor))
            if is_diverged(value, limit) or not math.isfinite(gnorm):
                status, diverged_at = f"diverged at step {k}", k
                break
            if recording:
                rec["step"].append(k)
                rec["loss"].append(value)
                rec["grad_norm"].append(gnorm)
                rec["lr"].append(lr_used)
                rec["time"].append(time.perf_counter() - start)
            if torch_scheduler:
                scheduler.step(value) if plateau else scheduler.step()
            if eval_every is not None and (done % eval_every == 0 or done == steps):
                record_eval(done)

    return TrainResult(step=np.asarray(rec["step"], dtype=np.int64),
                       loss=np.asarray(rec["loss"], dtype=np.float64),
                       grad_norm=np.asarray(rec["grad_norm"], dtype=np.float64),
                       lr=np.asarray(rec["lr"], dtype=np.float64),
                       time=np.asarray(rec["time"], dtype=np.float64),
                       status=status, diverged_at=diverged_at, n_steps=done,
                       eval_step=np.asarray(ev["eval_step"], dtype=np.int64),
                       eval_loss=np.asarray(ev["eval_loss"], dtype=np.float64),
                       eval_accuracy=np.asarray(ev["eval_accuracy"], dtype=np.float64))


# --------------------------------------------------------------------------------------
# The fast path: many runs of one architecture at once
# --------------------------------------------------------------------------------------
class StackedModels:
    r"""Copies of one architecture as one vectorised model.

    Parameter ``j`` of every copy is stacked along a new leading axis (one stacked tensor per
    group of copies, so groups can sit in different param groups of one optimizer), and the
    forward pass of all copies is one call of :func:`torch.vmap` over
    :func:`torch.func.functional_call`. An elementwise optimizer step on a stacked tensor is
    exactly the copies' separate steps.

    ``groups`` splits ``models`` into that many equal consecutive groups. A model with buffers
    (batch norm) is refused unless ``batch_statistics=True``: then batch norm normalises with
    the statistics of the batch and keeps no running averages.
    """

    def __init__(self, models, groups=1, *, batch_statistics=False):
        models = list(models)
        groups = check_int("groups", groups, minimum=1)
        batch_statistics = check_flag("batch_statistics", batch_statistics)
        if not models or len(models) % groups:
            raise ValueError(f"models must split into {groups} equal non-empty groups, "
                             f"got {len(models)} models")
        self.template = models[0]
        self._buffers = {n: None for n, _ in self.template.named_buffers()}
        if self._buffers and not batch_statistics:
            raise ValueError("models have buffers (batch norm): pass batch_statistics=True to "
                             "normalise with batch statistics")
        self.names = [n for n, _ in self.template.named_parameters()]
        size = len(models) // groups
        self.groups = []  # groups[k][j]: parameter j of the models of group k, stacked
        for k in range(groups):
            ps = [dict(m.named_parameters()) for m in models[k * size:(k + 1) * size]]
            self.groups.append([torch.stack([p[n].detach() for p in ps]).requires_grad_()
                                for n in self.names])
        self.group_size = size

    def __len__(self):
        return len(self.groups) * self.group_size

    def params(self):
        """``{name: stacked tensor over every copy}``."""
        if len(self.groups) == 1:
            return dict(zip(self.names, self.groups[0]))
        return {n: torch.cat([g[j] for g in self.groups]) for j, n in enumerate(self.names)}

    def _call(self, params, x):
        return torch.func.functional_call(self.template, {**params, **self._buffers}, (x,))

    def outputs(self, X, per_copy=False):
        """Every copy's output on ``X`` (shared), or on ``X[i]`` for copy ``i`` (``per_copy``)."""
        per_copy = check_flag("per_copy", per_copy)
        return torch.vmap(self._call, in_dims=(0, 0 if per_copy else None))(self.params(), X)

    def losses(self, X, y, loss_fn, per_copy=False):
        """Every copy's loss, shape ``(copies,)``; ``per_copy`` as in :meth:`outputs`."""
        per_copy = check_flag("per_copy", per_copy)
        member = lambda p, x, t: loss_fn(self._call(p, x), t)  # noqa: E731
        dims = (0, 0, 0) if per_copy else (0, None, None)
        return torch.vmap(member, in_dims=dims)(self.params(), X, y)

    def grad_norms(self):
        """Every copy's gradient norm, float64, shape ``(copies,)``."""
        return torch.cat([torch.linalg.vector_norm(torch.cat(
            [leaf.grad.detach().reshape(self.group_size, -1) for leaf in g], dim=1), dim=1)
            for g in self.groups]).double()

    def copy(self, i):
        """``{name: tensor}``: the parameters of copy ``i``, detached."""
        k, r = divmod(i, self.group_size)
        return {n: leaf[r].detach().clone() for n, leaf in zip(self.names, self.groups[k])}


def train_stacked(models, factory, data, *, lrs, seeds, steps, batch_size=None, schedules=None,
                  options=None, loss_fn="cross_entropy", diverge_factor=DIVERGE_FACTOR):
    r"""The fast path of :func:`train`: ``len(lrs) * len(seeds)`` runs in one vectorised model.

    ``models[k * S + i]`` trains at ``lrs[k]`` from ``seeds[i]`` (``S = len(seeds)``), with
    the minibatch order :func:`minibatches` gives that seed, ``schedules[k]`` (a
    ``(step, base_lr) -> lr`` function or ``None``) and the param-group overrides
    ``options[k]``. The optimizer is ``factory(param_groups, lrs[0])`` with one param group
    per learning rate, so ``factory`` must be elementwise (``factory.elementwise``, as the
    factories of :func:`curvlib.optim.factory` for first-order methods say): then each
    run's steps are exactly its own. A run that diverges (:mod:`curvlib.runs`) stops
    recording and its gradients are zeroed; the others go on.

    Returns ``(results, stack)``: one :class:`TrainResult` per run, as :func:`train` returns
    it (``time`` is the wall time of the whole batch), and the :class:`StackedModels` with
    the final parameters. Returns ``None`` when the shortcut does not apply (``factory`` not
    elementwise, models with buffers, a model :func:`torch.vmap` cannot run); then train the
    runs one by one with :func:`train`. The tests hold the two paths equal up to rounding.
    """
    if not getattr(factory, "elementwise", False):
        return None
    X, y = _xy(data, "data")
    loss = loss_function(loss_fn)
    steps = check_int("steps", steps, minimum=0)
    lrs, seeds = [float(v) for v in lrs], [int(s) for s in seeds]
    K, S = len(lrs), len(seeds)
    schedules = [None] * K if schedules is None else list(schedules)
    options = [{}] * K if options is None else [dict(o) for o in options]
    if len(schedules) != K or len(options) != K or len(models) != K * S:
        raise ValueError("schedules, options and models must match lrs and seeds")
    if any(True for _ in models[0].buffers()):
        return None
    stack = StackedModels(models, K)
    optimizer = factory([{**options[k], "params": stack.groups[k], "lr": lrs[k]}
                         for k in range(K)], lrs[0])
    full = batch_size is None or batch_size >= len(X)
    orders = None if full else [minibatches(len(X), batch_size, s) for s in seeds]
    M = K * S
    rec = {key: np.full((M, steps), np.nan) for key in ("loss", "grad_norm", "lr", "time")}
    diverged_at = [None] * M
    alive = np.ones(M, dtype=bool)
    limit = np.full(M, np.inf)
    start = time.perf_counter()
    for t in range(steps):
        if full:
            xb, yb = X, y
        else:
            idx = torch.stack([next(o) for o in orders]).repeat(K, 1)
            xb, yb = X[idx], y[idx]
        group_lr = [lrs[k] if schedules[k] is None else schedules[k](t, lrs[k]) for k in range(K)]
        for k, group in enumerate(optimizer.param_groups):
            group["lr"] = group_lr[k]
        optimizer.zero_grad(set_to_none=True)
        try:
            member = stack.losses(xb, yb, loss, per_copy=not full)
        except Exception:  # a model vmap cannot handle: the reference loop
            return None
        value = member.detach().double().numpy()
        if t == 0 and diverge_factor is not None:
            limit = divergence_limit(value, diverge_factor)
        bad = is_diverged(value, limit) & alive
        alive &= ~bad
        if alive.any():
            member[torch.from_numpy(alive)].sum().backward()
            gn = stack.grad_norms().numpy()
            bad |= alive & ~np.isfinite(gn)
            alive &= np.isfinite(gn)
        for i in np.flatnonzero(bad):
            diverged_at[i] = t
        if not alive.any():
            break
        rec["loss"][alive, t], rec["grad_norm"][alive, t] = value[alive], gn[alive]
        rec["lr"][alive, t] = np.repeat(group_lr, S)[alive]
        with torch.no_grad():  # a dead run must not feed NaN into its own state
            for k, g in enumerate(stack.groups):
                dead = torch.from_numpy(~alive[k * S:(k + 1) * S])
                if dead.any():
                    for leaf in g:
                        leaf.grad[dead] = 0.0
        optimizer.step()
        rec["time"][alive, t] = time.perf_counter() - start
    results = []
    for i in range(M):
        n = steps if diverged_at[i] is None else diverged_at[i]
        results.append(TrainResult(
            step=np.arange(n, dtype=np.int64), loss=rec["loss"][i, :n],
            grad_norm=rec["grad_norm"][i, :n], lr=rec["lr"][i, :n], time=rec["time"][i, :n],
            status="completed" if diverged_at[i] is None else f"diverged at step {n}",
            diverged_at=diverged_at[i], n_steps=steps if diverged_at[i] is None else n + 1))
    return results, stack
