r"""The lecture's claims as data, and their verdicts computed from the chapters' measurements.

Every checkable claim of the lecture is one record in ``curvbook/claims.toml`` (shipped with
the package): its quote, the lecture's section, the chapter section that tests it (a
``(chXX-...)=`` label), what is measured (keys into the results a chapter saves with
:func:`curvbook.save_results`, or a formula check of this module), and the **rule** that turns
the measurements into a verdict on a small scale (``VERDICTS``, defined in the data file):

* ``arithmetic`` -- a formula or an exact figure: ``correct`` if the computed value equals the
  claimed one (to a stated tolerance), else ``wrong``;
* ``ratio`` -- a figure the lecture estimates (a number or a range): ``correct`` within a stated
  relative tolerance, ``approximately right`` if off by at most a factor of 2, ``wrong`` beyond;
* ``window`` -- a recommended setting (a value or a range) against the measured window of good
  settings: ``correct`` if inside it, ``approximately right`` if it overlaps it or is within a
  factor of 2 of it, ``wrong`` beyond;
* ``interval`` -- a claimed range against a measured 95% interval: ``correct`` if the interval
  lies inside the range, ``wrong`` if it lies outside, ``inconclusive`` if it includes part of
  the range and values outside it;
* ``cited`` -- a claim about the literature or about common practice, which no experiment of
  this size can settle: the verdict rests on the cited sources (``cite``), and the record says
  why (``because``); the chapter's measurements are shown beside it.

:func:`verdicts` computes every verdict; :func:`box` renders one chapter claim check (a MyST
admonition), :func:`table` the appendix's table, both from the same records, so they cannot
disagree. The formula checks below (``adam_forms``, ``momentum_forms``, ...) run the lecture's
formulas against autograd or ``torch.optim`` in float64; records read them as
``["check", name, key]``.
"""

from __future__ import annotations

import ast
import math
import string
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from curvlib._checks import check_int, check_positive, check_unit_interval
from curvlib.quasi_newton import bfgs_inverse_update
from . import results_dir

__all__ = ["adam_forms", "momentum_forms", "weight_decay_hessian", "bfgs_inverse_check",
           "gradient_norm_growth", "memory_arithmetic", "load_claims", "scale", "VERDICTS",
           "RULES", "evaluate", "verdict", "verdicts", "verdict_counts", "verdict_lists", "box", "table",
           "scale_markdown", "rules_markdown", "paired_percent", "newcombe"]


# ---------------------------------------------------------------------------------------------
# Formula checks
# ---------------------------------------------------------------------------------------------

def _least_squares(n, seed):
    """A float64 least-squares problem f(θ) = ½‖Aθ − b‖²/m with condition number about 100."""
    gen = torch.Generator().manual_seed(seed)
    m = 2 * n
    A = torch.randn(m, n, generator=gen, dtype=torch.float64)
    A = A * torch.logspace(0, 1, n, dtype=torch.float64)  # column scales 1..10
    b = torch.randn(m, generator=gen, dtype=torch.float64)
    theta0 = torch.randn(n, generator=gen, dtype=torch.float64)

    def grad(theta):
        return A.T @ (A @ theta - b) / m

    def loss(theta):
        return 0.5 * ((A @ theta - b) ** 2).sum() / m

    return loss, grad, theta0


