"""Argument checks shared by every public function: bad input fails early, naming the argument."""
from __future__ import annotations

import math
import numbers

__all__ = ["check_real", "check_positive", "check_nonnegative", "check_unit_interval",
           "check_int", "check_choice"]


def check_real(name, value):
    """``value`` must be a finite real number (bool excluded)."""
    if isinstance(value, (bool, str, bytes)):  # float() would accept these
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not isinstance(value, numbers.Real):
        try:  # 0-d tensors and arrays
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a real number, got {value!r}") from None
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


def check_unit_interval(name, value, *, closed_right=False):
    """``value`` in [0, 1) (or [0, 1] with ``closed_right``)."""
    value = check_real(name, value)
    ok = 0 <= value <= 1 if closed_right else 0 <= value < 1
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed_right else ')'}, got {value}")
    return value


def check_int(name, value, *, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value
