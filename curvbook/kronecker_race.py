r"""Chapter 6's race, batched: many training runs of one method at once, for the tuning.

A fair race tunes every method over the hyperparameters that matter for it, from several
tuning seeds. Run one at a time through :func:`curvlib.train.train`, the grids of K-FAC
(learning rate x damping) and Shampoo (learning rate x first moment x grafting x statistics
decay) would take minutes, because a step of a tiny network is mostly Python overhead. Here
all runs of one method train *together*: every run's weights are stacked along a leading
axis of length :math:`R`, the tanh MLP's forward and backward passes are written out for the
stack (:math:`s_l = a_l W_l^\top + b_l`, :math:`\delta_{l-1} = (\delta_l W_l)\odot(1-a_l^2)`),
and each method's update is the one of its curvlib class applied to all :math:`R` runs with
batched linear algebra (one batched ``eigh`` per factor). Each run keeps its own initial
weights (:func:`curvlib.models.mlp` from its seed), its own minibatch order (the generator of
:func:`curvlib.train.train`) and its own hyperparameters, and stops at the divergence rule of
:mod:`curvlib.compare`. The results equal the reference runs through curvlib's optimizer
classes up to floating-point rounding (``tests/test_curvbook_kronecker.py`` checks all four
methods), so this is a fast path, not a second implementation of record: the chapter reports
only runs of the real classes.

:func:`race_runs` trains one batch; :func:`tune` is the tuning protocol of the chapter.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from curvlib import compare, runs
from curvlib._checks import check_choice, check_int, check_positive
from curvlib.models import mlp
from curvlib.second_order import KFAC, kfac_layers

__all__ = ["METHODS", "STATIC", "race_runs", "Tuning", "tune", "choose"]

#: The methods :func:`race_runs` trains.
METHODS = ("SGD+momentum", "Adam", "K-FAC", "Shampoo")
#: Hyperparameters that must be the same for every run of one batch (they change the
#: program, not a number): :func:`tune` groups its settings by them.
STATIC = ("grafting", "fisher", "inverse_interval", "update_interval", "factor_interval")

_DEFAULTS = {
    "SGD+momentum": dict(momentum=0.9),
    "Adam": dict(beta1=0.9, beta2=0.999, eps=1e-8),
    "K-FAC": dict(damping=1e-2, factor_decay=0.95, momentum=0.9, inverse_interval=10,
                  factor_interval=1, kl_clip=1e-2, fisher="true", seed=0),
    "Shampoo": dict(momentum=0.0, beta1=0.0, beta2=1.0, epsilon=1e-12, update_interval=1,
                    grafting="adagrad", graft_eps=1e-10, graft_beta2=None),
}


# --------------------------------------------------------------------------------------
# The stacked network
# --------------------------------------------------------------------------------------
def _stack(sizes, seeds, copies):
    """Initial (weights, biases) of ``mlp(sizes, seed=s)``, stacked seed-minor: run
    ``k * len(seeds) + j`` starts from seed ``seeds[j]``."""
    nets = [kfac_layers(mlp(list(sizes), "tanh", seed=s)) for s in seeds]
    W = [torch.stack([n[i].weight.detach() for n in nets]).repeat(copies, 1, 1)
         for i in range(len(nets[0]))]
    b = [torch.stack([n[i].bias.detach() for n in nets]).repeat(copies, 1)
         for i in range(len(nets[0]))]
    return W, b


def _linear(h, w, c, S):
    """``h w^T + c`` for every run. The first layer's input is shared by all runs of one seed,
    ``h`` of shape (S, B, d): it is multiplied without a copy per run."""
    R = w.shape[0]
    if h.shape[0] == S and R != S:
        K = R // S
        out = torch.einsum("sbi,ksoi->ksbo", h, w.reshape(K, S, *w.shape[1:]))
        return out.reshape(R, h.shape[1], -1) + c[:, None, :]
    return torch.baddbmm(c[:, None, :], h, w.transpose(1, 2))


def _forward(W, b, X, S):
    """Inputs of every layer and the logits; ``X`` is (S, B, d), one minibatch per seed."""
    acts, h = [], X
    for i, (w, c) in enumerate(zip(W, b)):
        acts.append(h)
        s = _linear(h, w, c, S)
        h = torch.tanh(s) if i < len(W) - 1 else s
    return acts, h


def _backward(W, acts, delta):
    """Output gradients of every layer from the logits' ``delta``: (R, B, m_l) each."""
    out = [delta]
    for i in range(len(W) - 1, 0, -1):
        out.insert(0, (out[0] @ W[i]) * (1 - acts[i] ** 2))
    return out


