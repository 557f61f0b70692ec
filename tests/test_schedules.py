"""curvlib.schedules against torch.optim.lr_scheduler, step by step."""
import functools
import math
import warnings

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as tls

from curvlib import schedules as S

BASE_LR = 0.4


def torch_lrs(make_scheduler, n_steps, base_lr=BASE_LR):
    """Learning rate used by each of ``n_steps`` updates of a dummy SGD driven by torch."""
    p = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_steps):
            lrs.append(opt.param_groups[0]["lr"])
            p.grad = torch.ones_like(p)
            opt.step()
            sched.step()
    return np.array(lrs)


def assert_same(ours, theirs, base_lr=BASE_LR):
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12 * base_lr)


@pytest.mark.parametrize("step_size,gamma", [(30, 0.1), (7, 0.5), (1, 0.97)])
def test_step_decay_equals_StepLR(step_size, gamma):
    n = 300
    ours = S.lr_curve(S.step_decay, n, base_lr=BASE_LR, step_size=step_size, gamma=gamma)
    theirs = torch_lrs(lambda o: tls.StepLR(o, step_size=step_size, gamma=gamma), n)
    assert_same(ours, theirs)


def test_multistep_equals_MultiStepLR():
    n, ms = 300, [50, 120, 200]
    ours = S.lr_curve(S.multistep, n, base_lr=BASE_LR, milestones=ms, gamma=0.2)
    theirs = torch_lrs(lambda o: tls.MultiStepLR(o, milestones=ms, gamma=0.2), n)
    assert_same(ours, theirs)


@pytest.mark.parametrize("total,min_lr", [(200, 0.0), (300, 1e-3), (37, 0.1)])
def test_cosine_equals_CosineAnnealingLR(total, min_lr):
    n = total + 1  # steps 0..T inclusive
    ours = S.lr_curve(S.cosine, n, base_lr=BASE_LR, total_steps=total, min_lr=min_lr)
    theirs = torch_lrs(lambda o: tls.CosineAnnealingLR(o, T_max=total, eta_min=min_lr), n)
    assert_same(ours, theirs)
    assert ours[0] == BASE_LR and ours[-1] == pytest.approx(min_lr, abs=1e-15)


def test_cosine_holds_min_lr_after_total_while_torch_rises_again():
    total = 50
    ours = S.lr_curve(S.cosine, 3 * total, base_lr=BASE_LR, total_steps=total, min_lr=0.01)
    theirs = torch_lrs(lambda o: tls.CosineAnnealingLR(o, T_max=total, eta_min=0.01), 3 * total)
    assert np.all(ours[total:] == 0.01)
    assert theirs[2 * total] == pytest.approx(BASE_LR)  # torch's cosine is periodic


@pytest.mark.parametrize("start_factor,warmup", [(0.1, 50), (1 / 3, 5), (0.5, 1)])
def test_linear_warmup_equals_LinearLR(start_factor, warmup):
    n = 300
    ours = S.lr_curve(S.linear_warmup, n, base_lr=BASE_LR, warmup_steps=warmup,
                      start_factor=start_factor)
    theirs = torch_lrs(lambda o: tls.LinearLR(o, start_factor=start_factor, end_factor=1.0,
                                              total_iters=warmup), n)
    assert_same(ours, theirs)


@pytest.mark.parametrize("end_factor", [0.0, 0.05, 0.5])
def test_linear_decay_equals_LinearLR(end_factor):
    n, total = 300, 250
    ours = S.lr_curve(S.linear_decay, n, base_lr=BASE_LR, total_steps=total, end_factor=end_factor)
    theirs = torch_lrs(lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=end_factor,
                                              total_iters=total), n)
    assert_same(ours, theirs)


@pytest.mark.parametrize("warmup,total,min_lr,start_factor",
                         [(20, 300, 0.0, 0.1), (1, 120, 1e-3, 0.5), (100, 400, 0.02, 0.01)])
def test_warmup_cosine_equals_SequentialLR(warmup, total, min_lr, start_factor):
    n = total + 1

    def make(o):
        warm = tls.LinearLR(o, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
        cos = tls.CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_lr)
        return tls.SequentialLR(o, [warm, cos], milestones=[warmup])

    ours = S.lr_curve(S.warmup_cosine, n, base_lr=BASE_LR, warmup_steps=warmup,
                      total_steps=total, min_lr=min_lr, start_factor=start_factor)
    assert_same(ours, torch_lrs(make, n))
    assert ours[warmup] == BASE_LR and ours.argmax() == warmup


