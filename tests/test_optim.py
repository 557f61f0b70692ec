"""curvlib.optim against torch.optim: same trajectories, same API, stricter input checks."""
import copy
import functools
import inspect
import io
import math

import numpy as np
import pytest
import torch

import curvlib.optim as co

NAMES = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"]

# (class name, keyword arguments, overrides for the second param group)
CASES = [
    ("SGD", dict(lr=0.1), dict(lr=0.05)),
    ("SGD", dict(lr=0.1, weight_decay=1e-2), dict(weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9), dict(momentum=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2), dict(lr=0.02)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.02)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2), dict(lr=0.02)),
    ("SGD", dict(lr=0.01, momentum=0.9, weight_decay=1e-2, maximize=True), dict(lr=0.005)),
    ("SGD", dict(lr=0.01, maximize=True, weight_decay=1e-2), dict(lr=0.005)),
    ("Adam", dict(lr=1e-2), dict(lr=3e-3)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2), dict(lr=3e-3)),
    ("Adam", dict(lr=1e-2, amsgrad=True), dict(betas=(0.5, 0.9))),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-2, maximize=True), dict(lr=3e-3)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-1, decoupled_weight_decay=True), dict(lr=3e-3)),
    ("AdamW", dict(lr=1e-2), dict(weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, amsgrad=True, weight_decay=0.1), dict(lr=3e-3)),
    ("AdamW", dict(lr=1e-2, maximize=True), dict(lr=3e-3)),
    ("Adagrad", dict(lr=0.1), dict(lr=0.05)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2), dict(lr_decay=0.0)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1, eps=1e-6), dict(lr=0.05)),
    ("Adagrad", dict(lr=0.05, maximize=True), dict(lr=0.02)),
    ("RMSprop", dict(lr=1e-2), dict(lr=3e-3)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9, weight_decay=1e-2), dict(alpha=0.99)),
    ("RMSprop", dict(lr=1e-2, centered=True), dict(lr=3e-3)),
    # lr=1e-2 with momentum 0.9 oscillates, and any rounding difference (even torch's own
    # foreach vs single-tensor paths) then grows ~3x every 10 steps; lr=3e-3 is stable.
    ("RMSprop", dict(lr=3e-3, momentum=0.5), dict(momentum=0.9)),
    ("RMSprop", dict(lr=5e-3, centered=True, momentum=0.5, weight_decay=1e-2), dict(lr=1e-3)),
    ("RMSprop", dict(lr=5e-3, maximize=True), dict(lr=1e-3)),
]
CASE_IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw, _ in CASES]

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine a second OpenMP thread
    makes each step many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


DEFAULT_LR = {"SGD": 0.05, "Adam": 1e-2, "AdamW": 1e-2, "Adagrad": 0.1, "RMSprop": 1e-2}


# --------------------------------------------------------------------------------------
# A small problem: an MLP on fixed random data, minibatches drawn from a seeded generator
# --------------------------------------------------------------------------------------
def make_model(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(),
                               torch.nn.Linear(10, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 3)).to(dtype)


def make_data(dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(64, 6, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (64,), generator=gen)
    batches = [torch.randint(0, 64, (16,), generator=gen) for _ in range(200)]
    return X, y, batches


def groups(model, overrides):
    """Two param groups: the first layer, and the rest with its own hyperparameters."""
    return [{"params": list(model[0].parameters())},
            {"params": list(model[2].parameters()) + list(model[4].parameters()),
             **overrides}]


def loss_fn(model, X, y, idx):
    return torch.nn.functional.cross_entropy(model(X[idx]), y[idx])


def run(opt_cls, kwargs, overrides=None, steps=100, scheduler=None, start=0, model=None,
        opt=None, sched=None, data=None):
    """Train and return the parameters after every step, flattened."""
    model = model if model is not None else make_model()
    X, y, batches = data if data is not None else make_data()
    if opt is None:
        opt = opt_cls(groups(model, overrides or {}), **kwargs)
    if sched is None and scheduler is not None:
        sched = scheduler(opt)
    path = []
    for t in range(start, start + steps):
        opt.zero_grad()
        loss_fn(model, X, y, batches[t]).backward()
        opt.step()
        if sched is not None:
            sched.step()
        path.append(torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()]))
    return torch.stack(path), model, opt, sched