def _outer(delta, a, S):
    """Per-run weight gradient ``delta^T a`` (R, m, n); ``a`` may be shared per seed."""
    R = delta.shape[0]
    if a.shape[0] == S and R != S:
        K = R // S
        return torch.einsum("ksbo,sbi->ksoi", delta.reshape(K, S, *delta.shape[1:]),
                            a).reshape(R, delta.shape[2], a.shape[2])
    return delta.transpose(1, 2) @ a


def _per_run_loss(logits, y):
    R, B, C = logits.shape
    return F.cross_entropy(logits.reshape(-1, C), y.reshape(-1), reduction="none").reshape(R, B)


def _eigh(M, runs):
    """Eigendecomposition (float64, eigenvalues clamped at 0) of the runs ``runs`` of the
    stack ``M``; the others get the identity."""
    d = torch.ones(M.shape[:-1], dtype=M.dtype)
    Q = torch.eye(M.shape[-1], dtype=M.dtype).expand_as(M).clone()
    if runs.any():
        dd, QQ = torch.linalg.eigh(M[runs].double())
        d[runs], Q[runs] = dd.clamp_min(0).to(M.dtype), QQ.to(M.dtype)
    return d, Q


def _col(values, like):
    """A per-run hyperparameter as a tensor broadcastable against ``like`` (R, ...)."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def _mask(alive, like):
    """The runs still training, as a boolean tensor broadcastable against ``like``."""
    return alive.reshape((-1,) + (1,) * (like.ndim - 1)) > 0


def _sgd(p, d, state, key, lr, momentum, alive):
    """torch.optim.SGD's step (the buffer starts as the first direction) for the runs
    ``alive``; the others keep their weights (their state is never read again)."""
    state[key] = d.clone() if key not in state else _col(momentum, d) * state[key] + d
    return torch.where(_mask(alive, p), p - _col(lr, p) * state[key], p)


# --------------------------------------------------------------------------------------
# One step of each method for the whole stack
# --------------------------------------------------------------------------------------
def _step_sgd(W, b, gW, gb, state, hp, t, alive, ctx):
    W = [_sgd(w, g, state, ("W", i), hp["lr"], hp["momentum"], alive) for i, (w, g) in
         enumerate(zip(W, gW))]
    b = [_sgd(c, g, state, ("b", i), hp["lr"], hp["momentum"], alive) for i, (c, g) in
         enumerate(zip(b, gb))]
    return W, b


def _adam_one(p, g, state, key, hp, t, alive):
    b1, b2, lr = _col(hp["beta1"], p), _col(hp["beta2"], p), _col(hp["lr"], p)
    m = b1 * state.get(("m",) + key, 0.0) + (1 - b1) * g
    v = b2 * state.get(("v",) + key, 0.0) + (1 - b2) * g * g
    state[("m",) + key], state[("v",) + key] = m, v
    step = lr / (1 - b1 ** t)
    denom = v.sqrt() / (1 - b2 ** t).sqrt() + _col(hp["eps"], p)
    return torch.where(_mask(alive, p), p - step * m / denom, p)


def _step_adam(W, b, gW, gb, state, hp, t, alive, ctx):
    W = [_adam_one(w, g, state, ("W", i), hp, t + 1, alive) for i, (w, g) in
         enumerate(zip(W, gW))]
    b = [_adam_one(c, g, state, ("b", i), hp, t + 1, alive) for i, (c, g) in
         enumerate(zip(b, gb))]
    return W, b


def _step_kfac(W, b, gW, gb, state, hp, t, alive, ctx):
    static = ctx["static"]
    R = W[0].shape[0]
    directions = []
    for i in range(len(W)):
        a = ctx["acts"][i]
        a = torch.cat([a, a.new_ones(a.shape[:-1] + (1,))], -1)          # (R or S, B, n+1)
        delta = ctx["fisher_deltas"][i]                                   # (R, B, m)
        B = a.shape[1]
        A_hat = a.transpose(1, 2) @ a / B
        if A_hat.shape[0] != R:                                           # shared per seed
            A_hat = A_hat.repeat(R // A_hat.shape[0], 1, 1)
        G_hat = delta.transpose(1, 2) @ delta / B
        if t % static["factor_interval"] == 0:
            if ("A", i) not in state:
                state[("A", i)], state[("G", i)] = A_hat, G_hat
            else:
                eps = _col(hp["factor_decay"], A_hat)
                for key, new in ((("A", i), A_hat), (("G", i), G_hat)):
                    state[key] = eps * state[key] + (1 - eps) * new
        if t % static["inverse_interval"] == 0 or ("QA", i) not in state:
            ok = (alive > 0) & torch.isfinite(state[("A", i)]).reshape(R, -1).all(1) \
                & torch.isfinite(state[("G", i)]).reshape(R, -1).all(1)
            state[("dA", i)], state[("QA", i)] = _eigh(state[("A", i)], ok)
            state[("dG", i)], state[("QG", i)] = _eigh(state[("G", i)], ok)
            state["bad"] = state.get("bad", torch.zeros(R, dtype=torch.bool)) | ((alive > 0) & ~ok)
        grad = torch.cat([gW[i], gb[i][:, :, None]], 2)                  # (R, m, n+1)
        QA, QG = state[("QA", i)], state[("QG", i)]
        V = QG.transpose(1, 2) @ grad @ QA
        V = V / (state[("dG", i)][:, :, None] * state[("dA", i)][:, None, :]
                 + _col(hp["damping"], V))
        directions.append((QG @ V @ QA.transpose(1, 2), grad))
    lr = hp["lr"].double()
    vg = sum((d.double() * g.double()).sum((1, 2)) for d, g in directions) * lr ** 2
    kl = hp["kl_clip"].double()
    nu = torch.where(vg > 0, torch.minimum(torch.ones_like(vg), (kl / vg).sqrt()),
                     torch.ones_like(vg)).to(W[0].dtype)
    newW, newb = [], []
    for i, (delta, _) in enumerate(directions):
        delta = _col(nu, delta) * delta
        newb.append(_sgd(b[i], delta[:, :, -1], state, ("bufb", i), hp["lr"], hp["momentum"],
                         alive))
        newW.append(_sgd(W[i], delta[:, :, :-1], state, ("bufW", i), hp["lr"], hp["momentum"],
                         alive))
    return newW, newb


def _decay(buffer, beta, update):
    """Shampoo's ``_decay`` for a stack: an average when beta < 1, the sum when beta = 1."""
    weight = torch.where(beta < 1, 1 - beta, torch.ones_like(beta))
    return _col(beta, update) * buffer + _col(weight, update) * update


