r"""Chapter 2: what the exact Hessian costs, and what a real network's Hessian looks like.

The lecture's three reasons why the exact Hessian fails, each turned into something we can
compute or measure:

* **memory** -- :func:`memory_rows` and :func:`check_500tb` apply
  :func:`curvlib.memory.hessian_bytes` (:math:`n^2 b` bytes, or :math:`n(n+1)b/2` for one
  triangle) to the exact parameter counts of :data:`curvlib.memory.MODELS`, beside the
  memory of the machines in :data:`curvlib.memory.HARDWARE`;
* **computation** -- :func:`inversion_rows` and :func:`check_gpt3` price a dense Cholesky
  factorisation (:math:`n^3/3` FLOPs) at the HPL rate of the TOP500's first machine, and
  :func:`walls` finds the largest model whose Hessian fits in its memory against the largest
  one it could factorise in a given time;
* **conditioning** -- :func:`trained_spectrum` forms the dense Hessian of a small MLP trained
  on scikit-learn's digits (:func:`curvlib.curvature.hessian`), :func:`spectrum_summary`
  counts its outliers, its bulk near zero and its negative eigenvalues, and
  :func:`kappa_by_cutoff` shows why :math:`\kappa = \lambda_{\max}/\lambda_{\min}` has no
  meaning until one says which small eigenvalues to ignore.

:func:`measure_scaling` times forming, eigendecomposing and inverting exact Hessians of MLPs
of growing size; timings vary from run to run, so they go into a figure
(:func:`plot_scaling`) and never into text that a test or nbval compares.

The spectrum's shape (a few large outliers, about one per class, over a bulk piled up at
zero) was reported by Sagun, Bottou & LeCun (2016), "Eigenvalues of the Hessian in Deep
Learning: Singularity and Beyond", arXiv:1611.07476, Sagun, Evci, Güney, Dauphin & Bottou
(2018), "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", ICLR
workshop, and Papyan (2020), "Traces of Class/Cross-Class Structure Pervade Deep Learning
Spectra", JMLR 21(252).
"""
from __future__ import annotations

import math
import time

import numpy as np

from curvlib import plots
from curvlib._checks import check_choice, check_int, check_positive
from curvlib.landscapes import LogisticRegression
from curvlib.runs import single_thread
from .quotes import power_of_ten

__all__ = ["PRECISIONS", "REFERENCE_MACHINE", "FONT_SIZE", "memory_rows", "memory_markdown",
           "check_500tb", "inversion_rows", "inversion_markdown", "check_gpt3", "walls",
           "mlp_hessian_problem", "measure_scaling", "loglog_slope", "plot_scaling",
           "plot_memory_landscape",
           "trained_spectrum", "spectrum_summary", "kappa_by_cutoff", "plot_spectrum",
           "spectrum_legend", "logistic_condition_number", "hvp", "conjugate_gradient",
           "hessian_free_step", "hessian_free", "lbfgs_history", "evaluations_to",
           "curvature_problem", "hf_vs_lbfgs", "plot_hf_vs_lbfgs", "memory_explorer", "EXPLORERS"]

#: The floating-point formats of the memory table.
PRECISIONS = ("float16", "float32", "float64")
#: The machine the chapter prices inversions on (key of :data:`curvlib.memory.HARDWARE`).
REFERENCE_MACHINE = "El Capitan (TOP500 #1)"
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def _memory():
    from curvlib import memory
    return memory


def _model_names(models):
    MODELS = _memory().MODELS
    if models is None:
        return list(MODELS)
    if isinstance(models, str):
        models = [models]
    for name in models:
        check_choice("models", name, MODELS)
    return list(models)


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
def memory_rows(models=None, dtypes=PRECISIONS):
    r"""Exact-Hessian bytes of real models, full and symmetric, in each precision.

    Returns one dict per model: ``name``, ``n_params``, ``citation`` and ``bytes``, where
    ``bytes[dtype]["full"]`` is :math:`n^2 b` and ``bytes[dtype]["symmetric"]`` is
    :math:`n(n+1)b/2` (:func:`curvlib.memory.hessian_bytes`), plus ``params_bytes``, the
    parameter vector itself in float32 (:math:`4n`) for scale.
    """
    mem = _memory()
    dtypes = [dtypes] if isinstance(dtypes, str) else list(dtypes)
    for d in dtypes:
        mem.dtype_bytes(d)  # validates the name
    rows = []
    for name in _model_names(models):
        spec = mem.MODELS[name]
        n = spec.n_params
        rows.append(dict(
            name=name, n_params=n, citation=spec.citation, params_bytes=4 * n,
            bytes={d: {"full": mem.hessian_bytes(n, d), "symmetric": mem.hessian_bytes(n, d, True)}
                   for d in dtypes}))
    return rows


