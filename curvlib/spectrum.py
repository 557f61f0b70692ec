r"""The Hessian's spectrum from Hessian-vector products alone.

On the flat loss of :func:`curvlib.curvature.flat_loss` (or any symmetric operator given as
a ``matvec``):

* :func:`lanczos`, :func:`power_iteration` and :func:`top_eigenvalues` find extreme
  eigenvalues;
* :func:`hutchinson_trace` estimates :math:`\operatorname{tr} H` with its standard error;
* :func:`spectral_density` approximates the whole spectrum by stochastic Lanczos quadrature;
* :func:`condition_number` says what :math:`\kappa` means, or refuses, when the spectrum is
  not positive.

Randomness comes from a :class:`torch.Generator` seeded by each call's ``seed`` argument,
so a call gives the same answer every time and never touches torch's global generator.
"""
from __future__ import annotations

import math
import statistics
import warnings
from collections import namedtuple

import numpy as np
import scipy.linalg
import torch

from ._checks import (MAX_BYTES, check_choice, check_int, check_nonnegative, check_positive,
                      check_size)
from .curvature import _check_fw, _generator, hvp_operator

__all__ = ["lanczos", "power_iteration", "top_eigenvalues", "hutchinson_trace",
           "spectral_density", "condition_number", "Eigs", "SpectralDensity"]

#: Result of :func:`lanczos` and :func:`power_iteration`.
Eigs = namedtuple("Eigs", ["values", "vectors", "matvecs", "converged"])
#: Result of :func:`spectral_density`.
SpectralDensity = namedtuple("SpectralDensity", ["grid", "density", "nodes", "weights"])


# --------------------------------------------------------------------------------------
# Extreme eigenvalues: Lanczos and power iteration
# --------------------------------------------------------------------------------------
def _pick(values, k, which):
    """Indices of the k wanted Ritz values, best first."""
    if which == "largest":
        order = torch.argsort(values, descending=True)
    elif which == "smallest":
        order = torch.argsort(values)
    else:
        order = torch.argsort(values.abs(), descending=True)
    return order[:k]


def _ritz(alpha, beta):
    """Eigenvalues (ascending) and eigenvectors of the Lanczos tridiagonal T (float64)."""
    d = np.asarray(alpha, dtype=np.float64)
    e = np.asarray(beta[: len(alpha) - 1], dtype=np.float64)
    if len(d) == 1:
        return torch.tensor(d), torch.ones(1, 1, dtype=torch.float64)
    theta, S = scipy.linalg.eigh_tridiagonal(d, e)
    return torch.from_numpy(theta), torch.from_numpy(S)


def _lanczos_steps(matvec, v0, steps, restart=None):
    r"""The Lanczos recurrence with full reorthogonalisation, one step per ``yield``.

    Yields ``(alpha, beta, Q, b)`` after each product: the diagonal and off-diagonal of
    :math:`T_j` so far, the basis :math:`Q_j` (rows) and the norm :math:`b=\beta_j` of the
    next residual. If the Krylov space closes (``b`` at rounding level), the recurrence
    stops, or, with a generator ``restart``, continues from a random vector orthogonal to
    :math:`Q_j` (a zero entry of ``beta`` splits :math:`T` into blocks).
    """
    n = v0.numel()
    Q = v0.new_zeros(steps, n)
    q = v0 / torch.linalg.vector_norm(v0)
    alpha, beta = [], []
    tiny = 1e3 * torch.finfo(v0.dtype).eps
    for j in range(steps):
        Q[j] = q
        r = matvec(q)
        a = torch.dot(q, r).item()
        alpha.append(a)
        r = r - a * q - (beta[-1] * Q[j - 1] if j > 0 else 0)
        for _ in range(2):  # Gram-Schmidt twice is enough
            r = r - Q[: j + 1].T @ (Q[: j + 1] @ r)
        b = torch.linalg.vector_norm(r).item()
        yield alpha, beta, Q[: j + 1], b
        if j + 1 == steps:
            return
        scale = max(abs(x) for x in alpha + beta) if beta else abs(a)
        if b <= tiny * max(scale, 1e-300):
            if restart is None:
                return
            r = torch.randn(n, generator=restart, dtype=v0.dtype, device=v0.device)
            for _ in range(2):
                r = r - Q[: j + 1].T @ (Q[: j + 1] @ r)
            beta.append(0.0)
            q = r / torch.linalg.vector_norm(r)
        else:
            beta.append(b)
            q = r / b


