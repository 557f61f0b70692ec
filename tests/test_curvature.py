"""curvlib.curvature against dense Hessians of small float64 models."""
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


# -- eigenvalues -----------------------------------------------------------------------
def test_lanczos_top_k_to_1e_8(problem):
    _, f, w = problem
    lam = torch.linalg.eigvalsh(torch.func.hessian(f)(w))
    top, vecs = C.top_eigenvalues(f, w, 4, return_vectors=True)
    assert torch.allclose(top, lam.flip(0)[:4], rtol=1e-8, atol=0)
    H = torch.func.hessian(f)(w)
    assert torch.allclose(H @ vecs, vecs * top, atol=1e-6 * lam.abs().max())
    assert torch.allclose(vecs.T @ vecs, torch.eye(4, dtype=w.dtype), atol=1e-10)
    bottom = C.top_eigenvalues(f, w, 2, which="smallest")
    assert torch.allclose(bottom, lam[:2], rtol=1e-8, atol=0)
    assert bottom[0] < 0  # the untrained network has negative curvature
    mag = C.top_eigenvalues(f, w, 1, which="magnitude")
    assert mag.abs().item() == pytest.approx(lam.abs().max().item(), rel=1e-8)


def test_lanczos_finds_all_eigenvalues_through_restarts():
    # H = diag(1..6) with a start vector in a 2-D invariant subspace: the Krylov space
    # closes after 2 steps and Lanczos must restart to find the rest
    d = torch.arange(1.0, 7.0, dtype=torch.float64)
    v0 = torch.zeros(6, dtype=torch.float64)
    v0[0] = v0[1] = 1.0
    result = C.lanczos(lambda v: d * v, v0, 6, k=6, tol=1e-12)
    assert torch.allclose(result.values, d.flip(0), atol=1e-12)


def test_power_iteration_agrees_and_needs_more_products(problem):
    _, f, w = problem
    lam = torch.linalg.eigvalsh(torch.func.hessian(f)(w))
    top = lam.abs().max().item()
    power = C.top_eigenvalues(f, w, 1, method="power", tol=1e-12, steps=5000)
    assert power.abs().item() == pytest.approx(top, rel=1e-8)
    v0 = torch.randn(w.shape, generator=torch.Generator().manual_seed(0), dtype=w.dtype)
    op = C.hvp_operator(f, w)
    run_l = C.lanczos(op, v0, 200, tol=1e-6)
    run_p = C.power_iteration(op, v0, 5000, tol=1e-10)
    assert run_l.converged and run_p.converged
    assert run_l.matvecs < run_p.matvecs
    with pytest.raises(ValueError, match="which"):
        C.top_eigenvalues(f, w, 1, method="power", which="largest")


def test_unconverged_run_warns(problem):
    _, f, w = problem
    with pytest.warns(RuntimeWarning, match="did not reach"):
        C.top_eigenvalues(f, w, 1, steps=2)


# -- trace and density -----------------------------------------------------------------
@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_within_its_standard_error(problem, distribution):
    _, f, w = problem
    trace = torch.trace(torch.func.hessian(f)(w)).item()
    mean, se = C.hutchinson_trace(f, w, 300, distribution=distribution)
    assert se > 0
    assert abs(mean - trace) < 3 * se
    _, se_small = C.hutchinson_trace(f, w, 30, distribution=distribution)
    assert se < se_small  # 10x the samples: about 1/sqrt(10) the error


def test_hutchinson_is_reproducible(problem):
    _, f, w = problem
    assert C.hutchinson_trace(f, w, 5, seed=3) == C.hutchinson_trace(f, w, 5, seed=3)
    assert C.hutchinson_trace(f, w, 5, seed=3) != C.hutchinson_trace(f, w, 5, seed=4)


def test_slq_quadrature_is_exact_for_low_degree_moments(problem):
    _, f, w = problem
    H = torch.func.hessian(f)(w)
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(5), dtype=w.dtype)
    v = v / v.norm()
    theta, tau = C._lanczos_quadrature(C.hvp_operator(f, w), v, 6)
    assert tau.sum().item() == pytest.approx(1.0, abs=1e-12)
    for p in range(1, 12):  # Gauss quadrature with 6 nodes is exact up to degree 11
        exact = (v @ torch.linalg.matrix_power(H, p) @ v).item()
        assert (tau * theta ** p).sum().item() == pytest.approx(exact, rel=1e-8, abs=1e-12)


def test_spectral_density_integrates_to_one_and_matches_dense_spectrum(problem):
    _, f, w = problem
    lam = torch.linalg.eigvalsh(torch.func.hessian(f)(w))
    sigma = 0.05 * (lam.max() - lam.min()).item()
    grid = torch.linspace(lam.min().item() - 6 * sigma, lam.max().item() + 6 * sigma, 2000,
                          dtype=torch.float64)
    sd = C.spectral_density(f, w, steps=15, runs=20, grid=grid, sigma=sigma)
    assert torch.trapezoid(sd.density, sd.grid).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(sd.weights.sum(1), torch.ones(20, dtype=torch.float64))
    dense = torch.exp(-0.5 * ((grid[:, None] - lam[None]) / sigma) ** 2).mean(1)
    dense = dense / (sigma * math.sqrt(2 * math.pi))
    l1 = torch.trapezoid((sd.density - dense).abs(), grid).item()
    assert l1 < 0.15
    # the default grid and sigma also integrate to one
    sd = C.spectral_density(f, w, steps=10, runs=3)
    assert torch.trapezoid(sd.density, sd.grid).item() == pytest.approx(1.0, abs=1e-4)
    assert sd.nodes.shape == sd.weights.shape == (3, 10)


# -- condition number ------------------------------------------------------------------
def test_condition_number_positive_definite():
    assert C.condition_number([4.0, 2.0, 0.5]) == pytest.approx(8.0)
    assert C.condition_number(torch.tensor([3.0])) == 1.0


def test_condition_number_refuses_or_uses_the_cut_off():
    lam = [-0.3, 0.0, 1e-9, 0.01, 2.0, 10.0]
    with pytest.raises(ValueError, match="2 of 6 eigenvalues are <= 0.*cutoff"):
        C.condition_number(lam)
    assert C.condition_number(lam, cutoff=0) == pytest.approx(1e10)
    assert C.condition_number(lam, cutoff=1e-6) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="no eigenvalue is above"):
        C.condition_number(lam, cutoff=20.0)
    with pytest.raises(ValueError, match="cutoff"):
        C.condition_number(lam, cutoff=-1.0)


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
    with pytest.raises(ValueError, match="k must be at most"):
        C.top_eigenvalues(f, w, w.numel() + 1)
    with pytest.raises(ValueError, match="k must be"):
        C.top_eigenvalues(f, w, 0)
    for samples in (0, -3, 1):
        with pytest.raises(ValueError, match="samples"):
            C.hutchinson_trace(f, w, samples)
    with pytest.raises(TypeError, match="samples"):
        C.hutchinson_trace(f, w, 2.5)
    with pytest.raises(ValueError, match="runs"):
        C.spectral_density(f, w, runs=0)
    with pytest.raises(ValueError, match="method"):
        C.hvp(f, w, w, method="sideways")
    with pytest.raises(ValueError, match="model has no parameters"):
        C.flat_loss(nn.ReLU(), F.mse_loss, torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="model has no parameters"):
        C.GradNormMonitor(nn.ReLU())
    with pytest.raises(TypeError, match="model"):
        C.flat_loss("not a model", F.mse_loss, torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="eigenvalues"):
        C.condition_number([])


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
