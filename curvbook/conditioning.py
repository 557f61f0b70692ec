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
  extreme eigenvalues of the exact Hessian.
* **Architecture** (:func:`study_conditioning`): exact Hessian spectra (top eigenvalue, most
  negative eigenvalue, trace, curvature along the gradient) of a deep tanh MLP with and
  without batch normalisation (Ioffe & Szegedy, 2015, ICML) and residual connections (He et
  al., 2016, CVPR), Glorot-initialised, each variant with its own tuned learning rate, over
  seeds, at initialisation and at a matched loss; :func:`conditioning_explorer` shows the
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
           "plot_diagonals", "momentum_alignment", "exact_spectrum", "kappa_shifted",
           "weight_decay_conditioning", "glorot_init", "deep_mlp", "measure_curvature", "smoothed_density",
           "POINTS", "welch", "ConditioningStudy", "study_conditioning", "plot_conditioning",
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


def exact_spectrum(model, X, y):
    r"""All eigenvalues of the Hessian of the mean cross-entropy of ``model`` on (X, y).

    The dense Hessian (:func:`curvlib.curvature.hessian`, forward-over-reverse autograd,
    exact to rounding) and :func:`torch.linalg.eigvalsh`: affordable for a few thousand
    parameters. Batch norm follows the model's mode (training mode: the statistics of ``X``).
    Returns a float64 numpy array, ascending.
    """
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("X and y must be torch tensors")
    f, w = _flat(model, X, y)
    # reverse-over-reverse in chunks of 128 rows: the same matrix as curvature.hessian (the
    # tests hold them equal, batch norm included), about 3 times faster at this size
    H = torch.func.jacrev(torch.func.grad(f), chunk_size=128)(w.detach())
    return torch.linalg.eigvalsh(H.double()).numpy()


def kappa_shifted(lambda_max, lambda_min, delta):
    r""":math:`\kappa(H+\delta I) = (\lambda_{\max}+\delta)/(\lambda_{\min}+\delta)`, which for
    :math:`\lambda_{\min} < 0` is :math:`(\lambda_{\max}+\delta)/(\delta-|\lambda_{\min}|)`;
    ``inf`` (undefined) while :math:`\lambda_{\min}+\delta \le 0`."""
    delta = check_nonnegative("delta", delta)
    return (lambda_max + delta) / (lambda_min + delta) if lambda_min + delta > 0 else math.inf


def weight_decay_conditioning(model, X, y, decays=(0.0, 1e-4, 1e-3, 1e-2, 1e-1), *,
                              steps=120, seed=0):
    r"""Condition number of :math:`H + \delta I` for each weight decay :math:`\delta`.

    torch's ``weight_decay=δ`` adds :math:`\delta\theta` to the gradient, i.e. the penalty
    :math:`\tfrac\delta2\|\theta\|^2`, i.e. :math:`\delta I` to the Hessian: every eigenvalue
    moves up by :math:`\delta`. With the extreme eigenvalues of the **exact** Hessian
    (:func:`exact_spectrum`), :math:`\kappa(\delta)` is :func:`kappa_shifted`; ``naive`` is
    :math:`(\lambda_{\max}+\delta)/\delta`, the value one gets by forgetting :math:`\lambda_{\min}`.
    Lanczos (``steps`` products from a Gaussian start drawn from ``seed``) estimates the same
    two eigenvalues from Hessian-vector products, for comparison (``lanczos_max``,
    ``lanczos_min``, ``converged``).

    Returns ``{"lambda_max", "lambda_min", "n_params", "decays", "kappa", "naive",
    "lanczos_max", "lanczos_min", "converged"}``.
    """
    decays = tuple(check_nonnegative("decays", d) for d in decays)
    eig = exact_spectrum(model, X, y)
    lmax, lmin = float(eig[-1]), float(eig[0])
    f, w = _flat(model, X, y)
    matvec = curvature.hvp_operator(f, w)
    v0 = torch.randn(w.numel(), generator=torch.Generator().manual_seed(seed), dtype=w.dtype)
    steps = min(check_int("steps", steps, minimum=2), w.numel())
    top = curvature.lanczos(matvec, v0, steps, k=1, which="largest", tol=1e-6)
    bottom = curvature.lanczos(matvec, v0, steps, k=1, which="smallest", tol=1e-4)
    return {"lambda_max": lmax, "lambda_min": lmin, "n_params": int(w.numel()), "decays": decays,
            "kappa": [kappa_shifted(lmax, lmin, d) for d in decays],
            "naive": [(lmax + d) / d if d > 0 else math.inf for d in decays],
            "lanczos_max": float(top.values[0]), "lanczos_min": float(bottom.values[0]),
            "converged": bool(top.converged and bottom.converged)}