def _check_start(name, v0):
    if not isinstance(v0, torch.Tensor) or v0.ndim != 1 or not v0.is_floating_point():
        raise TypeError(f"{name} must be a flat floating-point torch.Tensor")
    if not torch.isfinite(v0).all() or torch.linalg.vector_norm(v0) == 0:
        raise ValueError(f"{name} must be a finite non-zero vector")


def _check_eig_args(matvec, v0, k):
    """Checks shared by :func:`lanczos` and :func:`power_iteration`; returns ``(n, k)``."""
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    _check_start("v0", v0)
    n = v0.numel()
    k = check_int("k", k, minimum=1)
    if k > n:
        raise ValueError(f"k must be at most the dimension {n}, got {k}")
    return n, k


def lanczos(matvec, v0, steps, *, k=1, which="largest", tol=1e-8):
    r"""Lanczos iteration with full reorthogonalisation, for ``k`` extreme eigenpairs.

    Lanczos (1950), "An iteration method for the solution of the eigenvalue problem of
    linear differential and integral operators", *J. Res. Nat. Bur. Standards* 45:255-282.
    After :math:`m` products the orthonormal basis :math:`Q_m` of the Krylov space
    :math:`\mathcal{K}_m(H, v_0)` satisfies
    :math:`H Q_m = Q_m T_m + \beta_m q_{m+1} e_m^\top` with :math:`T_m` tridiagonal; the
    eigenvalues :math:`\theta_i` of :math:`T_m` (Ritz values) approach the extreme
    eigenvalues of :math:`H`, at a rate governed by Chebyshev polynomials (roughly
    :math:`\sqrt{\text{gap}}` where power iteration has the gap itself). Each new vector is
    orthogonalised twice against all earlier ones, which keeps :math:`Q_m` orthonormal to
    working precision and removes the spurious copies of converged eigenvalues that plain
    Lanczos produces (Paige, 1971, PhD thesis, University of London). If the Krylov space
    closes before ``k`` values are found, the iteration restarts from a random vector
    orthogonal to the basis.

    Stops when the ``k`` wanted Ritz pairs have residual
    :math:`\|H y_i - \theta_i y_i\| = \beta_m |s_{m,i}| \le \text{tol}\,|\theta_i|`
    (the error in :math:`\theta_i` is at most this residual, and near its square over the
    gap to the next eigenvalue), or after ``steps`` products.

    Args:
        matvec: ``v -> H v`` for a symmetric ``H`` (e.g. :func:`~curvlib.curvature.hvp_operator`).
        v0: starting vector (any non-zero vector; normalised here).
        steps: at most this many products (capped at the dimension).
        k: how many eigenvalues; ``which``: ``"largest"``, ``"smallest"`` or
            ``"magnitude"`` (largest absolute value).
        tol: relative residual at which to stop.

    Returns:
        ``Eigs(values, vectors, matvecs, converged)``: ``values`` (k,) ordered as
        ``which`` asks, ``vectors`` (n, k) the unit Ritz vectors, ``matvecs`` the number
        of products used.
    """
    n, k = _check_eig_args(matvec, v0, k)
    steps = min(check_int("steps", steps, minimum=k), n)
    check_choice("which", which, {"largest", "smallest", "magnitude"})
    tol = check_nonnegative("tol", tol)
    restart = torch.Generator(device=v0.device).manual_seed(0)
    converged = False
    for alpha, beta, Q, b in _lanczos_steps(matvec, v0, steps, restart):
        if len(alpha) < k:
            continue
        theta, S = _ritz(alpha, beta)
        idx = _pick(theta, k, which)
        residual = b * S[-1, idx].abs()
        converged = bool((residual <= tol * theta[idx].abs()).all())
        if converged:
            break
    values = theta[idx].to(dtype=v0.dtype, device=v0.device)
    vectors = Q.T @ S[:, idx].to(dtype=v0.dtype, device=v0.device)
    return Eigs(values, vectors, len(alpha), converged)


