"""Paired comparisons for the book: ratios over seeds with a 95% interval, and the verdict.

A comparison between two methods run from the same seeds is decided by the paired ratio of
their costs: the geometric mean of the per-seed ratios, with a t-interval on the log ratios.
The verdict names the cheaper method only when the interval excludes 1; otherwise the
evidence is "inconclusive".
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["paired_ratio", "median_interval", "verdict"]


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


def median_interval(values, confidence=0.95):
    r"""The median of ``values`` and a distribution-free interval for it, from order statistics.

    The interval is :math:`[x_{(j)}, x_{(n+1-j)}]` with the largest :math:`j` whose coverage
    :math:`1 - 2\,P(\mathrm{Bin}(n, \tfrac12) < j)` is at least ``confidence`` (e.g.
    :math:`x_{(6)}` to :math:`x_{(15)}` of 20 values, 95.9%). It needs no assumption on the
    distribution, so it suits heavy-tailed outcomes such as chaotic runs, and ``inf`` (a run
    that diverged) is an allowed value. Returns ``(median, low, high)``.
    """
    x = np.sort(np.asarray(values, dtype=float))
    if x.ndim != 1 or np.isnan(x).any():
        raise ValueError(f"values must be 1-D without NaN, got shape {x.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = len(x)
    j = _median_rank(n, float(confidence))
    if j == 0:
        raise ValueError(f"values must hold enough numbers for a {confidence:.0%} interval "
                         f"of the median (6 for 95%), got {n}")
    return float(np.median(x)), float(x[j - 1]), float(x[n - j])


@lru_cache(maxsize=None)
def _median_rank(n, confidence):
    """1-based rank of the lower end of :func:`median_interval` for ``n`` values (0: none)."""
    from scipy import stats
    j = 0
    for k in range(1, n // 2 + 1):
        if 1 - 2 * float(stats.binom.cdf(k - 1, n, 0.5)) >= confidence:
            j = k
    return j


def verdict(low, high, above="first cheaper", below="second cheaper"):
    """``above`` if the whole interval ``[low, high]`` of a ratio lies above 1, ``below`` if
    it lies below 1, else ``"inconclusive"``."""
    if not low <= high:
        raise ValueError(f"low must not exceed high, got {low} and {high}")
    return above if low > 1 else below if high < 1 else "inconclusive"
