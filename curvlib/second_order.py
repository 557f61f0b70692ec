r"""Kronecker-factored second-order optimizers: K-FAC and Shampoo, and what they hold.

Both replace the :math:`n\times n` curvature matrix of a layer with :math:`W\in\mathbb{R}^{m\times
n}` by a Kronecker product of two small factors, one :math:`m\times m` and one
:math:`n\times n`, so a layer costs :math:`m^2+n^2` numbers instead of :math:`(mn)^2`, and
the inverse of the product is the product of the inverses:
:math:`(L\otimes R)^{-1}\operatorname{vec}(G) = \operatorname{vec}(L^{-1} G R^{-1})`.

* :class:`KFAC` approximates the Fisher of each ``Linear``/``Conv2d`` layer by
  :math:`G\otimes A` from the layer's inputs :math:`a` and output gradients :math:`g`.
* :class:`Shampoo` accumulates :math:`L=\sum GG^\top`, :math:`R=\sum G^\top G` from gradients
  alone, for any parameter tensor, and preconditions with inverse fourth roots.
* :func:`kfac_bytes` and :func:`shampoo_bytes` count the bytes of optimizer state each
  holds, exactly as the classes allocate it (a test compares them).

Both optimizers take the final step with :func:`curvlib.rules.sgd` (momentum, weight decay),
so the only new code here is the preconditioning.
"""
from __future__ import annotations

import math
import weakref

import torch
from torch import nn
from torch.nn import functional as F

from . import rules
from ._checks import (check_choice, check_flag, check_int, check_nonnegative, check_positive,
                      CheckedStateDict, check_unit_interval)

__all__ = ["KFAC", "Shampoo", "kfac_bytes", "shampoo_bytes", "kfac_layers"]


