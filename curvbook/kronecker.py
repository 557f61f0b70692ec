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
* :func:`run_race` -- SGD+momentum, Adam, K-FAC and Shampoo on the digits MLP, each tuned
  by one protocol (:func:`curvbook.kronecker_race.tune`) over the hyperparameters that matter
  for it, starting from a published configuration (:data:`PUBLISHED`, :func:`race_spaces`),
  then trained with curvlib's optimizers from the same reporting seeds, wall time recorded;
  :func:`paired_interval` decides each comparison; :func:`plot_comparison` draws loss
  against steps, wall time and counted flops with bands over seeds;
* :func:`layer_state_bytes`, :func:`resnet50_state_bytes`, :func:`step_flops` -- memory per
  layer and a deterministic cost proxy (floating-point operations per step);
* :func:`adam_success_curve` -- what a "success rate" of default Adam depends on;
* :data:`ALGOPERF` -- the published results of the AlgoPerf competition;
* :func:`plot_selection_chart` -- the lecture's selection strategy as a decision chart;
* :func:`cost_explorer` -- the widget: layer sizes in, memory and cost of each method out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, memory, optim, runs
from curvlib._checks import check_choice, check_int, check_positive
from curvlib.models import mlp
from curvlib.second_order import KFAC, Shampoo, kfac_bytes, kfac_layers, shampoo_bytes

from .kronecker_race import Axis, half_decades, tune

__all__ = ["DIGITS_SIZES", "LR_LADDER", "PUBLISHED", "REFRESH", "race_spaces", "build_optimizer",
           "kron_identity_check", "kfac_factor_error", "paired_interval", "Race", "run_race",
           "describe", "step_differences",
           "plot_comparison", "time_grid_losses",
           "layer_state_bytes", "resnet50_state_bytes", "step_flops",
           "adam_success_curve", "ALGOPERF", "plot_algoperf", "plot_selection_chart",
           "cost_explorer", "WIDGET_SIZES", "EXPLORERS"]

#: The digits network of the chapter: 64 pixels -> 32 tanh units -> 10 classes.
DIGITS_SIZES = (64, 32, 10)
#: The learning-rate ladder every method is tuned on: half a decade apart, 1e-5 to 1e3.
LR_LADDER = half_decades(-10, 6)

#: Where each method's search starts: a published configuration, with its source.
#:
#: * Adam: Kingma & Ba (2015), "Adam: A method for stochastic optimization", ICLR.
#: * K-FAC: the defaults of K-FAC-PyTorch (Wang et al., github.com/alecwangcq/KFAC-Pytorch,
#:   ``KFACOptimizer``: damping 1e-3, KL clip 1e-3, statistics decay 0.95, momentum 0.9,
#:   factors every 10 and inverses every 100 steps).
#: * Shampoo: the first configuration of Distributed Shampoo's winning submission to the
#:   AlgoPerf v0.5 external-tuning track (github.com/mlcommons/submissions_algorithms,
#:   ``previous_leaderboards/algoperf_v05/submissions/external_tuning/shampoo_submission/``
#:   ``tuning_search_space.json``, run by ``submission.py`` with facebookresearch's
#:   ``DistributedShampoo``): ``1 - beta1 = 0.06733926164``, ``1 - beta2 = 0.00448403102``
#:   (the grafting's too), epsilon 1e-8, Adam grafting with epsilon 1e-8, no momentum,
#:   preconditioners refreshed every 100 steps and blocked at 1024, learning rate
#:   0.0017486, decoupled weight decay 0.0812, NAdam-style first moment, 2% warmup and a
#:   cosine decay.
PUBLISHED = {
    "SGD+momentum": {"momentum": 0.9},
    "Adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "K-FAC": {"damping": 1e-3, "kl_clip": 1e-3, "factor_decay": 0.95, "momentum": 0.9,
              "factor_interval": 10, "inverse_interval": 100},
    "Shampoo": {"lr": 0.0017486387539278373, "beta1": 1 - 0.06733926164,
                "beta2": 1 - 0.00448403102, "epsilon": 1e-8, "grafting": "adam",
                "graft_eps": 1e-8, "momentum": 0.0, "update_interval": 100,
                "max_preconditioner_dim": 1024, "weight_decay": 0.08121616522670176},
}
#: The refresh interval of K-FAC's inverses and Shampoo's roots in the race: the published
#: 100 would leave a 40-step run with its first factorisation only (and Distributed
#: Shampoo, which starts preconditioning at the first refresh, would be Adam throughout).
REFRESH = 10


