r"""Update rules, each written once as array code.

Every rule here runs unchanged on a numpy array and on a torch tensor: it uses only
``*``, ``+``, ``-``, ``/``, ``**`` and in-place ``*=``/``+=``/``-=``, which both libraries
share. The 2-D landscape demos (:func:`curvlib.minimize`) and the torch optimizers
(:mod:`curvlib.optim`) call these same functions, so the Adam drawn on a contour plot is
the Adam that trains a network.

A rule is a pair, in the style of optax's ``init``/``update``:

* ``init_<name>(param, **hyper) -> state`` builds the state dictionary (key names are
  torch.optim's, so ``state_dict()`` files look the same);
* ``<name>(param, grad, state, **hyper)`` takes one step, updating ``param`` and
  ``state`` **in place** and returning ``param``.

The keyword arguments are torch.optim's names with torch.optim's defaults, written here
once: :mod:`curvlib.methods` reads them from these signatures for :func:`curvlib.minimize`,
the classes of :mod:`curvlib.optim` and :mod:`curvlib.memory`. ``init_<name>`` ignores
keywords it does not use, so ``init(param, **hyper)`` works with a method's whole set.

In-place updates keep the torch path free of extra copies; the numpy path gets the same
semantics. Call the torch path under ``torch.no_grad()``. Hyperparameters are checked by
the public constructors (:mod:`curvlib.optim`, :func:`curvlib.minimize`), not here, so
that a step costs only its arithmetic.
"""
from __future__ import annotations

import math

__all__ = [
    "zeros_like", "init_sgd", "sgd", "init_adagrad", "adagrad", "init_rmsprop", "rmsprop",
    "init_adam", "adam", "adamw", "init_heavy_ball", "heavy_ball",
]


def zeros_like(x):
    """Zeros with ``x``'s shape, dtype and library (numpy or torch)."""
    if hasattr(x, "new_zeros"):  # torch.Tensor
        return x.new_zeros(x.shape)
    import numpy as np
    return np.zeros_like(x)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else x.copy()


def _sqrt(x):
    return x ** 0.5


def _variance(square_avg, mean):
    """``square_avg - mean**2``, and ``inf`` where ``square_avg`` is ``inf``.

    When :math:`g^2` overflows, ``mean**2`` overflows too and ``inf - inf`` would be NaN, so
    the step is 0 instead of NaN. torch's fused ``addcmul`` gives ``inf`` there with its AVX2
    kernels but NaN with its portable ones (``ATEN_CPU_CAPABILITY=default``), and so does
    torch.optim.RMSprop; the fast path (:func:`curvlib._fast.rmsprop`) applies the same rule
    as this function, so curvlib's two paths agree on every CPU. Elsewhere this is the plain
    difference.
    """
    var = square_avg - mean * mean
    overflowed = square_avg == math.inf
    if hasattr(var, "masked_fill"):
        return var.masked_fill(overflowed, math.inf)
    import numpy as np
    return np.where(overflowed, math.inf, var)


# --------------------------------------------------------------------------------------
# Gradient descent, heavy-ball momentum, Nesterov (torch.optim.SGD's form)
# --------------------------------------------------------------------------------------
def init_sgd(param, momentum=0.0, **_):
    return {"momentum_buffer": None, "step": 0}


def sgd(param, grad, state, *, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
        weight_decay=0.0, maximize=False):
    r"""Stochastic gradient descent with optional momentum and Nesterov momentum.

    .. math::
        d_t = g_t + \lambda\theta_t,\quad
        b_t = \mu b_{t-1} + (1-\tau) d_t \;(b_1 = d_1),\quad
        \theta_{t+1} = \theta_t - \eta\,(d_t + \mu b_t \text{ if Nesterov else } b_t)

    This is torch.optim.SGD's form (Sutskever et al., 2013, "On the importance of
    initialization and momentum in deep learning", ICML): the learning rate multiplies the
    buffer, so the lecture's :math:`v_t = \mu v_{t-1} + \eta g_t` equals
    :math:`\eta b_t` while :math:`\eta` is constant.
    """
    d = -grad if maximize else grad
    if weight_decay != 0:
        d = d + weight_decay * param
    if momentum != 0:
        buf = state["momentum_buffer"]
        if buf is None:
            buf = _copy(d)
            state["momentum_buffer"] = buf
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    state["step"] = state.get("step", 0) + 1
    param -= lr * d
    return param


def init_heavy_ball(param, **_):
    return {"velocity": zeros_like(param), "step": 0}


