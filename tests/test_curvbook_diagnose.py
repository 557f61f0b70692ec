"""Chapter 9 machinery: the recipe, run diagnosis, monitoring, the default checks and the
run-doctor widget."""
import math

import numpy as np
import pytest
import torch

from curvbook import diagnose as D
from curvlib import optim


# ----------------------------------------------------------------------------- the recipe
def test_default_recipe_is_adamw_with_lr_1e3_warmup_and_cosine():
    r = D.recommend(total_steps=1000)
    assert r.optimizer == "AdamW" and r.lr == 1e-3 and r.weight_decay == 0.01
    assert r.warmup_steps == 50 and r.schedule == "cosine"
    assert r.lr_at(0) == 0.0 and r.lr_at(50) == pytest.approx(1e-3)
    assert r.lr_at(1000) == pytest.approx(0.0, abs=1e-12)
    assert len(r.reasons) >= 3 and "AdamW" in r.describe()
    opt = r.factory()(torch.nn.Linear(3, 1))
    assert isinstance(opt, optim.AdamW) and opt.param_groups[0]["lr"] == 1e-3
    assert opt.param_groups[0]["weight_decay"] == 0.01


def test_vision_generalization_gets_scaled_sgd_and_warmup_for_large_batches():
    small = D.recommend("vision", priority="generalization", batch_size=256)
    assert small.optimizer == "SGD" and small.lr == pytest.approx(0.1)
    assert small.momentum == 0.9 and small.warmup_steps == 0      # unscaled rate: no warmup
    big = D.recommend("vision", priority="generalization", batch_size=2048, dataset_size=50000,
                      total_steps=2000)
    assert big.lr == pytest.approx(0.8)                           # 0.1 * 2048 / 256
    assert big.warmup_steps == 100                                # 5% of steps, >= one epoch (25)
    assert any("1024" in reason for reason in big.reasons)
    sgd = big.factory()(torch.nn.Linear(2, 1))
    assert isinstance(sgd, optim.SGD) and sgd.param_groups[0]["nesterov"]
    # vision but speed first: the default
    assert D.recommend("vision", priority="speed").optimizer == "AdamW"


def test_small_deterministic_problem_gets_lbfgs():
    r = D.recommend(n_params=31, full_batch=True, deterministic=True)
    assert r.optimizer == "LBFGS"
    assert D.recommend("small-deterministic").optimizer == "LBFGS"
    # not full batch: no L-BFGS
    assert D.recommend(n_params=31, deterministic=True).optimizer == "AdamW"


