"""Chapter 2's machinery: the memory and time arithmetic, the spectrum summary, the widget."""
import math

import numpy as np
import pytest

from curvlib import memory
from curvbook import hessian_cost as hc


def test_memory_rows_are_exact_integer_arithmetic():
    rows = {r["name"]: r for r in hc.memory_rows()}
    n = memory.MODELS["ResNet-50"].n_params
    assert n == 25_557_032
    r = rows["ResNet-50"]
    assert r["bytes"]["float32"]["full"] == n * n * 4
    assert r["bytes"]["float16"]["symmetric"] == n * (n + 1) // 2 * 2
    assert r["bytes"]["float64"]["full"] == 4 * r["bytes"]["float16"]["full"]
    assert set(rows) == set(memory.MODELS)
    table = hc.memory_markdown(list(rows.values()))
    assert "2.61 PB" in table and "El Capitan" in table


def test_bad_model_and_dtype_are_rejected():
    with pytest.raises(ValueError, match="models"):
        hc.memory_rows(["ResNet-5000"])
    with pytest.raises(ValueError, match="dtype"):
        hc.memory_rows(dtypes=["float8"])
    with pytest.raises(ValueError, match="claimed_bytes"):
        hc.check_500tb(claimed_bytes=-1)


def test_500tb_claim_is_off_by_about_five():
    c = hc.check_500tb()
    n = c["n_params"]
    assert c["ratio_true_to_claim"] == pytest.approx(4 * n * n / 500e12)
    assert 5 < c["ratio_true_to_claim"] < 5.5
    # 500 TB is less than one byte per entry; it is closest to fp16 storage of one triangle
    assert c["implied_bytes_per_entry"] < 1
    assert c["closest"] == ("float16", "symmetric")
    assert c["n_for_claim_float32"] ** 2 * 4 == pytest.approx(500e12)


def test_walls_and_gpt3():
    w = hc.walls(budget_seconds=86400)
    hw = memory.HARDWARE[hc.REFERENCE_MACHINE]
    assert w["n_memory"] == pytest.approx(math.sqrt(hw.memory_bytes / 8))
    assert memory.inversion_flops(round(w["n_time"])) == pytest.approx(hw.flops_per_second * 86400, rel=1e-6)
    assert w["first_wall"] == "memory"
    # with a one-second budget, time is the wall; the walls meet at the time it takes to
    # factorise the largest Hessian that fits, and memory binds for every longer budget
    assert hc.walls(budget_seconds=1.0)["first_wall"] == "time"
    cross = w["seconds_at_n_memory"]
    assert hc.walls(budget_seconds=0.9 * cross)["first_wall"] == "time"
    assert hc.walls(budget_seconds=1.1 * cross)["first_wall"] == "memory"
    assert hc.walls(budget_seconds=1e9)["n_memory"] == w["n_memory"]  # no budget moves it
    with pytest.raises(ValueError, match="budget_seconds"):
        hc.walls(budget_seconds=0)
    g = hc.check_gpt3()
    assert g["machines_of_memory"] > 1e6 and g["years"] > 1e7
    assert g["hvps_to_form"] == memory.MODELS["GPT-3 175B"].n_params


def test_inversion_rows_grow_as_n_cubed():
    rows = {r["name"]: r for r in hc.inversion_rows(["ResNet-50", "GPT-3 175B"])}
    a, b = rows["ResNet-50"], rows["GPT-3 175B"]
    assert b["seconds"] / a["seconds"] == pytest.approx((b["n_params"] / a["n_params"]) ** 3)
    assert "years" in hc.inversion_markdown(list(rows.values()))


