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
from curvlib.runs import single_thread

__all__ = ["PRECISIONS", "REFERENCE_MACHINE", "memory_rows", "memory_markdown",
           "check_500tb", "inversion_rows", "inversion_markdown", "check_gpt3", "walls",
           "mlp_hessian_problem", "measure_scaling", "loglog_slope", "plot_scaling",
           "plot_memory_landscape", "trained_spectrum", "spectrum_summary", "kappa_by_cutoff", "plot_spectrum",
           "logistic_condition_number", "memory_explorer"]

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
        _, ax = plt.subplots(figsize=(8, 4.6))
    n = np.logspace(3, 12, 50)
    for d, style in zip(PRECISIONS, (":", "-", "--")):
        ax.loglog(n, n ** 2 * mem.dtype_bytes(d), "k" + style, lw=1, label=f"full Hessian, {d}")
    for name in _model_names(models):
        m = mem.MODELS[name].n_params
        ax.loglog(m, float(mem.hessian_bytes(m, "float32")), "o", color="tab:red", ms=5)
        if name in labelled:
            ax.annotate(name, (m, float(mem.hessian_bytes(m, "float32"))), fontsize=8,
                        xytext=(6, -10), textcoords="offset points")
    by_size = {}
    for hw, spec in mem.HARDWARE.items():  # machines with equal memory share a line
        by_size.setdefault(spec.memory_bytes, []).append(hw)
    for (size, names), color in zip(sorted(by_size.items()), ("tab:blue", "tab:green", "tab:purple")):
        ax.axhline(float(size), color=color, lw=1.2)
        ax.text(2e3, float(size) * 2.5, f"{' / '.join(names)}: {mem.format_bytes(size)}",
                fontsize=7, color=color)
    ax.set(xlabel="parameters n", ylabel="bytes", xlim=(1e3, 1e12), ylim=(1e6, 1e25),
           title="the exact Hessian against real memory (dots: float32)")
    ax.legend(fontsize=8, loc="lower right")
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


def measure_scaling(hidden_sizes=(1, 2, 3, 4, 6, 8), n_samples=256, repeats=2, seed=0):
    r"""Time forming, eigendecomposing and inverting exact Hessians of growing MLPs.

    For each hidden width :math:`h` (:math:`n = 75h + 10` parameters): form :math:`H` with
    :func:`curvlib.curvature.hessian` (:math:`n` forward-over-reverse products, about
    :math:`O(n^2)` work for this model), eigendecompose it with ``torch.linalg.eigh`` and
    invert :math:`H + \delta I` (shifted to be safely invertible) with ``torch.linalg.inv``
    (both :math:`O(n^3)`). Reports the best of ``repeats`` wall times (seconds) and the
    measured bytes of :math:`H` (exactly :math:`8n^2`).

    Timings depend on the machine and its load: plot them, fit slopes, but don't quote them
    as exact numbers.
    """
    repeats = check_int("repeats", repeats, minimum=1)
    hidden_sizes = [check_int("hidden_sizes", h, minimum=1) for h in hidden_sizes]
    if len(hidden_sizes) < 2:
        raise ValueError(f"hidden_sizes needs at least two sizes to fit a slope, got {hidden_sizes}")
    out = {k: [] for k in ("n", "bytes", "form", "eigh", "inv")}
    import torch  # noqa: F401  (loaded first, so single_thread pins torch's threads too)
    with single_thread():
        _measure(hidden_sizes, n_samples, repeats, seed, out)
    return {k: np.asarray(v) for k, v in out.items()}


def _measure(hidden_sizes, n_samples, repeats, seed, out):
    import torch
    from curvlib import curvature
    for h in hidden_sizes:
        f, w = mlp_hessian_problem(h, n_samples, seed)
        best = {"form": math.inf, "eigh": math.inf, "inv": math.inf}
        for _ in range(repeats):
            t0 = time.perf_counter()
            H = curvature.hessian(f, w)
            t1 = time.perf_counter()
            torch.linalg.eigh(H)
            t2 = time.perf_counter()
            torch.linalg.inv(H + 1e-3 * torch.eye(len(w), dtype=H.dtype))
            t3 = time.perf_counter()
            for k, v in zip(("form", "eigh", "inv"), (t1 - t0, t2 - t1, t3 - t2)):
                best[k] = min(best[k], v)
        out["n"].append(w.numel())
        out["bytes"].append(H.numel() * H.element_size())
        for k in best:
            out[k].append(best[k])


def loglog_slope(n, values, last=None):
    r"""Least-squares slope :math:`p` of :math:`\log v = p \log n + c` (over the ``last`` points)."""
    n, values = np.asarray(n, dtype=float), np.asarray(values, dtype=float)
    if n.shape != values.shape or n.ndim != 1 or len(n) < 2:
        raise ValueError(f"n and values must be 1-D of equal length >= 2, got {n.shape} and {values.shape}")
    if np.any(n <= 0) or np.any(values <= 0):
        raise ValueError("n and values must be positive for a log-log fit")
    if last is not None:
        last = check_int("last", last, minimum=2)
        n, values = n[-last:], values[-last:]
    return float(np.polyfit(np.log(n), np.log(values), 1)[0])


