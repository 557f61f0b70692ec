r"""Chapter 7: what of the Hessian survives in Adam, momentum, weight decay and architecture.

Four measurements, one per claim of the lecture's "key insight":

* **Adaptive rates vs curvature.** Adam's second moment :math:`v_t = \beta_2 v_{t-1} +
  (1-\beta_2) g_t^2` (Kingma & Ba, 2015, "Adam: A method for stochastic optimization", ICLR)
  estimates :math:`\mathbb{E}[g_B^2]`, the second moment of the *minibatch* gradient. For a
  batch of :math:`B` of :math:`N` examples drawn without replacement, with mean gradient
  :math:`\bar g` and empirical Fisher diagonal :math:`\hat F = \frac1N\sum_i g_i^2`,

  .. math:: \mathbb{E}[g_B^2] = \bar g^2 + \frac{N-B}{B(N-1)}\big(\hat F - \bar g^2\big),

  (:func:`minibatch_second_moment`). That is the diagonal of an *uncentred gradient second
  moment*, not of the Hessian, and Adam divides by its square root. :func:`study_diagonals`
  puts :math:`\hat v`, :math:`\mathbb{E}[g_B^2]`, :math:`\hat F`, the Fisher / Gauss-Newton
  diagonal and the exact Hessian diagonal (:func:`hessian_diagonal`) side by side.
* **Momentum** (:func:`momentum_alignment`): the curvature :math:`x^\top Hx/\|x\|^2` seen by the
  momentum buffer against that seen by the gradient.
* **Weight decay** (:func:`weight_decay_conditioning`): :math:`\kappa(H+\delta I)` from the
  extreme eigenvalues.
* **Architecture** (:func:`study_conditioning`): top Hessian eigenvalue, trace and curvature
  along the gradient of a deep tanh MLP with and without batch normalisation (Ioffe &
  Szegedy, 2015, ICML) and residual connections (He et al., 2016, CVPR), over seeds, at
  initialisation and after a little training; :func:`conditioning_explorer` shows the
  spectral densities (Ghorbani, Krishnan & Xiao, 2019, "An investigation into neural net
  optimization via Hessian eigenvalue density", ICML).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curvlib import curvature, optim
from curvlib._checks import check_int, check_nonnegative, check_positive, check_unit_interval
from curvlib.models import mlp
from curvlib.train import StackedModels, minibatches

__all__ = ["SMALL_SIZES", "DEEP_SIZES", "VARIANTS", "HessianDiagonal", "hessian_diagonal",
           "hessian_diagonal_hvp", "per_example_gradients", "fisher_diagonal",
           "minibatch_second_moment", "adam_second_moment", "DiagonalStudy", "study_diagonals",
           "plot_diagonals", "momentum_alignment", "weight_decay_conditioning",
           "measure_curvature", "smoothed_density", "ConditioningStudy", "study_conditioning", "plot_conditioning",
           "conditioning_explorer"]

#: The small network whose Hessian diagonal is computed exactly (64 -> 16 tanh -> 10).
SMALL_SIZES = (64, 16, 10)
#: The deep network of the architecture study, five tanh hidden layers of width 16.
DEEP_SIZES = (64, 16, 16, 16, 16, 16, 10)
#: name -> keyword arguments of :func:`curvlib.models.mlp`.
VARIANTS = {"plain": dict(batchnorm=False, residual=False),
            "batch norm": dict(batchnorm=True, residual=False),
            "residual": dict(batchnorm=False, residual=True),
            "BN + residual": dict(batchnorm=True, residual=True)}


# --------------------------------------------------------------------------------------
# Diagonals: Hessian, Gauss-Newton / Fisher, empirical Fisher, minibatch second moment
# --------------------------------------------------------------------------------------
class HessianDiagonal(NamedTuple):
    """``total``: the Hessian diagonal; ``gauss_newton``: its Gauss-Newton part, which for the
    softmax cross-entropy equals the diagonal of the Fisher information."""
    total: torch.Tensor
    gauss_newton: torch.Tensor


def _one_hidden_layer(model):
    """``(W1, b1, W2, b2)`` of ``Sequential(Sequential(Linear, Tanh), Linear)``."""
    ok = (isinstance(model, nn.Sequential) and len(model) == 2
          and isinstance(model[0], nn.Sequential) and len(model[0]) == 2
          and isinstance(model[0][0], nn.Linear) and isinstance(model[0][1], nn.Tanh)
          and isinstance(model[1], nn.Linear)
          and model[0][0].bias is not None and model[1].bias is not None)
    if not ok:
        raise TypeError("model must be a one-hidden-layer tanh MLP with biases, as built by "
                        "curvlib.models.mlp([d, h, k], 'tanh')")
    return model[0][0].weight, model[0][0].bias, model[1].weight, model[1].bias


def hessian_diagonal(model, X, y):
    r"""The exact diagonal of the Hessian of the mean cross-entropy, in closed form.

    For :math:`s = \tanh(W_1x+b_1)`, :math:`z = W_2 s + b_2`, :math:`p=\operatorname{softmax}(z)`,
    :math:`r = p - e_y` and :math:`H_z = \operatorname{diag}(p)-pp^\top` (the Hessian of the
    loss in :math:`z`), averaged over the examples:

    .. math::
        \frac{\partial^2\ell}{\partial (W_2)_{kj}^2} = s_j^2\,p_k(1-p_k), \qquad
        \frac{\partial^2\ell}{\partial (W_1)_{ji}^2} = x_i^2\Big[\tanh'(a_j)^2\,
        w_j^\top H_z w_j + \tanh''(a_j)\, r^\top w_j\Big],

    with :math:`w_j` the :math:`j`-th column of :math:`W_2` (biases: :math:`x_i = 1`,
    :math:`s_j = 1`). The first term in the bracket, and all of :math:`W_2`'s, form the
    Gauss-Newton diagonal; the :math:`\tanh''` term is the rest of the Hessian, and can make
    an entry negative. The reference path, :func:`hessian_diagonal_hvp`, reads the same
    numbers off Hessian-vector products with basis vectors (tests hold them equal).
    Returns a :class:`HessianDiagonal` of flat float64 vectors in ``named_parameters`` order.
    """
    W1, b1, W2, b2 = (t.detach().double() for t in _one_hidden_layer(model))
    X, y = X.double(), y.long()
    if X.ndim != 2 or X.shape[1] != W1.shape[1] or len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X must have shape (N, {W1.shape[1]}) and y length N")
    N = len(X)
    s = torch.tanh(X @ W1.T + b1)
    p = torch.softmax(s @ W2.T + b2, dim=1)
    r = p - F.one_hot(y, p.shape[1]).double()
    d1 = 1 - s * s                       # tanh'
    d2 = -2 * s * d1                     # tanh''
    pq = p * (1 - p)
    u = p @ (W2 * W2) - (p @ W2) ** 2    # w_j^T H_z w_j, (N, h)
    gn_coef, rest_coef = d1 * d1 * u, d2 * (r @ W2)
    parts_gn = [(gn_coef.T @ (X * X)) / N, gn_coef.mean(0), (pq.T @ (s * s)) / N, pq.mean(0)]
    coef = gn_coef + rest_coef
    parts = [(coef.T @ (X * X)) / N, coef.mean(0)] + parts_gn[2:]
    flat = lambda ps: torch.cat([q.reshape(-1) for q in ps])  # noqa: E731
    return HessianDiagonal(flat(parts), flat(parts_gn))


def _flat(model, X, y):
    return curvature.flat_loss(model, F.cross_entropy, X, y)


def hessian_diagonal_hvp(model, X, y, indices=None):
    r"""Hessian diagonal entries :math:`e_i^\top H e_i` from one Hessian-vector product each.

    The readable reference for :func:`hessian_diagonal`, for any model: exact, and
    :math:`n` products for the whole diagonal. ``indices``: which entries (default all).
    """
    f, w = _flat(model, X, y)
    n = w.numel()
    idx = range(n) if indices is None else [check_int("indices", int(i), minimum=0) for i in indices]
    if any(i >= n for i in idx):
        raise ValueError(f"indices must be below the number of parameters {n}")
    matvec = curvature.hvp_operator(f, w)
    out = []
    for i in idx:
        e = torch.zeros_like(w)
        e[i] = 1
        out.append(matvec(e)[i])
    return torch.stack(out).double()


def per_example_gradients(model, X, y):
    r"""Gradients of each example's loss, ``(N, n)``: :math:`g_i = \nabla_w \ell(x_i, y_i)`,
    by :func:`torch.vmap` over :func:`torch.func.grad` (no loop over examples)."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = dict(model.named_buffers())

    def one(p, x, t):
        out = torch.func.functional_call(model, {**p, **buffers}, (x[None],))
        return F.cross_entropy(out, t[None])

    g = torch.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([g[k].reshape(len(X), -1) for k in params], 1)


