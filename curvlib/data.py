"""Small real data sets that ship with scikit-learn: nothing is downloaded.

* :func:`digits` -- 1,797 handwritten digits, 8x8 grey images (64 features), 10 classes
  (Alpaydin & Kaynak, UCI "Optical Recognition of Handwritten Digits", 1998).
* :func:`breast_cancer` -- 569 tumours, 30 features, 2 classes (Wolberg, Street & Mangasarian,
  UCI "Breast Cancer Wisconsin (Diagnostic)", 1995): the book's logistic-regression problem.

Both return a :class:`Split` ``(X_train, y_train, X_test, y_test)``: a stratified split fixed
by ``seed``, features standardised with the *training* mean and standard deviation, labels as
integers (``int64``). The same arguments give the same arrays on every machine.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._checks import check_flag, check_int, check_real

__all__ = ["Split", "digits", "breast_cancer", "DATASETS"]


class Split(NamedTuple):
    """A train/test split; unpacks as ``X_train, y_train, X_test, y_test``."""
    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any

    @property
    def n_features(self):
        return int(self.X_train.shape[1])

    @property
    def n_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def train(self):
        """``(X_train, y_train)``, the form :func:`curvlib.train.train` takes."""
        return self.X_train, self.y_train

    @property
    def test(self):
        return self.X_test, self.y_test


_FLOAT_NAMES = {"float32": np.float32, "float64": np.float64}


def _numpy_float(dtype):
    name = str(dtype).lower().removeprefix("torch.").removeprefix("<class 'numpy.").rstrip("'>")
    name = {"float": "float32", "double": "float64"}.get(name, name)
    if name not in _FLOAT_NAMES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return _FLOAT_NAMES[name]


def _split(X, y, *, test_size, seed, standardize, as_torch, dtype):
    from sklearn.model_selection import train_test_split

    test_size = check_real("test_size", test_size)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    seed = check_int("seed", seed, minimum=0)
    standardize = check_flag("standardize", standardize)
    as_torch = check_flag("as_torch", as_torch)
    np_dtype = _numpy_float(dtype)
    X_tr, X_te, y_tr, y_te = train_test_split(X.astype(np.float64), y.astype(np.int64),
                                              test_size=test_size, random_state=seed, stratify=y)
    if standardize:
        mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
        std[std == 0] = 1.0  # constant features (corner pixels of the digits) stay 0
        X_tr, X_te = (X_tr - mean) / std, (X_te - mean) / std
    X_tr, X_te = X_tr.astype(np_dtype), X_te.astype(np_dtype)
    if as_torch:
        import torch
        X_tr, X_te = torch.from_numpy(X_tr), torch.from_numpy(X_te)
        y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    return Split(X_tr, y_tr, X_te, y_te)


def digits(*, test_size=0.25, seed=0, standardize=True, as_torch=True, dtype="float32"):
    """scikit-learn's digits (1,797 x 64, 10 classes) as a stratified :class:`Split`.

    ``dtype`` (``"float32"``, ``"float64"`` or the torch/numpy dtype) applies to the features;
    labels are ``int64``. ``as_torch=False`` returns numpy arrays.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split(d.data, d.target, test_size=test_size, seed=seed, standardize=standardize,
                  as_torch=as_torch, dtype=dtype)


def breast_cancer(*, test_size=0.25, seed=0, standardize=True, as_torch=True, dtype="float32"):
    """scikit-learn's breast-cancer set (569 x 30; 1 = benign, 0 = malignant) as a :class:`Split`.

    For a one-logit model with ``binary_cross_entropy_with_logits`` use ``y.float()``.
    """
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _split(d.data, d.target, test_size=test_size, seed=seed, standardize=standardize,
                  as_torch=as_torch, dtype=dtype)


#: name -> loader
DATASETS = {"digits": digits, "breast_cancer": breast_cancer}
