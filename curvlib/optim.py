r"""The book's optimizers as ``torch.optim.Optimizer`` s, built on the array code of curvlib.

* First-order methods -- :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`Adagrad`,
  :class:`RMSprop` -- are drop-in replacements for ``torch.optim``'s, with the same
  constructor signatures and defaults, whose step applies a rule of :mod:`curvlib.rules` to
  every parameter. The rule is the same function the 2-D landscape demos call on numpy
  arrays, so the Adam drawn on a contour plot is the Adam that trains the network.
* :class:`LBFGS` (``torch.optim.LBFGS``'s signature) and :class:`Newton` flatten the
  parameters into one vector and run the loops of :mod:`curvlib.quasi_newton`, the very code
  :func:`curvlib.minimize` runs on numpy arrays.
* :class:`~curvlib.second_order.KFAC` and :class:`~curvlib.second_order.Shampoo` live in
  :mod:`curvlib.second_order` and are re-exported.

Every default comes from the table :mod:`curvlib.methods` (which reads it from the rule's
signature), and every hyperparameter is checked there, in the constructor and in
:meth:`~torch.optim.Optimizer.add_param_group`; bad values raise ``ValueError``/``TypeError``
naming the argument.

Two paths compute a first-order step, as in torch.optim:

* ``foreach=False``: the **reference path**. For each parameter it calls the readable rule,
  e.g. ``rules.adam(p, p.grad, state, lr=..., betas=..., ...)``.
* ``foreach=None`` (default) or ``True``: the **fast path** in :mod:`curvlib._fast`, the same
  arithmetic on whole lists of tensors with ``torch._foreach_*`` kernels. The tests hold the
  two paths equal to rounding (1e-12 relative in float64 over 100 steps). For Adam, AdamW,
  Adagrad and RMSprop it keeps one scratch tensor per parameter between steps (the
  temporary that torch's foreach path allocates anew at every step), outside the state.

Everything torch.optim offers around the step works unchanged because it lives in the base
class: param groups, ``state_dict()``/``load_state_dict()`` (a torch.optim state dict loads
too), ``zero_grad``, step hooks, closures and every ``torch.optim.lr_scheduler`` (they read
and write ``group["lr"]``). State keys are torch's (``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``sum``, ``square_avg``, ...); ``step`` is kept as a Python int.

One convention builds any of them by name: :func:`factory` returns ``make(model, lr)``, which
fits K-FAC (it needs the model) as well as Adam; :func:`make_optimizer` builds one directly
from a parameter list.
"""
from __future__ import annotations

import math

import torch

from . import _fast, methods, quasi_newton
from ._checks import MAX_BYTES, CheckedStateDict, check_flag, check_size
from .methods import make_rule

__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "LBFGS", "Newton", "KFAC", "Shampoo",
           "RuleOptimizer", "factory", "OptimizerFactory", "make_optimizer", "make_rule"]


# --------------------------------------------------------------------------------------
# Checks of what only torch has: parameter lists and implementation switches
# --------------------------------------------------------------------------------------
def _check_torch_options(foreach, capturable, differentiable, fused):
    """torch.optim's implementation switches: accepted with their defaults only."""
    if foreach is not None:
        check_flag("foreach", foreach)
    for name, value in (("capturable", capturable), ("differentiable", differentiable)):
        if check_flag(name, value):
            raise ValueError(f"{name}=True is not supported by curvlib.optim")
    if fused is not None and check_flag("fused", fused):
        raise ValueError("fused=True is not supported by curvlib.optim; its fast path is "
                         "foreach=True (the default)")


def _check_tensor(name, p):
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must contain tensors, got {type(p).__name__}")
    if not p.is_floating_point():
        raise TypeError(f"{name} must be real floating-point tensors, got dtype {p.dtype}")
    if not (p.is_leaf or p.retains_grad):
        raise ValueError(f"{name} must be leaf tensors (can't optimize a non-leaf tensor)")