def fisher_diagonal(model, X, y=None):
    r"""Diagonal of the Fisher information :math:`\frac1N\sum_i \mathbb{E}_{c\sim p(\cdot|x_i)}
    [g_{i,c}^2]`, labels drawn from the model itself, summed exactly over the classes.

    Unlike the *empirical* Fisher, which uses the data's labels, this is the Gauss-Newton
    matrix for the softmax cross-entropy (Martens, 2020, "New insights and perspectives on
    the natural gradient method", JMLR 21(146)); it costs one per-example gradient per class.
    ``y`` is ignored (accepted so all diagonals share a signature).
    """
    with torch.no_grad():
        p = torch.softmax(model(X), dim=1).double()
    total = 0.0
    for c in range(p.shape[1]):
        g = per_example_gradients(model, X, torch.full((len(X),), c, dtype=torch.long))
        total = total + (p[:, c:c + 1] * g.double() ** 2).mean(0)
    return total


def minibatch_second_moment(grads, batch_size):
    r""":math:`\mathbb{E}[g_B^2]` for the mean gradient of a batch of ``batch_size`` examples
    drawn without replacement from the rows of ``grads`` (``(N, n)`` per-example gradients):

    .. math:: \mathbb{E}[g_B^2] = \bar g^2 + \frac{N-B}{B(N-1)}\big(\hat F - \bar g^2\big),
              \qquad \hat F = \tfrac1N\textstyle\sum_i g_i^2 .

    This is what Adam's :math:`v` tracks while the parameters stand still.
    """
    if not isinstance(grads, torch.Tensor) or grads.ndim != 2:
        raise TypeError("grads must be an (N, n) torch.Tensor of per-example gradients")
    N = len(grads)
    B = check_int("batch_size", batch_size, minimum=1)
    if B > N:
        raise ValueError(f"batch_size must be at most the number of examples {N}, got {B}")
    g = grads.double()
    mean2 = g.mean(0) ** 2
    fhat = (g * g).mean(0)
    factor = (N - B) / (B * (N - 1)) if N > 1 else 0.0
    return mean2 + factor * (fhat - mean2)


