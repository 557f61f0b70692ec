"""Paired comparisons for the book: ratios over seeds with a 95% interval, and the verdict.

A comparison between two methods run from the same seeds is decided by the paired ratio of
their costs: the geometric mean of the per-seed ratios, with a t-interval on the log ratios.
The verdict names the cheaper method only when the interval excludes 1; otherwise the
evidence is "inconclusive".
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["paired_ratio", "verdict"]


def paired_ratio(numerators, denominators, confidence=0.95):
    r"""Geometric mean of the paired ratios ``numerators / denominators`` and its interval.

    A t-interval on the per-pair :math:`\log` ratios, mapped back by :math:`\exp`. Returns
    ``(ratio, low, high)``; ``low == high == ratio`` when every pair gives the same ratio.
    """
    from scipy import stats
    a = np.asarray(numerators, dtype=float)
    b = np.asarray(denominators, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"numerators and denominators must be 1-D of one length >= 2, "
                         f"got {a.shape} and {b.shape}")
    if np.any(a <= 0) or np.any(b <= 0) or not np.all(np.isfinite(a / b)):
        raise ValueError("numerators and denominators must be finite and positive")
    d = np.log(a / b)
    mean, sem = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * sem
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def verdict(low, high, above="first cheaper", below="second cheaper"):
    """``above`` if the whole interval ``[low, high]`` of a ratio lies above 1, ``below`` if
    it lies below 1, else ``"inconclusive"``."""
    if not low <= high:
        raise ValueError(f"low must not exceed high, got {low} and {high}")
    return above if low > 1 else below if high < 1 else "inconclusive"
