r"""The figures the chapters share, so a notebook cell reads like the idea it shows.

Four kinds of figure recur through the book:

* :func:`contour` -- a 2-D landscape as contour lines with optimizer paths drawn on it;
* :func:`convergence` -- error, loss or gradient norm against the step, on log axes;
* :func:`mean_band` -- a mean curve over seeds with a band showing the spread;
* :func:`heatmap` -- a quantity over a grid of two hyperparameters (e.g. a convergence rate
  over learning rate and momentum), with diverged cells shown in grey;

and one table: :func:`markdown_table`, rows of measured numbers rendered as a Markdown table
(the book shows it as a real table; nbval compares its text).

Every function takes an optional ``ax`` (a new figure is made when it is ``None``) and returns
the axes, so figures compose: ``ax = contour(...); convergence(..., ax=other_ax)``. Nothing here
keeps state between calls or changes matplotlib's global settings.

Curves and paths take their colours from :data:`PALETTE`, Okabe and Ito's eight colours that
readers with any common form of colour blindness can tell apart; axes made here cycle through
it too. Colour maps are viridis, which is also safe.

A run that blows up is part of the story, not an error: paths and curves are cut where they
diverge (the rule of :mod:`curvlib.runs`) and labelled "diverged at step k".

>>> import numpy as np
>>> from curvlib.landscapes import Quadratic
>>> from curvlib import plots
>>> f = Quadratic(condition_number=10, angle=0.5)
>>> ax = plots.contour(f, paths={"start only": np.array([f.start])})
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import MAX_BYTES, check_choice, check_flag, check_int, check_size
from .runs import divergence_step

__all__ = ["contour", "convergence", "mean_band", "heatmap", "cell_edges", "markdown_table",
           "plain_log_ticks", "PALETTE"]

#: Okabe and Ito, "Color Universal Design" (2008): blue, orange, bluish green, vermillion,
#: reddish purple, sky blue, yellow, black. Yellow, the faintest on white, comes late.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: ``import curvlib.plots`` stays cheap
    return plt


def _axes(ax, figsize=(5.0, 4.0)):
    if ax is None:
        _, ax = _plt().subplots(figsize=figsize, layout="constrained")
        ax.set_prop_cycle(color=PALETTE)
    return ax


def _finish_axes(ax, log_x, log_y, xlabel, ylabel):
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _color(i):
    return PALETTE[i % len(PALETTE)]


def _label(label, k):
    return f"{label} (diverged at step {k})" if k is not None else label


def _items(mapping, name):
    """``dict`` or sequence of ``(label, value)`` pairs, as a list of pairs."""
    if mapping is None:
        return []
    if isinstance(mapping, dict):
        return list(mapping.items())
    try:
        items = [(str(lbl), val) for lbl, val in mapping]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a dict or a sequence of (label, values) pairs") from None
    return items


def _grid_values(fun, box, n, max_bytes=MAX_BYTES):
    """``(X, Y, Z)`` for a landscape (``.grid``) or a callable on points of shape (..., 2)."""
    (x0, x1), (y0, y1) = box
    if hasattr(fun, "grid"):
        from .landscapes import Landscape
        if isinstance(fun, Landscape):
            return fun.grid(n=n, box=box, max_bytes=max_bytes)
        check_size(f"a {n} x {n} grid", 6 * 8 * n * n, max_bytes)
        return fun.grid(n=n, box=box)
    check_size(f"a {n} x {n} grid", 6 * 8 * n * n, max_bytes)
    X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    pts = np.stack([X, Y], axis=-1)
    try:  # vectorised first
        Z = np.asarray(fun(pts), dtype=float)
        if Z.shape != X.shape:
            raise ValueError
    except Exception:  # a function of a single point only
        Z = np.array([[float(fun(p)) for p in row] for row in pts])
    return X, Y, Z


def _check_box(box):
    try:
        (x0, x1), (y0, y1) = box
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError):
        raise ValueError(f"box must be ((xmin, xmax), (ymin, ymax)), got {box!r}") from None
    if not (np.isfinite([x0, x1, y0, y1]).all() and x0 < x1 and y0 < y1):
        raise ValueError(f"box must be finite with xmin < xmax and ymin < ymax, got {box!r}")
    return (x0, x1), (y0, y1)


def contour(fun=None, box=None, *, paths=None, ax=None, n=201, grid=None, levels=20,
            log_levels=True, minima=None, cmap="viridis", filled=False, markers=True,
            path_kw=None, legend=True, max_bytes=MAX_BYTES):
    r"""Contour lines of a 2-D function with optimizer paths drawn on top.

    Parameters
    ----------
    fun : landscape or callable
        A :class:`curvlib.landscapes.Landscape` (its ``box`` and ``minima`` are used as
        defaults), or any callable taking points of shape ``(..., 2)`` (or a single point of
        shape ``(2,)``) to values.
    box : ((xmin, xmax), (ymin, ymax)), optional
        The window; defaults to ``fun.box`` (or the extent of ``grid``). Paths that leave it
        are clipped by the axes.
    n : int
        Grid points per axis when the function is evaluated here; a grid larger than
        ``max_bytes`` (2 GiB, six ``n`` by ``n`` float64 arrays) is refused.
    grid : (X, Y, Z), optional
        Values already computed on a mesh (e.g. ``landscape.grid()``), so that a widget
        evaluates its landscape once, in its factory, and each redraw only draws. ``fun``
        may then be ``None``.
    paths : dict label -> array of shape (k, 2), or sequence of (label, array)
        Iterates :math:`x_0, x_1, \dots`, e.g. ``curvlib.minimize(...).path``. A path that
        diverges is drawn up to that row and labelled "diverged at step k".
    levels : int or sequence
        Number of contour levels, or the levels themselves.
    log_levels : bool or float
        Space the levels geometrically above the smallest value in the window, over 4 decades
        (``True``) or the given number of decades; ``False`` spaces them evenly. Narrow valleys
        such as Rosenbrock's need geometric levels to show their floor.
    minima : array of shape (m, 2), optional
        Points marked with a star; defaults to ``fun.minima`` when present.
    filled, cmap, markers, path_kw, legend
        Drawing options: filled contours, the colour map, start/end markers on paths, extra
        keyword arguments for every path line (e.g. ``{"lw": 1}``), whether to add a legend.

    Returns the axes.
    """
    if grid is not None:
        try:
            X, Y, Z = (np.asarray(a, dtype=float) for a in grid)
        except (TypeError, ValueError):
            raise TypeError("grid must be a triple (X, Y, Z) of equal-shape 2-D arrays") from None
        if not (X.ndim == 2 and X.shape == Y.shape == Z.shape):
            raise ValueError(f"grid must be three 2-D arrays of one shape, got "
                             f"{X.shape}, {Y.shape}, {Z.shape}")
        if box is None:
            box = ((X.min(), X.max()), (Y.min(), Y.max()))
    elif not callable(fun):
        raise TypeError(f"fun must be callable (or grid given), got {type(fun).__name__}")
    if box is None:
        box = getattr(fun, "box", None)
        if box is None:
            raise ValueError("box is required when fun has no .box attribute")
    box = _check_box(box)
    n = check_int("n", n, minimum=2)
    ax = _axes(ax)
    if grid is None:
        X, Y, Z = _grid_values(fun, box, n, max_bytes)
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        nlev = check_int("levels", levels, minimum=2)
        finite = Z[np.isfinite(Z)]
        lo, hi = float(finite.min()), float(finite.max())
        decades = 4.0 if log_levels is True else float(log_levels or 0)
        if decades > 0 and hi > lo:
            span = hi - lo
            levels = lo + np.geomspace(span * 10 ** -decades, span, nlev)
        else:
            levels = np.linspace(lo, hi, nlev)
    else:
        levels = np.sort(np.asarray(levels, dtype=float))
    draw = ax.contourf if filled else ax.contour
    draw(X, Y, Z, levels=levels, cmap=cmap, linewidths=None if filled else 0.8)

    if minima is None:
        minima = getattr(fun, "minima", None)
    if minima is not None and len(minima):
        m = np.asarray(minima, dtype=float).reshape(-1, 2)
        ax.plot(m[:, 0], m[:, 1], "*", color="gold", markeredgecolor="black", ms=13,
                zorder=5, label="minimum")

    for i, (label, path) in enumerate(_items(paths, "paths")):
        p = np.asarray(path, dtype=float)
        if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
            raise ValueError(f"paths[{label!r}] must have shape (k, 2) with k >= 1, "
                             f"got {p.shape}")
        k = divergence_step(p)
        shown = p if k is None else p[:k]
        kw = {"lw": 1.6, "color": _color(i), "zorder": 4}
        kw.update(path_kw or {})
        if len(shown):
            ax.plot(shown[:, 0], shown[:, 1], "-", label=_label(label, k), **kw)
            if markers:
                ax.plot(shown[0, 0], shown[0, 1], "o", color=kw["color"], ms=6, zorder=6)
                ax.plot(shown[-1, 0], shown[-1, 1], "x" if k is not None else "s",
                        color=kw["color"], ms=7, zorder=6)
    ax.set_xlim(*box[0])
    ax.set_ylim(*box[1])
    ax.set_xlabel("x₁")  # plain text: no mathtext parsing on every widget redraw
    ax.set_ylabel("x₂")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return ax


def convergence(curves, *, x=None, ax=None, log_x=False, log_y=True, xlabel="step",
                ylabel="error", start=0, styles=None, legend=True):
    r"""Curves such as :math:`f(x_t) - f^\star` or :math:`\|x_t - x^\star\|` against the step.

    ``curves`` maps a label to a 1-D array (or to a pair ``(x, y)`` of equal-length arrays).
    ``x`` gives shared abscissae; otherwise step numbers ``start, start+1, ...`` are used
    (``log_x=True`` starts at step 1 when ``start`` is 0, since log(0) is undefined).
    A curve that diverges is drawn up to that step, ends with a cross and is labelled
    "diverged at step k". Exact zeros are left out on a log axis (a method
    that converges exactly, like Newton on a quadratic, would otherwise vanish): the curve
    ends at its last nonzero point. ``styles`` maps labels to extra ``plot`` keywords.

    Returns the axes.
    """
    log_x, log_y = check_flag("log_x", log_x), check_flag("log_y", log_y)
    legend = check_flag("legend", legend)
    ax = _axes(ax)
    for i, (label, c) in enumerate(_items(curves, "curves")):
        if isinstance(c, tuple) and len(c) == 2:
            xs, ys = (np.asarray(v, dtype=float) for v in c)
        else:
            ys = np.asarray(c, dtype=float)
            if x is not None:
                xs = np.asarray(x, dtype=float)
            else:
                xs = np.arange(len(ys), dtype=float) + start
        if ys.ndim != 1 or xs.shape != ys.shape:
            raise ValueError(f"curves[{label!r}] must be 1-D with as many x values as y values, "
                             f"got x {xs.shape} and y {ys.shape}")
        k = divergence_step(ys)
        keep = np.ones(len(ys), bool) if k is None else np.arange(len(ys)) < k
        if log_y:
            keep &= ys > 0
        if log_x:
            keep &= xs > 0
        kw = {"color": _color(i), "lw": 1.6}
        kw.update((styles or {}).get(label, {}))
        line, = ax.plot(xs[keep], ys[keep], label=_label(label, k), **kw)
        if k is not None and keep.any():
            last = np.flatnonzero(keep)[-1]
            ax.plot(xs[last], ys[last], "x", color=line.get_color(), ms=8)
    _finish_axes(ax, log_x, log_y, xlabel, ylabel)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def mean_band(x, runs, *, ax=None, label=None, band="std", log_y=False, color=None,
              alpha=0.25, xlabel="step", ylabel=None):
    r"""Mean over seeds as a line, with a shaded band showing the spread.

    ``runs`` has shape ``(n_seeds, len(x))``. ``band`` is ``"std"`` (mean :math:`\pm` one
    standard deviation, ``ddof=1``), ``"minmax"`` (the range of the seeds) or a pair of
    quantiles such as ``(0.1, 0.9)``. With ``log_y`` the mean is the geometric mean and the
    ``"std"`` band is taken on the log values, so it stays positive. Runs that diverged
    (non-finite values) make the band undefined from that step on: those steps are left out.

    Returns the axes.
    """
    log_y = check_flag("log_y", log_y)
    x = np.asarray(x, dtype=float)
    R = np.asarray(runs, dtype=float)
    if R.ndim == 1:
        R = R[None, :]
    if R.ndim != 2 or R.shape[1] != len(x):
        raise ValueError(f"runs must have shape (n_seeds, {len(x)}), got {np.shape(runs)}")
    ax = _axes(ax)
    ok = np.isfinite(R).all(axis=0)
    if log_y:
        ok &= (R > 0).all(axis=0)
    Rk, xk = R[:, ok], x[ok]
    if Rk.shape[1] == 0:
        raise ValueError("runs has no step where every seed is finite" + (" and positive" if log_y else ""))
    T = np.log(Rk) if log_y else Rk
    mid = T.mean(axis=0)
    if isinstance(band, str) and band == "std":
        sd = T.std(axis=0, ddof=1) if len(T) > 1 else np.zeros_like(mid)
        lo, hi = mid - sd, mid + sd
    elif isinstance(band, str) and band == "minmax":
        lo, hi = T.min(axis=0), T.max(axis=0)
    else:
        try:
            q0, q1 = (float(q) for q in band)
        except (TypeError, ValueError):
            raise ValueError(f"band must be 'std', 'minmax' or a pair of quantiles, got {band!r}") from None
        if not 0 <= q0 < q1 <= 1:
            raise ValueError(f"band quantiles must satisfy 0 <= low < high <= 1, got {band!r}")
        lo, hi = np.quantile(T, [q0, q1], axis=0)
    if log_y:
        mid, lo, hi = np.exp(mid), np.exp(lo), np.exp(hi)
        ax.set_yscale("log")
    n = R.shape[0]
    lbl = None if label is None else f"{label} (n={n})"
    line, = ax.plot(xk, mid, color=color, label=lbl)
    ax.fill_between(xk, lo, hi, color=line.get_color(), alpha=alpha, lw=0)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if label is not None:
        ax.legend(fontsize="small")
    return ax


def cell_edges(centers, log=False):
    """Edges of the cells around sorted grid ``centers`` (midpoints, extended at both ends).

    With ``log=True`` the midpoints are geometric, for a grid that is even on a log axis.
    """
    log = check_flag("log", log)
    c = np.asarray(centers, dtype=float)
    if c.ndim != 1 or len(c) < 2:
        raise ValueError(f"centers must be 1-D with at least two values, got shape {c.shape}")
    if np.any(np.diff(c) <= 0):
        raise ValueError("centers must be strictly increasing")
    if log:
        if np.any(c <= 0):
            raise ValueError("centers must be positive on a log axis")
        return np.exp(cell_edges(np.log(c)))
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def heatmap(values, x, y, *, ax=None, log_x=False, log_y=False, log_color=False, cmap="viridis",
            vmin=None, vmax=None, xlabel="", ylabel="", colorbar_label="", colorbar=True,
            bad_color="0.75", bad_label="diverged"):
    r"""A quantity over a grid of two parameters, e.g. a convergence rate over (lr, momentum).

    ``values`` has shape ``(len(y), len(x))``: row ``i`` belongs to ``y[i]``, column ``j`` to
    ``x[j]`` (the ``meshgrid`` convention). NaN or infinite cells -- runs that diverged or
    settings that make no sense -- are painted ``bad_color`` and named ``bad_label`` in the
    colour bar's title. ``log_x``/``log_y`` put the axes on a log scale (the grid should then be
    even in the logarithm); ``log_color`` uses a logarithmic colour scale (positive values).

    Returns the axes; the image is ``ax.collections[0]``.
    """
    from matplotlib.colors import LogNorm, Normalize

    log_x, log_y = check_flag("log_x", log_x), check_flag("log_y", log_y)
    log_color, colorbar = check_flag("log_color", log_color), check_flag("colorbar", colorbar)
    V = np.ma.masked_invalid(np.asarray(values, dtype=float))
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if V.shape != (len(y), len(x)):
        raise ValueError(f"values must have shape (len(y), len(x)) = ({len(y)}, {len(x)}), "
                         f"got {V.shape}")
    ax = _axes(ax)
    plt = _plt()
    cm = plt.get_cmap(cmap).with_extremes(bad=bad_color)
    if log_color:
        if V.count() and V.min() <= 0:
            raise ValueError("values must be positive where finite when log_color=True")
        norm = LogNorm(vmin=vmin, vmax=vmax)
    else:
        norm = Normalize(vmin=vmin, vmax=vmax)
    mesh = ax.pcolormesh(cell_edges(x, log_x), cell_edges(y, log_y), V, cmap=cm, norm=norm,
                         shading="flat")
    _finish_axes(ax, log_x, log_y, xlabel, ylabel)
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax)
        cb.set_label(colorbar_label)
        if np.ma.is_masked(V) and V.mask.any():
            cb.ax.set_title(f"grey:\n{bad_label}", fontsize="small")
    return ax


def markdown_table(rows, columns, *, align=None):
    r"""Rows of results as a Markdown table, displayed as a table in a notebook and in the book.

    ``rows`` is a sequence of dicts; ``columns`` maps each header to a key of the rows or to a
    function ``row -> value``. A value is shown with ``str`` unless the column gives a format:
    pass ``(key_or_function, "{:.3g}")`` instead. ``None`` shows as an em dash. ``align`` is a
    string of ``l``/``r``/``c``, one per column (default: right-aligned).

    >>> t = markdown_table([{"k": 1, "err": 0.5}], {"step": "k", "error": ("err", "{:.1e}")})
    >>> print(t.data)
    | step | error |
    |---:|---:|
    | 1 | 5.0e-01 |
    """
    from IPython.display import Markdown

    if not isinstance(columns, dict) or not columns:
        raise TypeError("columns must be a non-empty dict header -> key, function or (key, format)")
    specs = []
    for header, spec in columns.items():
        get, fmt = (spec if isinstance(spec, tuple) else (spec, "{}"))
        specs.append((str(header), get, fmt))
    align = align or "r" * len(specs)
    if len(align) != len(specs) or set(align) - set("lrc"):
        raise ValueError(f"align must have one of l, r, c per column ({len(specs)}), got {align!r}")
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(h for h, _, _ in specs) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        cells = []
        for _, get, fmt in specs:
            value = get(row) if callable(get) else row[get]
            cells.append("—" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))


def plain_log_ticks(ax, axis="y", numticks=5, every=1):
    """Plain-text labels ("1e-6") at the decades of a log axis, and no minor ticks.

    Matplotlib writes log tick labels as mathtext (:math:`10^{-6}`), and parsing it is most
    of the cost of redrawing a small figure; widgets that must redraw in well under 100 ms
    call this on their log axes. ``axis`` is ``"x"``, ``"y"`` or ``"both"``; ``numticks``
    bounds the number of decade ticks; ``every`` labels one decade in ``every`` (the others
    keep an unlabelled tick).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    check_choice("axis", axis, ("x", "y", "both"))
    numticks = check_int("numticks", numticks, minimum=1)
    every = check_int("every", every, minimum=1)

    def label(v, _):
        e = round(math.log10(v)) if v > 0 else None
        return f"1e{e}" if e is not None and abs(math.log10(v) - e) < 1e-9 and e % every == 0 else ""

    for a in ([ax.xaxis, ax.yaxis] if axis == "both" else [getattr(ax, f"{axis}axis")]):
        a.set_major_locator(LogLocator(numticks=numticks))
        a.set_minor_locator(NullLocator())
        a.set_major_formatter(FuncFormatter(label))
    return ax
