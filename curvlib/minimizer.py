r"""``minimize``: every optimizer of the book on a numpy function, with its whole path.

>>> import numpy as np
>>> from curvlib import minimize
>>> from curvlib.landscapes import Rosenbrock
>>> res = minimize(Rosenbrock(), [-1.2, 1.0], method="lbfgs")
>>> res.success, np.round(res.x, 6).tolist(), res.path.shape[1]
(True, [1.0, 1.0], 2)

Every method is a row of the table :data:`curvlib.methods.METHODS`, and ``minimize`` runs
the very code of :mod:`curvlib.optim`'s optimizer of the same name: the first-order methods
call the rules of :mod:`curvlib.rules` (through :func:`curvlib.methods.make_rule`),
``lbfgs`` and ``newton`` the loops of :mod:`curvlib.quasi_newton` that
:class:`curvlib.optim.LBFGS` and :class:`~curvlib.optim.Newton` run on their flattened
parameters. The path a widget draws is, step for step, what the torch optimizer does; the
tests hold every method to that. No torch is needed.

Methods: ``gd`` (``sgd`` without momentum), ``sgd``, ``momentum``, ``nesterov``,
``adagrad``, ``rmsprop``, ``adam``, ``adamw``, ``lbfgs``, ``newton``. Hyperparameters keep
torch.optim's names and defaults (``lr``, ``betas``, ``eps``, ``weight_decay``,
``history_size``, ...), read from the table; ``momentum`` and ``nesterov`` default to
``momentum=0.9``. An unknown one is a ``ValueError`` naming it.

``lbfgs`` differs from ``torch.optim.LBFGS`` in three defaults, on purpose
(:data:`MINIMIZE_DEFAULTS`): the line search is on (``line_search_fn="strong_wolfe"``;
torch's ``None`` suits stochastic training, here the problem is deterministic),
``tolerance_change`` is 0, so that the run stops on ``gtol`` like scipy's L-BFGS-B, and
``max_eval`` (25) counts the evaluations of one iteration's line search. One iteration of
``minimize`` is one call of ``LBFGS(..., max_iter=1, max_eval=max_eval + 1).step``; so,
without a line search, ``tolerance_change`` is not tested (torch's ``step`` does not test it
after its last iteration either). ``max_iter`` and ``tolerance_grad`` are ``minimize``'s own
``maxiter`` and ``gtol``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.optimize import OptimizeResult

from . import methods, quasi_newton
from ._checks import MAX_BYTES, check_int, check_nonnegative, check_size

__all__ = ["minimize", "MINIMIZE_DEFAULTS", "MAX_FD_CALLS"]

#: minimize's defaults where they differ from the method's (torch.optim's); see above for why
MINIMIZE_DEFAULTS = {"lbfgs": dict(line_search_fn="strong_wolfe", tolerance_change=0.0,
                                   max_eval=25)}
#: Newton without ``jac`` and ``hess`` calls ``fun`` :math:`4n^2` times per iteration; above
#: this many calls it is refused (n > 500)
MAX_FD_CALLS = 10 ** 6

#: hyperparameters of the torch optimizers that minimize takes under its own names
_OWN_NAMES = {"max_iter": "maxiter", "tolerance_grad": "gtol"}


def _check_method(method, hyper):
    """The method's row and its complete, checked hyperparameters (or its bound rule)."""
    row = methods.get(method, "method")
    if row.step is None:
        usable = [n for n, m in methods.METHODS.items() if m.step is not None]
        raise ValueError(f"method must be one of {', '.join(usable)} ({row.name!r} needs a "
                         f"torch model: use curvlib.optim), got {method!r}")
    for name in hyper:
        if name in _OWN_NAMES:
            raise ValueError(f"{name} is minimize's {_OWN_NAMES[name]}; pass that instead")
    if row.elementwise:
        return row, methods.make_rule(row.name, **hyper)
    h = methods.resolve(row.name, {**MINIMIZE_DEFAULTS.get(row.name, {}), **hyper})
    if row.name == "lbfgs":
        h["max_eval"] = check_int("max_eval", h["max_eval"], minimum=1)
    return row, {k: v for k, v in h.items() if k not in _OWN_NAMES}


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
        """The objective's value as a float: a real number, or a one-element real array or
        tensor; a string, a bool or a complex number is refused (``float`` would take the
        first two and numpy would drop the imaginary part of the third)."""
        if hasattr(f, "dtype") and hasattr(f, "shape") and math.prod(f.shape) == 1:
            kind = np.dtype(str(f.dtype).removeprefix("torch.")).kind \
                if not isinstance(f.dtype, np.dtype) else f.dtype.kind
            if kind in "iuf":
                return float(f.reshape(()) if hasattr(f, "reshape") else f)
        elif isinstance(f, numbers.Real) and not isinstance(f, (bool, np.bool_)):
            return float(f)
        raise TypeError(f"fun must return a scalar (one real number), got {f!r}")

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
def minimize(fun, x0=None, jac=None, hess=None, method="lbfgs", maxiter=1000, gtol=1e-5, *,
             max_bytes=MAX_BYTES, **hyper):
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
        ``gd``, ``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``, ``adam``,
        ``adamw``, ``lbfgs`` or ``newton`` (any case).
    maxiter : int
        Maximum number of iterations (steps).
    gtol : float
        Stop with success when :math:`\|\nabla f(x)\|_\infty \le` ``gtol`` (the test of
        scipy's L-BFGS-B ``gtol`` for an unconstrained problem).
    max_bytes : float
        ``newton`` only: refuse (``ValueError``, before any evaluation) a problem whose dense
        Hessian and the copies of its solve (three :math:`n\times n` float64 arrays) exceed
        this many bytes (``curvlib._checks.MAX_BYTES``, 2 GiB; ``math.inf`` lifts the
        limit). With neither ``hess`` nor ``jac`` (nor a landscape's), the Hessian would come
        from central differences of central differences, :math:`4n^2` calls of ``fun`` per
        iteration: that is refused above ``curvlib.minimizer.MAX_FD_CALLS`` calls (pass ``jac``).
    **hyper
        The method's hyperparameters, named as in :mod:`curvlib.optim` (see above).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac`` (gradient at ``x``), ``nit``, ``nfev``, ``njev``, ``nhev``,
        ``success``, ``message``, ``path`` (shape ``(nit + 1, n)``, ``x0`` first) and
        ``fun_path`` (the value at each point of ``path``). A run whose iterate, value or
        gradient turns non-finite stops with ``success=False`` and the message
        ``"diverged at step k"``; ``path`` then ends at the last finite point.
    """
    row, h = _check_method(method, hyper)
    method = row.name
    maxiter = check_int("maxiter", maxiter, minimum=0)
    gtol = check_nonnegative("gtol", gtol)
    if x0 is None:
        if getattr(fun, "start", None) is None:
            raise TypeError("x0 is required (only a landscape has a default start)")
        x0 = fun.start
    x = _check_x0(x0, fun)
    obj = _Objective(fun, jac, hess, x.size)
    if method == "newton":
        n = x.size
        check_size(f"minimize's dense Hessian of {n} variables (three {n} x {n} float64 "
                   "matrices)", 3 * n * n * 8, max_bytes)
        if obj.hess is None and obj.jac is None and 4 * n * n > MAX_FD_CALLS:
            raise ValueError(f"x0 has {n} entries: without jac or hess, each Newton iteration "
                             f"would call fun {4 * n * n} times (central differences of "
                             f"central differences), more than MAX_FD_CALLS={MAX_FD_CALLS}; "
                             "pass jac (the gradient) or hess")

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, g = obj.value_and_grad(x)
        if not _finite(f, g):
            raise ValueError(f"fun and its gradient must be finite at x0, got f(x0)={f}")
        run = {"lbfgs": _run_lbfgs, "newton": _run_newton}.get(method, _run_first_order)
        path, fun_path, g, message, success = run(obj, x, f, g, maxiter, gtol, h)
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


def _run_first_order(obj, x, f, g, maxiter, gtol, rule):
    """One :mod:`curvlib.rules` step per iteration, exactly as curvlib.optim takes it."""
    init, step = rule  # from curvlib.methods.make_rule
    state = init(x)
    path, fun_path = [x.copy()], [f]
    for k in range(1, maxiter + 1):
        if _converged(g, gtol):
            return path, fun_path, g, "gradient norm below gtol", True
        x_new = step(x.copy(), g, state)
        if not _finite(0.0, x=x_new):
            return path, fun_path, g, f"diverged at step {k}", False
        f_new, g_new = obj.value_and_grad(x_new)
        if not _finite(f_new, g_new):
            return path, fun_path, g, f"diverged at step {k}", False
        x, f, g = x_new, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
    return _finish(path, fun_path, g, gtol)


#: why quasi_newton.lbfgs stopped before a step -> minimize's message and success
_NO_STEP = {"tolerance_grad": ("gradient norm below gtol", True),
            "no_descent": ("no descent direction (g.d >= -tolerance_change)", False),
            "line_search": ("line search failed at step {k}", False)}


def _run_lbfgs(obj, x, f, g, maxiter, gtol, h):
    """Iterations of :func:`curvlib.quasi_newton.lbfgs`, one call each, as LBFGS(max_iter=1)."""
    loop = dict(h, max_iter=1, max_eval=h["max_eval"] + 1, tolerance_grad=gtol)
    state, path, fun_path = {}, [x.copy()], [f]
    for k in range(1, maxiter + 1):
        run = quasi_newton.lbfgs(obj.value_and_grad, x, f, g, state, **loop)
        if run.n_iter == 0:
            message, success = _NO_STEP[run.reason]
            return path, fun_path, g, message.format(k=k), success
        # without a line search the loop leaves the new point's evaluation to its caller
        f_new, g_new = obj.value_and_grad(run.x) if run.f is None else (run.f, run.g)
        if not _finite(f_new, g_new, run.x):
            return path, fun_path, g, f"diverged at step {k}", False
        x, f, g = run.x, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
        if run.reason == "tolerance_change":
            return path, fun_path, g, "change below tolerance_change", _converged(g, gtol)
    return _finish(path, fun_path, g, gtol)


def _run_newton(obj, x, f, g, maxiter, gtol, h):
    """Iterations of :func:`curvlib.quasi_newton.newton_step`, as :class:`curvlib.optim.Newton`."""
    state, path, fun_path = {}, [x.copy()], [f]
    for k in range(1, maxiter + 1):
        if _converged(g, gtol):
            return path, fun_path, g, "gradient norm below gtol", True
        H = obj.hessian(x)
        if not np.all(np.isfinite(H)):
            return path, fun_path, g, f"diverged at step {k}", False
        try:
            x_new, t = quasi_newton.newton_step(obj.value, x, f, g, H, state, **h)
        except np.linalg.LinAlgError:
            return path, fun_path, g, f"singular Hessian at step {k} (try damping > 0)", False
        if t == 0 and h["line_search_fn"] == "backtracking":
            return path, fun_path, g, f"line search failed at step {k}", False
        f_new, g_new = (f, g) if t == 0 else obj.value_and_grad(x_new)
        if not _finite(f_new, g_new, x_new):
            return path, fun_path, g, f"diverged at step {k}", False
        x, f, g = x_new, f_new, g_new
        path.append(x.copy())
        fun_path.append(f)
    return _finish(path, fun_path, g, gtol)
