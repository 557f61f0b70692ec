"""curvlib.curvature against dense Hessians of small float64 models (the spectrum
functions built on it: tests/test_spectrum.py)."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from curvlib import curvature as C

torch.set_num_threads(1)  # the test machine is shared; tiny problems gain nothing from threads


def mlp(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 7)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(7))
    layers += [nn.Tanh(), nn.Linear(7, 3)]
    return nn.Sequential(*layers).double()


def batch(seed=1, size=24):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(size, 5, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (size,), generator=g))


@pytest.fixture
def problem():
    model = mlp()
    x, y = batch()
    f, w = C.flat_loss(model, F.cross_entropy, x, y)
    return model, f, w


def rel(a, b):
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


# -- flat_loss -------------------------------------------------------------------------
def test_flat_loss_matches_model(problem):
    model, f, w = problem
    x, y = batch()
    assert w.shape == (sum(p.numel() for p in model.parameters()),)
    assert torch.equal(w[:35], model[0].weight.detach().reshape(-1))
    assert f(w).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-14)
    w2 = w + 0.1
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    assert f(w2).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-14)


def test_flat_loss_holds_frozen_parameters_fixed():
    model = mlp()
    model[0].weight.requires_grad_(False)
    x, y = batch()
    f, w = C.flat_loss(model, F.cross_entropy, x, y)
    assert w.numel() == 7 + 21 + 3
    assert f(w).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-14)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_running_statistics_never_change(training):
    model = mlp(batch_norm=True)
    x, y = batch()
    with torch.no_grad():  # give the running statistics non-trivial values
        model.train()
        model(x * 2 + 1)
    model.train(training)
    before = {k: v.clone() for k, v in model.named_buffers()}
    f, w = C.flat_loss(model, F.cross_entropy, x, y)
    C.hvp(f, w, torch.ones_like(w))
    C.hvp(f, w, torch.ones_like(w), method="forward")
    C.hessian(f, w)
    C.top_eigenvalues(f, w, 2)
    C.hutchinson_trace(f, w, 4)
    C.spectral_density(f, w, steps=5, runs=2)
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    # training mode: batch statistics (as model(x) in train mode); eval: running statistics
    saved = {k: v.clone() for k, v in model.named_buffers()}
    expected = F.cross_entropy(model(x), y).item()
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(saved[k])
    assert f(w).item() == pytest.approx(expected, rel=1e-13)
    if training:
        model.eval()
        assert abs(F.cross_entropy(model(x), y).item() - expected) > 1e-3


# -- Hessian-vector products and the dense Hessian --------------------------------------
def test_hvp_matches_dense_torch_func_hessian(problem):
    _, f, w = problem
    H = torch.func.hessian(f)(w)
    g = torch.Generator().manual_seed(2)
    op = C.hvp_operator(f, w)
    for _ in range(3):
        v = torch.randn(w.shape, generator=g, dtype=w.dtype)
        assert rel(C.hvp(f, w, v), H @ v) < 1e-10
        assert rel(C.hvp(f, w, v, method="forward"), H @ v) < 1e-10
        assert rel(op(v), H @ v) < 1e-10
    assert torch.allclose(C.hessian(f, w), H, rtol=0, atol=1e-13)


def test_dense_hessian_with_batch_norm_matches_finite_differences():
    model = mlp(batch_norm=True)
    x, y = batch()
    f, w = C.flat_loss(model, F.cross_entropy, x, y)
    H = C.hessian(f, w)
    assert torch.allclose(H, H.T, atol=1e-14)
    assert torch.allclose(H, torch.autograd.functional.hessian(f, w), atol=1e-13)
    grad = torch.func.grad(f)
    h = 1e-5
    for i in (0, 36, 42, w.numel() - 1):  # a weight, BN gamma, BN beta, last bias
        e = torch.zeros_like(w)
        e[i] = h
        column = (grad(w + e) - grad(w - e)) / (2 * h)
        assert torch.allclose(column, H[:, i], atol=1e-8)


def test_hessian_refuses_what_will_not_fit(problem):
    _, f, w = problem
    with pytest.raises(ValueError, match="max_bytes"):
        C.hessian(f, w, max_bytes=100)


# -- gradient-norm monitoring ----------------------------------------------------------
def test_monitor_records_the_gradient_of_each_step_with_a_closure():
    model = mlp()
    x, y = batch()
    monitor = C.GradNormMonitor(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    handle = monitor.attach(opt)
    seen = []

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        seen.append(C.grad_norms(model)[0])
        return loss

    for _ in range(3):
        opt.step(closure)
    handle.remove()
    assert monitor.global_norms == pytest.approx(seen, rel=1e-12)
    assert monitor.global_norms[0] > 0


def test_grad_norms_and_monitor():
    model = mlp()
    x, y = batch()
    monitor = C.GradNormMonitor(model, factor=10.0, window=5, min_history=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    handle = monitor.attach(opt)
    for _ in range(6):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    handle.remove()
    assert len(monitor.global_norms) == 6 and monitor.spikes == []
    total, layers = C.grad_norms(model)
    expected = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    assert total == pytest.approx(expected, rel=1e-12)
    assert set(layers) == {"0", "2"}
    assert layers["2"] == pytest.approx(
        math.hypot(model[2].weight.grad.norm().item(), model[2].bias.grad.norm().item()))
    model[2].bias.grad.mul_(1e3)  # a spike
    _, _, spike = monitor.record()
    assert spike and monitor.spikes == [6] and not monitor.diverged
    model[0].weight.grad[0, 0] = float("nan")
    _, _, spike = monitor.record()
    assert spike and monitor.diverged


# -- bad input -------------------------------------------------------------------------
def test_bad_input(problem):
    _, f, w = problem
    with pytest.raises(ValueError, match="v must have the shape"):
        C.hvp(f, w, torch.ones(3, dtype=w.dtype))
    with pytest.raises(ValueError, match="v must have the shape"):
        C.hvp_operator(f, w)(torch.ones(3, dtype=w.dtype))
    with pytest.raises(ValueError, match="w must have shape"):
        f(torch.ones(3, dtype=w.dtype))
    with pytest.raises(ValueError, match="method"):
        C.hvp(f, w, w, method="sideways")
    with pytest.raises(ValueError, match="model has no parameters"):
        C.flat_loss(nn.ReLU(), F.mse_loss, torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="model has no parameters"):
        C.GradNormMonitor(nn.ReLU())
    with pytest.raises(TypeError, match="model"):
        C.flat_loss("not a model", F.mse_loss, torch.ones(2), torch.ones(2))


def test_flat_loss_follows_the_mode_at_call_time_without_touching_statistics():
    model = mlp(batch_norm=True)
    x, y = batch()
    with torch.no_grad():
        model(x * 3 - 1)  # training-mode pass: non-trivial running statistics
    model.eval()
    f, w = C.flat_loss(model, F.cross_entropy, x, y)
    eval_loss = f(w).item()
    model.train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    train_loss = f(w).item()
    C.hvp(f, w, torch.ones_like(w))
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    assert train_loss != pytest.approx(eval_loss, rel=1e-3)
    model.eval()
    assert f(w).item() == eval_loss


def test_spectrum_functions_keep_their_old_address():
    from curvlib import spectrum
    for name in ("lanczos", "top_eigenvalues", "hutchinson_trace", "spectral_density",
                 "condition_number", "Eigs"):
        assert getattr(C, name) is getattr(spectrum, name)
    with pytest.raises(AttributeError, match="no attribute 'lanczoz'"):
        C.lanczoz
