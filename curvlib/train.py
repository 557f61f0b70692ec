"""A short training loop that records what a chapter plots and stops cleanly when a run diverges.

:func:`train` runs ``steps`` optimizer updates and returns a :class:`TrainResult` with, per
recorded step, the loss and gradient norm at the parameters *before* the update, the
learning rate the update used, and the wall time since the start. Every update goes through a
closure, so first-order optimizers, L-BFGS-type optimizers that re-evaluate the loss, and
second-order optimizers that differentiate the closure's loss themselves
(:class:`curvlib.quasi_newton.Newton`) run the same way.

When the loss becomes non-finite or grows past ``diverge_factor`` times its starting value,
training stops with ``status = "diverged at step k"``: no exception, and the recorded curves
hold only finite numbers (the diverging step itself is not recorded).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_int, check_nonnegative, check_positive

__all__ = ["train", "evaluate", "TrainResult", "LOSSES"]


def _bce(out, y):
    return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y.to(out.dtype))


def _mse(out, y):
    if out.shape != y.shape and out.shape[-1] == 1:
        out = out.reshape(y.shape)
    return F.mse_loss(out, y.to(out.dtype))


#: name -> loss(output, target): ``cross_entropy`` takes integer labels and class logits,
#: ``bce`` one logit per example and 0/1 labels, ``mse`` real targets.
LOSSES = {"cross_entropy": F.cross_entropy, "bce": _bce, "mse": _mse}


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


def _loss_fn(loss_fn):
    if isinstance(loss_fn, str):
        if loss_fn not in LOSSES:
            raise ValueError(f"loss_fn must be one of {sorted(LOSSES)} or a callable, got {loss_fn!r}")
        return LOSSES[loss_fn]
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable or a name, got {loss_fn!r}")
    return loss_fn


def _grad_norm(params):
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _closure_calls_backward(optimizer):
    """Whether the closure should call ``backward()``: not for optimizers that differentiate the
    loss themselves (``closure_backward = False`` on the class, or curvlib's Newton)."""
    flag = getattr(optimizer, "closure_backward", None)
    if flag is not None:
        return bool(flag)
    try:
        from .quasi_newton import Newton
    except ImportError:  # pragma: no cover
        return True
    return not isinstance(optimizer, Newton)


def _predictions(out):
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) > 0).long()
    return out.argmax(dim=-1)


def evaluate(model, X, y):
    """Classification accuracy of ``model`` on ``(X, y)``, in eval mode and without gradients.

    One output column (or a 1-D output) is read as a binary logit (class 1 when positive);
    several columns by their argmax.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X, y = _xy((X, y), "X, y")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = _predictions(model(X))
    finally:
        model.train(was_training)
    return float((pred == y.reshape(-1).long()).double().mean())


def _eval_loss(model, X, y, loss):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(loss(model(X), y))
    finally:
        model.train(was_training)


def train(model, optimizer, data, loss_fn="cross_entropy", steps=100, batch_size=None, seed=0,
          scheduler=None, record_every=1, *, eval_data=None, eval_every=None, diverge_factor=1e4,
          backward_in_closure=None):
    """Train ``model`` for ``steps`` updates and record its curves.

    Parameters
    ----------
    optimizer : a ``torch.optim.Optimizer`` over ``model``'s parameters, or a factory
        ``params -> optimizer``. ``optimizer.step`` is always given a closure, so L-BFGS works.
    data : ``(X, y)`` tensors or a :class:`curvlib.data.Split` (its training part).
    loss_fn : ``"cross_entropy"``, ``"bce"``, ``"mse"`` or a callable ``(output, y) -> loss``.
    batch_size : ``None`` for full batch; otherwise minibatches drawn without replacement from a
        fresh permutation each epoch (incomplete tail dropped), seeded by ``seed``.
    scheduler : a torch LR scheduler (stepped after every update; ``ReduceLROnPlateau`` gets
        the loss) or a function ``step -> lr`` such as
        ``functools.partial(curvlib.schedules.cosine, base_lr=0.1, total_steps=steps)``,
        which sets every group's lr before each update.
    record_every : record every k-th update (and the last one); the gradient norm is only
        computed on recorded updates.
    eval_data, eval_every : record loss and accuracy on ``eval_data`` (``(X, y)`` or a Split's
        test part) after every ``eval_every`` updates, before the first and after the last.
    diverge_factor : stop when the loss exceeds this times ``max(initial loss, 1)``; ``None``
        stops only on a non-finite loss or gradient.
    backward_in_closure : whether the closure calls ``backward()``. ``None`` (default) decides
        from the optimizer: ``False`` for optimizers that differentiate the returned loss
        themselves (curvlib's ``Newton``, or any class with ``closure_backward = False``),
        whose gradient is then read from ``p.grad`` after the step.

    Randomness (minibatches, dropout) comes from ``seed`` inside a forked generator: the
    global torch random state is left as it was.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        if not callable(optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or a factory, got {optimizer!r}")
        optimizer = optimizer(model.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("optimizer factory must return a torch.optim.Optimizer")
    X, y = _xy(data, "data")
    loss = _loss_fn(loss_fn)
    steps = check_int("steps", steps, minimum=0)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > len(X):
            raise ValueError(f"batch_size must be <= the number of examples ({len(X)}), got {batch_size}")
    seed = check_int("seed", seed, minimum=0)
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
        backward_in_closure = _closure_calls_backward(optimizer)
    elif not isinstance(backward_in_closure, bool):
        raise TypeError(f"backward_in_closure must be None, True or False, got {backward_in_closure!r}")
    params = [p for g in optimizer.param_groups for p in g["params"]]

    rec = {k: [] for k in ("step", "loss", "grad_norm", "lr", "time")}
    ev = {k: [] for k in ("eval_step", "eval_loss", "eval_accuracy")}
    status, diverged_at, done, loss0 = "completed", None, 0, None

    def record_eval(u):
        value = _eval_loss(model, Xe, ye, loss)
        if math.isfinite(value):  # a blown-up update shows as divergence at the next step
            ev["eval_step"].append(u)
            ev["eval_loss"].append(value)
            ev["eval_accuracy"].append(evaluate(model, Xe, ye))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        perm, pos = None, 0
        model.train()
        if eval_every is not None:
            record_eval(0)
        start = time.perf_counter()
        for k in range(steps):
            if batch_size is None:
                xb, yb = X, y
            else:
                if perm is None or pos + batch_size > len(X):
                    perm, pos = torch.randperm(len(X), generator=gen), 0
                idx = perm[pos:pos + batch_size]
                pos += batch_size
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
            if loss0 is None:
                loss0 = value if math.isfinite(value) else 1.0
            limit = math.inf if diverge_factor is None else diverge_factor * max(abs(loss0), 1.0)
            if not (math.isfinite(value) and math.isfinite(gnorm)) or value > limit:
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