def adam_forms(steps=200, n=10, seed=0):
    r"""The lecture's Adam, Kingma & Ba's Algorithm 1 and ``torch.optim.Adam`` on one problem.

    Lecture: :math:`m_t = 0.9m_{t-1} + 0.1g_t`, :math:`v_t = 0.999v_{t-1} + 0.001g_t^2`,
    :math:`\theta_{t+1} = \theta_t - 0.001\,m_t/(\sqrt{v_t} + 10^{-8})`.
    Kingma & Ba (ICLR 2015, Alg. 1) divide by the bias corrections:
    :math:`\hat m_t = m_t/(1-\beta_1^t)`, :math:`\hat v_t = v_t/(1-\beta_2^t)`.

    Returns ``torch_vs_kingma`` (the largest absolute difference of the iterates), ``first_step_ratio``
    (‖lecture step‖/‖Adam step‖ at t = 1, in theory :math:`0.1/\sqrt{0.001} = 3.16`),
    ``max_step_ratio`` and the step ``argmax_step`` where it peaks.
    """
    steps = check_int("steps", steps, minimum=1)
    n = check_int("n", n, minimum=1)
    _, grad, theta0 = _least_squares(n, seed)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    lec, ref = theta0.clone(), theta0.clone()
    m_l = torch.zeros(n, dtype=torch.float64); v_l = torch.zeros_like(m_l)
    m_r = torch.zeros_like(m_l); v_r = torch.zeros_like(m_l)
    p = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    ratios, gap = [], 0.0
    for t in range(1, steps + 1):
        g_l, g_r = grad(lec), grad(ref)
        m_l = b1 * m_l + (1 - b1) * g_l; v_l = b2 * v_l + (1 - b2) * g_l ** 2
        step_l = lr * m_l / (v_l.sqrt() + eps)
        m_r = b1 * m_r + (1 - b1) * g_r; v_r = b2 * v_r + (1 - b2) * g_r ** 2
        step_r = lr * (m_r / (1 - b1 ** t)) / ((v_r / (1 - b2 ** t)).sqrt() + eps)
        ratios.append(float(step_l.norm() / step_r.norm()))
        lec, ref = lec - step_l, ref - step_r
        opt.zero_grad(); p.grad = grad(p.detach()); opt.step()
        gap = max(gap, float((p.detach() - ref).abs().max()))
    k = int(np.argmax(ratios))
    return {"torch_vs_kingma": gap, "first_step_ratio": ratios[0],
            "max_step_ratio": ratios[k], "argmax_step": k + 1, "steps": steps}


def momentum_forms(steps=100, n=10, lr=0.01, momentum=0.9, seed=0):
    r"""The lecture's classical and Nesterov momentum against ``torch.optim.SGD``.

    Classical (lecture §4.1, Polyak 1964): :math:`v_t = \gamma v_{t-1} + \eta g(\theta_t)`,
    :math:`\theta_{t+1} = \theta_t - v_t`. torch keeps :math:`b_t = \gamma b_{t-1} + g` and steps
    :math:`-\eta b_t`: the same iterates with :math:`v = \eta b`.

    Nesterov (lecture §4.2, Sutskever et al. ICML 2013 eq. 4):
    :math:`v_t = \gamma v_{t-1} + \eta\nabla L(\theta_t - \gamma v_{t-1})`,
    :math:`\theta_{t+1} = \theta_t - v_t`. torch's ``nesterov=True`` steps
    :math:`-\eta(g + \gamma b_t)` at its own parameters :math:`p`; after
    :math:`t` steps these are the lecture's *look-ahead* points, :math:`p_t = \theta_t - \gamma v_t`
    (with :math:`v = \eta b`), where the lecture evaluates its next gradient.

    Returns the largest absolute difference for the classical pair (``classical_gap``), for torch's Nesterov
    parameters vs the lecture's look-ahead points (``nesterov_lookahead_gap``) and vs the
    lecture's :math:`\theta` itself (``nesterov_theta_gap``, not small: a different sequence).
    """
    steps = check_int("steps", steps, minimum=1)
    lr = check_positive("lr", lr)
    momentum = check_unit_interval("momentum", momentum)
    _, grad, theta0 = _least_squares(check_int("n", n, minimum=1), seed)

    def run_torch(nesterov):
        p = theta0.clone().requires_grad_(True)
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov)
        path = []
        for _ in range(steps):
            opt.zero_grad(); p.grad = grad(p.detach()); opt.step()
            path.append(p.detach().clone())
        return torch.stack(path)

    theta, v = theta0.clone(), torch.zeros_like(theta0)
    classical = []
    for _ in range(steps):
        v = momentum * v + lr * grad(theta); theta = theta - v
        classical.append(theta.clone())
    theta, v = theta0.clone(), torch.zeros_like(theta0)
    nest_theta, nest_look = [], []
    for _ in range(steps):
        v = momentum * v + lr * grad(theta - momentum * v); theta = theta - v
        nest_theta.append(theta.clone()); nest_look.append(theta - momentum * v)
    torch_classical, torch_nesterov = run_torch(False), run_torch(True)
    return {"classical_gap": float((torch_classical - torch.stack(classical)).abs().max()),
            "nesterov_lookahead_gap": float((torch_nesterov - torch.stack(nest_look)).abs().max()),
            "nesterov_theta_gap": float((torch_nesterov - torch.stack(nest_theta)).abs().max())}