def rel_err(a, b):
    """Largest over steps of max|a-b| / max|b|."""
    return ((a - b).abs().amax(dim=1) / b.abs().amax(dim=1)).max().item()


def torch_twin(name):
    return getattr(torch.optim, name)


@functools.lru_cache(maxsize=None)
def case_run(library, i, foreach):
    """Path (and optimizer) of CASES[i] with curvlib or torch; each is computed once."""
    name, kwargs, overrides = CASES[i]
    cls = getattr(co if library == "curvlib" else torch.optim, name)
    path, _, opt, _ = run(cls, dict(kwargs, foreach=foreach), overrides)
    return path, opt


# --------------------------------------------------------------------------------------
# Same trajectory as torch.optim, both paths
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(CASES)), ids=CASE_IDS)
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "fast"])
def test_same_trajectory_as_torch(i, foreach):
    ours, opt = case_run("curvlib", i, foreach)
    ref, _ = case_run("torch", i, False)
    assert torch.isfinite(ref).all()
    assert not torch.equal(ref[0], ref[-1])  # the parameters did move
    assert rel_err(ours, ref) < 1e-12
    assert [len(g["params"]) for g in opt.param_groups] == [2, 4]
    assert opt.param_groups[1]["lr"] == CASES[i][2].get("lr", CASES[i][1]["lr"])


@pytest.mark.parametrize("i", range(len(CASES)), ids=CASE_IDS)
def test_fast_path_equals_reference_path(i):
    ref, opt_r = case_run("curvlib", i, False)
    fast, opt_f = case_run("curvlib", i, True)
    assert rel_err(fast, ref) < 1e-12
    sr, sf = opt_r.state_dict()["state"], opt_f.state_dict()["state"]
    assert sr.keys() == sf.keys() == set(range(6))
    for k in sr:
        assert sr[k].keys() == sf[k].keys()
        assert sr[k]["step"] == sf[k]["step"] == 100
        for key, value in sr[k].items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(sf[k][key], value, rtol=1e-11, atol=1e-14)


SCHEDULERS = {
    "SGD": lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [30, 60], 0.3),
    "Adam": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=25, gamma=0.5),
    "AdamW": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 100),
    "Adagrad": lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [50], 0.1),
    "RMSprop": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=40, gamma=0.3),
}


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_changes_lr_mid_run(name):
    kwargs = dict(lr=DEFAULT_LR[name], weight_decay=1e-2)
    if name == "SGD":
        kwargs["momentum"] = 0.9
    overrides = dict(lr=kwargs["lr"] / 2)
    ref, _, topt, _ = run(torch_twin(name), kwargs, overrides, scheduler=SCHEDULERS[name])
    for foreach in (False, True):
        ours, _, opt, _ = run(getattr(co, name), dict(kwargs, foreach=foreach), overrides,
                              scheduler=SCHEDULERS[name])
        assert rel_err(ours, ref) < 1e-12
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == [g["lr"] for g in topt.param_groups]
        assert lrs[0] < DEFAULT_LR[name] / 2  # the scheduler really changed lr


def test_scheduler_lr_values():
    model = make_model()
    opt = co.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