def power_iteration(matvec, v0, steps, *, k=1, tol=1e-6):
    r"""Power iteration with deflation, the baseline PyHessian uses.

    Yao, Gholami, Keutzer & Mahoney (2020), "PyHessian: Neural networks through the lens of
    the Hessian", *IEEE International Conference on Big Data*. Repeats
    :math:`v \leftarrow Hv/\|Hv\|` and reads the Rayleigh quotient :math:`\lambda = v^\top H v`;
    it converges to the eigenvalue of **largest magnitude**, its error shrinking by
    :math:`(\lambda_2/\lambda_1)^2` per product. For the ``i``-th eigenvalue the vector is
    kept orthogonal to the ``i-1`` found before (deflation). An eigenvalue is accepted when
    the relative change :math:`|\lambda^{(t)}-\lambda^{(t-1)}| / |\lambda^{(t-1)}|` falls
    below ``tol`` (PyHessian uses ``tol=1e-3`` and at most 100 products), or after ``steps``
    products.

    Returns ``Eigs(values, vectors, matvecs, converged)`` as :func:`lanczos`.
    """
    n, k = _check_eig_args(matvec, v0, k)
    steps = check_int("steps", steps, minimum=1)
    tol = check_nonnegative("tol", tol)
    values, vectors, matvecs, converged = [], [], 0, True
    for _ in range(k):
        found = torch.stack(vectors, 1) if vectors else None
        v, lam, done = v0, None, False
        for _ in range(steps):
            if found is not None:
                v = v - found @ (found.T @ v)
            v = v / torch.linalg.vector_norm(v)
            hv = matvec(v)
            matvecs += 1
            new = torch.dot(v, hv).item()
            done = lam is not None and abs(new - lam) <= tol * abs(lam)
            lam = new
            norm = torch.linalg.vector_norm(hv)
            if done or norm == 0:
                break
            v = hv / norm
        converged = converged and done
        values.append(lam)
        vectors.append(v)
    return Eigs(torch.tensor(values, dtype=v0.dtype, device=v0.device),
                torch.stack(vectors, 1), matvecs, converged)


def top_eigenvalues(f, w, k=1, method="lanczos", *, which=None, steps=None, tol=None,
                    seed=0, return_vectors=False):
    r"""The ``k`` extreme eigenvalues of the Hessian of ``f`` at ``w``, from products only.

    ``method="lanczos"`` (:func:`lanczos`, full reorthogonalisation) finds the ``k``
    largest eigenvalues (``which="largest"``, the default), the ``k`` smallest
    (``"smallest"``: the most negative curvature) or those of largest magnitude
    (``"magnitude"``); ``tol`` (default ``1e-8``) bounds each Ritz residual relative to its
    value. ``method="power"`` (:func:`power_iteration`) is the PyHessian baseline; it
    finds only the eigenvalues of largest magnitude (``which`` must be ``"magnitude"`` or
    left out), which are the largest ones whenever the top of the spectrum outweighs the
    bottom, as on trained networks; its ``tol`` (default ``1e-6``) bounds the relative
    change of the estimate between two products.

    ``steps`` caps the number of products (default: the dimension for Lanczos, capped at
    500; 1000 per eigenvalue for power iteration); given, it must be at least ``k`` for
    Lanczos (at least 1 for power iteration), so ``steps=0`` is refused rather than quietly
    raised. A run that stops unconverged warns.
    The start vector is Gaussian, drawn from a generator seeded with ``seed``.

    Returns the values (k,) in ``w``'s dtype, ordered as ``which`` asks, and with
    ``return_vectors=True`` also the unit eigenvectors as the columns of an (n, k) tensor.
    """
    _check_fw(f, w)
    n = w.numel()
    k = check_int("k", k, minimum=1)
    if k > n:
        raise ValueError(f"k must be at most the number of parameters {n}, got {k}")
    check_choice("method", method, {"lanczos", "power"})
    if method == "power":
        if which not in (None, "magnitude"):
            raise ValueError("which must be 'magnitude' for method='power' (power iteration "
                             f"finds the eigenvalues of largest magnitude), got {which!r}")
        steps = 1000 if steps is None else check_int("steps", steps, minimum=1)
        tol = 1e-6 if tol is None else tol
    else:
        which = "largest" if which is None else which
        steps = min(n, 500) if steps is None else check_int("steps", steps, minimum=k)
        tol = 1e-8 if tol is None else tol
    v0 = torch.randn(n, generator=_generator(seed, w.device), dtype=w.dtype, device=w.device)
    matvec = hvp_operator(f, w)
    if method == "power":
        result = power_iteration(matvec, v0, steps, k=k, tol=tol)
    else:
        result = lanczos(matvec, v0, max(steps, k), k=k, which=which, tol=tol)
    if not result.converged:
        warnings.warn(f"top_eigenvalues: {method} did not reach tol={tol} in "
                      f"{result.matvecs} products; raise steps", RuntimeWarning, stacklevel=2)
    if return_vectors:
        return result.values, result.vectors
    return result.values


