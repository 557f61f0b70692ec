"""Chapter 5's algorithm cells (Adam with an L2 term or decoupled decay; warmup + cosine) equal
curvlib's implementations."""
import numpy as np
import pytest
import torch

from curvlib import rules, schedules
from curvlib.optim import factory
from notebook_cells import algorithm_cells, algorithm_namespace, cell_function_lengths

NOTEBOOK = "05_regularization.ipynb"


@pytest.fixture(scope="module")
def cells():
    return algorithm_namespace(NOTEBOOK)


def test_the_cells_define_short_functions():
    lengths = cell_function_lengths(NOTEBOOK)
    assert {"adam_step", "warmup_cosine"} <= set(lengths)
    assert all(3 <= n <= 25 for n in lengths.values()), lengths


def _gradient(theta, k):
    """A deterministic, changing gradient: a quadratic's plus a drift, some coordinates silent."""
    g = np.linspace(-2.0, 3.0, theta.size) * theta + 0.1 * np.sin(k + np.arange(theta.size))
    g[:2] = 0.0   # "silent" coordinates: only the decay moves them
    return g


@pytest.mark.parametrize("decoupled", [False, True], ids=["L2", "AdamW"])
@pytest.mark.parametrize("lr, weight_decay", [(1e-3, 1e-2), (3e-2, 0.5)])
def test_adam_step_equals_curvlib_rules(cells, decoupled, lr, weight_decay):
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=7)
    ours, m, v = theta0.copy(), np.zeros(7), np.zeros(7)
    ref, state = theta0.copy(), rules.init_adam(theta0)
    for t in range(1, 101):
        ours, m, v = cells["adam_step"](ours, _gradient(ours, t), m, v, t, lr, weight_decay, decoupled)
        rules.adam(ref, _gradient(ref, t), state, lr=lr, weight_decay=weight_decay,
                   decoupled_weight_decay=decoupled)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
    assert not np.allclose(ours, theta0)


@pytest.mark.parametrize("name, decoupled", [("adam", False), ("adamw", True)])
def test_adam_step_equals_the_torch_optimizers_the_chapter_trains(cells, name, decoupled):
    """The factories the experiments use (Adam + L2, AdamW) take the same steps, in float64."""
    theta0 = np.random.default_rng(1).normal(size=5)
    p = torch.tensor(theta0, requires_grad=True)
    opt = factory(name, weight_decay=0.1)([p], 1e-2)
    ours, m, v = theta0.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, 51):
        g = _gradient(p.detach().numpy(), t)
        p.grad = torch.tensor(g)
        opt.step()
        ours, m, v = cells["adam_step"](ours, _gradient(ours, t), m, v, t, 1e-2, 0.1, decoupled)
    np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_l2_and_decoupled_differ(cells):
    """The comparison is sharp: on a silent weight the two forms end far apart."""
    out = {}
    for decoupled in (False, True):
        theta, m, v = np.array([1.0]), np.zeros(1), np.zeros(1)
        for t in range(1, 301):
            theta, m, v = cells["adam_step"](theta, np.zeros(1), m, v, t, 1e-3, 1e-2, decoupled)
        out[decoupled] = theta[0]
    assert out[True] == pytest.approx((1 - 1e-5) ** 300, rel=1e-12)
    assert out[False] < 0.75   # about lr per step: 1 - 300 * 1e-3


@pytest.mark.parametrize("warmup, total, min_lr", [(0, 50, 0.0), (10, 100, 0.0), (25, 60, 0.01), (1, 2, 0.0)])
def test_warmup_cosine_equals_curvlib(cells, warmup, total, min_lr):
    ours = [cells["warmup_cosine"](t, 0.3, warmup, total, min_lr) for t in range(total + 20)]
    ref = [schedules.warmup_cosine(t, base_lr=0.3, warmup_steps=warmup, total_steps=total,
                                   min_lr=min_lr) for t in range(total + 20)]
    np.testing.assert_allclose(ours, ref, rtol=1e-14, atol=1e-16)
    assert max(ours) == pytest.approx(0.3) and ours[-1] == pytest.approx(min_lr)
