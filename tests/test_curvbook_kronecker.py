"""Chapter 6 machinery: the Kronecker identity, K-FAC's approximation, the fair comparison,
memory and cost counts, the success-rate experiment, the decision chart and the widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from curvlib import data, memory, models, optim  # noqa: E402
from curvbook import kronecker as K  # noqa: E402
from curvbook import kronecker_race as R  # noqa: E402
from curvlib.second_order import kfac_bytes, shampoo_bytes  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return data.digits()


# ------------------------------------------------------------------ the Kronecker idea
def test_kron_identity_solves_the_same_system_for_less():
    out = K.kron_identity_check(m=7, n=4, seed=3)
    assert out["relative_difference"] < 1e-12
    assert out["flops_factored"] < out["flops_explicit"] / 50


def test_kfac_is_exact_for_one_example(digits):
    """With one example the mean of products is the product of means: G (x) A = F."""
    model = models.mlp([64, 5, 3], "tanh", seed=0)
    X, y = digits.X_train[:1], digits.y_train[:1] % 3
    out = K.kfac_factor_error(model, X, y)
    assert out["kron_error"] < 1e-12
    assert out["cosine_kron"] == pytest.approx(1.0, abs=1e-9)
    assert out["numbers_full"] == (3 * 6) ** 2 and out["numbers_kron"] == 9 + 36


def test_kfac_keeps_more_of_the_true_fisher_than_the_diagonal(digits):
    """The chapter's claim at initialisation: with the model's own labels K-FAC's step is
    close to the exact natural-gradient step, much closer than a diagonal preconditioner's;
    with the data's labels (the empirical Fisher) the product of means is much worse."""
    model = models.mlp([64, 32, 10], "tanh", seed=0)
    true = K.kfac_factor_error(model, digits.X_train, digits.y_train, fisher="true")
    emp = K.kfac_factor_error(model, digits.X_train, digits.y_train, fisher="empirical")
    assert true["kron_error"] < 0.3 < emp["kron_error"]
    assert true["cosine_kron"] > 0.95 > true["cosine_diagonal"]
    assert true["kron_error"] < true["diagonal_error"]


def test_kfac_factor_error_rejects_bad_input(digits):
    model = models.mlp([64, 5, 10], "tanh", seed=0)
    X, y = digits.X_train[:20], digits.y_train[:20]
    with pytest.raises(ValueError, match="fisher"):
        K.kfac_factor_error(model, X, y, fisher="sampled")
    with pytest.raises(ValueError, match="layer"):
        K.kfac_factor_error(model, X, y, layer=2)
    with pytest.raises(ValueError, match="damping"):
        K.kfac_factor_error(model, X, y, damping=-1)


# ------------------------------------------------------------------ the race's fast path
def _reference(method, setting, seed, steps, batch_size, data, sizes=(64, 8, 10)):
    from curvlib.train import train
    model = models.mlp(list(sizes), "tanh", seed=seed)
    res = train(model, K.build_optimizer(method, model, setting), data.train, steps=steps,
                batch_size=batch_size, seed=seed, diverge_factor=1e4)
    with torch.no_grad():
        final = float(torch.nn.functional.cross_entropy(model(data.X_train), data.y_train))
    return res, final


