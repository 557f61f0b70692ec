"""Argument checks shared by every public function: bad input fails early, naming the argument.

Each checker returns the value in its plain form (a ``float``, ``int`` or ``bool``), so a
caller writes ``lr = check_lr(lr)`` and goes on. A 0-dimensional numpy array or torch tensor
(or any one-element one) counts as the number it holds.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_real", "check_positive", "check_nonnegative", "check_unit_interval",
           "check_int", "check_choice", "check_flag", "check_lr", "check_max_bytes",
           "check_size", "MAX_BYTES"]

#: The default limit on one dense array that curvlib allocates (a Hessian, the matrix of a
#: Newton solve, a grid of values, an image): 2 GiB. Every function that would allocate one
#: estimates its size first and refuses a larger one with a ``ValueError``; its
#: ``max_bytes`` argument raises the limit (``math.inf`` removes it).
MAX_BYTES = 2 ** 31


def check_real(name, value):
    """``value`` must be a finite real number (bool excluded)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):  # float() would accept these
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not isinstance(value, numbers.Real):
        if getattr(value, "requires_grad", False):
            raise ValueError(f"{name} must not require grad (differentiable optimizers are "
                             "not supported)")
        size = math.prod(getattr(value, "shape", ()))
        if size != 1:
            raise ValueError(f"{name} as an array must have one element, got shape "
                             f"{tuple(value.shape)}")
        item = value.item() if hasattr(value, "item") else value  # tensors and arrays
        if isinstance(item, (bool, str, bytes)) or not isinstance(item, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        value = item
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(name, value):
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def check_nonnegative(name, value):
    value = check_real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def check_lr(value, name="lr"):
    """A learning rate: a finite number >= 0 (torch.optim also takes a one-element tensor)."""
    return check_nonnegative(name, value)


def check_unit_interval(name, value, *, closed_right=False):
    """``value`` in [0, 1) (or [0, 1] with ``closed_right``)."""
    value = check_real(name, value)
    ok = 0 <= value <= 1 if closed_right else 0 <= value < 1
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed_right else ')'}, got {value}")
    return value


def check_int(name, value, *, minimum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_flag(name, value):
    """``value`` must be ``True`` or ``False`` (numpy's bool too; not 1, "yes" or None)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """``value`` must be one of ``choices`` (which may include ``None``)."""
    for choice in choices:
        if value is choice or (value is not None and choice is not None
                               and type(value) is not bool and _equal(value, choice)):
            return value
    listed = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{name} must be one of {listed}, got {value!r}")


def _equal(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # an array compared with a string, say
        return False


def check_max_bytes(max_bytes, name="max_bytes"):
    """A size limit in bytes: a positive number, ``math.inf`` for none (NaN is refused)."""
    if isinstance(max_bytes, float) and max_bytes == math.inf:
        return max_bytes
    return check_positive(name, max_bytes)


def check_size(what, need, max_bytes=MAX_BYTES, *, name="max_bytes"):
    """Refuse to allocate ``need`` bytes for ``what`` when that exceeds ``max_bytes``.

    The message names the array, its size and the argument that overrides the limit.
    """
    max_bytes = check_max_bytes(max_bytes, name)
    if need > max_bytes:
        raise ValueError(f"{what} would need {_human(need)} ({need:.4g} bytes), more than "
                         f"{name}={max_bytes:.4g}; pass a larger {name} to allow it")
    return need


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024


#: param-group keys an optimizer's state dict may lack (torch.optim's implementation switches
#: and the few keys curvlib adds to a torch optimizer's): a torch.optim state dict loads
_OPTIONAL_GROUP_KEYS = frozenset({"foreach", "capturable", "differentiable", "fused", "maximize",
                                  "decoupled_weight_decay", "bias_correction", "beta1",
                                  "graft_beta2", "max_bytes", "tolerance_grad"})


def check_state_dict(optimizer, state_dict):
    """``state_dict`` must be a state dict of ``optimizer``'s kind (``TypeError``/``ValueError``).

    Its param groups must carry every hyperparameter ``optimizer`` steps with: an Adam state
    dict lacks SGD's ``momentum``, so it is refused by SGD instead of silently running SGD
    with Adam's learning rate. The same class's (or torch.optim's twin's) state dict loads.
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    groups = state_dict.get("param_groups")
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("state_dict must have a 'param_groups' list of dicts")
    required = set(optimizer.defaults) - _OPTIONAL_GROUP_KEYS
    for group in groups:
        missing = sorted(required - set(group))
        if missing:
            raise ValueError(f"state_dict is not a {type(optimizer).__name__} state dict: its "
                             f"param groups lack {', '.join(missing)}")


class CheckedStateDict:
    """Mixin for a ``torch.optim.Optimizer`` subclass (listed before it): ``load_state_dict``
    refuses a state dict of another kind (:func:`check_state_dict`) before torch loads it."""

    def load_state_dict(self, state_dict):
        """Load a state dict saved by an optimizer of this kind (refused, naming ``state_dict``,
        when its param groups lack this optimizer's hyperparameters); see
        ``torch.optim.Optimizer.load_state_dict``."""
        check_state_dict(self, state_dict)  # an Adam state dict is not an SGD one
        super().load_state_dict(state_dict)
