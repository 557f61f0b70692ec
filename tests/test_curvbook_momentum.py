"""Chapter 4 machinery: the lecture's momentum forms, quadratic theory, rates, the widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from curvbook import momentum as mo  # noqa: E402
from curvlib.landscapes import Quadratic, Rosenbrock  # noqa: E402


# ------------------------------------------------------------------ lecture forms vs torch
@pytest.mark.parametrize("landscape, lr", [(Quadratic(10, 0.4), 0.05), (Rosenbrock(), 1e-4)])
def test_lecture_forms_equal_torch_sgd(landscape, lr):
    gaps = mo.torch_equivalence(landscape.grad, np.array(landscape.start), lr=lr, momentum=0.9,
                                steps=80)
    for key in ("heavy_ball_x", "heavy_ball_v", "nesterov_lookahead", "nesterov_v"):
        assert gaps[key] < 1e-12, (key, gaps[key])
    # torch's Nesterov parameter is the look-ahead point, not the lecture's theta
    assert gaps["nesterov_x"] > 1e-3


def test_lecture_forms_equal_curvlib_optim_sgd():
    from curvlib.optim import SGD
    f = Quadratic(20, 1.0)
    gaps = mo.torch_equivalence(f.grad, np.array(f.start), lr=0.03, momentum=0.8, steps=50,
                                optimizer=SGD)
    assert max(gaps["heavy_ball_x"], gaps["nesterov_lookahead"]) < 1e-12


def test_lecture_momentum_batches_settings():
    """A grid of settings at once gives the same numbers as one setting at a time."""
    f = Quadratic(10, 0.3)
    lrs = np.array([0.05, 0.1, 0.2])[:, None]
    batch = mo.lecture_momentum(f.grad, np.broadcast_to(np.array(f.start), (3, 2)), lr=lrs,
                                momentum=0.7, steps=30, nesterov=True)["x"]
    for i, lr in enumerate(lrs[:, 0]):
        one = mo.lecture_momentum(f.grad, np.array(f.start), lr=lr, momentum=0.7, steps=30,
                                  nesterov=True)["x"]
        np.testing.assert_allclose(batch[:, i], one, rtol=0, atol=1e-15)


# ------------------------------------------------------------------ quadratic theory
@pytest.mark.parametrize("method, beta", [("gd", 0.0)] + [
    (m, b) for m in ("heavy_ball", "nesterov") for b in (0.0, 0.5, 0.9)])
def test_stability_limit_is_sharp(method, beta):
    limit = float(mo.stability_limit(beta, method))
    if method == "heavy_ball":
        assert limit == pytest.approx(2 + 2 * beta)
    for factor, converges in ((0.97, True), (1.03, False)):
        err = mo._run_diagonal([1.0], factor * limit, beta, method, 3000)
        assert (err[-1] < 1e-3 * err[0]) == converges, (factor, err[-1])


def test_optimal_parameters_are_optimal_and_match_theory():
    mu, L = 0.01, 1.0
    k = L / mu
    hb = mo.optimal_parameters(mu, L, "heavy_ball")
    assert hb["rate"] == pytest.approx((math.sqrt(k) - 1) / (math.sqrt(k) + 1))
    assert float(mo.spectral_radius(hb["lr"], hb["momentum"], [mu, L])) == pytest.approx(hb["rate"], rel=1e-6)
    gd = mo.optimal_parameters(mu, L, "gd")
    assert gd["rate"] == pytest.approx((k - 1) / (k + 1))
    LR, B = np.meshgrid(np.geomspace(0.5, 8, 200), np.linspace(0, 0.99, 200))
    grid_best = np.nanmin(mo.spectral_radius(LR, B, [mu, L]))
    assert grid_best >= hb["rate"] - 1e-9
    with pytest.raises(ValueError, match="mu"):
        mo.optimal_parameters(2.0, 1.0)


def test_measured_rates_match_theory_on_the_grid():
    g = mo.rate_grid(kappa=50, lrs=np.geomspace(0.05, 5, 25), momenta=np.linspace(0, 0.95, 20))
    assert g["max_gap"] < 0.01
    stable = g["theory"] < 0.999
    assert np.all(np.isfinite(g["measured"][stable & (g["theory"] < 0.99)]))
    assert np.all(np.isnan(g["measured"][g["theory"] > 1.01]))  # diverged cells are NaN


def test_rate_table_momentum_is_far_more_than_30_percent_faster():
    rows = mo.rate_table(kappas=(10, 100, 1000))
    for r in rows:
        for m in ("gd", "heavy_ball", "nesterov"):
            # within 3%: at the tuned setting the roots are double, the error is t * rho^t
            assert r[f"{m}_measured"] == pytest.approx(r[f"{m}_theory"], rel=0.03)
            assert r[f"{m}_measured"] >= r[f"{m}_theory"] - 1e-9
        # ~ sqrt(kappa)-fold fewer steps for the heavy ball
        assert 0.4 * math.sqrt(r["kappa"]) < r["speedup_heavy_ball"] < 1.5 * math.sqrt(r["kappa"])
        assert r["speedup_nesterov"] > 1.3
    assert rows[-1]["speedup_heavy_ball"] > 10


# ------------------------------------------------------------------ O(1/t) vs O(1/t^2)
def test_sublinear_slopes_and_bounds():
    race = mo.sublinear_race(dim=200, steps=1200, fit=(100, 1000))
    s = race["slopes"]
    names = list(s)
    assert s[names[0]] == pytest.approx(-1, abs=0.1)      # gradient descent
    assert s[names[1]] == pytest.approx(-1, abs=0.15)     # heavy ball, constant beta
    assert s[names[2]] == pytest.approx(-1, abs=0.15)     # Nesterov, constant beta
    assert s[names[3]] == pytest.approx(-2, abs=0.2)      # Nesterov, beta_t = (t-1)/(t+2)
    assert np.all(race["gap"][names[0]] <= race["bound_gd"])
    assert np.all(race["gap"][names[3]] <= race["bound_nesterov"])


def test_heavy_ball_cycles_on_lessard_function():
    out = mo.heavy_ball_counterexample(x0=3.3, steps=300)
    hb = out["heavy ball (Polyak's tuning)"]
    assert np.min(np.abs(hb[-30:])) > 0.5           # never settles at the minimum 0
    np.testing.assert_allclose(hb[-3:], hb[-6:-3], atol=1e-9)  # a 3-cycle
    assert abs(out["Nesterov"][-1]) < 1e-8 and abs(out["gradient descent"][-1]) < 1e-8
    assert out["lr"]["gradient descent"] == pytest.approx(2 / 26)   # 2/(L + mu)
    assert out["lr"]["Nesterov"] == pytest.approx(1 / 25)


# ------------------------------------------------------------------ real data (small budget)
def test_digits_momentum_prefers_a_smaller_lr():
    d = mo.digits_speedup(steps=40, seeds=(0, 1, 2, 3, 4), tune_seeds=(100,),
                          lr_grid=(0.1, 1.0, 3.0), momenta=(0.5, 0.9, 0.95), window=10)
    sgd, mom = d["names"]
    # momentum's effective step is lr/(1-beta): its best lr is below SGD's
    assert d["best_lr"][mom] < d["best_lr"][sgd]
    assert d["best_momentum"] in (0.5, 0.9, 0.95)
    assert set(d["scores"]) == {0.0, 0.5, 0.9, 0.95}
    assert d["steps_to_target"][sgd].max() <= 40
    assert d["speedup"] > 0
    est, lo, hi = d["paired"]
    assert lo <= est <= hi
    assert set(d["at_edge"]) == {"SGD: learning rate", "momentum: learning rate", "momentum: β"}
    assert all(m >= 0 for m in d["margin"].values())


def test_digits_rejects_shared_seeds_and_bad_momenta():
    with pytest.raises(ValueError, match="disjoint"):
        mo.digits_speedup(steps=40, seeds=(0, 1, 2, 3, 4), tune_seeds=(4,), window=10)
    with pytest.raises(ValueError, match="momenta"):
        mo.digits_speedup(steps=40, momenta=(0.9, 0.9, 0.5), window=10)


def test_uniform_spectrum_makes_gradient_descent_faster_than_the_bound():
    log = mo.sublinear_race(dim=200, steps=1200, fit=(100, 1000))
    uni = mo.sublinear_race(dim=200, steps=1200, fit=(100, 1000), spectrum="uniform")
    assert log["slopes"]["gradient descent"] == pytest.approx(-1, abs=0.15)
    assert uni["slopes"]["gradient descent"] < -1.5
    with pytest.raises(ValueError, match="spectrum"):
        mo.sublinear_race(spectrum="flat")


def test_heatmaps_share_one_colour_scale():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grids = [mo.rate_grid(100, method=m, lrs=np.geomspace(0.05, 5, 9), momenta=np.linspace(0, 0.9, 5),
                          steps=60) for m in ("heavy_ball", "nesterov")]
    fig, axes = plt.subplots(1, 2)
    cb = mo.plot_rate_heatmaps(grids, axes)
    a, b = (ax.collections[0].norm for ax in axes)
    assert (a.vmin, a.vmax) == (b.vmin, b.vmax) and a.vmax == 1.0
    assert cb.ax.get_ylabel().startswith("measured rate")
    assert len(fig.axes) == 3                     # two maps, one colour bar
    plt.close(fig)


# ------------------------------------------------------------------ widget
def test_explorer_extremes_and_divergence():
    e = mo.momentum_explorer()
    calm = e.set(lr=0.05, momentum=0.0)
    wild = e.set(lr=5.0, momentum=0.0)
    fast = e.set(lr=1.0, momentum=0.8)
    slowest = e.set(lr=0.05, momentum=0.99)
    assert len({calm.png, wild.png, fast.png, slowest.png}) == 4
    assert "diverged at step" in wild.text and wild.diverged
    assert "diverged" not in fast.text and "steps to error" in fast.text
    assert "diverged" not in calm.text
    # the live view follows the controls
    e.widget()
    before = e.image_widget.value
    e.control_widgets["momentum"].value = 0.9
    assert e.image_widget.value != before


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, exc, word", [
    (lambda: mo.lecture_momentum(lambda x: x, [1.0], lr=-1.0), ValueError, "lr"),
    (lambda: mo.lecture_momentum(lambda x: x, [1.0], lr=0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: mo.lecture_momentum(lambda x: x, [1.0], lr="a"), TypeError, "lr"),
    (lambda: mo.lecture_momentum(5, [1.0], lr=0.1), TypeError, "grad"),
    (lambda: mo.spectral_radius(0.1, 0.5, [1.0], method="adam"), ValueError, "method"),
    (lambda: mo.spectral_radius(0.1, 0.5, [-1.0]), ValueError, "eigenvalues"),
    (lambda: mo.rate_grid(kappa=0.5), ValueError, "kappa"),
    (lambda: mo.rate_table(tol=2.0), ValueError, "tol"),
    (lambda: mo.sublinear_race(fit=(10, 5)), ValueError, "fit"),
    (lambda: mo.measured_rate([1.0, 0.5]), ValueError, "errors"),
])
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
