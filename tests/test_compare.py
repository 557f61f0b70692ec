"""curvlib.compare: tuning on a shared grid, seeds, spreads, bad input."""
import math

import numpy as np
import pytest
import torch

from curvlib import compare, optim


def _data(n_train=300, n_val=150):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    tr, va = idx[:n_train], idx[n_train:n_train + n_val]
    return X[tr], y[tr], X[va], y[va]


DATA = _data()


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10))


sgd, adam = optim.factory("sgd"), optim.factory("adam")


def test_as_split_accepts_tuple_dict_object():
    X, y, Xv, yv = DATA
    a = compare.as_split(DATA)
    b = compare.as_split({"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv})

    class D:
        x_train, y_train, x_val, y_val = X, y, Xv, yv
    c = compare.as_split(D())
    for p, q, r in zip(a, b, c):
        assert torch.equal(p, q) and torch.equal(p, r)
    assert a[0].dtype == torch.float32 and a[1].dtype == torch.int64


def test_run_once_is_reproducible_and_seed_dependent():
    r1 = compare.run_once(adam, 1e-2, make_model, DATA, steps=30, seed=3, batch_size=64)
    r2 = compare.run_once(adam, 1e-2, make_model, DATA, steps=30, seed=3, batch_size=64)
    r3 = compare.run_once(adam, 1e-2, make_model, DATA, steps=30, seed=4, batch_size=64)
    np.testing.assert_array_equal(r1["loss"], r2["loss"])
    assert not np.array_equal(r1["loss"], r3["loss"])
    assert r1["diverged_at"] is None
    assert r1["loss"][-1] < r1["loss"][0]          # it learns
    assert 0.0 <= r1["val_acc"] <= 1.0
    np.testing.assert_allclose(r1["lr"], 1e-2)


def test_schedule_sets_each_step_lr():
    sched = lambda t, base: base * (t + 1) / 10
    r = compare.run_once(sgd, 0.5, make_model, DATA, steps=10, seed=0, schedule=sched)
    np.testing.assert_allclose(r["lr"], 0.5 * np.arange(1, 11) / 10)


def test_divergence_is_recorded_not_raised():
    r = compare.run_once(sgd, 1e4, make_model, DATA, steps=50, seed=0)
    assert r["diverged_at"] is not None and r["diverged_at"] < 50
    assert math.isinf(r["val_loss"]) and r["val_acc"] == 0.0
    assert np.isnan(r["loss"][r["diverged_at"]:]).all()


def test_tune_lr_picks_the_grid_point_with_lowest_score():
    grid = [1e-3, 1e-1, 1e4]
    best, scores = compare.tune_lr(sgd, grid, make_model, DATA, steps=60, select="train_loss")
    assert set(scores) == set(grid)
    assert math.isinf(scores[1e4])                     # divergent rate scores +inf
    assert best == min(scores, key=scores.get) == 1e-1  # tiny lr barely moves in 60 steps


def test_tune_lr_all_diverged_raises():
    with pytest.raises(RuntimeError, match="diverged"):
        compare.tune_lr(sgd, [1e4, 1e5], make_model, DATA, steps=20)


def test_tune_and_compare_fair_protocol():
    grid = [1e-3, 1e-2, 1e-1, 1.0]
    res = compare.tune_and_compare({"SGD": sgd, "Adam": adam}, grid, make_model, DATA,
                                   steps=40, batch_size=100)
    assert res.names == ["SGD", "Adam"]
    for name in res.names:
        assert set(res.scores[name]) == set(grid)       # same grid for every optimizer
        assert res.best_lr[name] == min(grid, key=lambda lr: (res.scores[name][lr], lr))
        r = res[name]
        assert r.lr == res.best_lr[name]
        assert r.loss.shape == (5, 40) and len(r.val_acc) == 5
        assert (r.std > 0).any()                         # seeds really differ
        assert np.all(r.low <= r.mean + 1e-12) and np.all(r.mean <= r.high + 1e-12)
        m, s, lo, hi = r.final("val_acc")
        assert lo <= m <= hi and s >= 0
        assert res.at_edge[name] == (res.best_lr[name] in (grid[0], grid[-1]))
    # Adam's best rate is smaller than SGD's on this problem (textbook behaviour)
    assert res.best_lr["Adam"] < res.best_lr["SGD"]
    rows = compare.summary_rows(res)
    assert rows[0]["name"] == "SGD" and "±" in rows[0]["val_acc"] and rows[0]["seeds"] == 5


def test_select_changes_the_criterion():
    grid = [1e-2, 1e-1, 1.0]
    b_tr, s_tr = compare.tune_lr(sgd, grid, make_model, DATA, steps=30, select="train_loss")
    b_va, s_va = compare.tune_lr(sgd, grid, make_model, DATA, steps=30, select="val_loss")
    assert s_tr != s_va


def test_per_optimizer_schedules():
    warm = lambda t, base: base * min(1.0, (t + 1) / 20)
    res = compare.tune_and_compare({"const": sgd, "warm": sgd}, [0.1], make_model, DATA,
                                   steps=20, schedule={"warm": warm})
    assert not np.allclose(res["const"].loss, res["warm"].loss)


def test_steps_to_target():
    r = compare.run_seeds(sgd, 0.5, make_model, DATA, steps=50, seeds=range(5))
    target = float(np.nanmax(r.loss[:, -1]))
    hits = r.steps_to(target)
    assert np.all(np.isfinite(hits)) and np.all(hits <= 49)
    assert np.all(np.isinf(r.steps_to(-1.0)))


def test_plot_bands_draws_one_band_per_setting():
    import matplotlib
    matplotlib.use("Agg")
    r1 = compare.run_seeds(sgd, 0.1, make_model, DATA, steps=15, seeds=range(5), name="a")
    r2 = compare.run_seeds(adam, 1e-2, make_model, DATA, steps=15, seeds=range(5), name="b")
    ax = compare.plot_bands([r1, r2], band="minmax")
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    ax = compare.plot_bands(r1, quantity="grad_norm", logy=False)
    assert ax.get_ylabel() == "gradient norm"


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"seeds": (0, 1, 2)}, ValueError, "seeds"),
    ({"seeds": (0, 0, 1, 2, 3)}, ValueError, "seeds"),
    ({"select": "accuracy"}, ValueError, "select"),
    ({"lr_grid": [-1.0]}, ValueError, "lr_grid"),
    ({"lr_grid": []}, ValueError, "lr_grid"),
    ({"steps": 0}, ValueError, "steps"),
    ({"optimizers": {}}, TypeError, "optimizers"),
    ({"optimizers": {"x": 3}}, TypeError, "optimizers"),
    ({"schedule": {"nope": None}}, ValueError, "schedule"),
    ({"batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_input(kwargs, exc, word):
    args = {"optimizers": {"SGD": sgd}, "lr_grid": [0.1], "make_model": make_model,
            "data": DATA, "steps": 2}
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        compare.tune_and_compare(**args)


def test_bad_data():
    with pytest.raises(ValueError, match="data"):
        compare.as_split((1, 2, 3))
    with pytest.raises(TypeError, match="data"):
        compare.as_split({"X_train": DATA[0]})


@pytest.mark.parametrize("factory, batch_size", [
    (optim.factory("nesterov"), None),
    (optim.factory("adam"), 64),
    (optim.factory("adamw", weight_decay=0.1), 50),
])
def test_fast_path_equals_reference_loop(factory, batch_size):
    sched = lambda t, base: base * min(1.0, (t + 1) / 5)
    fast = compare._fast_runs(factory, [0.01, 0.1], [0, 1, 2], make_model, DATA, steps=25,
                              batch_size=batch_size, schedules=[sched, sched])
    assert fast is not None
    k = 0
    for lr in [0.01, 0.1]:
        for s in [0, 1, 2]:
            ref = compare.run_once(factory, lr, make_model, DATA, steps=25, seed=s,
                                   batch_size=batch_size, schedule=sched)
            np.testing.assert_allclose(fast[k]["loss"], ref["loss"], rtol=2e-4, atol=1e-6)
            np.testing.assert_allclose(fast[k]["grad_norm"], ref["grad_norm"], rtol=2e-3)
            np.testing.assert_allclose(fast[k]["lr"], ref["lr"])
            assert fast[k]["val_acc"] == pytest.approx(ref["val_acc"], abs=0.01)
            assert fast[k]["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-3)
            k += 1


def test_fast_path_records_divergence_per_run():
    fast = compare._fast_runs(sgd, [0.1, 1e4], [0, 1], make_model, DATA, steps=40)
    ref = compare.run_once(sgd, 1e4, make_model, DATA, steps=40, seed=0)
    assert fast[0]["diverged_at"] is None and fast[1]["diverged_at"] is None
    assert fast[2]["diverged_at"] == ref["diverged_at"] is not None
    assert np.isfinite(fast[0]["loss"]).all()             # a diverging neighbour does not leak


def test_fast_path_declines_models_with_buffers_and_non_elementwise_optimizers():
    bn = lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8),
                                     torch.nn.Linear(8, 10))
    assert compare._fast_runs(sgd, [0.1], [0, 1], bn, DATA, steps=2) is None
    assert compare._fast_runs(optim.factory("lbfgs"), [0.1], [0, 1], make_model, DATA,
                              steps=2) is None
    plain = lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr)   # a plain (model, lr) callable
    assert compare._fast_runs(plain, [0.1], [0, 1], make_model, DATA, steps=2) is None
    r = compare.run_seeds(plain, 0.1, make_model, DATA, steps=5, seeds=range(5))
    assert r.loss.shape == (5, 5) and np.isfinite(r.loss).all()
    r = compare.run_seeds(sgd, 0.1, bn, DATA, steps=5, seeds=range(5))   # reference path works
    assert r.loss.shape == (5, 5) and np.isfinite(r.loss).all()