def weight_decay_hessian(coefficient=0.0005, n=5):
    r"""The Hessian of :math:`c\|\theta\|_2^2` by autograd, and torch's ``weight_decay=c``.

    :math:`\nabla^2 (c\|\theta\|^2) = 2c\,I`, so the lecture's :math:`0.0005\|\theta\|^2` adds
    :math:`0.001\,I`. ``torch.optim.SGD(weight_decay=c)`` adds :math:`c\,\theta` to the
    gradient: the gradient of :math:`\tfrac c2\|\theta\|^2`, whose Hessian is :math:`c\,I`.

    Returns ``hessian_diagonal`` (the common diagonal entry), ``hessian_off_diagonal`` (max
    absolute entry off the diagonal) and ``torch_equivalent_penalty`` (the :math:`k` with torch's
    weight-decay step equal to an SGD step on :math:`k\|\theta\|^2`).
    """
    c = check_positive("coefficient", coefficient)
    n = check_int("n", n, minimum=1)
    theta = torch.linspace(-1.0, 1.0, n, dtype=torch.float64) + 0.3
    H = torch.autograd.functional.hessian(lambda t: c * (t ** 2).sum(), theta)
    diag = torch.diagonal(H)
    off = (H - torch.diag(diag)).abs().max()
    # one torch SGD step with weight_decay=c on a zero loss: p <- p - lr * c * p
    p = theta.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=1.0, weight_decay=c)
    p.grad = torch.zeros_like(p); opt.step()
    decay_gradient = (theta - p.detach())            # = c θ
    k = float((decay_gradient / (2 * theta)).mean())  # gradient of k‖θ‖² is 2kθ
    return {"hessian_diagonal": float(diag.mean()), "hessian_diagonal_spread": float(diag.max() - diag.min()),
            "hessian_off_diagonal": float(off), "torch_equivalent_penalty": k}


def bfgs_inverse_check(n=6, seed=0):
    r"""The lecture's inverse-BFGS update (:func:`curvlib.quasi_newton.bfgs_inverse_update`)
    checked three ways (Nocedal & Wright 2006, §6.1).

    :math:`H_{k+1} = (I-\rho s y^\top) H_k (I - \rho y s^\top) + \rho s s^\top`,
    :math:`\rho = 1/(y^\top s)` (their eq. 6.17). For a random SPD :math:`H_k` and a pair with
    :math:`y^\top s > 0` the result must satisfy the secant equation :math:`H_{k+1} y = s`, be
    symmetric positive definite, and equal the inverse of the direct update
    :math:`B_{k+1} = B - \frac{B s s^\top B}{s^\top B s} + \frac{y y^\top}{y^\top s}` (eq. 6.19)
    with :math:`B = H_k^{-1}`. Returns the three residuals and the smallest eigenvalue.
    """
    n = check_int("n", n, minimum=2)
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    H = M @ M.T + n * np.eye(n)
    A = rng.standard_normal((n, n)); A = A @ A.T + np.eye(n)   # curvature of a quadratic
    s = rng.standard_normal(n); y = A @ s                      # y = A s, so yᵀs > 0
    I = np.eye(n)
    H_new = bfgs_inverse_update(H, s, y)
    B = np.linalg.inv(H)
    B_new = B - (B @ np.outer(s, s) @ B) / (s @ B @ s) + np.outer(y, y) / (y @ s)
    scale = np.abs(H_new).max()
    return {"secant_residual": float(np.abs(H_new @ y - s).max() / np.abs(s).max()),
            "symmetry_residual": float(np.abs(H_new - H_new.T).max() / scale),
            "inverse_of_direct_residual": float(np.abs(H_new @ B_new - I).max()),
            "min_eigenvalue": float(np.linalg.eigvalsh(H_new).min())}