def _check_param_list(params, name="params"):
    """A list of tensors (or (name, tensor) pairs), non-empty, real floating point."""
    if isinstance(params, torch.Tensor):
        raise TypeError(f"{name} must be an iterable of tensors or dicts, got a single "
                        "Tensor (wrap it in a list)")
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{name} must be an ordered iterable (list, tuple, generator), "
                        "not a set: its order changes between runs")
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{name} must be an iterable of tensors or dicts, got "
                        f"{type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{name} must not be empty (the optimizer got an empty parameter "
                         "list)")
    return params


# --------------------------------------------------------------------------------------
# The base class: a torch optimizer whose step is a curvlib rule
# --------------------------------------------------------------------------------------
class RuleOptimizer(CheckedStateDict, torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step applies one rule of :mod:`curvlib.rules`.

    A subclass names its row of :data:`curvlib.methods.METHODS` (``method``, which gives the
    rule, its state and the checks of its hyperparameters) and the rule's fast multi-tensor
    twin (``fast_rule``, from :mod:`curvlib._fast`). The rule's keyword arguments are read
    from the param group by name.
    """

    method = None
    fast_rule = None
    uses_scratch = True  # the fast path keeps one temporary per parameter

    def __init__(self, params, defaults):
        if self.method is None:
            raise TypeError(f"{type(self).__name__} is abstract: a RuleOptimizer subclass "
                            "names its method")
        params = _check_param_list(params)
        super().__init__(params, self.check_hyper(dict(defaults)))

    @classmethod
    def check_hyper(cls, group):
        """A checked copy of ``group``'s hyperparameters (raises on bad values)."""
        return methods.check(cls.method, group)

    # -- param groups and state dicts --------------------------------------------------
    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else \
            _check_param_list(params, "param_group['params']")
        for p in group["params"]:
            _check_tensor("params", p[1] if isinstance(p, tuple) else p)
        overrides = [k for k in group if k in self.defaults]
        if overrides:
            checked = self.check_hyper({**self.defaults, **{k: group[k] for k in overrides}})
            group.update({k: checked[k] for k in overrides})
        super().add_param_group(group)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # a torch.optim state dict lacks our extra keys
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        for s in self.state.values():  # torch keeps step as a tensor; the rules use an int
            if isinstance(s.get("step"), torch.Tensor):
                s["step"] = int(s["step"].item())

    # -- the step ----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One step of the rule on every parameter that has a gradient.

        ``closure`` (optional) re-evaluates the model and returns the loss; it is called
        once, with gradients enabled, before the step.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rule = methods.get(self.method)
        init_keys = methods.signature_defaults(rule.init)
        for group in self.param_groups:
            params, grads, states = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse "
                                       "gradients")
                state = self.state[p]
                if not state:
                    state.update(rule.init(p, **{k: group[k] for k in init_keys}))
                params.append(p)
                grads.append(p.grad)
                states.append(state)
            if not params:
                continue
            if group["foreach"] is False:  # the readable reference path
                kwargs = {k: group[k] for k in methods.keyword_only(rule.step)}
                for p, g, s in zip(params, grads, states):
                    rule.step(p, g, s, **kwargs)
            else:
                kwargs = {k: group[k] for k in methods.keyword_only(self.fast_rule) if k in group}
                self.fast_rule(params, grads, states, self._scratch(params), **kwargs)
        return loss

    def _scratch(self, params):
        """One reusable temporary per parameter for the fast path (never in the state dict).

        torch's foreach path allocates the same temporary afresh at each step; keeping it
        spares the page faults of a new multi-megabyte allocation.
        """
        if not self.uses_scratch:
            return None
        cache = self.__dict__.setdefault("_scratch_buffers", {})
        out = []
        for p in params:
            w = cache.get(p)
            if w is None or w.shape != p.shape or w.dtype is not p.dtype or \
                    w.device != p.device:
                w = cache[p] = torch.empty_like(p)
            out.append(w)
        return out