def test_curvlib_data_and_models_plug_in():
    from curvlib import data, models
    split = data.digits()
    mk = lambda s: models.mlp([64, 8, 10], seed=s)
    r = compare.run_seeds(adam, 1e-2, mk, split, steps=10, seeds=range(5))
    assert not np.allclose(r.loss[0], r.loss[1])     # the seed reaches the model
    ref = compare.run_once(adam, 1e-2, mk, split, steps=10, seed=1)
    np.testing.assert_allclose(r.loss[1], ref["loss"], rtol=1e-4)


def test_run_settings_mixes_hyperparameters_and_schedules_in_one_batch():
    warm = lambda t, base: base * min(1.0, (t + 1) / 10)
    settings = [{"lr": 0.01, "weight_decay": 0.0, "name": "plain"},
                {"lr": 0.01, "weight_decay": 0.5, "name": "decayed"},
                {"lr": 0.01, "schedule": warm, "name": "warm"}]
    fast = compare.run_settings(adam, settings, make_model, DATA, steps=20, seeds=range(2))
    ref = compare.run_settings(adam, settings, make_model, DATA, steps=20, seeds=range(2),
                               fast=False)
    assert [r.name for r in fast] == ["plain", "decayed", "warm"]
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f.loss, r.loss, rtol=2e-4, atol=1e-6)
    assert not np.allclose(fast[0].loss, fast[1].loss)   # weight decay reached its group
    np.testing.assert_allclose(fast[0].loss[:, 0], fast[2].loss[:, 0])  # same start
    assert not np.allclose(fast[0].loss, fast[2].loss)
    with pytest.raises(ValueError, match="settings"):
        compare.run_settings(adam, [{"weight_decay": 1.0}], make_model, DATA, steps=2)


