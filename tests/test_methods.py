"""curvlib.methods: one table of methods, its defaults read from the rules, one set of checks."""
import inspect

import numpy as np
import pytest
import torch

import curvlib.optim as co
from curvlib import memory, methods, rules
from curvlib.methods import METHODS


def constructor_defaults(cls):
    return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
            if n not in ("self", "params", "model")}


def test_table_names():
    assert list(METHODS) == ["sgd", "gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                             "adamw", "lbfgs", "newton", "kfac", "shampoo"]
    assert [n for n, m in METHODS.items() if m.elementwise] == list(METHODS)[:8]
    assert [n for n, m in METHODS.items() if m.needs_model] == ["kfac"]


def test_defaults_are_read_from_the_rule_signatures():
    sig = inspect.signature(rules.adam).parameters
    h = METHODS["adam"].hyperparameters()
    assert h["lr"] == sig["lr"].default == 1e-3 and h["betas"] == (0.9, 0.999)
    assert h["amsgrad"] is inspect.signature(rules.init_adam).parameters["amsgrad"].default
    assert METHODS["adamw"].hyperparameters()["weight_decay"] == 1e-2
    assert METHODS["momentum"].hyperparameters()["momentum"] == 0.9  # the name changes it
    assert METHODS["nesterov"].hyperparameters()["nesterov"] is True  # the name fixes it
    assert METHODS["gd"].hyperparameters()["momentum"] == 0.0
    assert METHODS["adagrad"].hyperparameters()["initial_accumulator_value"] == 0.0  # from init
    lbfgs = METHODS["lbfgs"].hyperparameters()
    assert lbfgs == {"lr": 1.0, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-7,
                     "tolerance_change": 1e-9, "history_size": 100, "line_search_fn": None}


@pytest.mark.parametrize("name", list(METHODS))
def test_the_classes_take_the_table_and_nothing_else(name):
    """Every optimizer class's keywords are the method's hyperparameters plus its options,
    with the table's defaults (which the classes read; here nothing can drift)."""
    method = METHODS[name]
    cls = getattr(co, method.optimizer)
    ours = constructor_defaults(cls)
    table = method.hyperparameters()
    assert set(ours) <= set(table) | set(method.options) | {"decoupled_weight_decay"}
    assert set(table) - set(method.fixed) - {"decoupled_weight_decay"} <= set(ours)
    for key, value in table.items():
        if key in ours and key not in method.defaults and key not in method.fixed:
            assert ours[key] == value, key


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.elementwise])
def test_make_rule_is_the_rule_with_the_table_defaults(name):
    method = METHODS[name]
    init, step = methods.make_rule(name, lr=0.05)
    x, y = np.array([1.0, -2.0, 0.5]), np.array([1.0, -2.0, 0.5])
    h = {**method.hyperparameters(), "lr": 0.05}
    s1 = init(x)
    s2 = method.init(y, **h)
    for _ in range(5):
        step(x, 2 * x + 1, s1)
        method.step(y, 2 * y + 1, s2, **{k: v for k, v in h.items()
                                         if k in inspect.signature(method.step).parameters})
    assert np.array_equal(x, y)


def test_resolve_fills_checks_and_rejects():
    h = methods.resolve("nesterov", {"lr": 0.1})
    assert h == {"momentum": 0.9, "lr": 0.1, "dampening": 0.0, "nesterov": True,
                 "weight_decay": 0.0, "maximize": False}
    assert methods.resolve("adam", {"betas": [0.8, 0.9]})["betas"] == (0.8, 0.9)
    assert methods.resolve("adam", {"lr": np.float64(0.5)})["lr"] == 0.5
    assert methods.resolve("adam", {"lr": torch.tensor(0.5)})["lr"] == 0.5
    assert methods.resolve("ADAM", {})["lr"] == 1e-3
    assert methods.resolve("adam", {"foreach": True}, options=("foreach",))["foreach"] is True


@pytest.mark.parametrize("name, hyper, exc, match", [
    ("adam", {"momentum": 0.9}, ValueError, "unknown hyperparameter.* momentum .*'adam'"),
    ("adam", {"foreach": True}, ValueError, "unknown hyperparameter.* foreach"),
    ("lbfgs", {"history": 3}, ValueError, "unknown hyperparameter.* history"),
    ("nesterov", {"nesterov": False}, ValueError, "fixes nesterov"),
    ("gd", {"momentum": 0.5}, ValueError, "fixes momentum"),
    ("momentum", {"momentum": 0.0}, ValueError, "^momentum must be positive"),
    ("sgd", {"nesterov": True}, ValueError, "^nesterov"),
    ("adam", {"lr": -1.0}, ValueError, "^lr must be non-negative"),
    ("adam", {"lr": "0.1"}, TypeError, "^lr"),
    ("adam", {"betas": (0.9, 1.0)}, ValueError, r"^betas\[1\]"),
    ("adam", {"amsgrad": "yes"}, TypeError, "^amsgrad must be True or False"),
    ("rmsprop", {"centered": 1}, TypeError, "^centered"),
    ("lbfgs", {"line_search_fn": "backtracking"}, ValueError, "^line_search_fn"),
    ("newton", {"line_search_fn": "strong_wolfe"}, ValueError, "^line_search_fn"),
    ("newton", {"adaptive_damping": True}, ValueError, "^damping must be positive"),
    ("newton", {"adaptive_damping": True, "damping": 1.0, "line_search_fn": "backtracking"},
     ValueError, "^line_search_fn must be None"),
    ("lbfgs", {"history_size": 0}, ValueError, "^history_size"),
    ("lbfgs", {"max_eval": 2.5}, TypeError, "^max_eval"),
    ("adamax", {}, ValueError, "^name must be one of"),
])
def test_resolve_bad_input(name, hyper, exc, match):
    with pytest.raises(exc, match=match):
        methods.resolve(name, hyper)


def test_get_bad_input():
    with pytest.raises(TypeError, match="^method must be a string"):
        methods.get(3, "method")
    with pytest.raises(ValueError, match="first-order"):
        methods.make_rule("newton")


def test_memory_reads_the_same_table():
    """optimizer_state_bytes takes a method's hyperparameters and defaults, nothing else."""
    n = 1000
    assert memory.optimizer_state_bytes("momentum", n) == 4 * n  # momentum=0.9 by default
    assert memory.optimizer_state_bytes("gd", n) == 0
    with pytest.raises(ValueError, match="unknown hyperparameter.* history_size"):
        memory.optimizer_state_bytes("adam", n, history_size=3)
    with pytest.raises(ValueError, match="fixes nesterov"):
        memory.optimizer_state_bytes("nesterov", n, nesterov=False)