# --------------------------------------------------------------------------------------
# Trace and spectral density
# --------------------------------------------------------------------------------------
def _probe(n, gen, dtype, device, distribution):
    if distribution == "rademacher":
        return torch.randint(0, 2, (n,), generator=gen, device=device).to(dtype) * 2 - 1
    return torch.randn(n, generator=gen, dtype=dtype, device=device)


def hutchinson_trace(f, w, samples, *, seed=0, distribution="rademacher"):
    r"""Hutchinson's estimate of :math:`\operatorname{tr} H` and its standard error.

    Hutchinson (1990), "A stochastic estimator of the trace of the influence matrix for
    Laplacian smoothing splines", *Comm. Statist. Simulation Comput.* 19(2):433-450.
    For random :math:`z` with :math:`\mathbb{E}[zz^\top] = I`,
    :math:`\mathbb{E}[z^\top H z] = \operatorname{tr} H`; with :math:`s` independent probes

    .. math:: \widehat{\operatorname{tr}} = \frac1s\sum_{i=1}^s z_i^\top H z_i, \qquad
              \mathrm{SE} = \frac{\operatorname{sd}(z_i^\top H z_i)}{\sqrt s}.

    Rademacher probes (:math:`\pm1` entries, the default) give the smallest variance,
    :math:`2\sum_{i\ne j} H_{ij}^2`; ``distribution="gaussian"`` gives
    :math:`2\|H\|_F^2`. The error shrinks as :math:`1/\sqrt{s}`.

    Returns ``(mean, standard_error)`` as floats. ``samples`` must be at least 2 (one
    sample has no standard error).
    """
    _check_fw(f, w)
    samples = check_int("samples", samples)
    if samples < 2:
        raise ValueError(f"samples must be at least 2 (the standard error needs two), got {samples}")
    check_choice("distribution", distribution, {"rademacher", "gaussian"})
    gen = _generator(seed, w.device)
    matvec = hvp_operator(f, w)
    values = []
    for _ in range(samples):
        z = _probe(w.numel(), gen, w.dtype, w.device, distribution)
        values.append(torch.dot(z, matvec(z)).item())
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(samples)