def test_recipe_trains_digits_from_five_seeds():
    from curvlib import compare, data, models
    r = D.recommend(total_steps=120, batch_size=64)
    runs = compare.run_settings(r.factory(), [r.as_settings()],
                                lambda s: models.mlp([64, 16, 10], seed=s), data.digits(),
                                steps=120, batch_size=64)
    stats = runs[0]
    assert not stats.diverged and stats.val_acc.min() > 0.5   # lr 1e-3 is slow on this budget
    assert np.nanmean(stats.loss[:, -10:]) < 0.8 * np.nanmean(stats.loss[:, :5])


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"task": "audio"}, ValueError, "task"),
    ({"priority": "cost"}, ValueError, "priority"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 100, "dataset_size": 10}, ValueError, "batch_size"),
    ({"n_params": 0}, ValueError, "n_params"),
    ({"full_batch": "yes"}, TypeError, "full_batch"),
    ({"total_steps": 1.5}, TypeError, "total_steps"),
])
def test_recommend_bad_input(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        D.recommend(**kwargs)


# ----------------------------------------------------------------------------- diagnosis
def _curves(n=90):
    t = np.arange(n, dtype=float)
    return t, np.exp(-t / 20) * 2 + 0.01, 1.0 / (1 + t / 30)


def test_diagnose_each_failure_mode():
    t, loss, gn = _curves()
    assert D.diagnose(loss, gn).status == "healthy"
    # divergence, with the earlier spike reported
    l2, g2 = loss.copy(), gn.copy()
    g2[40:] = 50 * 1.5 ** np.arange(50)
    l2[60:] = np.nan
    g2[60:] = np.nan
    d = D.diagnose(l2, g2)
    assert d.status == "diverged" and d.step == 60 and "spiked at step 40" in d.message
    # spike without divergence
    g3 = gn.copy()
    g3[50] = 40.0
    d = D.diagnose(loss, g3)
    assert d.status == "spike" and d.step == 50
    # too small a learning rate: smooth, small decrease
    d = D.diagnose(2.3 - 0.001 * t, gn)
    assert d.status == "slow"
    # bouncing without progress
    rng = np.random.default_rng(0)
    d = D.diagnose(np.r_[np.full(5, 2.3), 1.0 + rng.random(len(t) - 5)], np.ones_like(t))
    assert d.status == "oscillating"
    # rising
    assert D.diagnose(2.0 + 0.05 * t, np.ones_like(t)).status == "rising"
    # dead network: stuck at ln 10 with vanishing gradient
    dead = np.full(len(t), math.log(10))
    assert D.diagnose(dead, np.r_[np.ones(5), np.full(len(t) - 5, 1e-6)], n_classes=10).status == "dead"
    # noise around a low loss is not oscillation
    low = 0.01 + 0.005 * rng.random(len(t))
    low[:5] = 2.3
    assert D.diagnose(low, np.ones_like(t)).status == "healthy"


def test_diagnose_bad_input():
    with pytest.raises(ValueError, match="grad_norms"):
        D.diagnose([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="spike_factor"):
        D.diagnose([3.0, 2.0, 1.0], [1.0, 1.0, 1.0], spike_factor=-1)


# ----------------------------------------------------------------------------- monitoring
def test_monitoring_flags_a_diverging_run_before_it_diverges():
    m = D.monitored_run(lr=3.2, steps=20)
    assert m["diverged_at"] is not None
    assert m["spike"] is not None and m["spike"] < m["diverged_at"]
    assert m["diagnosis"].status == "diverged"
    safe = D.monitored_run(lr=0.05, steps=20)
    assert safe["diverged_at"] is None


def test_raw_pixels_are_worse_conditioned():
    c = D.conditioning_demo(seeds=(0, 1))
    assert c["raw pixels"]["lambda_max"] > 5 * c["standardised"]["lambda_max"]
    assert c["raw pixels"]["lr_limit"] < 0.6 < c["standardised"]["lr_limit"]
    assert c["raw pixels"]["loss"].shape == (2, 150) and len(c["raw pixels"]["diagnoses"]) == 2
    # lr 0.6 is far from the rules' thresholds: the same word from every seed
    assert c["standardised"]["status"] == ("healthy", 2)
    assert c["raw pixels"]["status"] == ("rising", 2)
    assert np.nanmedian(c["raw pixels"]["grad_norm"]) > np.nanmedian(c["standardised"]["grad_norm"])


def test_first_loss_rise():
    assert D.first_loss_rise([2.0, 1.0, 1.5, 2.5, 9.0]) == 3          # 2.5 > 2 x 1.0
    assert D.first_loss_rise([2.0, 1.0, 1.5, 2.5], factor=1.4) == 2
    assert D.first_loss_rise([2.0, 1.0, np.nan]) == 2                  # non-finite counts
    assert D.first_loss_rise([2.0, 1.9, 1.8]) is None
    with pytest.raises(ValueError, match="factor"):
        D.first_loss_rise([1.0, 2.0], factor=0)
    with pytest.raises(ValueError, match="losses"):
        D.first_loss_rise(np.ones((2, 2)))


def test_lead_study_pairs_the_two_rules_per_seed():
    r = D.lead_study(lr=3.2, seeds=(0, 1), steps=20)
    assert len(r["spike"]) == len(r["rise"]) == 2
    for s, ri, lead in zip(r["spike"], r["rise"], r["lead"]):
        assert s is not None and ri is not None and lead == ri - s


# ----------------------------------------------------------------------------- defaults
def test_default_check_compares_default_and_tuned_over_seeds():
    r = D.default_check(lr_grid=(1e-3, 1e-1), steps=20, sizes=(64, 8, 10))
    for name, default in (("Adam", 1e-3), ("SGD+momentum", 0.1)):
        assert r[name]["default"].lr == default and r[name]["default_lr"] == default
        assert r[name]["tuned_lr"] in (1e-3, 1e-1)
        assert r[name]["default"].val_acc.shape == (5,)
        best = min(r[name]["scores"], key=r[name]["scores"].get)
        assert r[name]["tuned_lr"] == best


def test_weight_decay_sweep_shapes_and_effect():
    w = D.weight_decay_sweep(weight_decays=(0.0, 1.0), steps=40, sizes=(64, 16, 10), n_train=200,
                             lr_grid=None)
    sgd = w["SGD+momentum (L2)"]
    assert sgd["val_acc"].shape == (2, 5) and sgd["lr"] == 0.1
    # lr 0.1 x wd 1 shrinks the weights by 10% per step: SGD collapses, AdamW (1e-3 per step) not
    assert sgd["val_acc"][1].mean() < sgd["val_acc"][0].mean() - 0.3
    adamw = w["AdamW (decoupled)"]
    assert abs(adamw["val_acc"][1].mean() - adamw["val_acc"][0].mean()) < 0.1


def test_weight_decay_sweep_tunes_each_optimizers_rate():
    grid = (1e-4, 1e-2, 1.0)
    w = D.weight_decay_sweep(weight_decays=(0.0,), steps=30, sizes=(64, 8, 10), n_train=200,
                             lr_grid=grid, seeds=(0, 1))
    for s in w.values():
        assert s["lr"] in grid and s["at_edge"] == (s["lr"] in (1e-4, 1.0))
    assert w["AdamW (decoupled)"]["lr"] > 1e-4      # 1e-4 cannot train in 30 steps


# ----------------------------------------------------------------------------- the widget
def test_run_doctor_reacts_at_extreme_controls():
    e = D.run_doctor(lrs=(1e-4, 1e3), optimizers=("SGD+momentum", "Adam"),
                     weight_decays=(0.0,), warmups=(0, 5), steps=25, sizes=(64, 8, 10))
    slow = e.set(optimizer="SGD+momentum", lr=1e-4, weight_decay=0.0, warmup=0)
    wild = e.set(optimizer="SGD+momentum", lr=1e3, weight_decay=0.0, warmup=0)
    assert slow.png != wild.png and slow.text != wild.text
    assert "raise the learning rate" in slow.text
    assert "diverged at step" in wild.text and wild.diverged
    adam = e.set(optimizer="Adam", lr=1e3, warmup=5)
    assert adam.png != wild.png
    with pytest.raises(ValueError, match="optimizers"):
        D.run_doctor(optimizers=("Lion",))


def test_claim_boxes_render_from_records():
    """Every claim record of the chapter has its claims.box cell, and no verdict is typed."""
    import json
    import re
    from pathlib import Path

    from curvbook import claims
    nb = json.loads((Path(__file__).resolve().parent.parent / "chapters" / "09_bottom_line.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "**Verdict:" not in text
    ids = {re.search(r'box\("([\w-]+)"', "".join(c["source"])).group(1) for c in nb["cells"]
           if c["cell_type"] == "code" and "claims.box(" in "".join(c["source"])}
    assert ids == {r["id"] for r in claims.load_claims() if r["chapter"] == "09_bottom_line"}