def _one_minus_ladder(home, lo_k, hi_k, low_end=None, high_end=None):
    """``1 - (1 - home) * 10**k`` for integer k in [lo_k, hi_k] (rungs a decade apart in
    ``1 - beta`` around the published value), those in (0, 1), with optional end rungs;
    ascending."""
    rungs = {1 - (1 - home) * 10.0 ** k for k in range(lo_k, hi_k + 1)}
    rungs = {r for r in rungs if 0 < r < 1} | {v for v in (low_end, high_end) if v is not None}
    return tuple(sorted(rungs))


def _lr_axis(lo, hi):
    return Axis(LR_LADDER, LR_LADDER.index(lo), LR_LADDER.index(hi), prefer="low")


def race_spaces():
    """The search space of each method in the race: ``{name: (method, axes, fixed)}``.

    Every learning rate lives on :data:`LR_LADDER` (windows start four rungs wide and widen
    until the choice is inside). K-FAC also tunes its damping (decades, starting around the
    published 1e-3) and whether to clip the step's KL (the published 1e-3, or no clip as in
    Martens & Grosse). Shampoo also tunes its first moment ``beta1`` and statistics decay
    ``beta2`` (rungs a decade apart in ``1 - beta`` around the published values; ``beta1``
    down to 0, no first moment; ``beta2`` down to 0.1, a memory of about one step, and up to
    1, Gupta et al.'s plain sum), its ``epsilon`` (two decades apart around the published
    1e-8) and its grafting (the published Adam grafting, or AdaGrad's, Gupta et al.'s and
    curvlib's default). Windows start at the published values and widen when a choice sits at
    their edge. Held fixed: SGD's momentum 0.9, Adam's defaults, K-FAC's momentum 0.9 and
    statistics decay 0.95 (published), factors every step and inverses every
    :data:`REFRESH` steps, the true Fisher; Shampoo's grafting epsilon 1e-8 (published), roots
    every :data:`REFRESH` steps, no heavy-ball momentum (published).
    """
    sh = PUBLISHED["Shampoo"]
    beta1 = _one_minus_ladder(sh["beta1"], -3, 1, low_end=0.0)        # 0, 0.327, 0.933, ...
    beta2 = _one_minus_ladder(sh["beta2"], -2, 2, low_end=0.1, high_end=1.0)
    epsilon = tuple(float(10.0 ** k) for k in range(-12, 0, 2))
    damping = tuple(float(10.0 ** k) for k in range(-7, 2))
    lr = LR_LADDER

    def home(ladder, value):
        return ladder[min(range(len(ladder)), key=lambda i: abs(ladder[i] - value))]

    b1, b2 = home(beta1, sh["beta1"]), home(beta2, sh["beta2"])
    return {
        "SGD+momentum": ("SGD+momentum", {"lr": _lr_axis(lr[6], lr[9])}, {"momentum": 0.9}),
        "Adam": ("Adam", {"lr": _lr_axis(lr[6], lr[9])}, {}),
        "K-FAC": ("K-FAC", {
            "lr": _lr_axis(lr[6], lr[9]),
            "damping": Axis(damping, 3, 6, home=PUBLISHED["K-FAC"]["damping"]),
            "kl_clip": Axis((PUBLISHED["K-FAC"]["kl_clip"], None), 0, 1,
                            home=PUBLISHED["K-FAC"]["kl_clip"], ordered=False)},
            {"momentum": 0.9, "factor_decay": 0.95, "factor_interval": 1,
             "inverse_interval": REFRESH, "fisher": "true"}),
        "Shampoo": ("Shampoo", {
            "lr": _lr_axis(lr[6], lr[9]),
            "beta1": Axis(beta1, 0, beta1.index(b1) + 1, home=b1),
            "beta2": Axis(beta2, 0, beta2.index(b2), home=b2),
            "epsilon": Axis(epsilon, epsilon.index(1e-8), epsilon.index(1e-4),
                            home=sh["epsilon"]),
            "grafting": Axis(("adam", "adagrad"), 0, 1, home="adam", ordered=False)},
            {"graft_eps": sh["graft_eps"], "momentum": 0.0, "update_interval": REFRESH}),
    }


