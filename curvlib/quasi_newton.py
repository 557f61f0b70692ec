r"""L-BFGS and damped Newton: the curvature-using optimizers of the book.

The module has two layers.

1. **Array code** shared with :func:`curvlib.minimize`: the L-BFGS two-loop recursion
   (:func:`two_loop_direction`), its memory (:func:`update_memory`, :func:`lbfgs_direction`),
   the strong-Wolfe line search (:func:`strong_wolfe`), Armijo backtracking
   (:func:`backtracking`) and the damped Newton direction (:func:`newton_direction`). They take
   flat numpy arrays or flat torch tensors alike and use only ``+ - * /``, ``.dot`` and
   ``abs(.).max()``.
2. **torch optimizers** built on that code: :class:`LBFGS`, with ``torch.optim.LBFGS``'s
   signature, defaults and state keys, and :class:`Newton` for small models.

Reference for the algorithms: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
Springer, 2006 (cited below as N&W) -- Alg. 7.4 (two-loop recursion), eq. 7.20 (scaling of
:math:`H_k^0`), Alg. 3.5/3.6 (line search for the strong Wolfe conditions), eq. 3.59 (cubic
interpolation), Alg. 3.1 (backtracking) and Alg. 3.3 (Cholesky with added multiple of the
identity). L-BFGS itself: D. C. Liu and J. Nocedal, "On the limited memory BFGS method for
large scale optimization", Mathematical Programming 45:503-528, 1989. scipy's L-BFGS-B, the
yardstick of ``benchmarks/lbfgs.py``: R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited
memory algorithm for bound constrained optimization", SIAM J. Sci. Comput. 16(5):1190-1208,
1995.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch.optim import Optimizer

from ._checks import check_int, check_nonnegative

__all__ = ["two_loop_direction", "update_memory", "lbfgs_direction", "strong_wolfe",
           "backtracking", "newton_direction", "LBFGS", "Newton", "LEVENBERG_FACTOR"]

_EPS = float(np.finfo(float).eps)


def check_option(name, value, choices):
    """``value`` must be one of ``choices`` (which may include ``None``)."""
    if not any(value is c or (c is not None and value == c) for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _dot(a, b):
    return float(a.dot(b))


def _max_abs(a):
    return float(abs(a).max())


def _axpy(y, alpha, x):
    """``y += alpha * x`` in place (torch's ``add_`` avoids a temporary)."""
    if hasattr(y, "add_"):
        y.add_(x, alpha=alpha)
    else:
        y += alpha * x
    return y


# ======================================================================================
# L-BFGS: memory and two-loop recursion
# ======================================================================================
def two_loop_direction(grad, s_list, y_list, rho_list, gamma):
    r"""The L-BFGS direction :math:`d = -H_k \nabla f_k` by the two-loop recursion (N&W Alg. 7.4).

    :math:`H_k` is the inverse-Hessian approximation obtained by applying the BFGS update

    .. math:: H_{j+1} = (I - \rho_j s_j y_j^\top) H_j (I - \rho_j y_j s_j^\top) + \rho_j s_j s_j^\top,
              \qquad \rho_j = 1 / (y_j^\top s_j),

    once for each stored pair :math:`(s_j, y_j)`, oldest first, to
    :math:`H_k^0 = \gamma I`. The recursion never forms :math:`H_k`:

    .. math::
        q \leftarrow \nabla f_k;\quad
        \text{for } j = k-1,\dots,k-m:\ \alpha_j = \rho_j s_j^\top q,\ q \leftarrow q - \alpha_j y_j;\\
        r \leftarrow \gamma q;\quad
        \text{for } j = k-m,\dots,k-1:\ \beta = \rho_j y_j^\top r,\ r \leftarrow r + (\alpha_j - \beta) s_j;
        \quad H_k\nabla f_k = r.

    It costs :math:`4mn` multiply-adds and :math:`2mn` numbers of memory. Here the recursion
    runs on :math:`-\nabla f_k`, so it returns the descent direction directly.
    """
    q = -grad
    alphas = [0.0] * len(s_list)
    for i in reversed(range(len(s_list))):
        alphas[i] = rho_list[i] * _dot(s_list[i], q)
        _axpy(q, -alphas[i], y_list[i])
    r = q * gamma
    for i in range(len(s_list)):
        beta = rho_list[i] * _dot(y_list[i], r)
        _axpy(r, alphas[i] - beta, s_list[i])
    return r


def update_memory(state, s, y, history_size):
    r"""Store the pair :math:`(s, y)` in ``state`` if it has positive curvature.

    ``state`` uses torch.optim.LBFGS's keys: ``old_stps`` (the :math:`s_j`), ``old_dirs``
    (the :math:`y_j`), ``ro`` (:math:`\rho_j`) and ``H_diag`` (:math:`\gamma`). The pair is
    skipped unless :math:`y^\top s > \epsilon_{\text{mach}}\, y^\top y` (the test of L-BFGS-B),
    which keeps every :math:`H_k` positive definite. On acceptance the initial matrix is
    rescaled to

    .. math:: H_k^0 = \gamma_k I,\qquad \gamma_k = \frac{s^\top y}{y^\top y}\quad\text{(N\&W eq. 7.20)},

    the inverse of a Rayleigh quotient of the Hessian along the last step. Returns whether
    the pair was stored.
    """
    ys = _dot(y, s)
    yy = _dot(y, y)
    if not ys > _EPS * yy:  # also false for NaN
        return False
    if len(state["old_dirs"]) == history_size:
        for key in ("old_dirs", "old_stps", "ro"):
            state[key].pop(0)
    state["old_dirs"].append(y)
    state["old_stps"].append(s)
    state["ro"].append(1.0 / ys)
    state["H_diag"] = ys / yy
    return True


def lbfgs_direction(state, grad, lr, history_size):
    r"""Update the memory from the last step, then return ``(d, t)``: direction and first trial step.

    ``state`` carries ``d``, ``t`` and ``prev_flat_grad`` of the previous iteration (torch's
    keys), so :math:`s = t d` and :math:`y = \nabla f_k - \nabla f_{k-1}`. At the first
    iteration there is no curvature information: :math:`d = -\nabla f_0` and the trial step is
    :math:`t = \eta\,\min(1, 1/\|\nabla f_0\|_2)`, a first step of length at most
    :math:`\eta` (the choice of Liu & Nocedal's code and of L-BFGS-B; torch.optim.LBFGS uses
    :math:`\|\cdot\|_1`, shorter by up to :math:`\sqrt n`). Later the trial step is the
    learning rate :math:`\eta` (``lr``), the natural unit step of a quasi-Newton method.

    On the choices: among first steps :math:`\alpha/\|\nabla f_0\|_2` and
    :math:`1/\|\nabla f_0\|_1`, and scalings :math:`s^\top y/y^\top y`, :math:`s^\top s/s^\top y`
    and their geometric mean, this pair gave the fewest evaluations over a suite of eleven
    problems (Rosenbrock, Beale, extended Rosenbrock, an ill-conditioned quadratic, logistic
    and softmax regression); the count depends chaotically on the first step, by about
    10% either way (see ``benchmarks/lbfgs.py``).
    """
    if state.get("prev_flat_grad") is None:
        state["old_dirs"], state["old_stps"], state["ro"], state["H_diag"] = [], [], [], 1.0
        return -grad, lr * min(1.0, 1.0 / math.sqrt(_dot(grad, grad)))
    y = grad - state["prev_flat_grad"]
    s = state["d"] * state["t"]
    update_memory(state, s, y, history_size)
    d = two_loop_direction(grad, state["old_stps"], state["old_dirs"], state["ro"],
                           float(state["H_diag"]))
    return d, lr


# ======================================================================================
# Line searches
# ======================================================================================
def _cubic_minimizer(a, fa, da, b, fb, db):
    r"""Minimiser of the cubic through :math:`(a, f_a, f'_a)` and :math:`(b, f_b, f'_b)` (N&W eq. 3.59).

    .. math::
        d_1 = f'_a + f'_b - 3\frac{f_a - f_b}{a - b},\quad
        d_2 = \operatorname{sign}(b - a)\sqrt{d_1^2 - f'_a f'_b},\quad
        t = b - (b - a)\frac{f'_b + d_2 - d_1}{f'_b - f'_a + 2 d_2}.

    Returns NaN when the cubic has no minimiser (or the data are not finite).
    """
    if a == b or not all(map(math.isfinite, (fa, da, fb, db))):
        return math.nan
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not (math.isfinite(disc) and disc >= 0):
        return math.nan
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = db - da + 2 * d2
    return b - (b - a) * (db + d2 - d1) / denom if denom != 0 else math.nan


class _Trial(NamedTuple):
    """A point on the line: step ``t``, value ``f``, gradient ``g``, slope ``dphi`` = g.d."""
    t: float
    f: float
    g: object
    dphi: float


def strong_wolfe(phi, d, f0, g0, t=1.0, *, c1=1e-4, c2=0.9, max_evals=25, tolerance_change=1e-9):
    r"""A step length satisfying the strong Wolfe conditions (N&W Alg. 3.5 and 3.6).

    .. math::
        f(x + t d) \le f(x) + c_1 t\, \nabla f(x)^\top d, \qquad
        |\nabla f(x + t d)^\top d| \le c_2\, |\nabla f(x)^\top d|.

    ``phi(t)`` returns ``(f, g)``, value and gradient at :math:`x + t d`. The bracketing phase
    (Alg. 3.5) tries ``t`` and extrapolates with a cubic (clamped to :math:`[2t, 10t]`) until
    an interval is known to contain acceptable steps; ``zoom`` (Alg. 3.6) then shrinks the
    interval with safeguarded cubic interpolation (kept 10% inside the interval, bisection
    when the cubic fails). A non-finite value counts as a failed decrease test, so an
    overflowing trial step is simply shortened.

    Returns ``(t, f, g, n_evals)``. If no step with sufficient decrease was found within
    ``max_evals`` evaluations (or the interval shrank below ``tolerance_change`` in the
    infinity norm of :math:`t d`), it returns the best point seen, which is ``t = 0``
    (with ``f0`` and ``g0``) when nothing decreased ``f``.
    """
    dphi0 = _dot(g0, d)
    d_norm = _max_abs(d)
    evals = 0

    def evaluate(t):
        nonlocal evals
        evals += 1
        f, g = phi(t)
        f = float(f)
        return _Trial(t, f, g, _dot(g, d) if math.isfinite(f) else math.nan)

    def decreases(p):  # the Armijo (sufficient decrease) condition
        return math.isfinite(p.f) and p.f <= f0 + c1 * p.t * dphi0

    def curvature_ok(p):
        return abs(p.dphi) <= -c2 * dphi0

    def zoom(lo, hi):
        # lo: lowest value so far, satisfies Armijo; [lo, hi] contains acceptable steps
        while evals < max_evals and abs(hi.t - lo.t) * d_norm > tolerance_change:
            a, b = sorted((lo.t, hi.t))
            margin = 0.1 * (b - a)
            t = _cubic_minimizer(lo.t, lo.f, lo.dphi, hi.t, hi.f, hi.dphi)
            if not math.isfinite(t):
                t = 0.5 * (a + b)
            cur = evaluate(min(max(t, a + margin), b - margin))
            if not decreases(cur) or cur.f >= lo.f:
                hi = cur
            else:
                if curvature_ok(cur):
                    return cur
                if cur.dphi * (hi.t - lo.t) >= 0:
                    hi = lo
                lo = cur
        return lo

    prev = _Trial(0.0, f0, g0, dphi0)
    while evals < max_evals:
        cur = evaluate(t)
        if not decreases(cur) or (evals > 1 and cur.f >= prev.f):
            best = zoom(prev, cur)
            break
        if curvature_ok(cur):
            best = cur
            break
        if cur.dphi >= 0:
            best = zoom(cur, prev)
            break
        # still going down: extrapolate to the cubic's minimiser, kept in [2t, 10t]
        t_next = _cubic_minimizer(prev.t, prev.f, prev.dphi, cur.t, cur.f, cur.dphi)
        t = min(max(t_next, 2 * cur.t), 10 * cur.t) if math.isfinite(t_next) else 10 * cur.t
        prev = cur
    else:  # out of evaluations while f was still decreasing: take the last point
        best = prev
    return best.t, best.f, best.g, evals


def backtracking(phi, f0, dphi0, t=1.0, *, c1=1e-4, shrink=0.5, max_evals=30):
    r"""Armijo backtracking (N&W Alg. 3.1): halve ``t`` until :math:`f(x+td) \le f(x) + c_1 t\,\nabla f^\top d`.

    ``phi(t)`` returns the value at :math:`x + t d`; ``dphi0`` is :math:`\nabla f(x)^\top d < 0`.
    Returns ``(t, f, n_evals)``, with ``t = 0`` and ``f0`` if ``max_evals`` trials all failed.
    """
    for evals in range(1, max_evals + 1):
        f = float(phi(t))
        if math.isfinite(f) and f <= f0 + c1 * t * dphi0:
            return t, f, evals
        t *= shrink
    return 0.0, f0, max_evals


# ======================================================================================
# Newton
# ======================================================================================
#: Levenberg-Marquardt: the damping is divided by this after a successful step and
#: multiplied by it after a rejected one (Marquardt's choice).
LEVENBERG_FACTOR = 10.0


def _linalg(x):
    return torch.linalg if isinstance(x, torch.Tensor) else np.linalg


def _eye_like(H):
    if isinstance(H, torch.Tensor):
        return torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    return np.eye(H.shape[0], dtype=H.dtype)


def _is_positive_definite(A):
    if isinstance(A, torch.Tensor):
        return int(torch.linalg.cholesky_ex(A).info) == 0
    try:
        np.linalg.cholesky(A)
        return True
    except np.linalg.LinAlgError:
        return False


def newton_direction(grad, H, damping=0.0, *, positive_definite=False, beta=1e-3):
    r"""Damped Newton direction :math:`d = -(H + \lambda I)^{-1} \nabla f`.

    With ``damping`` :math:`\lambda = 0` this is Newton's step, which jumps to the stationary
    point of the local quadratic model, be it a minimum, a maximum or a saddle.
    ``positive_definite=True`` guarantees a descent direction: if :math:`H + \lambda I` is not
    positive definite, :math:`\tau I` is added with :math:`\tau` doubled from
    :math:`\max(\beta, \beta - \min_i a_{ii})` until a Cholesky factorisation succeeds
    (N&W Alg. 3.3). Returns ``(d, lambda_used)``.
    """
    eye = _eye_like(H)
    A = H + damping * eye
    if positive_definite and not _is_positive_definite(A):
        min_diag = float(min(A[i, i] for i in range(A.shape[0])))
        tau = beta - min_diag if min_diag <= 0 else beta
        while not _is_positive_definite(A + tau * eye):
            tau = max(2 * tau, beta)
        A = A + tau * eye
        damping = damping + tau
    d = -_linalg(H).solve(A, grad)
    return d, damping


# ======================================================================================
# torch optimizers
# ======================================================================================
class _FlatParamsMixin:
    """One flat view of all parameters (L-BFGS and Newton think of a single vector)."""

    def _init_flat(self, name):
        if len(self.param_groups) != 1:
            raise ValueError(f"{name} doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        for p in self._params:
            if torch.is_complex(p):
                raise TypeError(f"{name} supports real parameters only, got dtype {p.dtype}")

    def _gather_flat_grad(self):
        return torch.cat([p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1)
                          for p in self._params])

    def _add_step(self, t, d):
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(d[offset:offset + n].view_as(p), alpha=t)
            offset += n

    def _clone_params(self):
        return [p.clone(memory_format=torch.contiguous_format) for p in self._params]

    def _set_params(self, values):
        for p, v in zip(self._params, values):
            p.copy_(v)


def _check_lr(lr):
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError("lr must be a float or a 1-element tensor")
        return lr
    return check_nonnegative("lr", lr)


class LBFGS(_FlatParamsMixin, Optimizer):
    r"""L-BFGS (Liu & Nocedal, Math. Programming 45, 1989), a drop-in for ``torch.optim.LBFGS``.

    Same signature, defaults and state keys as ``torch.optim.LBFGS``: one parameter group,
    ``step(closure)`` runs up to ``max_iter`` iterations and ``max_eval`` closure calls, stops
    when :math:`\|\nabla f\|_\infty \le` ``tolerance_grad`` or when the step or the change in
    loss falls below ``tolerance_change``. The direction comes from :func:`~curvlib.quasi_newton.lbfgs_direction`
    (two-loop recursion, N&W Alg. 7.4, with :math:`H_k^0 = \frac{s^\top y}{y^\top y} I`), the
    step from :func:`~curvlib.quasi_newton.strong_wolfe` (N&W Alg. 3.5/3.6) when ``line_search_fn="strong_wolfe"``,
    else the fixed step ``lr``.

    Differences from torch.optim.LBFGS (same direction formula, so the same method): the
    first trial step is :math:`\eta\min(1, 1/\|\nabla f_0\|_2)` rather than
    :math:`\eta\min(1, 1/\|\nabla f_0\|_1)`; the line search is N&W's (cubic extrapolation to
    :math:`[2t, 10t]`, zoom kept 10% inside the bracket) rather than the port of minFunc's;
    and a curvature pair is kept when :math:`y^\top s > \epsilon_{\text{mach}} y^\top y`
    (L-BFGS-B's scale-free test) instead of :math:`y^\top s > 10^{-10}`, so the memory keeps
    learning near a tight optimum.
    :func:`curvlib.minimize` with ``method="lbfgs"`` runs the same iteration on numpy arrays.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        lr = _check_lr(lr)
        max_iter = check_int("max_iter", max_iter, minimum=1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        max_eval = check_int("max_eval", max_eval, minimum=1)
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=check_nonnegative("tolerance_grad", tolerance_grad),
                        tolerance_change=check_nonnegative("tolerance_change", tolerance_change),
                        history_size=check_int("history_size", history_size, minimum=1),
                        line_search_fn=check_option("line_search_fn", line_search_fn,
                                                    (None, "strong_wolfe")))
        super().__init__(params, defaults)
        self._init_flat("LBFGS")

    def _directional_evaluate(self, closure, x, t, d):
        self._add_step(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_params(x)
        return loss, flat_grad

    @torch.no_grad()
    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations; ``closure`` recomputes and returns the loss
        after calling ``backward()``. Returns the loss at the start of the call."""
        if closure is None:
            raise TypeError("closure must be a callable that reevaluates the model and returns the loss")
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]  # global state, registered on the first parameter
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if _max_abs(flat_grad) <= tolerance_grad:
            return orig_loss

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            d, t = lbfgs_direction(state, flat_grad, lr, group["history_size"])
            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:  # not a (useful) descent direction
                break
            state["prev_flat_grad"] = flat_grad
            state["prev_loss"] = prev_loss = loss

            if group["line_search_fn"] == "strong_wolfe":
                x0 = self._clone_params()
                t, loss, flat_grad, ls_evals = strong_wolfe(
                    lambda step: self._directional_evaluate(closure, x0, step, d), d, loss,
                    flat_grad, t, max_evals=max(1, max_eval - evals),
                    tolerance_change=tolerance_change)
                self._add_step(t, d)
            else:
                self._add_step(t, d)
                ls_evals = 0
                if n_iter != max_iter:  # the next call re-evaluates anyway (maybe on a new batch)
                    loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    ls_evals = 1
            state["d"], state["t"] = d, t
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval:
                break
            if _max_abs(flat_grad) <= tolerance_grad:
                break
            if t * _max_abs(d) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        return orig_loss


