"""Tests of course_utils.datasets: the digits split is fixed, stratified and leak-free."""

import numpy as np
import pytest
import torch

from course_utils.datasets import load_digits_split


def test_shapes_dtypes_and_unpacking():
    data = load_digits_split()
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == (1347, 64) and x_test.shape == (450, 64)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    assert set(y_train.tolist()) == set(range(10)) == set(y_test.tolist())


def test_split_is_deterministic_and_seed_dependent():
    a, b, c = load_digits_split(0), load_digits_split(0), load_digits_split(1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_stratified_per_class():
    from sklearn.datasets import load_digits

    y = load_digits().target
    data = load_digits_split(test_fraction=0.25)
    counts = torch.bincount(data.y_test, minlength=10).numpy()
    expected = np.array([round(0.25 * (y == c).sum()) for c in range(10)])
    np.testing.assert_array_equal(counts, expected)


def test_standardized_with_training_statistics_only():
    raw = load_digits_split(standardize=False)
    std = load_digits_split()
    xr = raw.x_train.double().numpy()
    mean, sd = xr.mean(0), xr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    np.testing.assert_allclose(std.x_train.numpy(), (xr - mean) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.x_test.numpy(),
                               (raw.x_test.double().numpy() - mean) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.mean.numpy(), mean, rtol=1e-6)
    assert abs(float(std.x_train.double().mean())) < 1e-6
    assert abs(float(std.x_test.double().mean())) > 1e-4  # test statistics were not used
    assert std.standardized and not raw.standardized
    assert float(raw.x_train.max()) == 16.0


def test_bad_fraction():
    with pytest.raises(ValueError):
        load_digits_split(test_fraction=1.0)
