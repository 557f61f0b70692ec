r"""Curvature of a network's loss, measured without forming the Hessian.

Everything here works on a *flat* view of the loss: :func:`flat_loss` turns a model, a loss
function and a batch into a function :math:`f:\mathbb{R}^n\to\mathbb{R}` and the point
:math:`w` where the model stands. On that pair:

* :func:`hvp` and :func:`hvp_operator` give Hessian-vector products :math:`Hv` at about the
  cost of one or two gradients (Pearlmutter, 1994);
* :func:`hessian` forms the dense :math:`n\times n` matrix, for small models and for tests;
* :func:`grad_norms` and :class:`GradNormMonitor` watch the gradient during training.

What the products tell about the spectrum -- extreme eigenvalues (Lanczos, power
iteration), the trace, the spectral density and the condition number -- is in
:mod:`curvlib.spectrum`; its functions can be reached from here too
(``curvature.top_eigenvalues``).

Randomness comes from a :class:`torch.Generator` seeded by each call's ``seed`` argument,
so a call gives the same answer every time and never touches torch's global generator.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import MAX_BYTES, check_choice, check_int, check_positive, check_size
from .runs import is_spike

__all__ = ["flat_loss", "hvp", "hvp_operator", "hessian", "grad_norms", "GradNormMonitor"]

_HVP_METHODS = {"reverse", "forward"}


# --------------------------------------------------------------------------------------
# The loss as a function of one flat vector
# --------------------------------------------------------------------------------------
def flat_loss(model, loss_fn, inputs, targets):
    r"""The loss as a function of a flat parameter vector: ``f, w = flat_loss(...)``.

    .. math:: f(w) = \ell\big(\text{model}(x; w),\, y\big), \qquad
              w = \operatorname{vec}(\theta_1, \dots, \theta_L)

    ``w`` concatenates the parameters that require a gradient, in
    ``model.named_parameters()`` order, detached from the model; ``f`` evaluates the model
    through :func:`torch.func.functional_call`, so it can be differentiated twice, pushed
    through :func:`torch.func.jvp`/:func:`torch.func.hessian`, and called at any ``w``
    without touching the model's own parameters. Parameters with ``requires_grad=False``
    are held fixed at their current values.

    **Batch normalisation.** The model's own buffers are never written:

    * in training mode (``model.train()``) every batch-norm layer normalises with the
      statistics of ``inputs`` itself, the loss that training actually minimises, so the
      Hessian includes the coupling between examples through the batch mean and variance.
      Its running statistics are passed to the functional call as ``None``: they are
      neither read nor updated, and ``num_batches_tracked`` does not move. Passing
      ``None`` also keeps :mod:`torch.func` transforms from tripping over the in-place
      running-average update;
    * in evaluation mode (``model.eval()``) batch norm is the fixed affine map given by the
      running statistics, which are read and not updated.

    ``f`` follows the mode the model is in when ``f`` is called, like the model itself.
    Other buffers are passed as they are and must only be read by the forward pass.
    Dropout in training mode makes ``f`` random; call ``model.eval()`` first if the model
    has dropout and you want the deterministic loss.

    Args:
        model: a :class:`torch.nn.Module` with at least one parameter requiring a gradient.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``, e.g.
            :func:`torch.nn.functional.cross_entropy`.
        inputs, targets: one batch; ``inputs`` is passed as the model's single argument.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no parameters that require a gradient")
    names = [name for name, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    fixed = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    no_statistics = {}  # batch-norm buffers replaced by None in training mode
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            for name, _ in module.named_buffers(recurse=False):
                no_statistics[f"{prefix}.{name}" if prefix else name] = None
    w = torch.cat([p.detach().reshape(-1) for _, p in named])

    def f(w_flat):
        if w_flat.shape != w.shape:
            raise ValueError(f"w must have shape {tuple(w.shape)}, got {tuple(w_flat.shape)}")
        params = {name: t.view(shape) for name, t, shape
                  in zip(names, torch.split(w_flat, sizes), shapes)}
        state = {**params, **fixed, **buffers}
        if model.training:
            state.update(no_statistics)
        outputs = torch.func.functional_call(model, state, (inputs,))
        return loss_fn(outputs, targets)

    return f, w


def _check_vector(name, v, w):
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if v.shape != w.shape:
        raise ValueError(f"{name} must have the shape of w, {tuple(w.shape)}, got {tuple(v.shape)}")


def _check_fw(f, w):
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor, got {type(w).__name__}")
    if w.ndim != 1 or w.numel() == 0:
        raise ValueError(f"w must be a non-empty flat vector, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise TypeError(f"w must be a floating-point tensor, got {w.dtype}")


def _generator(seed, device):
    check_int("seed", seed)
    return torch.Generator(device=device).manual_seed(seed)


# --------------------------------------------------------------------------------------
# Hessian-vector products and the dense Hessian
# --------------------------------------------------------------------------------------
def hvp(f, w, v, *, method="reverse"):
    r"""Hessian-vector product :math:`H(w)\,v = \nabla_w\big(\nabla f(w)^\top v\big)`.

    Pearlmutter (1994), "Fast exact multiplication by the Hessian", *Neural Computation*
    6(1):147-160: the product costs a small multiple of one gradient and never forms
    :math:`H`.

    ``method="reverse"`` (the default) differentiates the gradient a second time
    (reverse-over-reverse, "double backward"); ``method="forward"`` pushes a tangent
    through the gradient (forward-over-reverse, :func:`torch.func.jvp` of
    :func:`torch.func.grad`). Both give the same vector; ``benchmarks/curvature.py``
    measured the reverse form faster on digits MLPs of 2k to 300k parameters (2.2 to 3.1
    gradients, against 3.4 to 4.3 for the forward form; torch 2.13, CPU, one thread),
    hence the default. To multiply many vectors at one ``w`` use :func:`hvp_operator`,
    which builds the gradient graph once and then costs 1.1 to 2.0 gradients a product.
    """
    _check_fw(f, w)
    _check_vector("v", v, w)
    check_choice("method", method, _HVP_METHODS)
    if method == "forward":
        return torch.func.jvp(torch.func.grad(f), (w.detach(),), (v.detach(),))[1]
    with torch.enable_grad():
        wg = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(wg), wg, create_graph=True)
        (hv,) = torch.autograd.grad(g, wg, v.detach())
    return hv


def hvp_operator(f, w):
    r"""The map :math:`v\mapsto H(w)\,v` for many products at one point.

    Builds :math:`\nabla f(w)` once with its graph and, for each ``v``, differentiates
    :math:`\nabla f(w)^\top v` (one backward pass through the gradient's graph, about one
    gradient's cost). Tested equal to :func:`hvp`. The graph stays in memory as long as the
    returned function lives.
    """
    _check_fw(f, w)
    with torch.enable_grad():
        wg = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(wg), wg, create_graph=True)
    if not g.requires_grad:  # f is linear in w: the Hessian is zero
        return lambda v: torch.zeros_like(w)

    def matvec(v):
        _check_vector("v", v, w)
        (hv,) = torch.autograd.grad(g, wg, v.detach(), retain_graph=True)
        return hv

    return matvec


