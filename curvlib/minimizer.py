r"""``minimize``: every optimizer of the book on a numpy function, with its whole path.

>>> import numpy as np
>>> from curvlib import minimize
>>> from curvlib.landscapes import Rosenbrock
>>> res = minimize(Rosenbrock(), [-1.2, 1.0], method="lbfgs")
>>> res.success, np.round(res.x, 6).tolist(), res.path.shape[1]
(True, [1.0, 1.0], 2)

The first-order methods call the very functions of :mod:`curvlib.rules` that
:mod:`curvlib.optim` calls, and ``lbfgs``/``newton`` the array code of
:mod:`curvlib.quasi_newton` that :class:`curvlib.optim.LBFGS` and :class:`~curvlib.optim.Newton`
run: the path a widget draws is, step for step, what the torch optimizer does. The tests
hold every method to that.

Hyperparameters keep curvlib.optim's (and torch.optim's) names and defaults. For the
first-order methods they are checked and bound by :func:`curvlib.optim.make_rule`, the very
code behind the optimizer classes, so there is one copy of every default:

==============  ==========================================================================
method          the optimizer it runs, and its hyperparameters (default)
==============  ==========================================================================
``gd``          ``SGD`` with ``momentum=0``: ``lr`` (1e-3), ``weight_decay`` (0)
``sgd``         ``SGD`` as torch's: ``lr``, ``momentum`` (0), ``dampening``, ``nesterov``, ...
``momentum``    ``SGD``, ``momentum`` (0.9), ``dampening`` (0), ``weight_decay`` (0)
``nesterov``    ``SGD(nesterov=True)``, ``momentum`` (0.9)
``adagrad``     ``Adagrad``: ``lr`` (1e-2), ``lr_decay``, ``initial_accumulator_value``, ``eps`` (1e-10)
``rmsprop``     ``RMSprop``: ``lr`` (1e-2), ``alpha`` (0.99), ``eps`` (1e-8), ``momentum``, ``centered``
``adam``        ``Adam``: ``lr`` (1e-3), ``betas`` ((0.9, 0.999)), ``eps`` (1e-8), ``amsgrad``,
                ``bias_correction`` (True; False is the lecture's form)
``adamw``       ``AdamW``: as ``adam`` with decoupled ``weight_decay`` (1e-2)
``lbfgs``       ``LBFGS``: ``lr`` (1), ``history_size`` (100), ``line_search_fn``
                ("strong_wolfe"), ``tolerance_change`` (0), ``max_eval`` (25 per line search)
``newton``      ``Newton``: ``lr`` (1), ``damping`` (0), ``line_search_fn`` (None or
                "backtracking"), ``adaptive_damping`` (False)
==============  ==========================================================================

Two defaults of ``lbfgs`` differ from ``torch.optim.LBFGS`` on purpose: the line search is on
(torch's ``None`` suits stochastic training; here the problem is deterministic) and
``tolerance_change`` is 0, so that the run stops on ``gtol`` like scipy's L-BFGS-B. One
iteration of ``minimize`` is one iteration of ``LBFGS(..., max_iter=1, max_eval=max_eval + 1)``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.optimize import OptimizeResult

from ._checks import check_choice, check_int, check_nonnegative

__all__ = ["minimize", "METHODS"]

#: the first-order methods: rules bound by :func:`curvlib.optim.make_rule`, which checks the
#: hyperparameters and fills in the defaults exactly as the optimizer classes do
FIRST_ORDER = ("gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
#: the curvature methods and their hyperparameters with minimize's defaults
SECOND_ORDER = {
    "lbfgs": dict(lr=1.0, history_size=100, line_search_fn="strong_wolfe",
                  tolerance_change=0.0, max_eval=25),
    "newton": dict(lr=1.0, damping=0.0, line_search_fn=None, adaptive_damping=False),
}
METHODS = FIRST_ORDER + tuple(SECOND_ORDER)


# --------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------
def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_second_order(method, hyper):
    from .quasi_newton import check_option
    allowed = SECOND_ORDER[method]
    for name in hyper:
        if name not in allowed:
            raise TypeError(f"unexpected hyperparameter {name!r} for method {method!r}; "
                            f"it takes {sorted(allowed)}")
    h = {**allowed, **hyper}
    for name in ("lr", "damping", "tolerance_change"):
        if name in h:
            h[name] = check_nonnegative(name, h[name])
    if method == "lbfgs":
        h["history_size"] = check_int("history_size", h["history_size"], minimum=1)
        h["max_eval"] = check_int("max_eval", h["max_eval"], minimum=1)
        check_option("line_search_fn", h["line_search_fn"], (None, "strong_wolfe"))
    else:
        check_option("line_search_fn", h["line_search_fn"], (None, "backtracking"))
        h["adaptive_damping"] = _check_bool("adaptive_damping", h["adaptive_damping"])
        if h["adaptive_damping"] and h["damping"] <= 0:
            raise ValueError(f"damping must be positive when adaptive_damping=True, got {h['damping']}")
        if h["adaptive_damping"] and h["line_search_fn"] is not None:
            raise ValueError("line_search_fn must be None when adaptive_damping=True")
    return h


# --------------------------------------------------------------------------------------
# the objective: value and gradient, with evaluation counts
# --------------------------------------------------------------------------------------
class _Objective:
    """Wraps ``fun``/``jac``/``hess`` into ``value_and_grad(x)`` and ``hessian(x)``, counting calls."""

    def __init__(self, fun, jac, hess, n):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {fun!r}")
        self.fun, self.n = fun, n
        self.nfev = self.njev = self.nhev = 0
        landscape_grad = getattr(fun, "grad", None)
        if jac is None and callable(landscape_grad):
            jac = landscape_grad
        if not (jac is None or jac is True or callable(jac)):
            raise TypeError(f"jac must be None, True or a callable, got {jac!r}")
        self.jac = jac
        landscape_hess = getattr(fun, "hess", None)
        if hess is None and callable(landscape_hess):
            hess = landscape_hess
        if not (hess is None or callable(hess)):
            raise TypeError(f"hess must be None or a callable, got {hess!r}")
        self.hess = hess

    def value(self, x):
        self.nfev += 1
        out = self.fun(x)
        if self.jac is True:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("with jac=True, fun must return a pair (value, gradient)")
            out = out[0]
        return self._scalar(out)

    @staticmethod
    def _scalar(f):
        try:
            return float(f)
        except (TypeError, ValueError):
            raise TypeError(f"fun must return a scalar, got {f!r}") from None

    def _vector(self, g, name):
        g = np.array(g, dtype=float)
        if g.shape != (self.n,):
            raise ValueError(f"{name} must return an array of shape ({self.n},), got {g.shape}")
        return g

    def value_and_grad(self, x):
        if self.jac is True:
            self.nfev += 1
            self.njev += 1
            out = self.fun(x)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("with jac=True, fun must return a pair (value, gradient)")
            return self._scalar(out[0]), self._vector(out[1], "fun")
        f = self.value(x)
        if self.jac is None:
            return f, self._numerical_grad(x)
        self.njev += 1
        return f, self._vector(self.jac(x), "jac")

    def grad(self, x):
        return self.value_and_grad(x)[1] if self.jac is True else (
            self._numerical_grad(x) if self.jac is None else self._vector(self.jac(x), "jac"))

    def _numerical_grad(self, x):
        """Central differences, step h_i = eps^(1/3) max(1, |x_i|): error O(h^2), 2n calls."""
        self.njev += 1
        g = np.empty(self.n)
        for i in range(self.n):
            h = np.finfo(float).eps ** (1 / 3) * max(1.0, abs(x[i]))
            e = np.zeros(self.n)
            e[i] = h
            g[i] = (self.value(x + e) - self.value(x - e)) / (2 * h)
        return g

    def hessian(self, x):
        self.nhev += 1
        if self.hess is not None:
            H = np.array(self.hess(x), dtype=float)
            if H.shape != (self.n, self.n):
                raise ValueError(f"hess must return an array of shape ({self.n}, {self.n}), got {H.shape}")
            return H
        # central differences of the gradient, symmetrised
        H = np.empty((self.n, self.n))
        for i in range(self.n):
            h = np.finfo(float).eps ** (1 / 3) * max(1.0, abs(x[i]))
            e = np.zeros(self.n)
            e[i] = h
            H[:, i] = (self.grad(x + e) - self.grad(x - e)) / (2 * h)
        return 0.5 * (H + H.T)


def _finite(f, g=None, x=None):
    return (math.isfinite(f) and (g is None or bool(np.all(np.isfinite(g))))
            and (x is None or bool(np.all(np.isfinite(x)))))


# --------------------------------------------------------------------------------------
# minimize
# --------------------------------------------------------------------------------------
def minimize(fun, x0=None, jac=None, hess=None, method="lbfgs", maxiter=1000, gtol=1e-5, **hyper):
    r"""Minimise ``fun`` from ``x0`` with one of the book's optimizers; return the whole path.

    Parameters
    ----------
    fun : callable or :class:`curvlib.landscapes.Landscape`
        ``fun(x) -> float`` for a 1-D numpy array ``x``; with ``jac=True`` it returns
        ``(value, gradient)``. A landscape brings its own exact gradient and Hessian.
    x0 : array_like, shape (n,)
        Starting point (default for a landscape: its ``start``).
    jac : None, True or callable
        Gradient: ``jac(x)``, or ``True`` (``fun`` returns both). ``None`` uses the landscape's
        gradient or else central differences (:math:`2n` extra calls, counted in ``nfev``).
    hess : None or callable
        Hessian for ``newton``; ``None`` uses the landscape's or central differences of the
        gradient.
    method : str
        ``gd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``, ``adam``, ``adamw``,
        ``lbfgs`` or ``newton``.
    maxiter : int
        Maximum number of iterations (steps).
    gtol : float
        Stop with success when :math:`\|\nabla f(x)\|_\infty \le` ``gtol`` (the test of
        scipy's L-BFGS-B ``gtol`` for an unconstrained problem).
    **hyper
        The method's hyperparameters, named as in :mod:`curvlib.optim` (see the table above).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac`` (gradient at ``x``), ``nit``, ``nfev``, ``njev``, ``nhev``,
        ``success``, ``message``, ``path`` (shape ``(nit + 1, n)``, ``x0`` first) and
        ``fun_path`` (the value at each point of ``path``). A run whose iterate, value or
        gradient turns non-finite stops with ``success=False`` and the message
        ``"diverged at step k"``; ``path`` then ends at the last finite point.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {method!r}")
    method = method.lower()
    check_choice("method", method, set(METHODS))
    maxiter = check_int("maxiter", maxiter, minimum=0)
    gtol = check_nonnegative("gtol", gtol)
    if method in SECOND_ORDER:
        h = _check_second_order(method, hyper)
    else:
        from .optim import make_rule
        h = make_rule(method, **hyper)
    if x0 is None:
        if getattr(fun, "start", None) is None:
            raise TypeError("x0 is required (only a landscape has a default start)")
        x0 = fun.start
    x = _check_x0(x0, fun)
    obj = _Objective(fun, jac, hess, x.size)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, g = obj.value_and_grad(x)
        if not _finite(f, g):
            raise ValueError(f"fun and its gradient must be finite at x0, got f(x0)={f}")
        run = {"lbfgs": _run_lbfgs, "newton": _run_newton}.get(method, _run_first_order)
        path, fun_path, g, message, success = run(method, obj, x, f, g, maxiter, gtol, h)
    path = np.array(path)
    return OptimizeResult(x=path[-1].copy(), fun=fun_path[-1], jac=g, nit=len(path) - 1,
                          nfev=obj.nfev, njev=obj.njev, nhev=obj.nhev, success=success,
                          message=message, path=path, fun_path=np.array(fun_path), method=method)


def _check_x0(x0, fun):
    if isinstance(x0, (str, bytes)) or (not isinstance(x0, (numbers.Real, np.ndarray, list, tuple))
                                         and not hasattr(x0, "__array__")):
        raise TypeError(f"x0 must be an array of real numbers, got {x0!r}")
    arr = np.asarray(x0)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"x0 must contain real numbers, got dtype {arr.dtype}")
    x = np.array(arr, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x.shape}")
    if hasattr(fun, "grad") and hasattr(fun, "box") and x.shape != (2,):
        raise ValueError(f"x0 must have shape (2,) for a 2-D landscape, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x0 must be finite, got {x.tolist()}")
    return x