def test_loglog_slope_recovers_power_laws():
    n = np.array([10.0, 20, 40, 80])
    assert hc.loglog_slope(n, 3 * n ** 2.0) == pytest.approx(2.0)
    assert hc.loglog_slope(n, n ** 3, last=2) == pytest.approx(3.0)
    bent = np.array([1.0, 1.0, 40 ** 3, 80 ** 3])  # overhead-dominated at small n
    assert hc.loglog_slope(n, bent, min_n=40) == pytest.approx(3.0)
    assert hc.loglog_slope(n, np.array([np.nan, 8e3, 64e3, 512e3])) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="two points"):
        hc.loglog_slope(n, n ** 2, min_n=80)
    with pytest.raises(ValueError, match="positive"):
        hc.loglog_slope(n, -n)
    with pytest.raises(ValueError, match="length"):
        hc.loglog_slope(n, n[:3])


def test_measure_scaling_reports_exact_bytes_and_every_operation():
    r = hc.measure_scaling(hidden_sizes=(1, 2), n_samples=16, repeats=1, eigh_max_n=100)
    assert r["n"].tolist() == [85, 160]
    assert r["bytes"].tolist() == [8 * 85 ** 2, 8 * 160 ** 2]
    for op in ("form", "cholesky", "inv"):
        assert np.all(r[op] > 0)
    assert r["eigh"][0] > 0 and np.isnan(r["eigh"][1])  # above eigh_max_n: not measured
    with pytest.raises(ValueError, match="hidden_sizes"):
        hc.measure_scaling(hidden_sizes=(3,))


def test_plot_scaling_has_plain_ticks_and_slopes_in_the_legend():
    n = np.array([160, 235, 460, 910, 2410])
    fake = {"n": n, "bytes": 8 * n ** 2, "form": 1e-4 * n ** 1.2, "cholesky": 1e-9 * n ** 3.0,
            "inv": 3e-9 * n ** 3.0, "eigh": np.array([1e-3, 2e-3, 1e-2, 8e-2, np.nan])}
    fig = hc.plot_scaling(fake, min_n=200)
    fig.canvas.draw()
    top = fig.axes[0]
    labels = [t.get_text() for t in top.get_xticklabels() if t.get_text()]
    assert labels == ["200", "500", "1,000", "2,000"]
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert any("Cholesky" in t and "slope 3.0" in t for t in legend)