def hessian(f, w, *, max_bytes=MAX_BYTES):
    r"""The dense Hessian :math:`H_{ij} = \partial^2 f / \partial w_i \partial w_j`.

    Computed forward-over-reverse, all columns at once: :func:`torch.func.jacfwd` of
    :func:`torch.func.grad`. It needs :math:`n^2` numbers, so it is for small models
    only: ``max_bytes`` (``curvlib._checks.MAX_BYTES``, 2 GiB, by default; ``math.inf``
    for no limit; NaN is refused) guards against asking for a matrix that will not fit.

    Why not :func:`torch.func.hessian` (``jacfwd`` of ``jacrev``)? It agrees on models
    without batch norm, but in torch 2.13 it returns wrong mixed derivatives
    :math:`\partial^2 f/\partial\gamma\,\partial W` through a batch-norm layer in
    training mode (affine weight :math:`\gamma`): the vmapped double backward of
    ``batch_norm`` is off, by 0.08 on a 99-parameter MLP, while ``jacfwd(grad)``,
    :func:`torch.autograd.functional.hessian`, :func:`hvp` and central finite differences
    agree to rounding (``tests/test_curvature.py`` checks this).
    """
    _check_fw(f, w)
    check_size(f"the dense Hessian of w ({w.numel()} entries)",
               w.numel() ** 2 * w.element_size(), max_bytes)
    return torch.func.jacfwd(torch.func.grad(f))(w.detach())


