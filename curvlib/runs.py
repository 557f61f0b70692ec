r"""What every run of the book shares: one thread, one divergence rule, one gradient-spike rule.

**One thread.** :func:`single_thread` runs a block on one BLAS thread (and one torch thread
when torch is loaded). The book's problems are tiny: a second thread only adds
synchronisation (on a shared machine, 2-5x *slower*, measured with ``torch.set_num_threads``),
and one thread fixes the order of every floating-point reduction, so every printed digit,
whatever ``OMP_NUM_THREADS`` says.

**Divergence.** A sequence :math:`v_0, v_1, \dots` (a loss, an error, the iterates of a path)
has diverged at the first step :math:`k` where :math:`v_k` is not finite or

.. math:: |v_k| > c\,\max(|v_0|, 1),\qquad c = 10^4

(:data:`DIVERGE_FACTOR`). The factor is relative, so the rule reads a loss of 2.3 and an
error of :math:`10^{-3}` alike; the :math:`\max(\cdot, 1)` keeps a run that starts near zero
from "diverging" at a harmless value. :func:`curvlib.train.train` stops there with ``"diverged at step k"``,
:mod:`curvlib.compare` records the step, :mod:`curvlib.plots` cuts a curve there and
:class:`curvlib.widgets.Explorer` frames say so.

**Gradient spike.** A gradient norm :math:`g_t` is a spike when

.. math:: g_t > c_s\,\operatorname{median}(g_{t-W}, \dots, g_{t-1})\quad\text{and}\quad g_t > \text{floor},

the usual first sign of a step too large for the curvature (:math:`\eta\lambda_{\max} > 2`;
Cohen et al., 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability", ICLR). :class:`curvlib.curvature.GradNormMonitor` applies it while training,
:func:`first_spike` to a recorded curve.

Plain numpy: nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from ._checks import check_int, check_nonnegative, check_positive

__all__ = ["single_thread", "DIVERGE_FACTOR", "divergence_limit", "is_diverged", "divergence_step", "is_spike",
           "first_spike"]

@contextlib.contextmanager
def single_thread():
    """Run a block (or, as ``@single_thread()``, a function) on one BLAS thread and, if torch is
    loaded, one torch thread; the previous settings come back afterwards."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


#: A run has diverged once its value passes this times ``max(|first value|, 1)``.
DIVERGE_FACTOR = 1e4


def divergence_limit(first, factor=DIVERGE_FACTOR):
    """The largest magnitude a run that started at ``first`` may reach: ``factor * max(|first|, 1)``.

    A non-finite ``first`` counts as 1. Elementwise on arrays (one limit per run).
    """
    factor = check_positive("factor", factor)
    first = np.asarray(first, dtype=float)
    scale = np.where(np.isfinite(first), np.abs(first), 1.0)
    return factor * np.maximum(scale, 1.0)


def is_diverged(value, limit):
    """Whether ``value`` is not finite or larger than ``limit`` in magnitude (elementwise)."""
    value = np.asarray(value, dtype=float)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(value) | (np.abs(value) > limit)


def divergence_step(values, *, factor=DIVERGE_FACTOR):
    r"""The first step at which ``values`` has diverged (see the module docstring), or ``None``.

    ``values`` is a curve of shape ``(steps,)`` or a path of shape ``(steps, d)``; a row of a
    path counts by its largest :math:`|entry|`. Use it on a loss history or on iterates:
    ``k = divergence_step(losses)``, then ``raise Diverged(k)`` or report
    ``f"diverged at step {k}"``.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    v = v.reshape(len(v), -1)
    finite = np.isfinite(v).all(axis=1)
    size = np.where(finite, np.abs(np.nan_to_num(v)).max(axis=1), np.inf)
    bad = np.flatnonzero(is_diverged(size, divergence_limit(size[0], factor)))
    return int(bad[0]) if bad.size else None


def is_spike(value, recent, *, factor=10.0, floor=0.0):
    """Whether gradient norm ``value`` exceeds ``factor`` times the median of ``recent`` (the
    norms before it) and ``floor``. ``False`` when ``recent`` is empty."""
    factor = check_positive("factor", factor)
    if len(recent) == 0:
        return False
    return bool(value > factor * float(np.median(recent)) and value > floor)


def first_spike(grad_norms, *, factor=10.0, window=20, floor=None):
    r"""The first step whose gradient norm is a spike (:func:`curvlib.runs.is_spike`) against the median of
    the previous ``window`` norms, or ``None``.

    ``floor`` defaults to the median of the first five norms: it keeps late-training noise, when
    the norm has fallen far below its initial size, from counting as a spike. A non-finite norm
    ends the search (the run has diverged; :func:`curvlib.runs.divergence_step` says where).
    """
    gn = np.asarray(grad_norms, dtype=float)
    factor = check_positive("factor", factor)
    window = check_int("window", window, minimum=1)
    if gn.size < 2:
        return None
    floor = float(np.median(gn[:5])) if floor is None else check_nonnegative("floor", floor)
    for t in range(1, len(gn)):
        if not np.isfinite(gn[t]):
            return None
        if is_spike(gn[t], gn[max(0, t - window):t], factor=factor, floor=floor):
            return t
    return None