def _shampoo_one(p, g, state, key, hp, t, alive, static):
    """One Shampoo step for a stack of matrices (R, m, n) or vectors (R, m); ``t`` counts
    from 1."""
    R = p.shape[0]
    beta1, beta2 = hp["beta1"], hp["beta2"]
    zeros = torch.zeros_like(g)
    f = state[("f",) + key] = _decay(state.get(("f",) + key, zeros), beta1, g)
    M = f / _col(1 - beta1.double() ** t, f)                    # the filtered gradient
    correction = torch.where(beta2 < 1, 1 - beta2.double() ** t, torch.ones_like(beta2.double()))
    if p.ndim == 3:   # a matrix: L = G G^T and R = G^T G, exponent -1/4
        outers, power = [g @ g.transpose(1, 2), g.transpose(1, 2) @ g], -0.25
    else:             # a vector: full-matrix AdaGrad, exponent -1/2
        outers, power = [g[:, :, None] * g[:, None, :]], -0.5
    roots = []
    for i, outer in enumerate(outers):
        H = state[("H", i) + key] = _decay(state.get(("H", i) + key, 0 * outer), beta2, outer)
        if (t - 1) % static["update_interval"] == 0:
            ok = alive.bool() & torch.isfinite(H).reshape(R, -1).all(1)
            P = torch.eye(H.shape[-1], dtype=torch.float64).expand(R, -1, -1).clone()
            if ok.any():
                d, Q = torch.linalg.eigh(H[ok].double() / _col(correction[ok], H[ok]))
                root = (d.clamp_min(0) + _col(hp["epsilon"][ok].double(), d)) ** power
                P[ok] = (Q * root[:, None, :]) @ Q.transpose(1, 2)
            state[("P", i) + key] = P.to(p.dtype)
            state["bad"] = state.get("bad", torch.zeros(R, dtype=torch.bool)) | (alive.bool() & ~ok)
        roots.append(state[("P", i) + key])
    pre = roots[0] @ M @ roots[1] if p.ndim == 3 else (roots[0] @ M[:, :, None])[:, :, 0]
    grafting = static["grafting"]
    if grafting is None:
        D = pre
    else:
        if grafting in ("adagrad", "adam"):
            beta = torch.ones_like(beta2) if grafting == "adagrad" else hp["graft_beta2"]
            v = state[("v",) + key] = _decay(state.get(("v",) + key, zeros), beta, g * g)
            corr = torch.where(beta < 1, 1 - beta.double() ** t, torch.ones_like(beta.double()))
            graft = M / ((v / _col(corr, v)).sqrt() + _col(hp["graft_eps"], g))
        else:
            graft = M
        norm_pre = torch.linalg.vector_norm(pre.reshape(R, -1), dim=1)
        norm_graft = torch.linalg.vector_norm(graft.reshape(R, -1), dim=1)
        scale = norm_graft / torch.where(norm_pre == 0, torch.ones_like(norm_pre), norm_pre)
        D = torch.where(_col(norm_pre, pre) == 0, graft, pre * _col(scale, pre))
    return _sgd(p, D, state, ("buf",) + key, hp["lr"], hp["momentum"], alive)