# --------------------------------------------------------------------------------------
# Fast path == reference path on awkward inputs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fast_path_mixed_dtypes_and_uneven_steps(name):
    """Params of two dtypes in one group, and a param that only gets a gradient every
    third step (so per-parameter step counts differ): fast == reference == torch."""
    def path(make_opt):
        torch.manual_seed(3)
        a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
        b = torch.randn(7, dtype=torch.float32, requires_grad=True)
        c = torch.randn(3, dtype=torch.float64, requires_grad=True)
        opt = make_opt([a, b, c])
        out = []
        for t in range(30):
            opt.zero_grad()
            loss = (a.sin() ** 2).sum() + (b.double() ** 4).sum() * 0.1
            if t % 3 == 0:
                loss = loss + (c ** 2).sum()
            loss.backward()
            opt.step()
            out.append(torch.cat([a.reshape(-1), b.double(), c]).detach().clone())
        return torch.stack(out)

    kwargs = dict(lr=DEFAULT_LR[name] / 5)
    if name == "SGD":
        kwargs["momentum"] = 0.9
    if name == "Adagrad":
        kwargs["lr_decay"] = 0.05
    ref = path(lambda ps: torch_twin(name)(ps, **kwargs))
    for foreach in (False, True):
        ours = path(lambda ps: getattr(co, name)(ps, foreach=foreach, **kwargs))
        assert rel_err(ours, ref) < 1e-6  # float32 parameter b bounds the agreement
        assert rel_err(ours[:, :20], ref[:, :20]) < 1e-12
        assert rel_err(ours[:, 27:], ref[:, 27:]) < 1e-12


def test_fast_path_functions_allocate_scratch_when_not_given():
    from curvlib import _fast, rules
    torch.manual_seed(0)
    p1 = torch.randn(4, dtype=torch.float64)
    p2 = p1.clone()
    g = torch.randn(4, dtype=torch.float64)
    s1 = rules.init_adam(p1)
    s2 = rules.init_adam(p2)
    for _ in range(3):
        _fast.adam([p1], [g], [s1], lr=0.1)
        rules.adam(p2, g, s2, lr=0.1)
    torch.testing.assert_close(p1, p2, rtol=1e-14, atol=0)
    assert not torch.equal(p1, g)


def test_scratch_is_not_in_state_dict():
    model = make_model()
    opt = co.Adam(model.parameters())
    loss_fn(model, *make_data()[:2], torch.arange(8)).backward()
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert len(opt._scratch_buffers) == 6


# --------------------------------------------------------------------------------------
# state_dict round trips, torch interoperability, deepcopy
# --------------------------------------------------------------------------------------
def _saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


RESUME = [3, 11, 14, 17, 24]  # one case per optimizer, with their stateful options


@pytest.mark.parametrize("i", RESUME, ids=[CASE_IDS[i] for i in RESUME])
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "fast"])
def test_resume_from_state_dict_gives_same_trajectory(i, foreach):
    name, kwargs, overrides = CASES[i]
    cls, kw = getattr(co, name), dict(kwargs, foreach=foreach)
    sched = SCHEDULERS["SGD"]
    full, _, _, _ = run(cls, kw, overrides, steps=100, scheduler=sched)

    first, model, opt, sch = run(cls, kw, overrides, steps=50, scheduler=sched)
    checkpoint = _saved({"model": model.state_dict(), "opt": opt.state_dict(),
                         "sched": sch.state_dict()})
    model2 = make_model()
    model2.load_state_dict(checkpoint["model"])
    opt2 = cls(groups(model2, overrides), **kw)
    opt2.load_state_dict(checkpoint["opt"])
    sch2 = sched(opt2)
    sch2.load_state_dict(checkpoint["sched"])
    second, _, _, _ = run(cls, kw, steps=50, start=50, model=model2, opt=opt2, sched=sch2)
    assert torch.equal(torch.cat([first, second]), full)