@pytest.mark.parametrize("method,settings", [
    ("SGD+momentum", [{"lr": 0.1}, {"lr": 1.0, "momentum": 0.5}]),
    ("Adam", [{"lr": 0.01}, {"lr": 0.003, "beta2": 0.99}]),
    ("K-FAC", [{"lr": 0.1, "damping": 1e-3, "kl_clip": 1e-3, "inverse_interval": 3},
               {"lr": 0.03, "damping": 1e-2, "kl_clip": None, "inverse_interval": 3}]),
    ("K-FAC", [{"lr": 0.1, "damping": 1e-2, "fisher": "empirical", "factor_interval": 2,
                "inverse_interval": 2}]),
    ("Shampoo", [{"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "grafting": "adam",
                  "epsilon": 1e-6, "update_interval": 3, "momentum": 0.5},
                 {"lr": 0.03, "beta1": 0.0, "beta2": 1.0, "grafting": "adam", "epsilon": 1e-6,
                  "update_interval": 3}]),
    ("Shampoo", [{"lr": 0.03, "grafting": "adagrad", "epsilon": 1e-6, "update_interval": 2}]),
    ("Shampoo", [{"lr": 0.1, "grafting": "sgd", "beta2": 0.9, "beta1": 0.5, "epsilon": 1e-6}]),
])
def test_race_runs_equal_curvlibs_optimizers(digits, method, settings):
    """The batched fast path trains every (setting, seed) as curvlib's class does through
    curvlib.train.train: the same per-step minibatch losses and final training loss, up to
    float32 rounding, for every method and the options the chapter tunes."""
    seeds, steps = (0, 3), 7
    out = R.race_runs(method, settings, seeds, digits, steps=steps, batch_size=64,
                      sizes=(64, 8, 10))
    assert out["loss"].shape == (len(settings) * len(seeds), steps)
    for k, setting in enumerate(settings):
        for j, seed in enumerate(seeds):
            res, final = _reference(method, setting, seed, steps, 64, digits)
            r = k * len(seeds) + j
            np.testing.assert_allclose(out["loss"][r], res.loss, rtol=2e-4)
            assert out["train_loss"][r] == pytest.approx(final, rel=2e-4)
            assert out["diverged_at"][r] == -1


def test_race_runs_stops_a_diverging_run_like_train(digits):
    out = R.race_runs("SGD+momentum", [{"lr": 0.1}, {"lr": 1e6}], (0,), digits, steps=6,
                      batch_size=64, sizes=(64, 8, 10))
    res, _ = _reference("SGD+momentum", {"lr": 1e6}, 0, 6, 64, digits)
    assert res.diverged_at is not None and out["diverged_at"][1] == res.diverged_at
    assert np.isnan(out["loss"][1, res.diverged_at:]).all()
    assert out["train_loss"][1] == math.inf and np.isfinite(out["train_loss"][0])


def test_race_runs_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="method"):
        R.race_runs("Newton", [{"lr": 1.0}], (0,), digits, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="lr"):
        R.race_runs("Adam", [{"beta1": 0.9}], (0,), digits, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="unknown"):
        R.race_runs("Adam", [{"lr": 0.1, "damping": 1.0}], (0,), digits, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="same in every setting"):
        R.race_runs("Shampoo", [{"lr": 0.1, "grafting": "adam"}, {"lr": 0.1}], (0,), digits,
                    steps=1, batch_size=8)


# ------------------------------------------------------------------ the tuning protocol
def test_choose_breaks_near_ties_towards_the_smaller_rate_then_home():
    axes = {"lr": R.Axis((0.1, 0.3, 1.0), 0, 2, prefer="low"),
            "beta": R.Axis((0.5, 0.9, 0.99), 0, 2, home=0.9)}
    names = ("lr", "beta")
    scores = {(0.1, 0.5): 1.04, (0.3, 0.9): 1.00, (0.3, 0.99): 1.01, (1.0, 0.9): 2.0}
    chosen, argmin, tied = R.choose(scores, axes, names, margin=0.05)
    assert argmin == (0.3, 0.9) and chosen == (0.1, 0.5) and len(tied) == 3
    chosen, _, _ = R.choose(scores, axes, names, margin=0.02)
    assert chosen == (0.3, 0.9)                  # 0.3 ties with itself: home beta 0.9 wins
    with pytest.raises(RuntimeError, match="diverged"):
        R.choose({(0.1, 0.5): math.inf}, axes, names, margin=0.05)


