"""Chapter 7 machinery: exact diagonals, Adam's second moment, momentum, weight decay,
curvature of architectures and the widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from curvlib import curvature, data, models, optim  # noqa: E402
from curvbook import conditioning as C  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return data.digits()


@pytest.fixture(scope="module")
def small(digits):
    X, y = digits.X_train[:150].double(), digits.y_train[:150]
    model = models.mlp([64, 5, 10], "tanh", seed=2, dtype="float64")
    return model, X, y


# ------------------------------------------------------------------ diagonals
def test_closed_form_hessian_diagonal_equals_hvp_reference(small):
    model, X, y = small
    H = C.hessian_diagonal(model, X, y)
    assert H.total.shape == (64 * 5 + 5 + 5 * 10 + 10,)
    # entries from every block: W1, b1, W2, b2 (an HVP each; the whole diagonal takes 385)
    idx = list(range(0, 320, 11)) + [320, 322, 324] + list(range(325, 375, 7)) + [375, 380, 384]
    ref = C.hessian_diagonal_hvp(model, X, y, indices=idx)
    torch.testing.assert_close(H.total[idx], ref, rtol=1e-10, atol=1e-13)
    assert (H.total < 0).any()              # the tanh'' term makes some entries negative
    assert (H.gauss_newton >= 0).all()


def test_gauss_newton_diagonal_is_the_fisher_diagonal(small):
    model, X, y = small
    X, y = X[:60], y[:60]
    torch.testing.assert_close(C.hessian_diagonal(model, X, y).gauss_newton,
                               C.fisher_diagonal(model, X, y), rtol=1e-10, atol=1e-13)


def test_hessian_diagonal_rejects_other_models(small):
    _, X, y = small
    with pytest.raises(TypeError, match="one-hidden-layer"):
        C.hessian_diagonal(models.mlp([64, 5, 5, 10], "tanh", dtype="float64"), X, y)
    with pytest.raises(TypeError, match="one-hidden-layer"):
        C.hessian_diagonal(models.mlp([64, 5, 10], "relu", dtype="float64"), X, y)
    with pytest.raises(ValueError, match="shape"):
        C.hessian_diagonal(models.mlp([64, 5, 10], "tanh"), X[:, :10], y)


def test_minibatch_second_moment_matches_sampling(small):
    model, X, y = small
    g = C.per_example_gradients(model, X, y)
    B = 16
    exact = C.minibatch_second_moment(g, B)
    gen = torch.Generator().manual_seed(0)
    mc = torch.zeros_like(exact)
    chunks, draws = 10, 1000
    for _ in range(chunks):      # batches without replacement: the first B of a permutation
        idx = torch.rand(draws, len(g), generator=gen).argsort(dim=1)[:, :B]
        mc += (g[idx].mean(1) ** 2).mean(0)
    mc /= chunks
    assert float((mc - exact).abs().max() / exact.max()) < 0.03
    # a full batch has no noise left: the square of the mean gradient
    torch.testing.assert_close(C.minibatch_second_moment(g, len(g)), g.mean(0) ** 2)
    with pytest.raises(ValueError, match="batch_size"):
        C.minibatch_second_moment(g, len(g) + 1)
    with pytest.raises(TypeError, match="grads"):
        C.minibatch_second_moment(g[0], 2)


def test_per_example_gradients_average_to_the_gradient(small):
    model, X, y = small
    g = C.per_example_gradients(model, X, y)
    f, w = curvature.flat_loss(model, F.cross_entropy, X, y)
    wg = w.clone().requires_grad_(True)
    (full,) = torch.autograd.grad(f(wg), wg)
    torch.testing.assert_close(g.mean(0), full, rtol=1e-10, atol=1e-12)


def test_adam_second_moment_is_the_bias_corrected_average_of_squares():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.99))
    v = torch.zeros(4, dtype=torch.float64)
    for t in range(1, 6):
        opt.zero_grad()
        ((p ** 3).sum() + p[0] * p[1]).backward()
        v = 0.99 * v + 0.01 * p.grad ** 2
        opt.step()
    torch.testing.assert_close(C.adam_second_moment(opt, [p]), v / (1 - 0.99 ** 5))
    fresh = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="take a step"):
        C.adam_second_moment(optim.Adam([fresh]), [fresh])


def test_adam_tracks_the_gradient_second_moment_better_than_the_hessian(digits):
    """The chapter's claim: Adam's v ranks parameters like E[g_B^2] and the Fisher, and
    less like the Hessian diagonal."""
    st = C.study_diagonals(digits, steps=150, batch_size=64)
    rho = st.spearman
    assert set(rho) == {"minibatch_moment", "empirical_fisher", "gauss_newton", "hessian",
                        "fisher_vs_hessian"}
    assert all(-1 <= r <= 1 for r in rho.values())
    assert rho["minibatch_moment"] > rho["hessian"] + 0.1
    assert 0 <= st.negative_fraction < 0.5
    assert st.active.sum() < len(st.active)            # blank pixels: inactive weights
    assert (st.empirical_fisher[~st.active] == 0).all()
    assert 0.5 < st.median_ratio("minibatch_moment") < 5
    axes = C.plot_diagonals(st)
    assert len(axes) == 3 and all(ax.get_lines() for ax in axes)


# ------------------------------------------------------------------ momentum, weight decay
def test_momentum_buffer_meets_less_curvature_than_its_gradients(digits):
    out = C.momentum_alignment(digits, checkpoints=(25, 50, 100, 200))
    buf, mb = out["rayleigh_momentum_buffer"], out["rayleigh_minibatch_gradient"]
    assert buf.shape == mb.shape == (4,)
    assert np.mean(buf < mb) >= 0.75 and buf.mean() < 0.8 * mb.mean()
    with pytest.raises(ValueError, match="momentum"):
        C.momentum_alignment(digits, momentum=0.0)


def test_weight_decay_shifts_the_spectrum(digits):
    X, y = digits.X_train[:200].double(), digits.y_train[:200]
    model = models.logistic_regression(64, 10, init="default", seed=0, dtype="float64")
    out = C.weight_decay_conditioning(model, X, y, decays=(0.0, 1e-3, 1e-1, 1.0))
    f, w = curvature.flat_loss(model, F.cross_entropy, X, y)
    assert out["lambda_max"] == pytest.approx(float(curvature.top_eigenvalues(f, w)[0]), rel=1e-5)
    assert out["lambda_min"] == pytest.approx(0.0, abs=1e-6)     # softmax: a flat direction
    kappas = out["kappa"]
    for d, k in zip(out["decays"][1:], kappas[1:]):
        assert k == pytest.approx((out["lambda_max"] + d) / (out["lambda_min"] + d))
    assert kappas[1] > kappas[2] > kappas[3]
    with pytest.raises(ValueError, match="decays"):
        C.weight_decay_conditioning(model, X, y, decays=(-1.0,))


# ------------------------------------------------------------------ architecture
def test_measure_curvature_agrees_with_curvlib_curvature(digits):
    model = models.mlp([64, 12, 12, 10], "tanh", batchnorm=True, residual=True, seed=1)
    X, y = digits.X_train[:128], digits.y_train[:128]
    out = C.measure_curvature(model, X, y, lanczos_steps=20, trace_samples=4)
    f, w = curvature.flat_loss(model, F.cross_entropy, X, y)
    assert out["top"] == pytest.approx(float(curvature.top_eigenvalues(f, w)[0]), rel=1e-3)
    assert out["bottom"] < 0
    assert out["weights"].sum() == pytest.approx(1.0, abs=1e-5)
    ref, se = curvature.hutchinson_trace(f, w, 300, seed=5)
    assert abs(out["trace"] - ref) < 4 * math.hypot(out["trace_se"], se)
    wg = w.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(wg), wg)
    expected = float(g @ curvature.hvp(f, w, g) / (g @ g))
    assert out["gradient_curvature"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("variant", list(C.VARIANTS))
def test_vectorised_training_equals_one_run_per_seed(digits, variant):
    """_train_seeds trains all seeds at once; each seed's losses are curvlib.train.train's."""
    from curvlib.train import train
    sizes = (64, 8, 8, 10)
    losses, kept = C._train_seeds(variant, digits, sizes, (0, 3), 7, 0.05, 0.9, 32, {0, 7})
    for i, s in enumerate((0, 3)):
        model = models.mlp(list(sizes), "tanh", seed=s, **C.VARIANTS[variant])
        res = train(model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9), digits.train,
                    steps=7, batch_size=32, seed=s)
        np.testing.assert_allclose(losses[i], res.loss, rtol=2e-5)
        for name, p in model.named_parameters():
            torch.testing.assert_close(kept[7][i][name], p.detach(), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_study(digits):
    return C.study_conditioning(digits, sizes=(64, 8, 8, 8, 10), seeds=(0, 1), steps=6,
                                measure_at=(0, 6), curvature_examples=64, lanczos_steps=8,
                                trace_samples=2)


def test_study_conditioning_structure(tiny_study):
    st = tiny_study
    assert list(st.values) == list(C.VARIANTS)
    for v in st.values:
        assert st.losses[v].shape == (2, 6)
        for s in (0, 6):
            vals = st.values[v][s]
            assert vals["top"].shape == (2,) and vals["nodes"].shape == (2, 8)
            assert (vals["top"] >= vals["bottom"]).all()
        assert st.outlier_ratio(v, 6).shape == (2,)
    grid = np.linspace(-50, 50, 4001)
    dens = st.density("plain", 6, grid, sigma=0.5)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-2)
    ratio = st.nonconvexity("residual", 6)
    vals = st.values["residual"][6]
    np.testing.assert_allclose(ratio, np.abs(np.minimum(vals["bottom"], 0)) / vals["top"])
    axes = C.plot_conditioning(st)
    assert len(axes) == 4 and len(axes[3].get_lines()) == 4


def test_study_conditioning_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="variants"):
        C.study_conditioning(digits, variants=("dropout",))
    with pytest.raises(ValueError, match="measure_at"):
        C.study_conditioning(digits, steps=5, measure_at=(0, 10))
    with pytest.raises(ValueError, match="seeds"):
        C.study_conditioning(digits, seeds=(0,))


def test_conditioning_explorer_responds_at_its_extremes(tiny_study):
    ex = C.conditioning_explorer(tiny_study)
    archs, steps = ex.controls["architecture"], ex.controls["step"]
    first = ex.set(architecture=archs[0], step=steps[0])
    last = ex.set(architecture=archs[-1], step=steps[-1])
    assert first.png != last.png and first.text != last.text
    assert "top eigenvalue" in last.text and not last.diverged
    assert ex.set(step=steps[0]).png != last.png