@pytest.mark.parametrize("name", NAMES)
def test_load_torch_state_dict_and_back(name):
    """A torch.optim checkpoint resumes in curvlib.optim, and vice versa."""
    kwargs = dict(lr=DEFAULT_LR[name], weight_decay=1e-2)
    if name == "SGD":
        kwargs["momentum"] = 0.9
    full, _, _, _ = run(torch_twin(name), kwargs, steps=60)
    data = make_data()

    _, model, topt, _ = run(torch_twin(name), kwargs, steps=30, data=data)
    opt = getattr(co, name)(groups(model, {}), **kwargs)
    opt.load_state_dict(_saved(topt.state_dict()))
    if name != "SGD":  # torch.optim.SGD keeps no step count
        assert all(isinstance(s["step"], int) and s["step"] == 30 for s in opt.state.values())
    rest, _, _, _ = run(None, None, steps=30, start=30, model=model, opt=opt, data=data)
    assert rel_err(rest, full[30:]) < 1e-12

    _, model, opt, _ = run(getattr(co, name), kwargs, steps=30, data=data)
    topt = torch_twin(name)(groups(model, {}), **kwargs)
    topt.load_state_dict(_saved(opt.state_dict()))
    rest, _, _, _ = run(None, None, steps=30, start=30, model=model, opt=topt, data=data)
    assert rel_err(rest, full[30:]) < 1e-12


def test_state_dict_uses_torch_key_names():
    model = make_model()
    X, y, _ = make_data()
    expected = {
        co.SGD(model.parameters(), momentum=0.9): {"momentum_buffer", "step"},
        co.Adam(model.parameters(), amsgrad=True): {"step", "exp_avg", "exp_avg_sq",
                                                   "max_exp_avg_sq"},
        co.Adagrad(model.parameters()): {"step", "sum"},
        co.RMSprop(model.parameters(), momentum=0.5, centered=True): {
            "step", "square_avg", "momentum_buffer", "grad_avg"},
    }
    for opt, keys in expected.items():
        model.zero_grad()
        loss_fn(model, X, y, torch.arange(8)).backward()
        opt.step()
        assert set(opt.state_dict()["state"][0]) == keys


def test_deepcopy_and_pickle_keep_working():
    model = make_model()
    opt = co.Adam(model.parameters(), lr=1e-2)
    X, y, batches = make_data()
    loss_fn(model, X, y, batches[0]).backward()
    opt.step()
    opt2 = copy.deepcopy(opt)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    opt3 = _saved(opt)
    assert len(opt3.state) == 6


# --------------------------------------------------------------------------------------
# Closures, zero_grad, params without gradients, hooks
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_closure(name):
    X, y, batches = make_data()
    paths, losses = [], []
    for cls in (getattr(co, name), torch_twin(name)):
        model = make_model()
        opt = cls(model.parameters(), lr=DEFAULT_LR[name])
        calls = []

        def closure():
            calls.append(1)
            opt.zero_grad()
            loss = loss_fn(model, X, y, batches[0])
            loss.backward()
            return loss

        got = [opt.step(closure).item() for _ in range(20)]
        assert len(calls) == 20
        losses.append(got)
        paths.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    assert losses[0][-1] < losses[0][0]
    torch.testing.assert_close(paths[0], paths[1], rtol=1e-12, atol=1e-14)


def test_zero_grad_and_params_without_grad():
    a = torch.ones(3, dtype=torch.float64, requires_grad=True)
    b = torch.ones(2, dtype=torch.float64, requires_grad=True)
    for foreach in (False, True):
        opt = co.Adam([a, b], lr=0.1, foreach=foreach)
        (a ** 2).sum().backward()
        before = b.detach().clone()
        opt.step()
        assert torch.equal(b, before) and b not in opt.state and a in opt.state
        opt.zero_grad(set_to_none=False)
        assert torch.equal(a.grad, torch.zeros(3, dtype=torch.float64))
        opt.zero_grad()
        assert a.grad is None
        opt.step()  # no gradients at all: nothing moves
        assert opt.state[a]["step"] == 1


def test_step_hooks_run():
    p = torch.ones(2, requires_grad=True)
    opt = co.SGD([p], lr=0.1)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    p.sum().backward()
    opt.step()
    assert seen == ["pre", "post"]
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.9))