def test_tune_widens_the_grid_until_the_choice_is_inside(digits):
    """Started with a window of two too-small rates, the search climbs the ladder until the
    chosen rate has a tried neighbour on each side; a categorical axis is searched per value."""
    ladder = R.half_decades(-8, 4)
    axes = {"lr": R.Axis(ladder, 0, 1, prefer="low"),
            "grafting": R.Axis(("adam", "adagrad"), 0, 1, home="adam", ordered=False)}
    tu = R.tune("Shampoo", axes, digits, fixed={"update_interval": 3, "epsilon": 1e-6},
                tune_seeds=(100, 101), steps=8, batch_size=64, sizes=(64, 8, 10))
    assert tu.rounds > 1 and not any(tu.at_edge.values())
    for combo, window in tu.windows.items():
        assert len(window["lr"]) > 2
    best = tuple(tu.best[n] for n in tu.names)
    lr = tu.best["lr"]
    assert ladder[ladder.index(lr) - 1] in tu.windows[(tu.best["grafting"],)]["lr"]
    assert ladder[ladder.index(lr) + 1] in tu.windows[(tu.best["grafting"],)]["lr"]
    # the score is the mean final training loss over both tuning seeds, and nothing within
    # the margin has a smaller rate
    assert tu.scores[best] == pytest.approx(np.mean(tu.per_seed[best]))
    assert all(t["lr"] >= lr for t in tu.tied)
    assert min(tu.scores.values()) * (1 + tu.margin) >= tu.scores[best]
    assert tu.runs == tu.screened + tu.finalists
    with pytest.raises(ValueError, match="lr"):
        R.tune("Adam", {"beta2": R.Axis((0.9, 0.99), 0, 1, home=0.99)}, digits)
    with pytest.raises(ValueError, match="both fixed and tuned"):
        R.tune("Adam", {"lr": axes["lr"]}, digits, fixed={"lr": 0.1})


# ------------------------------------------------------------------ the race
def test_paired_interval_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.5, 3.1, 4.9])
    out = K.paired_interval(x, y)
    d = x - y
    half = 3.182446305284263 * d.std(ddof=1) / 2          # t_{0.975, 3}
    assert out["mean"] == pytest.approx(d.mean())
    assert out["low"] == pytest.approx(d.mean() - half) and out["high"] == pytest.approx(d.mean() + half)
    assert out["verdict"] == ("lower" if out["high"] < 0 else "inconclusive")
    ratio = K.paired_interval(2 * y, y, log=True)
    assert ratio["mean"] == pytest.approx(2.0) and ratio["verdict"] == "higher"  # no spread at all
    assert K.paired_interval(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.1, 4.0]))["verdict"] == "lower"
    assert K.paired_interval(np.array([1.0, np.inf]), np.array([1.0, 2.0]))["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="same length"):
        K.paired_interval(x, y[:3])


@pytest.fixture(scope="module")
def small_race(digits):
    lr = R.half_decades(-8, 4)
    spaces = {
        "SGD+momentum": ("SGD+momentum", {"lr": R.Axis(lr, 6, 8, prefer="low")}, {}),
        "K-FAC": ("K-FAC", {"lr": R.Axis(lr, 4, 6, prefer="low"),
                            "damping": R.Axis((1e-3, 1e-2, 1e-1), 0, 2, home=1e-2)},
                  {"kl_clip": None, "inverse_interval": 3}),
    }
    return K.run_race(digits, spaces=spaces, seeds=(0, 1, 2, 3, 4), tune_seeds=(100,),
                      steps=6, batch_size=64, sizes=(64, 8, 10))


def test_run_race_reports_curvlibs_optimizers_at_the_tuned_setting(digits, small_race):
    race = small_race
    assert race.names == ["SGD+momentum", "K-FAC"]
    for name in race.names:
        r = race.runs[name]
        assert r.loss.shape == (5, 6) and race.time[name].shape == (5, 6)
        assert np.all(np.diff(race.time[name], axis=1) > 0)            # wall time grows
        assert race.settings[name] == race.tunings[name].best
        assert not any(race.tunings[name].at_edge.values())
    opt = race.optimizers["K-FAC"]
    assert opt.defaults["damping"] == race.settings["K-FAC"]["damping"]
    assert opt.defaults["fisher"] == "true" and opt.defaults["kl_clip"] is None
    # the reported run of seed 0 is curvlib.train.train at the tuned setting, nothing more
    res, final = _reference("K-FAC", race.settings["K-FAC"], 0, 6, 64, digits)
    np.testing.assert_allclose(race.runs["K-FAC"].loss[0], res.loss, rtol=1e-6)
    assert race.runs["K-FAC"].train_loss[0] == pytest.approx(final, rel=1e-6)
    # the same seed gives the same first minibatch loss for every method
    np.testing.assert_allclose(race.runs["SGD+momentum"].loss[:, 0], race.runs["K-FAC"].loss[:, 0],
                               rtol=1e-6)
    pair = race.paired("K-FAC", "SGD+momentum")
    ratio = np.exp(np.mean(np.log(race.runs["K-FAC"].train_loss / race.runs["SGD+momentum"].train_loss)))
    assert pair["mean"] == pytest.approx(ratio)
    ranking = race.ranking()
    assert [n for n, _ in ranking] == sorted(race.names, key=lambda n: np.mean(np.log(race.runs[n].train_loss)))
    assert ranking[-1][1] is None


def test_run_race_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="at least 5"):
        K.run_race(digits, seeds=(0, 1, 2), steps=2)
    with pytest.raises(ValueError, match="disjoint"):
        K.run_race(digits, seeds=(0, 1, 2, 3, 100), steps=2)
    with pytest.raises(TypeError, match="method, axes, fixed"):
        K.run_race(digits, spaces={"x": 3}, steps=2)