def adam_second_moment(optimizer, params):
    r"""Adam's bias-corrected second moment :math:`\hat v_t = v_t/(1-\beta_2^t)`, flattened in
    the order of ``params``."""
    out = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            raise ValueError("optimizer has no Adam state for a parameter: take a step first")
        beta2 = next(g["betas"][1] for g in optimizer.param_groups if any(q is p for q in g["params"]))
        step = float(state["step"])
        out.append((state["exp_avg_sq"] / (1 - beta2 ** step)).reshape(-1))
    return torch.cat(out).double()


@dataclass
class DiagonalStudy:
    """The diagonals of :func:`study_diagonals` (flat float64 numpy arrays, one entry per
    parameter) and their rank correlations with Adam's :math:`\\hat v`."""
    adam_v: np.ndarray
    minibatch_moment: np.ndarray
    empirical_fisher: np.ndarray
    gauss_newton: np.ndarray
    hessian: np.ndarray
    batch_size: int
    steps: int
    lr: float
    train_loss: float
    spearman: dict
    active: np.ndarray = None
    model: nn.Module = None

    @property
    def negative_fraction(self):
        """Share of the active parameters' Hessian diagonal entries that are negative."""
        return float(np.mean(self.hessian[self.active] < 0))

    def median_ratio(self, name):
        r"""Median over the active parameters of ``name``'s entry divided by the empirical Fisher
        diagonal, times the batch size :math:`B`: about 1 where the minibatch noise dominates,
        since :math:`\mathbb{E}[g_B^2]\approx\hat F/B` then."""
        x = getattr(self, name)[self.active] / self.empirical_fisher[self.active]
        return float(np.median(x) * self.batch_size)