def test_spectrum_summary_counts():
    lam = np.array([-0.5, -1e-9, 0.0, 1e-5, 0.2, 0.9, 1.0])
    s = hc.spectrum_summary(lam)
    assert s["negative"] == 1  # -1e-9 is within rounding of zero (neg_tol=1e-6)
    assert s["near_zero"] == 3
    assert s["outliers"] == 3
    assert s["neg_ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="largest eigenvalue"):
        hc.spectrum_summary([-1.0, -2.0])
    with pytest.raises(ValueError):
        hc.spectrum_summary([])


def test_kappa_by_cutoff_is_bounded_by_the_cutoff():
    lam = np.concatenate([np.logspace(-12, 0, 50), [-1e-3]])
    for c, kappa, kept in hc.kappa_by_cutoff(lam, (1e-2, 1e-6, 1e-10)):
        assert 1 <= kappa <= 1 / c
        assert kept == np.sum(lam > c)


def test_trained_spectrum_small_network():
    s = hc.trained_spectrum(hidden=3, steps=40, n_samples=64)
    assert sum(p.numel() for p in s["model"].parameters()) == s["n_params"]
    assert s["n_params"] == 75 * 3 + 10 == len(s["eigenvalues"]) == len(s["eigenvalues_init"])
    assert s["loss"] < s["loss_init"]
    assert np.all(np.diff(s["eigenvalues"]) >= 0)
    # at random initialisation the loss surface is far from convex
    assert hc.spectrum_summary(s["eigenvalues_init"])["negative"] > 0


def test_plot_spectrum_colours_have_a_legend():
    import matplotlib.pyplot as plt
    lam = np.concatenate([[-0.2, -1e-3], np.zeros(5), np.logspace(-2, 0, 20)])
    fig, axes = plt.subplots(1, 2)
    hc.plot_spectrum(lam, axes)
    legend = hc.spectrum_legend(fig, axes[0])
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == 3 and texts[0].startswith("negative") and texts[1].startswith("near zero")
    plt.close(fig)


def test_tuning_extends_the_grid_until_the_winner_is_inside():
    def run(v, cap):  # fewest evaluations at v = 40; a run over the cap does not arrive
        count = 100 + abs(v - 40)
        return count if count <= cap else None
    best, counts, grid, at_edge = hc._tune(run, [2, 5, 10], widen=lambda v, d: v * 2 if d > 0 else max(1, v // 2),
                                          cap=1000)
    assert best == 40 and not at_edge and grid[-1] > 40
    # the natural lower end (1) is not an edge
    best, _, grid, at_edge = hc._tune(lambda v, cap: 100 + v, [1, 2, 4], widen=lambda v, d: v * 2,
                                      cap=1000)
    assert best == 1 and not at_edge

    # several tuning seeds: settings within one standard error of the best are a tie, and the
    # tie goes to the smaller; a clear winner still wins
    noisy = {2: [300, 330, 360], 5: [200, 260, 150], 10: [190, 240, 160], 20: [185, 250, 150],
             40: [300, 320, 340]}
    best, counts, grid, at_edge = hc._tune(lambda v, cap: noisy[v], [2, 5, 10, 20, 40],
                                          widen=lambda v, d: v * 2, cap=1000, minimum=2)
    assert best == 5 and not at_edge and counts[0] == pytest.approx((300 * 330 * 360) ** (1 / 3))
    clear = {2: [300, 301, 302], 5: [200, 201, 202], 10: [100, 101, 102], 20: [150, 151, 152]}
    assert hc._tune(lambda v, cap: clear[v], [2, 5, 10, 20], widen=lambda v, d: v * 2, cap=1000,
                    minimum=2)[0] == 10
    with pytest.raises(ValueError, match="tune_seeds"):
        hc.hf_vs_lbfgs(seeds=(0, 1), tune_seeds=(1, 2))


def test_hf_and_lbfgs_histories_count_evaluations_and_reach_the_target():
    f, w0 = hc.curvature_problem(seed=0, hidden=3, n_samples=64)
    calls = {"n": 0}

    def counted(w):
        calls["n"] += 1
        return f(w)

    h = hc.lbfgs_history(counted, w0, history_size=10, tol=1e-3, max_evals=2000)
    evals = [n for n, _ in h]
    assert evals == sorted(set(evals)) and h[-1][1] <= 1e-3
    assert evals[-1] <= calls["n"]  # never more than the loss was really evaluated
    hf = hc.hessian_free(f, w0, cg_products=5, tol=1e-3, max_evals=4000)
    assert hf[-1][1] <= 1e-3 and hc.evaluations_to(hf, 1e-3) == hf[-1][0]
    assert hc.evaluations_to(hf, 1e-30) is None


def test_hf_vs_lbfgs_small():
    r = hc.hf_vs_lbfgs(seeds=(0, 1), tune_seeds=(5, 6), tol=1e-3, hidden=3, n_samples=64,
                       lbfgs_grid=(2, 5, 10), hf_grid=(2, 5, 10), max_evals=4000)
    assert r["n_params"] == 235
    for name in ("L-BFGS", "Hessian-free"):
        best, counts, grid, at_edge = r["tuned"][name]
        assert best in grid and not at_edge
        assert len(r["evaluations"][name]) == 2 and None not in r["evaluations"][name]


def test_logistic_condition_number_is_defined():
    c = hc.logistic_condition_number(1e-3)
    assert 1 < c["kappa"] < 1e4 and c["lambda_min"] >= 1e-3 * (1 - 1e-9)
    with pytest.raises(ValueError, match="l2"):
        hc.logistic_condition_number(0.0)


def test_memory_explorer_at_extreme_controls():
    e = hc.memory_explorer()
    names = e.controls["model"]
    small = e.set(model=names[0], precision="float16")
    large = e.set(model="GPT-3 175B", precision="float64")
    assert small.text != large.text and small.png != large.png
    assert "ZB" in large.text and not small.diverged and not large.diverged
    assert hc.memory_explorer in hc.EXPLORERS
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(large.png)).size == (720, 380)
