"""curvlib.models: seeded MLPs and logistic regression."""
import pytest
import torch

from curvlib import models as Mo


def test_mlp_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = Mo.mlp([5, 7, 3], seed=1)
    assert torch.equal(torch.rand(3), expected)
    b, c = Mo.mlp([5, 7, 3], seed=1), Mo.mlp([5, 7, 3], seed=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a[0][0].weight, c[0][0].weight)


def test_mlp_structure_batchnorm_residual_dtype():
    m = Mo.mlp([64, 32, 32, 32, 10], "relu", batchnorm=True, residual=True, dtype="float64")
    kinds = [type(x).__name__ for x in m.modules()]
    assert kinds.count("BatchNorm1d") == 3 and kinds.count("Residual") == 2
    assert kinds.count("ReLU") == 3 and "Tanh" not in kinds
    assert all(p.dtype == torch.float64 for p in m.parameters())
    x = torch.randn(8, 64, dtype=torch.float64)
    assert m(x).shape == (8, 10)
    res = m[1]
    h = m[0](x)
    assert torch.allclose(res(h), h + res.block(h))
    assert Mo.n_params(Mo.mlp([64, 32, 10])) == 64 * 32 + 32 + 32 * 10 + 10


def test_logistic_regression_shapes_and_init():
    lr2 = Mo.logistic_regression(30)
    assert lr2.weight.shape == (1, 30) and lr2.weight.abs().sum() == 0 and lr2.bias.item() == 0
    lr10 = Mo.logistic_regression(64, 10, init="default", seed=7)
    assert lr10(torch.zeros(2, 64)).shape == (2, 10)
    assert torch.equal(lr10.weight, Mo.logistic_regression(64, 10, init="default", seed=7).weight)
    assert lr10.weight.abs().sum() > 0


@pytest.mark.parametrize("call,arg", [
    (lambda: Mo.mlp([64]), "sizes"),
    (lambda: Mo.mlp([64, 0, 10]), "sizes"),
    (lambda: Mo.mlp([64, 3.5, 10]), "sizes"),
    (lambda: Mo.mlp(7), "sizes"),
    (lambda: Mo.mlp([4, 5, 2], "swish"), "activation"),
    (lambda: Mo.mlp([4, 5, 6, 2], residual=True), "residual"),
    (lambda: Mo.mlp([4, 5, 2], batchnorm=1), "batchnorm"),
    (lambda: Mo.mlp([4, 5, 2], seed=-3), "seed"),
    (lambda: Mo.mlp([4, 5, 2], dtype="int8"), "dtype"),
    (lambda: Mo.logistic_regression(0), "n_features"),
    (lambda: Mo.logistic_regression(3, 1), "n_classes"),
    (lambda: Mo.logistic_regression(3, init="random"), "init"),
    (lambda: Mo.n_params("net"), "model"),
])
def test_models_bad_input(call, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        call()
