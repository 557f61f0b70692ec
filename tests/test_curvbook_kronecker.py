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


# ------------------------------------------------------------------ the comparison
@pytest.fixture(scope="module")
def small_comparison(digits):
    return K.compare_methods(digits, lr_grid=(0.01, 0.1, 1.0), steps=6, batch_size=64,
                             sizes=(64, 8, 10))


def test_compare_methods_reports_every_method_over_five_seeds(small_comparison):
    res = small_comparison
    assert res.names == list(K.METHODS)
    for name in res.names:
        r = res.runs[name]
        assert r.loss.shape == (5, 6) and r.time.shape == (5, 6)
        assert np.all(np.diff(r.time, axis=1) > 0)                  # wall time grows
        assert res.best_lr[name] in res.lr_grid
        assert res.best_lr[name] == min(res.scores[name], key=lambda lr: (res.scores[name][lr], lr))
        assert res.at_edge[name] == (res.best_lr[name] in (0.01, 1.0))
        assert np.isfinite(r.train_loss).all() and (r.val_acc > 0.1).all()
    # the same seed gives the same initial loss for every method (same model, same batch)
    first = [res.runs[n].loss[:, 0] for n in res.names]
    for other in first[1:]:
        np.testing.assert_allclose(other, first[0], rtol=1e-6)


def test_reported_runs_match_a_plain_training_run(digits, small_comparison):
    """The reporting run of seed 0 is curvlib.train.train at the tuned lr, nothing more."""
    from curvlib.train import train
    lr = small_comparison.best_lr["Adam"]
    model = models.mlp([64, 8, 10], "tanh", seed=0)
    res = train(model, optim.Adam(model.parameters(), lr=lr), digits.train, steps=6,
                batch_size=64, seed=0)
    np.testing.assert_allclose(small_comparison.runs["Adam"].loss[0], res.loss, rtol=1e-6)


def test_compare_methods_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="at least 5"):
        K.compare_methods(digits, seeds=(0, 1, 2), steps=2)
    with pytest.raises(TypeError, match="callable"):
        K.compare_methods(digits, methods={"x": 3}, steps=2)
    with pytest.raises(ValueError, match="lr_grid"):
        K.compare_methods(digits, lr_grid=(0.1, -1.0), steps=2)


def test_time_grid_losses_carries_the_last_finished_step_forward():
    loss = np.array([[4.0, 3.0, 2.0, 1.0], [8.0, 6.0, 4.0, 2.0]])
    times = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 5.0, 7.0]])
    grid, res = K.time_grid_losses(loss, times, points=4)
    np.testing.assert_allclose(grid, [1, 2, 3, 4])            # up to the shorter run's end
    np.testing.assert_allclose(res[0], [4, 3, 2, 1])
    np.testing.assert_allclose(res[1], [8, 8, 6, 6])
    with pytest.raises(ValueError, match="shape"):
        K.time_grid_losses(loss, times[:, :3])


def test_plot_comparison_draws_every_panel(small_comparison):
    axes = K.plot_comparison(small_comparison)
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.get_lines()) == len(small_comparison.names)
    assert axes[1].get_xlabel() == "wall time (ms)"
    flops = {m: K.step_flops([(64, 8), (8, 10)], m, 64) for m in small_comparison.names}
    axes = K.plot_comparison(small_comparison, flops)
    assert len(axes) == 3 and len(axes[2].get_lines()) == 4
    x_sgd = axes[2].get_lines()[0].get_xdata()
    assert x_sgd[-1] == pytest.approx(6 * flops["SGD+momentum"] / 1e6)
    with pytest.raises(ValueError, match="lacks"):
        K.plot_comparison(small_comparison, {"Adam": 1.0})


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