def memory_markdown(rows, machines=None):
    """The memory table as Markdown: one row per model, then one per machine for comparison."""
    mem = _memory()
    fmt = mem.format_bytes
    dtypes = list(rows[0]["bytes"]) if rows else list(PRECISIONS)
    head = ["model", "parameters"] + [f"{d} full / symmetric" for d in dtypes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{r['n_params']:,}"]
        cells += [f"{fmt(r['bytes'][d]['full'])} / {fmt(r['bytes'][d]['symmetric'])}" for d in dtypes]
        lines.append("| " + " | ".join(cells) + " |")
    machines = list(mem.HARDWARE) if machines is None else machines
    for m in machines:
        hw = mem.HARDWARE[m]
        lines.append("| " + " | ".join([f"*{m} memory*", ""] + [f"*{fmt(hw.memory_bytes)}*"]
                                       + [""] * (len(dtypes) - 1)) + " |")
    return "\n".join(lines)


def check_500tb(claimed_bytes=500e12, model="ResNet-50"):
    r"""Check "ResNet-50 (25M params) needs 500 TB" by arithmetic.

    Returns the model's exact count ``n``, the bytes of every storage variant
    (``variants[(dtype, "full"|"symmetric")]``), the ratio of the true float32 full figure to
    the claim, the bytes per entry the claim implies (:math:`500\,\text{TB}/n^2`), the model
    size whose float32 Hessian *would* be 500 TB (:math:`\sqrt{500\,\text{TB}/4}`), and the
    variant closest to the claim on a log scale.
    """
    mem = _memory()
    claimed = check_positive("claimed_bytes", claimed_bytes)
    n = mem.MODELS[_model_names(model)[0]].n_params
    variants = {(d, s): mem.hessian_bytes(n, d, s == "symmetric")
                for d in ("float16", "float32", "float64") for s in ("full", "symmetric")}
    closest = min(variants, key=lambda k: abs(math.log(variants[k] / claimed)))
    full32 = variants[("float32", "full")]
    return dict(n_params=n, claimed_bytes=claimed, variants=variants, float32_full=full32,
                ratio_true_to_claim=full32 / claimed, implied_bytes_per_entry=claimed / n**2,
                n_for_claim_float32=math.sqrt(claimed / 4), n_lecture=25_000_000,
                lecture_n_float32=mem.hessian_bytes(25_000_000, "float32"),
                closest=closest, closest_bytes=variants[closest])


def plot_memory_landscape(ax=None, models=None,
                          labelled=("ResNet-50", "BERT-base", "GPT-2 XL", "Llama 2 7B", "GPT-3 175B")):
    r"""Bytes of the exact Hessian against the parameter count, with real models and machines.

    Three lines :math:`n^2 b` for float16/32/64, the models of :data:`curvlib.memory.MODELS`
    on the float32 line, and horizontal lines at the memory of each machine of
    :data:`curvlib.memory.HARDWARE`.
    """
    import matplotlib.pyplot as plt
    mem = _memory()
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 5.0), layout="constrained")
    n = np.logspace(3, 12, 50)
    for d, style in zip(PRECISIONS, (":", "-", "--")):
        ax.loglog(n, n ** 2 * mem.dtype_bytes(d), "k" + style, lw=1, label=f"full Hessian, {d}")
    for name in _model_names(models):
        m = mem.MODELS[name].n_params
        ax.loglog(m, float(mem.hessian_bytes(m, "float32")), "o", color="tab:red", ms=6)
        if name in labelled:  # above-left of the lines, except where a machine's line runs
            below = name == labelled[0]
            ax.annotate(name, (m, float(mem.hessian_bytes(m, "float32"))), fontsize=FONT_SIZE,
                        xytext=(10, -20) if below else (-10, 8), textcoords="offset points",
                        ha="left" if below else "right")
    by_size = {}
    for hw, spec in mem.HARDWARE.items():  # machines with equal memory share a line
        by_size.setdefault(spec.memory_bytes, []).append(hw.split(" (")[0])
    for (size, names), color in zip(sorted(by_size.items()), ("tab:blue", "tab:green", "tab:purple")):
        ax.axhline(float(size), color=color, lw=1.2)
        if all(x.startswith("NVIDIA") for x in names):  # "A100 / H100 GPU: 80 GB"
            names = [" / ".join(x.split()[1] for x in names) + " GPU"]
        ax.text(7e11, float(size) * 2.5, f"{' / '.join(names)}: {mem.format_bytes(size)}", ha="right",
                fontsize=FONT_SIZE, color=color)
    ax.set_xlim(1e3, 1e12)
    ax.set_ylim(1e6, 1e25)
    ax.set_xlabel("parameters n", fontsize=FONT_SIZE)
    ax.set_ylabel("bytes", fontsize=FONT_SIZE)
    ax.set_title("the exact Hessian against real memory (dots: float32)", fontsize=FONT_SIZE)
    plots.plain_log_ticks(ax, "x", numticks=30, every=3)
    plots.plain_log_ticks(ax, "y", numticks=30, every=3)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.legend(fontsize=FONT_SIZE, loc="lower right", frameon=False)
    return ax


# --------------------------------------------------------------------------------------
# Time of a dense factorisation
# --------------------------------------------------------------------------------------
def inversion_rows(models=None, machine=REFERENCE_MACHINE, method="cholesky"):
    r"""FLOPs and time of factorising each model's Hessian on ``machine``.

    FLOPs are :func:`curvlib.memory.inversion_flops` (:math:`n^3/3` for Cholesky, the
    cheapest dense route to a Newton step); seconds assume the machine's TOP500 HPL rate,
    which is itself a dense LU factorisation at scale, so it is an optimistic but fair rate.
    ``memory_ratio`` is the float16 symmetric Hessian (the smallest variant) over the
    machine's memory.
    """
    mem = _memory()
    check_choice("machine", machine, mem.HARDWARE)
    hw = mem.HARDWARE[machine]
    rows = []
    for name in _model_names(models):
        n = mem.MODELS[name].n_params
        flops = mem.inversion_flops(n, method)
        seconds = mem.inversion_seconds(n, hw.flops_per_second, method)
        rows.append(dict(name=name, n_params=n, flops=flops, seconds=seconds,
                         years=seconds / _SECONDS_PER_YEAR,
                         memory_ratio=mem.hessian_bytes(n, "float16", True) / hw.memory_bytes))
    return rows