# --------------------------------------------------------------------------------------
# Architecture and conditioning
# --------------------------------------------------------------------------------------
def glorot_init(model, seed=0):
    r"""Glorot & Bengio's (2010) initialisation, in place: every linear layer's weight drawn
    uniformly from :math:`\pm\sqrt{6/(d_{\text{in}}+d_{\text{out}})}`, biases zero. It keeps
    the variance of a tanh network's signal roughly constant across layers, where torch's
    default (:math:`\pm 1/\sqrt{d_{\text{in}}}`) shrinks it by about 3 per layer.
    Returns ``model``."""
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def deep_mlp(variant, seed=0, *, sizes=DEEP_SIZES, init="glorot", dtype="float64"):
    """The architecture study's network: ``variant`` (a key of :data:`VARIANTS`), float64,
    initialised by :func:`glorot_init` (``init="glorot"``) or torch's default, from ``seed``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    model = mlp(list(sizes), "tanh", seed=seed, dtype=dtype, **VARIANTS[variant])
    if init == "glorot":
        glorot_init(model, seed)
    elif init != "default":
        raise ValueError(f"init must be 'glorot' or 'default', got {init!r}")
    return model


def _train_to_target(variant, data, sizes, seeds, lrs, *, momentum, batch_size, max_steps,
                     Xc, yc, target, init):
    r"""Train one architecture from every seed at every learning rate at once, until each run's
    loss on (Xc, yc) first falls to ``target``.

    ``lrs[k]`` with ``seeds[i]`` is run ``k * len(seeds) + i``, all in one
    :class:`curvlib.train.StackedModels` (one param group per rate; SGD with momentum is
    elementwise, so each run takes exactly its own steps on its own minibatches). Batch norm
    uses batch statistics throughout, as the curvature measurements do. A run whose loss is
    not finite or passes the divergence limit of :mod:`curvlib.runs` stops. Returns
    ``(steps_to_target, at_target, at_init, curves)``: steps (``inf`` if never), the
    parameters of each run just after its crossing step, and at step 0, and the losses on
    (Xc, yc) before each step, ``(runs, max_steps + 1)``.
    """
    from curvlib.runs import divergence_limit, is_diverged

    models = [deep_mlp(variant, s, sizes=sizes, init=init) for _ in lrs for s in seeds]
    S, K = len(seeds), len(lrs)
    stack = StackedModels(models, K, batch_statistics=True)
    opt = optim.factory("momentum", momentum=momentum)(
        [{"params": stack.groups[k], "lr": float(lrs[k])} for k in range(K)], float(lrs[0]))
    X, y = data.X_train.to(Xc.dtype), data.y_train
    orders = [minibatches(len(X), batch_size, s) for s in seeds]
    M = K * S
    curves = np.full((M, max_steps + 1), np.nan)
    reached = np.full(M, math.inf)
    at_target, alive = {}, np.ones(M, dtype=bool)
    at_init = [stack.copy(i) for i in range(M)]
    limit = None
    for t in range(max_steps + 1):
        with torch.no_grad():
            now = stack.losses(Xc, yc, F.cross_entropy).double().numpy()
        if limit is None:
            limit = divergence_limit(now)
        alive &= ~is_diverged(now, limit)
        curves[alive, t] = now[alive]
        for i in np.flatnonzero(alive & (now <= target) & ~np.isfinite(reached)):
            reached[i] = t
            at_target[i] = stack.copy(i)
        alive &= ~np.isfinite(reached)
        if t == max_steps or not alive.any():
            break
        idx = torch.stack([next(o) for o in orders]).repeat(K, 1)
        opt.zero_grad()
        L = stack.losses(X[idx], y[idx], F.cross_entropy, per_copy=True)
        L[torch.from_numpy(alive)].sum().backward()
        with torch.no_grad():  # finished or diverged runs stand still
            for k, g in enumerate(stack.groups):
                done = torch.from_numpy(~alive[k * S:(k + 1) * S])
                for leaf in g:
                    leaf.grad[done] = 0.0
                    for buf in opt.state.get(leaf, {}).values():
                        if isinstance(buf, torch.Tensor) and buf.shape == leaf.shape:
                            buf[done] = 0.0
        opt.step()
    return reached, at_target, at_init, curves


def _model_with(variant, sizes, params):
    model = mlp(list(sizes), "tanh", dtype="float64", **VARIANTS[variant])
    model.load_state_dict(params, strict=False)
    model.train()
    return model


def measure_curvature(model, X, y):
    r"""The exact Hessian spectrum of ``model`` on (X, y) and what the chapter reads off it.

    ``eigenvalues`` (all of them, :func:`exact_spectrum`), ``top`` = :math:`\lambda_{\max}`,
    ``bottom`` = :math:`\lambda_{\min}`, ``trace`` = their sum, ``gradient_curvature`` =
    :math:`g^\top Hg/\|g\|^2`, the curvature a gradient step actually meets (Santurkar et al.,
    2018, track this kind of "effective smoothness" along the gradient), ``loss`` and
    ``n_params``. Batch norm uses the statistics of ``X`` (training mode).
    """
    eig = exact_spectrum(model, X, y)
    f, w = _flat(model, X, y)
    with torch.enable_grad():
        wg = w.detach().requires_grad_(True)
        value = f(wg)
        (g,) = torch.autograd.grad(value, wg)
    return {"top": float(eig[-1]), "bottom": float(eig[0]), "trace": float(eig.sum()),
            "gradient_curvature": _rayleigh(curvature.hvp_operator(f, w), g),
            "loss": float(value.detach()), "n_params": w.numel(), "eigenvalues": eig}


def smoothed_density(nodes, weights, grid, sigma):
    r"""Gaussian-smoothed spectral density of one or several discrete spectra:
    :math:`\hat\phi(t) = \frac1R\sum_r\sum_j \tau_{rj}\, g_\sigma(t-\theta_{rj})`
    (as :func:`curvlib.spectrum.spectral_density`; for an exact spectrum of :math:`n`
    eigenvalues, :math:`\tau = 1/n`)."""
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    t = np.asarray(grid, float)[:, None, None]
    sigma = check_positive("sigma", sigma)
    kernel = np.exp(-0.5 * ((t - nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return (kernel * weights[None]).sum(-1).mean(-1)


#: the two points at which the architecture study measures: initialisation and matched loss
POINTS = ("initialisation", "matched loss")


@dataclass
class ConditioningStudy:
    """Results of :func:`study_conditioning`.

    ``values[variant][point][quantity]`` is an array over the reported seeds (``point`` in
    :data:`POINTS`; the scalar quantities of :func:`measure_curvature`, and ``eigenvalues`` of
    shape ``(seeds, n)``); ``lr[variant]`` the tuned learning rate, ``tuning[variant]``
    ``{lr: mean steps to the target over the tuning seeds}``, ``edge[variant]`` whether the
    chosen rate sits at an end of the grid searched, ``steps_to_target[variant]`` the reported
    seeds' steps, ``curves[variant]`` their losses on the curvature examples.
    """
    sizes: tuple
    seeds: tuple
    tune_seeds: tuple
    target: float
    max_steps: int
    init: str
    lr: dict
    tuning: dict
    edge: dict
    steps_to_target: dict
    values: dict
    curves: dict
    n_params: dict = field(default_factory=dict)

    @property
    def measure_at(self):
        return POINTS

    def mean(self, variant, point, quantity):
        return float(np.mean(self.values[variant][point][quantity]))

    def std(self, variant, point, quantity):
        return float(np.std(self.values[variant][point][quantity], ddof=1))

    def nonconvexity(self, variant, point):
        r"""Per seed, :math:`|\lambda_{\min}|/\lambda_{\max}`: the size of the most negative
        curvature relative to the largest positive one (the measure Li et al., 2018, map to
        compare landscapes with and without skip connections)."""
        v = self.values[variant][point]
        return np.abs(np.minimum(v["bottom"], 0)) / v["top"]

    def outlier_ratio(self, variant, point):
        r"""Per seed, :math:`\lambda_{\max}` over the mean eigenvalue :math:`\operatorname{tr}H/n`:
        how far the top of the spectrum sticks out of the bulk."""
        v = self.values[variant][point]
        return v["top"] * self.n_params[variant] / v["trace"]

    def difference(self, variant, point, quantity, base="plain"):
        r"""``[d, low, high]``: the mean of ``quantity`` for ``variant`` minus that for ``base``
        over the seeds, with Welch's 95% interval (the architectures are not paired).
        ``quantity`` is a key of ``values`` or ``"nonconvexity"``."""
        get = (lambda v: self.nonconvexity(v, point)) if quantity == "nonconvexity" else \
            (lambda v: self.values[v][point][quantity])
        return welch(get(variant), get(base))

    def density(self, variant, point, grid, sigma):
        """The smoothed spectral density of ``variant`` at ``point``, averaged over the seeds."""
        eig = self.values[variant][point]["eigenvalues"]
        return smoothed_density(eig, np.full(eig.shape, 1.0 / eig.shape[1]), grid, sigma)


def welch(a, b):
    r"""``[d, low, high]``: the difference of the means of ``a`` and ``b`` (unpaired samples)
    with Welch's 95% interval (Welch, 1947, *Biometrika* 34:28-35)."""
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError("a and b must be 1-D samples of at least 2 values each")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d = float(a.mean() - b.mean())
    if va + vb == 0:
        return [d, d, d]
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof)) * math.sqrt(va + vb)
    return [d, d - half, d + half]


