"""curvlib.train: the reference loop, its pieces and the vectorised fast path."""
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from curvlib import data as D
from curvlib import models as Mo
from curvlib import optim
from curvlib import schedules as S
from curvlib import train as T


@pytest.fixture(scope="module")
def digits():
    return D.digits()


@pytest.fixture(scope="module")
def cancer():
    return D.breast_cancer(dtype="float64")


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
        return T.train(model, optim.factory("sgd", lr=0.05), digits, "cross_entropy", 30,
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
    res = T.train(model, optim.factory("adam", lr=1e-2), digits, "cross_entropy", 41,
                  record_every=10, eval_data=digits.test, eval_every=20)
    assert list(res.step) == [0, 10, 20, 30, 40]
    assert list(res.eval_step) == [0, 20, 40, 41]  # every 20 updates and after the last
    assert res.eval_accuracy[-1] > 0.9 > res.eval_accuracy[0]
    assert res.eval_accuracy[-1] == T.evaluate(model, *digits.test)


def test_schedule_function_and_torch_scheduler_set_the_recorded_lr(cancer):
    n = 30
    f = functools.partial(S.warmup_cosine, base_lr=0.5, warmup_steps=5, total_steps=n)
    m1 = Mo.logistic_regression(30, dtype="float64")
    r1 = T.train(m1, optim.factory("sgd", lr=123.0), cancer, "bce", n, scheduler=f)
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
    r_lb = T.train(lb, lambda m: torch.optim.LBFGS(m.parameters(), max_iter=10,
                                                     line_search_fn="strong_wolfe"),
                   cancer, "bce", 3)
    gd = Mo.logistic_regression(30, dtype="float64")
    r_gd = T.train(gd, lambda m: torch.optim.SGD(m.parameters(), lr=0.5), cancer, "bce", 3)
    assert r_lb.loss[0] == r_gd.loss[0] == pytest.approx(math.log(2))  # both start at w = 0
    assert r_lb.loss[-1] < 0.2 * r_gd.loss[-1]
    assert r_lb.status == "completed"
    assert T.evaluate(lb, *cancer.test) > 0.9


def test_newton_closure_without_backward(cancer):
    from curvlib.optim import Newton

    X, y = cancer.train
    model = Mo.logistic_regression(30, dtype="float64")
    res = T.train(model, lambda m: Newton(m.parameters(), damping=1e-3), cancer, "bce", 4)
    assert res.status == "completed" and res.loss[-1] < 0.1
    # the recorded gradient norm is the one at the start of each step (w = 0 for the first)
    w0 = Mo.logistic_regression(30, dtype="float64")
    nn.functional.binary_cross_entropy_with_logits(w0(X).squeeze(1), y.double()).backward()
    g0 = torch.cat([w0.weight.grad.flatten(), w0.bias.grad]).norm().item()
    assert res.grad_norm[0] == pytest.approx(g0, rel=1e-10)
    with pytest.raises(RuntimeError, match="backward"):  # forcing backward breaks Newton
        T.train(Mo.logistic_regression(30, dtype="float64"), lambda m: Newton(m.parameters()), cancer, "bce",
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


# --------------------------------------------------------------------------------------
# the pieces both loops share, and the fast path
# --------------------------------------------------------------------------------------
def test_minibatches_fresh_permutation_per_epoch_and_seeded():
    a = T.minibatches(10, 3, seed=4)
    first = [next(a) for _ in range(6)]
    assert all(len(b) == 3 for b in first)
    assert len(set(torch.cat(first[:3]).tolist())) == 9       # one epoch, tail dropped
    assert not torch.equal(torch.cat(first[:3]), torch.cat(first[3:]))
    b = T.minibatches(10, 3, seed=4)
    assert all(torch.equal(x, next(b)) for x in first)
    with pytest.raises(ValueError, match="batch_size"):
        T.minibatches(10, 11, seed=0)


def test_loss_and_accuracy_and_loss_function():
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(2))
    X, y = torch.tensor([[2.0, 0], [0, 1]]), torch.tensor([0, 0])
    loss, acc = T.loss_and_accuracy(lin, X, y)
    assert acc == 0.5 and loss == pytest.approx(float(nn.functional.cross_entropy(lin(X), y).detach()))
    assert T.loss_function("mse") is T.LOSSES["mse"]
    with pytest.raises(ValueError, match="loss_fn"):
        T.loss_function("hinge")


def _stacked_and_reference(factory, lrs, seeds, batch_size, digits, steps=20, schedule=None):
    make = lambda s: Mo.mlp([64, 8, 10], seed=s)  # noqa: E731
    data = (digits.X_train[:300], digits.y_train[:300])
    out = T.train_stacked([make(s) for _ in lrs for s in seeds], factory, data, lrs=lrs,
                          seeds=seeds, steps=steps, batch_size=batch_size,
                          schedules=[schedule] * len(lrs))
    refs = []
    for lr in lrs:
        for s in seeds:
            model = make(s)
            sched = None if schedule is None else (lambda k, lr=lr: schedule(k, lr))
            refs.append((T.train(model, factory(model, lr), data, steps=steps, batch_size=batch_size,
                                 seed=s, scheduler=sched), model))
    return out, refs


@pytest.mark.parametrize("name, batch_size", [("nesterov", None), ("adam", 64), ("adamw", 50)])
def test_train_stacked_equals_the_reference_loop(digits, name, batch_size):
    sched = lambda t, base: base * min(1.0, (t + 1) / 5)  # noqa: E731
    (results, stack), refs = _stacked_and_reference(optim.factory(name), [0.01, 0.1], [0, 1, 2],
                                                    batch_size, digits, schedule=sched)
    for i, (res, (ref, model)) in enumerate(zip(results, refs)):
        np.testing.assert_allclose(res.loss, ref.loss, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res.grad_norm, ref.grad_norm, rtol=2e-3)
        np.testing.assert_allclose(res.lr, ref.lr)
        for name_, p in model.named_parameters():
            torch.testing.assert_close(stack.copy(i)[name_], p.detach(), rtol=1e-3, atol=1e-5)


def test_train_stacked_stops_a_diverging_run_and_keeps_the_others(digits):
    (results, _), refs = _stacked_and_reference(optim.factory("sgd"), [0.1, 1e6], [0, 1], None,
                                                digits, steps=30)
    assert results[0].diverged_at is None and results[1].diverged_at is None
    assert results[2].diverged_at == refs[2][0].diverged_at is not None
    assert results[2].status == f"diverged at step {results[2].diverged_at}"
    assert np.isfinite(results[0].loss).all() and len(results[0].loss) == 30


def test_train_stacked_declines_what_it_cannot_do(digits):
    data = digits.train
    plain = [Mo.mlp([64, 4, 10], seed=s) for s in (0, 1)]
    assert T.train_stacked(plain, optim.factory("lbfgs"), data, lrs=[1.0], seeds=[0, 1],
                           steps=2) is None                      # not elementwise
    assert T.train_stacked(plain, lambda m, lr: torch.optim.SGD(m.parameters(), lr), data,
                           lrs=[1.0], seeds=[0, 1], steps=2) is None   # unknown: no claim
    bn = [Mo.mlp([64, 4, 10], batchnorm=True, seed=s) for s in (0, 1)]
    assert T.train_stacked(bn, optim.factory("sgd"), data, lrs=[0.1], seeds=[0, 1],
                           steps=2) is None                      # buffers
    with pytest.raises(ValueError, match="models"):
        T.train_stacked(plain, optim.factory("sgd"), data, lrs=[0.1, 0.2], seeds=[0, 1], steps=2)


def test_stacked_models_groups_copies_and_batch_statistics():
    nets = [Mo.mlp([4, 3, 2], seed=s) for s in range(4)]
    stack = T.StackedModels(nets, groups=2)
    assert len(stack) == 4 and len(stack.groups) == 2 and stack.group_size == 2
    X = torch.randn(5, 4)
    out = stack.outputs(X)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(X))
        assert all(torch.equal(v, p) for v, p in zip(stack.copy(i).values(), net.parameters()))
    bn = [Mo.mlp([4, 3, 2], batchnorm=True, seed=s) for s in range(2)]
    with pytest.raises(ValueError, match="batch_statistics"):
        T.StackedModels(bn)
    stack = T.StackedModels(bn, batch_statistics=True)
    bn[1].train()
    torch.testing.assert_close(stack.outputs(X)[1], bn[1](X))   # batch statistics, as in training
    with pytest.raises(ValueError, match="groups"):
        T.StackedModels(nets, groups=3)