def spectral_density(f, w, *, steps=80, runs=10, grid=1000, sigma=None, seed=0,
                     max_bytes=MAX_BYTES):
    r"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

    Lin, Saad & Yang (2016), "Approximating spectral densities of large matrices", *SIAM
    Review* 58(1):34-65; applied to networks by Ghorbani, Krishnan & Xiao (2019), "An
    investigation into neural net optimization via Hessian eigenvalue density", *ICML*.
    The density :math:`\phi(t) = \frac1n\sum_i \delta(t-\lambda_i)` is smoothed by a
    Gaussian :math:`g_\sigma` and estimated as

    .. math:: \hat\phi(t) = \frac1{R}\sum_{r=1}^{R}\sum_{j=1}^{m}
              \tau_{r,j}\, g_\sigma(t-\theta_{r,j}),

    where, for each unit random start :math:`v_r`, :math:`m` Lanczos steps give the nodes
    :math:`\theta_{r,j}` (eigenvalues of :math:`T_m`) and weights :math:`\tau_{r,j}` (squared
    first components of its eigenvectors): the Gauss quadrature of
    :math:`v_r^\top g_\sigma(t-H) v_r`, exact for polynomials of degree :math:`< 2m`. Each
    run's weights sum to one, so the density integrates to one.

    Args:
        steps: Lanczos steps per run (capped at the dimension).
        runs: independent random starts (Rademacher vectors).
        grid: number of points, or a 1-D tensor of points where to evaluate the density.
            The default grid spans the nodes with ``5 sigma`` to spare.
        sigma: kernel width; default 1% of the spread of the nodes.
        max_bytes: refuse (``ValueError``, before any product) when the Lanczos basis
            (``steps`` vectors of ``w``'s size) or the kernel matrix (``grid`` x ``runs``
            x ``steps`` float64 numbers, three such arrays at once) would exceed this many
            bytes (``curvlib._checks.MAX_BYTES``, 2 GiB; ``math.inf`` lifts the limit).

    Returns:
        ``SpectralDensity(grid, density, nodes, weights)``; ``nodes`` and ``weights`` have
        shape (runs, m): the discrete measure before smoothing.
    """
    _check_fw(f, w)
    n = w.numel()
    steps = min(check_int("steps", steps, minimum=1), n)
    runs = check_int("runs", runs, minimum=1)
    if isinstance(grid, torch.Tensor):
        if grid.ndim != 1 or grid.numel() < 2:
            raise ValueError("grid must be a 1-D tensor of at least 2 points")
        if not (grid.is_floating_point() and bool(torch.isfinite(grid).all())):
            raise ValueError("grid must hold finite real numbers")
        points = grid.numel()
    else:
        points = check_int("grid", grid, minimum=2)
    check_size(f"spectral_density's Lanczos basis ({steps} vectors of {n})",
               (steps + 1) * n * w.element_size(), max_bytes)
    check_size(f"spectral_density's kernel (grid={points} x runs={runs} x steps={steps})",
               3 * points * runs * steps * 8, max_bytes)
    gen = _generator(seed, w.device)
    matvec = hvp_operator(f, w)
    nodes, weights = [], []
    for _ in range(runs):
        v0 = _probe(n, gen, w.dtype, w.device, "rademacher")
        theta, tau = _lanczos_quadrature(matvec, v0, steps)
        nodes.append(theta)
        weights.append(tau)
    nodes, weights = torch.stack(nodes), torch.stack(weights)
    lo, hi = nodes.min().item(), nodes.max().item()
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    sigma = check_positive("sigma", sigma)
    if isinstance(grid, torch.Tensor):
        t = grid.to(torch.float64)
    else:
        t = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, points, dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((t[:, None, None] - nodes[None]) / sigma) ** 2)
    kernel = kernel / (sigma * math.sqrt(2 * math.pi))
    density = (kernel * weights[None]).sum(-1).mean(-1)
    return SpectralDensity(t, density, nodes, weights)


def _lanczos_quadrature(matvec, v0, steps):
    """Nodes and weights of the Gauss quadrature for v0 (unit), from ``steps`` Lanczos steps.

    If the Krylov space closes after j < steps steps, the quadrature is already exact;
    the remaining nodes get zero weight so every run returns ``steps`` of each.
    """
    for alpha, beta, _, _ in _lanczos_steps(matvec, v0, steps):
        pass
    theta, S = _ritz(alpha, beta)
    tau = S[0] ** 2
    if len(alpha) < steps:
        pad = steps - len(alpha)
        theta = torch.cat([theta, theta[-1:].expand(pad)])
        tau = torch.cat([tau, tau.new_zeros(pad)])
    return theta, tau


# --------------------------------------------------------------------------------------
# Condition number
# --------------------------------------------------------------------------------------
def condition_number(eigenvalues, *, cutoff=None):
    r"""The spectral condition number :math:`\kappa = \lambda_{\max}/\lambda_{\min}`.

    :math:`\kappa` measures how elongated the level sets of a **positive definite**
    quadratic are; gradient descent needs :math:`O(\kappa)` steps on it. A network's
    Hessian is usually singular or indefinite, and then :math:`\kappa` is undefined (a
    zero eigenvalue makes it infinite, a negative one makes the ratio negative and
    meaningless). The choice made here:

    * ``cutoff=None`` (default): if every eigenvalue is positive, return
      :math:`\lambda_{\max}/\lambda_{\min}`; otherwise **refuse** with a ``ValueError``
      that counts the non-positive eigenvalues and asks for a cut-off.
    * ``cutoff=c >= 0``: return the ratio over the part of the spectrum above the cut-off,
      :math:`\lambda_{\max} / \min\{\lambda_i : \lambda_i > c\}`. The number is only
      meaningful together with ``c``, so quote both (e.g. "κ = 3e5 over the eigenvalues
      above 1e-6 λ_max"). A relative cut-off ``c = r\,\lambda_{\max}`` is the usual choice.

    ``eigenvalues``: any 1-D tensor, array or sequence of real numbers, e.g.
    ``torch.linalg.eigvalsh(hessian(f, w))`` or the ends of the spectrum from
    :func:`top_eigenvalues`. A matrix is **refused** (``ValueError``), not flattened: its
    entries are not its eigenvalues (``[[2, 1], [1, 2]]`` has eigenvalues 1 and 3, so
    :math:`\kappa = 3`, while the ratio of its entries is 2). Pass
    ``torch.linalg.eigvalsh(M)`` for a symmetric matrix ``M``.
    """
    if isinstance(eigenvalues, (str, bytes, dict, set, frozenset)):
        raise TypeError(f"eigenvalues must be a 1-D sequence of real numbers, got "
                        f"{type(eigenvalues).__name__}")
    if isinstance(eigenvalues, torch.Tensor):
        if eigenvalues.is_complex() or eigenvalues.dtype is torch.bool:
            raise TypeError(f"eigenvalues must be real numbers, got dtype {eigenvalues.dtype}")
        lam = eigenvalues.detach().to(dtype=torch.float64, device="cpu")
    else:
        arr = np.asarray(eigenvalues, dtype=object if not hasattr(eigenvalues, "dtype") else None)
        try:
            if arr.dtype == object and any(isinstance(v, (bool, np.bool_, str, bytes, complex))
                                           for v in arr.reshape(-1)):
                raise TypeError
            arr = np.asarray(eigenvalues)
            if arr.dtype.kind not in "iuf":
                raise TypeError
            lam = torch.as_tensor(arr.astype(np.float64))
        except (TypeError, ValueError):
            raise TypeError("eigenvalues must be a 1-D sequence of real numbers, got "
                            f"{eigenvalues!r}") from None
    if lam.ndim > 1:
        raise ValueError(f"eigenvalues must be 1-D (the eigenvalues, not a matrix), got shape "
                         f"{tuple(lam.shape)}: for a symmetric matrix M pass "
                         "torch.linalg.eigvalsh(M)")
    lam = lam.reshape(-1)
    if lam.numel() == 0:
        raise ValueError("eigenvalues must not be empty")
    if not torch.isfinite(lam).all():
        raise ValueError("eigenvalues must be finite")
    top = lam.max().item()
    if cutoff is None:
        bad = int((lam <= 0).sum())
        if bad:
            raise ValueError(
                f"condition number undefined: {bad} of {lam.numel()} eigenvalues are <= 0 "
                f"(smallest {lam.min().item():.3g}); kappa = lambda_max/lambda_min needs a "
                "positive definite matrix. Pass cutoff=c to get the ratio over the "
                "eigenvalues above c, and quote c with it.")
        return top / lam.min().item()
    cutoff = check_nonnegative("cutoff", cutoff)
    kept = lam[lam > cutoff]
    if kept.numel() == 0:
        raise ValueError(f"no eigenvalue is above cutoff={cutoff} (largest {top:.3g})")
    return top / kept.min().item()
