r"""Drop-in replacements for ``torch.optim``, built on :mod:`curvlib.rules`.

Each class here is a :class:`torch.optim.Optimizer` with torch.optim's constructor signature
and defaults, whose step applies a rule from :mod:`curvlib.rules` to every parameter. The
rule is the same function the 2-D landscape demos call on numpy arrays, so the Adam drawn on a
contour plot is the Adam that trains the network.

Two paths compute a step, as in torch.optim:

* ``foreach=False``: the **reference path**. For each parameter it calls the readable rule,
  e.g. ``rules.adam(p, p.grad, state, lr=..., beta1=..., ...)``.
* ``foreach=None`` (default) or ``True``: the **fast path** in :mod:`curvlib._fast`, the same
  arithmetic on whole lists of tensors with ``torch._foreach_*`` kernels. The tests hold the
  two paths equal to rounding (1e-12 relative in float64 over 100 steps). For Adam, AdamW,
  Adagrad and RMSprop it keeps one scratch tensor per parameter between steps (the
  temporary that torch's foreach path allocates anew at every step), outside the state.

Everything torch.optim offers around the step works unchanged because it lives in the base
class: param groups, ``state_dict()``/``load_state_dict()`` (a torch.optim state dict loads
too), ``zero_grad``, step hooks, closures and every ``torch.optim.lr_scheduler`` (they read
and write ``group["lr"]``). State keys are torch's (``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``sum``, ``square_avg``, ...); ``step`` is kept as a Python int.

Bad hyperparameters raise ``ValueError``/``TypeError`` naming the argument, in the constructor
and in :meth:`~torch.optim.Optimizer.add_param_group`.

:func:`make_optimizer` and :func:`make_rule` map the method names used across the book
(``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``,
``"adamw"``) to these classes and to their rules with the same defaults, so
:func:`curvlib.minimize` takes exactly the steps of the optimizer of the same name.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from . import _fast, rules
from ._checks import check_nonnegative, check_real, check_unit_interval

__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "RuleOptimizer",
           "make_optimizer", "make_rule", "METHODS", "factory", "OptimizerFactory"]


# --------------------------------------------------------------------------------------
# Argument checks that _checks.py does not cover
# --------------------------------------------------------------------------------------
def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_scalar(name, value):
    """A finite real number, or a one-element tensor (torch.optim accepts a tensor lr)."""
    if isinstance(value, (str, bytes, bool)):  # float() would accept these
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} as a tensor must have one element, got shape "
                             f"{tuple(value.shape)}")
        if value.requires_grad:
            raise ValueError(f"{name} must not require grad (differentiable optimizers are "
                             "not supported)")
        value = value.item()
    return check_real(name, value)


def _nonneg(name, value):
    return check_nonnegative(name, _check_scalar(name, value))


def _unit(name, value, closed_right=False):
    return check_unit_interval(name, _check_scalar(name, value), closed_right=closed_right)


def _check_lr(value):
    value = _check_scalar("lr", value)
    if value < 0:
        raise ValueError(f"lr must be non-negative, got {value}")
    return value


def _check_betas(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    return tuple(_unit(f"betas[{i}]", b) for i, b in enumerate(value))


def _check_torch_options(foreach, capturable, differentiable, fused):
    """torch.optim's implementation switches: accepted with their defaults only."""
    if foreach is not None:
        _check_flag("foreach", foreach)
    for name, value in (("capturable", capturable), ("differentiable", differentiable)):
        if _check_flag(name, value):
            raise ValueError(f"{name}=True is not supported by curvlib.optim")
    if fused is not None and _check_flag("fused", fused):
        raise ValueError("fused=True is not supported by curvlib.optim; its fast path is "
                         "foreach=True (the default)")


def _check_tensor(name, p):
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must contain tensors, got {type(p).__name__}")
    if not p.is_floating_point():
        raise TypeError(f"{name} must be real floating-point tensors, got dtype {p.dtype}")
    if not (p.is_leaf or p.retains_grad):
        raise ValueError(f"{name} must be leaf tensors (can't optimize a non-leaf tensor)")