def _duration(seconds):
    """``3.2 ms``, ``41 s``, ``2.5 h``, ``3.1 days``, ``3.3e+07 years``."""
    if seconds < 1:
        return f"{seconds * 1e3:.2g} ms" if seconds >= 1e-3 else f"{seconds:.1e} s"
    for unit, size in (("years", _SECONDS_PER_YEAR), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            v = seconds / size
            return f"{v:.2g} {unit}" if v < 1e4 else f"{v:.1e} {unit}"
    return f"{seconds:.2g} s"


def inversion_markdown(rows):
    """The inversion table as Markdown (FLOPs, time at the machine's rate, memory ratio)."""
    lines = ["| model | parameters | Cholesky FLOPs | time at HPL rate | fp16 symmetric Hessian / machine memory |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['n_params']:,} | {r['flops']:.2e} | "
                     f"{_duration(r['seconds'])} | {r['memory_ratio']:.2g} |")
    return "\n".join(lines)


def walls(machine=REFERENCE_MACHINE, dtype="float64", budget_seconds=86400.0, method="cholesky"):
    r"""The largest Hessian a machine can hold against the largest it can factorise in time.

    .. math:: n_{\text{memory}} = \sqrt{M / b}, \qquad
              n_{\text{time}} = \bigl(3\,R\,T\bigr)^{1/3}\ \text{(Cholesky, } n^3/3\text{ FLOPs)}

    with memory :math:`M` bytes, :math:`b` bytes per entry, rate :math:`R` FLOP/s and time
    budget :math:`T`. Whichever :math:`n` is smaller is the wall one hits first.
    """
    mem = _memory()
    check_choice("machine", machine, mem.HARDWARE)
    hw = mem.HARDWARE[machine]
    T = check_positive("budget_seconds", budget_seconds)
    n_memory = math.sqrt(hw.memory_bytes / mem.dtype_bytes(dtype))
    c = mem.inversion_flops(1, method)
    n_time = (hw.flops_per_second * T / c) ** (1 / 3)
    return dict(machine=machine, dtype=dtype, budget_seconds=T, n_memory=n_memory, n_time=n_time,
                seconds_at_n_memory=mem.inversion_seconds(int(n_memory), hw.flops_per_second, method),
                first_wall="memory" if n_memory < n_time else "time")


def check_gpt3(model="GPT-3 175B", machine=REFERENCE_MACHINE, method="cholesky"):
    r"""Check "GPT-3 (175B params) is computationally impossible": memory against time.

    Returns the smallest Hessian storage (float16, one triangle) and how many of ``machine``'s
    memories it fills, the factorisation FLOPs and their time in years at the HPL rate, and
    the number of Hessian-vector products (one per column, :math:`n`) needed merely to form it.
    """
    mem = _memory()
    n = mem.MODELS[_model_names(model)[0]].n_params
    hw = mem.HARDWARE[machine]
    smallest = mem.hessian_bytes(n, "float16", True)
    seconds = mem.inversion_seconds(n, hw.flops_per_second, method)
    return dict(n_params=n, hessian_bytes=smallest, machines_of_memory=smallest / hw.memory_bytes,
                flops=mem.inversion_flops(n, method), seconds=seconds,
                years=seconds / _SECONDS_PER_YEAR, hvps_to_form=n,
                universe_ages=seconds / (13.8e9 * _SECONDS_PER_YEAR))


# --------------------------------------------------------------------------------------
# Measured scaling on small MLPs
# --------------------------------------------------------------------------------------
def mlp_hessian_problem(hidden, n_samples=256, seed=0):
    r"""``(f, w)`` for a one-hidden-layer tanh MLP 64-``hidden``-10 on digits, in float64.

    ``f`` is the mean cross-entropy on the first ``n_samples`` training images
    (:func:`curvlib.curvature.flat_loss`), ``w`` the seeded initial weights; the model has
    :math:`75h + 10` parameters.
    """
    import torch
    from curvlib import curvature, data, models
    hidden = check_int("hidden", hidden, minimum=1)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    split = data.digits(dtype="float64")
    X, y = split.X_train[:n_samples], split.y_train[:n_samples]
    model = models.mlp([64, hidden, 10], seed=seed, dtype="float64")
    return curvature.flat_loss(model, torch.nn.functional.cross_entropy, X, y)


#: Type size of the chapter's figures and widget frames, in points (about 17 px at 100 dpi:
#: no smaller than the site's body text when a 7.2-inch figure is shown at its natural size).
FONT_SIZE = 12
#: What :func:`measure_scaling` times, with the labels of the figure.
SCALING_OPS = {"form": "form H (n products)", "cholesky": "Cholesky factorisation",
               "inv": "invert", "eigh": "eigendecompose"}


def measure_scaling(hidden_sizes=(2, 3, 4, 6, 8, 12, 16, 32), n_samples=128, repeats=2,
                    seed=0, eigh_max_n=2500):
    r"""Time forming, factorising, inverting and eigendecomposing exact Hessians of growing MLPs.

    For each hidden width :math:`h` (:math:`n = 75h + 10` parameters, from 160 to 2,410
    by default): form :math:`H` column by column, :math:`n` Hessian-vector products through
    :func:`curvlib.curvature.hvp_operator` (:math:`O(n)` work each for this model, so
    :math:`O(n^2)` in all); factorise :math:`H + \delta I` (shifted to be safely positive
    definite) by Cholesky with ``torch.linalg.cholesky`` (:math:`n^3/3` flops), invert it
    with ``torch.linalg.inv`` and eigendecompose :math:`H` with ``torch.linalg.eigh`` (the
    latter only up to ``eigh_max_n``; about :math:`9n^3` flops). The shift is
    :math:`\delta = \|H\|_F + 10^{-3}`, more than any negative eigenvalue. Each time is the best of
    ``repeats`` runs, one run for anything slower than half a second. Everything runs on
    one thread. Reports ``n``, the measured ``bytes`` of :math:`H` (exactly :math:`8n^2`) and
    seconds per operation (``nan`` where not measured).

    Timings depend on the machine and its load: plot them, fit slopes, but don't quote them
    as exact numbers.
    """
    repeats = check_int("repeats", repeats, minimum=1)
    hidden_sizes = [check_int("hidden_sizes", h, minimum=1) for h in hidden_sizes]
    if len(hidden_sizes) < 2:
        raise ValueError(f"hidden_sizes needs at least two sizes to fit a slope, got {hidden_sizes}")
    out = {k: [] for k in ("n", "bytes", *SCALING_OPS)}
    with single_thread():
        _measure(hidden_sizes, n_samples, repeats, seed, out, eigh_max_n)
    return {k: np.asarray(v, dtype=float if k not in ("n", "bytes") else np.int64) for k, v in out.items()}


def _best_time(function, repeats):
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - t0)
        if best > 0.5:
            break
    return best


def _measure(hidden_sizes, n_samples, repeats, seed, out, eigh_max_n):
    import torch
    from curvlib import curvature
    f, w = mlp_hessian_problem(1, n_samples, seed)  # warm-up: first calls load and compile
    H = curvature.hessian(f, w)
    for op in (torch.linalg.cholesky, torch.linalg.inv, torch.linalg.eigh):
        op(H @ H + torch.eye(len(w), dtype=H.dtype))
    for h in hidden_sizes:
        f, w = mlp_hessian_problem(h, n_samples, seed)
        n = w.numel()
        eye = torch.eye(n, dtype=w.dtype)
        holder = {}

        def form():
            hv = curvature.hvp_operator(f, w)
            holder["H"] = torch.stack([hv(eye[i]) for i in range(n)], dim=1)

        out["form"].append(_best_time(form, repeats))
        H = holder["H"]
        A = H + (float(torch.linalg.matrix_norm(H)) + 1e-3) * eye  # ||H||_F >= |lambda_min|
        out["cholesky"].append(_best_time(lambda: torch.linalg.cholesky(A), repeats))
        out["inv"].append(_best_time(lambda: torch.linalg.inv(A), repeats))
        out["eigh"].append(_best_time(lambda: torch.linalg.eigh(H), repeats) if n <= eigh_max_n
                           else math.nan)
        out["n"].append(n)
        out["bytes"].append(H.numel() * H.element_size())