def _spearman(a, b):
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def study_diagonals(data, *, sizes=SMALL_SIZES, steps=400, lr=1e-3, batch_size=64, seed=0):
    r"""Train the small MLP with Adam, then compare its :math:`\hat v` with four diagonals.

    Adam (``lr``, :math:`\beta=(0.9,0.999)`, the lecture's defaults) runs ``steps`` minibatch
    steps in float64. At the final parameters we compute, over the training set: the
    expected minibatch second moment :math:`\mathbb{E}[g_B^2]`
    (:func:`minibatch_second_moment`), the empirical Fisher diagonal :math:`\hat F`, the
    Gauss-Newton (= Fisher) diagonal and the exact Hessian diagonal
    (:func:`hessian_diagonal`). ``spearman`` holds the rank correlation of :math:`\hat v` with
    each, and of :math:`\hat F` with the Hessian diagonal, over the *active* parameters: those
    with a non-zero gradient on some example (weights from pixels that are blank in every
    training image never move and would add ties at zero to every ranking).
    """
    from curvlib.train import train

    steps = check_int("steps", steps, minimum=1)
    lr = check_positive("lr", lr)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    model = mlp(list(sizes), "tanh", seed=check_int("seed", seed, minimum=0), dtype="float64")
    _one_hidden_layer(model)
    X, y = data.X_train.double(), data.y_train
    opt = optim.Adam(model.parameters(), lr=lr)
    train(model, opt, (X, y), steps=steps, batch_size=batch_size, seed=seed)
    params = [p for p in model.parameters()]
    v = adam_second_moment(opt, params)
    grads = per_example_gradients(model, X, y).double()
    moment = minibatch_second_moment(grads, batch_size)
    fhat = (grads * grads).mean(0)
    H = hessian_diagonal(model, X, y)
    with torch.no_grad():
        loss = float(F.cross_entropy(model(X), y))
    arrays = {k: t.numpy() for k, t in dict(adam_v=v, minibatch_moment=moment, empirical_fisher=fhat,
                                             gauss_newton=H.gauss_newton,
                                             hessian=H.total).items()}
    active = arrays["empirical_fisher"] > 0
    a = {k: x[active] for k, x in arrays.items()}
    rho = {"minibatch_moment": _spearman(a["adam_v"], a["minibatch_moment"]),
           "empirical_fisher": _spearman(a["adam_v"], a["empirical_fisher"]),
           "gauss_newton": _spearman(a["adam_v"], a["gauss_newton"]),
           "hessian": _spearman(a["adam_v"], a["hessian"]),
           "fisher_vs_hessian": _spearman(a["empirical_fisher"], a["hessian"])}
    return DiagonalStudy(**arrays, batch_size=batch_size, steps=steps, lr=lr, train_loss=loss,
                         spearman=rho, active=active, model=model)


def plot_diagonals(study, axes=None):
    """Three log-log scatter plots of Adam's :math:`\\hat v` against the minibatch second
    moment, the empirical Fisher diagonal and the Hessian diagonal (negative entries in red,
    plotted at their absolute value). Returns the axes."""
    import matplotlib.pyplot as plt
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    v = study.adam_v
    panels = [(study.minibatch_moment, r"$\mathbb{E}[g_B^2]$ at the final $\theta$",
               1.0, "minibatch_moment"),
              (study.empirical_fisher, r"empirical Fisher diagonal $\hat F_{ii}$",
               1.0 / study.batch_size, "empirical_fisher"),
              (study.hessian, r"Hessian diagonal $|H_{ii}|$", None, "hessian")]
    for ax, (x, label, slope, key) in zip(axes, panels):
        neg = x < 0
        ax.loglog(np.abs(x[~neg]), v[~neg], ".", ms=2.5, alpha=0.5, color="C0",
                  label="entries" if not neg.any() else r"$H_{ii} > 0$")
        if neg.any():
            ax.loglog(np.abs(x[neg]), v[neg], ".", ms=2.5, alpha=0.6, color="C3",
                      label=r"$H_{ii} < 0$")
        lo, hi = np.percentile(np.abs(x[x != 0]), [0.5, 99.5])
        if slope is not None:
            t = np.geomspace(lo, hi, 10)
            ax.loglog(t, slope * t, "k--", lw=1,
                      label="$y=x$" if slope == 1 else f"$y=x/B$, B={study.batch_size}")
        ax.set(xlabel=label, title=f"Spearman $\\rho$ = {study.spearman[key]:.2f}")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel(r"Adam's $\hat v_i$")
    return axes


# --------------------------------------------------------------------------------------
# Momentum and weight decay
# --------------------------------------------------------------------------------------
def _rayleigh(matvec, x):
    x = x.double()
    return float(torch.dot(x, matvec(x).double()) / torch.dot(x, x))