def gradient_norm_growth(lr=0.25, lam_max=10.0, lam_min=0.1, steps=20):
    r"""Gradient descent on :math:`\tfrac12(\lambda_{\max}x^2 + \lambda_{\min}y^2)`: ‖g‖ per step.

    With :math:`\eta\lambda_{\max} > 2` the stiff component grows by :math:`|1-\eta\lambda_{\max}|`
    per step, and the gradient norm shows it long before the loss is NaN. Returns the measured
    growth factor of ‖g‖ over the last step and the theoretical one.
    """
    lr, lam_max, lam_min = (check_positive("lr", lr), check_positive("lam_max", lam_max),
                            check_positive("lam_min", lam_min))
    steps = check_int("steps", steps, minimum=2)
    lam = np.array([lam_max, lam_min]); x = np.ones(2)
    norms = []
    for _ in range(steps):
        g = lam * x; norms.append(float(np.linalg.norm(g))); x = x - lr * g
    return {"measured": norms[-1] / norms[-2], "theory": abs(1 - lr * lam_max)}


def memory_arithmetic():
    """Bytes and flops for ResNet-50 and GPT-3 from :mod:`curvlib.memory` (see its citations)."""
    from curvlib import memory
    n_res = memory.MODELS["ResNet-50"].n_params
    n_gpt = memory.MODELS["GPT-3 175B"].n_params
    machine = memory.HARDWARE["El Capitan (TOP500 #1)"]
    fp32 = memory.hessian_bytes(n_res, "float32")
    candidates = {(d, s): memory.hessian_bytes(n_res, d, symmetric=s)
                  for d in ("float16", "float32", "float64") for s in (False, True)}
    closest = min(candidates, key=lambda k: abs(math.log(candidates[k] / 500e12)))
    year = 365.25 * 86400
    return {"resnet50_params": n_res, "gpt3_params": n_gpt,
            "resnet50_fp32_bytes": fp32, "ratio_to_500tb": fp32 / 500e12,
            "closest_dtype": closest[0], "closest_symmetric": closest[1],
            "closest_bytes": candidates[closest],
            "memory_doubling": memory.hessian_bytes(2 * n_res) / fp32,
            "flops_doubling": memory.inversion_flops(2 * n_res) / memory.inversion_flops(n_res),
            "gpt3_fp16_triangle_bytes": memory.hessian_bytes(n_gpt, "float16", symmetric=True),
            "gpt3_machines": memory.hessian_bytes(n_gpt, "float16", symmetric=True) / machine.memory_bytes,
            "gpt3_cholesky_years": memory.inversion_flops(n_gpt) / machine.flops_per_second / year,
            "resnet50_adam_bytes": memory.optimizer_state_bytes("adam", n_res)}




# ---------------------------------------------------------------------------------------------
# The records
# ---------------------------------------------------------------------------------------------

CHECKS = {"adam": adam_forms, "momentum": momentum_forms, "weight_decay": weight_decay_hessian,
          "bfgs": bfgs_inverse_check, "grad_norm": gradient_norm_growth, "memory": memory_arithmetic}