def loglog_slope(n, values, last=None, *, min_n=None):
    r"""Least-squares slope :math:`p` of :math:`\log v = p \log n + c`, over the ``last`` points
    or over the points with :math:`n \ge` ``min_n`` (points with ``nan`` values are left out)."""
    n, values = np.asarray(n, dtype=float), np.asarray(values, dtype=float)
    if n.shape != values.shape or n.ndim != 1 or len(n) < 2:
        raise ValueError(f"n and values must be 1-D of equal length >= 2, got {n.shape} and {values.shape}")
    keep = np.isfinite(values)
    if min_n is not None:
        keep &= n >= check_positive("min_n", min_n)
    n, values = n[keep], values[keep]
    if np.any(n <= 0) or np.any(values <= 0):
        raise ValueError("n and values must be positive for a log-log fit")
    if last is not None:
        last = check_int("last", last, minimum=2)
        n, values = n[-last:], values[-last:]
    if len(n) < 2:
        raise ValueError("fewer than two points left to fit a slope")
    return float(np.polyfit(np.log(n), np.log(values), 1)[0])


def _plain_ticks(axis, ticks):
    """Fixed, plain tick labels ("200", "1,000") on a log axis, no minor labels: nothing to
    overlap when the axis spans about one decade."""
    from matplotlib.ticker import FixedLocator, NullFormatter
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_ticklabels([f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def plot_scaling(result, *, min_n=200, figsize=(7.2, 6.6)):
    """Log-log plot of the measured times (top) and bytes (bottom) against :math:`n`, with
    slopes fitted over :math:`n \\ge` ``min_n`` and :math:`n^2`, :math:`n^3` guides."""
    import matplotlib.pyplot as plt
    fig, (ax_t, ax_b) = plt.subplots(2, 1, figsize=figsize, layout="constrained",
                                     height_ratios=[1.6, 1])
    n = result["n"].astype(float)
    for key, marker in zip(SCALING_OPS, "osd^"):
        y = result[key]
        ok = np.isfinite(y)
        p = loglog_slope(n, y, min_n=min_n)
        ax_t.loglog(n[ok], y[ok], marker=marker, label=f"{SCALING_OPS[key]}: slope {p:.1f}")
    anchor = result["cholesky"][-1]
    for power, style in ((2, ":"), (3, "--")):
        ax_t.loglog(n, anchor * (n / n[-1]) ** power, "k" + style, lw=1.2,
                    label=f"n{'²' if power == 2 else '³'} guide")
    ax_t.axvspan(n.min() * 0.9, min_n, color="0.92", zorder=0)
    ax_b.loglog(n, result["bytes"], "o-", color="C4",
                label=f"bytes of H: slope {loglog_slope(n, result['bytes']):.2f}")
    ticks = [t for t in (100, 200, 500, 1000, 2000, 5000) if n.min() * 0.9 <= t <= n.max() * 1.1]
    for ax in (ax_t, ax_b):
        ax.set_xlim(n.min() * 0.9, n.max() * 1.1)
        _plain_ticks(ax.xaxis, ticks)
        ax.tick_params(labelsize=FONT_SIZE)
    ax_t.set_ylabel("seconds (this machine)", fontsize=FONT_SIZE)
    ax_t.set_title("time; slopes fitted right of the shaded band", fontsize=FONT_SIZE)
    ax_t.legend(fontsize=FONT_SIZE, frameon=False, loc="upper left")
    ax_b.set_xlabel("parameters n", fontsize=FONT_SIZE)
    ax_b.set_ylabel("bytes", fontsize=FONT_SIZE)
    ax_b.legend(fontsize=FONT_SIZE, frameon=False, loc="upper left")
    return fig


# --------------------------------------------------------------------------------------
# The spectrum of a trained network
# --------------------------------------------------------------------------------------
def trained_spectrum(hidden=12, steps=150, lr=1e-2, n_samples=300, seed=0):
    r"""Every Hessian eigenvalue of a 64-``hidden``-10 tanh MLP on digits, at init and trained.

    The loss is the mean cross-entropy on the first ``n_samples`` training images, in
    float64. Training: full-batch Adam (:class:`curvlib.optim.Adam`, ``lr``) for ``steps``
    steps through :func:`curvlib.train.train`. The dense Hessian
    (:func:`curvlib.curvature.hessian`) is diagonalised with ``torch.linalg.eigvalsh`` before
    and after training.

    Returns ``eigenvalues`` (trained) and ``eigenvalues_init`` (ascending numpy arrays),
    the trained ``model``, ``n_params``, ``loss_init``, ``loss``, ``train_accuracy``, ``test_accuracy`` (on the
    whole test split), ``n_samples`` and ``constant_inputs``, the number of input pixels that
    are constant over the samples: each gives ``hidden`` exactly flat directions (the weights
    from that pixel never change the output).
    """
    import torch
    from curvlib import curvature, data, models, optim, train
    steps = check_int("steps", steps, minimum=0)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    hidden = check_int("hidden", hidden, minimum=1)
    lr = check_positive("lr", lr)
    split = data.digits(dtype="float64")
    X, y = split.X_train[:n_samples], split.y_train[:n_samples]
    loss_fn = torch.nn.functional.cross_entropy
    with single_thread():
        model = models.mlp([64, hidden, 10], seed=seed, dtype="float64")
        f, w0 = curvature.flat_loss(model, loss_fn, X, y)
        eig_init = torch.linalg.eigvalsh(curvature.hessian(f, w0)).numpy()
        train.train(model, optim.Adam(model.parameters(), lr=lr), (X, y), steps=steps, seed=seed)
        f, w = curvature.flat_loss(model, loss_fn, X, y)
        eig = torch.linalg.eigvalsh(curvature.hessian(f, w)).numpy()
        with torch.no_grad():
            def accuracy(A, b):
                return float((model(A).argmax(1) == b).double().mean())
            return dict(eigenvalues=eig, eigenvalues_init=eig_init, n_params=w.numel(), model=model,
                        loss_init=float(f(w0)), loss=float(f(w)), train_accuracy=accuracy(X, y),
                        test_accuracy=accuracy(split.X_test, split.y_test), n_samples=len(X),
                        constant_inputs=int(((X.max(0).values - X.min(0).values) == 0).sum()))


def spectrum_summary(eigenvalues, *, zero_tol=1e-3, neg_tol=1e-6, outlier_fraction=0.1):
    r"""Counts that describe a Hessian spectrum, robust to rounding.

    With :math:`\lambda_{\max}` the largest eigenvalue:

    * ``outliers``: eigenvalues above ``outlier_fraction`` :math:`\cdot\lambda_{\max}`;
    * ``near_zero``: :math:`|\lambda| \le` ``zero_tol`` :math:`\cdot\lambda_{\max}` (the bulk);
    * ``negative``: :math:`\lambda < -` ``neg_tol`` :math:`\cdot\lambda_{\max}` -- clearly
      negative, not rounding noise around zero;
    * ``lambda_max``, ``lambda_min`` and ``neg_ratio`` :math:`= |\lambda_{\min}|/\lambda_{\max}`;
    * ``top_share``: the share of the positive eigenvalues' sum held by the largest 1%;
    * ``median_ratio``: the median :math:`|\lambda|` over :math:`\lambda_{\max}`.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=float).ravel())
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be a non-empty array of finite numbers")
    top = lam[-1]
    if top <= 0:
        raise ValueError(f"the largest eigenvalue must be positive, got {top}")
    return dict(n=lam.size, lambda_max=float(top), lambda_min=float(lam[0]),
                outliers=int(np.sum(lam > outlier_fraction * top)),
                near_zero=int(np.sum(np.abs(lam) <= zero_tol * top)),
                negative=int(np.sum(lam < -neg_tol * top)),
                neg_ratio=float(max(-lam[0], 0.0) / top),
                top_share=float(lam[-max(1, lam.size // 100):].sum() / lam[lam > 0].sum()),
                median_ratio=float(np.median(np.abs(lam)) / top))


def kappa_by_cutoff(eigenvalues, relative_cutoffs=(1e-2, 1e-4, 1e-6, 1e-8)):
    r"""The "condition number" over the eigenvalues above each cut-off :math:`c\,\lambda_{\max}`.

    Uses :func:`curvlib.spectrum.condition_number` with ``cutoff`` :math:`= c\,\lambda_{\max}`.
    By construction the answer is at most :math:`1/c`: the number mostly reports the
    cut-off one chose. Returns a list of ``(c, kappa, kept)`` with ``kept`` the number of
    eigenvalues above the cut-off.
    """
    from curvlib import curvature
    lam = np.asarray(eigenvalues, dtype=float)
    top = float(lam.max())
    out = []
    for c in relative_cutoffs:
        c = check_positive("relative_cutoffs", c)
        out.append((c, curvature.condition_number(lam, cutoff=c * top), int(np.sum(lam > c * top))))
    return out


def _power_of_ten(x):
    """``10⁻³`` for 1e-3 (a power of ten in plain Unicode, no mathtext)."""
    return power_of_ten(round(math.log10(x)))


def _tick_label(v):
    return "0" if v == 0 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def plot_spectrum(eigenvalues, ax=None, *, zero_tol=1e-3, neg_tol=1e-6, title=None):
    """Two panels: every eigenvalue in ascending order and a histogram, both on a
    symmetric-log scale, coloured by class: red for clearly negative eigenvalues (below
    ``-neg_tol`` times the largest), grey for the bulk near zero (within ``zero_tol`` times the
    largest; the shaded band), blue for the positive rest. :func:`spectrum_legend` adds the
    legend."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator
    lam = np.sort(np.asarray(eigenvalues, dtype=float))
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(7.2, 3.4), layout="constrained")
    top = lam[-1]
    thresh = zero_tol * top
    a0, a1 = ax
    negative = lam < -neg_tol * top
    classes = {f"negative: λ < −{_power_of_ten(neg_tol)} λmax": (negative, "tab:red"),
               f"near zero: |λ| ≤ {_power_of_ten(zero_tol)} λmax": (
                   (np.abs(lam) <= thresh) & ~negative, "0.5"),
               "positive": (lam > thresh, "tab:blue")}
    edges = np.concatenate([-np.logspace(np.log10(max(-lam[0], thresh)), np.log10(thresh), 15)[:-1],
                            np.linspace(-thresh, thresh, 5),
                            np.logspace(np.log10(thresh), np.log10(top), 25)[1:]])
    idx = np.arange(1, lam.size + 1)
    for label, (mask, color) in classes.items():
        a0.scatter(idx[mask], lam[mask], s=7, color=color, label=label)
        if mask.any():
            a1.hist(lam[mask], bins=np.unique(edges), color=color)
    a0.axhspan(-thresh, thresh, color="0.9", zorder=0)
    a0.set_yscale("symlog", linthresh=thresh)
    a1.set_xscale("symlog", linthresh=thresh)
    a1.set_yscale("log")
    a1.yaxis.set_major_locator(LogLocator(numticks=4))
    a1.yaxis.set_minor_formatter(NullFormatter())
    hi = 10.0 ** math.floor(math.log10(top))
    low = -(10.0 ** math.floor(math.log10(-lam[0]))) if -lam[0] > thresh else None
    for axis, ticks in ((a0.yaxis, [low, -thresh, 0.0, thresh, hi]), (a1.xaxis, [low, 0.0, hi])):
        axis.set_major_locator(FixedLocator(sorted(t for t in set(ticks) if t is not None)))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(lambda v, _: _tick_label(v)))
    a0.set_xlabel("index (ascending)", fontsize=FONT_SIZE)
    a0.set_ylabel("eigenvalue", fontsize=FONT_SIZE)
    a0.set_title(title or "every eigenvalue", fontsize=FONT_SIZE)
    a1.set_xlabel("eigenvalue", fontsize=FONT_SIZE)
    a1.set_ylabel("count", fontsize=FONT_SIZE)
    a1.set_title("histogram", fontsize=FONT_SIZE)
    for a in (a0, a1):
        a.tick_params(labelsize=FONT_SIZE)
    return ax