def test_add_param_group_uses_defaults_and_overrides():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = co.Adam([a], lr=0.01)
    opt.add_param_group({"params": b, "betas": [0.5, 0.6]})
    assert opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["betas"] == (0.5, 0.6)
    assert opt.param_groups[1]["bias_correction"] is True


def test_named_parameters_accepted():
    model = make_model()
    opt = co.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"][0] == "0.weight"


# --------------------------------------------------------------------------------------
# Signatures and defaults match torch.optim
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name):
    ours = inspect.signature(getattr(co, name).__init__).parameters
    theirs = inspect.signature(torch_twin(name).__init__).parameters
    for pname, p in theirs.items():
        assert pname in ours, pname
        assert ours[pname].kind == p.kind, pname
        assert ours[pname].default == p.default, pname
    extra = set(ours) - set(theirs)
    assert extra <= {"bias_correction"}
    assert list(ours)[:len(theirs)] == list(theirs)  # positional order is torch's


@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_torch(name):
    p = torch.zeros(2, requires_grad=True)
    ours, theirs = getattr(co, name)([p]).defaults, torch_twin(name)([p]).defaults
    for key, value in theirs.items():
        assert ours[key] == (tuple(value) if key == "betas" else value), key


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def _p():
    return [torch.zeros(2, requires_grad=True)]


NAN = float("nan")
BAD = [
    # (class, kwargs, exception, text naming the argument, torch rejects it too)
    ("SGD", dict(lr=-0.1), ValueError, "lr", True),
    ("SGD", dict(lr=NAN), ValueError, "lr", False),
    ("SGD", dict(lr=math.inf), ValueError, "lr", False),
    ("SGD", dict(lr="0.1"), TypeError, "lr", True),
    ("SGD", dict(momentum="0.9"), TypeError, "momentum", True),
    ("SGD", dict(lr=True), TypeError, "lr", False),
    ("SGD", dict(lr=torch.tensor([0.1, 0.2])), ValueError, "lr", True),
    ("SGD", dict(momentum=-0.5), ValueError, "momentum", True),
    ("SGD", dict(weight_decay=-1e-4), ValueError, "weight_decay", True),
    ("SGD", dict(momentum=0.9, dampening=1.5), ValueError, "dampening", False),
    ("SGD", dict(nesterov=True), ValueError, "nesterov", True),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov", True),
    ("SGD", dict(nesterov="yes", momentum=0.9), TypeError, "nesterov", False),
    ("SGD", dict(maximize=1), TypeError, "maximize", False),
    ("SGD", dict(foreach="fast"), TypeError, "foreach", False),
    ("SGD", dict(fused=True), ValueError, "fused", False),
    ("SGD", dict(differentiable=True), ValueError, "differentiable", False),
    ("Adam", dict(lr=-1e-3), ValueError, "lr", True),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, "betas[0]", True),
    ("Adam", dict(betas=(0.9, -0.1)), ValueError, "betas[1]", True),
    ("Adam", dict(betas=(0.9, NAN)), ValueError, "betas[1]", False),
    ("Adam", dict(betas=0.9), TypeError, "betas", True),
    ("Adam", dict(betas=(0.9, 0.99, 0.999)), TypeError, "betas", False),
    ("Adam", dict(betas=("a", 0.99)), TypeError, "betas[0]", True),
    ("Adam", dict(eps=-1e-8), ValueError, "eps", True),
    ("Adam", dict(weight_decay=-0.1), ValueError, "weight_decay", True),
    ("Adam", dict(amsgrad="no"), TypeError, "amsgrad", False),
    ("Adam", dict(bias_correction=None), TypeError, "bias_correction", False),
    ("Adam", dict(capturable=True), ValueError, "capturable", False),
    ("AdamW", dict(weight_decay=-0.01), ValueError, "weight_decay", True),
    ("AdamW", dict(betas=(0.9, 1.0)), ValueError, "betas[1]", True),
    ("Adagrad", dict(lr=-0.01), ValueError, "lr", True),
    ("Adagrad", dict(lr_decay=-1.0), ValueError, "lr_decay", True),
    ("Adagrad", dict(weight_decay=-1.0), ValueError, "weight_decay", True),
    ("Adagrad", dict(initial_accumulator_value=-0.1), ValueError,
     "initial_accumulator_value", True),
    ("Adagrad", dict(eps=-1e-10), ValueError, "eps", True),
    ("Adagrad", dict(eps=NAN), ValueError, "eps", False),
    ("RMSprop", dict(lr=-0.01), ValueError, "lr", True),
    ("RMSprop", dict(alpha=-0.5), ValueError, "alpha", True),
    ("RMSprop", dict(alpha=1.5), ValueError, "alpha", False),
    ("RMSprop", dict(eps=-1.0), ValueError, "eps", True),
    ("RMSprop", dict(momentum=-0.9), ValueError, "momentum", True),
    ("RMSprop", dict(weight_decay=-0.9), ValueError, "weight_decay", True),
    ("RMSprop", dict(centered=0), TypeError, "centered", False),
]