_REQUIRED = ("id", "section", "quote", "chapter", "label", "cite", "rule", "evidence")


@lru_cache(maxsize=1)
def _data():
    text = resources.files(__package__).joinpath("claims.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def scale():
    """The verdict scale: ``{verdict: definition}``, in order (from ``claims.toml``)."""
    return dict(_data()["scale"])


VERDICTS = tuple(scale())


def load_claims():
    """The claim records, in the lecture's order, each checked for its fields (a list of dicts)."""
    out, seen = [], set()
    for i, rec in enumerate(_data()["claim"]):
        missing = [k for k in _REQUIRED if k not in rec]
        if missing:
            raise ValueError(f"claim {i} ({rec.get('id', '?')}) lacks {', '.join(missing)}")
        if rec["id"] in seen:
            raise ValueError(f"claim id {rec['id']!r} appears twice")
        seen.add(rec["id"])
        kind = rec["rule"].get("kind")
        if kind not in RULES:
            raise ValueError(f"claim {rec['id']}: rule kind must be one of {sorted(RULES)}, got {kind!r}")
        if not rec["label"].startswith(f"ch{rec['chapter'][:2]}-"):
            raise ValueError(f"claim {rec['id']}: label {rec['label']!r} is not in chapter {rec['chapter']}")
        if not rec["cite"]:
            raise ValueError(f"claim {rec['id']}: cite must name at least one source")
        out.append(rec)
    return out


def _claim(claim_id):
    for rec in load_claims():
        if rec["id"] == claim_id:
            return rec
    raise KeyError(f"no claim with id {claim_id!r} in curvbook/claims.toml")


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

def paired_percent(a, b):
    r"""How much faster ``b`` is than ``a``, paired by seed, in percent: ``[estimate, low, high]``.

    ``a`` and ``b`` are costs (steps, time) of the same seeds. The estimate is the geometric mean
    of :math:`a_i/b_i - 1`; the 95% interval is Student's t interval of :math:`\log(a_i/b_i)`,
    transformed back.
    """
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a and b must be paired lists of at least 2 costs, got {a.shape}, {b.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a and b must be positive costs")
    d = np.log(a / b)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return [100 * math.expm1(x) for x in (d.mean(), d.mean() - half, d.mean() + half)]


def _wilson(k, n, z=1.959964):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe(k1, n1, k2, n2):
    """Difference of two proportions ``k1/n1 - k2/n2`` with its 95% interval (Newcombe 1998,
    from Wilson score intervals): ``[estimate, low, high]``."""
    for name, (k, n) in {"k1, n1": (k1, n1), "k2, n2": (k2, n2)}.items():
        if not (n > 0 and 0 <= k <= n):
            raise ValueError(f"{name} must be counts with 0 <= k <= n and n > 0, got {k}, {n}")
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = _wilson(k1, n1), _wilson(k2, n2)
    d = p1 - p2
    return [d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)]


_FUNCTIONS = {"min": min, "max": max, "abs": abs, "len": len, "sum": sum, "round": round,
              "log10": math.log10, "values": lambda d: list(d.values()),
              "mean": lambda xs: float(np.mean(xs)), "paired_percent": paired_percent,
              "newcombe": newcombe}
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Pow: lambda a, b: a ** b}