def plot_scaling(result, ax=None, fit_last=4):
    """Log-log plot of the measured times and bytes with fitted slopes and n^2, n^3 guides."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_t, ax_b = ax
    n = result["n"]
    labels = {"form": "form H (n HVPs)", "eigh": "eigendecompose (eigh)", "inv": "invert"}
    for key, marker in zip(labels, "osd"):
        p = loglog_slope(n, result[key], last=fit_last)
        ax_t.loglog(n, result[key], marker=marker, label=f"{labels[key]}: slope {p:.1f}")
    for power, style in ((2, ":"), (3, "--")):
        ref = result["eigh"][-1] * (n / n[-1]) ** power
        ax_t.loglog(n, ref, "k" + style, lw=1, label=f"$n^{power}$ guide")
    ax_t.set(xlabel="parameters n", ylabel="seconds (best of repeats, this machine)",
             title="time (varies with the machine)")
    ax_t.legend(fontsize=8)
    ax_b.loglog(n, result["bytes"], "o-", label=f"bytes of H: slope {loglog_slope(n, result['bytes']):.1f}")
    ax_b.set(xlabel="parameters n", ylabel="bytes", title="memory of the float64 Hessian")
    ax_b.legend(fontsize=8)
    return ax


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
    ``n_params``, ``loss_init``, ``loss``, ``train_accuracy``, ``test_accuracy`` (on the
    whole test split), ``n_samples`` and ``constant_inputs``, the number of input pixels that
    are constant over the samples: each gives ``hidden`` exactly flat directions (the weights
    from that pixel never change the output).
    """
    import torch
    from curvlib import curvature, data, models, optim, train
    from curvlib.train import accuracy
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
            return dict(eigenvalues=eig, eigenvalues_init=eig_init, n_params=w.numel(),
                        loss_init=float(f(w0)), loss=float(f(w)),
                        train_accuracy=accuracy(model(X), y),
                        test_accuracy=accuracy(model(split.X_test), split.y_test),
                        n_samples=len(X),
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


def plot_spectrum(eigenvalues, ax=None, *, zero_tol=1e-3, title=None):
    """Two panels: sorted eigenvalues (symlog) and a histogram on a symmetric-log axis."""
    import matplotlib.pyplot as plt
    lam = np.sort(np.asarray(eigenvalues, dtype=float))
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    top = lam[-1]
    thresh = zero_tol * top
    a0, a1 = ax
    idx = np.arange(1, lam.size + 1)
    colors = np.where(lam < -1e-6 * top, "tab:red", np.where(np.abs(lam) <= thresh, "0.5", "tab:blue"))
    a0.scatter(idx, lam, s=6, c=colors)
    a0.set_yscale("symlog", linthresh=thresh)
    a0.axhspan(-thresh, thresh, color="0.9", zorder=0)
    a0.set(xlabel="index (ascending)", ylabel="eigenvalue (symlog)",
           title=title or "every eigenvalue of the Hessian")
    edges = np.concatenate([-np.logspace(np.log10(max(-lam[0], thresh)), np.log10(thresh), 15)[:-1],
                            np.linspace(-thresh, thresh, 5),
                            np.logspace(np.log10(thresh), np.log10(top), 25)[1:]])
    a1.hist(lam, bins=np.unique(edges), color="tab:blue")
    a1.set_xscale("symlog", linthresh=thresh)
    a1.set_yscale("log")
    a1.set(xlabel="eigenvalue (symlog)", ylabel="count", title="histogram (symmetric log axis)")
    return ax


def logistic_condition_number(l2=1e-3):
    r""":math:`\kappa` of the (convex) logistic-regression Hessian at its minimiser, breast cancer.

    A convex model's Hessian is positive (semi)definite, so :math:`\kappa` is defined when
    it is positive definite: a contrast to the network above. ``l2 > 0`` adds
    :math:`\tfrac{l2}{2}\|w\|^2`; it is needed, because the training split is linearly
    separable and the unregularised loss has no minimiser (its weights grow without bound).
    The problem and its minimiser: :class:`curvlib.landscapes.LogisticRegression`.
    """
    from curvlib.landscapes import LogisticRegression
    problem = LogisticRegression.breast_cancer(check_positive("l2", l2))
    lam = np.linalg.eigvalsh(problem.hess(problem.minimum))
    return dict(kappa=float(lam[-1] / lam[0]), lambda_max=float(lam[-1]), lambda_min=float(lam[0]),
                weight_norm=float(np.linalg.norm(problem.minimum)))


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

    def render(fig, model, precision):
        ax = fig.subplots()
        row = table[(model, precision)]
        y = np.arange(len(labels))
        ax.barh(y, [float(row[k]) for k in labels], color=["0.75", "0.75", "0.75", "tab:orange", "tab:red"])
        for i, k in enumerate(labels):
            ax.text(2e5, i, f"{labels[k]}: {mem.format_bytes(row[k])}", va="center", fontsize=8)
        ax.set_yticks([])
        ax.set_xscale("log")
        for (hw, b), style in zip(machines.items(), ("--", ":", "-")):
            ax.axvline(float(b), color="k", ls=style, lw=1, label=f"{hw}: {mem.format_bytes(b)}")
        ax.set_xlim(1e5, float(max(row["full"], largest)) * 30)
        plots.plain_log_ticks(ax, "x", numticks=30, every=3)
        ax.set_xlabel("bytes (log scale)")
        ax.set_title(f"{model}, {precision}: {sizes[model]:,} parameters", fontsize=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
        ratio = row["full"] / largest
        return (f"full Hessian {mem.format_bytes(row['full'])} = {ratio:.2g} x the memory of "
                f"{max(machines, key=machines.get)}")

    return Explorer(render, {"model": names, "precision": list(PRECISIONS)},
                    labels={"model": "model", "precision": "precision"},
                    initial={"model": names[0], "precision": "float32"},
                    alt="Bar chart of the bytes of a model's exact Hessian against GPU and "
                        "supercomputer memory, on a log scale")

