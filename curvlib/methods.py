r"""The book's optimization methods in one table: name -> update rule, its defaults, its class.

============  =========================================  ================================
name          step (written once)                        class in :mod:`curvlib.optim`
============  =========================================  ================================
``sgd``       :func:`~curvlib.rules.sgd`                 ``SGD``
``gd``        :func:`~curvlib.rules.sgd`                 ``SGD`` (momentum fixed to 0)
``momentum``  :func:`~curvlib.rules.sgd`                 ``SGD`` (momentum 0.9)
``nesterov``  :func:`~curvlib.rules.sgd`                 ``SGD`` (momentum 0.9, nesterov)
``adagrad``   :func:`~curvlib.rules.adagrad`             ``Adagrad``
``rmsprop``   :func:`~curvlib.rules.rmsprop`             ``RMSprop``
``adam``      :func:`~curvlib.rules.adam`                ``Adam``
``adamw``     :func:`~curvlib.rules.adamw`               ``AdamW``
``lbfgs``     :func:`~curvlib.quasi_newton.lbfgs`        ``LBFGS``
``newton``    :func:`~curvlib.quasi_newton.newton_step`  ``Newton``
``kfac``      (torch only)                               ``KFAC`` (needs the model)
``shampoo``   (torch only)                               ``Shampoo``
============  =========================================  ================================

A method's hyperparameters and their defaults are **read from the signature** of its step
(and of its ``init``), so each default is written once, in :mod:`curvlib.rules` or
:mod:`curvlib.quasi_newton`; a name may change a default (``"momentum"``) or fix an option
(``"nesterov"``). The names are torch.optim's (``lr``, ``betas``, ``eps``, ``weight_decay``,
``history_size``, ...). Everything that takes a method name reads this table:
:func:`curvlib.minimize`, :func:`curvlib.optim.factory` and
:func:`curvlib.optim.make_optimizer`, the optimizer classes' defaults and checks, and
:func:`curvlib.memory.optimizer_state_bytes`.

:func:`resolve` turns ``(name, hyper)`` into the complete, checked set (an unknown key is a
``ValueError`` naming it); :func:`make_rule` binds a first-order rule for numpy or torch.
No torch here: K-FAC and Shampoo exist only as torch optimizers, and asking for their
hyperparameters imports :mod:`curvlib.optim`.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

from . import quasi_newton, rules
from ._checks import (check_choice, check_flag, check_int, check_lr, check_max_bytes,
                      check_nonnegative, check_unit_interval)

__all__ = ["Method", "METHODS", "get", "resolve", "check", "make_rule", "signature_defaults",
           "TORCH_SWITCHES"]

#: torch.optim's implementation switches; the classes take them, they change no step
TORCH_SWITCHES = ("foreach", "capturable", "differentiable", "fused")


@functools.lru_cache(maxsize=None)
def _parameters(fn):
    """``fn``'s parameters, asked once per function: optimizers ask on every step, and
    ``inspect.signature`` each time cost 5% of a small model's training."""
    return tuple(inspect.signature(fn).parameters.values())


def signature_defaults(fn):
    """The parameters of ``fn`` that have defaults, with them (``**kwargs`` left out)."""
    return {p.name: p.default for p in _parameters(fn)
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD}


def keyword_only(fn):
    """Names of ``fn``'s keyword-only parameters: the hyperparameters a rule takes."""
    return tuple(p.name for p in _parameters(fn) if p.kind is p.KEYWORD_ONLY)


@dataclass(frozen=True)
class Method:
    """One row of the table (see the module docstring)."""
    name: str
    step: Callable | None        # rules.<name>, or the loop of quasi_newton; None: torch only
    optimizer: str               # its class in curvlib.optim
    init: Callable | None = None  # the rule's state (first-order methods)
    defaults: dict = field(default_factory=dict)  # defaults this name changes
    fixed: dict = field(default_factory=dict)     # options this name fixes
    line_searches: tuple = (None,)                # line_search_fn values it accepts
    options: tuple = ()          # the class's further keywords (no effect on the step)

    @property
    def elementwise(self):
        """True for the first-order rules, whose every number steps on its own (so runs with
        different settings may share one batch of parameters)."""
        return self.init is not None

    @property
    def needs_model(self):
        return self.name == "kfac"

    def hyperparameters(self):
        """name -> default: the step's (and init's) keyword defaults, then this name's."""
        if self.step is None:  # a torch-only optimizer: its constructor is the source
            from . import optim
            found = signature_defaults(getattr(optim, self.optimizer).__init__)
        else:
            found = {**(signature_defaults(self.init) if self.init else {}), **signature_defaults(self.step)}
        return {**found, **self.defaults, **self.fixed}


def _sgd_family(name):
    defaults = {"momentum": 0.9} if name in ("momentum", "nesterov") else {}
    fixed = {"gd": {"momentum": 0.0, "nesterov": False}, "momentum": {"nesterov": False},
             "nesterov": {"nesterov": True}}.get(name, {})
    return Method(name, rules.sgd, "SGD", rules.init_sgd, defaults, fixed,
                  options=TORCH_SWITCHES)


