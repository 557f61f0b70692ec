"""curvbook.stats: paired ratios with a 95% interval, and the verdict they support."""
import math

import pytest

from curvbook.stats import paired_ratio, verdict


def test_paired_ratio():
    r, lo, hi = paired_ratio([2.0, 4.0, 8.0], [1.0, 2.0, 4.0])
    assert r == lo == hi == pytest.approx(2.0)
    r, lo, hi = paired_ratio([1.0, 1.1, 0.9, 1.05], [1.0, 1.0, 1.0, 1.0])
    assert lo < 1 < hi and lo < r < hi
    with pytest.raises(ValueError, match="numerators"):
        paired_ratio([1.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0, -1.0], [1.0, 1.0])
    assert verdict(1.05, 1.2) == "first cheaper" and verdict(0.5, 0.9, "a", "b") == "b"
    assert verdict(0.9, 1.1) == "inconclusive"
    with pytest.raises(ValueError, match="low"):
        verdict(1.2, 1.1)


def test_paired_ratio_interval_is_a_t_interval_on_log_ratios():
    ratios = [1.0, 2.0, 4.0]  # log2 ratios 0, 1, 2: mean 1, sd 1, t(0.975, 2) = 4.303
    r, lo, hi = paired_ratio(ratios, [1.0, 1.0, 1.0])
    assert r == pytest.approx(2.0)
    half = 4.302652729911275 * math.log(2) / math.sqrt(3)
    assert lo == pytest.approx(2.0 * math.exp(-half)) and hi == pytest.approx(2.0 * math.exp(half))