def _score(steps, max_steps):
    """Mean steps to the target over seeds; a run that never reached it counts as twice the
    budget (so a rate that fails is worse than any that succeeds)."""
    return float(np.mean(np.where(np.isfinite(steps), steps, 2 * max_steps)))


def study_conditioning(data, *, variants=tuple(VARIANTS), sizes=DEEP_SIZES, seeds=tuple(range(5)),
                       tune_seeds=(100, 101, 102), lrs=(0.03, 0.1, 0.3, 1.0), momentum=0.9,
                       batch_size=128, target=0.2, max_steps=120, curvature_examples=128,
                       init="glorot", max_extend=3):
    r"""Curvature of a deep tanh MLP with and without batch norm and residual connections,
    compared at initialisation and at a matched loss.

    **Tuning.** For each variant, SGD with momentum (``momentum``, ``batch_size``) runs from the
    ``tune_seeds`` at every rate in ``lrs``; the rate with the fewest steps until the loss on the
    curvature examples reaches ``target`` (mean over the tuning seeds; a run that never gets
    there counts as twice ``max_steps``) wins. If
    it sits at an end of the grid, the grid grows by one half-decade point on that side
    (at most ``max_extend`` times); ``edge`` records whether the winner is still at an end.

    **Measurement.** With its tuned rate each variant trains from ``seeds`` (not the tuning
    seeds); at initialisation and at the first step where each run's loss on the first
    ``curvature_examples`` training examples is at most ``target``, :func:`measure_curvature`
    computes the exact Hessian spectrum on those examples. Every model is float64 and starts
    from ``init`` (``"glorot"``, :func:`glorot_init`, or torch's ``"default"``).
    Returns a :class:`ConditioningStudy`.
    """
    from curvlib.compare import lr_grid

    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variants must be among {list(VARIANTS)}, got {v!r}")
    seeds = tuple(check_int("seeds", s, minimum=0) for s in seeds)
    tune_seeds = tuple(check_int("tune_seeds", s, minimum=0) for s in tune_seeds)
    if len(seeds) < 2:
        raise ValueError("seeds must hold at least 2 seeds (a spread needs two)")
    if set(seeds) & set(tune_seeds) or not tune_seeds:
        raise ValueError("tune_seeds must be non-empty and disjoint from seeds")
    lrs = tuple(sorted(check_positive("lrs", v) for v in lrs))
    if len(lrs) < 3:
        raise ValueError(f"lrs must hold at least 3 rates (an interior optimum), got {lrs}")
    target = check_positive("target", target)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if init not in ("glorot", "default"):
        raise ValueError(f"init must be 'glorot' or 'default', got {init!r}")
    m = check_int("curvature_examples", curvature_examples, minimum=2)
    Xc, yc = data.X_train[:m].double(), data.y_train[:m]
    common = dict(momentum=momentum, batch_size=batch_size, max_steps=max_steps, Xc=Xc, yc=yc,
                  target=target, init=init)
    out = {k: {} for k in ("lr", "tuning", "edge", "steps_to_target", "values", "curves",
                           "n_params")}
    for v in variants:
        scores, grid = {}, list(lrs)
        for _ in range(max_extend + 1):
            todo = [r for r in grid if r not in scores]
            if todo:
                reached, *_ = _train_to_target(v, data, sizes, tune_seeds, todo, **common)
                S = len(tune_seeds)
                for k, r in enumerate(todo):
                    scores[r] = _score(reached[k * S:(k + 1) * S], max_steps)
            grid = sorted(scores)
            best = min(grid, key=lambda r: (scores[r], r))
            if best == grid[0]:
                grid.insert(0, lr_grid(best / 4, best)[-2])      # half a decade lower
            elif best == grid[-1]:
                grid.append(lr_grid(best, best * 4)[1])          # half a decade higher
            else:
                break
        grid = sorted(scores)
        out["lr"][v], out["tuning"][v] = best, {r: scores[r] for r in grid}
        out["edge"][v] = best in (grid[0], grid[-1])
        reached, at_target, at_init, curves = _train_to_target(v, data, sizes, seeds, [best],
                                                               **common)
        if not np.isfinite(reached).all():
            raise RuntimeError(f"{v}: {int((~np.isfinite(reached)).sum())} of {len(seeds)} "
                               f"runs did not reach loss {target} in {max_steps} steps; "
                               "raise max_steps")
        out["steps_to_target"][v], out["curves"][v] = reached, curves
        out["values"][v] = {}
        for point, params in zip(POINTS, (at_init, [at_target[i] for i in range(len(seeds))])):
            rows = [measure_curvature(_model_with(v, sizes, p), Xc, yc) for p in params]
            out["values"][v][point] = {q: np.array([r[q] for r in rows]) for q in rows[0]}
        out["n_params"][v] = int(rows[0]["n_params"])
    return ConditioningStudy(sizes=tuple(sizes), seeds=seeds, tune_seeds=tune_seeds,
                             target=float(target), max_steps=max_steps, init=init, **out)