def _closure_loss(closure):
    """The loss the closure returns, computed with gradients on (``None`` without one)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


# --------------------------------------------------------------------------------------
# K-FAC
# --------------------------------------------------------------------------------------
class _Hook:
    """A forward hook that calls its K-FAC through a weak reference.

    A deep copy of a model does not copy the optimizer, and the hook ignores modules that
    are not its optimizer's (such as a copy's layers). A copied or unpickled hook is inert
    (it holds no optimizer): a copied or unpickled :class:`KFAC` removes inert hooks from its
    model and registers its own.
    """

    def __init__(self, owner=None, kind="capture"):
        self._owner = None if owner is None else weakref.ref(owner)
        self.kind = kind

    def __call__(self, module, inputs, output):
        opt = None if self._owner is None else self._owner()
        if opt is None:
            return
        if self.kind == "capture":
            opt._capture(module, inputs, output)
        else:
            opt._sampled_grads(output)

    def __reduce__(self):  # pickle and copy: an inert hook
        return (_Hook, (None, self.kind))

    def __deepcopy__(self, memo):
        return _Hook(None, self.kind)


def kfac_layers(model):
    """The modules :class:`KFAC` preconditions: ``nn.Linear``, and ``nn.Conv2d`` without
    groups, with zero padding given as numbers (others take plain SGD steps)."""
    return [m for m in model.modules()
            if isinstance(m, nn.Linear)
            or (isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
                and not isinstance(m.padding, str))]


def _factor_sizes(module):
    """(rows of A, rows of G) for a K-FAC layer: input dimension (+1 for the bias), outputs."""
    if isinstance(module, nn.Linear):
        d_in = module.in_features
    else:
        d_in = module.in_channels * math.prod(module.kernel_size)
    return d_in + (module.bias is not None), module.out_channels if isinstance(
        module, nn.Conv2d) else module.out_features


class KFAC(CheckedStateDict, torch.optim.Optimizer):
    r"""K-FAC: natural-gradient descent with a Kronecker-factored Fisher per layer.

    Martens & Grosse (2015), "Optimizing neural networks with Kronecker-factored approximate
    curvature", *ICML*; for convolutions Grosse & Martens (2016), "A Kronecker-factored
    approximate Fisher matrix for convolution layers", *ICML*.

    For a layer :math:`s = W\bar a` (:math:`\bar a` the input with a 1 appended for the bias,
    :math:`W` holding the bias as its last column) the Fisher block is approximated by

    .. math:: F \approx G\otimes A,\qquad A = \mathbb{E}[\bar a\bar a^\top],\qquad
              G = \mathbb{E}[g g^\top],\quad g = \partial\ell/\partial s,

    kept as moving averages :math:`A\leftarrow\epsilon A + (1-\epsilon)\hat A` (``factor_decay``
    :math:`=\epsilon`, updated every ``factor_interval`` steps). Every ``inverse_interval``
    steps the factors are eigendecomposed, :math:`A = Q_A\,\mathrm{diag}(d_A)\,Q_A^\top`,
    :math:`G = Q_G\,\mathrm{diag}(d_G)\,Q_G^\top`, which gives the damped inverse of the
    Kronecker product exactly:

    .. math:: \Delta = (G\otimes A+\lambda I)^{-1}\nabla_W
              = Q_G\Big[\big(Q_G^\top \nabla_W Q_A\big) \oslash
              \big(d_G d_A^\top + \lambda\big)\Big] Q_A^\top .

    (Martens & Grosse damp each factor separately, :math:`(G+\pi^{-1}\sqrt\lambda)\otimes
    (A+\pi\sqrt\lambda)`; the eigenbasis form above damps the product itself at the same cost.)
    The step is rescaled by :math:`\nu=\min\big(1,\sqrt{\kappa/(\eta^2\sum\Delta\cdot\nabla)}\big)`,
    the KL clipping of Ba, Grosse & Martens (2017), "Distributed second-order optimization
    using Kronecker-factored approximations", *ICLR* (``kl_clip`` :math:`=\kappa`; ``None``
    turns it off), and taken with :func:`curvlib.rules.sgd` (``momentum``, ``weight_decay``
    added to the gradient before preconditioning). Parameters outside ``Linear``/``Conv2d``
    layers (e.g. batch norm) take plain SGD steps with the same settings.

    **Which Fisher** (``fisher``). With ``"true"`` (the default, as Martens & Grosse), :math:`g`
    is the output gradient of the loss at targets *sampled from the model's predictive
    distribution*, :math:`\hat y_i\sim\operatorname{softmax}(z_i)`, so :math:`G` estimates
    :math:`\mathbb{E}_{y\sim p}[gg^\top]`, the Fisher's own factor. The model's output is
    read as the logits of a categorical distribution over dimension 1 (the convention of
    :func:`torch.nn.functional.cross_entropy`); each target is drawn by inverse-CDF sampling,
    :math:`\hat y_i = \min\{c : \sum_{k\le c} p_{ik} > u_i\}`, with :math:`u_i\sim U(0,1)` from
    a generator seeded by ``seed``. The gradient of the sampled loss
    :math:`\frac1N\sum_i\ell(z_i,\hat y_i)` with respect to every layer's output is taken
    with :func:`torch.autograd.grad` inside the model's forward pass (a forward hook on the
    model), keeping the graph for the caller's own ``backward``: one extra backward pass,
    to the layer outputs only. With ``"empirical"``, :math:`g` is the gradient of the loss
    actually being minimised, at the data's labels (no extra pass, any loss); Kunstner,
    Balles & Hennig (2019), "Limitations of the empirical Fisher approximation for natural
    gradient descent", *NeurIPS*, show where the two differ. The layers' inputs and output
    gradients are caught by hooks during ``forward``/``backward`` in training mode, so call
    ``step()`` after ``loss.backward()`` as with any optimizer. For other settings: the
    widely used K-FAC-PyTorch code (Wang et al.) uses ``damping=kl_clip=1e-3``, factors
    every 10 and inverses every 100 steps for CIFAR networks.

    Args:
        model: the network (its ``Linear``/``Conv2d`` layers are preconditioned).
        lr: learning rate :math:`\eta`. damping: :math:`\lambda`. factor_decay: :math:`\epsilon`.
        factor_interval, inverse_interval: steps between factor updates and between
            eigendecompositions. kl_clip: :math:`\kappa` or ``None``.
        momentum, weight_decay: as :class:`torch.optim.SGD`.
        fisher: ``"true"`` (sampled targets) or ``"empirical"`` (the data's labels).
        seed: seed of the generator that draws the sampled targets (``fisher="true"``).
    """

    def __init__(self, model, lr=0.01, damping=1e-2, factor_decay=0.95, momentum=0.9,
                 weight_decay=0.0, factor_interval=1, inverse_interval=10, kl_clip=1e-2,
                 fisher="true", seed=0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no parameters that require a gradient")
        defaults = self.check_hyper(dict(
            lr=lr, damping=damping, factor_decay=factor_decay, momentum=momentum,
            weight_decay=weight_decay, factor_interval=factor_interval,
            inverse_interval=inverse_interval, kl_clip=kl_clip, fisher=fisher))
        seed = check_int("seed", seed, minimum=0)
        super().__init__(params, defaults)
        generator = torch.Generator().manual_seed(seed) if fisher == "true" else None
        self._attach(model, generator)

    def _attach(self, model, generator):
        """Hook this optimizer into ``model``'s forward passes (after construction, a copy or
        unpickling; torch.optim's ``__getstate__`` keeps only defaults, state and groups)."""
        for module in model.modules():  # the inert hooks of a copied or unpickled model
            for key, hook in list(module._forward_hooks.items()):
                if isinstance(hook, _Hook) and hook._owner is None:
                    del module._forward_hooks[key]
        self._model = model
        self._layers = [m for m in kfac_layers(model) if m.weight.requires_grad]
        self._captured = {}
        self._handles = [m.register_forward_hook(_Hook(self, "capture")) for m in self._layers]
        if self.defaults["fisher"] == "true":  # after the layers' hooks: a model that is one
            self._generator = generator          # layer captures first
            self._handles.append(model.register_forward_hook(_Hook(self, "sample")))

    @staticmethod
    def check_hyper(h):
        """A checked copy of the hyperparameters ``h`` (raises naming a bad one)."""
        h = dict(h)
        h["lr"] = check_positive("lr", h["lr"])
        h["damping"] = check_positive("damping", h["damping"])
        h["factor_decay"] = check_unit_interval("factor_decay", h["factor_decay"])
        h["momentum"] = check_unit_interval("momentum", h["momentum"])
        h["weight_decay"] = check_nonnegative("weight_decay", h["weight_decay"])
        h["factor_interval"] = check_int("factor_interval", h["factor_interval"], minimum=1)
        h["inverse_interval"] = check_int("inverse_interval", h["inverse_interval"], minimum=1)
        if h["kl_clip"] is not None:
            h["kl_clip"] = check_positive("kl_clip", h["kl_clip"])
        if not isinstance(h["fisher"], str):
            raise ValueError(f"fisher must be 'true' or 'empirical', got {h['fisher']!r}")
        h["fisher"] = check_choice("fisher", h["fisher"], ("true", "empirical"))
        return h

    def add_param_group(self, param_group):
        if self.param_groups:  # torch's constructor adds the first group through here
            raise ValueError("KFAC doesn't support added parameter groups: it preconditions "
                             "the layers of the model it was built with, all with one set of "
                             "hyperparameters; build a new KFAC for a model with new "
                             "parameters")
        super().add_param_group(param_group)

    def __getstate__(self):
        state = super().__getstate__()
        state["model"] = self._model
        if self.defaults["fisher"] == "true":
            state["sampler_state"] = self._generator.get_state()
        return state

    def __setstate__(self, state):
        state = dict(state)
        model, sampler = state.pop("model", None), state.pop("sampler_state", None)
        super().__setstate__(state)
        if model is None:  # load_state_dict comes through here: the hooks stay as they are
            return
        generator = None
        if self.defaults["fisher"] == "true":
            generator = torch.Generator()
            if sampler is not None:
                generator.set_state(sampler)
        self._attach(model, generator)

    # keep the layer's input and, when backward reaches it, its output gradient
    def _capture(self, module, inputs, output):
        if not (module.training and torch.is_grad_enabled() and output.requires_grad
                and any(module is m for m in self._layers)):
            return
        slot = {"a": inputs[0].detach()}
        self._captured[module] = slot
        if self.defaults["fisher"] == "true":
            slot["s"] = output  # its gradient comes from the sampled targets (_sampled_grads)
            return

        def keep_grad(grad):
            slot["g"] = grad.detach()

        output.register_hook(keep_grad)

    @staticmethod
    def sample_targets(logits, u):
        r"""Targets drawn from the categorical distribution with these ``logits`` (classes
        along dimension 1), by inverse-CDF sampling with the uniforms ``u`` (one per
        prediction, shape ``logits.shape[:1] + logits.shape[2:]``): the first class whose
        cumulative probability exceeds :math:`u`."""
        C = logits.shape[1]
        probs = torch.softmax(logits.detach().movedim(1, -1).reshape(-1, C), -1)
        cdf = probs.cumsum(-1)
        target = (cdf < u.reshape(-1, 1).to(cdf.dtype)).sum(-1).clamp_max(C - 1)
        return target.reshape(logits.shape[:1] + logits.shape[2:])

    def _sampled_grads(self, output):
        """The layers' output gradients of the loss at targets sampled from the model."""
        slots = [slot for slot in self._captured.values() if "s" in slot]
        if not slots:
            return
        interval = self.param_groups[0]["factor_interval"]
        if interval > 1:  # no factor update at the coming step: no extra backward pass
            first = self.state.get(self._layers[0].weight, {})
            if first.get("step", 0) % interval:
                for slot in slots:
                    del slot["s"]
                return
        if not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[1] < 2:
            raise ValueError("fisher='true' reads the model's output as class logits along "
                             "dimension 1 (at least 2 classes); got an output of shape "
                             f"{tuple(getattr(output, 'shape', ()))}: use fisher='empirical'")
        u = torch.rand(output.shape[:1] + output.shape[2:], generator=self._generator,
                       dtype=torch.float64)
        target = self.sample_targets(output, u)
        with torch.enable_grad():
            sampled = F.cross_entropy(output, target)
            grads = torch.autograd.grad(sampled, [slot["s"] for slot in slots],
                                        retain_graph=True, allow_unused=True)
        for slot, grad in zip(slots, grads):  # None: the layer does not reach the output
            out = slot.pop("s")
            slot["g"] = torch.zeros_like(out) if grad is None else grad.detach()

    def state_dict(self):
        """torch's state dict, plus the state of the target sampler (``fisher="true"``)."""
        state = super().state_dict()
        if self.defaults["fisher"] == "true":
            state["sampler_state"] = self._generator.get_state()
        return state

    def load_state_dict(self, state_dict):
        """As ``CheckedStateDict.load_state_dict`` (a state dict of another optimizer is
        refused), then the Fisher sampler's random state is restored."""
        state_dict = dict(state_dict)
        sampler = state_dict.pop("sampler_state", None)
        super().load_state_dict(state_dict)
        if sampler is not None and self.defaults["fisher"] == "true":
            self._generator.set_state(sampler)

    def remove_hooks(self):
        """Detach the optimizer from the model's forward and backward passes."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @staticmethod
    def _batch_factors(module, a, g):
        r"""This batch's :math:`\hat A` and :math:`\hat G` for one layer."""
        if isinstance(module, nn.Conv2d):
            batch = a.shape[0]
            a = F.unfold(a, module.kernel_size, module.dilation, module.padding, module.stride)
            a = a.transpose(1, 2).reshape(-1, a.shape[1])        # (B*L, C*kh*kw)
            locations = a.shape[0] // batch
            g = g.flatten(2).transpose(1, 2).reshape(-1, g.shape[1])  # (B*L, out)
        else:
            a = a.reshape(-1, a.shape[-1])
            g = g.reshape(-1, g.shape[-1])
            batch, locations = a.shape[0], 1
        if module.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], 1)
        # the loss averages over the batch, so g carries a factor 1/B: undo it
        A = a.T @ a / batch
        G = (g.T @ g) * (batch / locations)
        return A, G

    @staticmethod
    def _eig(M):
        d, Q = torch.linalg.eigh(M.double())
        return d.clamp_min(0).to(M.dtype), Q.to(M.dtype)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        group = self.param_groups[0]
        lr, damping = group["lr"], group["damping"]
        hyper = dict(lr=lr, momentum=group["momentum"])
        directions, in_layers = {}, set()
        for module in self._layers:
            weight, bias = module.weight, module.bias
            if weight.grad is None:
                continue
            state = self.state[weight]
            if not state:
                state.update(rules.init_sgd(weight))
            t = state["step"]
            slot = self._captured.get(module, {})
            if t % group["factor_interval"] == 0 and "g" in slot:
                A, G = self._batch_factors(module, slot["a"], slot["g"])
                if "A" not in state:
                    state["A"], state["G"] = A, G
                else:
                    eps = group["factor_decay"]
                    state["A"].mul_(eps).add_(A, alpha=1 - eps)
                    state["G"].mul_(eps).add_(G, alpha=1 - eps)
            if "A" not in state:  # no statistics yet (no forward pass in training mode):
                continue          # the layer takes a plain SGD step below
            if t % group["inverse_interval"] == 0 or "QA" not in state:
                state["dA"], state["QA"] = self._eig(state["A"])
                state["dG"], state["QG"] = self._eig(state["G"])
            grad = weight.grad.reshape(weight.shape[0], -1)
            if group["weight_decay"]:
                grad = grad + group["weight_decay"] * weight.reshape(weight.shape[0], -1)
            if bias is not None:
                gb = bias.grad if bias.grad is not None else torch.zeros_like(bias)
                if group["weight_decay"]:
                    gb = gb + group["weight_decay"] * bias
                grad = torch.cat([grad, gb[:, None]], 1)
            QA, QG = state["QA"], state["QG"]
            V = QG.T @ grad @ QA
            V /= state["dG"][:, None] * state["dA"][None, :] + damping
            delta = QG @ V @ QA.T
            directions[module] = (delta, grad)
            in_layers.update([weight, bias] if bias is not None else [weight])
        self._captured.clear()
        nu = 1.0
        if group["kl_clip"] is not None and directions:
            vg = sum(torch.sum(d * g).item() for d, g in directions.values()) * lr ** 2
            if vg > 0:
                nu = min(1.0, math.sqrt(group["kl_clip"] / vg))
        for module, (delta, _) in directions.items():
            weight, bias = module.weight, module.bias
            if bias is not None:
                delta, d_bias = delta[:, :-1], delta[:, -1]
                self._sgd(bias, nu * d_bias, hyper)
            self._sgd(weight, nu * delta.reshape(weight.shape), hyper, init=False)
        for p in group["params"]:
            if p.grad is not None and p not in in_layers:
                self._sgd(p, p.grad, dict(hyper, weight_decay=group["weight_decay"]))
        return loss

    def _sgd(self, p, direction, hyper, init=True):
        state = self.state[p]
        if init and not state:
            state.update(rules.init_sgd(p))
        rules.sgd(p, direction, state, **hyper)