def build_optimizer(method, model, setting):
    """The curvlib optimizer of ``method`` (``"SGD+momentum"``, ``"Adam"``, ``"K-FAC"``,
    ``"Shampoo"``) for ``model`` with the hyperparameters ``setting`` (the names of
    :func:`curvbook.kronecker_race.race_runs`; ``lr`` included)."""
    check_choice("method", method, ("SGD+momentum", "Adam", "K-FAC", "Shampoo"))
    s = dict(setting)
    if method == "SGD+momentum":
        return optim.SGD(model.parameters(), lr=s["lr"], momentum=s.get("momentum", 0.9))
    if method == "Adam":
        return optim.Adam(model.parameters(), lr=s["lr"],
                          betas=(s.get("beta1", 0.9), s.get("beta2", 0.999)),
                          eps=s.get("eps", 1e-8))
    if method == "K-FAC":
        return KFAC(model, **s)
    return Shampoo(model.parameters(), **s)


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


def kfac_factor_error(model, X, y, layer=-1, *, fisher="empirical", damping=1e-3,
                     relative=False):
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
    and with no preconditioner (:math:`g` itself); ``damping`` is :math:`\lambda`, or with
    ``relative=True`` :math:`\lambda` is ``damping`` times the mean eigenvalue of :math:`F`,
    :math:`\operatorname{tr}F/n` (a trained network's Fisher is orders of magnitude smaller
    than an untrained one's, so a fixed :math:`\lambda` would compare a different amount of
    damping before and after training). The result's ``damping`` is the :math:`\lambda` used.
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
    if relative:
        damping = damping * float(full.diagonal().mean())
    eye = torch.eye(len(full), dtype=full.dtype)
    exact = torch.linalg.solve(full + damping * eye, g)
    return {"shape": (module.out_features, da), "fisher": fisher, "damping": damping,
            "kron_error": float(torch.linalg.matrix_norm(full - kron) / norm),
            "diagonal_error": float(torch.linalg.matrix_norm(full - torch.diag(full.diagonal()))
                                    / norm),
            "numbers_full": full.numel(), "numbers_kron": dg * dg + da * da,
            "numbers_diagonal": len(full),
            "cosine_kron": _cosine(exact, torch.linalg.solve(kron + damping * eye, g)),
            "cosine_diagonal": _cosine(exact, g / (full.diagonal() + damping)),
            "cosine_gradient": _cosine(exact, g)}