def plot_conditioning(study, axes=None):
    """Four panels: top eigenvalue, trace and :math:`|\\lambda_{\\min}|/\\lambda_{\\max}` per
    variant at initialisation and at the matched loss (one dot per seed, the mean as a bar),
    and the loss on the curvature examples of each variant against the step, with the
    target (mean and band over seeds, log scale). Returns the axes."""
    import matplotlib.pyplot as plt
    from curvlib import plots

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 3.8), layout="constrained")
    variants = list(study.values)
    width = 0.8 / len(POINTS)
    getters = [(lambda v, s: study.values[v][s]["top"], r"top eigenvalue $\lambda_{\max}$"),
               (lambda v, s: study.values[v][s]["trace"], r"trace $\mathrm{tr}\,H$"),
               (study.nonconvexity, r"$|\lambda_{\min}|\,/\,\lambda_{\max}$")]
    for ax, (get, label) in zip(axes, getters):
        for j, s in enumerate(POINTS):
            xs = np.arange(len(variants)) + (j - (len(POINTS) - 1) / 2) * width
            vals = [get(v, s) for v in variants]
            ax.bar(xs, [np.mean(x) for x in vals], width=width * 0.9, color=f"C{j}", alpha=0.35,
                   label=s if j == 0 else f"loss {study.target:g}")
            for x, val in zip(xs, vals):
                ax.plot(np.full(len(val), x), val, "o", ms=3, color=f"C{j}")
        ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_title(label)
        ax.axhline(0, color="0.5", lw=0.6)
    axes[0].legend()
    for i, v in enumerate(variants):
        c = study.curves[v]
        last = int(np.max(study.steps_to_target[v]))
        steps = np.arange(last + 1)
        # a run stops at its target: hold its last loss so the band covers every seed
        held = np.array([np.where(np.isnan(r[:last + 1]), r[int(n)], r[:last + 1])
                         for r, n in zip(c, study.steps_to_target[v])])
        plots.mean_band(steps, held, ax=axes[3], log_y=True, color=f"C{i + 2}",
                        label=f"{v}, lr {study.lr[v]:g}")
    axes[3].axhline(study.target, color="0.3", ls="--", lw=0.8)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
    axes[3].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))   # 1, 2, 5 per decade
    axes[3].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[3].yaxis.set_minor_locator(NullLocator())
    axes[3].set(xlabel="step", ylabel="loss (curvature examples)")
    axes[3].set_title(f"to loss {study.target:g} ({len(study.seeds)} seeds)")
    axes[3].legend(fontsize=9)
    return axes