def _converged(g, gtol):
    return float(np.max(np.abs(g))) <= gtol


def _finish(path, fun_path, g, gtol):
    """The loops' common ending: success if the last gradient meets ``gtol``."""
    if _converged(g, gtol):
        return path, fun_path, g, "gradient norm below gtol", True
    return path, fun_path, g, "maximum number of iterations reached", False


def _run_first_order(method, obj, x, f, g, maxiter, gtol, h):
    """One :mod:`curvlib.rules` step per iteration, exactly as curvlib.optim takes it."""
    init, rule = h  # from curvlib.optim.make_rule
    state = init(x)
    path, fun_path = [x.copy()], [f]
    for k in range(1, maxiter + 1):
        if _converged(g, gtol):
            return path, fun_path, g, "gradient norm below gtol", True
        x_new = rule(x.copy(), g, state)
        if not _finite(0.0, x=x_new):
            return path, fun_path, g, f"diverged at step {k}", False
        f_new, g_new = obj.value_and_grad(x_new)
        if not _finite(f_new, g_new):
            return path, fun_path, g, f"diverged at step {k}", False
        x, f, g = x_new, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
    return _finish(path, fun_path, g, gtol)


def _run_lbfgs(method, obj, x, f, g, maxiter, gtol, h):
    """The iteration of :class:`curvlib.quasi_newton.LBFGS`, on numpy arrays."""
    from .quasi_newton import lbfgs_direction, strong_wolfe

    state = {}
    path, fun_path = [x.copy()], [f]
    for k in range(1, maxiter + 1):
        if _converged(g, gtol):
            return path, fun_path, g, "gradient norm below gtol", True
        d, t = lbfgs_direction(state, g, h["lr"], h["history_size"])
        if not float(g @ d) < -h["tolerance_change"]:
            return path, fun_path, g, "no descent direction (g.d >= -tolerance_change)", False
        state["prev_flat_grad"], prev_f = g, f
        if h["line_search_fn"] == "strong_wolfe":
            t, f_new, g_new, _ = strong_wolfe(lambda s: obj.value_and_grad(x + s * d), d, f, g, t,
                                              max_evals=h["max_eval"],
                                              tolerance_change=h["tolerance_change"])
            if t == 0:
                return path, fun_path, g, f"line search failed at step {k}", False
        else:
            f_new, g_new = obj.value_and_grad(x + t * d)
        x_new = x + t * d
        if not _finite(f_new, g_new, x_new):
            return path, fun_path, g, f"diverged at step {k}", False
        state["d"], state["t"] = d, t
        x, f, g = x_new, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
        if h["tolerance_change"] > 0 and (t * float(np.max(np.abs(d))) <= h["tolerance_change"]
                                          or abs(f - prev_f) < h["tolerance_change"]):
            return path, fun_path, g, "change below tolerance_change", _converged(g, gtol)
    return _finish(path, fun_path, g, gtol)