def spectrum_legend(fig, ax, **kw):
    """One legend for the eigenvalue classes of :func:`plot_spectrum`, below the figure."""
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=FONT_SIZE,
                      frameon=False, markerscale=2, **kw)


def logistic_condition_number(l2=1e-3):
    r""":math:`\kappa` of the (convex) logistic-regression Hessian at its minimiser, breast cancer.

    A convex model's Hessian is positive (semi)definite, so :math:`\kappa` is defined when
    it is positive definite: a contrast to the network above. ``l2 > 0`` adds
    :math:`\tfrac{l2}{2}\|w\|^2`; it is needed, because the training split is linearly
    separable and the unregularised loss has no minimiser (its weights grow without bound).
    The problem and its minimiser (float64 Newton iterations from zero) are
    :meth:`curvlib.landscapes.LogisticRegression.breast_cancer`.
    """
    prob = LogisticRegression.breast_cancer(check_positive("l2", l2))
    lam = np.linalg.eigvalsh(prob.hess(prob.minimum))
    return dict(kappa=float(lam[-1] / lam[0]), lambda_max=float(lam[-1]), lambda_min=float(lam[0]),
                weight_norm=float(np.linalg.norm(prob.minimum)))


# --------------------------------------------------------------------------------------
# Curvature without the matrix: Hessian-free Newton-CG against L-BFGS
# --------------------------------------------------------------------------------------
#: Martens' Levenberg-Marquardt rule: the damping is multiplied by this after a poor step
#: (reduction ratio below 1/4) and divided by it after a good one (above 3/4).
HF_DAMPING_FACTOR = 1.5


