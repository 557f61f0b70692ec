"""Chapter 9's diagnostic rules, as the chapter shows them (the cell tagged ``algorithm``),
give the same diagnosis as :func:`curvbook.diagnose.diagnose` and :func:`first_spike`."""
import json
from pathlib import Path

import numpy as np
import pytest

from curvbook import diagnose as D

NOTEBOOK = Path(__file__).resolve().parent.parent / "chapters" / "09_bottom_line.ipynb"


@pytest.fixture(scope="module")
def cell():
    nb = json.loads(NOTEBOOK.read_text())
    cells = [c for c in nb["cells"] if "algorithm" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "chapter 9 must have exactly one cell tagged 'algorithm'"
    source = "".join(cells[0]["source"])
    assert 5 <= len(source.splitlines()) <= 40
    namespace = {"np": np}
    exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


def _curves():
    rng = np.random.default_rng(0)
    t = np.arange(150.0)
    gn0 = np.ones(150)
    out = {
        "healthy": (2.3 * np.exp(-t / 20) + 0.01, gn0 * np.exp(-t / 100)),
        "slow": (2.3 - 0.002 * t, gn0),
        "rising": (2.3 + 0.05 * t, gn0 * (1 + 0.01 * t)),
        "oscillating": (1.5 + 0.4 * np.sign(np.sin(t)) * rng.random(150), gn0),
        "dead": (np.r_[np.linspace(2.0, np.log(10), 50), np.full(100, np.log(10))],
                 np.r_[np.ones(50), np.full(100, 1e-4)]),
    }
    spike_gn = gn0.copy()
    spike_gn[60] = 50.0
    out["spike"] = (2.3 * np.exp(-t / 20) + 0.01, spike_gn)
    div_loss = 2.3 * np.exp(-t / 20)
    div_loss[90:] = np.nan
    out["diverged"] = (div_loss, gn0)
    return out


@pytest.mark.parametrize("expected", ["healthy", "slow", "rising", "oscillating", "dead", "spike", "diverged"])
def test_cell_matches_curvbook_on_every_failure_mode(cell, expected):
    loss, gn = _curves()[expected]
    assert D.diagnose(loss, gn, n_classes=10).status == expected    # the curve is what it says
    assert cell["diagnosis"](loss, gn, n_classes=10) == expected


def test_cell_matches_curvbook_on_noisy_random_runs(cell):
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(10, 200))
        loss = np.exp(np.cumsum(rng.normal(rng.normal(0, 0.02), rng.uniform(0.01, 0.3), n))) * 2.3
        gn = np.exp(np.cumsum(rng.normal(0, rng.uniform(0.01, 0.8), n)))
        assert cell["diagnosis"](loss, gn) == D.diagnose(loss, gn, n_classes=10).status
        assert cell["first_spike"](gn) == D.first_spike(gn)


def test_cell_matches_curvbook_on_real_runs(cell):
    for lr in (0.05, 3.2):
        m = D.monitored_run(lr=lr, steps=20)
        assert cell["diagnosis"](m["loss"], m["grad_norm"]) == D.diagnose(m["loss"], m["grad_norm"], n_classes=10).status