def test_race_spaces_start_from_the_published_configurations():
    spaces = K.race_spaces()
    assert list(spaces) == ["SGD+momentum", "Adam", "K-FAC", "Shampoo"]
    _, axes, fixed = spaces["Shampoo"]
    pub = K.PUBLISHED["Shampoo"]
    assert axes["beta1"].home == pytest.approx(pub["beta1"], abs=1e-12)
    assert axes["beta2"].home == pytest.approx(pub["beta2"], abs=1e-12)
    assert axes["grafting"].home == pub["grafting"] == "adam"
    assert axes["epsilon"].home == pub["epsilon"] and fixed["graft_eps"] == pub["graft_eps"]
    assert pub["beta1"] in axes["beta1"].ladder[axes["beta1"].lo:axes["beta1"].hi + 1]
    assert 0.0 in axes["beta1"].ladder and 1.0 in axes["beta2"].ladder
    _, axes, fixed = spaces["K-FAC"]
    assert axes["damping"].home == K.PUBLISHED["K-FAC"]["damping"]
    assert fixed["fisher"] == "true" and fixed["inverse_interval"] == K.REFRESH
    for name, (method, axes, fixed) in spaces.items():
        lr = axes["lr"]
        assert lr.prefer == "low" and lr.ladder == K.LR_LADDER


def test_time_grid_losses_carries_the_last_finished_step_forward():
    loss = np.array([[4.0, 3.0, 2.0, 1.0], [8.0, 6.0, 4.0, 2.0]])
    times = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 5.0, 7.0]])
    grid, res = K.time_grid_losses(loss, times, points=4)
    np.testing.assert_allclose(grid, [1, 2, 3, 4])            # up to the shorter run's end
    np.testing.assert_allclose(res[0], [4, 3, 2, 1])
    np.testing.assert_allclose(res[1], [8, 8, 6, 6])
    with pytest.raises(ValueError, match="shape"):
        K.time_grid_losses(loss, times[:, :3])


def test_plot_comparison_draws_every_panel(small_race):
    axes = K.plot_comparison(small_race)
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.get_lines()) == len(small_race.names)
    assert axes[1].get_xlabel() == "wall time (ms)"
    flops = {m: K.step_flops([(64, 8), (8, 10)], m, 64) for m in small_race.names}
    axes = K.plot_comparison(small_race, flops)
    assert len(axes) == 3 and len(axes[2].get_lines()) == 2
    x_sgd = axes[2].get_lines()[0].get_xdata()
    assert x_sgd[-1] == pytest.approx(6 * flops["SGD+momentum"] / 1e6)
    with pytest.raises(ValueError, match="lacks"):
        K.plot_comparison(small_race, {"Adam": 1.0})


