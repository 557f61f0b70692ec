"""Chapter 3's machinery: BFGS and the two-loop recursion, fair tuning, the races, Adam, the widgets."""
import inspect
import math

import numpy as np
import pytest

from curvlib.landscapes import LogisticRegression
from curvbook import quasi_newton_adam as q


@pytest.fixture(scope="module")
def problem():
    return LogisticRegression.breast_cancer(1e-3)


#: Small grids and budgets: the studies' machinery at a fraction of the chapter's cost.
SMALL_AXES = {"GD": {"lr": ("log", 2, 6)},
              "heavy ball": {"lr": ("log", 4, 8), "momentum": ("momentum", 2, 6)},
              "Adam": {"lr": ("log", -4, 0), "beta1": ("momentum", 4, 8)},
              "L-BFGS": {"lr": ("log", -2, 2)}}


@pytest.fixture(scope="module")
def study():
    return q.full_batch_study(tune_seeds=(0,), report_seeds=(1, 2, 3), budget=2000, axes=SMALL_AXES,
                              other_splits=(1, 6))


def test_start_points_and_solve(problem):
    assert np.all(q.start_point(problem) == 0)
    assert np.array_equal(q.start_point(problem, 4), q.start_point(problem, 4))
    assert not np.array_equal(q.start_point(problem, 4), q.start_point(problem, 5))
    assert q.start_point(problem, 4).shape == (problem.dim,)
    with pytest.raises(ValueError, match="seed"):
        q.start_point(problem, -1)
    res = q.solve(problem, "newton", gtol=1e-10)
    np.testing.assert_allclose(res.x, problem.minimum, atol=1e-8)
    res = q.solve(problem, "lbfgs", q.start_point(problem, 1), history_size=5, gtol=1e-6)
    assert res.success and np.array_equal(res.path[0], q.start_point(problem, 1))


def test_two_loop_equals_explicit_inverse(problem):
    c = q.two_loop_check(problem, history_size=5, maxiter=30)
    assert c["iterations_compared"] >= 20
    assert c["max_relative_difference"] < 1e-10
    assert c["explicit_bytes"] == 8 * problem.dim ** 2


# ------------------------------------------------------------------------------- fair tuning
def test_grid_values_and_indices():
    assert q.grid_value("log", 8) == 10.0 and q.grid_value("log", -4, per_decade=4) == 0.1
    assert q.grid_value("momentum", 0) == 0.0 and q.grid_value("momentum", 8) == pytest.approx(0.9)
    for kind, j in (("log", -13), ("momentum", 11)):
        assert q.grid_index(kind, q.grid_value(kind, j)) == j
    with pytest.raises(ValueError, match="kind"):
        q.grid_value("linear", 1)
    with pytest.raises(ValueError, match="j"):
        q.grid_value("momentum", -1)
    with pytest.raises(ValueError, match="value"):
        q.grid_index("momentum", 1.0)


def test_tune_extends_the_grid_until_the_optimum_is_interior():
    calls = []

    def score(points, bound):
        calls.append(len(points))
        return [(math.log10(p["lr"]) - 1.3) ** 2 + (p["beta"] - 0.9) ** 2 for p in points]

    t = q.tune(score, {"lr": ("log", -8, 0), "beta": ("momentum", 0, 4)})
    assert t["interior"] == {"lr": True, "beta": True}
    assert t["best"]["lr"] == pytest.approx(10 ** 1.25) and t["best"]["beta"] == pytest.approx(0.9)
    assert max(t["grid"]["lr"]) > t["best"]["lr"] and max(t["grid"]["beta"]) > 0.9
    assert t["scores"].shape == (len(t["grid"]["lr"]), len(t["grid"]["beta"]))
    assert sum(calls) == t["evaluated"] == t["scores"].size  # every point scored once
    # an optimum at beta = 0 is at the edge of the domain, not of the grid
    t0 = q.tune(lambda pts, b: [p["beta"] for p in pts], {"beta": ("momentum", 0, 3)})
    assert t0["best"]["beta"] == 0 and t0["interior"]["beta"] and t0["at_boundary"]["beta"]
    # a score falling for ever: the grid grows max_extensions times, then says so
    t1 = q.tune(lambda pts, b: [-p["lr"] for p in pts], {"lr": ("log", 0, 2)}, max_extensions=3)
    assert not t1["interior"]["lr"] and t1["extensions"] == 3 and len(t1["grid"]["lr"]) == 6
    # nothing succeeded
    t2 = q.tune(lambda pts, b: [math.inf] * len(pts), {"lr": ("log", 0, 2)})
    assert t2["best"] is None and t2["interior"]["lr"] is None
    with pytest.raises(TypeError, match="axes"):
        q.tune(score, {"lr": ("log", 0)})
    with pytest.raises(ValueError, match="hi"):
        q.tune(score, {"lr": ("log", 2, 0)})