#: name -> :class:`Method`, the one table
METHODS = {m.name: m for m in [
    *(_sgd_family(n) for n in ("sgd", "gd", "momentum", "nesterov")),
    Method("adagrad", rules.adagrad, "Adagrad", rules.init_adagrad, options=TORCH_SWITCHES),
    Method("rmsprop", rules.rmsprop, "RMSprop", rules.init_rmsprop, options=TORCH_SWITCHES),
    Method("adam", rules.adam, "Adam", rules.init_adam, options=TORCH_SWITCHES),
    Method("adamw", rules.adamw, "AdamW", rules.init_adam, options=TORCH_SWITCHES),
    Method("lbfgs", quasi_newton.lbfgs, "LBFGS", line_searches=(None, "strong_wolfe")),
    Method("newton", quasi_newton.newton_step, "Newton", line_searches=(None, "backtracking"),
           options=("tolerance_grad", "max_bytes")),
    Method("kfac", None, "KFAC"),
    Method("shampoo", None, "Shampoo"),
]}


def get(name, argname="name"):
    """The :class:`Method` called ``name`` (any case)."""
    if not isinstance(name, str):
        raise TypeError(f"{argname} must be a string, got {name!r}")
    check_choice(argname, name.lower(), list(METHODS))
    return METHODS[name.lower()]


# --------------------------------------------------------------------------------------
# Checks: one per hyperparameter name, the same for every method
# --------------------------------------------------------------------------------------
def _betas(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or \
            getattr(value, "ndim", 1) != 1 or len(value) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    return tuple(check_unit_interval(f"{name}[{i}]", b) for i, b in enumerate(value))


def _count(name, value):
    return check_int(name, value, minimum=1)


def _count_or_none(name, value):
    return None if value is None else _count(name, value)


_CHECKS = {
    "lr": lambda name, v: check_lr(v, name),
    "betas": _betas,
    "dampening": lambda name, v: check_unit_interval(name, v, closed_right=True),
    "alpha": check_unit_interval,
    "max_iter": _count, "history_size": _count, "max_eval": _count_or_none,
    **dict.fromkeys(("momentum", "weight_decay", "eps", "lr_decay", "initial_accumulator_value",
                     "damping", "tolerance_grad", "tolerance_change"), check_nonnegative),
    **dict.fromkeys(("nesterov", "maximize", "amsgrad", "bias_correction", "centered",
                     "decoupled_weight_decay", "adaptive_damping"), check_flag),
}


def check(name, hyper):
    """A checked copy of ``hyper`` for method ``name`` (keys it does not know pass through)."""
    method = get(name)
    h = {k: _CHECKS[k](k, v) if k in _CHECKS else v for k, v in hyper.items()}
    if "line_search_fn" in h and method.step is not None:
        check_choice("line_search_fn", h["line_search_fn"], method.line_searches)
    if method.name in ("momentum", "nesterov") and h.get("momentum", 1) <= 0:
        raise ValueError(f"momentum must be positive for {method.name!r}, got {h['momentum']}")
    if h.get("nesterov") and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise ValueError("nesterov=True requires momentum > 0 and dampening = 0, got "
                         f"momentum={h['momentum']}, dampening={h['dampening']}")
    if h.get("adaptive_damping"):
        if h["damping"] <= 0:
            raise ValueError(f"damping must be positive when adaptive_damping=True, got "
                             f"{h['damping']}")
        if h["line_search_fn"] is not None:
            raise ValueError("line_search_fn must be None when adaptive_damping=True")
    if "max_bytes" in h:
        h["max_bytes"] = check_max_bytes(h["max_bytes"])
    return h


def resolve(name, hyper, *, options=()):
    """Method ``name``'s complete hyperparameters: its defaults, updated with ``hyper``, checked.

    Keys outside the method's hyperparameters and the caller's ``options`` (for the
    optimizer classes, ``Method.options``) raise ``ValueError`` naming them, as does
    changing an option the name fixes (``nesterov`` for ``"nesterov"``).
    """
    method = get(name)
    known = method.hyperparameters()
    unknown = sorted(set(hyper) - set(known) - set(options))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} for {method.name!r}; "
                         f"it takes {', '.join(sorted(known))}")
    for option, value in method.fixed.items():
        if option in hyper and hyper[option] != value:
            raise ValueError(f"method {method.name!r} fixes {option}={value!r}, got "
                             f"{option}={hyper[option]!r}")
    return check(method.name, {**known, **hyper})


def make_rule(name, **hyper):
    """The rule of a first-order method, with its hyperparameters checked and bound.

    Returns ``(init, step)``: ``state = init(param)`` and ``step(param, grad, state)``
    (in place, returns ``param``), for numpy arrays or torch tensors. These are the calls
    the optimizer of the same name makes on each parameter (``foreach=False``), with the
    same defaults, so a path computed with them equals the optimizer's step for step.

    >>> import numpy as np
    >>> init, step = make_rule("adam", lr=0.1)
    >>> x = np.array([1.0, -2.0]); state = init(x)
    >>> step(x, 2 * x, state)  # one Adam step on f(x) = |x|^2
    array([ 0.9, -1.9])
    """
    method = get(name)
    if not method.elementwise:
        firsts = [n for n, m in METHODS.items() if m.elementwise]
        raise ValueError(f"name must be a first-order method ({', '.join(firsts)}) for a "
                         f"rule, got {name!r}")
    h = resolve(name, hyper)
    init_kw = {k: h[k] for k in signature_defaults(method.init)}
    step_kw = {k: h[k] for k in signature_defaults(method.step)}

    def init(param):
        return method.init(param, **init_kw)

    def step(param, grad, state):
        return method.step(param, grad, state, **step_kw)

    return init, step
