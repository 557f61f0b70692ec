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
           "check_int", "check_choice", "check_flag", "check_lr"]


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