def _eval(expr, names):
    """Evaluate a small arithmetic expression over ``names`` (no attribute access, no imports)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise KeyError(f"{node.id!r} is not a measurement of this claim")
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Subscript):
            return ev(node.value)[ev(node.slice)]
        if isinstance(node, ast.Slice):
            return slice(*(None if x is None else ev(x) for x in (node.lower, node.upper, node.step)))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _FUNCTIONS and not node.keywords):
            return _FUNCTIONS[node.func.id](*(ev(a) for a in node.args))
        raise ValueError(f"not allowed in a claim expression: {ast.dump(node)[:60]}")

    return ev(ast.parse(expr, mode="eval"))


class _Sources:
    """Chapter results and formula checks, each read (or computed) once.

    ``results`` maps a chapter's stem to the dict it is about to save: a chapter renders its
    own boxes from what it measured in this run, not from the file of the previous one.
    """

    def __init__(self, directory=None, results=None):
        import json
        from . import _plain
        self.directory = Path(directory) if directory is not None else results_dir()
        if results is not None and not isinstance(results, dict):
            raise TypeError(f"results must be a dict stem -> results, got {type(results).__name__}")
        # the same JSON round trip as save_results, so a box shows what the file will hold
        self._files = {(stem, ".json"): json.loads(json.dumps(_plain(r)))
                       for stem, r in (results or {}).items()}

    def _file(self, stem, suffix):
        if (stem, suffix) not in self._files:
            import json
            path = self.directory / f"{stem}{suffix}"
            if not path.exists():
                raise FileNotFoundError(f"no results for {stem!r}: run its notebook first ({path})")
            self._files[stem, suffix] = json.loads(path.read_text())
        return self._files[stem, suffix]

    def get(self, path):
        head, *keys = path
        if head == "check":
            data = _check(keys[0])
            keys = keys[1:]
        elif keys[:1] == ["quotes"]:
            data = self._file(head, ".quotes.json")
            data = data.get("quotes", data)
            entry = data[keys[1]]
            data, keys = entry.get("value") if isinstance(entry, dict) else entry, keys[2:]
        else:
            data = self._file(head, ".json")
        for k in keys:
            try:
                data = data[k]
            except (KeyError, IndexError, TypeError):
                raise KeyError(f"{' / '.join(map(str, path))}: no key {k!r}") from None
        return data


@lru_cache(maxsize=None)
def _check(name):
    if name not in CHECKS:
        raise KeyError(f"no formula check {name!r}; known: {sorted(CHECKS)}")
    return CHECKS[name]()


def measurements(rec, sources=None):
    """The named measurements of one record, with its derived values (a dict)."""
    sources = sources if sources is not None else _Sources()
    names = {name: sources.get(path) for name, path in rec.get("measure", {}).items()}
    for name, expr in rec.get("derive", {}).items():
        names[name] = _eval(expr, names)
    return names


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

def _g(x):
    return f"{x:.3g}"


def _span(r):
    """``(lo, hi)`` of a number or a two-element range."""
    if isinstance(r, (list, tuple)):
        if len(r) != 2 or r[0] > r[1]:
            raise ValueError(f"a range must be [low, high] with low <= high, got {r}")
        return float(r[0]), float(r[1])
    return float(r), float(r)


def _show(r):
    lo, hi = _span(r)
    return _g(lo) if lo == hi else f"{_g(lo)} to {_g(hi)}"


def _factor(a, b):
    """How many times apart two positive ranges are (1 if they touch or overlap)."""
    (a0, a1), (b0, b1) = a, b
    if min(a0, b0) <= 0:
        raise ValueError(f"ranges must be positive for a factor, got {a} and {b}")
    return max(1.0, b0 / a1, a0 / b1)


def rule_arithmetic(rule, m):
    value, claimed = _eval(rule["value"], m), float(rule["claimed"])
    tol = rule.get("abs", 0.0) + rule.get("rel", 1e-6) * abs(claimed)
    if abs(value - claimed) <= tol:
        return "correct", f"computed {_g(value)}, claimed {_g(claimed)}: equal to within {_g(tol)}"
    return "wrong", f"computed {_g(value)}, claimed {_g(claimed)}: not equal (tolerance {_g(tol)})"


def rule_ratio(rule, m):
    value, (lo, hi) = float(_eval(rule["value"], m)), _span(rule["claimed"])
    rel = rule.get("rel", 0.1)
    if lo / (1 + rel) <= value <= hi * (1 + rel):
        return "correct", f"measured {_g(value)}, claimed {_show(rule['claimed'])}: within {rel:.0%}"
    f = _factor((value, value), (lo, hi))
    verdict = "approximately right" if f <= 2 else "wrong"
    return verdict, (f"measured {_g(value)}, claimed {_show(rule['claimed'])}: off by a factor of "
                     f"{f:.2g}, {'at most' if f <= 2 else 'more than'} 2")


def rule_window(rule, m):
    window, claimed = _span(_eval(rule["window"], m)), _span(rule["claimed"])
    what = f"claimed {_show(rule['claimed'])}, measured good window {window[0]:g} to {window[1]:g}"
    if window[0] <= claimed[0] and claimed[1] <= window[1]:
        return "correct", what + ": inside it"
    f = _factor(claimed, window)
    if f == 1:
        return "approximately right", what + ": overlapping it, not inside it"
    verdict = "approximately right" if f <= 2 else "wrong"
    return verdict, what + f": a factor of {f:.2g} outside it ({'at most' if f <= 2 else 'more than'} 2)"


def rule_interval(rule, m):
    (lo, hi), (c0, c1) = _span(_eval(rule["interval"], m)), _span(rule["claimed"])
    what = (f"95% interval {_g(lo)} to {_g(hi)}, claimed "
            + (f"above {_g(c0)}" if c1 == math.inf else f"below {_g(c1)}" if c0 == -math.inf
               else _show(rule["claimed"])))
    if c0 <= lo and hi <= c1:
        return "correct", what + ": inside the claimed range"
    if hi < c0 or lo > c1:
        return "wrong", what + ": outside the claimed range"
    return "inconclusive", what + ": includes part of the claimed range and values outside it"


def rule_cited(rule, m):
    v = rule.get("verdict")
    if v not in VERDICTS:
        raise ValueError(f"a cited rule's verdict must be one of {VERDICTS}, got {v!r}")
    return v, "the verdict rests on the cited sources"


RULES = {"arithmetic": rule_arithmetic, "ratio": rule_ratio, "window": rule_window,
         "interval": rule_interval, "cited": rule_cited}


def evaluate(rec, sources=None):
    """``{"id", "verdict", "rule", "values", ...}`` for one record (a dict)."""
    try:
        m = measurements(rec, sources)
        v, why = RULES[rec["rule"]["kind"]](rec["rule"], m)
    except (KeyError, ValueError, TypeError, IndexError, SyntaxError) as exc:
        raise type(exc)(f"claim {rec['id']!r}: {exc}") from exc
    return {"id": rec["id"], "notebook": rec["chapter"], "verdict": v, "rule_text": why, "values": m}


def verdict(claim_id, directory=None, results=None):
    """The computed verdict of one claim (a string on the scale)."""
    return evaluate(_claim(claim_id), _Sources(directory, results))["verdict"]


def verdicts(directory=None):
    """``{claim id: evaluate(record)}`` for every record, read from ``directory``'s results."""
    sources = _Sources(directory)
    return {rec["id"]: evaluate(rec, sources) for rec in load_claims()}