@pytest.mark.parametrize("name,kwargs,exc,arg,torch_rejects", BAD,
                         ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_hyperparameters(name, kwargs, exc, arg, torch_rejects):
    with pytest.raises(exc, match=f"^{arg.replace('[', '.').replace(']', '.')}"):
        getattr(co, name)(_p(), **kwargs)
    if torch_rejects:  # torch rejects it too (its error type may differ)
        with pytest.raises((ValueError, TypeError, RuntimeError)):
            torch_twin(name)(_p(), **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_bad_params(name):
    cls = getattr(co, name)
    with pytest.raises(ValueError, match="params must not be empty"):
        cls([])
    with pytest.raises(ValueError, match="params must not be empty"):
        cls(iter([]))
    with pytest.raises(TypeError, match="params"):
        cls(torch.zeros(2, requires_grad=True))
    with pytest.raises(TypeError, match="params"):
        cls({torch.zeros(2, requires_grad=True)})
    with pytest.raises(TypeError, match="params"):
        cls(3.0)
    with pytest.raises(TypeError, match="params"):
        cls([1.0, 2.0])
    with pytest.raises(TypeError, match="params"):
        cls([torch.zeros(2, dtype=torch.int64)])
    with pytest.raises(TypeError, match="params"):
        cls([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
    leaf = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="params must be leaf"):
        cls([leaf * 2])
    with pytest.raises(ValueError, match="param_group\\['params'\\] must not be empty"):
        cls([{"params": [leaf]}, {"params": []}])
    with pytest.raises(ValueError, match="'params' entry"):
        cls([{"lr": 0.1}])


def test_bad_param_group_hyperparameters_are_rejected_and_not_added():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = co.Adam([a])
    with pytest.raises(ValueError, match="^lr must be non-negative"):
        opt.add_param_group({"params": [b], "lr": -1.0})
    with pytest.raises(ValueError, match="^betas.0. must be in"):
        opt.add_param_group({"params": [b], "betas": (1.2, 0.9)})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([b])
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="^lr must be"):
        co.SGD([{"params": [a]}, {"params": [b], "lr": NAN}])
    with pytest.raises(ValueError, match="^nesterov"):
        co.SGD([{"params": [a], "momentum": 0.0}], momentum=0.9, nesterov=True)


def test_sparse_gradient_is_rejected():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        co.Adam([p]).step()


def test_tensor_lr_is_accepted_as_number():
    p = torch.zeros(2, requires_grad=True)
    opt = co.SGD([p], lr=torch.tensor(0.5))
    assert opt.param_groups[0]["lr"] == 0.5


# --------------------------------------------------------------------------------------
# make_optimizer / make_rule: the names used across the book
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls,flags", [
    ("sgd", co.SGD, dict(momentum=0, nesterov=False)),
    ("gd", co.SGD, dict(momentum=0, nesterov=False)),
    ("momentum", co.SGD, dict(momentum=0.9, nesterov=False)),
    ("nesterov", co.SGD, dict(momentum=0.9, nesterov=True)),
    ("adagrad", co.Adagrad, dict(lr=1e-2)),
    ("rmsprop", co.RMSprop, dict(alpha=0.99)),
    ("adam", co.Adam, dict(decoupled_weight_decay=False, weight_decay=0)),
    ("adamw", co.AdamW, dict(decoupled_weight_decay=True, weight_decay=1e-2)),
])
def test_make_optimizer(name, cls, flags):
    opt = co.make_optimizer(name, _p())
    assert type(opt) is cls
    for key, value in flags.items():
        assert opt.defaults[key] == value, key
    assert co.make_optimizer(name.upper(), _p(), lr=0.3).defaults["lr"] == 0.3