def _step_shampoo(W, b, gW, gb, state, hp, t, alive, ctx):
    W = [_shampoo_one(w, g, state, ("W", i), hp, t + 1, alive, ctx["static"])
         for i, (w, g) in enumerate(zip(W, gW))]
    b = [_shampoo_one(c, g, state, ("b", i), hp, t + 1, alive, ctx["static"])
         for i, (c, g) in enumerate(zip(b, gb))]
    return W, b


_STEPS = {"SGD+momentum": _step_sgd, "Adam": _step_adam, "K-FAC": _step_kfac,
          "Shampoo": _step_shampoo}
def _settings_table(method, settings):
    """Full hyperparameters of every setting (method defaults filled in), the static ones
    checked equal, the numeric ones as float tensors of one entry per setting."""
    check_choice("method", method, METHODS)
    settings = [dict(s) for s in settings]
    if not settings:
        raise ValueError("settings must not be empty")
    full = []
    for s in settings:
        if "lr" not in s:
            raise ValueError(f"every setting needs an 'lr', got {s!r}")
        unknown = set(s) - set(_DEFAULTS[method]) - {"lr"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for {method}")
        full.append({**_DEFAULTS[method], **s})
    static = {k: full[0][k] for k in STATIC if k in full[0]}
    for s in full:
        for k, v in static.items():
            if s[k] != v:
                raise ValueError(f"{k} must be the same in every setting of one batch "
                                 f"(got {v!r} and {s[k]!r}); tune() groups settings by it")
    if any(s.get("seed", 0) != 0 for s in full):
        raise ValueError("race_runs samples the K-FAC targets with seed 0 only")
    numeric = {}
    for k in full[0]:
        if k in static or k == "seed":
            continue
        vals = []
        for s in full:
            v = s[k]
            if k == "kl_clip" and v is None:
                v = math.inf
            if k == "graft_beta2" and v is None:
                v = s["beta2"]
            vals.append(float(v))
        numeric[k] = torch.tensor(vals, dtype=torch.float32)
    return full, static, numeric


def race_runs(method, settings, seeds, data, *, steps, batch_size, sizes=(64, 32, 10)):
    """Train ``method`` at every setting from every seed, all runs at once.

    ``settings`` is a list of dicts of the method's hyperparameters (curvlib's names, e.g.
    ``{"lr": 0.1, "damping": 1e-3}``; unlisted ones take the class defaults); the runs are
    setting-major (run ``k * len(seeds) + j`` is setting ``k`` from seed ``seeds[j]``).
    ``data`` is a :class:`curvlib.data.Split` (or ``(X_train, y_train, X_test, y_test)``).
    Returns a dict of numpy arrays: ``loss`` (runs, steps) minibatch losses before each
    update (NaN from a divergence on), ``train_loss``, ``val_loss``, ``val_acc`` (final, full
    splits; ``inf``/``inf``/0 for a diverged run) and ``diverged_at`` (step or -1).
    """
    full, static, hp = _settings_table(method, settings)
    seeds = [check_int("seeds", s, minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    X_tr, y_tr, X_va, y_va = compare.as_split(data)
    n = len(X_tr)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= {n}, got {batch_size}")
    K, S = len(full), len(seeds)
    R = K * S
    hp = {k: v.repeat_interleave(S) for k, v in hp.items()}
    W, b = _stack(sizes, seeds, K)
    X_tr, X_va = X_tr.to(W[0].dtype), X_va.to(W[0].dtype)
    state, ctx = {}, {"static": static}
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    sampler = torch.Generator().manual_seed(0) if method == "K-FAC" else None
    orders, cursor = None, n
    losses = np.full((R, steps), np.nan)
    diverged = np.full(R, -1)
    alive = torch.ones(R)
    first = None
    step = _STEPS[method]
    C = sizes[-1]
    for t in range(steps):
        if cursor + batch_size > n:
            orders, cursor = torch.stack([torch.randperm(n, generator=g) for g in gens]), 0
        idx = orders[:, cursor:cursor + batch_size]                    # (S, B): per seed
        cursor += batch_size
        xb, yb = X_tr[idx], y_tr[idx]
        onehot = F.one_hot(yb, C).to(xb.dtype).repeat(K, 1, 1)         # (R, B, C)
        acts, logits = _forward(W, b, xb, S)
        loss = _per_run_loss(logits, yb.repeat(K, 1)).mean(1)
        probs = torch.softmax(logits, -1)
        deltas = _backward(W, acts, (probs - onehot) / batch_size)
        gW = [_outer(d, a, S) for d, a in zip(deltas, acts)]
        gb = [d.sum(1) for d in deltas]
        value = loss.double()
        if first is None:
            first = torch.where(torch.isfinite(value), value.abs(), 1.0).clamp(min=1.0)
        gnorm = torch.sqrt(sum((g.double() ** 2).sum((1, 2)) for g in gW)
                           + sum((g.double() ** 2).sum(1) for g in gb))
        live = alive > 0
        bad = live & (~torch.isfinite(value) | ~torch.isfinite(gnorm)
                      | (value > runs.DIVERGE_FACTOR * first))
        losses[live.numpy(), t] = value.numpy()[live.numpy()]
        if method == "K-FAC":
            if static["fisher"] == "true" and t % static["factor_interval"] == 0:
                u = torch.rand(batch_size, generator=sampler, dtype=torch.float64)
                target = KFAC.sample_targets(logits.reshape(-1, C), u.repeat(R))
                sampled = F.one_hot(target, C).to(probs.dtype).reshape(R, batch_size, C)
                ctx["fisher_deltas"] = _backward(W, acts, probs - sampled)
            else:
                ctx["fisher_deltas"] = [d * batch_size for d in deltas]
            ctx["acts"] = acts
        # a run that fails the divergence test still takes this step in train(); its
        # results are discarded either way, so it is frozen here instead
        for i in torch.nonzero(bad).flatten().tolist():
            diverged[i] = t
        alive = alive * (~bad).to(alive.dtype)
        if not (alive > 0).any():
            break
        W, b = step(W, b, gW, gb, state, hp, t, alive, ctx)
        late = state.pop("bad", None)
        if late is not None and late.any():
            for i in torch.nonzero(late).flatten().tolist():
                diverged[i] = t
            alive = alive * (~late).to(alive.dtype)
    with torch.no_grad():
        _, out_tr = _forward(W, b, X_tr[None], 1)
        _, out_va = _forward(W, b, X_va[None], 1)
        train_loss = _per_run_loss(out_tr, y_tr.expand(R, -1)).double().mean(1).numpy()
        val_loss = _per_run_loss(out_va, y_va.expand(R, -1)).double().mean(1).numpy()
        val_acc = (out_va.argmax(-1) == y_va).double().mean(1).numpy()
    bad = (diverged >= 0) | ~np.isfinite(train_loss) | ~np.isfinite(val_loss)
    diverged[bad & (diverged < 0)] = steps
    train_loss[bad], val_loss[bad], val_acc[bad] = np.inf, np.inf, 0.0
    for i in np.nonzero(diverged >= 0)[0]:
        losses[i, diverged[i]:] = np.nan
    return {"loss": losses, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
            "diverged_at": diverged, "settings": full, "seeds": tuple(seeds)}


# --------------------------------------------------------------------------------------
# The tuning protocol
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One tuned hyperparameter: the ``ladder`` of values it may take, in order along its
    scale, the window ``ladder[lo:hi+1]`` tried first, and which value wins a tie: the
    smallest (``prefer="low"``, for learning rates) or the one nearest ``home`` (the
    published value the search starts from). ``ordered=False`` marks a categorical choice
    (no edges)."""
    ladder: tuple
    lo: int
    hi: int
    home: object = None
    prefer: str = "home"
    ordered: bool = True

    def __post_init__(self):
        if not 0 <= self.lo <= self.hi < len(self.ladder):
            raise ValueError(f"window [{self.lo}, {self.hi}] outside the ladder {self.ladder}")
        check_choice("prefer", self.prefer, ("low", "home"))
        if self.prefer == "home" and self.home not in self.ladder:
            raise ValueError(f"home {self.home!r} is not on the ladder {self.ladder}")

    def rank(self, value):
        i = self.ladder.index(value)
        return (i,) if self.prefer == "low" else (abs(i - self.ladder.index(self.home)), i)


def half_decades(lo_exp, hi_exp):
    """``10**(k/2)`` for integer k in [lo_exp, hi_exp]: a grid half a decade apart."""
    return tuple(float(10 ** (k / 2)) for k in range(lo_exp, hi_exp + 1))


@dataclass
class Tuning:
    """What :func:`tune` tried and chose for one method.

    A setting is a tuple of the axes' values in ``names`` order. ``per_seed[setting]`` holds
    its final training losses from the tuning seeds (NaN where it was screened out after the
    first); ``scores[setting]`` the mean over all tuning seeds, for the finalists (``inf`` if
    a run diverged). ``windows[categorical values][name]`` are the values tried last;
    ``best`` the chosen setting (with the fixed hyperparameters), ``argmin`` the finalist
    with the lowest score, ``tied`` the finalists within the margin of it.
    ``at_edge[name]``: the choice sits at an end of its window that is not an end of the
    ladder (the grid was too narrow: never, once :func:`tune` returns, unless
    ``max_rounds`` ran out); ``at_range_end[name]``: it sits at an end of the ladder itself.
    ``runs`` counts the training runs, ``rounds`` the widening rounds.
    """
    method: str
    names: tuple
    axes: dict
    fixed: dict
    tune_seeds: tuple
    margin: float
    scores: dict
    windows: dict
    best: dict
    argmin: dict
    tied: list
    at_edge: dict
    at_range_end: dict
    rounds: int
    runs: int = 0
    per_seed: dict = field(default_factory=dict)

    @property
    def screened(self):
        """Settings trained from the first tuning seed."""
        return len(self.per_seed)

    @property
    def finalists(self):
        """Settings trained from every tuning seed."""
        return len(self.scores)

    def score(self, setting):
        """The score of ``setting`` (a dict with at least the tuned names)."""
        return self.scores[tuple(setting[n] for n in self.names)]


def choose(scores, axes, names, margin):
    """The protocol's choice: among the settings whose score is within ``margin`` (relative)
    of the lowest, the one each axis prefers (smallest learning rate first, then the values
    nearest the published ones). Returns ``(chosen, argmin, tied)``."""
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    if not finite:
        raise RuntimeError("every setting diverged; extend the grid")
    argmin = min(finite, key=lambda k: (finite[k], [axes[n].rank(v) for n, v in zip(names, k)]))
    limit = finite[argmin] * (1 + margin)
    tied = [k for k, v in finite.items() if v <= limit]
    chosen = min(tied, key=lambda k: [axes[n].rank(v) for n, v in zip(names, k)])
    return chosen, argmin, tied


def _train(method, keys, names, fixed, seeds, data, steps, batch_size, sizes, runs):
    """Final training losses of settings ``keys`` from ``seeds``: (len(keys), len(seeds))."""
    out = race_runs(method, [{**fixed, **dict(zip(names, k))} for k in keys], seeds, data,
                    steps=steps, batch_size=batch_size, sizes=sizes)
    runs[0] += len(keys) * len(seeds)
    return out["train_loss"].reshape(len(keys), len(seeds))


def _search(method, axes, names, fixed, data, tune_seeds, steps, batch_size, margin,
            max_rounds, sizes, screen, results, runs):
    """Steps 1-4 of :func:`tune` for ordered axes only; fills ``results`` (setting ->
    losses per tuning seed, NaN where not trained) and returns (windows, rounds)."""
    lo = {n: axes[n].lo for n in names}
    hi = {n: axes[n].hi for n in names}
    S = len(tune_seeds)
    rounds = 0
    while True:
        rounds += 1
        windows = {n: axes[n].ladder[lo[n]:hi[n] + 1] for n in names}
        keys = list(itertools.product(*(windows[n] for n in names)))
        todo = [k for k in keys if k not in results]
        if todo:   # step 1: every new setting from the first tuning seed
            for k, row in zip(todo, _train(method, todo, names, fixed, tune_seeds[:1], data,
                                           steps, batch_size, sizes, runs)):
                results[k] = np.concatenate([row, np.full(S - 1, np.nan)])
        first = {k: results[k][0] for k in keys}
        best = min(first.values())
        if not math.isfinite(best):
            raise RuntimeError(f"every setting of {method} diverged; extend the grid")
        finalists = [k for k in keys if first[k] <= screen * best]
        todo = [k for k in finalists if np.isnan(results[k][1:]).any()]
        if todo and S > 1:   # step 2: the finalists from the other tuning seeds
            for k, row in zip(todo, _train(method, todo, names, fixed, tune_seeds[1:], data,
                                           steps, batch_size, sizes, runs)):
                results[k][1:] = row
        chosen, argmin, _ = choose({k: float(np.mean(results[k])) for k in finalists}, axes,
                                   names, margin)
        moved = False
        for j, n in enumerate(names):
            for k in (chosen, argmin):
                i = axes[n].ladder.index(k[j])
                if i == lo[n] and lo[n] > 0:
                    lo[n], moved = lo[n] - 1, True
                if i == hi[n] and hi[n] < len(axes[n].ladder) - 1:
                    hi[n], moved = hi[n] + 1, True
        if not moved or rounds >= max_rounds:
            return windows, rounds


def tune(method, axes, data, *, fixed=None, tune_seeds=(100, 101, 102), steps=40,
         batch_size=256, margin=0.05, screen=2.0, max_rounds=8, sizes=(64, 32, 10)):
    r"""Tune ``method`` over ``axes`` by the chapter's protocol; returns a :class:`Tuning`.

    1. Train every combination of the ordered axes' current windows (with ``fixed`` for
       the rest) from the first of ``tune_seeds`` (never the reporting seeds) for ``steps``
       minibatch steps, and score it by its final training loss.
    2. The finalists, every setting within a factor ``screen`` of the best score of step 1,
       are trained from the other tuning seeds too; a finalist's score is its mean final
       training loss over all tuning seeds. (Screening on one seed is successive halving,
       Jamieson & Talwalkar, 2016, "Non-stochastic best arm identification and
       hyperparameter optimization", AISTATS, with a relative cut instead of a fixed share.)
    3. Choose with a margin: finalists within ``margin`` (relative) of the lowest score are
       tied, and the tie goes to the smallest learning rate, then to the values nearest the
       published ones (:func:`choose`). A near-tie is thus decided the same way on every
       machine instead of by rounding.
    4. If the chosen or the lowest-scoring setting sits at an end of a window that is not an
       end of its ladder, widen that window by one rung and go back to 1 (only new settings
       are trained). Stop when nothing moves, or after ``max_rounds``.

    A categorical axis (``ordered=False``, e.g. the grafting type) has no edges: steps 1-3
    run separately for each of its values, with their own windows, and step 3 then chooses
    among all finalists.
    """
    check_choice("method", method, METHODS)
    if not axes or "lr" not in axes:
        raise ValueError("axes must include 'lr'")
    for name, axis in axes.items():
        if not isinstance(axis, Axis):
            raise TypeError(f"axes[{name!r}] must be an Axis, got {type(axis).__name__}")
    fixed = dict(fixed or {})
    both = set(fixed) & set(axes)
    if both:
        raise ValueError(f"{sorted(both)} are both fixed and tuned")
    tune_seeds = tuple(check_int("tune_seeds", s, minimum=0) for s in tune_seeds)
    if not tune_seeds:
        raise ValueError("tune_seeds must not be empty")
    margin = check_positive("margin", margin)
    max_rounds = check_int("max_rounds", max_rounds, minimum=1)
    names = tuple(axes)
    ordered = tuple(n for n in names if axes[n].ordered)
    categorical = tuple(n for n in names if not axes[n].ordered)
    screen = check_positive("screen", screen)
    results, windows, rounds, runs = {}, {}, 0, [0]
    for combo in itertools.product(*(axes[n].ladder[axes[n].lo:axes[n].hi + 1]
                                     for n in categorical)):
        sub = {}
        w, r = _search(method, axes, ordered, {**fixed, **dict(zip(categorical, combo))}, data,
                       tune_seeds, steps, batch_size, margin, max_rounds, sizes, screen, sub,
                       runs)
        rounds, windows[combo] = max(rounds, r), w
        for k, row in sub.items():
            full = dict(zip(ordered, k), **dict(zip(categorical, combo)))
            results[tuple(full[n] for n in names)] = row
    scores = {k: float(np.mean(row)) for k, row in results.items() if not np.isnan(row).any()}
    chosen, argmin, tied = choose(scores, axes, names, margin)
    at_edge, at_end = {}, {}
    combo = tuple(chosen[names.index(n)] for n in categorical)
    for j, n in enumerate(names):
        if not axes[n].ordered:
            at_edge[n] = at_end[n] = False
            continue
        ladder, window = axes[n].ladder, windows[combo][n]
        i = ladder.index(chosen[j])
        at_end[n] = i in (0, len(ladder) - 1)
        at_edge[n] = chosen[j] in (window[0], window[-1]) and not at_end[n]
    return Tuning(method=method, names=names, axes=dict(axes), fixed=fixed,
                  tune_seeds=tune_seeds, margin=margin, scores=scores, windows=windows,
                  best={**fixed, **dict(zip(names, chosen))},
                  argmin={**fixed, **dict(zip(names, argmin))},
                  tied=[dict(zip(names, k)) for k in tied], at_edge=at_edge,
                  at_range_end=at_end, rounds=rounds, runs=runs[0], per_seed=results)