def test_warmup_from_zero_starts_at_zero_and_is_linear():
    lrs = S.lr_curve(S.linear_warmup, 11, base_lr=1.0, warmup_steps=10)
    np.testing.assert_allclose(lrs, np.linspace(0, 1, 11), atol=1e-15)
    wc = S.lr_curve(S.warmup_cosine, 11, base_lr=1.0, warmup_steps=10, total_steps=20)
    np.testing.assert_allclose(wc, lrs, atol=1e-15)


def test_constant_and_zero_warmup():
    assert S.lr_curve(S.constant, 4, base_lr=0.3).tolist() == [0.3] * 4
    assert S.linear_warmup(0, base_lr=0.3, warmup_steps=0) == 0.3


@pytest.mark.parametrize("name,hyper", [
    ("step", dict(step_size=10, gamma=0.5)),
    ("cosine", dict(total_steps=60, min_lr=0.01)),
    ("warmup_cosine", dict(warmup_steps=10, total_steps=60)),
    ("linear_decay", dict(total_steps=60)),
])
def test_as_multiplier_through_LambdaLR(name, hyper):
    n = 80
    mult = S.as_multiplier(name, base_lr=BASE_LR, **hyper)
    theirs = torch_lrs(lambda o: tls.LambdaLR(o, mult), n)
    ours = S.lr_curve(S.SCHEDULES[name], n, base_lr=BASE_LR, **hyper)
    assert_same(ours, theirs)


def test_partial_gives_one_argument_schedule():
    f = functools.partial(S.cosine, base_lr=1.0, total_steps=4)
    assert [f(t) for t in range(5)] == pytest.approx([1, (1 + math.sqrt(0.5)) / 2, 0.5,
                                                     (1 - math.sqrt(0.5)) / 2, 0])


@pytest.mark.parametrize("call,arg", [
    (lambda: S.cosine(-1, base_lr=0.1, total_steps=10), "step"),
    (lambda: S.cosine(1.5, base_lr=0.1, total_steps=10), "step"),
    (lambda: S.cosine(0, base_lr=-0.1, total_steps=10), "base_lr"),
    (lambda: S.cosine(0, base_lr=float("nan"), total_steps=10), "base_lr"),
    (lambda: S.cosine(0, base_lr=0.1, total_steps=0), "total_steps"),
    (lambda: S.cosine(0, base_lr=0.1, total_steps=10, min_lr=0.2), "min_lr"),
    (lambda: S.cosine(0, base_lr=0.1, total_steps=10, min_lr=-1e-3), "min_lr"),
    (lambda: S.step_decay(0, base_lr=0.1, step_size=0), "step_size"),
    (lambda: S.step_decay(0, base_lr=0.1, step_size=3, gamma=0), "gamma"),
    (lambda: S.multistep(0, base_lr=0.1, milestones=[0, 3]), "milestones"),
    (lambda: S.multistep(0, base_lr=0.1, milestones=5), "milestones"),
    (lambda: S.linear_warmup(0, base_lr=0.1, warmup_steps=-2), "warmup_steps"),
    (lambda: S.linear_warmup(0, base_lr=0.1, warmup_steps=2, start_factor=1.5), "start_factor"),
    (lambda: S.linear_decay(0, base_lr=0.1, total_steps=5, end_factor=-0.1), "end_factor"),
    (lambda: S.warmup_cosine(0, base_lr=0.1, warmup_steps=10, total_steps=10), "warmup_steps"),
    (lambda: S.warmup_cosine(50, base_lr=0.1, warmup_steps=1, total_steps=10,
                             start_factor=2), "start_factor"),
    (lambda: S.as_multiplier("cosine", base_lr=0.1, total_steps=-3), "total_steps"),
    (lambda: S.as_multiplier("cosine", base_lr=0, total_steps=3), "base_lr"),
    (lambda: S.as_multiplier("exponential", base_lr=0.1), "schedule"),
    (lambda: S.lr_curve(S.constant, -1, base_lr=0.1), "n_steps"),
])
def test_bad_input_names_the_argument(call, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        call()


def test_non_callable_schedule_is_a_type_error():
    with pytest.raises(TypeError, match="schedule"):
        S.as_multiplier(3.0, base_lr=0.1)