def test_make_optimizer_bad_input():
    with pytest.raises(ValueError, match="name must be one of"):
        co.make_optimizer("adamax", _p())
    with pytest.raises(TypeError, match="name must be a string"):
        co.make_optimizer(co.Adam, _p())
    with pytest.raises(ValueError, match="fixes nesterov"):
        co.make_optimizer("nesterov", _p(), nesterov=False)
    with pytest.raises(ValueError, match="fixes momentum"):
        co.make_optimizer("gd", _p(), momentum=0.9)
    with pytest.raises(ValueError, match="^lr"):
        co.make_optimizer("adam", _p(), lr=-1)
    with pytest.raises(ValueError, match="unknown hyperparameter.* momentum"):
        co.make_rule("adam", momentum=0.9)
    with pytest.raises(ValueError, match="unknown hyperparameter.* foreach"):
        co.make_rule("adam", foreach=False)  # a switch of the class, not of the rule
    with pytest.raises(ValueError, match="first-order"):
        co.make_rule("lbfgs")
    with pytest.raises(ValueError, match="^betas"):
        co.make_rule("adamw", betas=(0.9, 1.0))


@pytest.mark.parametrize("name,hyper", [
    ("gd", dict(lr=0.1)), ("sgd", dict(lr=0.1, weight_decay=0.01)),
    ("momentum", dict(lr=0.05)), ("nesterov", dict(lr=0.05, momentum=0.8)),
    ("adagrad", dict(lr=0.3, lr_decay=0.01)), ("rmsprop", dict(lr=0.01, centered=True)),
    ("adam", dict(lr=0.05)), ("adam", dict(lr=0.05, bias_correction=False, amsgrad=True)),
    ("adamw", dict(lr=0.05, weight_decay=0.1)),
])
def test_make_rule_path_equals_optimizer(name, hyper):
    """A numpy path built with make_rule is the optimizer's path (here on Rosenbrock)."""
    def grad(x):
        return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2),
                         200 * (x[1] - x[0] ** 2)]) * 1e-2

    init, step = co.make_rule(name, **hyper)
    x = np.array([-1.2, 1.0])
    state = init(x)
    np_path = []
    for _ in range(50):
        step(x, grad(x), state)
        np_path.append(x.copy())

    for foreach in (False, True):
        w = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
        opt = co.make_optimizer(name, [w], foreach=foreach, **hyper)
        t_path = []
        for _ in range(50):
            w.grad = torch.from_numpy(grad(w.detach().numpy()))
            opt.step()
            t_path.append(w.detach().numpy().copy())
        np.testing.assert_allclose(t_path, np_path, rtol=1e-12, atol=1e-15)
        if not foreach:
            assert np.array_equal(t_path, np_path)  # literally the same calls


