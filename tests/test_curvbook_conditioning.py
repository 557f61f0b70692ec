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
    eig = torch.linalg.eigvalsh(curvature.hessian(f, w))
    assert out["lambda_max"] == pytest.approx(float(eig[-1]), rel=1e-10)
    assert out["lambda_min"] == pytest.approx(0.0, abs=1e-10)    # softmax: a flat direction
    assert out["lanczos_max"] == pytest.approx(out["lambda_max"], rel=1e-5)
    kappas = out["kappa"]
    for d, k, naive in zip(out["decays"][1:], kappas[1:], out["naive"][1:]):
        assert k == pytest.approx((out["lambda_max"] + d) / (out["lambda_min"] + d))
        assert naive == pytest.approx((out["lambda_max"] + d) / d)
    assert kappas[1] > kappas[2] > kappas[3]
    with pytest.raises(ValueError, match="decays"):
        C.weight_decay_conditioning(model, X, y, decays=(-1.0,))


def test_kappa_shifted_uses_the_negative_eigenvalue():
    # the chapter's first-edition slip: with lambda_min < 0, (lmax + d)/d understates kappa
    assert C.kappa_shifted(0.65, -0.063, 0.1) == pytest.approx(0.75 / 0.037)
    assert C.kappa_shifted(0.65, -0.063, 0.05) == math.inf
    assert C.kappa_shifted(2.0, 1.0, 0.0) == 2.0
    with pytest.raises(ValueError, match="delta"):
        C.kappa_shifted(1.0, 0.5, -1.0)


# ------------------------------------------------------------------ architecture
def test_glorot_init():
    model = C.glorot_init(models.mlp([64, 16, 16, 10], "tanh", seed=0), seed=3)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            bound = math.sqrt(6 / (m.in_features + m.out_features))
            assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.8 * bound
            assert (m.bias == 0).all()
    again = C.glorot_init(models.mlp([64, 16, 16, 10], "tanh", seed=9), seed=3)
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)                                   # the seed decides
    with pytest.raises(ValueError, match="variant"):
        C.deep_mlp("dropout")


@pytest.mark.parametrize("batchnorm", [False, True])
def test_measure_curvature_is_the_exact_spectrum(digits, batchnorm):
    model = models.mlp([64, 8, 8, 10], "tanh", batchnorm=batchnorm, residual=True, seed=1,
                       dtype="float64")
    X, y = digits.X_train[:64].double(), digits.y_train[:64]
    out = C.measure_curvature(model, X, y)
    f, w = curvature.flat_loss(model, F.cross_entropy, X, y)
    H = curvature.hessian(f, w)                      # curvlib's dense Hessian, jacfwd path
    eig = torch.linalg.eigvalsh(H).numpy()
    np.testing.assert_allclose(out["eigenvalues"], eig, atol=1e-10)
    assert out["top"] == pytest.approx(eig[-1]) and out["bottom"] == pytest.approx(eig[0])
    assert out["trace"] == pytest.approx(float(torch.trace(H)), abs=1e-9)
    assert out["bottom"] < 0 and out["n_params"] == w.numel()
    wg = w.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(wg), wg)
    assert out["gradient_curvature"] == pytest.approx(float(g @ H @ g / (g @ g)), rel=1e-8)


@pytest.mark.parametrize("variant", list(C.VARIANTS))
def test_vectorised_training_equals_one_run_per_seed(digits, variant):
    """_train_to_target trains all rates and seeds at once; each run is a plain loop's."""
    sizes, seeds, lrs = (64, 8, 8, 10), (0, 3), (0.05, 0.2)
    Xc, yc = digits.X_train[:64].double(), digits.y_train[:64]
    reached, at_target, at_init, curves = C._train_to_target(
        variant, digits, sizes, seeds, lrs, momentum=0.9, batch_size=32, max_steps=6, Xc=Xc,
        yc=yc, target=1e-9, init="glorot")
    assert not np.isfinite(reached).any() and not at_target
    X, y = digits.X_train.double(), digits.y_train
    for k, lr in enumerate(lrs):
        for i, s in enumerate(seeds):
            model = C.deep_mlp(variant, s, sizes=sizes)
            opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            order = C.minibatches(len(X), 32, s)
            ref = []
            for _ in range(7):
                with torch.no_grad():
                    ref.append(float(F.cross_entropy(model(Xc), yc)))
                idx = next(order)
                opt.zero_grad()
                F.cross_entropy(model(X[idx]), y[idx]).backward()
                opt.step()
            np.testing.assert_allclose(curves[k * len(seeds) + i], ref, rtol=1e-10)


