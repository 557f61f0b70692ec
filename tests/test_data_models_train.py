"""curvlib.data, curvlib.models and curvlib.train."""
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from curvlib import data as D
from curvlib import models as Mo
from curvlib import schedules as S
from curvlib import train as T


@pytest.fixture(scope="module")
def digits():
    return D.digits()


@pytest.fixture(scope="module")
def cancer():
    return D.breast_cancer(dtype="float64")


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def test_digits_split_shapes_types_and_stratification(digits):
    Xtr, ytr, Xte, yte = digits
    assert Xtr.shape[1] == Xte.shape[1] == digits.n_features == 64
    assert len(Xtr) + len(Xte) == 1797 and len(Xte) == 450
    assert Xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert digits.n_classes == 10
    counts_tr = torch.bincount(ytr, minlength=10).double() / len(ytr)
    counts_te = torch.bincount(yte, minlength=10).double() / len(yte)
    assert (counts_tr - counts_te).abs().max() < 0.01  # stratified


def test_standardised_with_training_statistics(digits):
    Xtr, Xte = digits.X_train.double(), digits.X_test.double()
    std = Xtr.std(dim=0, unbiased=False)
    live = std > 0
    assert Xtr.mean(dim=0).abs().max() < 1e-5
    assert (std[live] - 1).abs().max() < 1e-5
    assert (~live).sum() >= 3 and (Xtr[:, ~live] == 0).all()  # pixels constant in training
    assert Xte.mean(dim=0).abs().max() > 1e-3  # the test set is not re-centred


def test_loaders_are_deterministic_and_seeded():
    a, b, c = D.digits(seed=3), D.digits(seed=3), D.digits(seed=4)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a.X_train, c.X_train)


def test_breast_cancer_raw_rows_numpy_and_dtype():
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    s = D.breast_cancer(standardize=False, as_torch=False, dtype="float64", test_size=0.2)
    assert isinstance(s.X_train, np.ndarray) and s.X_train.dtype == np.float64
    assert s.X_train.shape == (455, 30) and s.X_test.shape == (114, 30)
    both = np.vstack([s.X_train, s.X_test])
    np.testing.assert_allclose(np.sort(both, axis=0), np.sort(raw.data, axis=0))
    assert s.n_classes == 2 and set(np.unique(s.y_train)) == {0, 1}
    assert D.breast_cancer(dtype=torch.float64).X_test.dtype == torch.float64


@pytest.mark.parametrize("kw,arg", [
    (dict(test_size=0), "test_size"), (dict(test_size=1.5), "test_size"),
    (dict(seed=-1), "seed"), (dict(dtype="int32"), "dtype"), (dict(standardize="yes"), "standardize"),
])
def test_data_bad_input(kw, arg):
    for loader in (D.digits, D.breast_cancer):
        with pytest.raises((ValueError, TypeError), match=arg):
            loader(**kw)


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------
def test_full_batch_train_equals_a_hand_written_loop(cancer):
    X, y = cancer.train
    model = Mo.logistic_regression(30, dtype="float64")
    res = T.train(model, torch.optim.SGD(model.parameters(), lr=0.5), cancer, "bce", 25)
    ref = Mo.logistic_regression(30, dtype="float64")
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    losses, gnorms = [], []
    for _ in range(25):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(ref(X).squeeze(1), y.double())
        loss.backward()
        losses.append(loss.item())
        gnorms.append(torch.cat([p.grad.flatten() for p in ref.parameters()]).norm().item())
        opt.step()
    np.testing.assert_allclose(res.loss, losses, rtol=1e-12)
    np.testing.assert_allclose(res.grad_norm, gnorms, rtol=1e-10)
    assert torch.equal(model.weight, ref.weight)
    assert res.status == "completed" and not res.diverged and res.n_steps == 25
    assert list(res.step) == list(range(25)) and np.all(res.lr == 0.5)
    assert np.all(np.diff(res.time) >= 0) and res.loss[-1] < res.loss[0]


def test_minibatches_are_seeded_and_global_rng_untouched(digits):
    def run(seed):
        model = Mo.mlp([64, 16, 10], seed=0)
        return T.train(model, lambda p: torch.optim.SGD(p, lr=0.05), digits, "cross_entropy", 30,
                       batch_size=32, seed=seed)

    torch.manual_seed(9)
    expected = torch.rand(2)
    torch.manual_seed(9)
    a = run(1)
    assert torch.equal(torch.rand(2), expected)
    b, c = run(1), run(2)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss, c.loss)