@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "fast"])
def test_adam_without_bias_correction_is_the_lecture_formula(foreach):
    """Adam(bias_correction=False) with the defaults is the lecture's
    m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, theta -= 0.001 m / (sqrt(v) + 1e-8)."""
    torch.manual_seed(0)
    target = torch.randn(5, 3, dtype=torch.float64)
    w = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    opt = co.Adam([w], bias_correction=False, foreach=foreach)
    x, m, v = torch.zeros(5, 3, dtype=torch.float64), 0.0, 0.0
    for _ in range(30):
        opt.zero_grad()
        ((w - target) ** 4).sum().backward()
        opt.step()
        g = 4 * (x - target) ** 3
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g ** 2
        x = x - 0.001 / (v.sqrt() + 1e-8) * m
    torch.testing.assert_close(w.detach(), x, rtol=1e-12, atol=1e-15)
    # its steps are (1 - 0.9) / sqrt(1 - 0.999) = 3.16 times lr at first: not Adam's
    assert (x.abs() > 30 * 0.001 * 1.5).all()


# --------------------------------------------------------------------------------------
# factory: one convention, (model, lr) -> optimizer, for every method including K-FAC
# --------------------------------------------------------------------------------------
FACTORY_CASES = [("sgd", co.SGD), ("gd", co.SGD), ("momentum", co.SGD), ("nesterov", co.SGD),
                 ("adagrad", co.Adagrad), ("rmsprop", co.RMSprop), ("adam", co.Adam),
                 ("adamw", co.AdamW), ("lbfgs", co.LBFGS), ("newton", co.Newton),
                 ("kfac", co.KFAC), ("shampoo", co.Shampoo)]


@pytest.mark.parametrize("name,cls", FACTORY_CASES)
def test_factory_builds_every_method_from_a_model(name, cls):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    make = co.factory(name)
    opt = make(model, 0.125)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.125
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    assert make.needs_model == (name == "kfac")
    assert make.elementwise == (name not in ("lbfgs", "newton", "kfac", "shampoo"))
    if name != "kfac":  # a parameter list works too, for every method but K-FAC
        assert type(make(list(model.parameters()), 0.5)) is cls
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        if name != "newton":
            loss.backward()
        return loss

    opt.step(closure)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_factory_hyperparameters_and_lr():
    make = co.factory("nesterov", lr=0.3, weight_decay=0.01)
    assert make.hyper == {"momentum": 0.9, "nesterov": True, "lr": 0.3, "weight_decay": 0.01}
    p = [torch.zeros(2, requires_grad=True)]
    assert make(p).defaults["lr"] == 0.3          # lr=None keeps the factory's
    assert make(p, 0.05).defaults["lr"] == 0.05   # the call's lr wins
    assert make(p).defaults["nesterov"] is True
    assert co.factory("adamw")(p).defaults["decoupled_weight_decay"] is True
    assert co.factory("lbfgs", history_size=7)(p).defaults["history_size"] == 7
    assert "lbfgs" in repr(co.factory("lbfgs", history_size=7))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: co.factory("adam", momentum=0.9), ValueError, "momentum"),
    (lambda: co.factory("kfac", betas=(0.9, 0.99)), ValueError, "betas"),
    (lambda: co.factory("lbfgs", history=3), ValueError, "history"),
    (lambda: co.factory("adamax"), ValueError, "name must be one of"),
    (lambda: co.factory(co.Adam), TypeError, "name must be a string"),
    (lambda: co.factory("nesterov", nesterov=False), ValueError, "fixes nesterov"),
    (lambda: co.factory("adam", lr=-1), ValueError, "^lr"),
    (lambda: co.factory("kfac", damping=0), ValueError, "^damping"),
    (lambda: co.factory("lbfgs", history_size=0), ValueError, "history_size"),
    (lambda: co.factory("kfac")([torch.zeros(1, requires_grad=True)], 0.1), TypeError,
     "model must be a torch.nn.Module"),
])
def test_factory_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