def momentum_alignment(data, *, sizes=SMALL_SIZES, lr=0.05, momentum=0.9, batch_size=64,
                       checkpoints=(25, 50, 100, 200, 400), seed=0):
    r"""Curvature along the momentum buffer versus along the gradient, during training.

    SGD with heavy-ball momentum (:class:`curvlib.optim.SGD`, buffer
    :math:`b_t = \mu b_{t-1} + g_t`, a sum of past minibatch gradients) trains the small MLP in
    float64. After each checkpoint step we compute, with the full-batch Hessian :math:`H`,
    the Rayleigh quotient :math:`R(x) = x^\top H x/\|x\|^2` -- the curvature met by a step
    along :math:`x` -- for the last minibatch gradient, the full-batch gradient and the
    momentum buffer. On a quadratic the buffer is a low-pass filter of the gradients:
    components along stiff directions flip sign from step to step and cancel, components
    along flat directions add up, so the buffer should meet *less* curvature than the
    gradients it is made of, although the method never computes a curvature.
    Returns a dict of arrays over the checkpoints.
    """
    from curvlib.train import train

    checkpoints = tuple(sorted(check_int("checkpoints", c, minimum=1) for c in checkpoints))
    if not checkpoints:
        raise ValueError("checkpoints must not be empty")
    momentum = check_unit_interval("momentum", momentum)
    if momentum == 0:
        raise ValueError("momentum must be positive, got 0.0")
    model = mlp(list(sizes), "tanh", seed=check_int("seed", seed, minimum=0), dtype="float64")
    X, y = data.X_train.double(), data.y_train
    opt = optim.SGD(model.parameters(), lr=check_positive("lr", lr), momentum=momentum)
    keys = ("minibatch_gradient", "gradient", "momentum_buffer")
    out = {key: [] for key in keys}
    done = 0
    for c in checkpoints:
        # one seed for the whole run: the minibatch order continues across checkpoints
        train(model, opt, (X, y), steps=c - done, batch_size=batch_size, seed=seed * 1000 + c)
        done = c
        grad_mb = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        buf = torch.cat([opt.state[p]["momentum_buffer"].reshape(-1)
                         for p in model.parameters()])
        f, w = _flat(model, X, y)
        matvec = curvature.hvp_operator(f, w)
        with torch.enable_grad():
            wg = w.detach().requires_grad_(True)
            (g_full,) = torch.autograd.grad(f(wg), wg)
        for key, x in zip(keys, (grad_mb, g_full, buf)):
            out[key].append(_rayleigh(matvec, x))
    res = {f"rayleigh_{key}": np.asarray(val) for key, val in out.items()}
    res["checkpoints"] = np.asarray(checkpoints)
    return res


def weight_decay_conditioning(model, X, y, decays=(0.0, 1e-4, 1e-3, 1e-2, 1e-1), *,
                              steps=120, seed=0):
    r"""Condition number of :math:`H + \delta I` for each weight decay :math:`\delta`.

    torch's ``weight_decay=δ`` adds :math:`\delta\theta` to the gradient, i.e. the penalty
    :math:`\tfrac\delta2\|\theta\|^2`, i.e. :math:`\delta I` to the Hessian: every eigenvalue
    moves up by :math:`\delta`. With the extreme eigenvalues :math:`\lambda_{\max}`,
    :math:`\lambda_{\min}` from Lanczos,

    .. math:: \kappa(\delta) = \frac{\lambda_{\max}+\delta}{\lambda_{\min}+\delta}
              \quad\text{if } \lambda_{\min}+\delta > 0, \text{ else undefined (inf).}

    Returns ``{"lambda_max", "lambda_min", "converged", "decays", "kappa"}``.
    """
    decays = tuple(check_nonnegative("decays", d) for d in decays)
    f, w = _flat(model, X, y)
    matvec = curvature.hvp_operator(f, w)
    v0 = torch.randn(w.numel(), generator=torch.Generator().manual_seed(seed), dtype=w.dtype)
    steps = min(check_int("steps", steps, minimum=2), w.numel())
    top = curvature.lanczos(matvec, v0, steps, k=1, which="largest", tol=1e-6)
    bottom = curvature.lanczos(matvec, v0, steps, k=1, which="smallest", tol=1e-4)
    lmax, lmin = float(top.values[0]), float(bottom.values[0])
    kappa = [(lmax + d) / (lmin + d) if lmin + d > 0 else math.inf for d in decays]
    return {"lambda_max": lmax, "lambda_min": lmin,
            "converged": bool(top.converged and bottom.converged),
            "decays": decays, "kappa": kappa}