def conjugate_gradient(matvec, b, x, max_products, tol=1e-10):
    r"""Solve :math:`Ax = b` by conjugate gradients from ``x``, using only products :math:`Av`.

    Hestenes & Stiefel (1952), "Methods of conjugate gradients for solving linear systems",
    J. Res. Natl. Bur. Stand. 49(6):409-436. Stops after ``max_products`` products, when
    :math:`\|r\| \le` ``tol`` :math:`\|b\|`, or on a direction of non-positive curvature
    :math:`p^\top A p \le 0` (then the iterate so far is kept, as in Nocedal & Wright's
    Newton-CG, Alg. 7.1). Returns ``(x, r, products)`` with :math:`r = b - Ax` the residual.
    The reference for the chapter's cell, which writes the same loop out.
    """
    nonzero = bool((x != 0).any())
    r = b - matvec(x) if nonzero else b.clone()
    products = int(nonzero)
    p, rr = r.clone(), r @ r
    while products < max_products:
        Ap = matvec(p)
        products += 1
        pAp = p @ Ap
        if pAp <= 0:
            break
        alpha = rr / pAp
        x, r = x + alpha * p, r - alpha * Ap
        rr, rr_old = r @ r, rr
        if rr.sqrt() <= tol * b.norm():
            break
        p = r + (rr / rr_old) * p
    return x, r, products


def hvp(f, w, v):
    r""":math:`H(w)\,v` by differentiating :math:`\nabla f(w)^\top v` once more (Pearlmutter, 1994).

    The reference for the chapter's cell; equal to :func:`curvlib.curvature.hvp`.
    """
    import torch
    with torch.enable_grad():
        w = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(w), w, create_graph=True)
        return torch.autograd.grad(g @ v, w)[0]


def hessian_free_step(f, w, damping, cg_products, d_prev):
    r"""One Hessian-free Newton step (Martens, 2010, ICML, "Deep learning via Hessian-free
    optimization"), with the exact Hessian.

    Conjugate gradients (:func:`conjugate_gradient`) on :math:`(H + \lambda I)d = -\nabla f`
    with at most ``cg_products`` Hessian-vector products (the gradient's graph is built once,
    then each product is one more backward pass, as in :func:`curvlib.curvature.hvp_operator`),
    started from :math:`0.95\,d_{\text{prev}}`. The step is taken if it lowers :math:`f`. The
    damping :math:`\lambda` follows Martens' Levenberg-Marquardt rule on the reduction ratio
    :math:`\rho` of the actual change in :math:`f` to the change the damped quadratic model
    predicts, :math:`q(d) = -\tfrac12 d^\top(b + r)` for a CG iterate :math:`d` with residual
    :math:`r` and :math:`b = -\nabla f`: multiplied by 1.5 if :math:`\rho < 1/4` (or the
    step failed), divided by 1.5 if :math:`\rho > 3/4`. Returns ``(w, damping, d,
    evaluations)``: the new point, damping and direction (zero after a rejected step) and the
    gradients, products and loss values spent (each counts 1). The reference for the
    chapter's cell.
    """
    import torch
    with torch.enable_grad():
        w = w.detach().requires_grad_(True)
        loss = f(w)
        (g,) = torch.autograd.grad(loss, w, create_graph=True)

        def damped_hessian(v):
            return torch.autograd.grad(g, w, v, retain_graph=True)[0] + damping * v

        b = -g.detach()
        d, r, products = conjugate_gradient(damped_hessian, b, 0.95 * d_prev, cg_products)
    predicted = -0.5 * float(d @ (b + r))
    with torch.no_grad():
        new_loss = float(f(w.detach() + d))
    rho = (new_loss - loss.item()) / predicted if predicted < 0 else math.nan
    factor = HF_DAMPING_FACTOR
    damping = damping / factor if rho > 0.75 else damping if rho >= 0.25 else damping * factor
    if new_loss < loss.item():
        return (w + d).detach(), damping, d, products + 2
    return w.detach(), damping, torch.zeros_like(d), products + 2


def _grad_inf_norm(f, w):
    import torch
    with torch.enable_grad():
        wg = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(wg), wg)
    return float(g.abs().max())


def hessian_free(f, w0, *, cg_products, tol, max_evals, damping=1.0, step=None):
    r"""Run :func:`hessian_free_step` (or ``step``, a function with its signature, such as the
    chapter's cell) from ``w0`` until :math:`\|\nabla f\|_\infty \le` ``tol`` or ``max_evals``
    evaluations are spent. Returns the history: a list of ``(evaluations, gradient norm)`` at
    every point the method stands on (the norm is the gradient its next step starts from, so
    recording it costs the method nothing extra)."""
    step = hessian_free_step if step is None else step
    w, d, spent = w0.detach().clone(), w0.new_zeros(w0.shape), 0
    history = [(1, _grad_inf_norm(f, w))]
    while history[-1][1] > tol and spent < max_evals:
        w, damping, d, evals = step(f, w, damping, cg_products, d)
        spent += evals
        history.append((spent + 1, _grad_inf_norm(f, w)))
    return history


