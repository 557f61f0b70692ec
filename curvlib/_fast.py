r"""The fast path of :mod:`curvlib.optim`: each rule of :mod:`curvlib.rules` on whole lists.

``<name>(params, grads, states, **hyper)`` takes the step that calling
``rules.<name>(p, g, s, **hyper)`` on every triple would take, with ``torch._foreach_*``
kernels that sweep a whole list of tensors per call (as torch.optim's ``foreach=True``
path does). The arithmetic is the rule's, sometimes regrouped to touch memory fewer times;
e.g. Adam's step

.. math::
    \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t}+\epsilon}
    = \frac{\eta\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
      \frac{m_t}{\sqrt{v_t}+\epsilon\sqrt{1-\beta_2^t}}

is computed from the right-hand side, which needs one pass fewer over the parameters.
Regrouping changes only rounding: ``tests/test_optim.py`` holds this path equal to the rule
path to 1e-12 relative over 100 steps in float64. Call under ``torch.no_grad()``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["sgd", "adam", "adagrad", "rmsprop"]


def _split(params, grads, states):
    """Group the triples by (device, dtype): one foreach kernel call needs one of each."""
    p0 = params[0]
    if all(p.device == p0.device and p.dtype == p0.dtype for p in params):
        return [(params, grads, states)]
    buckets = {}
    for p, g, s in zip(params, grads, states):
        bucket = buckets.setdefault((p.device, p.dtype), ([], [], []))
        bucket[0].append(p)
        bucket[1].append(g)
        bucket[2].append(s)
    return list(buckets.values())


def _one_or_each(values):
    """One scalar when all are equal (the usual case), else the per-tensor list."""
    return values[0] if all(v == values[0] for v in values) else values


def _count_step(states):
    steps = []
    for s in states:
        s["step"] = s.get("step", 0) + 1
        steps.append(s["step"])
    return steps


def _direction(params, grads, weight_decay, maximize):
    r""":math:`\pm g + \lambda\theta` without touching ``.grad``."""
    d = torch._foreach_neg(grads) if maximize else grads
    if weight_decay != 0:
        if maximize:  # d is already a fresh list
            torch._foreach_add_(d, params, alpha=weight_decay)
        else:
            d = torch._foreach_add(d, params, alpha=weight_decay)
    return d


# --------------------------------------------------------------------------------------
def sgd(params, grads, states, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
        weight_decay=0.0, maximize=False):
    """Multi-tensor :func:`curvlib.rules.sgd`."""
    for P, G, S in _split(params, grads, states):
        _count_step(S)
        d = _direction(P, G, weight_decay, maximize)
        if momentum != 0:
            bufs, old_bufs, old_d = [], [], []
            for s, di in zip(S, d):
                buf = s.get("momentum_buffer")
                if buf is None:  # b_1 = d_1
                    buf = s["momentum_buffer"] = di.clone()
                else:
                    old_bufs.append(buf)
                    old_d.append(di)
                bufs.append(buf)
            if old_bufs and dampening == 0:  # b = d + mu*b in a single sweep
                for buf, di in zip(old_bufs, old_d):
                    torch.add(di, buf, alpha=momentum, out=buf)
            elif old_bufs:
                torch._foreach_mul_(old_bufs, momentum)
                torch._foreach_add_(old_bufs, old_d, alpha=1 - dampening)
            d = torch._foreach_add(d, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(P, d, alpha=-lr)


# --------------------------------------------------------------------------------------
def adam(params, grads, states, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
         amsgrad=False, bias_correction=True, decoupled_weight_decay=False, maximize=False):
    """Multi-tensor :func:`curvlib.rules.adam` (and AdamW with ``decoupled_weight_decay``)."""
    for P, G, S in _split(params, grads, states):
        steps = _count_step(S)
        if decoupled_weight_decay:
            if weight_decay != 0:
                torch._foreach_mul_(P, 1 - lr * weight_decay)
            g = torch._foreach_neg(G) if maximize else G
        else:
            g = _direction(P, G, weight_decay, maximize)
        m = [s["exp_avg"] for s in S]
        v = [s["exp_avg_sq"] for s in S]
        torch._foreach_lerp_(m, g, 1 - beta1)            # m = b1 m + (1-b1) g
        torch._foreach_mul_(v, beta2)                    # v = b2 v + (1-b2) g^2
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        if amsgrad:
            vmax = [s["max_exp_avg_sq"] for s in S]
            torch._foreach_maximum_(vmax, v)
            v = vmax
        denom = torch._foreach_sqrt(v)
        if bias_correction:
            root2 = [math.sqrt(1 - beta2 ** t) for t in steps]
            torch._foreach_add_(denom, _one_or_each([eps * r for r in root2]))
            scale = [-lr * r / (1 - beta1 ** t) for r, t in zip(root2, steps)]
        else:
            torch._foreach_add_(denom, eps)
            scale = [-lr]
        scale = _one_or_each(scale)
        if isinstance(scale, list):
            torch._foreach_addcdiv_(P, m, denom, scale)
        else:
            torch._foreach_addcdiv_(P, m, denom, value=scale)


# --------------------------------------------------------------------------------------
def adagrad(params, grads, states, *, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
            maximize=False):
    """Multi-tensor :func:`curvlib.rules.adagrad`."""
    for P, G, S in _split(params, grads, states):
        steps = _count_step(S)
        g = _direction(P, G, weight_decay, maximize)
        sums = [s["sum"] for s in S]
        torch._foreach_addcmul_(sums, g, g)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, eps)
        clr = _one_or_each([-lr / (1 + (t - 1) * lr_decay) for t in steps])
        if isinstance(clr, list):
            torch._foreach_addcdiv_(P, g, std, clr)
        else:
            torch._foreach_addcdiv_(P, g, std, value=clr)


# --------------------------------------------------------------------------------------
def rmsprop(params, grads, states, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
            momentum=0.0, centered=False, maximize=False):
    """Multi-tensor :func:`curvlib.rules.rmsprop`."""
    for P, G, S in _split(params, grads, states):
        _count_step(S)
        g = _direction(P, G, weight_decay, maximize)
        sq = [s["square_avg"] for s in S]
        torch._foreach_mul_(sq, alpha)
        torch._foreach_addcmul_(sq, g, g, value=1 - alpha)
        if centered:
            ga = [s["grad_avg"] for s in S]
            torch._foreach_lerp_(ga, g, 1 - alpha)
            avg = torch._foreach_addcmul(sq, ga, ga, value=-1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(sq)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            bufs = [s["momentum_buffer"] for s in S]
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_addcdiv_(bufs, g, avg)
            torch._foreach_add_(P, bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(P, g, avg, value=-lr)