# --------------------------------------------------------------------------------------
# The chapter's written-out steps against curvlib's optimizers
# --------------------------------------------------------------------------------------
def step_differences(kfac_step, shampoo_step, steps=3, seed=0):
    """Largest absolute difference between the weights after ``steps`` steps of the
    chapter's ``kfac_step`` / ``shampoo_step`` and of curvlib's
    :class:`~curvlib.second_order.KFAC` / :class:`~curvlib.second_order.Shampoo` (float64, no
    momentum or KL clip, a refresh every other step) on a
    5-4-3 tanh network with random data. Returns ``{"K-FAC": ..., "Shampoo": ...}``."""
    from torch import nn

    out = {}
    for name in ("K-FAC", "Shampoo"):
        torch.manual_seed(seed)
        bias = name == "K-FAC"
        net = nn.Sequential(nn.Linear(5, 4, bias=bias), nn.Tanh(),
                            nn.Linear(4, 3, bias=bias)).double()
        linears = [net[0], net[2]]
        if bias:
            opt = KFAC(net, lr=0.3, damping=0.02, momentum=0.0, kl_clip=None,
                       inverse_interval=2, seed=seed)
            sampler = torch.Generator().manual_seed(seed)
        else:
            opt = Shampoo(net.parameters(), lr=0.05, beta1=0.7, beta2=0.95, epsilon=1e-7,
                          grafting="adam", graft_eps=1e-8, update_interval=2)
        states, worst = [{}, {}], 0.0
        gen = torch.Generator().manual_seed(seed + 1)
        for t in range(steps):
            x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 3, (16,), generator=gen)
            seen = []
            hooks = [m.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
                     for m in linears]
            net.eval()      # the optimizer's own hooks skip this pass
            out_ = net(x)
            net.train()
            for h in hooks:
                h.remove()
            params = [p for m in linears for p in m.parameters()]
            grads = torch.autograd.grad(F.cross_entropy(out_, y), params, retain_graph=True)
            if bias:
                u = torch.rand(len(x), generator=sampler, dtype=torch.float64)
                target = KFAC.sample_targets(out_, u)
                gs = torch.autograd.grad(F.cross_entropy(out_, target, reduction="sum"),
                                         [o for _, o in seen])
                mine = []
                for i, ((a, _), g) in enumerate(zip(seen, gs)):
                    a1 = torch.cat([a.detach(), torch.ones(len(a), 1, dtype=a.dtype)], 1)
                    W = torch.cat([linears[i].weight, linears[i].bias[:, None]], 1).detach()
                    grad = torch.cat([grads[2 * i], grads[2 * i + 1][:, None]], 1)
                    mine.append(kfac_step(W, grad, a1, g, states[i], 0.3, 0.02,
                                          refresh=t % 2 == 0))
            else:
                mine = [shampoo_step(m.weight.detach(), g, st, 0.05, 0.7, 0.95, 1e-7, 1e-8,
                                     refresh=t % 2 == 0)
                        for m, g, st in zip(linears, grads, states)]
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            for m, W in zip(linears, mine):
                got = torch.cat([m.weight, m.bias[:, None]], 1) if bias else m.weight
                worst = max(worst, float((got.detach() - W).abs().max()))
        out[name] = worst
    return out