def verdict_counts(directory=None):
    """How many claims have each verdict, in the order of the scale."""
    got = [v["verdict"] for v in verdicts(directory).values()]
    return {v: got.count(v) for v in VERDICTS}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

class _Formatter(string.Formatter):
    """str.format with ``!b`` (bytes, as :func:`curvlib.memory.format_bytes`) and ``!t`` (tiny:
    a round-off-sized number as a bound, ``< 1e-12``)."""

    def convert_field(self, value, conversion):
        if conversion == "b":
            from curvlib.memory import format_bytes
            return format_bytes(value)
        if conversion == "t":
            return "< 1e-12" if abs(value) < 1e-12 else f"{value:.1e}"
        return super().convert_field(value, conversion)


def _fill(template, values):
    return _Formatter().format(template, **values).strip()


def _cites(keys):
    return ", ".join(f"{{cite}}`{k}`" for k in keys)


def _markdown(text):
    from IPython.display import Markdown
    return Markdown(text)


def box(claim_id, directory=None, results=None):
    """A chapter's claim check for one claim: a MyST admonition (displayed as Markdown).

    The verdict is computed here by the record's rule from the chapters' saved measurements
    (in ``directory``, default :func:`curvbook.results_dir`); ``results={stem: dict}`` gives a
    chapter's own measurements of this run before it saves them. The chapter's text does not
    type the verdict.
    """
    rec = _claim(claim_id)
    res = evaluate(rec, _Sources(directory, results))
    values = {**res["values"], "verdict": res["verdict"]}
    lines = [f'```{{admonition}} Claim check: "{rec["quote"]}"', ":class: tip",
             f"**The lecture says** (§{rec['section']}): {rec.get('says', rec['quote'])}", "",
             f"**We measured:** {_fill(rec['evidence'], values)}", "",
             f"**Verdict: {res['verdict']}.** " + _fill(rec.get("because", ""), values), "",
             f"*Rule ({rec['rule']['kind']}):* {res['rule_text']}.", "",
             f"**Sources:** {_cites(rec['cite'])}.", "```"]
    return _markdown("\n".join(lines))