def _check_param_list(params, name="params"):
    """A list of tensors (or (name, tensor) pairs), non-empty, real floating point."""
    if isinstance(params, torch.Tensor):
        raise TypeError(f"{name} must be an iterable of tensors or dicts, got a single "
                        "Tensor (wrap it in a list)")
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{name} must be an ordered iterable (list, tuple, generator), "
                        "not a set: its order changes between runs")
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{name} must be an iterable of tensors or dicts, got "
                        f"{type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{name} must not be empty (the optimizer got an empty parameter "
                         "list)")
    return params


# --------------------------------------------------------------------------------------
# The base class: a torch optimizer whose step is a curvlib rule
# --------------------------------------------------------------------------------------
class RuleOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step applies one rule of :mod:`curvlib.rules`.

    A subclass names its rule (``init_rule``, ``rule``), its fast multi-tensor twin
    (``fast_rule``, from :mod:`curvlib._fast`) and says how a param group's torch-named
    hyperparameters become the rule's keyword arguments (``rule_kwargs``, ``init_kwargs``)
    and how they are checked (``check_hyper``).
    """

    init_rule = None
    rule = None
    fast_rule = None
    uses_scratch = True  # the fast path keeps one temporary per parameter

    def __init__(self, params, defaults):
        params = _check_param_list(params)
        super().__init__(params, self.check_hyper(dict(defaults)))

    # -- what a subclass provides ------------------------------------------------------
    @classmethod
    def check_hyper(cls, group):
        """Return a checked copy of ``group``'s hyperparameters (raise on bad values)."""
        raise TypeError(f"{cls.__name__} is abstract: a RuleOptimizer subclass defines check_hyper")

    @staticmethod
    def rule_kwargs(group):
        """The rule's keyword arguments, read from a param group."""
        raise TypeError("RuleOptimizer is abstract: a subclass defines rule_kwargs")

    @staticmethod
    def init_kwargs(group):
        return {}

    # -- param groups and state dicts --------------------------------------------------
    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else \
            _check_param_list(params, "param_group['params']")
        for p in group["params"]:
            _check_tensor("params", p[1] if isinstance(p, tuple) else p)
        overrides = [k for k in group if k in self.defaults]
        if overrides:
            checked = self.check_hyper({**self.defaults, **{k: group[k] for k in overrides}})
            group.update({k: checked[k] for k in overrides})
        super().add_param_group(group)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # a torch.optim state dict lacks our extra keys
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        for s in self.state.values():  # torch keeps step as a tensor; the rules use an int
            if isinstance(s.get("step"), torch.Tensor):
                s["step"] = int(s["step"].item())

    # -- the step ----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One step of the rule on every parameter that has a gradient.

        ``closure`` (optional) re-evaluates the model and returns the loss; it is called
        once, with gradients enabled, before the step.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, states = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse "
                                       "gradients")
                state = self.state[p]
                if not state:
                    state.update(self.init_rule(p, **self.init_kwargs(group)))
                params.append(p)
                grads.append(p.grad)
                states.append(state)
            if not params:
                continue
            kwargs = self.rule_kwargs(group)
            if group["foreach"] is False:  # the readable reference path
                for p, g, s in zip(params, grads, states):
                    self.rule(p, g, s, **kwargs)
            else:
                self.fast_rule(params, grads, states, self._scratch(params), **kwargs)
        return loss

    def _scratch(self, params):
        """One reusable temporary per parameter for the fast path (never in the state dict).

        torch's foreach path allocates the same temporary afresh at each step; keeping it
        spares the page faults of a new multi-megabyte allocation.
        """
        if not self.uses_scratch:
            return None
        cache = self.__dict__.setdefault("_scratch_buffers", {})
        out = []
        for p in params:
            w = cache.get(p)
            if w is None or w.shape != p.shape or w.dtype is not p.dtype or \
                    w.device != p.device:
                w = cache[p] = torch.empty_like(p)
            out.append(w)
        return out


