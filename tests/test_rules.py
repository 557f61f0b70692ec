"""curvlib.rules: one code for numpy and torch, and each rule equal to its formula by hand."""
import math

import numpy as np
import pytest
import torch

from curvlib import rules

# (rule name, hyperparameters); the init gets the same keywords (it ignores the others)
SETTINGS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("heavy_ball", dict(lr=0.05, momentum=0.9)),
    ("adagrad", dict(lr=0.3)),
    ("adagrad", dict(lr=0.3, lr_decay=0.1, weight_decay=0.01, initial_accumulator_value=0.2)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01)),
    ("adam", dict(lr=0.05)),
    ("adam", dict(lr=0.05, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.01)),
    ("adam", dict(lr=0.05, bias_correction=False, maximize=True)),
    ("adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("adamw", dict(lr=0.05)),
    ("adamw", dict(lr=0.05, weight_decay=0.1, amsgrad=True, bias_correction=False)),
]
IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in h.items()) for n, h in SETTINGS]
INIT_OF = {"sgd": rules.init_sgd, "heavy_ball": rules.init_heavy_ball,
           "adagrad": rules.init_adagrad, "rmsprop": rules.init_rmsprop,
           "adam": rules.init_adam, "adamw": rules.init_adam}

X0 = np.array([1.5, -0.7, 0.2, 2.0, -1.1, 0.0])
TARGET = np.array([0.5, 0.5, -0.3, 1.0, 0.2, -0.4])
CURV = np.array([1.0, 4.0, 0.5, 10.0, 2.0, 0.1])


def grad(x):
    """Gradient of a separable quartic; only + - * so numpy and torch round alike."""
    return CURV * (x - TARGET) + 0.05 * x * x * x if isinstance(x, np.ndarray) else \
        torch.from_numpy(CURV) * (x - torch.from_numpy(TARGET)) + 0.05 * x * x * x


INIT_ONLY = {"initial_accumulator_value"}


def split(hyper):
    """(init keywords, step keywords); maximize runs on -f, so the path still converges."""
    sign = -1.0 if hyper.get("maximize") else 1.0
    return hyper, {k: v for k, v in hyper.items() if k not in INIT_ONLY}, sign


def path(name, hyper, x, steps=40):
    init, step = INIT_OF[name], getattr(rules, name)
    init_kw, step_kw, sign = split(hyper)
    state = init(x, **init_kw)
    xs = []
    for _ in range(steps):
        out = step(x, sign * grad(x), state, **step_kw)
        assert out is x  # in place, and returns param
        xs.append(np.array(x.tolist()))
    return np.array(xs), state


def as_numpy(v):
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


# torch's float64 sqrt on CPU is not correctly rounded (it is off by one unit in the last
# place for about 1% of inputs, measured), numpy's is; every other operation the rules use
# rounds identically in both. Hence agreement to rounding, not bit for bit.
RTOL = 1e-13


@pytest.mark.parametrize("name,hyper", SETTINGS, ids=IDS)
def test_numpy_and_torch_give_the_same_path(name, hyper):
    np_path, np_state = path(name, hyper, X0.copy())
    t_path, t_state = path(name, hyper, torch.tensor(X0))
    assert np.isfinite(np_path).all() and not np.allclose(np_path[0], np_path[-1])
    np.testing.assert_allclose(t_path, np_path, rtol=RTOL, atol=1e-300)
    assert np_state.keys() == t_state.keys()
    for key in np_state:
        if np_state[key] is None:
            assert t_state[key] is None
        else:
            np.testing.assert_allclose(as_numpy(t_state[key]), np_state[key], rtol=RTOL,
                                       atol=1e-300)
    assert np_state["step"] == t_state["step"] == 40


@pytest.mark.parametrize("name,hyper", SETTINGS, ids=IDS)
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_rules_leave_the_gradient_alone(name, hyper, lib):
    x = X0.copy() if lib == "numpy" else torch.tensor(X0)
    init_kw, step_kw, sign = split(hyper)
    state = INIT_OF[name](x, **init_kw)
    for _ in range(3):
        g = sign * grad(x)
        g_before = np.array(g.tolist())
        getattr(rules, name)(x, g, state, **step_kw)
        np.testing.assert_array_equal(np.array(g.tolist()), g_before)


def test_zeros_like_keeps_library_and_dtype():
    z = rules.zeros_like(torch.ones(2, 3, dtype=torch.float64))
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float64 and z.shape == (2, 3)
    z = rules.zeros_like(np.ones(4, dtype=np.float32))
    assert isinstance(z, np.ndarray) and z.dtype == np.float32 and not z.any()