# --------------------------------------------------------------------------------------
# Architecture and conditioning
# --------------------------------------------------------------------------------------
def _train_seeds(variant, data, sizes, seeds, steps, lr, momentum, batch_size, keep):
    """Train one architecture from every seed at once (vmap over stacked parameters).

    Batch norm runs in training mode with batch statistics and no running averages (its
    buffers are passed as ``None``), which is what the curvature measurements also use. SGD
    with momentum is elementwise, so one optimizer on the stacked tensors takes each seed's
    own steps. Returns ``(losses (seeds, steps), {step: [param dict per seed]})``.
    """
    stack = StackedModels([mlp(list(sizes), "tanh", seed=s, **VARIANTS[variant]) for s in seeds],
                          batch_statistics=True)
    opt = optim.factory("momentum", lr=lr, momentum=momentum)(stack.groups[0])
    X, y = data.X_train, data.y_train
    orders = [minibatches(len(X), batch_size, s) for s in seeds]
    losses = np.zeros((len(seeds), steps))
    snap = lambda: [stack.copy(i) for i in range(len(seeds))]  # noqa: E731
    kept = {0: snap()} if 0 in keep else {}
    for t in range(1, steps + 1):
        idx = torch.stack([next(o) for o in orders])
        opt.zero_grad()
        L = stack.losses(X[idx], y[idx], F.cross_entropy, per_copy=True)
        L.sum().backward()
        opt.step()
        losses[:, t - 1] = L.detach().numpy()
        if t in keep:
            kept[t] = snap()
    return losses, kept


def _model_with(variant, sizes, params):
    model = mlp(list(sizes), "tanh", **VARIANTS[variant])
    model.load_state_dict(params, strict=False)
    model.train()
    return model


def measure_curvature(model, X, y, *, lanczos_steps=20, trace_samples=5, seed=0):
    r"""Extreme eigenvalues, trace and curvature along the gradient of ``model`` on (X, y).

    One Lanczos run (:func:`curvlib.spectrum.lanczos`, all ``lanczos_steps`` Ritz pairs) from a
    Rademacher vector :math:`z` gives the Ritz values and Gauss-quadrature weights of the
    spectrum, as in :func:`curvlib.spectrum.spectral_density` with one probe: ``top`` is the largest Ritz value (it converges
    to :math:`\lambda_{\max}` from below, fastest for an outlier; the tests check it against
    :func:`curvlib.spectrum.top_eigenvalues`), ``bottom`` the smallest (an upper bound on
    :math:`\lambda_{\min}`), and ``nodes``/``weights`` the quadrature for the density.
    ``trace`` and ``trace_se``: Hutchinson's estimate from ``trace_samples`` Rademacher probes,
    the first being :math:`z` itself. All products share one
    :func:`curvlib.curvature.hvp_operator`.
    ``gradient_curvature``: :math:`g^\top Hg/\|g\|^2`, the curvature a gradient step actually
    meets (Santurkar et al., 2018, track this kind of "effective smoothness" along the
    gradient). Batch norm uses the statistics of ``X`` (training mode).
    """
    f, w = _flat(model, X, y)
    matvec = curvature.hvp_operator(f, w)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    z = torch.randint(0, 2, (w.numel(),), generator=gen).to(w.dtype) * 2 - 1
    m = min(check_int("lanczos_steps", lanczos_steps, minimum=2), w.numel())
    # all m Ritz pairs of one Lanczos run from z: nodes and Gauss-quadrature weights
    eigs = curvature.lanczos(matvec, z, m, k=m, which="largest", tol=0.0)
    nodes = eigs.values.double()
    weights = ((z / torch.linalg.vector_norm(z)) @ eigs.vectors).double() ** 2
    samples = [float(z @ matvec(z))]           # the Lanczos probe is a Hutchinson probe too
    for _ in range(check_int("trace_samples", trace_samples, minimum=2) - 1):
        p = torch.randint(0, 2, (w.numel(),), generator=gen).to(w.dtype) * 2 - 1
        samples.append(float(p @ matvec(p)))
    trace, se = float(np.mean(samples)), float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
    with torch.enable_grad():
        wg = w.detach().requires_grad_(True)
        value = f(wg)
        (g,) = torch.autograd.grad(value, wg)
    return {"top": float(nodes.max()), "bottom": float(nodes.min()), "trace": trace,
            "trace_se": se, "gradient_curvature": _rayleigh(matvec, g),
            "loss": float(value.detach()), "n_params": w.numel(),
            "nodes": nodes.numpy(), "weights": weights.numpy()}