# --------------------------------------------------------------------------------------
# SGD, heavy ball, Nesterov
# --------------------------------------------------------------------------------------
class SGD(RuleOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum; ``torch.optim.SGD``.

    .. math::
        d_t = g_t + \lambda\theta_t,\quad b_t = \mu b_{t-1} + (1-\tau)\,d_t,\quad
        \theta_{t+1} = \theta_t - \eta\,(d_t + \mu b_t \text{ if Nesterov else } b_t)

    The rule is :func:`curvlib.rules.sgd` (Sutskever, Martens, Dahl & Hinton, 2013, "On the
    importance of initialization and momentum in deep learning", ICML). With constant
    :math:`\eta` it equals the lecture's heavy ball :math:`v_t = \mu v_{t-1} + \eta g_t`
    (:func:`curvlib.rules.heavy_ball`) with :math:`v_t = \eta b_t`.
    """

    init_rule = staticmethod(rules.init_sgd)
    rule = staticmethod(rules.sgd)
    fast_rule = staticmethod(_fast.sgd)
    uses_scratch = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        _check_torch_options(foreach, False, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused))

    @classmethod
    def check_hyper(cls, g):
        g = dict(g, lr=_check_lr(g["lr"]),
                 momentum=_nonneg("momentum", g["momentum"]),
                 dampening=_unit("dampening", g["dampening"], closed_right=True),
                 weight_decay=_nonneg("weight_decay", g["weight_decay"]),
                 nesterov=_check_flag("nesterov", g["nesterov"]),
                 maximize=_check_flag("maximize", g["maximize"]))
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0, got "
                             f"momentum={g['momentum']}, dampening={g['dampening']}")
        return g

    @staticmethod
    def rule_kwargs(g):
        return dict(lr=g["lr"], momentum=g["momentum"], dampening=g["dampening"],
                    nesterov=g["nesterov"], weight_decay=g["weight_decay"],
                    maximize=g["maximize"])


# --------------------------------------------------------------------------------------
# Adam, AdamW
# --------------------------------------------------------------------------------------
class Adam(RuleOptimizer):
    r"""Adam (Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization", ICLR);
    ``torch.optim.Adam``.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_{t+1} = \theta_t - \frac{\eta}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}

    The rule is :func:`curvlib.rules.adam`. Beyond torch's options, ``bias_correction=False``
    gives the lecture's form :math:`\theta_{t+1} = \theta_t - \eta\,m_t/(\sqrt{v_t}+\epsilon)`.
    ``amsgrad`` uses the running maximum of :math:`v_t` (Reddi, Kale & Kumar, 2018, "On the
    Convergence of Adam and Beyond", ICLR); ``decoupled_weight_decay=True`` is AdamW.
    """

    init_rule = staticmethod(rules.init_adam)
    rule = staticmethod(rules.adam)
    fast_rule = staticmethod(_fast.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 bias_correction=True):
        _check_torch_options(foreach, capturable, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            foreach=foreach, maximize=maximize, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay, bias_correction=bias_correction))

    @classmethod
    def check_hyper(cls, g):
        return dict(g, lr=_check_lr(g["lr"]), betas=_check_betas(g["betas"]),
                    eps=_nonneg("eps", g["eps"]),
                    weight_decay=_nonneg("weight_decay", g["weight_decay"]),
                    amsgrad=_check_flag("amsgrad", g["amsgrad"]),
                    maximize=_check_flag("maximize", g["maximize"]),
                    decoupled_weight_decay=_check_flag("decoupled_weight_decay",
                                                       g["decoupled_weight_decay"]),
                    bias_correction=_check_flag("bias_correction", g["bias_correction"]))

    @staticmethod
    def init_kwargs(g):
        return dict(amsgrad=g["amsgrad"])

    @staticmethod
    def rule_kwargs(g):
        beta1, beta2 = g["betas"]
        return dict(lr=g["lr"], beta1=beta1, beta2=beta2, eps=g["eps"],
                    weight_decay=g["weight_decay"], amsgrad=g["amsgrad"],
                    bias_correction=g["bias_correction"],
                    decoupled_weight_decay=g["decoupled_weight_decay"],
                    maximize=g["maximize"])


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019, "Decoupled
    Weight Decay Regularization", ICLR); ``torch.optim.AdamW``.

    .. math:: \theta \leftarrow (1-\eta\lambda)\,\theta, \text{ then the Adam step}

    The rule is :func:`curvlib.rules.adamw`, i.e. :func:`curvlib.rules.adam` with
    ``decoupled_weight_decay=True``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, bias_correction=True):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, bias_correction=bias_correction)

    def __setstate__(self, state):  # as torch.optim.AdamW: always decoupled
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


# --------------------------------------------------------------------------------------
# AdaGrad, RMSProp
# --------------------------------------------------------------------------------------
class Adagrad(RuleOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer, 2011, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12:2121-2159); ``torch.optim.Adagrad``.

    .. math::
        s_t = s_{t-1} + g_t^2,\qquad
        \theta_{t+1} = \theta_t - \frac{\eta}{1+(t-1)\,\delta}\,\frac{g_t}{\sqrt{s_t}+\epsilon}

    The rule is :func:`curvlib.rules.adagrad`. Unlike torch, the state of a parameter is
    created at its first step (torch creates it in the constructor); the steps are the same.
    """

    init_rule = staticmethod(rules.init_adagrad)
    rule = staticmethod(rules.adagrad)
    fast_rule = staticmethod(_fast.adagrad)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        _check_torch_options(foreach, False, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused))

    @classmethod
    def check_hyper(cls, g):
        return dict(g, lr=_check_lr(g["lr"]),
                    lr_decay=_nonneg("lr_decay", g["lr_decay"]),
                    weight_decay=_nonneg("weight_decay", g["weight_decay"]),
                    initial_accumulator_value=_nonneg("initial_accumulator_value",
                                                      g["initial_accumulator_value"]),
                    eps=_nonneg("eps", g["eps"]),
                    maximize=_check_flag("maximize", g["maximize"]))

    @staticmethod
    def init_kwargs(g):
        return dict(initial_accumulator_value=g["initial_accumulator_value"])

    @staticmethod
    def rule_kwargs(g):
        return dict(lr=g["lr"], lr_decay=g["lr_decay"], weight_decay=g["weight_decay"],
                    eps=g["eps"], maximize=g["maximize"])


class RMSprop(RuleOptimizer):
    r"""RMSProp (Tieleman & Hinton, 2012, "Lecture 6.5 - rmsprop", COURSERA: Neural Networks
    for Machine Learning); ``torch.optim.RMSprop``.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{g_t}{\sqrt{v_t}+\epsilon}

    The rule is :func:`curvlib.rules.rmsprop` (``centered`` divides by the running standard
    deviation instead, Graves, 2013, "Generating Sequences With Recurrent Neural Networks",
    arXiv:1308.0850; ``momentum`` accumulates the scaled step).
    """

    init_rule = staticmethod(rules.init_rmsprop)
    rule = staticmethod(rules.rmsprop)
    fast_rule = staticmethod(_fast.rmsprop)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        _check_torch_options(foreach, capturable, differentiable, None)
        super().__init__(params, dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
            differentiable=differentiable))

    @classmethod
    def check_hyper(cls, g):
        return dict(g, lr=_check_lr(g["lr"]), alpha=_unit("alpha", g["alpha"]),
                    eps=_nonneg("eps", g["eps"]),
                    weight_decay=_nonneg("weight_decay", g["weight_decay"]),
                    momentum=_nonneg("momentum", g["momentum"]),
                    centered=_check_flag("centered", g["centered"]),
                    maximize=_check_flag("maximize", g["maximize"]))

    @staticmethod
    def init_kwargs(g):
        return dict(momentum=g["momentum"], centered=g["centered"])

    @staticmethod
    def rule_kwargs(g):
        return dict(lr=g["lr"], alpha=g["alpha"], eps=g["eps"],
                    weight_decay=g["weight_decay"], momentum=g["momentum"],
                    centered=g["centered"], maximize=g["maximize"])


# --------------------------------------------------------------------------------------
# Names used across the book -> optimizer classes and rules
# --------------------------------------------------------------------------------------
#: name -> (class, defaults the name changes, options the name fixes)
METHODS = {
    "sgd": (SGD, {}, {}),
    "gd": (SGD, {}, {"momentum": 0.0, "nesterov": False}),
    "momentum": (SGD, {"momentum": 0.9}, {"nesterov": False}),
    "nesterov": (SGD, {"momentum": 0.9}, {"nesterov": True}),
    "adagrad": (Adagrad, {}, {}),
    "rmsprop": (RMSprop, {}, {}),
    "adam": (Adam, {}, {}),
    "adamw": (AdamW, {}, {"decoupled_weight_decay": True}),
}


def _method(name, hyper):
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"name must be one of {sorted(METHODS)}, got {name!r}")
    cls, defaults, fixed = METHODS[key]
    for option, value in fixed.items():
        if option in hyper and hyper[option] != value:
            raise ValueError(f"method {key!r} fixes {option}={value!r}, got "
                             f"{option}={hyper[option]!r}")
    return cls, {**defaults, **hyper, **fixed}


