"""Tiny models for the chapters: MLPs (optionally with batch norm or residual connections)
and logistic regression, each initialised deterministically from a ``seed``.

Initialisation draws from a private copy of torch's random state (``torch.random.fork_rng``),
so building a model neither depends on nor changes the global generator: ``mlp(..., seed=0)``
is the same network whatever ran before it.
"""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_choice, check_flag, check_int

__all__ = ["mlp", "logistic_regression", "Residual", "n_params", "ACTIVATIONS"]

#: name -> activation module class. ``tanh`` is smooth, so its Hessian is informative;
#: ``relu``'s second derivative is zero almost everywhere.
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


class Residual(nn.Module):
    r"""A skip connection around a block: :math:`x \mapsto x + f(x)` (He et al., 2016, CVPR)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


def _float_dtype(dtype):
    if dtype in ("float32", torch.float32):
        return torch.float32
    if dtype in ("float64", torch.float64):
        return torch.float64
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


def _seeded(build, seed, dtype):
    seed = check_int("seed", seed, minimum=0)
    dtype = _float_dtype(dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(dtype)


_flag = check_flag


def mlp(sizes, activation="tanh", *, batchnorm=False, residual=False, seed=0, dtype="float32"):
    r"""A multilayer perceptron with layer widths ``sizes = [d_in, h_1, ..., d_out]``.

    Each hidden block is ``Linear -> [BatchNorm1d] -> activation``; the last layer is a plain
    ``Linear`` (logits). With ``residual=True`` every hidden block whose input and output
    widths agree becomes :math:`x + \text{block}(x)`, so ``mlp([64, 32, 32, 32, 10],
    residual=True)`` has two residual blocks. Batch norm: Ioffe & Szegedy (2015), "Batch
    Normalization", ICML. Weights use torch's default (Kaiming-uniform) initialisation drawn
    from ``seed``.
    """
    try:
        sizes = [check_int("sizes", s, minimum=1) for s in sizes]
    except TypeError:
        raise TypeError(f"sizes must be a sequence of positive integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes must have at least 2 entries (input and output), got {sizes}")
    check_choice("activation", activation, ACTIVATIONS)
    _flag("batchnorm", batchnorm)
    _flag("residual", residual)
    if residual and not any(a == b for a, b in zip(sizes[:-2], sizes[1:-1])):
        raise ValueError(f"residual=True needs a hidden block with equal input and output "
                         f"widths in sizes, got {sizes}")

    def build():
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-2], sizes[1:-1])):
            block = [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if batchnorm else [])
            block.append(ACTIVATIONS[activation]())
            block = nn.Sequential(*block)
            layers.append(Residual(block) if residual and a == b else block)
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        return nn.Sequential(*layers)

    return _seeded(build, seed, dtype)


def logistic_regression(n_features, n_classes=2, *, init="zeros", seed=0, dtype="float32"):
    r"""Logistic regression as a linear layer producing logits.

    Two classes give one logit :math:`z = w^\top x + b` (train with
    ``binary_cross_entropy_with_logits`` on float labels); more give ``n_classes`` logits for
    softmax regression (``cross_entropy``). ``init="zeros"`` starts at :math:`w = 0, b = 0`,
    the usual start of this convex problem; ``init="default"`` uses torch's initialisation
    drawn from ``seed``.
    """
    n_features = check_int("n_features", n_features, minimum=1)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    check_choice("init", init, {"zeros", "default"})

    def build():
        layer = nn.Linear(n_features, 1 if n_classes == 2 else n_classes)
        if init == "zeros":
            with torch.no_grad():
                layer.weight.zero_()
                layer.bias.zero_()
        return layer

    return _seeded(build, seed, dtype)


def n_params(model):
    """Number of trainable parameters (those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