def lbfgs_history(f, w0, *, history_size, tol, max_evals, max_line_search=25):
    r"""L-BFGS (:class:`curvlib.optim.LBFGS`, strong Wolfe line search) from ``w0`` until
    :math:`\|\nabla f\|_\infty \le` ``tol`` or ``max_evals`` gradient evaluations. One
    ``step`` is one iteration; a point evaluated twice (the optimizer re-evaluates its
    current point at the start of a step) is counted once. Returns the history as
    :func:`hessian_free` does."""
    import torch
    from curvlib import optim
    p = torch.nn.Parameter(w0.detach().clone())
    opt = optim.LBFGS([p], lr=1, max_iter=1, max_eval=max_line_search + 1,
                      history_size=history_size, line_search_fn="strong_wolfe",
                      tolerance_grad=0.0, tolerance_change=0.0)
    cache = {"n": 0}

    def closure():
        if "w" in cache and torch.equal(cache["w"], p.detach()):
            p.grad = cache["g"].clone()
            return cache["f"]
        opt.zero_grad()
        loss = f(p)
        loss.backward()
        cache.update(n=cache["n"] + 1, w=p.detach().clone(), g=p.grad.clone(), f=loss.detach())
        return loss

    closure()
    history = [(cache["n"], float(cache["g"].abs().max()))]
    while history[-1][1] > tol and cache["n"] < max_evals:
        before = cache["n"]
        opt.step(closure)
        closure()  # the gradient at the new point, already evaluated by the line search
        if cache["n"] == before:  # no new point: the line search made no progress
            break
        history.append((cache["n"], float(cache["g"].abs().max())))
    return history


def evaluations_to(history, tol):
    """The evaluations spent when the gradient norm first reached ``tol``, or ``None``."""
    return next((n for n, gnorm in history if gnorm <= tol), None)


def curvature_problem(seed=0, hidden=12, n_samples=300, l2=1e-3):
    r"""``(f, w0)``: the chapter's 64-``hidden``-10 tanh MLP on the first ``n_samples`` digits,
    in float64, mean cross-entropy plus :math:`\tfrac{l_2}{2}\|w\|^2` (so that a minimiser
    exists), from the initial weights drawn with ``seed``."""
    f0, w0 = mlp_hessian_problem(hidden, n_samples, seed)
    l2 = check_positive("l2", l2)
    return (lambda w: f0(w) + 0.5 * l2 * (w @ w)), w0.detach()


def _tune(run, grid, *, widen, cap, minimum=1, max_extensions=6):
    """The grid value with the fewest evaluations to the target, by the one-standard-error rule.

    ``run(v, cap)`` returns the evaluations one run with setting ``v`` spent (``None``: not
    within ``cap``), or a list of them, one per tuning seed. A setting's score is the mean
    :math:`\log` count over the seeds (infinite if any run failed). The choice is the
    *smallest* value whose score is within one standard error (over the seeds) of the best
    score: settings whose difference the seeds cannot resolve count as a tie, and the tie
    goes to the smaller one (less memory, less work per step). With one count per setting
    this is the value with the fewest evaluations (ties: the smaller), and each run is capped
    at the best count so far (a slower run cannot win). While the best score sits at the top
    of the grid, or the choice at its bottom, the grid is extended there with ``widen`` (not
    below ``minimum``, which is a natural end rather than an edge). Returns ``(best, counts,
    grid, at_edge)``: ``counts`` the geometric mean count per grid value (``None`` if a run
    failed), ``at_edge`` True only if the extensions ran out.
    """
    grid = sorted(set(grid))
    scores, errors = {}, {}
    for _ in range(max_extensions + 1):
        for v in grid:
            if v not in scores:
                done = [math.exp(c) for c in scores.values() if math.isfinite(c)]
                counts = run(v, min(done, default=cap))
                counts = counts if isinstance(counts, (list, tuple)) else [counts]
                if None in counts:
                    scores[v], errors[v] = math.inf, 0.0
                else:
                    logs = np.log(np.asarray(counts, dtype=float))
                    scores[v] = float(logs.mean())
                    errors[v] = float(logs.std(ddof=1) / math.sqrt(len(logs))) if len(logs) > 1 else 0.0
        values = [scores[v] for v in grid]
        i = int(np.argmin(values))
        if not math.isfinite(values[i]):
            raise ValueError(f"no setting of {grid} reached the target within {cap} evaluations")
        j = next(k for k, v in enumerate(grid) if scores[v] <= values[i] + errors[grid[i]])
        low, high = j == 0 and grid[0] > minimum, i == len(grid) - 1
        if not (low or high):
            break
        if low:
            grid.insert(0, max(minimum, widen(grid[0], -1)))
        else:
            grid.append(widen(grid[-1], +1))
    at_edge = (j == 0 and grid[0] > minimum) or i == len(grid) - 1
    return grid[j], [math.exp(scores[v]) if math.isfinite(scores[v]) else None for v in grid], grid, at_edge


def hf_vs_lbfgs(*, seeds=(0, 1, 2, 3, 4), tune_seeds=(100, 101, 102), tol=1e-5, max_evals=3000,
                lbfgs_grid=(2, 5, 10, 20, 50), hf_grid=(2, 5, 10, 20, 50), step=None,
                hidden=12, n_samples=300, l2=1e-3):
    r"""Hessian-free Newton-CG against L-BFGS on :func:`curvature_problem`, counted fairly.

    Both methods are scored by the evaluations (gradients, Hessian-vector products and loss
    values, one each) they spend until :math:`\|\nabla f\|_\infty \le` ``tol``. Each gets its
    hyperparameter that matters tuned on its grid, on the initial weights drawn with each of
    ``tune_seeds``, by the same rule (the fewest evaluations, mean log count
    over the tuning seeds, with settings within one standard error of the best counted as a
    tie that goes to the smaller; a grid is extended by a factor 2.5 at an end while the
    winner sits there): L-BFGS its history size :math:`m`, Hessian-free the most products per
    CG run. Then both run from the initial weights of ``seeds``.
    ``step`` replaces :func:`hessian_free_step` (the chapter passes its own cell).

    Returns a dict: ``n_params``, ``tuned`` (``{"L-BFGS": (m, counts, grid, at_edge),
    "Hessian-free": ...}``), ``histories`` (``{method: [history per seed]}``),
    ``evaluations`` (``{method: [count per seed]}``, ``None`` where the budget ran out), and
    ``hvp_share``, the fraction of Hessian-free's evaluations that were products.
    """
    def problem(seed):
        return curvature_problem(seed, hidden, n_samples, l2)

    tune_seeds = [check_int("tune_seeds", t, minimum=0) for t in tune_seeds]
    if not tune_seeds or set(tune_seeds) & set(seeds):
        raise ValueError(f"tune_seeds must be non-empty and apart from seeds, got {tune_seeds} and {seeds}")

    def run_lbfgs(m, cap, seed):
        f, w0 = problem(seed)
        return lbfgs_history(f, w0, history_size=m, tol=tol, max_evals=cap)

    def run_hf(k, cap, seed):
        f, w0 = problem(seed)
        return hessian_free(f, w0, cg_products=k, tol=tol, max_evals=cap, step=step)

    def counts(run, v):  # every tuning seed runs to the full budget: the scores are means
        return [evaluations_to(run(v, max_evals, t), tol) for t in tune_seeds]

    def widen(v, direction):
        return round(v * 2.5) if direction > 0 else max(1, round(v / 2.5))

    with single_thread():
        tuned = {
            "L-BFGS": _tune(lambda m, cap: counts(run_lbfgs, m), lbfgs_grid, widen=widen, cap=max_evals),
            "Hessian-free": _tune(lambda k, cap: counts(run_hf, k), hf_grid, widen=widen, cap=max_evals)}
        runs = {"L-BFGS": lambda s: run_lbfgs(tuned["L-BFGS"][0], max_evals, s),
                "Hessian-free": lambda s: run_hf(tuned["Hessian-free"][0], max_evals, s)}
        histories = {name: [run(s) for s in seeds] for name, run in runs.items()}
    f, w0 = problem(seeds[0])
    return {"n_params": int(w0.numel()), "tuned": tuned, "histories": histories,
            "evaluations": {k: [evaluations_to(h, tol) for h in hs] for k, hs in histories.items()},
            "seeds": tuple(seeds), "tune_seeds": tuple(tune_seeds), "tol": tol, "max_evals": max_evals}


