"""Small real datasets for the course, read from installed packages (nothing is downloaded).

:func:`load_digits_split` wraps scikit-learn's bundled 8x8 handwritten digits (1797 images,
64 pixel features with values 0..16, 10 classes; the file ships inside the ``sklearn``
package). It returns float32 torch tensors with a fixed, stratified train/test split and, by
default, features standardized with statistics of the training split only.

Taught in ``notebooks/05_in_practice`` (input standardization itself: ``03_batch_norm``).
Importing this module changes no global state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass(frozen=True)
class DigitsSplit:
    """Train and test tensors of the digits dataset.

    ``x_*`` are float32 of shape (N, 64), ``y_*`` int64 class labels of shape (N,).
    ``mean`` and ``std`` (float32, shape (64,)) are the training split's per-feature statistics
    (population std; a constant feature gets std 1). When the split was standardized,
    ``x = (raw - mean) / std`` for both splits.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    standardized: bool

    def __iter__(self):
        """Unpack as ``x_train, y_train, x_test, y_test``."""
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))


def load_digits_split(seed: int = 0, test_fraction: float = 0.25,
                      standardize: bool = True) -> DigitsSplit:
    """Scikit-learn's digits as a fixed, stratified train/test split of float32 tensors.

    Parameters
    ----------
    seed:
        Seeds the shuffle that decides which images go to the test split (the same seed always
        gives the same split, on any machine).
    test_fraction:
        Fraction of each class held out for testing (rounded per class), in (0, 1).
    standardize:
        When true (the default), subtract the training split's per-feature mean and divide by
        its per-feature std (constant features: divide by 1), for both splits. Test data never
        contributes to these statistics. When false, the raw pixel values 0..16 are returned.

    Returns a :class:`DigitsSplit` (unpacks as ``x_train, y_train, x_test, y_test``).
    Taught in ``notebooks/05_in_practice``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits  # reads a file inside the installed package

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)

    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        test_idx.append(idx[:n_test])
    test_mask = np.zeros(y.size, dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    # Fixed order inside each split: shuffled by the same generator, so training batches drawn
    # by index are not sorted by class.
    train_idx = np.flatnonzero(~test_mask)
    train_idx = train_idx[rng.permutation(train_idx.size)]
    test_idx_all = np.flatnonzero(test_mask)

    x_train, x_test = x[train_idx], x[test_idx_all]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    if standardize:
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std

    def t(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    return DigitsSplit(
        x_train=t(x_train, torch.float32),
        y_train=t(y[train_idx], torch.int64),
        x_test=t(x_test, torch.float32),
        y_test=t(y[test_idx_all], torch.int64),
        mean=t(mean, torch.float32),
        std=t(std, torch.float32),
        standardized=bool(standardize),
    )