def _layer_pairs(layers, name):
    if isinstance(layers, nn.Module):
        return None
    try:
        pairs = [tuple(pair) for pair in layers]
    except TypeError:
        raise TypeError(f"{name} must be an nn.Module or a list of (in_features, "
                        f"out_features) pairs, got {type(layers).__name__}") from None
    if not pairs:
        raise ValueError(f"{name} must not be empty")
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{name} must hold (in_features, out_features) pairs, got {pair!r}")
        for x in pair:
            check_int(f"{name} entry", x, minimum=1)
    return pairs


def _itemsize(dtype):
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def kfac_bytes(layers, *, bias=True, dtype=torch.float32, momentum=True):
    r"""Bytes of optimizer state :class:`KFAC` holds for these layers.

    Per layer with :math:`d_a` inputs (+1 with a bias) and :math:`d_g` outputs: the two
    factors, their eigenvectors and eigenvalues,

    .. math:: 2d_a^2 + d_a + 2d_g^2 + d_g \text{ numbers,}

    plus one momentum buffer per parameter when ``momentum`` is on. The inputs and output
    gradients caught between ``backward`` and ``step`` are transient and not counted.

    ``layers``: a list of ``(in_features, out_features)`` pairs (``nn.Linear`` layers; a
    ``Conv2d`` counts as ``(in_channels*kh*kw, out_channels)``), or a model, whose
    ``Linear``/``Conv2d`` layers are counted (``bias`` and ``dtype`` then come from the model,
    and momentum buffers cover all its parameters). Counts the state once every layer has
    taken a step.
    """
    momentum = check_flag("momentum", momentum)
    bias = check_flag("bias", bias)
    pairs = _layer_pairs(layers, "layers")
    if pairs is None:
        total = 0
        for module in kfac_layers(layers):
            d_a, d_g = _factor_sizes(module)
            total += (2 * d_a * d_a + d_a + 2 * d_g * d_g + d_g) * module.weight.element_size()
        if momentum:
            total += sum(p.numel() * p.element_size() for p in layers.parameters()
                         if p.requires_grad)
        return total
    size = _itemsize(dtype)
    total = 0
    for n_in, n_out in pairs:
        d_a = n_in + bool(bias)
        total += 2 * d_a * d_a + d_a + 2 * n_out * n_out + n_out
        if momentum:
            total += d_a * n_out
    return total * size


