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
    # with a one-second budget, time is the wall
    assert hc.walls(budget_seconds=1.0)["first_wall"] == "time"
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
    with pytest.raises(ValueError, match="positive"):
        hc.loglog_slope(n, -n)
    with pytest.raises(ValueError, match="length"):
        hc.loglog_slope(n, n[:3])


def test_measure_scaling_reports_exact_bytes():
    r = hc.measure_scaling(hidden_sizes=(1, 2), n_samples=16, repeats=1)
    assert r["n"].tolist() == [85, 160]
    assert r["bytes"].tolist() == [8 * 85 ** 2, 8 * 160 ** 2]
    assert np.all(r["form"] > 0) and np.all(r["eigh"] > 0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        hc.measure_scaling(hidden_sizes=(3,))


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
    assert s["n_params"] == 75 * 3 + 10 == len(s["eigenvalues"]) == len(s["eigenvalues_init"])
    assert s["loss"] < s["loss_init"]
    assert np.all(np.diff(s["eigenvalues"]) >= 0)
    # at random initialisation the loss surface is far from convex
    assert hc.spectrum_summary(s["eigenvalues_init"])["negative"] > 0


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