def _hyperparameters(cls):
    """The constructor's hyperparameters and their defaults (torch switches left out)."""
    skip = {"self", "params", "foreach", "capturable", "differentiable", "fused"}
    return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
            if n not in skip}


def make_optimizer(name, params, **hyper):
    """Build the optimizer a method name stands for, e.g. ``make_optimizer("nesterov", ps,
    lr=0.1)`` is ``SGD(ps, lr=0.1, momentum=0.9, nesterov=True)``.

    ``name`` is one of :data:`METHODS` (``"sgd"``/``"gd"``, ``"momentum"``, ``"nesterov"``,
    ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``); ``hyper`` are the class's keyword
    arguments. ``"momentum"`` and ``"nesterov"`` default to ``momentum=0.9`` (the lecture's
    :math:`\\gamma`); options a name fixes (``nesterov`` for ``"nesterov"``) can't be changed.
    """
    cls, hyper = _method(name, hyper)
    if cls is AdamW:
        hyper.pop("decoupled_weight_decay", None)
    return cls(params, **hyper)


def make_rule(name, **hyper):
    """The rule a method name stands for, with its hyperparameters checked and bound.

    Returns ``(init, step)``: ``state = init(param)`` and ``step(param, grad, state)``
    (in place, returns ``param``), for numpy arrays or torch tensors. These are the very
    calls ``make_optimizer(name, ..., foreach=False)`` makes for each parameter, with the
    same defaults, so a path computed with them equals the optimizer's step for step.

    >>> import numpy as np
    >>> init, step = make_rule("adam", lr=0.1)
    >>> x = np.array([1.0, -2.0]); state = init(x)
    >>> step(x, 2 * x, state)  # one Adam step on f(x) = |x|^2
    array([ 0.9, -1.9])
    """
    cls, hyper = _method(name, hyper)
    known = _hyperparameters(cls)
    if cls is AdamW:
        hyper.pop("decoupled_weight_decay", None)
    unknown = sorted(set(hyper) - set(known))
    if unknown:
        raise TypeError(f"unexpected hyperparameter(s) {unknown} for {name!r}; "
                        f"expected some of {sorted(known)}")
    group = {**known, **hyper, "foreach": False}
    if cls is AdamW:
        group["decoupled_weight_decay"] = True
    group = cls.check_hyper(group)
    init_kwargs, rule_kwargs = cls.init_kwargs(group), cls.rule_kwargs(group)

    def init(param):
        return cls.init_rule(param, **init_kwargs)

    def step(param, grad, state):
        return cls.rule(param, grad, state, **rule_kwargs)

    return init, step


