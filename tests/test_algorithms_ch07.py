"""Chapter 7's algorithm cells (Lanczos, stochastic Lanczos quadrature, Hutchinson's trace
estimator) equal curvlib.spectrum's implementations, and the exact values they estimate."""
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from curvlib import curvature, models, spectrum
from notebook_cells import algorithm_cells, algorithm_namespace, function_lengths

NOTEBOOK = "07_key_insight.ipynb"


@pytest.fixture(scope="module")
def cells():
    return algorithm_namespace(NOTEBOOK, extra={"torch": torch, "scipy": scipy})


@pytest.fixture(scope="module")
def network():
    """A small float64 tanh network with batch norm: an indefinite Hessian of 300-odd entries."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    model = models.mlp([6, 12, 12, 3], "tanh", batchnorm=True, seed=1, dtype="float64")
    f, w = curvature.flat_loss(model, F.cross_entropy, X, y)
    return f, w, curvature.hvp_operator(f, w), torch.linalg.eigvalsh(curvature.hessian(f, w))


def test_the_cells_define_short_functions():
    lengths = {}
    for source in algorithm_cells(NOTEBOOK):
        lengths.update(function_lengths(source))
    assert {"lanczos", "ritz", "hutchinson", "slq"} <= set(lengths)
    assert all(3 <= n <= 25 for n in lengths.values()), lengths


def test_lanczos_cell_equals_curvlib(cells, network):
    f, w, matvec, _ = network
    v0 = torch.randn(w.numel(), generator=torch.Generator().manual_seed(3), dtype=w.dtype)
    for steps in (5, 16, 40):
        theta, _ = cells["ritz"](*cells["lanczos"](matvec, v0, steps))
        ref = spectrum.lanczos(matvec, v0, steps, k=steps, which="smallest", tol=0.0).values
        assert len(theta) == steps
        np.testing.assert_allclose(theta, ref.numpy(), rtol=1e-9, atol=1e-11)


def test_lanczos_cell_finds_the_exact_extremes(cells, network):
    f, w, matvec, eig = network
    v0 = torch.randn(w.numel(), generator=torch.Generator().manual_seed(4), dtype=w.dtype)
    theta, _ = cells["ritz"](*cells["lanczos"](matvec, v0, 120))
    assert theta[-1] == pytest.approx(float(eig[-1]), rel=1e-8)
    assert theta[0] == pytest.approx(float(eig[0]), rel=1e-6)
    # Ritz values interlace: after few steps they lie strictly inside the spectrum
    few, _ = cells["ritz"](*cells["lanczos"](matvec, v0, 4))
    assert eig[0] < few[0] and few[-1] < eig[-1]


def test_hutchinson_cell_equals_curvlib(cells, network):
    f, w, matvec, eig = network
    for samples, seed in ((4, 0), (50, 7)):
        ours = cells["hutchinson"](matvec, w.numel(), samples, seed=seed)
        ref = spectrum.hutchinson_trace(f, w, samples, seed=seed)
        np.testing.assert_allclose(ours, ref, rtol=1e-10)
    mean, se = cells["hutchinson"](matvec, w.numel(), 400, seed=1)
    assert abs(mean - float(eig.sum())) < 4 * se


def test_slq_cell_equals_curvlib(cells, network):
    f, w, matvec, eig = network
    nodes, weights = cells["slq"](matvec, w.numel(), 12, 3, seed=2)
    ref = spectrum.spectral_density(f, w, steps=12, runs=3, seed=2)
    np.testing.assert_allclose(nodes, ref.nodes.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(weights, ref.weights.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-10)
    # the quadrature's first moment is z^T H z / n for each start: its mean estimates tr H / n
    assert (nodes * weights).sum(1).mean() * w.numel() == pytest.approx(
        float(eig.sum()), abs=6 * float(torch.linalg.matrix_norm(torch.diag(eig))))


def test_an_edited_cell_would_be_caught(cells, network):
    """Without reorthogonalisation Lanczos loses orthogonality and its Ritz values differ."""
    f, w, matvec, _ = network
    src = "\n".join(algorithm_cells(NOTEBOOK))
    assert "for _ in range(2)" in src
    edited = {"np": np, "torch": torch, "scipy": scipy}
    exec(src.replace("for _ in range(2):", "for _ in range(0):"), edited)
    v0 = torch.randn(w.numel(), generator=torch.Generator().manual_seed(3), dtype=w.dtype)
    bad, _ = edited["ritz"](*edited["lanczos"](matvec, v0, 40))
    ref = spectrum.lanczos(matvec, v0, 40, k=40, which="smallest", tol=0.0).values.numpy()
    assert not np.allclose(bad, ref, rtol=1e-6)