def _run_newton(method, obj, x, f, g, maxiter, gtol, h):
    """The iteration of :class:`curvlib.quasi_newton.Newton`, on numpy arrays."""
    from .quasi_newton import LEVENBERG_FACTOR, backtracking, newton_direction

    damping = h["damping"]
    globalised = h["line_search_fn"] is not None or h["adaptive_damping"]
    path, fun_path = [x.copy()], [f]
    for k in range(1, maxiter + 1):
        if _converged(g, gtol):
            return path, fun_path, g, "gradient norm below gtol", True
        H = obj.hessian(x)
        if not np.all(np.isfinite(H)):
            return path, fun_path, g, f"diverged at step {k}", False
        try:
            d, _ = newton_direction(g, H, damping, positive_definite=globalised)
        except np.linalg.LinAlgError:
            return path, fun_path, g, f"singular Hessian at step {k} (try damping > 0)", False
        t = h["lr"]
        if h["line_search_fn"] == "backtracking":
            t, _, _ = backtracking(lambda s: obj.value(x + s * d), f, float(g @ d), t)
            if t == 0:
                return path, fun_path, g, f"line search failed at step {k}", False
        elif h["adaptive_damping"]:
            f_trial = obj.value(x + t * d)
            if math.isfinite(f_trial) and f_trial < f:
                damping /= LEVENBERG_FACTOR
            else:  # reject the step, damp more
                damping *= LEVENBERG_FACTOR
                t = 0.0
        x_new = x + t * d if t != 0 else x
        f_new, g_new = (f, g) if t == 0 else obj.value_and_grad(x_new)
        if not _finite(f_new, g_new, x_new):
            return path, fun_path, g, f"diverged at step {k}", False
        x, f, g = x_new, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
    return _finish(path, fun_path, g, gtol)