def verdict_lists(directory=None, *, exclude=("10_conclusion",)):
    """Every claim, grouped by its computed verdict in the order of the scale: a Markdown list
    per verdict, each claim quoted with a link to the chapter section that checks it. Claims of
    the chapters in ``exclude`` are left out (chapter 10 shows its own boxes)."""
    sources = _Sources(directory)
    groups = {v: [] for v in VERDICTS}
    for rec in load_claims():
        if rec["chapter"] in exclude:
            continue
        groups[evaluate(rec, sources)["verdict"]].append(rec)
    lines = []
    for v, recs in groups.items():
        if not recs:
            continue
        lines += [f"**{v[0].upper() + v[1:]}** ({len(recs)})", ""]
        lines += [f"* \"{r['quote']}\" (§{r['section']}; {{ref}}`ch. {int(r['chapter'][:2])} <{r['label']}>`)"
                  for r in recs]
        lines.append("")
    return _markdown("\n".join(lines).strip())


def table(directory=None):
    """The appendix's table: every claim, its verdict, evidence, rule, sources and section."""
    from curvlib.plots import markdown_table
    sources = _Sources(directory)
    rows = []
    for i, rec in enumerate(load_claims(), start=1):
        res = evaluate(rec, sources)
        rows.append({"n": i, "section": rec["section"], "claim": rec["quote"],
                     "verdict": f"**{res['verdict']}**", "rule": rec["rule"]["kind"],
                     "evidence": _fill(rec["evidence"], {**res["values"], "verdict": res["verdict"]}),
                     "cite": "{cite:t}`" + ",".join(rec["cite"]) + "`",
                     "where": f"{{ref}}`ch. {int(rec['chapter'][:2])} <{rec['label']}>`"})
    esc = lambda key: lambda r: str(r[key]).replace("|", "\\|")  # noqa: E731
    return markdown_table(rows, {"#": "n", "§": "section", "Claim": esc("claim"), "Verdict": "verdict",
                                 "Evidence (computed)": esc("evidence"), "Rule": "rule",
                                 "Source": "cite", "Where": "where"}, align="rllllll" + "l")


def scale_markdown():
    """The verdict scale as a Markdown list (the appendix shows it; it is defined once)."""
    return _markdown("\n".join(f"* **{v}**: {d}" for v, d in scale().items()))


def rules_markdown():
    """The rule kinds as a Markdown list, from this module's docstring."""
    doc = __doc__.split("* ``arithmetic``", 1)[1].split("\n\n", 1)[0]
    items = ("``arithmetic``" + doc).split("\n* ")
    return _markdown("\n".join("* " + " ".join(i.split()).replace("``", "`") for i in items))
