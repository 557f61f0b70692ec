"""curvbook.stats: paired ratios with a 95% interval, and the verdict they support."""
import math

import numpy as np
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


def test_median_interval_from_order_statistics():
    from curvbook.stats import median_interval
    # 20 values: x(6) to x(15), coverage 95.9% (x(7) to x(14) would give only 88.5%)
    assert median_interval(np.arange(1.0, 21.0)) == (10.5, 6.0, 15.0)
    # diverged runs are infinite values, not errors; the median stays finite
    m, lo, hi = median_interval([1, 2, 3, 4, 5, 6, np.inf])
    assert (m, lo, hi) == (4.0, 1.0, np.inf)
    # it covers the true median at least 95% of the time, whatever the distribution
    rng = np.random.default_rng(0)
    draws = rng.lognormal(0.0, 3.0, size=(4000, 20))  # heavy-tailed, true median 1
    hits = np.mean([lo <= 1.0 <= hi for _, lo, hi in map(median_interval, draws)])
    assert 0.95 <= hits <= 0.975


@pytest.mark.parametrize("values, confidence, match", [
    ([1, 2, 3, 4, 5], 0.95, "values"), ([1.0, np.nan] * 5, 0.95, "values"),
    (np.ones((4, 5)), 0.95, "values"), (range(20), 1.0, "confidence")])
def test_median_interval_refuses_bad_input(values, confidence, match):
    from curvbook.stats import median_interval
    with pytest.raises(ValueError, match=match):
        median_interval(values, confidence)