def smoothed_density(nodes, weights, grid, sigma):
    r"""Gaussian-smoothed spectral density from Lanczos quadratures of several probes:
    :math:`\hat\phi(t) = \frac1R\sum_r\sum_j \tau_{rj}\, g_\sigma(t-\theta_{rj})`
    (as :func:`curvlib.spectrum.spectral_density`, on a grid shared by several spectra)."""
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    t = np.asarray(grid, float)[:, None, None]
    sigma = check_positive("sigma", sigma)
    kernel = np.exp(-0.5 * ((t - nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return (kernel * weights[None]).sum(-1).mean(-1)


@dataclass
class ConditioningStudy:
    """Results of :func:`study_conditioning`.

    ``values[variant][step][quantity]`` is an array over the seeds (scalar quantities of
    :func:`measure_curvature`, plus ``nodes``/``weights`` of shape ``(seeds, lanczos_steps)``);
    ``losses[variant]`` the minibatch training losses ``(seeds, steps)``.
    """
    sizes: tuple
    seeds: tuple
    steps: int
    lr: float
    measure_at: tuple
    values: dict
    losses: dict
    n_params: dict = field(default_factory=dict)

    def mean(self, variant, step, quantity):
        return float(np.mean(self.values[variant][step][quantity]))

    def std(self, variant, step, quantity):
        return float(np.std(self.values[variant][step][quantity], ddof=1))

    def nonconvexity(self, variant, step):
        r"""Per seed, :math:`|\lambda_{\min}|/\lambda_{\max}` from the extreme Ritz values: the
        size of the most negative curvature relative to the largest positive one (the measure
        Li et al., 2018, map to compare landscapes with and without skip connections)."""
        v = self.values[variant][step]
        return np.abs(np.minimum(v["bottom"], 0)) / v["top"]

    def outlier_ratio(self, variant, step):
        r"""Per seed, :math:`\lambda_{\max}` over the mean eigenvalue :math:`\operatorname{tr}H/n`:
        how far the top of the spectrum sticks out of the bulk."""
        v = self.values[variant][step]
        return v["top"] * self.n_params[variant] / v["trace"]

    def density(self, variant, step, grid, sigma):
        """The spectral density of ``variant`` at ``step``, averaged over the seeds."""
        v = self.values[variant][step]
        return smoothed_density(v["nodes"], v["weights"], grid, sigma)


def study_conditioning(data, *, variants=tuple(VARIANTS), sizes=DEEP_SIZES, seeds=tuple(range(5)),
                       steps=50, lr=0.05, momentum=0.9, batch_size=128, measure_at=(0, 50),
                       curvature_examples=128, lanczos_steps=16, trace_samples=4):
    r"""Curvature of a deep tanh MLP with and without batch norm and residual connections.

    Every variant is trained with the same SGD+momentum settings (``lr``, ``momentum``,
    ``batch_size``, ``steps``) from every seed, all seeds at once (:func:`torch.vmap`); at
    each step in ``measure_at`` (0 = initialisation) :func:`measure_curvature` runs for every
    seed on the first ``curvature_examples`` training examples. Returns a
    :class:`ConditioningStudy`.
    """
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variants must be among {list(VARIANTS)}, got {v!r}")
    seeds = tuple(check_int("seeds", s, minimum=0) for s in seeds)
    if len(seeds) < 2:
        raise ValueError("seeds must hold at least 2 seeds (a spread needs two)")
    steps = check_int("steps", steps, minimum=1)
    measure_at = tuple(sorted(check_int("measure_at", s, minimum=0) for s in measure_at))
    if not measure_at:
        raise ValueError("measure_at must not be empty")
    if measure_at[-1] > steps:
        raise ValueError(f"measure_at must be <= steps={steps}, got {measure_at[-1]}")
    m = check_int("curvature_examples", curvature_examples, minimum=2)
    Xc, yc = data.X_train[:m], data.y_train[:m]
    values, losses, n_params = {}, {}, {}
    for v in variants:
        loss, kept = _train_seeds(v, data, sizes, seeds, steps, check_positive("lr", lr),
                                  momentum, check_int("batch_size", batch_size, minimum=1),
                                  set(measure_at))
        losses[v], values[v] = loss, {}
        for s in measure_at:
            rows = [measure_curvature(_model_with(v, sizes, p), Xc, yc,
                                      lanczos_steps=lanczos_steps, trace_samples=trace_samples,
                                      seed=i)
                    for i, p in enumerate(kept[s])]
            values[v][s] = {q: np.array([r[q] for r in rows]) for q in rows[0]}
        n_params[v] = int(rows[0]["n_params"])
    return ConditioningStudy(sizes=tuple(sizes), seeds=seeds, steps=steps, lr=float(lr),
                             measure_at=measure_at, values=values, losses=losses,
                             n_params=n_params)


def plot_conditioning(study, axes=None):
    """Four panels: top eigenvalue, trace and :math:`|\\lambda_{\\min}|/\\lambda_{\\max}` per
    variant at each measured step (one dot per seed, the mean as a bar), and the minibatch
    training loss of each variant (mean and band over seeds, log scale). Returns the axes."""
    import matplotlib.pyplot as plt
    from curvlib import plots

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    variants = list(study.values)
    width = 0.8 / len(study.measure_at)
    getters = [(lambda v, s: study.values[v][s]["top"], r"top eigenvalue $\lambda_{\max}$"),
               (lambda v, s: study.values[v][s]["trace"], r"trace $\mathrm{tr}\,H$"),
               (study.nonconvexity, r"$|\lambda_{\min}|\,/\,\lambda_{\max}$")]
    for ax, (get, label) in zip(axes, getters):
        for j, s in enumerate(study.measure_at):
            xs = np.arange(len(variants)) + (j - (len(study.measure_at) - 1) / 2) * width
            vals = [get(v, s) for v in variants]
            ax.bar(xs, [np.mean(x) for x in vals], width=width * 0.9, color=f"C{j}", alpha=0.35,
                   label="initialisation" if s == 0 else f"after {s} steps")
            for x, val in zip(xs, vals):
                ax.plot(np.full(len(val), x), val, "o", ms=3, color=f"C{j}")
        ax.set_xticks(range(len(variants)), variants, fontsize=8, rotation=15)
        ax.set_title(label, fontsize=10)
        ax.axhline(0, color="0.5", lw=0.6)
    axes[0].legend(fontsize=8)
    steps = np.arange(1, study.steps + 1)
    for i, v in enumerate(variants):
        plots.mean_band(steps, study.losses[v], ax=axes[3], log_y=True, color=f"C{i + 2}",
                        label=v)
    plots.plain_log_ticks(axes[3], "y")
    axes[3].set(xlabel="step", ylabel="minibatch loss")
    axes[3].set_title(f"training loss ({len(study.seeds)} seeds)", fontsize=10)
    return axes


def conditioning_explorer(study=None):
    """Explorer: pick an architecture and a training step, see the Hessian's spectral density
    (averaged over the study's seeds) with the largest and smallest Ritz values marked.

    ``study`` is a :class:`ConditioningStudy`; without one a small, quick study is run here
    (two seeds, 20 steps). Densities are computed for every frame before the first is drawn.
    """
    from curvlib.widgets import Explorer

    if study is None:
        from curvlib.data import digits
        study = study_conditioning(digits(), seeds=(0, 1), steps=20, measure_at=(0, 20),
                                   curvature_examples=64, lanczos_steps=10, trace_samples=2)
    variants, steps = list(study.values), list(study.measure_at)
    lo = min(float(study.values[v][s]["nodes"].min()) for v in variants for s in steps)
    hi = max(float(study.values[v][s]["nodes"].max()) for v in variants for s in steps)
    pad = 0.05 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 300)
    sigma = 0.01 * (hi - lo)
    curves = {(v, s): np.log10(np.clip(study.density(v, s, grid, sigma), 1e-6, None))
              for v in variants for s in steps}
    ymax = max(c.max() for c in curves.values()) + 0.3

    def render(fig, architecture, step):
        dens = curves[(architecture, step)]
        vals = study.values[architecture][step]
        ax = fig.subplots()
        # log10 on linear axes (a log-scale fill draws slowly); the seeds' top Ritz values as
        # one dashed line collection
        ax.plot(grid, dens, color="C0")
        ax.fill_between(grid, -6, dens, color="C0", alpha=0.2)
        ax.vlines(vals["top"], -6, ymax, color="C3", lw=0.8, ls="--")
        ax.set(xlim=(grid[0], grid[-1]), ylim=(-6, ymax), xlabel="Hessian eigenvalue",
               ylabel="log10 density")
        loss = float(np.mean(vals["loss"]))
        return (f"{architecture}, step {step}: top eigenvalue {np.mean(vals['top']):.3g} "
                f"(red: each of {len(study.seeds)} seeds), trace {np.mean(vals['trace']):.3g}, "
                f"loss {loss:.3g}")

    return Explorer(render, {"architecture": variants, "step": steps},
                    labels={"architecture": "architecture", "step": "training step"},
                    alt="Spectral density of the Hessian of a deep MLP for a chosen "
                        "architecture and training step")