# ------------------------------------------------------------------ memory and cost
def test_layer_state_bytes_are_the_library_counts():
    rows = K.layer_state_bytes([(64, 32), (32, 10)])
    first = rows[0]
    n = 64 * 32 + 32
    assert first["params"] == n
    assert first["SGD+momentum"] == 4 * n
    assert first["Adam"] == 2 * 4 * n + 2 * 4      # two buffers + a step counter per tensor
    assert first["K-FAC"] == kfac_bytes([(64, 32)])
    assert first["Shampoo"] == shampoo_bytes([(64, 32)])
    # every dimension preconditioned by default; the class's cap only when asked for
    big = K.layer_state_bytes([(4096, 4096)])[0]
    assert big["Shampoo"] == 4 * (2 * 2 * 4096 ** 2 + 2 * 4096 ** 2 + 4097 * 4096)
    capped = K.layer_state_bytes([(4096, 4096)], max_preconditioner_dim=1024)[0]
    assert capped["Shampoo"] == shampoo_bytes([(4096, 4096)])
    assert first["Hessian block"] == 4 * n * n
    # K-FAC by hand: factors and eigenvectors 2*(65^2+32^2), eigenvalues 65+32, momentum n
    assert first["K-FAC"] == 4 * (2 * (65 ** 2 + 32 ** 2) + 65 + 32 + n)


def test_layer_state_bytes_rejects_bad_layers():
    with pytest.raises(TypeError, match="pairs"):
        K.layer_state_bytes([64, 32])
    with pytest.raises(ValueError, match=">= 1"):
        K.layer_state_bytes([(0, 3)])
    with pytest.raises(ValueError, match="dtype"):
        K.layer_state_bytes([(4, 3)], dtype="int8")


def test_resnet50_state_bytes():
    out = K.resnet50_state_bytes()
    n = out["params"]
    assert n == memory.resnet_params(50) == 25_557_032
    assert out["Hessian"] == 4 * n * n
    assert out["SGD+momentum"] == 4 * n
    assert 8 * n < out["Adam"] < 8 * n + 4 * 1000
    assert out["Adam"] < out["K-FAC"] < out["Hessian"] / 1e5
    assert out["Adam"] < out["Shampoo"]


def test_step_flops_by_hand_and_amortisation():
    p = 65 * 32
    assert K.step_flops([(64, 32)], "SGD+momentum", 128) == 6 * 128 * p + 3 * p
    assert K.step_flops([(64, 32)], "Adam", 128) == 6 * 128 * p + 12 * p
    kfac = K.step_flops([(64, 32)], "K-FAC", 128)
    expected = (6 * 128 * p + 2 * 128 * (65 ** 2 + 32 ** 2) + 9 * (65 ** 3 + 32 ** 3) / 10
                + 4 * p * (65 + 32) + 3 * p)
    assert kfac == pytest.approx(expected)
    # the true Fisher's second backward pass: 2Bp for every layer but the first
    two = [(64, 32), (32, 10)]
    extra = K.step_flops(two, "K-FAC", 128) - K.step_flops(two, "K-FAC", 128, fisher="empirical")
    assert extra == pytest.approx(2 * 128 * 33 * 10)
    # K-FAC's statistics grow with the batch: its ratio to SGD tends to 1 + (da^2+dg^2)/(3 da dg)
    big = [(4095, 4096)]
    limit = K.step_flops(big, "K-FAC", 10 ** 9) / K.step_flops(big, "SGD+momentum", 10 ** 9)
    assert limit == pytest.approx(1 + 2 / 3, rel=1e-3)
    layers = [(1024, 1024)]
    ratio = lambda m, B: K.step_flops(layers, m, B) / K.step_flops(layers, "SGD+momentum", B)  # noqa: E731
    for method in ("K-FAC", "Shampoo"):
        assert ratio(method, 32) > ratio(method, 4096) > 1       # big batches amortise
    assert ratio("Adam", 32) < 1.1
    with pytest.raises(ValueError, match="method"):
        K.step_flops(layers, "Newton", 32)
    with pytest.raises(ValueError, match="batch_size"):
        K.step_flops(layers, "Adam", 0)