# --------------------------------------------------------------------------------------
# Gradient-norm monitoring
# --------------------------------------------------------------------------------------
def grad_norms(model):
    r"""Global and per-layer Euclidean norms of the gradients now stored in ``model``.

    .. math:: \|g\| = \Big(\sum_{\ell} \|g_\ell\|^2\Big)^{1/2}

    A "layer" is the module that owns the parameters (``"0"`` for ``model[0].weight`` and
    ``model[0].bias``). Parameters without a gradient are skipped. Returns
    ``(global_norm, {layer: norm})`` as floats.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    squares = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        layer = name.rpartition(".")[0] or name
        g = p.grad.detach()
        squares[layer] = squares.get(layer, 0.0) + torch.sum(g.double() * g.double()).item()
    layers = {layer: math.sqrt(s) for layer, s in squares.items()}
    return math.sqrt(sum(squares.values())), layers


class GradNormMonitor:
    r"""Records gradient norms step by step and flags spikes.

    Call :meth:`record` after ``loss.backward()`` (or :meth:`attach` it to an optimizer so
    it runs before every ``step``). Each record stores the global norm :math:`\|g_t\|` and
    the per-layer norms (:func:`grad_norms`) and flags the step when

    * the norm is not finite (the run has diverged), or
    * :math:`\|g_t\| > \text{factor}\cdot\operatorname{median}(\|g_{t-W}\|,\dots,\|g_{t-1}\|)`
      over the last ``window`` recorded steps (once at least ``min_history`` exist).

    A sudden rise of the gradient norm is the usual first sign of a step size above
    :math:`2/\lambda_{\max}` (the edge of stability) or of a loss spike; the median keeps
    one earlier spike from hiding the next.

    Attributes ``steps``, ``global_norms``, ``layer_norms`` (list of dicts) and ``spikes``
    (list of flagged steps) hold the history; the object has no other state.
    """

    def __init__(self, model, *, factor=10.0, window=20, min_history=5):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not any(True for _ in model.parameters()):
            raise ValueError("model has no parameters")
        self.model = model
        self.factor = check_positive("factor", factor)
        if self.factor <= 1:
            raise ValueError(f"factor must be greater than 1, got {self.factor}")
        self.window = check_int("window", window, minimum=1)
        self.min_history = check_int("min_history", min_history, minimum=1)
        self.steps, self.global_norms, self.layer_norms, self.spikes = [], [], [], []

    def record(self, step=None):
        """Record the current gradients; returns ``(global_norm, layer_norms, is_spike)``."""
        step = len(self.steps) if step is None else step
        total, layers = grad_norms(self.model)
        recent = self.global_norms[-self.window:]
        recent = [x for x in recent if math.isfinite(x)]
        spike = not math.isfinite(total) or (
            len(recent) >= self.min_history and is_spike(total, recent, factor=self.factor))
        self.steps.append(step)
        self.global_norms.append(total)
        self.layer_norms.append(layers)
        if spike:
            self.spikes.append(step)
        return total, layers, spike

    def attach(self, optimizer):
        """Record after every ``optimizer.step()``; returns the removable hook handle.

        After the step, ``.grad`` holds the gradient that step used, whether it was computed
        before the call or inside ``step(closure)`` (a pre-step hook would see the previous
        step's gradient in the closure case).
        """
        def hook(opt, args, kwargs):
            self.record()

        return optimizer.register_step_post_hook(hook)

    @property
    def diverged(self):
        """True once a non-finite gradient norm has been recorded."""
        return any(not math.isfinite(x) for x in self.global_norms)


_SPECTRUM = ("lanczos", "power_iteration", "top_eigenvalues", "hutchinson_trace",
             "spectral_density", "condition_number", "Eigs", "SpectralDensity")


def __getattr__(name):
    # the spectrum functions, at the address they had before curvlib.spectrum existed
    if name in _SPECTRUM:
        from . import spectrum
        return getattr(spectrum, name)
    raise AttributeError(f"module 'curvlib.curvature' has no attribute {name!r}")