# --------------------------------------------------------------------------------------
# The comparison: tune on one grid, report over seeds, record wall time
# --------------------------------------------------------------------------------------
def paired_interval(x, y, *, log=False, level=0.95):
    r"""The mean paired difference of ``x`` and ``y`` (one value per seed, same seeds) and
    its ``level`` confidence interval from Student's t with :math:`n-1` degrees of freedom:
    :math:`\bar d \pm t_{n-1}\, s_d/\sqrt n`, :math:`d_s = x_s - y_s`. With ``log=True`` the
    differences are of :math:`\ln x_s - \ln y_s` and the result is returned as ratios
    (``mean`` the geometric-mean ratio :math:`x/y`). ``verdict`` is ``"lower"`` or
    ``"higher"`` (``x`` against ``y``) when the interval excludes no difference, else
    ``"inconclusive"``; a non-finite value (a diverged run) makes it ``"inconclusive"``."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("x and y must be 1-D with the same length >= 2 (one value per seed)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(x) - np.log(y) if log else x - y
    if not np.all(np.isfinite(d)):
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "verdict": "inconclusive",
                "n": len(d)}
    n = len(d)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
    mean, low, high = d.mean(), d.mean() - half, d.mean() + half
    verdict = "lower" if high < 0 else "higher" if low > 0 else "inconclusive"
    if log:
        mean, low, high = math.exp(mean), math.exp(low), math.exp(high)
    return {"mean": float(mean), "low": float(low), "high": float(high), "verdict": verdict,
            "n": n}


@dataclass
class Race:
    """What :func:`run_race` measured.

    ``tunings[name]`` is the :class:`curvbook.kronecker_race.Tuning` of each entry and
    ``settings[name]`` its chosen hyperparameters; ``runs[name]`` a
    :class:`curvlib.compare.RunStats` of the reported runs of curvlib's own optimizer at
    that setting (per-step minibatch losses over the reporting seeds, final training loss,
    test accuracy); ``time[name]`` the wall-clock seconds after each step, ``(seeds,
    steps)``; ``models[name]`` and ``optimizers[name]`` the network and optimizer object of
    the first reporting seed (read the hyperparameters from ``optimizers[name].defaults``).
    """
    steps: int
    batch_size: int
    sizes: tuple
    seeds: tuple
    tune_seeds: tuple
    methods: dict
    tunings: dict
    settings: dict
    runs: dict
    time: dict
    models: dict = field(default_factory=dict)
    optimizers: dict = field(default_factory=dict)

    @property
    def names(self):
        return list(self.runs)

    def steps_to(self, target):
        """Per entry, the median over seeds of the first step whose minibatch loss is
        <= ``target`` (``inf`` if a seed never gets there)."""
        return {n: float(np.median(r.steps_to(target))) for n, r in self.runs.items()}

    def paired(self, a, b, metric="train_loss"):
        """:func:`paired_interval` of ``a`` against ``b`` over the reporting seeds: final
        training loss as a ratio (``"train_loss"``), test accuracy as a difference
        (``"val_acc"``)."""
        check_choice("metric", metric, ("train_loss", "val_acc"))
        return paired_interval(getattr(self.runs[a], metric), getattr(self.runs[b], metric),
                               log=metric == "train_loss")

    def ranking(self, metric="train_loss"):
        """The entries from best to worst by the mean over seeds (lowest loss, highest
        accuracy), with the paired verdict of each against the next:
        ``[(name, verdict against the next or None), ...]``."""
        sign = 1 if metric == "train_loss" else -1
        key = (lambda n: np.mean(np.log(self.runs[n].train_loss))) if metric == "train_loss" \
            else (lambda n: -np.mean(self.runs[n].val_acc))
        order = sorted(self.runs, key=lambda n: (key(n), n))
        out = []
        for i, n in enumerate(order):
            if i + 1 == len(order):
                out.append((n, None))
                continue
            v = self.paired(n, order[i + 1], metric)["verdict"]
            better = "lower" if sign > 0 else "higher"
            out.append((n, "separated" if v == better else "inconclusive"))
        return out


def describe(optimizer):
    """The hyperparameters of a race entry, read from the optimizer object itself
    (``optimizer.defaults``), as short text: what the chapter states."""
    d = optimizer.defaults
    g = lambda v: f"{v:.3g}"  # noqa: E731
    if isinstance(optimizer, KFAC):
        clip = "no KL clip" if d["kl_clip"] is None else f"KL clip {g(d['kl_clip'])}"
        return (f"lr {g(d['lr'])}, damping {g(d['damping'])}, {clip}; {d['fisher']} Fisher, "
                f"momentum {g(d['momentum'])}, factor decay {g(d['factor_decay'])}, "
                f"inverses every {d['inverse_interval']} steps")
    if isinstance(optimizer, Shampoo):
        graft = "no" if d["grafting"] is None else d["grafting"].replace("adam", "Adam").replace(
            "adagrad", "AdaGrad").replace("sgd", "SGD")
        return (f"lr {g(d['lr'])}, β₁ {g(d['beta1'])}, β₂ {g(d['beta2'])}, {graft} grafting; "
                f"ε {g(d['epsilon'])}, roots every {d['update_interval']} steps, "
                f"momentum {g(d['momentum'])}")
    if "betas" in d:
        return f"lr {g(d['lr'])}; β {tuple(float(b) for b in d['betas'])}, ε {g(d['eps'])}"
    return f"lr {g(d['lr'])}; momentum {g(d['momentum'])}"


def _report_run(method, setting, sizes, data, steps, batch_size, seed):
    from curvlib.train import train, evaluate

    model = mlp(list(sizes), "tanh", seed=seed)
    opt = build_optimizer(method, model, setting)
    res = train(model, opt, data.train, steps=steps, batch_size=batch_size, seed=seed,
                diverge_factor=runs.DIVERGE_FACTOR)
    loss, times = np.full(steps, np.nan), np.full(steps, np.nan)
    loss[res.step], times[res.step] = res.loss, res.time
    with torch.no_grad():
        model.eval()
        train_loss = float(F.cross_entropy(model(data.X_train), data.y_train))
        val_loss = float(F.cross_entropy(model(data.X_test), data.y_test))
    acc = evaluate(model, data.X_test, data.y_test)
    if res.diverged or not math.isfinite(train_loss):
        train_loss, val_loss, acc = math.inf, math.inf, 0.0
    return model, opt, loss, times, res.diverged_at, train_loss, val_loss, acc


def run_race(data, *, spaces=None, seeds=tuple(range(8)), tune_seeds=(100, 101, 102), steps=40,
             batch_size=256, margin=0.05, screen=2.0, sizes=DIGITS_SIZES):
    r"""Tune every entry by one protocol, then train each from the same reporting seeds.

    ``spaces`` maps a name to ``(method, axes, fixed)`` (default :func:`race_spaces`).
    Tuning: :func:`curvbook.kronecker_race.tune` (every setting from the first tuning seed,
    the finalists from all of ``tune_seeds``, the choice by the mean final training loss
    with a relative ``margin``, windows widened until the choice is inside them), on the
    batched fast path. Reporting: every entry at its chosen setting, trained by curvlib's
    own optimizer through :func:`curvlib.train.train` from each of ``seeds`` (at least five,
    disjoint from the tuning seeds), recording the loss and wall time of every step. A seed
    fixes the initial weights and the minibatch order, so at a given seed every entry starts
    from the same network and sees the same batches: the comparisons are paired.
    ``data`` is a :class:`curvlib.data.Split`. Returns a :class:`Race`.
    """
    spaces = dict(race_spaces() if spaces is None else spaces)
    if not spaces:
        raise ValueError("spaces must not be empty")
    for name, entry in spaces.items():
        if not (isinstance(entry, tuple) and len(entry) == 3):
            raise TypeError(f"spaces[{name!r}] must be (method, axes, fixed)")
    seeds = tuple(check_int("seeds", s, minimum=0) for s in seeds)
    if len(seeds) < 5:
        raise ValueError(f"seeds must hold at least 5 seeds for a fair comparison, got {len(seeds)}")
    tune_seeds = tuple(check_int("tune_seeds", s, minimum=0) for s in tune_seeds)
    if set(seeds) & set(tune_seeds):
        raise ValueError("tune_seeds must be disjoint from seeds (tuning runs are not reported)")
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    methods, tunings, settings, runs, times, models, opts = {}, {}, {}, {}, {}, {}, {}
    for name, (method, axes, fixed) in spaces.items():
        tu = tune(method, axes, data, fixed=fixed, tune_seeds=tune_seeds, steps=steps,
                  batch_size=batch_size, margin=margin, screen=screen, sizes=sizes)
        setting = dict(tu.best)
        out = [_report_run(method, setting, sizes, data, steps, batch_size, s) for s in seeds]
        methods[name], tunings[name], settings[name] = method, tu, setting
        models[name], opts[name] = out[0][0], out[0][1]
        runs[name] = compare.RunStats(
            name=name, lr=setting["lr"], seeds=seeds, loss=np.stack([o[2] for o in out]),
            grad_norm=np.full((len(seeds), steps), np.nan),
            train_loss=np.array([o[5] for o in out]), val_loss=np.array([o[6] for o in out]),
            val_acc=np.array([o[7] for o in out]),
            diverged=[(s, o[4]) for s, o in zip(seeds, out) if o[4] is not None])
        times[name] = np.stack([o[3] for o in out])
    return Race(steps=steps, batch_size=batch_size, sizes=tuple(sizes), seeds=seeds,
                tune_seeds=tune_seeds, methods=methods, tunings=tunings, settings=settings,
                runs=runs, time=times, models=models, optimizers=opts)


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


def plot_comparison(result, flops_per_step=None, axes=None, names=None):
    """Minibatch loss against steps and against wall time (mean and a band of one standard
    deviation of the log loss over seeds) for the entries ``names`` of a :class:`Race`
    (default all); with ``flops_per_step`` (a dict entry -> :func:`step_flops`) also against
    the cumulative floating-point operations, the deterministic cost proxy. Wall time varies
    from run to run and machine to machine, so it is shown here and never quoted as a number.
    Returns the axes."""
    import matplotlib.pyplot as plt
    from curvlib import plots

    names = list(result.runs) if names is None else list(names)
    unknown = set(names) - set(result.runs)
    if unknown:
        raise ValueError(f"names has entries the race does not: {sorted(unknown)}")
    panels = 2 if flops_per_step is None else 3
    if flops_per_step is not None:
        missing = set(names) - set(flops_per_step)
        if missing:
            raise ValueError(f"flops_per_step lacks {sorted(missing)}")
    if axes is None:
        _, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), layout="constrained")
    steps = np.arange(1, result.steps + 1)
    for i, name in enumerate(names):
        r = result.runs[name]
        color = f"C{i}"
        label = f"{name} (lr={r.lr:.3g})"
        plots.mean_band(steps, r.loss, ax=axes[0], log_y=True, color=color, label=label)
        grid, res = time_grid_losses(r.loss, result.time[name])
        plots.mean_band(grid * 1e3, res, ax=axes[1], log_y=True, color=color, label=label,
                        xlabel="wall time (ms)")
        if panels == 3:
            plots.mean_band(steps * flops_per_step[name] / 1e6, r.loss, ax=axes[2], log_y=True,
                            color=color, label=label, xlabel="cumulative Mflop (cost proxy)")
    for ax in axes:
        plots.plain_log_ticks(ax, "y")
    n = len(result.runs[names[0]].seeds)
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


def resnet50_state_bytes(dtype="float32", max_preconditioner_dim=None):
    r"""Optimizer-state bytes of each method for ResNet-50 (:func:`curvlib.memory.resnet_layers`).

    K-FAC treats a convolution with :math:`c_\text{in}` input and :math:`c_\text{out}` output
    channels and a :math:`k\times k` kernel as a layer with :math:`c_\text{in}k^2` inputs
    (Grosse & Martens, 2016, "A Kronecker-factored approximate Fisher matrix for convolution
    layers", ICML), with full factors however large (up to :math:`4608^2` for the last
    stage's :math:`3\times3` convolutions); batch-norm parameters take plain SGD-momentum
    steps. Shampoo preconditions every dimension of every weight tensor (including the 1-D
    batch-norm vectors) with a full factor too by default (``max_preconditioner_dim=None``),
    so the two are counted alike; an integer leaves larger dimensions unpreconditioned, as
    curvlib's :class:`~curvlib.second_order.Shampoo` does. Counted with meta tensors, so
    nothing is allocated.
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
            "Shampoo": shampoo_bytes(tensors, max_preconditioner_dim=max(
                max(t.shape) for t in tensors) if max_preconditioner_dim is None else
                check_int("max_preconditioner_dim", max_preconditioner_dim, minimum=1)),
            "Hessian": memory.hessian_bytes(n, dtype)}


