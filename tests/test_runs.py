"""curvlib.runs: one thread, the divergence rule and the gradient-spike rule (numpy only)."""
import numpy as np
import pytest

from curvlib import runs


@pytest.mark.parametrize("values, expected", [
    ([1.0, 0.5, 0.25], None),
    ([1.0, 2.0, np.nan, 1.0], 2),
    ([1.0, np.inf], 1),
    ([1.0, 9e3, 1.1e4], 2),                        # past 1e4 x max(|first|, 1)
    ([0.001, 9e3, 1.1e4], 2),                      # a tiny start counts as 1
    ([100.0, 1e5, 1.1e6], 2),                      # relative to a large start
    ([-1.0, -2e4], 1),                             # by magnitude
    ([[0.0, 0.0], [1.0, 2.0], [3.0, np.nan]], 2),  # rows of a path
    ([[1.0, 1.0], [1.0, -2e4]], 1),
    ([np.nan, 1.0], 0),
    ([], None),
])
def test_divergence_step(values, expected):
    assert runs.divergence_step(values) == expected


def test_one_rule_for_a_stream_and_a_history():
    loss = np.array([2.3, 5.0, 3e3, 3e4, 1.0])
    limit = runs.divergence_limit(loss[0])
    assert limit == pytest.approx(2.3e4)
    flags = runs.is_diverged(loss, limit)
    assert flags.tolist() == [False, False, False, True, False]
    assert runs.divergence_step(loss) == int(np.argmax(flags))
    assert runs.divergence_step(loss, factor=1e5) is None
    np.testing.assert_array_equal(runs.divergence_limit([np.nan, 0.5, 3.0]), [1e4, 1e4, 3e4])
    with pytest.raises(ValueError, match="factor"):
        runs.divergence_step(loss, factor=0)


def test_spike_rule_and_first_spike():
    assert runs.is_spike(11.0, [1.0, 1.0, 100.0], factor=10)      # median, not mean
    assert not runs.is_spike(9.0, [1.0, 1.0], factor=10)
    assert not runs.is_spike(11.0, [1.0], factor=10, floor=20.0)
    assert not runs.is_spike(5.0, [])
    gn = np.r_[np.ones(10), 0.01 * np.ones(30), 0.5, np.ones(5)]
    assert runs.first_spike(gn) is None              # 50x the median, but below the initial norm
    gn[45] = 100.0
    assert runs.first_spike(gn) == 45
    assert runs.first_spike(np.r_[1.0, np.nan, 100.0]) is None   # a divergence ends the search
    assert runs.first_spike(np.r_[1.0, 1.0, 50.0], floor=0.0, window=1) == 2
    with pytest.raises(ValueError, match="window"):
        runs.first_spike(gn, window=0)


def test_single_thread_pins_and_restores():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with runs.single_thread():
            assert torch.get_num_threads() == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())

        @runs.single_thread()
        def inside():
            return torch.get_num_threads()

        assert inside() == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
