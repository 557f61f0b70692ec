r"""Learning-rate schedules as plain functions of the step.

Every schedule has the form ``schedule(step, *, base_lr, ...) -> lr``: a pure function of the
integer step (counted from 0, the learning rate used by the first update), with no state and
no optimizer attached. That makes a schedule easy to plot (:func:`lr_curve`), to reason
about, and to hand to torch: :func:`as_multiplier` turns one into the function
``torch.optim.lr_scheduler.LambdaLR`` expects. Bind the hyperparameters once with
:func:`functools.partial` when a one-argument ``step -> lr`` function is wanted.

Each schedule equals, at every step, the torch scheduler named in its docstring (tested in
``tests/test_schedules.py``; torch computes most of them recursively, so "equal" means
equal to rounding, about :math:`10^{-15}` relative).

Where a schedule ends (``total_steps``) it holds its final value; torch's
``CosineAnnealingLR`` instead keeps following the cosine and rises again after ``T_max``.
"""
from __future__ import annotations

import math

from ._checks import check_choice, check_int, check_nonnegative, check_positive, check_unit_interval

__all__ = ["constant", "step_decay", "multistep", "cosine", "linear_warmup", "linear_decay",
           "warmup_cosine", "as_multiplier", "lr_curve", "SCHEDULES"]


def _step(step):
    return check_int("step", step, minimum=0)


def _min_lr(min_lr, base_lr):
    min_lr = check_nonnegative("min_lr", min_lr)
    if min_lr > base_lr:
        raise ValueError(f"min_lr must be <= base_lr ({base_lr}), got {min_lr}")
    return min_lr


def constant(step, *, base_lr):
    r"""The same learning rate at every step: :math:`\eta_t = \eta_0`.

    torch twin: no scheduler (or ``ConstantLR`` with ``factor=1``).
    """
    _step(step)
    return check_positive("base_lr", base_lr)