class Newton(_FlatParamsMixin, Optimizer):
    r"""Damped Newton's method for small models: one step per ``step(closure)`` call.

    .. math:: \theta \leftarrow \theta + t\,d,\qquad (\nabla^2 L + \lambda I)\, d = -\nabla L.

    The dense Hessian of the closure's loss over all parameters (flattened into one vector of
    :math:`n` numbers) comes from double backward (``torch.autograd.grad`` with
    ``create_graph=True``, then one batched backward for the :math:`n` rows), so the cost is
    :math:`O(n^2)` memory and :math:`O(n^3)` for the solve: meant for :math:`n` up to a few
    thousand. **The closure must return the loss without calling** ``backward()``: Newton
    differentiates it twice itself (and stores the gradient in ``p.grad``).

    Globalisation, choose at most one:

    * ``line_search_fn=None``: the step :math:`t =` ``lr``, with constant ``damping``
      :math:`\lambda`. Pure Newton (``damping=0``) is attracted by saddle points.
    * ``line_search_fn="backtracking"``: :math:`H + \lambda I` is made positive definite if
      needed (N&W Alg. 3.3), then :math:`t` starts at ``lr`` and is halved until the Armijo
      condition holds (N&W Alg. 3.1).
    * ``adaptive_damping=True``: Levenberg-Marquardt-style damping. A step that lowers the
      loss is taken and :math:`\lambda \leftarrow \lambda/10`; one that does not is rejected
      (the parameters stay) and :math:`\lambda \leftarrow 10\lambda`. ``damping > 0`` is the
      starting value. (K. Levenberg, Quart. Appl. Math. 2:164-168, 1944; D. W. Marquardt,
      J. SIAM 11(2):431-441, 1963.)

    The current damping and the step count live in ``state_dict()``.
    """

    damping_factor = LEVENBERG_FACTOR

    def __init__(self, params, lr=1.0, damping=0.0, line_search_fn=None, adaptive_damping=False,
                 tolerance_grad=1e-7):
        lr = _check_lr(lr)
        damping = check_nonnegative("damping", damping)
        check_option("line_search_fn", line_search_fn, (None, "backtracking"))
        if not isinstance(adaptive_damping, bool):
            raise TypeError(f"adaptive_damping must be a bool, got {adaptive_damping!r}")
        if adaptive_damping and damping <= 0:
            raise ValueError(f"damping must be positive when adaptive_damping=True, got {damping}")
        if adaptive_damping and line_search_fn is not None:
            raise ValueError("line_search_fn must be None when adaptive_damping=True")
        defaults = dict(lr=lr, damping=damping, line_search_fn=line_search_fn,
                        adaptive_damping=adaptive_damping,
                        tolerance_grad=check_nonnegative("tolerance_grad", tolerance_grad))
        super().__init__(params, defaults)
        self._init_flat("Newton")

    def _gradient_and_hessian(self, loss):
        params = self._params
        if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            raise RuntimeError("Newton's closure must return the loss as a tensor attached to "
                               "the parameters' graph (and must not call backward())")
        try:
            grads = torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)
        except RuntimeError as err:
            raise RuntimeError("Newton could not differentiate the closure's loss; the closure "
                               "must not call backward() (Newton does it): " + str(err)) from err
        g = torch.cat([gr.reshape(-1) for gr in grads])
        n = g.numel()
        if not g.requires_grad:  # loss linear in the parameters: zero Hessian
            return g.detach(), g.new_zeros(n, n)
        try:
            rows = torch.autograd.grad(g, params, grad_outputs=torch.eye(n, dtype=g.dtype, device=g.device),
                                       is_grads_batched=True, retain_graph=True, materialize_grads=True)
            H = torch.cat([r.reshape(n, -1) for r in rows], dim=1)
        except RuntimeError:  # an op without a batching rule: one backward per row
            H = torch.stack([torch.cat([r.reshape(-1) for r in torch.autograd.grad(
                g[i], params, retain_graph=True, materialize_grads=True)]) for i in range(n)])
        return g.detach(), H.detach()

    @torch.no_grad()
    def step(self, closure):
        """One damped Newton step; ``closure`` returns the loss (without calling backward)."""
        if closure is None:
            raise TypeError("closure must be a callable that returns the loss")
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        state.setdefault("step", 0)
        state.setdefault("damping", group["damping"])
        with torch.enable_grad():
            loss = closure()
            g, H = self._gradient_and_hessian(loss)
        offset = 0
        for p in self._params:
            p.grad = g[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        if _max_abs(g) <= group["tolerance_grad"]:
            return loss
        state["step"] += 1
        lr, damping = float(group["lr"]), float(state["damping"])
        globalised = group["line_search_fn"] is not None or group["adaptive_damping"]
        d, _ = newton_direction(g, H, damping, positive_definite=globalised)
        f0 = float(loss)
        if group["line_search_fn"] == "backtracking":
            x0 = self._clone_params()

            def phi(t):
                self._add_step(t, d)
                f = float(closure())
                self._set_params(x0)
                return f

            t, _, _ = backtracking(phi, f0, _dot(g, d), lr)
            self._add_step(t, d)
        elif group["adaptive_damping"]:
            x0 = self._clone_params()
            self._add_step(lr, d)
            f = float(closure())
            if math.isfinite(f) and f < f0:
                state["damping"] = damping / self.damping_factor
            else:  # reject the step
                self._set_params(x0)
                state["damping"] = damping * self.damping_factor
        else:
            self._add_step(lr, d)
        return loss
