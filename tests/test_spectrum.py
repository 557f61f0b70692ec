"""curvlib.spectrum: eigenvalues, trace, density and condition number of small float64 models,
against their dense Hessians."""
import math

import pytest
import torch

from curvlib import curvature
from curvlib import spectrum as C
from test_curvature import problem  # noqa: F401 (a fixture)

torch.set_num_threads(1)  # the test machine is shared; tiny problems gain nothing from threads


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
    op = curvature.hvp_operator(f, w)
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
    theta, tau = C._lanczos_quadrature(curvature.hvp_operator(f, w), v, 6)
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


# -- bad input -------------------------------------------------------------------------
def test_bad_input(problem):
    _, f, w = problem
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
    with pytest.raises(ValueError, match="eigenvalues"):
        C.condition_number([])