# --------------------------------------------------------------------------------------
# Momentum: the lecture's heavy ball and Nesterov vs torch's form
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_heavy_ball_equals_sgd_momentum_with_constant_lr(momentum):
    lr = 0.02
    x_hb, x_sgd = X0.copy(), X0.copy()
    s_hb, s_sgd = rules.init_heavy_ball(x_hb), rules.init_sgd(x_sgd)
    for _ in range(60):
        rules.heavy_ball(x_hb, grad(x_hb), s_hb, lr=lr, momentum=momentum)
        rules.sgd(x_sgd, grad(x_sgd), s_sgd, lr=lr, momentum=momentum)
        np.testing.assert_allclose(x_hb, x_sgd, rtol=1e-12, atol=1e-14)
        # the lecture's velocity is lr times torch's momentum buffer
        np.testing.assert_allclose(s_hb["velocity"], lr * s_sgd["momentum_buffer"],
                                   rtol=1e-12, atol=1e-14)


def test_heavy_ball_is_the_lecture_formula():
    """v_t = 0.9 v_{t-1} + lr g_t, theta_{t+1} = theta_t - v_t, written out."""
    lr, x, v = 0.03, X0.copy(), np.zeros_like(X0)
    y = X0.copy()
    state = rules.init_heavy_ball(y)
    for _ in range(30):
        v = 0.9 * v + lr * grad(x)
        x = x - v
        rules.heavy_ball(y, grad(y), state, lr=lr, momentum=0.9)
    np.testing.assert_allclose(y, x, rtol=1e-13)


def test_torch_nesterov_iterates_are_the_lecture_lookahead_points():
    """The lecture's NAG, v_t = mu v_{t-1} + lr grad(theta_t - mu v_{t-1}),
    theta_{t+1} = theta_t - v_t, and torch's nesterov=True (Sutskever et al. 2013 in
    Bengio's reformulation) take the same steps: torch's iterate is the lecture's look-ahead
    point theta_t - mu v_{t-1}."""
    lr, mu = 0.02, 0.9
    theta, v = X0.copy(), np.zeros_like(X0)
    phi = X0.copy()
    state = rules.init_sgd(phi)
    for _ in range(60):
        v = mu * v + lr * grad(theta - mu * v)
        theta = theta - v
        rules.sgd(phi, grad(phi), state, lr=lr, momentum=mu, nesterov=True)
        np.testing.assert_allclose(phi, theta - mu * v, rtol=1e-11, atol=1e-13)
    # and the lecture's form is what heavy_ball computes given the look-ahead gradient
    x = X0.copy()
    s = rules.init_heavy_ball(x)
    for _ in range(60):
        rules.heavy_ball(x, grad(x - mu * s["velocity"]), s, lr=lr, momentum=mu)
    np.testing.assert_allclose(x, theta, rtol=1e-12, atol=1e-14)


def test_sgd_maximize_is_sgd_on_the_negated_gradient():
    a, b = X0.copy(), X0.copy()
    sa, sb = rules.init_sgd(a), rules.init_sgd(b)
    for _ in range(20):  # maximize -f, minimize f
        rules.sgd(a, -grad(a), sa, lr=0.01, momentum=0.9, maximize=True)
        rules.sgd(b, grad(b), sb, lr=0.01, momentum=0.9)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and not np.array_equal(a, X0)


def test_sgd_weight_decay_is_l2_penalty():
    wd = 0.1
    a, b = X0.copy(), X0.copy()
    sa, sb = rules.init_sgd(a), rules.init_sgd(b)
    for _ in range(20):
        rules.sgd(a, grad(a), sa, lr=0.01, momentum=0.5, weight_decay=wd)
        rules.sgd(b, grad(b) + wd * b, sb, lr=0.01, momentum=0.5)
    np.testing.assert_allclose(a, b, rtol=1e-14)


# --------------------------------------------------------------------------------------
# Adam written out by hand
# --------------------------------------------------------------------------------------
def test_adam_without_bias_correction_is_the_lecture_formula():
    """m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, theta -= 0.001 m / (sqrt(v) + 1e-8)."""
    x, m, v = X0.copy(), np.zeros(6), np.zeros(6)
    y = X0.copy()
    state = rules.init_adam(y)
    for _ in range(50):
        g = grad(x)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g ** 2
        x = x - 0.001 / (np.sqrt(v) + 1e-8) * m
        rules.adam(y, grad(y), state, lr=0.001, bias_correction=False)
    np.testing.assert_allclose(y, x, rtol=1e-13)
    np.testing.assert_allclose(state["exp_avg"], m, rtol=1e-13)
    np.testing.assert_allclose(state["exp_avg_sq"], v, rtol=1e-13)