def test_paired_interval():
    rng = np.random.default_rng(0)
    b = rng.standard_normal(10)
    d = 1.0 + 0.1 * rng.standard_normal(10)
    r = q.paired_interval(b + d, b)
    from scipy import stats
    half = stats.t.ppf(0.975, 9) * d.std(ddof=1) / math.sqrt(10)
    assert r["mean"] == pytest.approx(d.mean()) and r["hi"] - r["lo"] == pytest.approx(2 * half)
    assert r["verdict"] == "b lower" and q.paired_interval(b, b + d)["verdict"] == "a lower"
    assert q.paired_interval(b + 0.01 * rng.standard_normal(10), b)["verdict"] == "inconclusive"
    ratio = q.paired_interval(2.0 * np.exp(0.01 * b), np.exp(0.01 * b), log=True)
    assert ratio["mean"] == pytest.approx(2.0) and ratio["lo"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shape"):
        q.paired_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        q.paired_interval([1.0, math.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        q.paired_interval([1.0, -1.0], [1.0, 2.0], log=True)


@pytest.mark.parametrize("label, hyper, kwargs", [
    ("GD", {"lr": 10.0}, dict(method="gd", lr=10.0)),
    ("heavy ball", {"lr": 20.0, "momentum": 0.7}, dict(method="momentum", lr=20.0, momentum=0.7)),
    ("Adam", {"lr": 0.5, "beta1": 0.8}, dict(method="adam", lr=0.5, betas=(0.8, 0.999))),
])
def test_first_hit_counts_the_steps_of_curvlib_minimize(problem, label, hyper, kwargs):
    assert q.minimize_kwargs(label, hyper) == kwargs
    res = q.solve(problem, gtol=1e-6, maxiter=3000, **kwargs)
    method = q.FIRST_ORDER[label][0]
    done = lambda X, G: np.max(np.abs(G), axis=1) <= 1e-6
    hits = q.first_hit(problem.grad_rows, problem.x0, method, [hyper, {**hyper, "lr": 1e-4}], done, budget=3000)
    assert res.success and abs(hits[0] - res.nit) <= 1   # the same rule; rounding may move it a step
    assert hits[1] == math.inf                          # a tiny step does not get there
    first = q.first_hit(problem.grad_rows, problem.x0, method, [hyper, {**hyper, "lr": 1e-4}], done,
                        budget=3000, stop_at_first=True)
    assert first[0] == hits[0] and first[1] == math.inf


def test_first_hit_marks_divergence(problem):
    hits = q.first_hit(lambda X: X * 10.0, np.ones(3), "gd", [{"lr": 1.0}, {"lr": 0.05}],
                       lambda X, G: np.linalg.norm(X, axis=1) < 1e-6, budget=500)
    assert hits[0] == math.inf and np.isfinite(hits[1])
    assert q.first_hit(problem.grad_rows, problem.x0, "gd", [], lambda X, G: True, budget=3).size == 0
    with pytest.raises(ValueError, match="method"):
        q.first_hit(problem.grad_rows, problem.x0, "sgd", [{"lr": 1.0}], lambda X, G: True, budget=3)


def test_worst_case_scorer_takes_the_worst_problem():
    counts = {"a": {1: 5.0, 2: 9.0, 3: 30.0}, "b": {1: 12.0, 2: 8.0, 3: 4.0}}

    def count(problem, points, budget, first):
        c = np.array([counts[problem][p["k"]] for p in points])
        return np.where(c <= budget, c, math.inf)

    score = q.worst_case_scorer(count, ["a", "b"], budget=100)
    worst = score([{"k": 1}, {"k": 2}, {"k": 3}], math.inf)
    assert list(worst) == [12.0, 9.0, math.inf]      # 30 > the bound 12 found first
    assert list(score([{"k": 3}], 40.0)) == [30.0]


def test_full_batch_study_tunes_alike_and_orders_the_methods(study):
    for label, t in study["tuning"].items():
        assert t["best"] is not None and all(t["interior"].values()), label
    assert study["tuning"]["heavy ball"]["extensions"] > 0      # the small starting grids had to grow
    E = study["evaluations"]
    assert set(E) == {"GD", "heavy ball", "Adam", "L-BFGS (m=10)", "Newton"}
    med = {k: np.median(v) for k, v in E.items()}
    assert med["Newton"] < med["L-BFGS (m=10)"] < med["heavy ball"] < med["Adam"] < med["GD"] <= 2000
    assert study["newton_hessians"].shape == (3,) and study["polyak"]["GD"].shape == (3,)
    assert study["polyak_hyper"]["heavy ball"]["momentum"] == pytest.approx(
        ((math.sqrt(study["kappa"]) - 1) / (math.sqrt(study["kappa"]) + 1)) ** 2)
    assert [r["seed"] for r in study["transfer"]] == [1, 6] and not study["transfer"][1]["gd_stable"]
    with pytest.raises(ValueError, match="disjoint"):
        q.full_batch_study(tune_seeds=(0, 1), report_seeds=(1, 2))


def test_full_batch_race_and_the_rate_of_lbfgs(problem):
    race = q.full_batch_race(problem, {"GD": {"lr": 13.3}, "L-BFGS (m=10)": {"lr": 1.0}, "Newton": {}},
                             maxiter=3000)
    assert all(r.success for r in race.values())
    assert race["Newton"].nit < race["L-BFGS (m=10)"].nit < 100 < race["GD"].nit
    newton = q.ratio_by_window(race["Newton"].path, problem.minimum, ((1e-1, 1e-8),))[0]
    lbfgs = q.ratio_by_window(race["L-BFGS (m=10)"].path, problem.minimum)
    assert newton < 0.1 and all(0.5 < r < 0.95 for r in lbfgs)
    x, y = q.digits_per_step(race["Newton"].path, problem.minimum)
    assert np.all(np.diff(y) > 0) and len(x) >= 3     # Newton gains more digits per step as it closes in
    with pytest.raises(ValueError, match="label"):
        q.minimize_kwargs("SGD", {})


def test_history_size_helps(problem):
    rows = q.history_sweep(problem, sizes=(1, 50), starts=(None, 1, 2))
    assert rows[1]["nit"] < rows[0]["nit"] and all(r["success"] for r in rows)
    assert len(rows[0]["nit_runs"]) == 3 and rows[0]["nit"] == np.median(rows[0]["nit_runs"])
    assert rows[0]["nit_runs"][0] == q.solve(problem, "lbfgs", history_size=1, gtol=1e-8, maxiter=2000).nit
    with pytest.raises(ValueError, match="sizes"):
        q.history_sweep(problem, sizes=(0,))


def test_error_ratios_of_a_geometric_sequence():
    path = 0.5 ** np.arange(30)[:, None] * np.ones((1, 3))
    ratios, e = q.error_ratios(path, np.zeros(3))
    assert np.allclose(ratios, 0.5)
    assert q.ratio_by_window(path, np.zeros(3), ((10, 1e-1), (1e-1, 1e-6)))[0] == pytest.approx(0.5)
    x, y = q.digits_per_step(path, np.zeros(3))
    assert np.allclose(y, math.log10(2)) and len(x) >= 5   # linear convergence: a flat line


# ------------------------------------------------------------------------------- mini-batches
def test_minibatch_lbfgs_is_sensitive_to_batch_size(problem):
    full = q.stochastic_lbfgs(problem, problem.n_samples, lr=1.0, epochs=10)
    start = problem.value(problem.x0) - problem.minimum_value
    assert full["diverged_at"] is None and full["gap"] < 1e-2 * start
    for seed in range(3):  # batches of 8 with the unit step: worse than not training at all
        small = q.stochastic_lbfgs(problem, 8, lr=1.0, epochs=3, seed=seed)
        assert small["diverged_at"] is not None or small["gap"] > start
    adam = q.stochastic_adam(problem, 8, lr=0.02, epochs=3)
    assert adam["diverged_at"] is None and adam["gap"] < 0.1 * start
    assert q.stochastic_lbfgs(problem, 8, lr=1e6, steps=5)["diverged_at"] is not None
    with pytest.raises(ValueError, match="batch_size"):
        q.stochastic_lbfgs(problem, 10_000)
    with pytest.raises(ValueError, match="lr"):
        q.stochastic_adam(problem, 8, lr=-1)


def test_minibatch_study_compares_tuned_methods():
    mb = q.minibatch_study(batch_sizes=(32, 426), epochs=2, tune_seeds=(100, 101), report_seeds=(0, 1, 2),
                           lr_range=(-6, 0))
    for name, d in mb["tuning"].items():
        for bs, t in d.items():
            assert t["best"] is not None and t["interior"]["lr"], (name, bs)
    assert mb["tuning"]["L-BFGS, pairs on one batch"][426] is mb["tuning"]["L-BFGS, pairs across batches"][426]
    for bs in (32, 426):
        chosen = mb["best_lbfgs"][bs]
        other = [n for n in q.MINIBATCH_METHODS[:2] if n != chosen][0]
        assert mb["tuning"][chosen][bs]["score"] <= mb["tuning"][other][bs]["score"]
        assert mb["report"]["Adam"][bs].shape == (3,)
        c = mb["comparisons"][bs]
        assert c["lo"] <= c["mean"] <= c["hi"] and c["verdict"] in ("a lower", "b lower", "inconclusive")
    full = mb["comparisons"][426]
    assert full["lo"] == pytest.approx(full["hi"]) and full["verdict"] == "b lower"  # deterministic: no spread
    lrs, sizes, values = q.minibatch_landscape(mb, "Adam")
    assert values.shape == (len(lrs), 2) and sizes == [32, 426]
    with pytest.raises(ValueError, match="batch_sizes"):
        q.minibatch_study(batch_sizes=(1000,))


def test_unit_step_gaps(problem):
    u = q.unit_step_gaps(batch_sizes=(8,), seeds=(0, 1))
    assert u["start"] == pytest.approx(problem.value(problem.x0) - problem.minimum_value)
    assert u[8].shape == (2,) and np.all(u[8] > u["start"])


# ------------------------------------------------------------------------------- Adam
def test_bias_correction_ratio_matches_the_closed_form():
    b = q.bias_correction_ratio(steps=300)
    assert b["first"] == pytest.approx(math.sqrt(1000) / 10, rel=1e-9)
    assert np.allclose(b["measured"], b["formula"], rtol=1e-9)
    assert b["argmax"] == 12 and 6 < b["max"] < 7
    same = q.bias_correction_ratio(steps=50, adam=q.rules_adam_step)
    assert np.allclose(same["measured"], b["measured"][:50])
    with pytest.raises(ValueError, match="beta2"):
        q.bias_correction_ratio(beta2=1.0)


def test_adam_is_a_diagonal_preconditioner():
    r = q.preconditioning_study(kappas=(10, 1000), dim=10, budget=3000, tune_seeds=(0,), report_seeds=(1, 2))
    aligned, rotated = r["steps"][("Adam", "axis-aligned")], r["steps"][("Adam", "rotated")]
    assert np.array_equal(aligned[0], aligned[1])          # kappa does not matter on the axes
    assert np.all(rotated[1] > 1.3 * aligned[1])           # it does once the axes are turned
    hb = r["tuning"][("heavy ball", "rotated")][1]["best"]["momentum"]
    assert 0.8 < hb < 0.99                                 # tuned, near Polyak's 0.88 at kappa = 1000
    assert all(t["best"] is None or all(t["interior"].values()) for ts in r["tuning"].values() for t in ts)
    assert r["jacobi"]["axis-aligned"] == pytest.approx([1.0, 1.0])
    assert r["jacobi"]["rotated"][1] > 100
    with pytest.raises(ValueError, match="kappa"):
        q.quadratic_problem(4, 0.5, True)
    with pytest.raises(ValueError, match="disjoint"):
        q.preconditioning_study(tune_seeds=(1,), report_seeds=(1, 2))


def test_adam_iterates_do_not_see_a_diagonal_rescaling():
    c = q.adam_rescaling_check(kappa=1e4, steps=200)
    assert c["max_difference_eps0"] < 1e-14          # the same iterates, to rounding
    assert c["max_difference"] > 100 * c["max_difference_eps0"]  # epsilon breaks the invariance slightly


# ------------------------------------------------------------------------------- the table
def test_state_bytes_measured_against_formula():
    rows = {r["method"].split(" (")[0]: r for r in q.state_bytes_rows(hidden=8)}
    n = rows["SGD"]["n_params"]
    assert rows["SGD"]["measured_bytes"] == 0
    assert rows["SGD+Momentum"]["measured_bytes"] == 4 * n
    assert abs(rows["Adam"]["measured_bytes"] - 8 * n) <= 16
    assert abs(rows["L-BFGS"]["measured_bytes"] - rows["L-BFGS"]["formula_bytes"]) <= 4 * 22
    assert rows["Newton"]["measured_bytes"] == 4 * n * n


def test_comparison_table(problem, study):
    tuned = {k: t["best"] for k, t in study["tuning"].items()}
    race = q.full_batch_race(problem, {**tuned, "Newton": {}}, maxiter=3000)
    rows = q.comparison_rows(study, race, q.state_bytes_rows(hidden=8), problem)
    assert [r["method"] for r in rows] == ["Newton", "L-BFGS", "Adam", "SGD+Momentum", "SGD"]
    assert rows[4]["evaluations"] == np.median(study["evaluations"]["GD"])
    md = q.comparison_markdown(rows)
    assert "Superlinear" in md and f"{rows[4]['evaluations']:,.0f}" in md


# ------------------------------------------------------------------------------- figures, widgets
def test_figures_are_column_wide_with_labelled_colorbars(problem, study):
    import matplotlib.pyplot as plt
    race = q.full_batch_race(problem, {"GD": {"lr": 13.3}, "Newton": {}}, maxiter=2000)
    axes = q.plot_race(race, problem)
    assert axes[0].figure.get_figwidth() == q.WIDTH
    assert "e_{k+1}/e_k" in axes[1].get_ylabel() and "$" in axes[1].get_ylabel()   # typeset
    assert axes[1].xaxis.get_ticklabels()[0].get_fontsize() >= 11
    mb = q.minibatch_study(batch_sizes=(128, 426), epochs=1, tune_seeds=(100,), report_seeds=(0, 1), lr_range=(-4, 0))
    axes = q.plot_minibatch_tuning(mb)
    fig = axes[0].figure
    labels = [a.get_xlabel() for a in fig.axes if a not in list(axes)]
    assert any("log_{10}" in lab for lab in labels)          # the colorbar says what the colour is
    q.plot_minibatch_comparison(mb)
    plt.close("all")
    # no white text on a light cell
    assert q._text_color(plt.get_cmap("viridis_r")(0.0)) == "black"
    assert q._text_color(plt.get_cmap("viridis_r")(1.0)) == "white"


def test_widget_sliders_have_six_positions_or_more():
    assert len(q.ADAM_LRS) >= 6 and len(q.ADAM_BETA1S) >= 6 and len(q.ADAM_BETA2S) >= 6
    assert len(inspect.signature(q.lbfgs_history_explorer).parameters["l2s"].default) >= 6
    e = q.adam_explorer(steps=60)
    assert all(len(v) >= 6 for v in e.controls.values())
    lo = e.set(lr=0.01, beta1=0.0)
    hi = e.set(lr=0.3, beta1=0.9)
    assert lo.text != hi.text and lo.png != hi.png
    b = q.adam_bias_explorer(steps=40)
    assert len(b.controls["beta2"]) >= 6
    f1, f2 = b.set(beta2=0.9), b.set(beta2=0.9999)
    assert f1.text != f2.text and "first step" in f1.text


def test_lbfgs_explorer_extremes():
    e = q.lbfgs_history_explorer(sizes=(1, 50), l2s=(1e-2, 1e-4))
    a = e.set(m=1, l2=1e-2)
    b = e.set(m=50, l2=1e-4)
    assert a.text != b.text and a.png != b.png
    assert "m=1" in a.text and "m=50" in b.text