def test_training_stops_each_run_at_its_target(digits):
    Xc, yc = digits.X_train[:64].double(), digits.y_train[:64]
    reached, at_target, at_init, curves = C._train_to_target(
        "residual", digits, (64, 8, 8, 10), (0, 1), (0.3,), momentum=0.9, batch_size=64,
        max_steps=80, Xc=Xc, yc=yc, target=1.0, init="glorot")
    assert np.isfinite(reached).all()
    for i, n in enumerate(reached.astype(int)):
        assert curves[i, n] <= 1.0 < np.nanmin(curves[i, :n])
        model = C._model_with("residual", (64, 8, 8, 10), at_target[i])
        with torch.no_grad():
            assert float(F.cross_entropy(model(Xc), yc)) == pytest.approx(curves[i, n], rel=1e-10)


def test_welch_interval_matches_scipy():
    from scipy import stats
    a, b = [3.0, 5.0, 4.0, 6.0, 5.5], [1.0, 2.5, 0.5, 2.0]
    d, lo, hi = C.welch(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        C.welch([1.0], [2.0, 3.0])


@pytest.fixture(scope="module")
def tiny_study(digits):
    return C.study_conditioning(digits, sizes=(64, 8, 8, 8, 10), seeds=(0, 1), tune_seeds=(100,),
                                lrs=(0.1, 0.3, 1.0), target=1.5, max_steps=150,
                                curvature_examples=64)


def test_study_conditioning_structure(tiny_study):
    st = tiny_study
    assert list(st.values) == list(C.VARIANTS) and st.measure_at == C.POINTS
    for v in st.values:
        assert st.lr[v] == min(st.tuning[v], key=lambda r: (st.tuning[v][r], r))
        grid = sorted(st.tuning[v])
        assert st.edge[v] == (st.lr[v] in (grid[0], grid[-1]))
        assert np.isfinite(st.steps_to_target[v]).all()
        n = st.n_params[v]
        for s in C.POINTS:
            vals = st.values[v][s]
            assert vals["eigenvalues"].shape == (2, n)
            np.testing.assert_allclose(vals["trace"], vals["eigenvalues"].sum(1))
            assert (vals["top"] >= vals["bottom"]).all()
        assert (st.values[v]["matched loss"]["loss"] <= 1.5).all()
        assert (st.values[v]["initialisation"]["loss"] > 1.5).all()
    grid = np.linspace(-50, 50, 4001)
    dens = st.density("plain", "matched loss", grid, sigma=0.5)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-2)
    ratio = st.nonconvexity("residual", "matched loss")
    vals = st.values["residual"]["matched loss"]
    np.testing.assert_allclose(ratio, np.abs(np.minimum(vals["bottom"], 0)) / vals["top"])
    d = st.difference("residual", "matched loss", "top")
    assert d[1] <= d[0] <= d[2]
    axes = C.plot_conditioning(st)
    assert len(axes) == 4 and len(axes[3].get_lines()) >= 4


def test_study_conditioning_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="variants"):
        C.study_conditioning(digits, variants=("dropout",))
    with pytest.raises(ValueError, match="seeds"):
        C.study_conditioning(digits, seeds=(0,))
    with pytest.raises(ValueError, match="tune_seeds"):
        C.study_conditioning(digits, seeds=(0, 1), tune_seeds=(1, 2))
    with pytest.raises(ValueError, match="lrs"):
        C.study_conditioning(digits, lrs=(0.1, 0.3))
    with pytest.raises(ValueError, match="init"):
        C.study_conditioning(digits, init="he")


def test_conditioning_explorer_responds_at_its_extremes(tiny_study):
    ex = C.conditioning_explorer(tiny_study)
    archs, points = ex.controls["architecture"], ex.controls["point"]
    first = ex.set(architecture=archs[0], point=points[0])
    last = ex.set(architecture=archs[-1], point=points[-1])
    assert first.png != last.png and first.text != last.text
    assert "top eigenvalue" in last.text and not last.diverged
    assert ex.set(point=points[0]).png != last.png