# --------------------------------------------------------------------------------------
# Second-order optimizers live in their own modules and are re-exported here, so that
# ``curvlib.optim`` is the one place to find every optimizer of the book.
# --------------------------------------------------------------------------------------
from .quasi_newton import LBFGS, Newton  # noqa: E402
from .second_order import KFAC, Shampoo  # noqa: E402

__all__ += ["LBFGS", "Newton", "KFAC", "Shampoo"]


# --------------------------------------------------------------------------------------
# The one factory convention: factory(name, **hyper) -> (model, lr) -> optimizer
# --------------------------------------------------------------------------------------
_SECOND_ORDER_CLASSES = {"lbfgs": "LBFGS", "newton": "Newton", "kfac": "KFAC",
                         "shampoo": "Shampoo"}
_TORCH_SWITCHES = {"foreach", "capturable", "differentiable", "fused"}


class OptimizerFactory:
    """``make(model, lr=None) -> torch.optim.Optimizer`` for one method and its hyperparameters.

    Built by :func:`factory`. ``model`` is a ``torch.nn.Module`` (every method; K-FAC needs
    one) or, for every method but ``"kfac"``, an iterable of parameters or param groups.
    ``lr`` overrides the learning rate given to :func:`factory` (``None`` keeps it, or the
    method's default). Attributes: ``name``, ``hyper`` (a copy), ``needs_model`` (K-FAC)
    and ``elementwise`` (the step treats every number on its own, so runs with different
    param groups are independent: the first-order methods).
    """

    def __init__(self, name, cls, hyper):
        self.name, self._cls, self._hyper = name, cls, dict(hyper)
        self.needs_model = name == "kfac"
        self.elementwise = issubclass(cls, RuleOptimizer)

    @property
    def hyper(self):
        return dict(self._hyper)

    def __call__(self, model, lr=None):
        hyper = dict(self._hyper)
        if lr is not None:
            hyper["lr"] = lr
        if self.needs_model:
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model must be a torch.nn.Module for {self.name!r} (K-FAC "
                                f"reads its layers), got {type(model).__name__}")
            return self._cls(model, **hyper)
        params = model.parameters() if isinstance(model, torch.nn.Module) else model
        return self._cls(params, **hyper)

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self._hyper.items())
        return f"factory({self.name!r}{args})"