# ------------------------------------------------------------------ the success rate
def test_adam_success_curve_matches_single_runs(digits):
    from curvlib.train import evaluate, train
    out = K.adam_success_curve(digits, budgets=(3, 15), targets=(0.5,), seeds=(0, 1, 2),
                               sizes=(64, 8, 10))
    assert out["accuracy"].shape == (3, 2)
    assert set(out["rates"]) == {0.5}
    for s in (0, 2):
        model = models.mlp([64, 8, 10], "tanh", seed=s)
        train(model, optim.Adam(model.parameters(), lr=1e-3), digits.train, steps=15,
              batch_size=64, seed=s)
        assert out["accuracy"][s, 1] == pytest.approx(
            evaluate(model, digits.X_test, digits.y_test), abs=1.5 / len(digits.y_test))
    np.testing.assert_allclose(out["rates"][0.5], (out["accuracy"] >= 0.5).mean(0))


def test_success_rate_is_whatever_the_budget_makes_it(digits):
    """The same optimizer goes from 0% to 100% "success" as the budget grows."""
    out = K.adam_success_curve(digits, budgets=(5, 200), targets=(0.8,), seeds=(0, 1, 2, 3),
                               sizes=(64, 16, 10))
    assert out["rates"][0.8][0] == 0.0 and out["rates"][0.8][-1] == 1.0
    with pytest.raises(ValueError, match="budgets"):
        K.adam_success_curve(digits, budgets=(0,))


# ------------------------------------------------------------------ AlgoPerf, chart, widget
def test_algoperf_table_is_ranked():
    for ruleset, rows in K.ALGOPERF.items():
        scores = [s for _, s in rows]
        assert scores == sorted(scores, reverse=True), ruleset
        assert all(0 <= s <= 1 for s in scores)
    assert K.ALGOPERF["external tuning"][0][0] == "Distributed Shampoo"
    assert K.ALGOPERF["self-tuning"][0][0] == "Schedule Free AdamW"
    ax = K.plot_algoperf()
    assert len(ax.patches) == len(K.ALGOPERF["external tuning"])


def test_selection_chart_has_the_four_rules_and_notes():
    ax = K.plot_selection_chart(notes={"Adam": "70%: unsupported"})
    texts = [t.get_text() for t in ax.texts]
    for name in ("Adam", "SGD+momentum", "L-BFGS", "K-FAC / Shampoo", "70%: unsupported"):
        assert name in texts
    with pytest.raises(ValueError, match="unknown"):
        K.plot_selection_chart(notes={"Newton": "x"})


def test_cost_explorer_responds_at_its_extremes():
    ex = K.cost_explorer()
    controls = ex.controls
    small = ex.set(d_in=controls["d_in"][0], d_out=controls["d_out"][0])
    large = ex.set(d_in=controls["d_in"][-1], d_out=controls["d_out"][-1])
    assert small.png != large.png and small.text != large.text
    assert not small.diverged and "K-FAC" in large.text
    # the summary's numbers are those of layer_state_bytes and step_flops
    n_in, n_out = controls["d_in"][-1], controls["d_out"][-1]
    row = K.layer_state_bytes([(n_in, n_out)])[0]
    assert f"{row['K-FAC'] / row['Adam']:.2g}x Adam's" in large.text
    r = K.step_flops([(n_in, n_out)], "K-FAC", 1024) / K.step_flops([(n_in, n_out)], "SGD+momentum", 1024)
    assert f"{r:.2g}x (batch 1024)" in large.text
    assert ex.set(d_in=controls["d_in"][0]).png != large.png       # one control alone
    assert math.prod(len(v) for v in controls.values()) <= 48
    with pytest.raises(ValueError, match="batch_sizes"):
        K.cost_explorer(batch_sizes=(0,))