def step_flops(layers, method, batch_size, *, bias=True, factor_interval=1,
               inverse_interval=10, fisher="true"):
    r"""Floating-point operations of one training step, leading terms: a cost proxy.

    For ``nn.Linear`` layers ``[(n_in, n_out), ...]`` and a batch of :math:`B` examples, per
    layer with :math:`d_a = n_\text{in}+1` (bias), :math:`d_g = n_\text{out}`,
    :math:`p = d_a d_g` parameters:

    * every method: forward and backward, :math:`6Bp` (one multiply-add per weight and
      example forward, two backward);
    * SGD+momentum :math:`3p`, Adam :math:`12p` for the update arithmetic;
    * K-FAC: factor statistics :math:`2B(d_a^2+d_g^2)` every ``factor_interval`` steps
      (they grow with the batch), with ``fisher="true"`` a second backward pass for the
      sampled targets, :math:`2Bp` for every layer but the first, as often; the two
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
    check_choice("fisher", fisher, ("true", "empirical"))
    eig = lambda n: memory.inversion_flops(n, "eig")  # noqa: E731
    total = 0.0
    for i, (n_in, n_out) in enumerate(pairs):
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
            if fisher == "true" and i > 0:
                total += 2.0 * B * p / fi
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
    once in one vectorised model (:func:`torch.vmap`; Adam is elementwise, so each seed's
    run is exactly its own), and the accuracy is read at every budget. Returns
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
    nets = [mlp(list(sizes), "tanh", seed=s) for s in seeds]
    template = nets[0]
    names = [n for n, _ in template.named_parameters()]
    leaves = [torch.stack([dict(m.named_parameters())[n].detach() for m in nets]).requires_grad_()
              for n in names]
    opt = optim.Adam(leaves, lr=lr)
    call = lambda p, x: torch.func.functional_call(template, p, (x,))  # noqa: E731
    loss = torch.vmap(lambda p, x, y: F.cross_entropy(call(p, x), y))
    evaluate = torch.vmap(call, in_dims=(0, None))
    X, y = data.X_train, data.y_train
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    n, cursor, order = len(X), len(X), None
    acc = np.zeros((len(seeds), len(budgets)))
    for t in range(1, budgets[-1] + 1):
        if cursor + batch_size > n:
            order, cursor = torch.stack([torch.randperm(n, generator=g) for g in gens]), 0
        idx = order[:, cursor:cursor + batch_size]
        cursor += batch_size
        opt.zero_grad()
        loss(dict(zip(names, leaves)), X[idx], y[idx]).sum().backward()
        opt.step()
        if t in budgets:
            with torch.no_grad():
                pred = evaluate(dict(zip(names, leaves)), data.X_test).argmax(-1)
            acc[:, budgets.index(t)] = (pred == data.y_test).double().mean(1).numpy()
    rates = {tgt: (acc >= tgt).mean(0) for tgt in targets}
    return {"budgets": budgets, "rates": rates, "accuracy": acc}


# --------------------------------------------------------------------------------------
# AlgoPerf: the published results
# --------------------------------------------------------------------------------------
#: Scores of the first AlgoPerf: Training Algorithms competition (leaderboard v0.5, benchmark
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


#: The widget's layer sizes: six positions per slider, a factor 4 apart.
WIDGET_SIZES = (16, 64, 256, 1024, 4096, 16384)


def cost_explorer(d_in=WIDGET_SIZES, d_out=WIDGET_SIZES, batch_sizes=(32, 1024)):
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
        # room for the longest method name at the left (fixed margins keep a redraw cheap)
        fig.subplots_adjust(left=0.2, right=0.98, wspace=0.08)
        y = np.arange(len(names))[::-1]
        ax1.barh(y, [row[m] for m in names], color=[colors[m] for m in names])
        ax1.set_yticks(y, names, fontsize=9)
        ax1.set_xscale("log")
        ax1.set_xlim(1e2, 1e19)
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
        ax2.set_xlim(0.5, 1e6)
        ax2.set_xticks([1, 100, 1e4], ["1x", "100x", "10000x"])
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
                    initial={"d_in": d_in[len(d_in) // 2], "d_out": d_out[len(d_out) // 2]},
                    figsize=(7.2, 3.2),
                    alt="Bar charts of optimizer-state bytes and flops per step for SGD, Adam, "
                        "K-FAC and Shampoo on one linear layer")


EXPLORERS = [cost_explorer]
