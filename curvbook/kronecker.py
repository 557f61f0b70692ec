r"""Chapter 6: K-FAC and Shampoo -- the Kronecker idea, what it buys and what it costs.

A layer :math:`s = W\bar a` with :math:`W\in\mathbb{R}^{m\times n}` has a curvature block of
:math:`(mn)^2` numbers. K-FAC (Martens & Grosse, 2015, "Optimizing neural networks with
Kronecker-factored approximate curvature", ICML) replaces its Fisher block by a Kronecker
product of two small matrices, and Shampoo (Gupta, Koren & Singer, 2018, "Shampoo:
Preconditioned stochastic tensor optimization", ICML) builds one preconditioner per side of the
gradient matrix:

.. math::
    F = \mathbb{E}\big[(\delta\delta^\top)\otimes(\bar a\bar a^\top)\big]
      \approx \underbrace{\mathbb{E}[\delta\delta^\top]}_{G\ (m\times m)}\otimes
              \underbrace{\mathbb{E}[\bar a\bar a^\top]}_{A\ (n\times n)},
    \qquad (G\otimes A)^{-1}\operatorname{vec}(V) = \operatorname{vec}(G^{-1} V A^{-1}),

.. math::
    \text{Shampoo:}\quad L_t = \textstyle\sum_{s\le t} G_s G_s^\top,\;
    R_t = \sum_{s\le t} G_s^\top G_s,\qquad
    W \leftarrow W - \eta\, L_t^{-1/4}\, G_t\, R_t^{-1/4}.

This module holds the chapter's machinery, built on :mod:`curvlib.second_order`,
:mod:`curvlib.compare` (the book's fair-comparison protocol) and :mod:`curvlib.memory`:

* :func:`kron_identity_check` and :func:`kfac_factor_error` -- the identity that makes K-FAC
  cheap, and how much of a real Fisher block the Kronecker product keeps;
* :func:`compare_methods` -- SGD+momentum, Adam, K-FAC and Shampoo on the digits MLP, each
  learning rate tuned on one grid, then every method trained from the same seeds with its
  wall time recorded (:func:`curvlib.compare.tune_and_compare`); :func:`plot_comparison` draws loss against
  steps and against wall time with bands over seeds;
* :func:`layer_state_bytes`, :func:`resnet50_state_bytes`, :func:`step_flops` -- memory per
  layer and a deterministic cost proxy (floating-point operations per step);
* :func:`adam_success_curve` -- what a "success rate" of default Adam depends on;
* :data:`ALGOPERF` -- the published results of the AlgoPerf competition;
* :func:`plot_selection_chart` -- the lecture's selection strategy as a decision chart;
* :func:`cost_explorer` -- the widget: layer sizes in, memory and cost of each method out.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, memory, optim
from curvlib._checks import check_choice, check_int, check_positive
from curvlib.models import mlp
from curvlib.train import StackedModels, accuracy, minibatches
from curvlib.second_order import kfac_bytes, kfac_layers, shampoo_bytes

__all__ = ["METHODS", "LR_GRID", "DIGITS_SIZES", "kron_identity_check", "kfac_factor_error",
           "compare_methods", "plot_comparison", "time_grid_losses",
           "layer_state_bytes", "resnet50_state_bytes", "step_flops",
           "adam_success_curve", "ALGOPERF", "plot_algoperf", "plot_selection_chart",
           "cost_explorer"]

#: The digits network of the chapter, 64 pixels -> 32 tanh units -> 10 classes.
DIGITS_SIZES = (64, 32, 10)
#: The one learning-rate grid every method is tuned on.
LR_GRID = compare.lr_grid(0.01, 10.0)
#: name -> ``(model, lr) -> optimizer``. Library defaults throughout; K-FAC refreshes its
#: eigendecompositions every 10 steps (its default) and Shampoo its inverse roots every 10
#: steps too, so the two pay the same amortised price for their factorisations.
METHODS = {"SGD+momentum": optim.factory("momentum"), "Adam": optim.factory("adam"),
           "K-FAC": optim.factory("kfac"), "Shampoo": optim.factory("shampoo", update_interval=10)}


# --------------------------------------------------------------------------------------
# The Kronecker idea, checked
# --------------------------------------------------------------------------------------
def _spd(n, gen, dtype=torch.float64):
    M = torch.randn(n, n, generator=gen, dtype=dtype)
    return M @ M.T / n + 0.1 * torch.eye(n, dtype=dtype)


def kron_identity_check(m=6, n=5, seed=0):
    r"""Solve :math:`(G\otimes A)x = \operatorname{vec}(V)` both ways and compare.

    With row-major :math:`\operatorname{vec}` (torch's ``reshape``),
    :math:`(G\otimes A)\operatorname{vec}(X) = \operatorname{vec}(G X A^\top)`, so for symmetric
    invertible :math:`G` (:math:`m\times m`) and :math:`A` (:math:`n\times n`) the solution is
    :math:`\operatorname{vec}(G^{-1}VA^{-1})`: two small solves instead of one of size
    :math:`mn`. Returns the relative difference of the two solutions and the leading-order
    flop counts of a Cholesky solve each way (:func:`curvlib.memory.inversion_flops`).
    """
    m, n = check_int("m", m, minimum=1), check_int("n", n, minimum=1)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    G, A = _spd(m, gen), _spd(n, gen)
    V = torch.randn(m, n, generator=gen, dtype=torch.float64)
    explicit = torch.linalg.solve(torch.kron(G, A), V.reshape(-1))
    factored = torch.linalg.solve(G, torch.linalg.solve(A, V.T).T).reshape(-1)
    rel = float(torch.linalg.vector_norm(explicit - factored) / torch.linalg.vector_norm(explicit))
    return {"relative_difference": rel,
            "flops_explicit": memory.inversion_flops(m * n),
            "flops_factored": memory.inversion_flops(m) + memory.inversion_flops(n)}


def _cosine(a, b):
    return float(a @ b / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))


def kfac_factor_error(model, X, y, layer=-1, *, fisher="empirical", damping=1e-3):
    r"""How much of a layer's Fisher block the K-FAC product :math:`G\otimes A` keeps.

    For layer ``layer`` (an index into :func:`curvlib.second_order.kfac_layers`, a
    ``Linear``) with input :math:`\bar a_i` (a 1 appended for the bias) and output gradient
    :math:`\delta_i` of example :math:`i`'s loss, the per-example weight gradient is
    :math:`\delta_i\bar a_i^\top`, so the Fisher block is
    :math:`F = \frac1N\sum_i \mathbb{E}[\delta_i\delta_i^\top]\otimes(\bar a_i\bar a_i^\top)`,
    and K-FAC swaps the mean of the products for the product of the means,
    :math:`G\otimes A = \big(\frac1N\sum_i\mathbb{E}[\delta_i\delta_i^\top]\big)\otimes
    \big(\frac1N\sum_i\bar a_i\bar a_i^\top\big)`. ``fisher="empirical"`` takes
    :math:`\delta_i` at the data's labels (what :class:`curvlib.second_order.KFAC` uses);
    ``"true"`` averages over labels drawn from the model, for which
    :math:`\mathbb{E}[\delta\delta^\top] = \operatorname{diag}(p)-pp^\top` exactly (Martens &
    Grosse, 2015, use this one).

    Returns the relative Frobenius errors of :math:`G\otimes A` and of the diagonal of
    :math:`F` (all a diagonal method can hold), the number of entries each stores, and the
    cosine between the damped natural-gradient step :math:`(F+\lambda I)^{-1}g` of the layer's
    mean gradient :math:`g` and the steps with :math:`G\otimes A`, with :math:`\operatorname{diag}F`
    and with no preconditioner (:math:`g` itself); ``damping`` is :math:`\lambda`.
    """
    check_choice("fisher", fisher, {"empirical", "true"})
    damping = check_positive("damping", damping)
    layers = kfac_layers(model)
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer")
    if not isinstance(layer, int) or not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer must be an index into the model's {len(layers)} layers, "
                         f"got {layer!r}")
    module = layers[layer]
    if not isinstance(module, torch.nn.Linear):
        raise TypeError("kfac_factor_error handles Linear layers")
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.update(a=i[0].detach(), s=o))
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            out = model(X)
            (delta,) = torch.autograd.grad(F.cross_entropy(out, y, reduction="sum"), seen["s"])
    finally:
        handle.remove()
        model.train(was_training)
    a = seen["a"].double()
    if module.bias is not None:
        a = torch.cat([a, a.new_ones(len(a), 1)], 1)
    delta = delta.double()
    N, da, dg = len(a), a.shape[1], delta.shape[1]
    g = (delta[:, :, None] * a[:, None, :]).mean(0).reshape(-1)    # the layer's mean gradient
    if fisher == "empirical":
        U = (delta[:, :, None] * a[:, None, :]).reshape(N, -1)     # per-example vec(delta a^T)
        full, G = U.T @ U / N, delta.T @ delta / N
    else:
        p = torch.softmax(out.detach().double(), 1)
        Hz = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        full = torch.einsum("nkl,nij->kilj", Hz, a[:, :, None] * a[:, None, :]).reshape(
            dg * da, dg * da) / N
        G = Hz.mean(0)
    kron = torch.kron(G, a.T @ a / N)
    norm = torch.linalg.matrix_norm(full)
    eye = torch.eye(len(full), dtype=full.dtype)
    exact = torch.linalg.solve(full + damping * eye, g)
    return {"shape": (module.out_features, da), "fisher": fisher,
            "kron_error": float(torch.linalg.matrix_norm(full - kron) / norm),
            "diagonal_error": float(torch.linalg.matrix_norm(full - torch.diag(full.diagonal()))
                                    / norm),
            "numbers_full": full.numel(), "numbers_kron": dg * dg + da * da,
            "numbers_diagonal": len(full),
            "cosine_kron": _cosine(exact, torch.linalg.solve(kron + damping * eye, g)),
            "cosine_diagonal": _cosine(exact, g / (full.diagonal() + damping)),
            "cosine_gradient": _cosine(exact, g)}


# --------------------------------------------------------------------------------------
# The comparison: tune on one grid, report over seeds, record wall time
# --------------------------------------------------------------------------------------
def compare_methods(data, *, methods=None, lr_grid=LR_GRID, seeds=compare.DEFAULT_SEEDS,
                    tune_seeds=(100,), steps=40, batch_size=256, sizes=DIGITS_SIZES):
    r"""Train an MLP with every method at its tuned learning rate from every seed.

    The protocol of :func:`curvlib.compare.tune_and_compare`: each method's learning rate is
    chosen on the same ``lr_grid`` by the full training loss after ``steps`` minibatch steps
    from the tuning seeds (separate from the reporting seeds; SGD and Adam take compare's
    vectorised path, K-FAC and Shampoo its reference loop); then every method is trained from
    each of ``seeds`` (at least five) through :func:`curvlib.train.train`, which records the
    loss and the wall time of every step (``timed=True``). The seed fixes the initial weights
    and the minibatch order, so all methods see the same data in the same order.

    ``data`` is a :class:`curvlib.data.Split`; ``methods`` maps names to
    ``(model, lr) -> optimizer`` (default :data:`METHODS`). Returns a
    :class:`curvlib.compare.Comparison`; ``runs[name].time`` holds the wall-clock seconds
    after each step.
    """
    methods = dict(METHODS if methods is None else methods)
    if not methods:
        raise ValueError("methods must not be empty")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return compare.tune_and_compare(methods, lr_grid, lambda s: mlp(list(sizes), "tanh", seed=s),
                                    data, steps=steps, seeds=seeds, batch_size=batch_size,
                                    select="train_loss", tune_seeds=tune_seeds, timed=True)


def time_grid_losses(loss, times, points=60):
    """Each seed's loss curve resampled on a common wall-time grid.

    ``loss`` and ``times`` are ``(seeds, steps)``; the grid runs from the first recorded time
    to the *shortest* run's last time (so every seed covers it), and each seed's loss is
    carried forward from its last completed step (a step-function interpolation: a loss is
    known only once its step has finished). Returns ``(grid, resampled)``.
    """
    loss, times = np.asarray(loss, float), np.asarray(times, float)
    if loss.shape != times.shape or loss.ndim != 2:
        raise ValueError("loss and times must have the same (seeds, steps) shape")
    points = check_int("points", points, minimum=2)
    ends = np.nanmax(times, axis=1)
    grid = np.linspace(np.nanmin(times[:, 0]), ends.min(), points)
    out = np.empty((len(loss), points))
    for i, (l, t) in enumerate(zip(loss, times)):
        ok = np.isfinite(l) & np.isfinite(t)
        idx = np.searchsorted(t[ok], grid, side="right") - 1
        out[i] = l[ok][np.clip(idx, 0, None)]
    return grid, out


def plot_comparison(result, flops_per_step=None, axes=None):
    """Minibatch loss against steps and against wall time (mean and a band of one standard
    deviation of the log loss over seeds); with ``flops_per_step`` (a dict method ->
    :func:`step_flops`) also against the cumulative floating-point operations, the
    deterministic cost proxy. Wall time varies from run to run and machine to machine, so it
    is shown here and never quoted as a number. Returns the axes."""
    import matplotlib.pyplot as plt
    from curvlib import plots

    panels = 2 if flops_per_step is None else 3
    if flops_per_step is not None:
        missing = set(result.runs) - set(flops_per_step)
        if missing:
            raise ValueError(f"flops_per_step lacks {sorted(missing)}")
    if axes is None:
        _, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), layout="constrained")
    steps = np.arange(1, result.steps + 1)
    for i, (name, r) in enumerate(result.runs.items()):
        color = f"C{i}"
        label = f"{name} (lr={r.lr:g})"
        plots.mean_band(steps, r.loss, ax=axes[0], log_y=True, color=color, label=label)
        grid, res = time_grid_losses(r.loss, r.time)
        plots.mean_band(grid * 1e3, res, ax=axes[1], log_y=True, color=color, label=label,
                        xlabel="wall time (ms)")
        if panels == 3:
            plots.mean_band(steps * flops_per_step[name] / 1e6, r.loss, ax=axes[2], log_y=True,
                            color=color, label=label, xlabel="cumulative Mflop (cost proxy)")
    for ax in axes:
        plots.plain_log_ticks(ax, "y")
    n = len(next(iter(result.runs.values())).seeds)
    axes[0].set(xlabel="step", ylabel="minibatch training loss", title=f"against steps ({n} seeds)")
    axes[1].set(ylabel="minibatch training loss", title="against wall time (this run)")
    if panels == 3:
        axes[2].set(ylabel="minibatch training loss", title="against flops (counted)")
    return axes


# --------------------------------------------------------------------------------------
# Memory per layer and a deterministic cost proxy
# --------------------------------------------------------------------------------------
def _check_pairs(layers):
    try:
        pairs = [(check_int("layers entry", int(a) if isinstance(a, np.integer) else a, minimum=1),
                  check_int("layers entry", int(b) if isinstance(b, np.integer) else b, minimum=1))
                 for a, b in layers]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and "must be" in str(exc):
            raise
        raise TypeError(f"layers must be a list of (in_features, out_features) pairs, "
                        f"got {layers!r}") from None
    if not pairs:
        raise ValueError("layers must not be empty")
    return pairs


def layer_state_bytes(layers, *, bias=True, dtype="float32", max_preconditioner_dim=None):
    r"""Optimizer state, layer by layer, for ``nn.Linear`` layers ``[(n_in, n_out), ...]``.

    One row per layer with its parameter count and the bytes each method keeps between
    steps: SGD with momentum and Adam (:func:`curvlib.memory.optimizer_state_bytes`: one and
    two buffers per parameter), K-FAC (:func:`curvlib.second_order.kfac_bytes`: both factors
    with their eigenvectors and eigenvalues, plus momentum) and Shampoo
    (:func:`curvlib.second_order.shampoo_bytes`: one statistic and one inverse root per side,
    plus the AdaGrad grafting buffer), and the exact Hessian *block* of the layer alone
    (:func:`curvlib.memory.hessian_bytes`). All counts are exact for ``dtype``.
    ``max_preconditioner_dim`` is Shampoo's: ``None`` (default) preconditions every
    dimension, as the mathematics and :func:`step_flops` assume.
    """
    pairs = _check_pairs(layers)
    max_dim = max(max(p) for p in pairs) if max_preconditioner_dim is None else \
        check_int("max_preconditioner_dim", max_preconditioner_dim, minimum=1)
    tdtype = {"float32": torch.float32, "float64": torch.float64,
              "float16": torch.float16, "bfloat16": torch.bfloat16}[
        check_choice("dtype", dtype, {"float32", "float64", "float16", "bfloat16"})]
    rows = []
    for n_in, n_out in pairs:
        n = n_in * n_out + (n_out if bias else 0)
        k = 1 + bool(bias)
        rows.append({
            "layer": f"{n_in}->{n_out}", "params": n,
            "SGD+momentum": memory.optimizer_state_bytes("momentum", n, dtype),
            "Adam": memory.optimizer_state_bytes("adam", n, dtype, n_tensors=k),
            "K-FAC": kfac_bytes([(n_in, n_out)], bias=bias, dtype=tdtype),
            "Shampoo": shampoo_bytes([(n_in, n_out)], bias=bias, dtype=tdtype,
                                     max_preconditioner_dim=max_dim),
            "Hessian block": memory.hessian_bytes(n, dtype)})
    return rows


def resnet50_state_bytes(dtype="float32", max_preconditioner_dim=1024):
    r"""Optimizer-state bytes of each method for ResNet-50 (:func:`curvlib.memory.resnet_layers`).

    K-FAC treats a convolution with :math:`c_\text{in}` input and :math:`c_\text{out}` output
    channels and a :math:`k\times k` kernel as a layer with :math:`c_\text{in}k^2` inputs
    (Grosse & Martens, 2016, "A Kronecker-factored approximate Fisher matrix for convolution
    layers", ICML); batch-norm parameters take plain SGD-momentum steps. Shampoo
    preconditions every dimension of every weight tensor (including the 1-D batch-norm
    vectors) up to ``max_preconditioner_dim``; larger dimensions (ResNet-50's 2048 channels)
    go unpreconditioned on that side. Counted with meta tensors, so nothing is allocated.
    """
    size = memory.dtype_bytes(dtype)
    tdtype = {4: torch.float32, 8: torch.float64, 2: torch.float16}[size]
    layers = memory.resnet_layers(50)
    n = sum(layer.n_params for layer in layers)
    tensors, conv_pairs, bn_params, fc_pairs = [], [], 0, []
    for layer in layers:
        if layer.kind == "conv":
            c_in, c_out, k = layer.shape
            conv_pairs.append((c_in * k * k, c_out))
            tensors.append(torch.empty((c_out, c_in, k, k), device="meta", dtype=tdtype))
        elif layer.kind == "bn":
            bn_params += layer.n_params
            tensors += [torch.empty(layer.shape, device="meta", dtype=tdtype)] * 2
        else:
            fc_pairs.append(layer.shape)
            d_in, d_out = layer.shape
            tensors += [torch.empty((d_out, d_in), device="meta", dtype=tdtype),
                        torch.empty((d_out,), device="meta", dtype=tdtype)]
    kfac = (kfac_bytes(conv_pairs, bias=False, dtype=tdtype)
            + kfac_bytes(fc_pairs, bias=True, dtype=tdtype) + bn_params * size)
    return {"params": n,
            "SGD+momentum": memory.optimizer_state_bytes("momentum", n, dtype),
            "Adam": memory.optimizer_state_bytes("adam", n, dtype, n_tensors=len(tensors)),
            "K-FAC": kfac,
            "Shampoo": shampoo_bytes(tensors, max_preconditioner_dim=max_preconditioner_dim),
            "Hessian": memory.hessian_bytes(n, dtype)}


def step_flops(layers, method, batch_size, *, bias=True, factor_interval=1,
               inverse_interval=10):
    r"""Floating-point operations of one training step, leading terms: a cost proxy.

    For ``nn.Linear`` layers ``[(n_in, n_out), ...]`` and a batch of :math:`B` examples, per
    layer with :math:`d_a = n_\text{in}+1` (bias), :math:`d_g = n_\text{out}`,
    :math:`p = d_a d_g` parameters:

    * every method: forward and backward, :math:`6Bp` (one multiply-add per weight and
      example forward, two backward);
    * SGD+momentum :math:`3p`, Adam :math:`12p` for the update arithmetic;
    * K-FAC: factor statistics :math:`2B(d_a^2+d_g^2)` every ``factor_interval`` steps, the two
      eigendecompositions :math:`9(d_a^3+d_g^3)` (:func:`curvlib.memory.inversion_flops`,
      ``"eig"``) every ``inverse_interval`` steps, and four matrix products to precondition,
      :math:`4p(d_a+d_g)`;
    * Shampoo: statistics :math:`2p(d_a+d_g)` every step, eigendecompositions for the inverse
      fourth roots :math:`9(d_a^3+d_g^3)` every ``inverse_interval`` steps, and
      :math:`2p(d_a+d_g)` to precondition (the bias vector is preconditioned separately,
      :math:`\approx 11 d_g^2` amortised, included).

    Counts, not timings: they are the same on every machine, which is why the text quotes
    them; the wall-clock figure shows what this machine made of them.
    """
    pairs = _check_pairs(layers)
    check_choice("method", method, {"SGD+momentum", "Adam", "K-FAC", "Shampoo"})
    B = check_int("batch_size", batch_size, minimum=1)
    fi = check_int("factor_interval", factor_interval, minimum=1)
    ii = check_int("inverse_interval", inverse_interval, minimum=1)
    eig = lambda n: memory.inversion_flops(n, "eig")  # noqa: E731
    total = 0.0
    for n_in, n_out in pairs:
        da, dg = n_in + bool(bias), n_out
        p = da * dg
        total += 6.0 * B * p
        if method == "SGD+momentum":
            total += 3.0 * p
        elif method == "Adam":
            total += 12.0 * p
        elif method == "K-FAC":
            total += 2.0 * B * (da * da + dg * dg) / fi + (eig(da) + eig(dg)) / ii \
                + 4.0 * p * (da + dg) + 3.0 * p
        else:
            w = n_in * n_out
            total += 4.0 * w * (n_in + n_out) + (eig(n_in) + eig(n_out)) / ii + 6.0 * w
            if bias:
                total += 4.0 * n_out * n_out + eig(n_out) / ii + 6.0 * n_out
    return total


# --------------------------------------------------------------------------------------
# "Start with Adam (70% success rate)": what would a success rate measure?
# --------------------------------------------------------------------------------------
def adam_success_curve(data, *, budgets=(10, 20, 40, 80, 160), targets=(0.9, 0.95),
                       seeds=tuple(range(20)), lr=1e-3, batch_size=64, sizes=DIGITS_SIZES):
    r"""Fraction of seeds on which Adam at its default settings "succeeds", by definition.

    Success here means: validation accuracy :math:`\ge` ``target`` after ``budget`` minibatch
    steps of Adam (``lr=1e-3``, :math:`\beta=(0.9, 0.999)`) on the digits MLP. All seeds train at
    once in one vectorised model (:class:`curvlib.train.StackedModels`; Adam is elementwise,
    so each seed's run is exactly its own), and the accuracy is read at every budget. Returns
    ``{"budgets": (...), "rates": {target: array over budgets}, "accuracy": (seeds, budgets)}``.
    """
    budgets = tuple(sorted(check_int("budgets", b, minimum=1) for b in budgets))
    if not budgets:
        raise ValueError("budgets must not be empty")
    targets = tuple(check_positive("targets", t) for t in targets)
    seeds = tuple(check_int("seeds", s, minimum=0) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    lr, batch_size = check_positive("lr", lr), check_int("batch_size", batch_size, minimum=1)
    stack = StackedModels([mlp(list(sizes), "tanh", seed=s) for s in seeds])
    opt = optim.factory("adam", lr=lr)(stack.groups[0])
    X, y = data.X_train, data.y_train
    orders = [minibatches(len(X), batch_size, s) for s in seeds]
    acc = np.zeros((len(seeds), len(budgets)))
    for t in range(1, budgets[-1] + 1):
        idx = torch.stack([next(o) for o in orders])
        opt.zero_grad()
        stack.losses(X[idx], y[idx], F.cross_entropy, per_copy=True).sum().backward()
        opt.step()
        if t in budgets:
            with torch.no_grad():
                out = stack.outputs(data.X_test)
            acc[:, budgets.index(t)] = [accuracy(o, data.y_test) for o in out]
    rates = {tgt: (acc >= tgt).mean(0) for tgt in targets}
    return {"budgets": budgets, "rates": rates, "accuracy": acc}


# --------------------------------------------------------------------------------------
# AlgoPerf: the published results
# --------------------------------------------------------------------------------------
#: Scores of the first "AlgoPerf - Training Algorithms" competition (leaderboard v0.5, benchmark
#: v0.1.5), from the official leaderboard, github.com/mlcommons/submissions_algorithms,
#: ``previous_leaderboards/algoperf_v05/README.md``; analysed in Kasimbeg et al. (2025),
#: "Accelerating neural network training: An analysis of the AlgoPerf competition", ICLR.
#: The benchmark: Dahl et al. (2023), "Benchmarking Neural Network Training Algorithms",
#: arXiv:2306.07179. A score is the normalised area under a submission's performance profile
#: (the fraction of workloads it trains to target within a factor tau of the fastest
#: submission's time): 1 would mean fastest on every workload.
ALGOPERF = {
    "external tuning": [
        ("Distributed Shampoo", 0.7784), ("Schedule Free AdamW", 0.7077),
        ("Generalized Adam", 0.6383), ("Cyclic LR", 0.6301), ("NadamP", 0.5909),
        ("Baseline (NadamW)", 0.5707), ("Amos", 0.4918), ("CASPR Adaptive", 0.4722),
        ("LAWA Queue", 0.3699), ("LAWA EMA", 0.3384), ("Schedule Free Prodigy", 0.0)],
    "self-tuning": [
        ("Schedule Free AdamW", 0.8542), ("Baseline (NadamW)", 0.8194),
        ("NadamW Sequential", 0.3308), ("Sinv6 75", 0.1420), ("Sinv6", 0.0903),
        ("AdamG", 0.0)],
}


def plot_algoperf(ax=None):
    """Horizontal bars of the external-tuning scores in :data:`ALGOPERF`; the Kronecker
    method and the Adam-family baseline highlighted. Returns the axes."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    rows = ALGOPERF["external tuning"][::-1]
    colors = ["C3" if "Shampoo" in n else "C1" if "Baseline" in n else "0.6" for n, _ in rows]
    ax.barh([n for n, _ in rows], [s for _, s in rows], color=colors)
    for i, (_, s) in enumerate(rows):
        ax.text(s + 0.01, i, f"{s:.4f}", va="center", fontsize=8)
    ax.set(xlim=(0, 1), xlabel="AlgoPerf score (external tuning, higher is better)")
    ax.tick_params(axis="y", labelsize=8)
    return ax


# --------------------------------------------------------------------------------------
# The lecture's selection strategy as a decision chart
# --------------------------------------------------------------------------------------
def plot_selection_chart(notes=None, ax=None):
    """The lecture's four rules drawn as a decision chart (matplotlib, works offline).

    Questions are diamonds, recommendations boxes; ``notes`` maps a recommendation
    (``"Adam"``, ``"SGD+momentum"``, ``"L-BFGS"``, ``"K-FAC / Shampoo"``) to a short line
    printed under it, e.g. what the book found. Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Polygon

    notes = dict(notes or {})
    unknown = set(notes) - {"Adam", "SGD+momentum", "L-BFGS", "K-FAC / Shampoo"}
    if unknown:
        raise ValueError(f"notes has unknown recommendations: {sorted(unknown)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(9.5, 5.2))
    ax.set(xlim=(0.4, 9.4), ylim=(-0.75, 6.4))
    ax.axis("off")

    def diamond(x, y, text):
        w, h = 1.9, 0.62
        ax.add_patch(Polygon([(x - w, y), (x, y + h), (x + w, y), (x, y - h)], closed=True,
                             fc="#eef3fb", ec="#3b6db3", lw=1.2))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def box(x, y, title, rule, color):
        ax.add_patch(FancyBboxPatch((x - 1.45, y - 0.42), 2.9, 0.84,
                                    boxstyle="round,pad=0.05", fc=color, ec="0.3", lw=1))
        ax.text(x, y + 0.12, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.2, rule, ha="center", va="center", fontsize=7.5, style="italic")
        if title in notes:
            ax.text(x, y - 0.62, notes[title], ha="center", va="top", fontsize=7.5,
                    color="#7a1f1f", wrap=True)

    def arrow(x0, y0, x1, y1, label=""):
        ax.annotate("", (x1, y1), (x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color="0.25", lw=1.1))
        if label:
            ax.text((x0 + x1) / 2 + 0.08, (y0 + y1) / 2 + 0.08, label, fontsize=8, color="0.2")

    ax.text(2.6, 6.15, "new training problem", ha="center", fontsize=9,
            bbox=dict(boxstyle="round", fc="white", ec="0.5"))
    qs = [(2.6, 5.05, "small problem with\nfull-batch (exact) gradients?"),
          (2.6, 3.45, "generalisation the priority\n(e.g. computer vision)?"),
          (2.6, 1.85, "memory and compute to spare\nfor curvature factors?")]
    recs = [(7.2, 5.05, "L-BFGS", "rule 3: small, deterministic problems", "#fdf1d6"),
            (7.2, 3.45, "SGD+momentum", "rule 2: if generalisation is the priority", "#dcefdc"),
            (7.2, 1.85, "K-FAC / Shampoo", "rule 4: only with sufficient resources", "#f6dede"),
            (2.6, 0.45, "Adam", "rule 1: start here (\"70% success rate\")", "#e3e3f6")]
    arrow(2.6, 5.95, 2.6, 5.7)
    for (x, y, text), (rx, ry, title, rule, color) in zip(qs, recs):
        diamond(x, y, text)
        box(rx, ry, title, rule, color)
        arrow(x + 1.9, y, rx - 1.5, ry, "yes")
    arrow(2.6, 4.43, 2.6, 4.07, "no")
    arrow(2.6, 2.83, 2.6, 2.47, "no")
    arrow(2.6, 1.23, 2.6, 0.9, "no")
    box(*recs[3][:2], *recs[3][2:])
    return ax


# --------------------------------------------------------------------------------------
# The widget: layer sizes in, memory and cost out
# --------------------------------------------------------------------------------------
_WIDGET_METHODS = ("SGD+momentum", "Adam", "K-FAC", "Shampoo")


def cost_explorer(d_in=(64, 512, 4096), d_out=(10, 512, 4096), batch_sizes=(32, 1024)):
    """Explorer: one ``Linear(d_in, d_out)`` layer; bytes of optimizer state (with the exact
    Hessian block for scale) and floating-point operations per step of each method, relative
    to SGD's, at each batch size in ``batch_sizes``.

    Everything is arithmetic (:func:`layer_state_bytes`, :func:`step_flops`), computed for
    every combination in the factory; a move of a control only redraws two bar charts.
    """
    from matplotlib.ticker import NullLocator

    from curvlib.memory import format_bytes
    from curvlib.widgets import Explorer

    batch_sizes = tuple(check_int("batch_sizes", B, minimum=1) for B in batch_sizes)
    if not batch_sizes:
        raise ValueError("batch_sizes must not be empty")
    table = {}
    for a in d_in:
        for b in d_out:
            row = layer_state_bytes([(a, b)])[0]
            ratios = {B: {m: step_flops([(a, b)], m, B) / step_flops([(a, b)], "SGD+momentum", B)
                          for m in _WIDGET_METHODS} for B in batch_sizes}
            table[(a, b)] = (row, ratios)
    colors = {"SGD+momentum": "C0", "Adam": "C1", "K-FAC": "C2", "Shampoo": "C3",
              "Hessian block": "0.5"}

    names = list(_WIDGET_METHODS) + ["Hessian block"]

    def render(fig, d_in, d_out):
        # kept lean (few texts, no legend or title): an uncached redraw stays near 100 ms
        row, ratios = table[(d_in, d_out)]
        ax1, ax2 = fig.subplots(1, 2)
        y = np.arange(len(names))[::-1]
        ax1.barh(y, [row[m] for m in names], color=[colors[m] for m in names])
        ax1.set_yticks(y, names, fontsize=8)
        ax1.set_xscale("log")
        ax1.set_xlim(1e2, 1e16)
        # plain labels, no minor ticks: mathtext labels would cost most of a redraw
        ax1.set_xticks([1e3, 1e9, 1e15], ["1 kB", "1 GB", "1 PB"])
        ax1.xaxis.set_minor_locator(NullLocator())
        ax1.set_xlabel("optimizer state (float32)", fontsize=9)
        y = np.arange(len(_WIDGET_METHODS))[::-1]
        h = 0.8 / len(batch_sizes)
        for j, B in enumerate(batch_sizes):
            ax2.barh(y + (len(batch_sizes) / 2 - j - 0.5) * h,
                     [ratios[B][m] for m in _WIDGET_METHODS], height=h * 0.95,
                     color=[colors[m] for m in _WIDGET_METHODS], alpha=1.0 - 0.45 * j)
        ax2.set_yticks([])
        ax2.set_xscale("log")
        ax2.set_xlim(0.5, 1e4)
        ax2.set_xticks([1, 100], ["1x", "100x"])
        ax2.xaxis.set_minor_locator(NullLocator())
        ax2.axvline(1, color="0.4", lw=0.8)
        ax2.set_xlabel("flops per step / SGD's (dark: batch %d)" % batch_sizes[0], fontsize=9)
        lo, hi = batch_sizes[0], batch_sizes[-1]
        return (f"Linear({d_in}, {d_out}). K-FAC: {format_bytes(row['K-FAC'])}, "
                f"{row['K-FAC'] / row['Adam']:.2g}x Adam's memory, {ratios[lo]['K-FAC']:.2g}x "
                f"(batch {lo}) to {ratios[hi]['K-FAC']:.2g}x (batch {hi}) SGD's flops; "
                f"Shampoo: {row['Shampoo'] / row['Adam']:.2g}x, {ratios[lo]['Shampoo']:.2g}x to "
                f"{ratios[hi]['Shampoo']:.2g}x")

    return Explorer(render, {"d_in": list(d_in), "d_out": list(d_out)},
                    labels={"d_in": "inputs", "d_out": "outputs"},
                    initial={"d_in": d_in[min(1, len(d_in) - 1)],
                             "d_out": d_out[min(1, len(d_out) - 1)]},
                    figsize=(7.2, 3.2),
                    alt="Bar charts of optimizer-state bytes and flops per step for SGD, Adam, "
                        "K-FAC and Shampoo on one linear layer")