def plot_hf_vs_lbfgs(result, ax=None, *, figsize=(7.2, 4.0)):
    """The gradient norm against the evaluations spent, one thin line per seed and method,
    on a linear evaluation axis; the dotted line is the target."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    colors = {"L-BFGS": "tab:blue", "Hessian-free": "tab:orange"}
    for name, histories in result["histories"].items():
        for h in histories:
            n, g = np.array(h, dtype=float).T
            ax.semilogy(n, g, color=colors[name], lw=1.3, alpha=0.85)
    ax.axhline(result["tol"], color="0.4", ls=":", lw=1.2)
    tuned = result["tuned"]
    ax.legend([Line2D([], [], color=c, lw=2) for c in colors.values()],
              [f"L-BFGS, m = {tuned['L-BFGS'][0]}",
               f"Hessian-free, ≤ {tuned['Hessian-free'][0]} products per CG run"],
              fontsize=FONT_SIZE, frameon=False)
    ax.set_xlabel("evaluations (gradients + Hessian-vector products + losses)", fontsize=FONT_SIZE)
    ax.set_ylabel("‖∇f‖∞", fontsize=FONT_SIZE)
    ax.set_xlim(0, None)
    ax.tick_params(labelsize=FONT_SIZE)
    return ax


# --------------------------------------------------------------------------------------
# Widget: bytes against hardware
# --------------------------------------------------------------------------------------
def memory_explorer(models=None):
    """Explorer: pick a model and a precision; see the Hessian's bytes against real machines.

    Every number is precomputed in the factory (integer arithmetic), so an update only draws
    a few bars on a log axis.
    """
    from curvlib.widgets import Explorer
    mem = _memory()
    names = _model_names(models)
    sizes = {name: mem.MODELS[name].n_params for name in names}
    machines = {name: hw.memory_bytes for name, hw in mem.HARDWARE.items()}
    largest = max(machines.values())
    table = {(m, d): dict(params=sizes[m] * mem.dtype_bytes(d),
                          adam=mem.optimizer_state_bytes("adam", sizes[m], d),
                          lbfgs=mem.optimizer_state_bytes("lbfgs", sizes[m], d, history_size=10),
                          symmetric=mem.hessian_bytes(sizes[m], d, True),
                          full=mem.hessian_bytes(sizes[m], d))
             for m in names for d in PRECISIONS}
    labels = {"params": "parameters", "adam": "Adam state (2n)", "lbfgs": "L-BFGS state (m=10)",
              "symmetric": "Hessian, one triangle", "full": "Hessian, full"}

    by_size = {}
    for name, b in machines.items():  # machines with equal memory share a line
        by_size.setdefault(b, []).append(name.split(" (")[0])
    lines = {b: (f"one {mem.format_bytes(b)} GPU" if all(x.startswith("NVIDIA") for x in n)
                 else " / ".join(n)) for b, n in by_size.items()}

    def render(fig, model, precision):
        ax = fig.subplots()
        fig.subplots_adjust(left=0.03, right=0.97, bottom=0.15, top=0.84)
        row = table[(model, precision)]
        y = np.arange(len(labels))
        ax.barh(y, [float(row[k]) for k in labels], color=["0.75", "0.75", "0.75", "tab:orange", "tab:red"])
        for i, k in enumerate(labels):
            ax.text(2e5, i, f"{labels[k]}: {mem.format_bytes(row[k])}", va="center",
                    fontsize=FONT_SIZE)
        ax.set_yticks([])
        ax.set_xscale("log")
        right = float(max(row["full"], largest)) * 30
        for (b, text), style in zip(sorted(lines.items()), (":", "-")):
            ax.axvline(float(b), color="k", ls=style, lw=1.2)
            inside = b * 1e3 < right
            ax.text(float(b) * (1.3 if inside else 1 / 1.3), len(labels) - 0.45, text,
                    fontsize=FONT_SIZE, va="bottom", ha="left" if inside else "right")
        ax.set_ylim(-0.6, len(labels) + 0.2)
        ax.set_xlim(1e5, right)
        plots.plain_log_ticks(ax, "x", numticks=30, every=3)
        ax.tick_params(labelsize=FONT_SIZE)
        ax.set_xlabel("bytes (log scale)", fontsize=FONT_SIZE)
        ax.set_title(f"{model}, {precision}: {sizes[model]:,} parameters", fontsize=FONT_SIZE)
        ratio = row["full"] / largest
        return (f"full Hessian {mem.format_bytes(row['full'])} = {ratio:.2g} x the memory of "
                f"{max(machines, key=machines.get)}")

    return Explorer(render, {"model": names, "precision": list(PRECISIONS)},
                    labels={"model": "model", "precision": "precision"},
                    initial={"model": names[0], "precision": "float32"},
                    figsize=(7.2, 3.8), dpi=100,
                    alt="Bar chart of the bytes of a model's exact Hessian against GPU and "
                        "supercomputer memory, on a log scale")


EXPLORERS = [memory_explorer]
