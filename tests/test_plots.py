"""curvlib.plots: what each figure draws, diverged runs, and bad input."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from curvlib import plots  # noqa: E402
from curvlib.landscapes import Quadratic, Rosenbrock  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


# ------------------------------------------------------------------ contour
def test_contour_draws_each_path_and_the_minimum():
    f = Rosenbrock()
    p = np.array([[-1.2, 1.0], [0.0, 0.0], [1.0, 1.0]])
    ax = plots.contour(f, paths={"a": p})
    lines = _lines_by_label(ax)
    np.testing.assert_array_equal(np.c_[lines["a"].get_xdata(), lines["a"].get_ydata()], p)
    np.testing.assert_array_equal(lines["minimum"].get_xydata(), [[1.0, 1.0]])
    assert ax.get_xlim() == f.box[0] and ax.get_ylim() == f.box[1]
    assert ax.collections, "no contour lines drawn"


def test_contour_cuts_a_diverged_path_and_says_so():
    f = Quadratic(10)
    p = np.array([[1.0, 1.0], [0.5, 0.5], [np.inf, 3.0], [1.0, 1.0]])
    ax = plots.contour(f, paths=[("gd", p)])
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("gd"))
    assert line.get_label() == "gd (diverged at step 2)"
    assert len(line.get_xdata()) == 2


def test_contour_accepts_a_precomputed_grid_and_plain_callables():
    f = Quadratic(5, 0.3)
    X, Y, Z = f.grid(n=31)
    ax = plots.contour(grid=(X, Y, Z), levels=5)
    assert ax.get_xlim() == (X.min(), X.max())
    # a function of one point only (not vectorised) still works
    ax2 = plots.contour(lambda x: float(x[0] ** 2 + 3 * x[1] ** 2), box=((-1, 1), (-1, 1)), n=9)
    assert ax2.collections


def test_contour_levels_geometric_vs_linear():
    f = Quadratic(10)
    lv_log = plots.contour(f, levels=6, n=21).collections[0].levels
    lv_lin = plots.contour(f, levels=6, n=21, log_levels=False).collections[0].levels
    assert np.allclose(np.diff(lv_lin), np.diff(lv_lin)[0])
    ratios = lv_log[1:] / lv_log[:-1]  # the grid's minimum is 0: levels are geometric
    assert np.allclose(ratios, ratios[0]) and ratios[0] > 1.5


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(paths={"bad": np.zeros((3, 3))}), ValueError, "paths"),
    (dict(box=((1, 0), (0, 1))), ValueError, "box"),
    (dict(paths=5), TypeError, "paths"),
    (dict(n=1), ValueError, "n"),
])
def test_contour_bad_input(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        plots.contour(Quadratic(2), **kwargs)


def test_contour_needs_fun_or_grid():
    with pytest.raises(TypeError, match="fun"):
        plots.contour(None, box=((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="grid"):
        plots.contour(grid=(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((2, 3))))


# ------------------------------------------------------------------ convergence
def test_convergence_log_axes_zeros_and_divergence():
    ax = plots.convergence({"newton": np.array([1.0, 1e-3, 0.0]),
                            "blowup": np.array([1.0, 10.0, np.nan, 5.0])}, log_x=False)
    assert ax.get_yscale() == "log"
    lines = _lines_by_label(ax)
    assert list(lines["newton"].get_ydata()) == [1.0, 1e-3]  # exact zero left out
    assert "blowup (diverged at step 2)" in lines
    assert list(lines["blowup (diverged at step 2)"].get_xdata()) == [0, 1]


def test_convergence_shared_x_and_pairs():
    ax = plots.convergence({"a": np.array([3.0, 2.0, 1.0]),
                            "b": (np.array([1.0, 10.0]), np.array([5.0, 0.5]))},
                           x=np.array([1.0, 2.0, 4.0]), log_x=True)
    lines = _lines_by_label(ax)
    assert list(lines["a"].get_xdata()) == [1.0, 2.0, 4.0]
    assert list(lines["b"].get_xdata()) == [1.0, 10.0]
    assert ax.get_xscale() == "log"


def test_convergence_bad_input():
    with pytest.raises(ValueError, match="curves"):
        plots.convergence({"a": np.ones(3)}, x=np.arange(4))
    with pytest.raises(TypeError, match="curves"):
        plots.convergence(7)


# ------------------------------------------------------------------ mean_band
def _band_limits(ax):
    verts = ax.collections[0].get_paths()[0].vertices
    return verts[:, 1].min(), verts[:, 1].max()


def test_mean_band_std_and_minmax():
    x = np.arange(4)
    runs = np.array([[1.0, 2, 3, 4], [3.0, 4, 5, 6]])
    ax = plots.mean_band(x, runs, label="sgd")
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [2, 3, 4, 5])
    assert line.get_label() == "sgd (n=2)"
    sd = np.sqrt(2.0)
    lo, hi = _band_limits(ax)
    assert lo == pytest.approx(2 - sd) and hi == pytest.approx(5 + sd)
    lo, hi = _band_limits(plots.mean_band(x, runs, band="minmax"))
    assert (lo, hi) == (1.0, 6.0)
    lo, hi = _band_limits(plots.mean_band(x, runs, band=(0.0, 1.0)))
    assert (lo, hi) == (1.0, 6.0)


def test_mean_band_log_is_geometric_and_drops_diverged_steps():
    x = np.arange(3)
    runs = np.array([[1.0, 10.0, np.nan], [100.0, 1000.0, 1.0]])
    ax = plots.mean_band(x, runs, log_y=True)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [10.0, 100.0])
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize("kwargs, word", [
    (dict(band="iqr"), "band"), (dict(band=(0.9, 0.1)), "band"),
])
def test_mean_band_bad_band(kwargs, word):
    with pytest.raises(ValueError, match=word):
        plots.mean_band(np.arange(2), np.ones((2, 2)), **kwargs)


def test_mean_band_bad_shape():
    with pytest.raises(ValueError, match="runs"):
        plots.mean_band(np.arange(3), np.ones((2, 4)))


# ------------------------------------------------------------------ heatmap
def test_cell_edges_linear_and_log():
    np.testing.assert_allclose(plots.cell_edges([0.0, 1.0, 2.0]), [-0.5, 0.5, 1.5, 2.5])
    np.testing.assert_allclose(plots.cell_edges([1.0, 10.0, 100.0], log=True),
                               [10 ** -0.5, 10 ** 0.5, 10 ** 1.5, 10 ** 2.5])
    with pytest.raises(ValueError, match="increasing"):
        plots.cell_edges([1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        plots.cell_edges([-1.0, 1.0], log=True)


def test_heatmap_values_mask_and_colorbar():
    V = np.array([[0.1, 0.5, np.nan], [0.9, 0.2, 0.3]])
    ax = plots.heatmap(V, x=[1e-2, 1e-1, 1.0], y=[0.0, 0.9], log_x=True,
                       colorbar_label="rate")
    mesh = ax.collections[0]
    arr = mesh.get_array()
    assert np.ma.is_masked(arr) and arr.mask.sum() == 1
    np.testing.assert_allclose(arr.compressed(), [0.1, 0.5, 0.9, 0.2, 0.3])
    assert ax.get_xscale() == "log"
    cbar_ax = ax.figure.axes[-1]
    assert "diverged" in cbar_ax.get_title()
    assert cbar_ax.get_ylabel() == "rate"


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="values"):
        plots.heatmap(np.ones((2, 3)), x=[1, 2], y=[1, 2])
    with pytest.raises(ValueError, match="log_color"):
        plots.heatmap(np.array([[0.0, 1.0]]), x=[1, 2], y=[1], log_color=True)


# ------------------------------------------------------------------ table and tick helpers
def test_markdown_table_formats_and_dashes():
    t = plots.markdown_table([{"k": 1, "err": 0.5, "n": None}, {"k": 2, "err": 2.5e-3, "n": 7}],
                             {"step": "k", "error": ("err", "{:.1e}"), "n": "n",
                              "twice": lambda r: 2 * r["k"]}, align="lrrr")
    lines = t.data.splitlines()
    assert lines[0] == "| step | error | n | twice |"
    assert lines[1] == "|:---|---:|---:|---:|"
    assert lines[2] == "| 1 | 5.0e-01 | — | 2 |"
    assert lines[3] == "| 2 | 2.5e-03 | 7 | 4 |"
    with pytest.raises(ValueError, match="align"):
        plots.markdown_table([], {"a": "a"}, align="rr")
    with pytest.raises(TypeError, match="columns"):
        plots.markdown_table([], [])


def test_plain_log_ticks_avoid_mathtext():
    ax = plots.convergence({"a": np.geomspace(1, 1e-8, 20)})
    plots.plain_log_ticks(ax)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all("$" not in s for s in labels)
    assert "1e-4" in labels or "1e-8" in labels or "1e0" in labels
    assert len(ax.yaxis.get_minorticklocs()) == 0
    with pytest.raises(ValueError, match="axis"):
        plots.plain_log_ticks(ax, axis="z")


def test_plain_log_ticks_every_third_decade_and_many_ticks():
    _, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(1e2, 1e16)
    plots.plain_log_ticks(ax, "x", numticks=30, every=3)
    ax.figure.canvas.draw()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert shown == ["1e3", "1e6", "1e9", "1e12", "1e15"]
    assert len(ax.get_xticks()) >= 15                        # unlabelled decades keep a tick
    with pytest.raises(ValueError, match="every"):
        plots.plain_log_ticks(ax, "x", every=0)


# ------------------------------------------------------------------ palette
def test_palette_is_okabe_ito_and_colours_curves_in_order():
    from matplotlib.colors import to_hex
    assert [c.lower() for c in plots.PALETTE] == [
        "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000"]
    curves = {f"c{i}": np.geomspace(1, 1e-3, 5) for i in range(9)}
    ax = plots.convergence(curves)
    colours = [to_hex(_lines_by_label(ax)[f"c{i}"].get_color()) for i in range(9)]
    assert colours == [c.lower() for c in plots.PALETTE] + [plots.PALETTE[0].lower()]
    path = np.array([[1.0, 1.0], [0.0, 0.0]])
    ax = plots.contour(Quadratic(3), paths={"a": path, "b": path}, n=11)
    assert [to_hex(_lines_by_label(ax)[k].get_color()) for k in "ab"] == ["#0072b2", "#e69f00"]


def test_new_axes_cycle_through_the_palette():
    from matplotlib.colors import to_hex
    x = np.arange(4.0)
    ax = plots.mean_band(x, np.ones((3, 4)), label="first")
    plots.mean_band(x, 2 * np.ones((3, 4)), ax=ax, label="second")
    assert [to_hex(line.get_color()) for line in ax.get_lines()] == ["#0072b2", "#e69f00"]