def _factory_class(key):
    if key in _SECOND_ORDER_CLASSES:
        return globals()[_SECOND_ORDER_CLASSES[key]], {}
    cls, defaults, fixed = METHODS[key]
    return cls, {**defaults, **fixed}


def factory(name, **hyper):
    """The optimizer factory of method ``name``: ``make = factory("adam", lr=1e-3)``, then
    ``optimizer = make(model, lr)``.

    ``name`` is one of ``"sgd"``, ``"gd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
    ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"lbfgs"``, ``"newton"``, ``"kfac"``,
    ``"shampoo"``; ``hyper`` are the keyword arguments of its class (torch.optim's names).
    Every factory has the same call, ``make(model, lr)``, so K-FAC (which needs the model)
    and Adam (which needs only the parameters) sit in the same dict of contenders.

    Unknown hyperparameters raise ``ValueError`` naming them; bad values raise here too
    (the factory builds its optimizer once on a one-number stand-in to check them).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.lower()
    choices = sorted(set(METHODS) | set(_SECOND_ORDER_CLASSES))
    if key not in choices:
        raise ValueError(f"name must be one of {choices}, got {name!r}")
    cls, fixed = _factory_class(key)
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "params", "model"}
    if cls is AdamW:
        known.add("decoupled_weight_decay")
    unknown = sorted(set(hyper) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for {key!r}; it takes "
                         f"{sorted(known)}")
    for option, value in fixed.items():
        if option in hyper and hyper[option] != value:
            raise ValueError(f"method {key!r} fixes {option}={value!r}, got "
                             f"{option}={hyper[option]!r}")
    hyper = {**fixed, **hyper}
    if cls is AdamW:
        hyper.pop("decoupled_weight_decay", None)
    made = OptimizerFactory(key, cls, hyper)
    _probe(made)
    return made


def _probe(made):
    """Build ``made``'s optimizer on a one-number stand-in, so bad values fail at once."""
    if made.needs_model:
        probe = made(torch.nn.Linear(1, 1))
        probe.remove_hooks()
    else:
        made([torch.zeros(1, requires_grad=True)])