# --------------------------------------------------------------------------------------
# SGD, Adam, AdamW, Adagrad, RMSprop: torch.optim's signatures, the table's defaults
# --------------------------------------------------------------------------------------
_SGD, _ADAM, _ADAMW, _ADAGRAD, _RMSPROP, _LBFGS, _NEWTON = (
    methods.get(n).hyperparameters()
    for n in ("sgd", "adam", "adamw", "adagrad", "rmsprop", "lbfgs", "newton"))


class SGD(RuleOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum; ``torch.optim.SGD``.

    .. math::
        d_t = g_t + \lambda\theta_t,\quad b_t = \mu b_{t-1} + (1-\tau)\,d_t,\quad
        \theta_{t+1} = \theta_t - \eta\,(d_t + \mu b_t \text{ if Nesterov else } b_t)

    The rule is :func:`curvlib.rules.sgd` (Sutskever, Martens, Dahl & Hinton, 2013, "On the
    importance of initialization and momentum in deep learning", ICML). With constant
    :math:`\eta` it equals the lecture's heavy ball :math:`v_t = \mu v_{t-1} + \eta g_t`
    (:func:`curvlib.rules.heavy_ball`) with :math:`v_t = \eta b_t`.
    """

    method = "sgd"
    fast_rule = staticmethod(_fast.sgd)
    uses_scratch = False

    def __init__(self, params, lr=_SGD["lr"], momentum=_SGD["momentum"],
                 dampening=_SGD["dampening"], weight_decay=_SGD["weight_decay"],
                 nesterov=_SGD["nesterov"], *, maximize=_SGD["maximize"], foreach=None,
                 differentiable=False, fused=None):
        _check_torch_options(foreach, False, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused))


class Adam(RuleOptimizer):
    r"""Adam (Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization", ICLR);
    ``torch.optim.Adam``.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_{t+1} = \theta_t - \frac{\eta}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}

    The rule is :func:`curvlib.rules.adam`. Beyond torch's options, ``bias_correction=False``
    gives the lecture's form :math:`\theta_{t+1} = \theta_t - \eta\,m_t/(\sqrt{v_t}+\epsilon)`.
    ``amsgrad`` uses the running maximum of :math:`v_t` (Reddi, Kale & Kumar, 2018, "On the
    Convergence of Adam and Beyond", ICLR); ``decoupled_weight_decay=True`` is AdamW.
    """

    method = "adam"
    fast_rule = staticmethod(_fast.adam)

    def __init__(self, params, lr=_ADAM["lr"], betas=_ADAM["betas"], eps=_ADAM["eps"],
                 weight_decay=_ADAM["weight_decay"], amsgrad=_ADAM["amsgrad"], *, foreach=None,
                 maximize=_ADAM["maximize"], capturable=False, differentiable=False,
                 fused=None, decoupled_weight_decay=_ADAM["decoupled_weight_decay"],
                 bias_correction=_ADAM["bias_correction"]):
        _check_torch_options(foreach, capturable, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            foreach=foreach, maximize=maximize, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay, bias_correction=bias_correction))


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019, "Decoupled
    Weight Decay Regularization", ICLR); ``torch.optim.AdamW``.

    .. math:: \theta \leftarrow (1-\eta\lambda)\,\theta, \text{ then the Adam step}

    The rule is :func:`curvlib.rules.adamw`, i.e. :func:`curvlib.rules.adam` with
    ``decoupled_weight_decay=True``.
    """

    method = "adamw"

    def __init__(self, params, lr=_ADAMW["lr"], betas=_ADAMW["betas"], eps=_ADAMW["eps"],
                 weight_decay=_ADAMW["weight_decay"], amsgrad=_ADAMW["amsgrad"], *,
                 maximize=_ADAMW["maximize"], foreach=None, capturable=False,
                 differentiable=False, fused=None, bias_correction=_ADAMW["bias_correction"]):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, bias_correction=bias_correction)

    def __setstate__(self, state):  # as torch.optim.AdamW: always decoupled
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class Adagrad(RuleOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer, 2011, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12:2121-2159); ``torch.optim.Adagrad``.

    .. math::
        s_t = s_{t-1} + g_t^2,\qquad
        \theta_{t+1} = \theta_t - \frac{\eta}{1+(t-1)\,\delta}\,\frac{g_t}{\sqrt{s_t}+\epsilon}

    The rule is :func:`curvlib.rules.adagrad`. Unlike torch, the state of a parameter is
    created at its first step (torch creates it in the constructor); the steps are the same.
    """

    method = "adagrad"
    fast_rule = staticmethod(_fast.adagrad)

    def __init__(self, params, lr=_ADAGRAD["lr"], lr_decay=_ADAGRAD["lr_decay"],
                 weight_decay=_ADAGRAD["weight_decay"],
                 initial_accumulator_value=_ADAGRAD["initial_accumulator_value"],
                 eps=_ADAGRAD["eps"], foreach=None, *, maximize=_ADAGRAD["maximize"],
                 differentiable=False, fused=None):
        _check_torch_options(foreach, False, differentiable, fused)
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused))


class RMSprop(RuleOptimizer):
    r"""RMSProp (Tieleman & Hinton, 2012, "Lecture 6.5 - rmsprop", COURSERA: Neural Networks
    for Machine Learning); ``torch.optim.RMSprop``.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{g_t}{\sqrt{v_t}+\epsilon}

    The rule is :func:`curvlib.rules.rmsprop` (``centered`` divides by the running standard
    deviation instead, Graves, 2013, "Generating Sequences With Recurrent Neural Networks",
    arXiv:1308.0850; ``momentum`` accumulates the scaled step).
    """

    method = "rmsprop"
    fast_rule = staticmethod(_fast.rmsprop)

    def __init__(self, params, lr=_RMSPROP["lr"], alpha=_RMSPROP["alpha"], eps=_RMSPROP["eps"],
                 weight_decay=_RMSPROP["weight_decay"], momentum=_RMSPROP["momentum"],
                 centered=_RMSPROP["centered"], capturable=False, foreach=None,
                 maximize=_RMSPROP["maximize"], differentiable=False):
        _check_torch_options(foreach, capturable, differentiable, None)
        super().__init__(params, dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
            differentiable=differentiable))


# --------------------------------------------------------------------------------------
# L-BFGS and Newton: one flat vector, the loops of curvlib.quasi_newton
# --------------------------------------------------------------------------------------
class _FlatOptimizer(CheckedStateDict, torch.optim.Optimizer):
    """An optimizer that sees all parameters as one vector (one param group).

    A second group is refused, at construction and by :meth:`add_param_group` (the step
    treats every parameter alike, so a group's own settings could not be honoured).
    ``_params`` (the group's list) is derived, and rebuilt after ``copy.deepcopy`` or
    unpickling (torch.optim's ``__getstate__`` keeps only defaults, state and groups).
    """

    def __init__(self, params, defaults):
        super().__init__(_check_param_list(params), methods.check(self.method, defaults))
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} doesn't support per-parameter options "
                             "(parameter groups)")
        self._params = self.param_groups[0]["params"]
        for p in self._params:
            if torch.is_complex(p):
                raise TypeError(f"{type(self).__name__} supports real parameters only, got "
                                f"dtype {p.dtype}")

    @classmethod
    def check_hyper(cls, group):
        """A checked copy of ``group``'s hyperparameters (raises on bad values)."""
        return methods.check(cls.method, group)

    def add_param_group(self, param_group):
        if self.param_groups:  # torch's constructor adds the first group through here
            raise ValueError(f"{type(self).__name__} doesn't support per-parameter options "
                             "(parameter groups): add_param_group is refused, as every "
                             "parameter is a slice of one flat vector")
        super().add_param_group(param_group)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._params = self.param_groups[0]["params"]

    def _flat_params(self):
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    def _flat_grad(self):
        return torch.cat([p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1)
                          for p in self._params])

    def _set_params(self, x):
        offset = 0
        for p in self._params:
            p.copy_(x[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def _hyper(self, group):
        """The loop's keyword arguments, read from the param group."""
        return {k: group[k] for k in methods.get(self.method).hyperparameters()}


class LBFGS(_FlatOptimizer):
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

    method = "lbfgs"

    def __init__(self, params, lr=_LBFGS["lr"], max_iter=_LBFGS["max_iter"],
                 max_eval=_LBFGS["max_eval"], tolerance_grad=_LBFGS["tolerance_grad"],
                 tolerance_change=_LBFGS["tolerance_change"],
                 history_size=_LBFGS["history_size"], line_search_fn=_LBFGS["line_search_fn"]):
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        group = self.param_groups[0]
        if group["max_eval"] is None:  # torch.optim.LBFGS stores the number it uses
            group["max_eval"] = self.defaults["max_eval"] = group["max_iter"] * 5 // 4

    @torch.no_grad()
    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations; ``closure`` recomputes and returns the loss
        after calling ``backward()``. Returns the loss at the start of the call."""
        if closure is None:
            raise TypeError("closure must be a callable that reevaluates the model and returns the loss")
        closure = torch.enable_grad()(closure)
        state = self.state[self._params[0]]  # global state, registered on the first parameter
        orig_loss = closure()
        state["func_evals"] = state.get("func_evals", 0) + 1

        def evaluate(x):
            self._set_params(x)
            return float(closure()), self._flat_grad()

        run = quasi_newton.lbfgs(evaluate, self._flat_params(), float(orig_loss),
                                 self._flat_grad(), state, **self._hyper(self.param_groups[0]))
        self._set_params(run.x)
        return orig_loss


class Newton(_FlatOptimizer):
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
      condition holds (N&W Alg. 3.1), relaxed by two units of the loss's rounding
      (:func:`curvlib.quasi_newton.backtracking`).
    * ``adaptive_damping=True``: Levenberg-Marquardt-style damping. A step that lowers the
      loss is taken and :math:`\lambda \leftarrow \lambda/10`; one that does not is rejected
      (the parameters stay) and :math:`\lambda \leftarrow 10\lambda`. ``damping > 0`` is the
      starting value. (K. Levenberg, Quart. Appl. Math. 2:164-168, 1944; D. W. Marquardt,
      J. SIAM 11(2):431-441, 1963.)

    The current damping and the step count live in ``state_dict()``.

    Limits: the constructor refuses (``ValueError``) a model whose dense Hessian and the
    matrices of its solve (three :math:`n\times n` arrays) exceed ``max_bytes``
    (``curvlib._checks.MAX_BYTES``, 2 GiB; ``math.inf`` lifts the limit). A step whose
    loss, gradient or Hessian is not finite is not taken (the parameters stay, ``p.grad``
    holds the gradient), so a training loop sees the non-finite loss and stops; the damping
    of N&W Alg. 3.3 is doubled at most :data:`curvlib.quasi_newton.MAX_DAMPING_DOUBLINGS`
    times, and Levenberg-Marquardt damping stays below :data:`curvlib.quasi_newton.MAX_DAMPING`.
    """

    method = "newton"
    damping_factor = quasi_newton.LEVENBERG_FACTOR
    closure_backward = False  # the closure returns the loss; Newton differentiates it itself

    def __init__(self, params, lr=_NEWTON["lr"], damping=_NEWTON["damping"],
                 line_search_fn=_NEWTON["line_search_fn"],
                 adaptive_damping=_NEWTON["adaptive_damping"], tolerance_grad=1e-7,
                 max_bytes=MAX_BYTES):
        super().__init__(params, dict(lr=lr, damping=damping, line_search_fn=line_search_fn,
                                      adaptive_damping=adaptive_damping,
                                      tolerance_grad=tolerance_grad, max_bytes=max_bytes))
        n = sum(p.numel() for p in self._params)
        check_size(f"Newton's dense Hessian of {n} parameters (three {n} x {n} matrices)",
                   3 * n * n * self._params[0].element_size(), max_bytes)

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
        if not (math.isfinite(float(loss.detach())) and bool(torch.isfinite(g).all())
                and bool(torch.isfinite(H).all())):
            return loss  # no step: the caller sees the non-finite loss (or gradient)
        if float(g.abs().max()) <= group["tolerance_grad"]:
            return loss
        state["step"] += 1

        def value(x):
            self._set_params(x)
            return float(closure())

        x, _ = quasi_newton.newton_step(value, self._flat_params(), float(loss), g, H, state,
                                        **self._hyper(group))
        self._set_params(x)
        return loss


# --------------------------------------------------------------------------------------
# By name: factory(name, **hyper) -> make(model, lr); make_optimizer(name, params, **hyper)
# --------------------------------------------------------------------------------------
from .second_order import KFAC, Shampoo  # noqa: E402


class OptimizerFactory:
    """``make(model, lr=None) -> torch.optim.Optimizer`` for one method and its hyperparameters.

    Built by :func:`factory`. ``model`` is a ``torch.nn.Module`` (every method; K-FAC needs
    one) or, for every method but ``"kfac"``, an iterable of parameters or param groups.
    ``lr`` overrides the learning rate given to :func:`factory` (``None`` keeps it, or the
    method's default). Attributes: ``name``, ``hyper`` (a copy), ``needs_model`` (K-FAC)
    and ``elementwise`` (the step treats every number on its own, so runs with different
    param groups are independent: the first-order methods).
    """

    def __init__(self, method, hyper):
        self._method, self._hyper = method, dict(hyper)
        self.name = method.name
        self.needs_model, self.elementwise = method.needs_model, method.elementwise

    @property
    def hyper(self):
        return dict(self._hyper)

    def __call__(self, model, lr=None):
        cls = globals()[self._method.optimizer]
        hyper = self.hyper if lr is None else {**self._hyper, "lr": lr}
        if self.needs_model:
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model must be a torch.nn.Module for {self.name!r} (K-FAC "
                                f"reads its layers), got {type(model).__name__}")
            return cls(model, **hyper)
        return cls(model.parameters() if isinstance(model, torch.nn.Module) else model, **hyper)

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self._hyper.items())
        return f"factory({self.name!r}{args})"


def factory(name, **hyper):
    r"""The optimizer factory of method ``name``: ``make = factory("adam", lr=1e-3)``, then
    ``optimizer = make(model, lr)``.

    ``name`` is a key of :data:`curvlib.methods.METHODS` (``"sgd"``, ``"gd"``,
    ``"momentum"``, ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``,
    ``"lbfgs"``, ``"newton"``, ``"kfac"``, ``"shampoo"``); ``hyper`` are the keyword arguments
    of its class (torch.optim's names). Every factory has the same call, ``make(model, lr)``,
    so K-FAC (which needs the model) and Adam (which needs only the parameters) sit in the
    same dict of contenders. ``"momentum"`` and ``"nesterov"`` default to ``momentum=0.9``
    (the lecture's :math:`\gamma`); an option a name fixes can't be changed.

    Unknown hyperparameters raise ``ValueError`` naming them; bad values raise here too
    (the factory builds its optimizer once on a one-number stand-in to check them).
    """
    method = methods.get(name)
    methods.resolve(method.name, hyper, options=method.options)  # names and fixed options
    made = OptimizerFactory(method, {**method.defaults, **method.fixed, **hyper})
    if made.needs_model:  # the values, checked by the class itself on a stand-in
        made(torch.nn.Linear(1, 1)).remove_hooks()
    else:
        made([torch.zeros(1, requires_grad=True)])
    return made


def make_optimizer(name, params, **hyper):
    """Build the optimizer a method name stands for, e.g. ``make_optimizer("nesterov", ps,
    lr=0.1)`` is ``SGD(ps, lr=0.1, momentum=0.9, nesterov=True)``; the same as
    ``factory(name, **hyper)(params)``.
    """
    return factory(name, **hyper)(params)