def conditioning_explorer(study=None):
    """Explorer: pick an architecture and a point (initialisation or matched loss), see the
    Hessian's exact spectral density (Gaussian-smoothed, averaged over the study's seeds) with
    each seed's largest eigenvalue marked.

    ``study`` is a :class:`ConditioningStudy`; without one a small, quick study is run here.
    Densities are computed for every frame before the first is drawn.
    """
    from curvlib.widgets import Explorer

    if study is None:
        from curvlib.data import digits
        study = study_conditioning(digits(), sizes=(64, 8, 8, 8, 10), seeds=(0, 1),
                                   tune_seeds=(100,), curvature_examples=64, max_steps=200)
    variants, points = list(study.values), list(POINTS)
    lo = min(float(study.values[v][s]["bottom"].min()) for v in variants for s in points)
    hi = max(float(study.values[v][s]["top"].max()) for v in variants for s in points)
    pad = 0.05 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 300)
    sigma = 0.01 * (hi - lo)
    curves = {(v, s): np.log10(np.clip(study.density(v, s, grid, sigma), 1e-6, None))
              for v in variants for s in points}
    ymax = max(c.max() for c in curves.values()) + 0.3

    def render(fig, architecture, point):
        dens = curves[(architecture, point)]
        vals = study.values[architecture][point]
        ax = fig.subplots()
        # log10 on linear axes (a log-scale fill draws slowly); the seeds' top eigenvalues as
        # one dashed line collection
        ax.plot(grid, dens, color="C0")
        ax.fill_between(grid, -6, dens, color="C0", alpha=0.2)
        ax.vlines(vals["top"], -6, ymax, color="C3", lw=0.8, ls="--")
        ax.set(xlim=(grid[0], grid[-1]), ylim=(-6, ymax), xlabel="Hessian eigenvalue",
               ylabel="log10 density")
        loss = float(np.mean(vals["loss"]))
        return (f"{architecture}, {point}: top eigenvalue {np.mean(vals['top']):.3g} "
                f"(red: each of {len(study.seeds)} seeds), trace {np.mean(vals['trace']):.3g}, "
                f"loss {loss:.3g}")

    return Explorer(render, {"architecture": variants, "point": points},
                    labels={"architecture": "architecture", "point": "measured at"},
                    alt="Exact spectral density of the Hessian of a deep MLP for a chosen "
                        "architecture, at initialisation or at a matched loss")