def test_adam_is_kingma_ba_algorithm_1():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    x, m, v = X0.copy(), np.zeros(6), np.zeros(6)
    y = X0.copy()
    state = rules.init_adam(y)
    for t in range(1, 51):
        g = grad(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        rules.adam(y, grad(y), state, lr=lr)
    np.testing.assert_allclose(y, x, rtol=1e-12)


def test_lecture_adam_first_step_size():
    """Without bias correction the first step is (1-b1)/sqrt(1-b2) = 3.16 times lr per
    coordinate (for |g| >> eps); with it, exactly lr."""
    for bias_correction, expected in ((False, 0.1 / math.sqrt(0.001)), (True, 1.0)):
        x = X0.copy()
        g = grad(x)
        state = rules.init_adam(x)
        rules.adam(x, g, state, lr=1e-3, bias_correction=bias_correction)
        np.testing.assert_allclose(np.abs(x - X0) / 1e-3, expected, rtol=1e-4)  # eps


def test_adamw_is_decay_then_adam():
    lr, wd = 0.01, 0.1
    x = X0.copy()
    y = X0.copy()
    sx, sy = rules.init_adam(x), rules.init_adam(y)
    for _ in range(30):
        g = grad(y)  # the gradient at the weights before the decay
        y *= 1 - lr * wd
        rules.adam(y, g, sy, lr=lr)
        rules.adamw(x, grad(x), sx, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(x, y, rtol=1e-14)


def test_adam_l2_weight_decay_is_added_to_the_gradient():
    lr, wd = 0.01, 0.1
    a, b = X0.copy(), X0.copy()
    sa, sb = rules.init_adam(a), rules.init_adam(b)
    for _ in range(30):
        rules.adam(a, grad(a), sa, lr=lr, weight_decay=wd)
        rules.adam(b, grad(b) + wd * b, sb, lr=lr)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_amsgrad_keeps_the_running_maximum():
    for x in (X0.copy(), torch.tensor(X0)):
        state = rules.init_adam(x, amsgrad=True)
        prev = np.zeros(6)
        for t in range(40):
            g = grad(x) * (5.0 if t == 3 else 1.0)  # one large gradient, then smaller ones
            rules.adam(x, g, state, lr=0.01, betas=(0.9, 0.5), amsgrad=True)
            vmax, v = as_numpy(state["max_exp_avg_sq"]), as_numpy(state["exp_avg_sq"])
            np.testing.assert_array_equal(vmax, np.maximum(prev, v))
            prev = vmax.copy()
        assert (vmax > v).any()


# --------------------------------------------------------------------------------------
# AdaGrad and RMSProp written out by hand
# --------------------------------------------------------------------------------------
def test_adagrad_by_hand():
    lr, decay, eps, s0 = 0.5, 0.05, 1e-10, 0.1
    x, s = X0.copy(), np.full(6, s0)
    y = X0.copy()
    state = rules.init_adagrad(y, initial_accumulator_value=s0)
    for t in range(1, 41):
        g = grad(x)
        s = s + g * g
        x = x - lr / (1 + (t - 1) * decay) * g / (np.sqrt(s) + eps)
        rules.adagrad(y, grad(y), state, lr=lr, lr_decay=decay, eps=eps)
    np.testing.assert_allclose(y, x, rtol=1e-13)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_rmsprop_by_hand(centered, momentum):
    lr, alpha, eps = 0.01, 0.95, 1e-8
    x, v, mg, buf = X0.copy(), np.zeros(6), np.zeros(6), np.zeros(6)
    y = X0.copy()
    state = rules.init_rmsprop(y, momentum=momentum, centered=centered)
    for _ in range(40):
        g = grad(x)
        v = alpha * v + (1 - alpha) * g * g
        mg = alpha * mg + (1 - alpha) * g
        denom = np.sqrt(v - mg * mg if centered else v) + eps
        if momentum:
            buf = momentum * buf + g / denom
            x = x - lr * buf
        else:
            x = x - lr * g / denom
        rules.rmsprop(y, grad(y), state, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                      centered=centered)
    np.testing.assert_allclose(y, x, rtol=1e-12)
    assert ("grad_avg" in state) == centered and ("momentum_buffer" in state) == (momentum > 0)
