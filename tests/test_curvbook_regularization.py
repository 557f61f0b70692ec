"""Chapter 5 machinery: the Hessian shift, torch's weight-decay convention, L2 vs AdamW,
learning-rate sweeps, warmup, schedules and the schedule designer widget."""

import numpy as np
import pytest

from curvbook import regularization as R


def test_penalty_shifts_every_eigenvalue_by_twice_the_coefficient():
    s = R.hessian_shift(penalty=5e-4, sizes=(64, 4, 10), train_steps=10, n_examples=100)
    assert s["n_params"] == 64 * 4 + 4 + 4 * 10 + 10
    assert s["max_deviation"] < 1e-10
    assert s["measured_shift"] == pytest.approx(1e-3, abs=1e-12)      # 2c, not c
    assert abs(s["measured_shift"] - s["lecture_shift"]) > 4e-4
    # eigenvalues between -2c and 0 become positive, the rest stay negative
    assert s["n_negative_reg"] == s["n_below_shift"] <= s["n_negative"]
    s2 = R.hessian_shift(penalty=0.01, sizes=(64, 4, 10), train_steps=10, n_examples=100)
    assert s2["measured_shift"] == pytest.approx(0.02, abs=1e-10)


def test_convex_problem_condition_number_drops_as_the_formula_says():
    c = R.convex_shift(penalty=5e-4, train_steps=50)
    assert c["n_negative"] == 0 and c["kappa"] is not None
    assert c["kappa_reg"] < c["kappa"]
    assert c["kappa_reg"] == pytest.approx(c["kappa_formula"], rel=1e-6)


def test_torch_weight_decay_is_the_gradient_of_half_lambda_norm_squared():
    r = R.torch_weight_decay_gradient(weight_decay=1e-3)
    assert r["diff_half"] < 1e-12
    assert r["diff_full"] == pytest.approx(r["decay_term"], rel=1e-9)
    assert r["diff_full"] > 1e-6


def test_adam_l2_decays_silent_weights_far_more_than_adamw():
    m = R.decay_mechanism(weight_decay=1e-2, lr=1e-2, steps=60, batch_size=64)
    assert m["n_silent"] >= 1
    l2, w = m["Adam+L2"], m["AdamW"]
    assert l2.shape == w.shape == (61, 2)
    # AdamW: silent weights see only the decoupled factor (1 - lr*wd) per step
    assert w[-1, 0] == pytest.approx((1 - 1e-2 * 1e-2) ** 60, rel=1e-5)
    # Adam+L2: the normalised decay gradient moves them ~lr per step, whatever wd is
    assert l2[-1, 0] < 0.5 * w[-1, 0]


def test_l2_vs_decoupled_uses_one_grid_and_reports_seeds():
    r = R.l2_vs_decoupled(lrs=(1e-3, 1e-2), weight_decays=(1e-3, 1e-1), steps=15,
                          batch_size=128, sizes=(64, 8, 10))
    for method in ("Adam+L2", "AdamW"):
        assert r["scores"][method].shape == (2, 2)
        lr, wd = r["best"][method]
        i, j = (1e-3, 1e-1).index(wd), (1e-3, 1e-2).index(lr)
        assert r["scores"][method][i, j] == r["scores"][method].min()
        assert r["runs"][method].loss.shape == (5, 15)
    # a strong L2 term under Adam hurts more than the same decoupled decay
    assert r["scores"]["Adam+L2"][1].min() > r["scores"]["AdamW"][1].min()


def test_lr_sensitivity_and_good_window():
    sw = R.lr_sensitivity(lr_grid=(1e-5, 1e-2, 1e7), steps=20, sizes=(64, 8, 10),
                          optimizers={"SGD": R.OPTIMIZERS["SGD+momentum"]})
    s = sw["SGD"]
    assert s["val_acc"].shape == (3, 5)
    assert np.all(s["val_acc"][2] == 0.0) and np.all(np.isinf(s["val_loss"][2]))  # diverged
    lo, hi, best = R.good_window(s, tolerance=0.0)
    assert lo == hi == best == 1e-2
    with pytest.raises(ValueError, match="tolerance"):
        R.good_window(s, tolerance=-1)


def test_make_schedule_shapes():
    f = R.make_schedule("step", 100, warmup=20)
    assert f(0, 1.0) == 0.0 and f(10, 1.0) == pytest.approx(0.5)
    assert f(20, 1.0) == 1.0 and f(20 + 40, 1.0) == pytest.approx(0.1)
    assert f(20 + 60, 1.0) == pytest.approx(0.01)
    c = R.make_schedule("cosine", 100)
    assert c(0, 2.0) == 2.0 and c(50, 2.0) == pytest.approx(1.0) and c(100, 2.0) == pytest.approx(0)
    assert R.make_schedule("linear", 10)(5, 1.0) == pytest.approx(0.5)
    assert R.make_schedule("constant", 10, warmup=5)(7, 0.3) == 0.3
    with pytest.raises(ValueError, match="decay"):
        R.make_schedule("exponential", 10)
    with pytest.raises(ValueError, match="warmup"):
        R.make_schedule("cosine", 10, warmup=10)


def test_warmup_experiment_counts_failures():
    w = R.warmup_large_batch(peak_lrs=(0.1, 50.0), warmup=(0, 10), batch_size=256, steps=30,
                             sizes=(64, 16, 10), stuck_loss=2.2)
    assert set(w["failures"]) == {0, 10}
    assert w["failures"][0][0.1] == 0 and w["failures"][0][50.0] == 5
    r = w[10][0.1]
    assert r.loss.shape == (5, 30)
    np.testing.assert_allclose(r.loss[:, 0], w[0][0.1].loss[:, 0])   # same start
    assert not np.allclose(r.loss[:, 5], w[0][0.1].loss[:, 5])      # the ramp changed the run


def test_schedule_comparison_pairs_seeds():
    runs, best, gap = R.schedule_comparison(lr_grid=(0.03, 0.3), steps=20, sizes=(64, 8, 10))
    assert set(runs) == {"constant", "step", "cosine"}
    assert all(best[d] in (0.03, 0.3) for d in runs)
    assert gap.shape == (5,)
    np.testing.assert_allclose(gap, 100 * (runs["cosine"].val_acc - runs["step"].val_acc))


def test_schedule_designer_reacts_at_extreme_controls_and_reports_divergence():
    e = R.schedule_designer(base_lrs=(0.03, 1e6), decays=("constant", "cosine"),
                            warmups=(0, 10), steps=25, sizes=(64, 8, 10))
    low = e.set(base_lr=0.03, decay="constant", warmup=0)
    high = e.set(base_lr=1e6, decay="constant", warmup=0)
    assert low.png != high.png
    assert "diverged at step" in high.text and high.diverged
    assert "validation accuracy" in low.text
    other = e.set(base_lr=0.03, decay="cosine", warmup=10)
    assert other.png != low.png and other.text != low.text


def test_bad_input():
    with pytest.raises(ValueError, match="penalty"):
        R.hessian_shift(penalty=-1)
    with pytest.raises(ValueError, match="weight_decay"):
        R.torch_weight_decay_gradient(weight_decay=0)
    with pytest.raises(ValueError, match="method"):
        R._factory("SGD", 0.1)
    with pytest.raises(ValueError, match="lr_grid"):
        R.lr_sensitivity(lr_grid=(-1.0,))
