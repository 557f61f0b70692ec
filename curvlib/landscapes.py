r"""Test functions with exact gradients and Hessians: 2-D landscapes and logistic regression.

Each landscape is a small object: call it for the value, ask ``grad`` and ``hess`` for the
exact derivatives (worked out by hand and checked against autograd in the tests), and read
``minima``, ``box`` (a sensible plotting window) and ``start`` (a customary starting point).
The code is plain array arithmetic, so a point may be

* a numpy array or a torch tensor of shape ``(..., 2)`` (a single point or a whole grid), and
* a torch tensor that requires grad, so the same landscape can drive :mod:`curvlib.optim`
  or :func:`torch.func.grad`.

``grad`` returns shape ``(..., 2)`` and ``hess`` shape ``(..., 2, 2)``, in the library of the
input.

:class:`LogisticRegression` is the book's one convex problem on real data: L2-regularised
logistic regression (breast cancer by default), in float64 numpy, with the same interface
(value, exact gradient and Hessian, minimiser) for :func:`curvlib.minimizer.minimize` and the chapters.

>>> from curvlib.landscapes import Rosenbrock
>>> f = Rosenbrock()
>>> float(f([1.0, 1.0])), f.grad([1.0, 1.0]).tolist(), f.minimum.tolist()
(0.0, [0.0, 0.0], [1.0, 1.0])
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import (MAX_BYTES, check_flag, check_int, check_nonnegative, check_positive,
                      check_real, check_size)
from .runs import single_thread

__all__ = ["Landscape", "Quadratic", "Rosenbrock", "Beale", "Saddle", "LogisticRegression",
           "LANDSCAPES", "get"]


def _is_torch(x):
    return hasattr(x, "new_zeros")


def _stack(parts):
    """Stack along a new last axis with the library of ``parts`` (numpy or torch)."""
    if _is_torch(parts[0]):
        import torch
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _as_points(x):
    """Split ``x`` of shape (..., 2) into its two coordinates."""
    if not (_is_torch(x) or isinstance(x, np.ndarray)):
        x = np.asarray(x, dtype=float)
    if x.ndim == 0 or x.shape[-1] != 2:
        raise ValueError(f"x must have shape (..., 2), got {tuple(x.shape)}")
    return x[..., 0], x[..., 1]


class Landscape:
    r"""Base class: a function :math:`f:\mathbb{R}^2\to\mathbb{R}` with exact derivatives.

    Subclasses define ``_value(x, y)``, ``_grad(x, y) -> (fx, fy)`` and
    ``_hess(x, y) -> (fxx, fxy, fyy)`` on the two coordinate arrays.
    """

    name = "landscape"
    #: ((xmin, xmax), (ymin, ymax)) of a window that shows the interesting part.
    box = ((-2.0, 2.0), (-2.0, 2.0))
    #: a customary starting point for demonstrations.
    start = (-1.0, 1.0)

    def __init__(self):
        self.minima = np.zeros((0, 2))
        self.saddle_points = np.zeros((0, 2))

    # public API -------------------------------------------------------------------------
    def __call__(self, x):
        return self.value(x)

    def value(self, x):
        """Function value at ``x`` of shape (..., 2); shape (...)."""
        return self._value(*_as_points(x))

    def grad(self, x):
        """Exact gradient at ``x``; shape (..., 2)."""
        return _stack(list(self._grad(*_as_points(x))))

    def hess(self, x):
        """Exact Hessian at ``x``; shape (..., 2, 2)."""
        fxx, fxy, fyy = self._hess(*_as_points(x))
        return _stack([_stack([fxx, fxy]), _stack([fxy, fyy])])

    def value_and_grad(self, x):
        """``(value, grad)``, the form ``curvlib.minimize(..., jac=True)`` accepts."""
        return self.value(x), self.grad(x)

    @property
    def minimum(self):
        """The (first) global minimiser, or ``None`` if the function is unbounded below."""
        return self.minima[0].copy() if len(self.minima) else None

    @property
    def minimum_value(self):
        m = self.minimum
        return None if m is None else float(self.value(m))

    def grid(self, n=201, box=None, *, max_bytes=MAX_BYTES):
        """``(X, Y, Z)`` on an ``n`` by ``n`` grid over ``box`` (default ``self.box``), for contour plots.

        A grid whose arrays (about six ``n`` by ``n`` float64 arrays at once) would exceed
        ``max_bytes`` (2 GiB; ``math.inf`` lifts the limit) is refused with a ``ValueError``.
        """
        n = check_int("n", n, minimum=2)
        check_size(f"a {n} x {n} grid", grid_bytes(n), max_bytes)
        (x0, x1), (y0, y1) = self.box if box is None else box
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return X, Y, self.value(np.stack([X, Y], axis=-1))

    def __repr__(self):
        return f"{type(self).__name__}()"


def grid_bytes(n):
    """Bytes of the arrays an ``n`` by ``n`` grid of a 2-D function holds at once (X, Y, the
    points, the values and a temporary: six ``n * n`` float64 arrays)."""
    return 6 * 8 * n * n


class Quadratic(Landscape):
    r"""A convex quadratic with chosen condition number and rotation.

    .. math::
        f(x) = \tfrac12 (x-c)^\top A (x-c),\qquad
        A = R(\varphi)\,\mathrm{diag}(\lambda,\ \kappa\lambda)\,R(\varphi)^\top,\qquad
        R(\varphi) = \begin{pmatrix}\cos\varphi & -\sin\varphi\\ \sin\varphi & \cos\varphi\end{pmatrix}

    ``condition_number`` is :math:`\kappa = \lambda_{\max}/\lambda_{\min} \ge 1`, ``angle``
    :math:`\varphi` (radians) turns the eigenvectors away from the axes (a diagonal
    preconditioner such as Adam's helps only when :math:`\varphi = 0`), ``smallest_eigenvalue``
    is :math:`\lambda` and ``center`` the minimiser :math:`c`.
    """

    name = "quadratic"

    def __init__(self, condition_number=10.0, angle=0.0, smallest_eigenvalue=1.0, center=(0.0, 0.0)):
        super().__init__()
        kappa = check_real("condition_number", condition_number)
        if kappa < 1:
            raise ValueError(f"condition_number must be >= 1, got {kappa}")
        self.condition_number = kappa
        self.angle = check_real("angle", angle)
        self.smallest_eigenvalue = check_positive("smallest_eigenvalue", smallest_eigenvalue)
        center = np.asarray(center, dtype=float)
        if center.shape != (2,) or not np.all(np.isfinite(center)):
            raise ValueError(f"center must be two finite numbers, got {center.tolist()}")
        self.center = center
        c, s = math.cos(self.angle), math.sin(self.angle)
        lam1, lam2 = self.smallest_eigenvalue, kappa * self.smallest_eigenvalue
        # A = R diag(lam1, lam2) R^T, written out entry by entry
        self.A = np.array([[lam1 * c * c + lam2 * s * s, (lam1 - lam2) * c * s],
                           [(lam1 - lam2) * c * s, lam1 * s * s + lam2 * c * c]])
        self.eigenvalues = np.array([lam1, lam2])
        self.minima = center[None, :].copy()
        r = 2.0
        self.box = ((center[0] - r, center[0] + r), (center[1] - r, center[1] + r))
        self.start = (center[0] - 1.5, center[1] + 1.0)

    def _value(self, x, y):
        u, v = x - self.center[0], y - self.center[1]
        (a, b), (_, d) = self.A
        return 0.5 * (a * u * u + 2 * b * u * v + d * v * v)

    def _grad(self, x, y):
        u, v = x - self.center[0], y - self.center[1]
        (a, b), (_, d) = self.A
        return a * u + b * v, b * u + d * v

    def _hess(self, x, y):
        zero = 0 * x
        (a, b), (_, d) = self.A
        return zero + a, zero + b, zero + d

    def __repr__(self):
        return (f"Quadratic(condition_number={self.condition_number}, angle={self.angle}, "
                f"smallest_eigenvalue={self.smallest_eigenvalue}, center={self.center.tolist()})")


class Rosenbrock(Landscape):
    r"""Rosenbrock's banana valley.

    .. math:: f(x, y) = (a - x)^2 + b\,(y - x^2)^2,\qquad \text{minimum } (a, a^2),\ f = 0.

    H. H. Rosenbrock, "An automatic method for finding the greatest or least value of a
    function", The Computer Journal 3(3):175-184, 1960. The usual start is (-1.2, 1).
    """

    name = "rosenbrock"
    box = ((-2.0, 2.0), (-1.0, 3.0))
    start = (-1.2, 1.0)

    def __init__(self, a=1.0, b=100.0):
        super().__init__()
        self.a = check_real("a", a)
        self.b = check_positive("b", b)
        self.minima = np.array([[self.a, self.a ** 2]])
        r = max(abs(self.a), 1.0)
        self.box = ((-2.0 * r, 2.0 * r), (-r * r, 3.0 * r * r))

    def _value(self, x, y):
        return (self.a - x) ** 2 + self.b * (y - x * x) ** 2

    def _grad(self, x, y):
        r = y - x * x
        return 2 * (x - self.a) - 4 * self.b * x * r, 2 * self.b * r

    def _hess(self, x, y):
        return 2 - 4 * self.b * (y - 3 * x * x), -4 * self.b * x, 0 * x + 2 * self.b

    def __repr__(self):
        return f"Rosenbrock(a={self.a}, b={self.b})"


class Beale(Landscape):
    r"""Beale's function.

    .. math::
        f(x, y) = \sum_{i=1}^{3} \left(c_i - x + x y^i\right)^2,\qquad
        c = (1.5,\ 2.25,\ 2.625),\qquad \text{minimum } (3, 0.5),\ f = 0.

    E. M. L. Beale, "On an iterative method for finding a local minimum of a function of more
    than one variable", Tech. Rep. 25, Statistical Techniques Research Group, Princeton, 1958.
    Flat near the minimum and steep for :math:`|y| > 1`: a hard case for a fixed step.
    """

    name = "beale"
    box = ((-4.5, 4.5), (-4.5, 4.5))
    start = (1.0, 1.0)
    c = (1.5, 2.25, 2.625)

    def __init__(self):
        super().__init__()
        self.minima = np.array([[3.0, 0.5]])

    def _value(self, x, y):
        return sum((ci - x + x * y ** i) ** 2 for i, ci in enumerate(self.c, start=1))

    def _grad(self, x, y):
        # r_i = c_i - x + x y^i,  dr_i/dx = y^i - 1,  dr_i/dy = i x y^(i-1)
        fx, fy = 0 * x, 0 * x
        for i, ci in enumerate(self.c, start=1):
            r = ci - x + x * y ** i
            fx = fx + 2 * r * (y ** i - 1)
            fy = fy + 2 * r * i * x * y ** (i - 1)
        return fx, fy

    def _hess(self, x, y):
        # Gauss-Newton part 2 J^T J plus the residual part 2 r * d^2 r
        fxx, fxy, fyy = 0 * x, 0 * x, 0 * x
        for i, ci in enumerate(self.c, start=1):
            r = ci - x + x * y ** i
            rx, ry = y ** i - 1, i * x * y ** (i - 1)
            rxy = i * y ** (i - 1)
            ryy = i * (i - 1) * x * y ** (i - 2) if i >= 2 else 0 * x
            fxx = fxx + 2 * rx * rx
            fxy = fxy + 2 * (rx * ry + r * rxy)
            fyy = fyy + 2 * (ry * ry + r * ryy)
        return fxx, fxy, fyy


class Saddle(Landscape):
    r"""A saddle at the origin, with two minima when ``quartic > 0``.

    .. math::
        f(x, y) = \tfrac12 x^2 - \tfrac12 y^2 + q\, y^4,\qquad
        \nabla^2 f(0) = \mathrm{diag}(1, -1).

    With :math:`q > 0` the minima are :math:`(0, \pm 1/(2\sqrt q))` with value
    :math:`-1/(16 q)` (the default :math:`q = 1/4` puts them at :math:`(0, \pm 1)`); with
    :math:`q = 0` it is the pure saddle :math:`(x^2 - y^2)/2`, unbounded below. Undamped
    Newton's method is drawn to the saddle; gradient descent slides off it.
    """

    name = "saddle"
    start = (1.5, 0.01)

    def __init__(self, quartic=0.25):
        super().__init__()
        self.quartic = check_nonnegative("quartic", quartic)
        self.saddle_points = np.zeros((1, 2))
        if self.quartic > 0:
            y = 1 / (2 * math.sqrt(self.quartic))
            self.minima = np.array([[0.0, y], [0.0, -y]])

    def _value(self, x, y):
        return 0.5 * x * x - 0.5 * y * y + self.quartic * y ** 4

    def _grad(self, x, y):
        return x, -y + 4 * self.quartic * y ** 3

    def _hess(self, x, y):
        return 0 * x + 1, 0 * x, -1 + 12 * self.quartic * y * y

    def __repr__(self):
        return f"Saddle(quartic={self.quartic})"


class LogisticRegression:
    r"""L2-regularised logistic regression with exact gradient and Hessian (float64 numpy).

    .. math::
        f(w) = \frac1N \sum_{i=1}^N \bigl[\log(1+e^{x_i^\top w}) - y_i\, x_i^\top w\bigr]
               + \frac{\lambda}{2}\|w\|^2,\qquad
        \nabla f = \frac1N X^\top(\sigma(Xw) - y) + \lambda w,\qquad
        \nabla^2 f = \frac1N X^\top D X + \lambda I,

    with :math:`D = \operatorname{diag}(\sigma(1-\sigma))`, labels :math:`y_i \in \{0, 1\}`
    and (``bias=True``) a column of ones appended to the features, its weight penalised too.
    ``l2`` (:math:`\lambda`) must be positive: it keeps :math:`f` strongly convex with a
    finite minimiser even on separable data (the breast-cancer training split is separable).

    Attributes: ``X`` (with the bias column), ``y``, ``l2``, ``n_samples``, ``dim``, ``x0``
    (zeros, the usual start), ``smoothness`` :math:`L = \lambda_{\max}(X^\top X)/(4N) +
    \lambda` (:math:`\sigma' \le 1/4`, so :math:`\eta = 1/L` is safe for gradient descent),
    floating-point operations of one loss value ``flops_value`` :math:`\approx 2Nd`, one
    gradient ``flops_gradient`` :math:`\approx 4Nd`, forming the Hessian and solving with it
    by Cholesky ``flops_hessian`` :math:`\approx 2Nd^2 + d^3/3`, so one Newton step
    ``flops_newton`` = ``flops_hessian + flops_gradient``, and ``minimum``/``minimum_value``,
    from Newton's method run to machine precision. ``value``, ``grad`` and ``value_and_grad``
    take ``idx`` (example indices) for a minibatch; ``grad_rows`` gives the full gradient at
    many points at once.
    """

    def __init__(self, X, y, l2=1e-2, *, bias=True):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or len(y) == 0:
            raise ValueError(f"X must be (n, d) and y (n,) with n >= 1, got {X.shape} and {y.shape}")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("y must contain only 0 and 1")
        bias = check_flag("bias", bias)
        self.l2 = check_positive("l2", l2)
        self.X = np.hstack([X, np.ones((len(X), 1))]) if bias else X
        self.y = y
        self.n_samples, self.dim = self.X.shape
        self.x0 = np.zeros(self.dim)
        n, d = self.X.shape
        self.flops_value = 2 * n * d
        self.flops_gradient = 4 * n * d
        self.flops_hessian = 2 * n * d * d + d ** 3 // 3
        self.flops_newton = self.flops_hessian + self.flops_gradient
        with single_thread():  # the same last digits whatever OMP_NUM_THREADS says
            self.smoothness = float(np.linalg.eigvalsh(self.X.T @ self.X).max() / (4 * n)
                                    + self.l2)
            w = self.x0.copy()
            for _ in range(50):
                step = np.linalg.solve(self.hess(w), self.grad(w))
                w = w - step
                if np.max(np.abs(step)) < 1e-15 * max(1.0, np.max(np.abs(w))):
                    break
        self.minimum, self.minimum_value = w, self.value(w)

    @classmethod
    def breast_cancer(cls, l2=1e-2, *, seed=0):
        """On the training split of :func:`curvlib.data.breast_cancer` (standardised, float64):
        426 examples, 30 features and the bias."""
        from .data import breast_cancer

        split = breast_cancer(as_torch=False, dtype="float64", seed=check_int("seed", seed))
        return cls(split.X_train, split.y_train, l2)

    def _data(self, idx):
        return (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])

    def __call__(self, w, idx=None):
        return self.value(w, idx)

    def value(self, w, idx=None):
        X, y = self._data(idx)
        margin = (2 * y - 1) * (X @ w)  # log(1 + e^{-margin}) is the loss, with no cancellation
        return float(np.mean(np.logaddexp(0.0, -margin)) + 0.5 * self.l2 * (w @ w))

    def grad(self, w, idx=None):
        X, y = self._data(idx)
        p = 0.5 * (1 + np.tanh(0.5 * (X @ w)))  # the sigmoid, without overflow
        return X.T @ (p - y) / len(y) + self.l2 * w

    def grad_rows(self, W):
        """The full gradient at every row of ``W`` (shape ``(k, dim)``) at once, shape ``(k, dim)``."""
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[1] != self.dim:
            raise ValueError(f"W must have shape (k, {self.dim}), got {W.shape}")
        P = 0.5 * (1 + np.tanh(0.5 * (W @ self.X.T)))
        return (P - self.y) @ self.X / self.n_samples + self.l2 * W

    def value_and_grad(self, w, idx=None):
        """``(f(w), grad f(w))``, the form ``curvlib.minimize(..., jac=True)`` takes."""
        return self.value(w, idx), self.grad(w, idx)

    def hess(self, w):
        p = 0.5 * (1 + np.tanh(0.5 * (self.X @ w)))
        D = p * (1 - p)
        return (self.X * D[:, None]).T @ self.X / self.n_samples + self.l2 * np.eye(self.dim)

    def condition_number(self):
        r""":math:`\kappa = \lambda_{\max}/\lambda_{\min}` of the Hessian at the minimiser."""
        lam = np.linalg.eigvalsh(self.hess(self.minimum))
        return float(lam[-1] / lam[0])

    def __repr__(self):
        return f"LogisticRegression({self.n_samples} x {self.dim}, l2={self.l2:g})"


LANDSCAPES = {cls.name: cls for cls in (Quadratic, Rosenbrock, Beale, Saddle)}


def get(name, **params):
    """A landscape by name (``"quadratic"``, ``"rosenbrock"``, ``"beale"``, ``"saddle"``)."""
    if name not in LANDSCAPES:
        raise ValueError(f"name must be one of {sorted(LANDSCAPES)}, got {name!r}")
    return LANDSCAPES[name](**params)