def test_minibatch_epochs_cover_every_example_once():
    X = torch.arange(10.0).reshape(10, 1)
    y = torch.zeros(10)
    seen = []

    def loss_fn(out, yb):
        seen.extend(out.detach().reshape(-1).tolist())
        return (out ** 2).mean() * 0

    ident = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ident.weight.fill_(1.0)
    T.train(ident, torch.optim.SGD(ident.parameters(), lr=0.1), (X, y), loss_fn, 6, batch_size=3)
    # 3 batches per epoch (the 10th example is dropped), then a new permutation
    assert len(seen) == 18
    assert len(set(seen[:9])) == 9 and len(set(seen[9:])) == 9


def test_record_every_and_eval_curves(digits):
    model = Mo.mlp([64, 32, 10], seed=0)
    res = T.train(model, lambda p: torch.optim.Adam(p, lr=1e-2), digits, "cross_entropy", 41,
                  record_every=10, eval_data=digits.test, eval_every=20)
    assert list(res.step) == [0, 10, 20, 30, 40]
    assert list(res.eval_step) == [0, 20, 40, 41]  # every 20 updates and after the last
    assert res.eval_accuracy[-1] > 0.9 > res.eval_accuracy[0]
    assert res.eval_accuracy[-1] == T.evaluate(model, *digits.test)


def test_schedule_function_and_torch_scheduler_set_the_recorded_lr(cancer):
    n = 30
    f = functools.partial(S.warmup_cosine, base_lr=0.5, warmup_steps=5, total_steps=n)
    m1 = Mo.logistic_regression(30, dtype="float64")
    r1 = T.train(m1, lambda p: torch.optim.SGD(p, lr=123.0), cancer, "bce", n, scheduler=f)
    np.testing.assert_allclose(r1.lr, S.lr_curve(f, n), rtol=1e-15)
    m2 = Mo.logistic_regression(30, dtype="float64")
    opt = torch.optim.SGD(m2.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, S.as_multiplier(S.warmup_cosine, base_lr=0.5, warmup_steps=5, total_steps=n))
    r2 = T.train(m2, opt, cancer, "bce", n, scheduler=sched)
    np.testing.assert_allclose(r2.lr, r1.lr, rtol=1e-12)
    np.testing.assert_allclose(r2.loss, r1.loss, rtol=1e-10)


def test_reduce_lr_on_plateau_gets_the_loss(cancer):
    model = Mo.logistic_regression(30, dtype="float64")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=10.0)
    res = T.train(model, opt, cancer, "bce", 4, scheduler=sched)
    assert list(res.lr) == [0.1, 0.05, 0.025, 0.0125]  # no relative improvement of 1000%


def test_lbfgs_runs_through_the_closure_and_beats_gd(cancer):
    lb = Mo.logistic_regression(30, dtype="float64")
    r_lb = T.train(lb, lambda p: torch.optim.LBFGS(p, max_iter=10, line_search_fn="strong_wolfe"),
                   cancer, "bce", 3)
    gd = Mo.logistic_regression(30, dtype="float64")
    r_gd = T.train(gd, lambda p: torch.optim.SGD(p, lr=0.5), cancer, "bce", 3)
    assert r_lb.loss[0] == r_gd.loss[0] == pytest.approx(math.log(2))  # both start at w = 0
    assert r_lb.loss[-1] < 0.2 * r_gd.loss[-1]
    assert r_lb.status == "completed"
    assert T.evaluate(lb, *cancer.test) > 0.9


def test_newton_closure_without_backward(cancer):
    from curvlib.quasi_newton import Newton

    X, y = cancer.train
    model = Mo.logistic_regression(30, dtype="float64")
    res = T.train(model, lambda p: Newton(p, damping=1e-3), cancer, "bce", 4)
    assert res.status == "completed" and res.loss[-1] < 0.1
    # the recorded gradient norm is the one at the start of each step (w = 0 for the first)
    w0 = Mo.logistic_regression(30, dtype="float64")
    nn.functional.binary_cross_entropy_with_logits(w0(X).squeeze(1), y.double()).backward()
    g0 = torch.cat([w0.weight.grad.flatten(), w0.bias.grad]).norm().item()
    assert res.grad_norm[0] == pytest.approx(g0, rel=1e-10)
    with pytest.raises(RuntimeError, match="backward"):  # forcing backward breaks Newton
        T.train(Mo.logistic_regression(30, dtype="float64"), lambda p: Newton(p), cancer, "bce",
                1, backward_in_closure=True)


