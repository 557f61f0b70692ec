r"""L-BFGS and damped Newton as array code, shared by :func:`curvlib.minimize` and :mod:`curvlib.optim`.

Everything here takes flat numpy arrays or flat torch tensors alike (``+ - * /``, ``.dot``,
``abs(.).max()`` and a linear solve), and imports no torch:

* the pieces: the L-BFGS two-loop recursion (:func:`two_loop_direction`) and its memory
  (:func:`update_memory`, :func:`lbfgs_direction`), the dense inverse-BFGS update it
  replaces (:func:`bfgs_inverse_update`), the strong-Wolfe line search
  (:func:`strong_wolfe`), Armijo backtracking (:func:`backtracking`) and the damped Newton
  direction (:func:`newton_direction`);
* the loops, written once: :func:`lbfgs` (iterations of L-BFGS from a point) and
  :func:`newton_step` (one damped Newton iteration). :func:`curvlib.minimize` calls them on
  numpy arrays; :class:`curvlib.optim.LBFGS` and :class:`curvlib.optim.Newton` flatten the
  parameters into one vector and call them on tensors. So the path a widget draws is, step
  for step, what the torch optimizer takes.

Reference for the algorithms: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
Springer, 2006 (cited below as N&W) -- Alg. 7.4 (two-loop recursion), eq. 6.17 (inverse BFGS
update), eq. 7.20 (scaling of :math:`H_k^0`), Alg. 3.5/3.6 (line search for the strong Wolfe
conditions), eq. 3.59 (cubic interpolation), Alg. 3.1 (backtracking) and Alg. 3.3 (Cholesky
with added multiple of the identity). L-BFGS itself: D. C. Liu and J. Nocedal, "On the
limited memory BFGS method for large scale optimization", Mathematical Programming
45:503-528, 1989. scipy's L-BFGS-B, the yardstick of ``benchmarks/lbfgs.py``: R. H. Byrd,
P. Lu, J. Nocedal and C. Zhu, "A limited memory algorithm for bound constrained
optimization", SIAM J. Sci. Comput. 16(5):1190-1208, 1995.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import check_int, check_nonnegative, check_unit_interval

__all__ = ["two_loop_direction", "update_memory", "lbfgs_direction", "bfgs_inverse_update",
           "strong_wolfe", "backtracking", "newton_direction", "lbfgs", "LBFGSRun",
           "newton_step", "LEVENBERG_FACTOR", "MAX_DAMPING", "MAX_DAMPING_DOUBLINGS"]

_EPS = float(np.finfo(float).eps)


def _is_tensor(x):
    return type(x).__module__.startswith("torch")


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


def _eye_like(H):
    if _is_tensor(H):
        import torch
        return torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    return np.eye(H.shape[0], dtype=H.dtype)


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


def bfgs_inverse_update(H, s, y):
    r"""One BFGS update of a dense inverse-Hessian approximation :math:`H` (N&W eq. 6.17).

    .. math::
        H_{+} = (I - \rho s y^\top)\, H\, (I - \rho y s^\top) + \rho s s^\top,
        \qquad \rho = 1/(y^\top s),

    with :math:`s` the step and :math:`y` the change in gradient. It needs the curvature
    condition :math:`y^\top s > 0`, which keeps :math:`H_{+}` positive definite, and costs
    :math:`O(n^2)` memory and time: what L-BFGS avoids by applying the same updates
    implicitly (:func:`two_loop_direction`). Works on numpy arrays and torch tensors.
    """
    n = s.shape[0] if len(s.shape) == 1 else -1
    if n < 1 or tuple(y.shape) != (n,) or tuple(H.shape) != (n, n):
        raise ValueError(f"s and y must be vectors of one length n and H n x n, got "
                         f"{tuple(s.shape)}, {tuple(y.shape)}, {tuple(H.shape)}")
    ys = _dot(y, s)
    if not ys > 0:
        raise ValueError(f"y and s must satisfy the curvature condition y^T s > 0, got {ys}")
    rho = 1.0 / ys
    V = _eye_like(H) - rho * (y[:, None] * s[None, :])  # I - rho y s^T; V^T = I - rho s y^T
    return V.T @ H @ V + rho * (s[:, None] * s[None, :])


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


def backtracking(phi, f0, dphi0, t=1.0, *, c1=1e-4, shrink=0.5, max_evals=30, eps=_EPS):
    r"""Armijo backtracking (N&W Alg. 3.1): halve ``t`` until
    :math:`f(x+td) \le f(x) + c_1 t\,\nabla f^\top d + 2\epsilon_f`.

    The term :math:`2\epsilon_f` is the relaxed Armijo condition of Shi, Xie, Byrd & Nocedal
    (SIAM J. Optim. 32(1):29-55, 2022) for a function computed with error at most
    :math:`\epsilon_f`; here :math:`\epsilon_f = \epsilon\,|f(x)|`, about one unit in the
    last place of :math:`f` (``eps``: double precision's machine epsilon unless the caller
    says otherwise, e.g. float32's for a float32 model). It matters only at the rounding
    floor, where the predicted decrease :math:`c_1 t\,\nabla f^\top d` is smaller than the
    last digit of :math:`f`: without it the test accepts or rejects a good step on whether
    the last bit of :math:`f(x+td)` rounds up, which depends on the CPU's vector kernels.

    ``phi(t)`` returns the value at :math:`x + t d`; ``dphi0`` is :math:`\nabla f(x)^\top d < 0`.
    Returns ``(t, f, n_evals)``, with ``t = 0`` and ``f0`` if ``max_evals`` trials all failed.
    """
    c1 = check_unit_interval("c1", c1)
    if not 0 < check_unit_interval("shrink", shrink):
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")
    t, max_evals = check_nonnegative("t", t), check_int("max_evals", max_evals, minimum=1)
    slack = 2 * check_nonnegative("eps", eps) * abs(float(f0))
    for evals in range(1, max_evals + 1):
        f = float(phi(t))
        if math.isfinite(f) and f <= f0 + c1 * t * dphi0 + slack:
            return t, f, evals
        t *= shrink
    return 0.0, f0, max_evals


# ======================================================================================
# Newton
# ======================================================================================
#: The factor of Levenberg-Marquardt damping (Marquardt's choice): the damping is divided by
#: it after a successful step and multiplied by it after a rejected one.
LEVENBERG_FACTOR = 10.0
#: Levenberg-Marquardt damping never grows past this: a run that keeps rejecting steps stays
#: at a huge finite damping (a step of about ``-g / MAX_DAMPING``) instead of overflowing.
MAX_DAMPING = 1e150


def _eps_of(x):
    """Machine epsilon of the floating-point type of ``x`` (an array or a tensor)."""
    if _is_tensor(x):
        import torch
        return float(torch.finfo(x.dtype).eps)
    dtype = np.asarray(x).dtype
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else _EPS


def _solve(A, b):
    if _is_tensor(A):
        import torch
        return torch.linalg.solve(A, b)
    return np.linalg.solve(A, b)


def _is_positive_definite(A):
    if _is_tensor(A):
        import torch
        return int(torch.linalg.cholesky_ex(A).info) == 0
    try:
        np.linalg.cholesky(A)
        return True
    except np.linalg.LinAlgError:
        return False


def _all_finite(a):
    if _is_tensor(a):
        import torch
        return bool(torch.isfinite(a).all())
    return bool(np.all(np.isfinite(a)))


#: At most this many doublings of :math:`\tau` in :func:`newton_direction` (from
#: :math:`\beta = 10^{-3}`, 200 doublings pass :math:`10^{57}`, far beyond any Hessian whose
#: entries fit a float64 with room to spare).
MAX_DAMPING_DOUBLINGS = 200


def newton_direction(grad, H, damping=0.0, *, positive_definite=False, beta=1e-3):
    r"""Damped Newton direction :math:`d = -(H + \lambda I)^{-1} \nabla f`.

    With ``damping`` :math:`\lambda = 0` this is Newton's step, which jumps to the stationary
    point of the local quadratic model, be it a minimum, a maximum or a saddle.
    ``positive_definite=True`` guarantees a descent direction: if :math:`H + \lambda I` is not
    positive definite, :math:`\tau I` is added with :math:`\tau` doubled from
    :math:`\max(\beta, \beta - \min_i a_{ii})` until a Cholesky factorisation succeeds
    (N&W Alg. 3.3). Returns ``(d, lambda_used)``.

    ``grad``, ``H`` and ``damping`` must be finite (``ValueError`` naming the one that is
    not). The doubling stops after :data:`MAX_DAMPING_DOUBLINGS` tries or when
    :math:`\tau` overflows, with a ``ValueError`` naming ``H``: such a matrix has entries
    too large for a float to damp.
    """
    for name, a, ndim in (("grad", grad, 1), ("H", H, 2)):
        kind = getattr(getattr(a, "dtype", None), "is_floating_point", None)
        real = kind if kind is not None else getattr(getattr(a, "dtype", None), "kind", "") in "f"
        if not (hasattr(a, "shape") and hasattr(a, "dtype")) or not real or a.ndim != ndim:
            raise TypeError(f"{name} must be a {ndim}-D floating-point array or tensor, got "
                            f"{a!r}")
    if H.shape != (grad.shape[0], grad.shape[0]):
        raise ValueError(f"H must have shape ({grad.shape[0]}, {grad.shape[0]}) to match grad, "
                         f"got {tuple(H.shape)}")
    if not _all_finite(grad):
        raise ValueError("grad must be finite (it holds NaN or infinity)")
    if not _all_finite(H):
        raise ValueError("H must be finite (the Hessian holds NaN or infinity)")
    if not math.isfinite(float(damping)):
        raise ValueError(f"damping must be finite, got {damping}")
    eye = _eye_like(H)
    A = H + damping * eye
    if positive_definite and not _is_positive_definite(A):
        min_diag = float(min(A[i, i] for i in range(A.shape[0])))
        tau = beta - min_diag if min_diag <= 0 else beta
        for _ in range(MAX_DAMPING_DOUBLINGS):
            if not math.isfinite(tau) or not _all_finite(A + tau * eye):
                break
            if _is_positive_definite(A + tau * eye):
                break
            tau = max(2 * tau, beta)
        else:
            tau = math.inf
        if not math.isfinite(tau) or not _all_finite(A + tau * eye):
            raise ValueError("H could not be made positive definite by adding a finite "
                             "multiple of the identity (its entries are too large for a "
                             "float): rescale the objective")
        A = A + tau * eye
        damping = damping + tau
    d = -_solve(A, grad)
    return d, damping


# ======================================================================================
# The loops, shared by curvlib.minimize (numpy) and curvlib.optim (torch)
# ======================================================================================
class LBFGSRun(NamedTuple):
    """What :func:`lbfgs` ends with: the point, its value and gradient, the iterations taken,
    the evaluations made and why it stopped."""
    x: object
    f: float
    g: object
    n_iter: int
    evals: int
    reason: str


def lbfgs(evaluate, x, f, g, state, *, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7,
          tolerance_change=1e-9, history_size=100, line_search_fn=None):
    r"""Up to ``max_iter`` L-BFGS iterations from ``x``, whose value ``f`` and gradient ``g``
    are known; the keywords and defaults are ``torch.optim.LBFGS``'s.

    Each iteration takes the direction of :func:`lbfgs_direction` (two-loop recursion), then
    the step :func:`strong_wolfe` finds (``line_search_fn="strong_wolfe"``) or the fixed
    first trial step (``None``), and moves to :math:`x + t d`. ``evaluate(x)`` returns
    ``(f, g)``. ``state`` (a dict, torch.optim.LBFGS's keys) carries the memory from one
    call to the next, so calling this with ``max_iter=1`` again and again is the same run.

    It stops, with ``reason``:

    * ``"tolerance_grad"``: :math:`\|g\|_\infty \le` ``tolerance_grad``, at the start or
      after a step;
    * ``"no_descent"``: :math:`g^\top d \ge -` ``tolerance_change`` (no step taken);
    * ``"line_search"``: the line search found no decrease (no step taken);
    * ``"tolerance_change"``: the step :math:`t\|d\|_\infty` or the change in :math:`f` fell
      below ``tolerance_change``;
    * ``"max_iter"`` or ``"max_eval"``: out of iterations, or of evaluations (``max_eval``
      counts the one that gave ``f`` and ``g``; default ``max_iter * 5 // 4``, as torch).

    Without a line search the last iteration does not evaluate its new point (``f`` and
    ``g`` come back ``None``): torch.optim.LBFGS saves that call, as the next ``step``
    evaluates anyway (perhaps on a new batch).
    """
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)
    evals = 1
    if _max_abs(g) <= tolerance_grad:
        return LBFGSRun(x, f, g, 0, evals, "tolerance_grad")
    for n_iter in range(1, max_iter + 1):
        state["n_iter"] += 1
        d, t = lbfgs_direction(state, g, lr, history_size)
        if not _dot(g, d) < -tolerance_change:  # not a (useful) descent direction
            return LBFGSRun(x, f, g, n_iter - 1, evals, "no_descent")
        state["prev_flat_grad"], state["prev_loss"] = g, f
        prev_f = f
        if line_search_fn == "strong_wolfe":
            t, f, g, used = strong_wolfe(lambda s: evaluate(x + s * d), d, f, g, t,
                                         max_evals=max(1, max_eval - evals),
                                         tolerance_change=tolerance_change)
        elif n_iter < max_iter:
            f, g = evaluate(x + t * d)
            used = 1
        else:
            f = g = None
            used = 0
        state["d"], state["t"] = d, t
        state["func_evals"] += used
        evals += used
        if t == 0 and line_search_fn == "strong_wolfe":  # no decrease found: stay where we are
            return LBFGSRun(x, f, g, n_iter - 1, evals, "line_search")
        x = x + t * d
        if f is None:
            return LBFGSRun(x, f, g, n_iter, evals, "max_iter")
        if _max_abs(g) <= tolerance_grad:
            return LBFGSRun(x, f, g, n_iter, evals, "tolerance_grad")
        if t * _max_abs(d) <= tolerance_change or abs(f - prev_f) < tolerance_change:
            return LBFGSRun(x, f, g, n_iter, evals, "tolerance_change")
        if evals >= max_eval:
            return LBFGSRun(x, f, g, n_iter, evals, "max_eval")
    return LBFGSRun(x, f, g, max_iter, evals, "max_iter")


def newton_step(value, x, f, g, H, state, *, lr=1.0, damping=0.0, line_search_fn=None,
                adaptive_damping=False):
    r"""One damped Newton iteration from ``x`` (value ``f``, gradient ``g``, Hessian ``H``).

    .. math:: x_{+} = x + t\,d,\qquad (H + \lambda I)\, d = -g.

    ``value(x)`` returns :math:`f(x)`; ``state["damping"]`` carries :math:`\lambda` from one
    iteration to the next (it starts at ``damping``). Globalisation, at most one:

    * ``line_search_fn=None``: :math:`t =` ``lr``, constant :math:`\lambda`. Pure Newton
      (``damping=0``) is drawn to saddle points as much as to minima.
    * ``line_search_fn="backtracking"``: :math:`H + \lambda I` is made positive definite if
      needed (N&W Alg. 3.3), then :math:`t` starts at ``lr`` and is halved until the Armijo
      condition holds, relaxed by the rounding of :math:`f` (:func:`backtracking`);
      :math:`t = 0` if it never does.
    * ``adaptive_damping=True`` (Levenberg-Marquardt): a step that lowers :math:`f` is taken
      and :math:`\lambda \leftarrow \lambda/10`; one that does not is rejected (:math:`t = 0`)
      and :math:`\lambda \leftarrow 10\lambda`. K. Levenberg, Quart. Appl. Math. 2:164-168,
      1944; D. W. Marquardt, J. SIAM 11(2):431-441, 1963.

    Returns ``(x_new, t)``; ``x_new`` is ``x`` itself when :math:`t = 0`.
    """
    lam = float(state.setdefault("damping", damping))
    globalised = line_search_fn is not None or adaptive_damping
    d, _ = newton_direction(g, H, lam, positive_definite=globalised)
    t = lr
    if line_search_fn == "backtracking":
        t, _, _ = backtracking(lambda s: value(x + s * d), f, _dot(g, d), t, eps=_eps_of(x))
    elif adaptive_damping:
        f_trial = float(value(x + t * d))
        if math.isfinite(f_trial) and f_trial < f:
            state["damping"] = lam / LEVENBERG_FACTOR
        else:  # reject the step, damp more
            state["damping"] = min(lam * LEVENBERG_FACTOR, MAX_DAMPING)
            t = 0.0
    return (x + t * d if t != 0 else x), t