def heavy_ball(param, grad, state, *, lr, momentum=0.9):
    r"""Polyak's heavy ball as the lecture writes it.

    .. math:: v_t = \gamma v_{t-1} + \eta g_t, \qquad \theta_{t+1} = \theta_t - v_t

    Polyak (1964), "Some methods of speeding up the convergence of iteration methods",
    USSR Comput. Math. & Math. Phys. With constant :math:`\eta` it takes exactly the steps of
    :func:`sgd` with ``momentum=gamma`` (``v = lr * momentum_buffer``).
    For the lecture's Nesterov, evaluate ``grad`` at ``param - momentum * state["velocity"]``.
    """
    v = state["velocity"]
    v *= momentum
    v += lr * grad
    state["step"] += 1
    param -= v
    return param


# --------------------------------------------------------------------------------------
# AdaGrad, RMSProp
# --------------------------------------------------------------------------------------
def init_adagrad(param, initial_accumulator_value=0.0, **_):
    s = zeros_like(param)
    if initial_accumulator_value:
        s += initial_accumulator_value
    return {"sum": s, "step": 0}


def adagrad(param, grad, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
            maximize=False):
    r"""AdaGrad (Duchi, Hazan & Singer, 2011, JMLR 12:2121-2159), torch.optim.Adagrad's form.

    .. math::
        s_t = s_{t-1} + g_t^2,\qquad
        \theta_{t+1} = \theta_t - \frac{\eta}{1+(t-1)\,\delta}\,\frac{g_t}{\sqrt{s_t}+\epsilon}
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    state["step"] += 1
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    s = state["sum"]
    s += g * g
    param -= clr * g / (_sqrt(s) + eps)
    return param


def init_rmsprop(param, momentum=0.0, centered=False, **_):
    state = {"square_avg": zeros_like(param), "step": 0}
    if momentum > 0:
        state["momentum_buffer"] = zeros_like(param)
    if centered:
        state["grad_avg"] = zeros_like(param)
    return state


def rmsprop(param, grad, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
            momentum=0.0, centered=False, maximize=False):
    r"""RMSProp (Tieleman & Hinton, 2012, Coursera lecture 6.5), torch.optim.RMSprop's form.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{g_t}{\sqrt{v_t}+\epsilon}

    ``centered`` subtracts the squared running mean of the gradient from :math:`v_t`;
    ``momentum`` accumulates the scaled step in a buffer.
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    state["step"] += 1
    v = state["square_avg"]
    v *= alpha
    v += (1 - alpha) * g * g
    if centered:
        ga = state["grad_avg"]
        ga *= alpha
        ga += (1 - alpha) * g
        avg = _sqrt(_variance(v, ga)) + eps
    else:
        avg = _sqrt(v) + eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        param -= lr * buf
    else:
        param -= lr * g / avg
    return param


# --------------------------------------------------------------------------------------
# Adam, AdamW
# --------------------------------------------------------------------------------------
def init_adam(param, amsgrad=False, **_):
    state = {"step": 0, "exp_avg": zeros_like(param), "exp_avg_sq": zeros_like(param)}
    if amsgrad:
        state["max_exp_avg_sq"] = zeros_like(param)
    return state


def adam(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         amsgrad=False, bias_correction=True, decoupled_weight_decay=False, maximize=False):
    r"""Adam (Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization", ICLR).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_{t+1} = \theta_t - \frac{\eta}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}

    ``bias_correction=False`` gives the lecture's form
    :math:`\theta_{t+1} = \theta_t - \eta\, m_t / (\sqrt{v_t} + \epsilon)`, whose first steps
    are :math:`1-\beta_1 = 0.1` times too short in the mean and whose denominator starts
    :math:`\sqrt{1-\beta_2}\approx 0.03` times too small.

    ``weight_decay`` adds :math:`\lambda\theta` to the gradient (an L2 penalty, torch.optim.Adam);
    with ``decoupled_weight_decay=True`` it shrinks the weights by :math:`1-\eta\lambda`
    before the step instead (AdamW, Loshchilov & Hutter, 2019, ICLR).
    """
    beta1, beta2 = betas
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    state["step"] += 1
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    if amsgrad:
        vmax = state["max_exp_avg_sq"]
        vmax[...] = vmax * (vmax >= v) + v * (vmax < v)  # elementwise max, numpy and torch alike
        v = vmax
    if bias_correction:
        step_size = lr / (1 - beta1 ** t)
        denom = _sqrt(v) / math.sqrt(1 - beta2 ** t) + eps
    else:
        step_size = lr
        denom = _sqrt(v) + eps
    param -= step_size * m / denom
    return param


def adamw(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
          amsgrad=False, bias_correction=True, maximize=False):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019, ICLR).

    .. math:: \theta \leftarrow (1-\eta\lambda)\,\theta, \text{ then the Adam step.}
    """
    return adam(param, grad, state, lr=lr, betas=betas, eps=eps,
                weight_decay=weight_decay, amsgrad=amsgrad, bias_correction=bias_correction,
                decoupled_weight_decay=True, maximize=maximize)