def test_divergence_stops_cleanly_with_finite_curves():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g)
    y = X @ torch.randn(5, generator=g)
    model = nn.Linear(5, 1)
    res = T.train(model, torch.optim.SGD(model.parameters(), lr=50.0), (X, y), "mse", 500)
    assert res.diverged and res.status == f"diverged at step {res.diverged_at}"
    k = res.diverged_at
    assert 0 < k < 500 and res.n_steps == k + 1
    assert len(res.loss) == len(res.grad_norm) == len(res.lr) == len(res.time) == k
    for curve in (res.loss, res.grad_norm, res.lr, res.time):
        assert np.all(np.isfinite(curve))
    assert res.loss[-1] > 100 * res.loss[0]  # it was growing before it was stopped
    # without the explosion check the same run goes on until the loss is not finite
    model2 = nn.Linear(5, 1)
    nn.init.zeros_(model2.weight)
    nn.init.zeros_(model2.bias)
    res2 = T.train(model2, torch.optim.SGD(model2.parameters(), lr=50.0), (X, y), "mse", 500,
                   diverge_factor=None)
    assert res2.diverged and res2.diverged_at > 0 and np.all(np.isfinite(res2.loss))
    assert np.max(res2.loss) > 1e30


def test_nan_from_the_first_step_records_nothing():
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    res = T.train(model, torch.optim.SGD(model.parameters(), lr=0.1),
                  (torch.ones(4, 3), torch.ones(4)), "mse", 10)
    assert res.status == "diverged at step 0" and len(res.loss) == 0 and res.final_loss is None


def test_evaluate_binary_and_multiclass_and_restores_mode():
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
        lin.bias.zero_()
    X = torch.tensor([[1.0, 0], [-1, 0], [2, 0], [-3, 0]])
    assert T.evaluate(lin, X, torch.tensor([1, 0, 0, 0])) == 0.75
    multi = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        multi.weight.copy_(torch.eye(2))
    assert T.evaluate(multi, torch.tensor([[1.0, 0], [0, 1]]), torch.tensor([0, 0])) == 0.5
    bn = Mo.mlp([2, 4, 2], batchnorm=True)
    bn.train()
    T.evaluate(bn, X, torch.tensor([0, 1, 0, 1]))
    assert bn.training


@pytest.mark.parametrize("kw,arg", [
    (dict(model="net"), "model"),
    (dict(optimizer=3), "optimizer"),
    (dict(optimizer=lambda p: 3), "optimizer"),
    (dict(data=(np.zeros((3, 2)), np.zeros(3))), "data"),
    (dict(data=(torch.zeros(3, 2), torch.zeros(4))), "data"),
    (dict(data=torch.zeros(3)), "data"),
    (dict(loss_fn="hinge"), "loss_fn"),
    (dict(loss_fn=3), "loss_fn"),
    (dict(steps=-1), "steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=100), "batch_size"),
    (dict(seed=-1), "seed"),
    (dict(record_every=0), "record_every"),
    (dict(diverge_factor=-2.0), "diverge_factor"),
    (dict(eval_every=5), "eval_data"),
    (dict(eval_every=0, eval_data=(torch.zeros(2, 2), torch.zeros(2))), "eval_every"),
    (dict(scheduler=5), "scheduler"),
    (dict(scheduler=lambda k: -1.0), "scheduler"),
    (dict(backward_in_closure="yes"), "backward_in_closure"),
])
def test_train_bad_input(kw, arg):
    model = nn.Linear(2, 1)
    args = dict(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                data=(torch.zeros(8, 2), torch.zeros(8)), loss_fn="mse", steps=3)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=arg):
        T.train(**args)


def test_evaluate_bad_input():
    with pytest.raises(TypeError, match="model"):
        T.evaluate("net", torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="X, y"):
        T.evaluate(nn.Linear(2, 1), torch.zeros(2, 2), torch.zeros(3))