def step_decay(step, *, base_lr, step_size, gamma=0.1):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    .. math:: \eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}

    The classic "divide by 10 every 30 epochs" schedule of He et al. (2016), "Deep Residual
    Learning for Image Recognition", CVPR. torch twin: ``StepLR(step_size, gamma)``.
    """
    step = _step(step)
    base_lr = check_positive("base_lr", base_lr)
    step_size = check_int("step_size", step_size, minimum=1)
    gamma = check_positive("gamma", gamma)
    return base_lr * gamma ** (step // step_size)


def multistep(step, *, base_lr, milestones, gamma=0.1):
    r"""Multiply the learning rate by ``gamma`` at each milestone.

    .. math:: \eta_t = \eta_0\,\gamma^{\#\{m \in \text{milestones}:\ m \le t\}}

    torch twin: ``MultiStepLR(milestones, gamma)``.
    """
    step = _step(step)
    base_lr = check_positive("base_lr", base_lr)
    gamma = check_positive("gamma", gamma)
    try:
        milestones = [check_int("milestones", m, minimum=1) for m in milestones]
    except TypeError:
        raise TypeError(f"milestones must be a sequence of positive integers, got {milestones!r}")
    return base_lr * gamma ** sum(m <= step for m in milestones)


def cosine(step, *, base_lr, total_steps, min_lr=0.0):
    r"""Cosine annealing from ``base_lr`` down to ``min_lr`` over ``total_steps`` steps.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})
                 \bigl(1 + \cos(\pi\, \min(t, T)/T)\bigr)

    Loshchilov & Hutter (2017), "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR
    (one cycle, no restart). Holds ``min_lr`` after step ``T``. torch twin:
    ``CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)`` for steps ``0..T``.
    """
    step = _step(step)
    base_lr = check_positive("base_lr", base_lr)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    min_lr = _min_lr(min_lr, base_lr)
    t = min(step, total_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t / total_steps)) / 2


def linear_warmup(step, *, base_lr, warmup_steps, start_factor=0.0):
    r"""Linear warmup from ``start_factor * base_lr`` to ``base_lr``, then constant.

    .. math:: \eta_t = \eta_0\,\bigl(f_0 + (1-f_0)\min(t, W)/W\bigr)

    Goyal et al. (2017), "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
    arXiv:1706.02677: ramp the learning rate up over the first epochs when it has been
    scaled with a large batch. ``warmup_steps=0`` means no warmup. torch twin:
    ``LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps)`` (torch requires
    ``start_factor > 0``; ``start_factor=0`` makes the first update a zero step).
    """
    step = _step(step)
    base_lr = check_positive("base_lr", base_lr)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    start_factor = check_unit_interval("start_factor", start_factor, closed_right=True)
    if warmup_steps == 0:
        return base_lr
    frac = min(step, warmup_steps) / warmup_steps
    return base_lr * (start_factor + (1 - start_factor) * frac)


def linear_decay(step, *, base_lr, total_steps, end_factor=0.0):
    r"""Linear decay from ``base_lr`` to ``end_factor * base_lr`` over ``total_steps``.

    .. math:: \eta_t = \eta_0\,\bigl(1 - (1-f_1)\min(t, T)/T\bigr)

    torch twin: ``LinearLR(start_factor=1.0, end_factor, total_iters=total_steps)``.
    """
    step = _step(step)
    base_lr = check_positive("base_lr", base_lr)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    end_factor = check_unit_interval("end_factor", end_factor, closed_right=True)
    return base_lr * (1 - (1 - end_factor) * min(step, total_steps) / total_steps)


def warmup_cosine(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0, start_factor=0.0):
    r"""Linear warmup for ``warmup_steps``, then cosine annealing until ``total_steps``.

    .. math::
        \eta_t = \begin{cases}
          \eta_0\,\bigl(f_0 + (1-f_0)\,t/W\bigr) & t < W \\
          \eta_{\min} + \tfrac12(\eta_0-\eta_{\min})
            \bigl(1+\cos(\pi\,\min(t-W,\,T-W)/(T-W))\bigr) & t \ge W
        \end{cases}

    Warmup after Goyal et al. (2017), arXiv:1706.02677; cosine after Loshchilov & Hutter
    (2017), ICLR. The peak ``base_lr`` is reached at step ``W``. torch twin:
    ``SequentialLR([LinearLR(start_factor, 1.0, W), CosineAnnealingLR(T - W, min_lr)],
    milestones=[W])``.
    """
    step = _step(step)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps must be < total_steps ({total_steps}), got {warmup_steps}")
    if step < warmup_steps:
        return linear_warmup(step, base_lr=base_lr, warmup_steps=warmup_steps,
                             start_factor=start_factor)
    check_unit_interval("start_factor", start_factor, closed_right=True)
    return cosine(step - warmup_steps, base_lr=base_lr, total_steps=total_steps - warmup_steps,
                  min_lr=min_lr)


#: name -> schedule, for widgets and configuration files.
SCHEDULES = {"constant": constant, "step": step_decay, "multistep": multistep,
             "cosine": cosine, "warmup": linear_warmup, "linear_decay": linear_decay,
             "warmup_cosine": warmup_cosine}


def _resolve(schedule):
    if isinstance(schedule, str):
        return SCHEDULES[check_choice("schedule", schedule, SCHEDULES)]
    if not callable(schedule):
        raise TypeError(f"schedule must be a schedule function or its name, got {schedule!r}")
    return schedule


def as_multiplier(schedule, *, base_lr, **hyper):
    r"""The schedule as a factor :math:`\eta_t/\eta_0`, the form ``LambdaLR`` expects.

    ``LambdaLR(optimizer, as_multiplier(cosine, base_lr=0.1, total_steps=100))`` gives the
    learning rates of ``cosine(t, base_lr=0.1, total_steps=100)`` when the optimizer was
    built with ``lr=0.1`` (LambdaLR multiplies the optimizer's initial lr by the factor).
    """
    fn = _resolve(schedule)
    base_lr = check_positive("base_lr", base_lr)
    fn(0, base_lr=base_lr, **hyper)  # fail now, not at the first scheduler step

    def multiplier(step):
        return fn(step, base_lr=base_lr, **hyper) / base_lr

    return multiplier


def lr_curve(schedule, n_steps, **hyper):
    """The learning rates of steps ``0 .. n_steps-1`` as a float64 numpy array (for plots)."""
    import numpy as np

    fn = _resolve(schedule)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    return np.array([fn(t, **hyper) for t in range(n_steps)], dtype=np.float64)