# --------------------------------------------------------------------------------------
# Shampoo
# --------------------------------------------------------------------------------------
class Shampoo(CheckedStateDict, torch.optim.Optimizer):
    r"""Shampoo: a Kronecker-factored full-matrix AdaGrad for every parameter tensor.

    Gupta, Koren & Singer (2018), "Shampoo: Preconditioned stochastic tensor optimization",
    *ICML*. For a gradient :math:`G` of order :math:`k` with dimensions
    :math:`n_1,\dots,n_k`, one statistic per dimension,

    .. math:: H_i \leftarrow \beta_2 H_i + (1-\beta_2)\, G_{(i)} G_{(i)}^\top
              \in\mathbb{R}^{n_i\times n_i}

    (:math:`G_{(i)}` the mode-:math:`i` unfolding; ``beta2=1`` sums, :math:`H_i \leftarrow
    H_i + G_{(i)}G_{(i)}^\top`, as in the paper), and the preconditioned gradient

    .. math:: \hat G = M \times_1 (\hat H_1+\epsilon I)^{-1/(2k)} \times_2 \cdots
              \times_k (\hat H_k+\epsilon I)^{-1/(2k)},

    with :math:`\hat H_i = H_i/(1-\beta_2^t)` (bias correction; :math:`\hat H_i = H_i` when
    :math:`\beta_2 = 1`) and :math:`M` the gradient, or with ``beta1`` :math:`>0` its
    bias-corrected moving average :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1)G`,
    :math:`M = m_t/(1-\beta_1^t)` (the "filtered gradient" of Distributed Shampoo, Shi et al.
    (2023), "A distributed data-parallel PyTorch implementation of the distributed Shampoo
    optimizer for training neural networks at-scale", arXiv:2309.06497, whose ``betas`` are
    ``(beta1, beta2)`` here).

    For a matrix this is :math:`L^{-1/4} G R^{-1/4}`; for a vector (a bias) full-matrix
    AdaGrad, :math:`H^{-1/2}g`. The inverse roots come from an eigendecomposition (in
    float64) every ``update_interval`` steps. A dimension larger than
    ``max_preconditioner_dim`` gets no preconditioner on that side.

    **Grafting** (Agarwal, Anil, Hazan, Koren & Zhang (2020), "Disentangling adaptive
    gradient methods from learning rates", arXiv:2002.11803; used by Anil et al. (2020),
    "Scalable second order optimization for deep learning", arXiv:2002.09018): Shampoo
    chooses the direction and another method the length, tensor by tensor,

    .. math:: D = \hat G\,\frac{\|D_{\text{graft}}\|}{\|\hat G\|},

    with :math:`D_{\text{graft}} = M/(\sqrt{\textstyle\sum_t G_t^2}+\epsilon_g)`
    (``grafting="adagrad"``, the default, one extra buffer per parameter),
    :math:`D_{\text{graft}} = M/(\sqrt{v_t/(1-\beta^t)}+\epsilon_g)` with
    :math:`v_t = \beta v_{t-1} + (1-\beta)G_t^2` (``"adam"``: Distributed Shampoo's Adam
    grafting, a diagonal second moment without its own first moment; :math:`\beta` is
    ``graft_beta2``, by default ``beta2``, as in the AlgoPerf submission; :math:`\beta=1`
    makes it AdaGrad's sum), :math:`M` (``"sgd"``) or no grafting (``None``: the raw Shampoo
    step, whose size changes as the statistics grow). The step :math:`D` is taken with
    :func:`curvlib.rules.sgd` (``momentum``, heavy ball on :math:`D`; ``weight_decay`` is
    added to the gradient first). The inverse roots are refreshed at the first step and then
    every ``update_interval`` steps (Distributed Shampoo's ``precondition_frequency``).
    """

    def __init__(self, params, lr=0.01, momentum=0.0, beta2=1.0, epsilon=1e-12,
                 update_interval=1, grafting="adagrad", graft_eps=1e-10, weight_decay=0.0,
                 max_preconditioner_dim=1024, beta1=0.0, graft_beta2=None):
        defaults = self.check_hyper(dict(
            lr=lr, momentum=momentum, beta2=beta2, epsilon=epsilon,
            update_interval=update_interval, grafting=grafting, graft_eps=graft_eps,
            weight_decay=weight_decay, max_preconditioner_dim=max_preconditioner_dim,
            beta1=beta1, graft_beta2=graft_beta2))
        super().__init__(params, defaults)

    @staticmethod
    def check_hyper(h):
        """A checked copy of the hyperparameters ``h`` (the constructor's and a group's)."""
        h = dict(h)
        h["lr"] = check_positive("lr", h["lr"])
        h["momentum"] = check_unit_interval("momentum", h["momentum"])
        h["beta2"] = check_unit_interval("beta2", h["beta2"], closed_right=True)
        h["epsilon"] = check_positive("epsilon", h["epsilon"])
        h["update_interval"] = check_int("update_interval", h["update_interval"], minimum=1)
        h["grafting"] = _check_grafting(h["grafting"])
        h["graft_eps"] = check_positive("graft_eps", h["graft_eps"])
        h["weight_decay"] = check_nonnegative("weight_decay", h["weight_decay"])
        h["max_preconditioner_dim"] = check_int("max_preconditioner_dim",
                                                h["max_preconditioner_dim"], minimum=1)
        if h["beta2"] == 0:
            raise ValueError("beta2 must be positive, got 0.0")
        h["beta1"] = check_unit_interval("beta1", h["beta1"])
        if h["graft_beta2"] is not None:
            h["graft_beta2"] = check_unit_interval("graft_beta2", h["graft_beta2"],
                                                   closed_right=True)
            if h["graft_beta2"] == 0:
                raise ValueError("graft_beta2 must be positive, got 0.0")
        return h

    def add_param_group(self, param_group):
        """torch's ``add_param_group``, with the group's own hyperparameters checked as the
        constructor checks them (an unknown key is a ``ValueError``)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if self.param_groups:  # after construction; torch's constructor comes through here
            unknown = sorted(set(param_group) - set(self.defaults) - {"params"})
            if unknown:
                raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} in "
                                 "param_group for Shampoo")
            ours = {k: v for k, v in param_group.items() if k != "params"}
            checked = self.check_hyper({**self.defaults, **ours})
            param_group = {**param_group, **{k: checked[k] for k in ours}}
        super().add_param_group(param_group)

    @staticmethod
    def _init_state(p, group):
        state = rules.init_sgd(p)
        for i, n in enumerate(p.shape):
            if 1 < n <= group["max_preconditioner_dim"]:
                state[f"H{i}"] = p.new_zeros(n, n)
                state[f"P{i}"] = p.new_zeros(n, n)
        if group["grafting"] in ("adagrad", "adam"):
            state["graft_sum"] = torch.zeros_like(p)
        if group.get("beta1", 0.0) > 0:
            state["filtered_grad"] = torch.zeros_like(p)
        return state

    @staticmethod
    def _decay(buffer, beta, update):
        """``buffer <- beta*buffer + (1-beta)*update``, or the plain sum when ``beta`` is 1."""
        if beta < 1:
            buffer.mul_(beta).add_(update, alpha=1 - beta)
        else:
            buffer.add_(update)
        return buffer

    @staticmethod
    def _inverse_root(H, order, epsilon, correction=1.0):
        d, Q = torch.linalg.eigh(H.double() / correction)
        root = (d.clamp_min(0) + epsilon) ** (-1.0 / (2 * order))
        return ((Q * root) @ Q.T).to(H.dtype)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self._init_state(p, group))
                g = p.grad
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                direction = self._direction(g, state, group)
                rules.sgd(p, direction, state, lr=group["lr"], momentum=group["momentum"])
        return loss

    def _direction(self, g, state, group):
        order = g.ndim
        refresh = state["step"] % group["update_interval"] == 0
        t, beta1, beta2 = state["step"] + 1, group.get("beta1", 0.0), group["beta2"]
        m = g
        if beta1 > 0:  # the filtered gradient, bias-corrected
            m = self._decay(state["filtered_grad"], beta1, g) / (1 - beta1 ** t)
        correction = 1 - beta2 ** t if beta2 < 1 else 1.0
        pre = m
        for i in range(order):
            if f"H{i}" not in state:
                pre = pre.movedim(0, -1)
                continue
            other = [j for j in range(order) if j != i]
            H = self._decay(state[f"H{i}"], beta2, torch.tensordot(g, g, dims=(other, other)))
            if refresh:
                state[f"P{i}"] = self._inverse_root(H, order, group["epsilon"], correction)
            # contract axis 0 of pre with P_i; the new axis goes last, so after k steps
            # the axes are back in order
            pre = torch.tensordot(pre, state[f"P{i}"], dims=([0], [0]))
        if group["grafting"] is None:
            return pre
        if group["grafting"] == "adagrad":
            s = state["graft_sum"]
            s.addcmul_(g, g)
            graft = m / (s.sqrt() + group["graft_eps"])
        elif group["grafting"] == "adam":
            beta = beta2 if group.get("graft_beta2") is None else group["graft_beta2"]
            v = self._decay(state["graft_sum"], beta, g * g)
            v_hat = v / (1 - beta ** t) if beta < 1 else v
            graft = m / (v_hat.sqrt() + group["graft_eps"])
        else:
            graft = m
        norm = torch.linalg.vector_norm(pre)
        if norm == 0:
            return graft
        return pre * (torch.linalg.vector_norm(graft) / norm)


def _check_grafting(grafting):
    if not (grafting is None or isinstance(grafting, str)) or grafting not in (
            "adagrad", "adam", "sgd", None):
        raise ValueError(f"grafting must be 'adagrad', 'adam', 'sgd' or None, got {grafting!r}")
    return grafting


def _preconditioned_dims(shape, max_dim):
    return [n for n in shape if 1 < n <= max_dim]


def shampoo_bytes(layers, *, bias=True, dtype=torch.float32, grafting="adagrad",
                  momentum=False, max_preconditioner_dim=1024, beta1=False):
    r"""Bytes of optimizer state :class:`Shampoo` holds.

    Per parameter tensor of shape :math:`(n_1,\dots,n_k)`: a statistic and its inverse root
    for every dimension with :math:`1 < n_i \le` ``max_preconditioner_dim``,

    .. math:: \sum_i 2n_i^2 \text{ numbers,}

    plus one buffer of the tensor's size for AdaGrad or Adam grafting, one for momentum and
    one for the filtered gradient (``beta1``: true when :class:`Shampoo`'s ``beta1 > 0``). A
    ``Linear(n, m)`` layer holds :math:`2(m^2+n^2)` for the weight and :math:`2m^2` for the
    bias (full-matrix AdaGrad on the bias vector).

    ``layers``: a list of ``(in_features, out_features)`` pairs (``nn.Linear`` layers), or a
    model or iterable of parameters, counted tensor by tensor in their own dtype.
    """
    _check_grafting(grafting)
    max_dim = check_int("max_preconditioner_dim", max_preconditioner_dim, minimum=1)
    momentum, bias = check_flag("momentum", momentum), check_flag("bias", bias)
    extra = (grafting in ("adagrad", "adam")) + momentum + check_flag("beta1", beta1)
    if isinstance(layers, nn.Module):
        layers = list(layers.parameters())
    if isinstance(layers, (list, tuple)) and layers and all(
            isinstance(t, torch.Tensor) for t in layers):
        return sum((sum(2 * n * n for n in _preconditioned_dims(p.shape, max_dim))
                    + extra * p.numel()) * p.element_size() for p in layers)
    pairs = _layer_pairs(layers, "layers")
    shapes = []
    for n_in, n_out in pairs:
        shapes.append((n_out, n_in))
        if bias:
            shapes.append((n_out,))
    numbers = sum(sum(2 * n * n for n in _preconditioned_dims(s, max_dim))
                  + extra * math.prod(s) for s in shapes)
    return numbers * _itemsize(dtype)
