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
    # negatives are counted by chapter 2's rule (below -1e-6 lambda_max), not every value < 0
    from curvbook.hessian_cost import spectrum_summary
    assert R.NEG_TOL == 1e-6
    assert s["n_negative"] == int((s["eig"] < -R.NEG_TOL * s["lambda_max"]).sum())
    assert s["n_negative"] == spectrum_summary(s["eig"])["negative"] <= s["n_negative_raw"]
    assert s["n_negative_reg"] <= s["n_negative"]
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


def test_tune_on_grid_grows_an_axis_until_the_best_point_is_inside():
    calls = []

    def score(points):
        calls.append(len(points))
        return [(np.log10(p["lr"]) + 2) ** 2 + (np.log10(p["wd"]) + 3) ** 2 if p["wd"] else 9.0
                for p in points]

    t = R.tune_on_grid(score, {"lr": [0.1, 0.3], "wd": [0.0, 0.1]}, max_rounds=6)
    assert t["best"] == {"lr": 0.01, "wd": 0.001} and t["edge"] == []
    assert t["axes"]["lr"][0] < 0.01 and t["axes"]["wd"][0] == 0.0
    assert t["axes"]["wd"][1] < 0.001 < t["axes"]["wd"][-1]
    assert sum(calls) == len(t["scores"])              # every point scored once
    # a capped search reports the edge it could not leave
    capped = R.tune_on_grid(score, {"lr": [0.1, 0.3], "wd": [0.0, 0.1]}, max_rounds=1)
    assert "lr" in capped["edge"] and capped["rounds"] == 1
    # 0 is a natural end, never an edge
    zero = R.tune_on_grid(lambda ps: [p["wd"] for p in ps], {"wd": [0.0, 0.1, 1.0]})
    assert zero["best"] == {"wd": 0.0} and zero["edge"] == []


def test_tune_on_grid_breaks_near_ties_by_the_stated_preference():
    axes = {"wd": [0.0, 0.01, 0.1, 1.0]}
    score = lambda ps: [{0.0: 1.0, 0.01: 0.999, 0.1: 1.005, 1.0: 2.0}[p["wd"]] for p in ps]  # noqa: E731
    assert R.tune_on_grid(score, axes, max_rounds=0)["best"]["wd"] == 0.01
    assert R.tune_on_grid(score, axes, max_rounds=0, tie=0.01,
                          prefer=lambda p: -p["wd"])["best"]["wd"] == 0.1
    assert R.grid_neighbour(0.03, True) == 0.1 and R.grid_neighbour(0.03, False) == 0.01
    with pytest.raises(ValueError, match="value"):
        R.grid_neighbour(0.0, True)


def test_paired_difference_interval():
    m, lo, hi = R.paired_difference([1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.5, 3.0])
    d = np.array([0.5, 1.0, 0.5, 1.0])
    assert m == pytest.approx(d.mean()) and lo < m < hi
    assert hi - m == pytest.approx(3.182446 * d.std(ddof=1) / 2, rel=1e-5)
    with pytest.raises(ValueError):
        R.paired_difference([1.0], [2.0])


def test_l2_vs_decoupled_tunes_each_method_and_pairs_seeds():
    r = R.l2_vs_decoupled(lrs=(1e-3, 1e-2), weight_decays=(0.0, 1e-1), steps=15, batch_size=128,
                          sizes=(64, 8, 10), seeds=(0, 1, 2), max_rounds=1)
    for method in ("Adam+L2", "AdamW"):
        t = r["tuned"][method]
        grid = R.grid_array(t, "weight_decay", "lr")
        assert grid.shape == (len(t["axes"]["weight_decay"]), len(t["axes"]["lr"]))
        lr, wd = r["best"][method]
        assert t["scores"][(lr, wd)] <= grid.min() * (1 + r["tuned"][method]["tie"])
        assert r["runs"][method].loss.shape == (3, 15) and r["runs"][method].seeds == (0, 1, 2)
    a, b = r["runs"]["Adam+L2"], r["runs"]["AdamW"]
    assert r["diff_loss"][0] == pytest.approx(float(np.mean(a.val_loss - b.val_loss)))


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


def test_warmup_experiment_counts_failures_per_batch_size():
    w = R.warmup_batches(batch_sizes=(64, 256), peak_lrs=(0.1, 50.0), warmup=10, steps=30,
                         sizes=(64, 16, 10), seeds=(0, 1, 2), stuck_loss=2.2)
    assert set(w["failures"]) == {64, 256} and set(w["failures"][64]) == {0, 10}
    for B in (64, 256):
        assert w["failures"][B][0][0.1] == 0 and w["failures"][B][0][50.0] == 3
        assert w["final"][B, 0, 0.1].shape == (3,)
    assert not np.allclose(w["final"][64, 10, 0.1], w["final"][64, 0, 0.1])   # the ramp acts
    with pytest.raises(ValueError, match="warmup"):
        R.warmup_batches(warmup=200, steps=100)


def test_schedule_comparison_tunes_and_pairs_seeds():
    s = R.schedule_comparison(lr_grid=(0.03, 0.1), steps=20, batch_size=64, sizes=(64, 8, 10),
                              seeds=(0, 1, 2), max_rounds=1)
    runs = s["runs"]
    assert set(runs) == {"constant", "step", "cosine"}
    assert all(s["best_lr"][d] in s["tuned"][d]["axes"]["lr"] for d in runs)
    d = 100 * (runs["cosine"].val_acc - runs["step"].val_acc)
    assert s["gap"][0] == pytest.approx(d.mean()) and s["gap"][1] <= s["gap"][0] <= s["gap"][2]
    assert set(s["window_loss"]) == set(runs)


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
