"""curvlib._checks: the one set of argument checkers."""
import numpy as np
import pytest
import torch

from curvlib._checks import (check_choice, check_flag, check_int, check_lr, check_nonnegative,
                             check_positive, check_real, check_unit_interval)


def test_numbers_in_any_wrapping_are_checked_as_numbers():
    for value in (0.5, np.float32(0.5), np.array(0.5), torch.tensor(0.5),
                  torch.tensor([0.5]), np.array([[0.5]])):
        assert check_lr(value) == 0.5 and type(check_lr(value)) is float
    assert check_lr(0) == 0.0  # torch.optim accepts lr=0
    assert check_int("k", np.int64(3)) == 3


@pytest.mark.parametrize("call, exc, match", [
    (lambda: check_lr(-0.1), ValueError, "^lr must be non-negative"),
    (lambda: check_lr(torch.tensor(-0.1)), ValueError, "^lr must be non-negative"),
    (lambda: check_lr(float("nan")), ValueError, "^lr must be finite"),
    (lambda: check_lr(torch.tensor([0.1, 0.2])), ValueError, "^lr as an array must have one"),
    (lambda: check_lr(torch.tensor(0.1, requires_grad=True)), ValueError, "^lr must not require"),
    (lambda: check_lr("0.1"), TypeError, "^lr must be a real number"),
    (lambda: check_lr(True), TypeError, "^lr"),
    (lambda: check_lr(np.bool_(True)), TypeError, "^lr"),
    (lambda: check_lr(None), TypeError, "^lr"),
    (lambda: check_lr(0.1, "base_lr") and check_lr(-1, "base_lr"), ValueError, "^base_lr"),
    (lambda: check_real("x", np.ones(2)), ValueError, "^x as an array"),
    (lambda: check_real("x", [1.0]), TypeError, "^x must be a real number"),
    (lambda: check_real("x", np.array(["a"])), TypeError, "^x must be a real number"),
    (lambda: check_real("x", torch.tensor(True)), TypeError, "^x must be a real number"),
    (lambda: check_positive("eps", 0.0), ValueError, "^eps must be positive"),
    (lambda: check_nonnegative("eps", -1e-9), ValueError, "^eps"),
    (lambda: check_unit_interval("beta", 1.0), ValueError, r"^beta must be in \[0, 1\)"),
    (lambda: check_unit_interval("tau", 1.5, closed_right=True), ValueError, r"^tau.*\[0, 1\]"),
    (lambda: check_int("steps", 2.0), TypeError, "^steps must be an integer"),
    (lambda: check_int("steps", True), TypeError, "^steps"),
    (lambda: check_int("steps", 0, minimum=1), ValueError, "^steps must be >= 1"),
    (lambda: check_flag("centered", "False"), TypeError, "^centered must be True or False"),
    (lambda: check_flag("centered", 1), TypeError, "^centered"),
    (lambda: check_flag("centered", None), TypeError, "^centered"),
    (lambda: check_choice("method", "qr", ("lu", "cholesky")), ValueError,
     "^method must be one of 'lu', 'cholesky', got 'qr'"),
    (lambda: check_choice("fn", "none", (None, "wolfe")), ValueError, "^fn must be one of None"),
    (lambda: check_choice("depth", True, (1, 18)), ValueError, "^depth"),
    (lambda: check_choice("depth", np.array([1, 2]), (1, 18)), ValueError, "^depth"),
])
def test_bad_values_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_flags_and_choices():
    assert check_flag("f", np.bool_(False)) is False
    assert check_choice("fn", None, (None, "wolfe")) is None
    assert check_choice("depth", 50, {18: "a", 50: "b"}) == 50
