"""curvlib.data: the bundled data sets, split, standardised and seeded."""
import numpy as np
import pytest
import torch

from curvlib import data as D


@pytest.fixture(scope="module")
def digits():
    return D.digits()


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