def test_fast_path_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compare.run_seeds(sgd, 0.1, make_model, DATA, steps=3, seeds=range(5))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_lr_grid_is_the_one_way_to_write_a_grid():
    assert compare.lr_grid(1e-3, 1) == (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    assert compare.LR_GRID == compare.lr_grid(1e-4, 1.0) and len(compare.LR_GRID) == 9
    assert compare.lr_grid(0.1, 3) == (0.1, 0.3, 1.0, 3.0)              # 3 is a grid point
    assert compare.lr_grid(1, 10, per_decade=3) == (1.0, 2.0, 5.0, 10.0)
    assert compare.lr_grid(1e-4, 10, digits=3)[1] == 3.16e-4
    assert compare.lr_grid(0.05, 0.05) == ()
    with pytest.raises(ValueError, match="low"):
        compare.lr_grid(1.0, 0.1)
    with pytest.raises(ValueError, match="per_decade"):
        compare.lr_grid(0.1, 1.0, per_decade=0)


def test_smooth_and_steps_to_target():
    loss = np.array([[3.0, 2.0, 1.0, 0.5, 0.2], [3.0, 3.0, 3.0, 3.0, 3.0]])
    assert np.allclose(compare.smooth(loss, 1), loss)
    assert np.allclose(compare.smooth(loss[0], 2), [3.0, 2.5, 1.5, 0.75, 0.35])
    assert np.isinf(compare.smooth([1.0, np.nan, 1.0], 2)[1:]).all()  # a divergence stays
    t = compare.steps_to_target(loss, 1.0, window=1)
    assert t[0] == 2 and np.isinf(t[1])
    assert compare.steps_to_target(loss[0], 0.75, window=2) == 3.0
    with pytest.raises(ValueError, match="window"):
        compare.smooth(loss, 0)


def test_select_seeds_and_timed_comparison():
    r = compare.run_seeds(sgd, 0.1, make_model, DATA, steps=6, seeds=range(5), fast=False)
    sub = r.select([1, 3])
    assert sub.seeds == (1, 3) and np.array_equal(sub.loss, r.loss[[1, 3]])
    assert np.all(np.diff(r.time, axis=1) > 0)               # each run's own wall clock
    res = compare.tune_and_compare({"SGD": sgd, "Adam": adam}, [0.01, 0.1], make_model, DATA,
                                   steps=8, batch_size=50, timed=True, select="train_loss")
    assert res.steps == 8 and res.batch_size == 50
    assert set(res.steps_to(10.0).values()) == {0.0}         # every run starts below 10
    assert all(np.isfinite(r.time).all() for r in res.runs.values())
