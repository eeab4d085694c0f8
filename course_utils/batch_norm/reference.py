"""Batch normalization from scratch for ``notebooks/03_batch_norm``: the references of its
exercises (NumPy functions on ``(N, D)`` inputs, statistics per feature over axis 0, and a
``torch.nn.Module`` matching ``torch.nn.BatchNorm1d``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


# --------------------------------------------------------------------------- input features
def fit_standardizer(X_train):
    """Per-feature mean and standard deviation of the training set ``X_train`` (N, D).

    The standard deviation is the population one (``ddof=0``). A feature whose values are all
    equal gets std 1 instead of 0, so that :func:`standardize` never divides by zero (its
    ``np.std`` can come out as 1e-17 rather than 0 because of rounding, so the test is on the
    values, not on the std). Taught in ``notebooks/03_batch_norm``.
    """
    X = np.asarray(X_train, dtype=float)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    constant = np.ptp(X, axis=0) == 0
    std = np.where(constant, 1.0, std)
    return mean, std


def standardize(X, mean, std):
    """``(X - mean) / std`` with statistics fitted on the training set.

    Taught in ``notebooks/03_batch_norm``.
    """
    return (np.asarray(X, dtype=float) - mean) / std


# --------------------------------------------------------------------------- batch norm, NumPy
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm of ``x`` (N, D): returns ``(out, cache)``.

    ``out = gamma * (x - mu) / sqrt(var + eps) + beta`` with the batch mean ``mu`` and the
    biased batch variance ``var`` (divide by N). ``cache`` is the tuple
    ``(x, x_hat, mu, var, gamma, eps)`` that :func:`batchnorm_backward` expects (the notebook
    fixes this layout so that its tests can grade the backward pass on its own).
    Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    mu = x.mean(axis=0)
    var = x.var(axis=0)  # biased: divide by N
    x_hat = (x - mu) / np.sqrt(var + eps)
    out = gamma * x_hat + beta
    cache = (x, x_hat, mu, var, gamma, eps)
    return out, cache


def batchnorm_backward(dout, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of batch norm given the upstream gradient ``dout``.

    ``cache`` is ``(x, x_hat, mu, var, gamma, eps)`` from :func:`batchnorm_forward`. Uses the
    compact form ``dx = gamma * inv_std / N * (N dout - sum(dout) - x_hat * sum(dout * x_hat))``
    with ``inv_std = 1 / sqrt(var + eps)``, sums over the batch axis. Taught in
    ``notebooks/03_batch_norm``.
    """
    _, x_hat, _, var, gamma, eps = cache
    dout = np.asarray(dout, dtype=float)
    n = dout.shape[0]
    inv_std = 1.0 / np.sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta



def batchnorm_backward_staged(dout, cache):
    """The backward pass of batch norm node by node through its computational graph.

    ``cache`` is ``(x, x_hat, mu, var, gamma, eps)`` from :func:`batchnorm_forward`. The graph is
    ``mu = mean(x)``, ``xc = x - mu``, ``var = mean(xc**2)``, ``x_hat = xc / sqrt(var + eps)``,
    ``out = gamma * x_hat + beta``. Returns a dict of the gradients of the loss with respect to
    ``beta``, ``gamma``, ``x_hat``, ``var``, ``mu`` (total, through ``xc`` and ``var``) and ``x``:
    keys ``"dbeta"``, ``"dgamma"``, ``"dx_hat"``, ``"dvar"``, ``"dmu"``, ``"dx"``. Taught in
    ``notebooks/03_batch_norm``.
    """
    x, x_hat, mu, var, gamma, eps = cache
    dout = np.asarray(dout, dtype=float)
    n = dout.shape[0]
    xc = x - mu
    inv_std = 1.0 / np.sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * inv_std**3
    dmu = -(dx_hat * inv_std).sum(axis=0) + dvar * (-2.0 / n) * xc.sum(axis=0)
    dx = dx_hat * inv_std + dvar * 2.0 * xc / n + dmu / n
    return {"dbeta": dbeta, "dgamma": dgamma, "dx_hat": dx_hat, "dvar": dvar, "dmu": dmu,
            "dx": dx}

def update_running_stats(running_mean, running_var, x, momentum=0.1):
    """New running ``(mean, var)`` after seeing batch ``x``, with PyTorch's convention.

    ``new = (1 - momentum) * old + momentum * batch``; the batch variance is the unbiased one
    (divide by N - 1). Inputs are not modified. Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    batch_mean = x.mean(axis=0)
    batch_var = x.var(axis=0, ddof=1)
    new_mean = (1 - momentum) * np.asarray(running_mean, dtype=float) + momentum * batch_mean
    new_var = (1 - momentum) * np.asarray(running_var, dtype=float) + momentum * batch_var
    return new_mean, new_var


def batchnorm_eval(x, running_mean, running_var, gamma, beta, eps=1e-5):
    """Eval-mode batch norm: normalize with the running statistics, not the batch's.

    Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta


# --------------------------------------------------------------------------- gradient checks
def numerical_gradient(f: Callable[[np.ndarray], float], x, h=1e-5):
    """Centred finite differences ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every entry.

    ``x`` is restored after each probe. Taught in ``notebooks/03_batch_norm``.
    """
    x = np.array(x, dtype=float)  # a private copy, so the caller's array is never touched
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a, b):
    """``||a - b|| / (||a|| + ||b||)`` with L2 norms over all entries; 0.0 when both are zero.

    Taught in ``notebooks/03_batch_norm``.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(a - b) / denom)


# --------------------------------------------------------------------------- torch module
class BatchNorm1d(nn.Module):
    """Batch norm for ``(N, C)`` input, equal to ``torch.nn.BatchNorm1d(C, eps, momentum)``.

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers ``running_mean``
    (zeros), ``running_var`` (ones) and ``num_batches_tracked``. In training mode it normalizes
    with the batch mean and biased variance and updates the running statistics with the
    unbiased variance; in eval mode it uses the running statistics. Taught in
    ``notebooks/03_batch_norm``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            n = x.shape[0]
            with torch.no_grad():
                unbiased = var * n / (n - 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight * x_hat + self.bias


def fold_batchnorm(linear: nn.Linear, bn: nn.Module) -> nn.Linear:
    """A new ``nn.Linear`` equal, in eval mode, to ``linear`` followed by ``bn``.

    With ``s = bn.weight / sqrt(bn.running_var + bn.eps)``: ``W' = s[:, None] * W`` and
    ``b' = s * (b - running_mean) + bn.bias`` (``b = 0`` when ``linear`` has no bias).
    Neither input is modified. Taught in ``notebooks/03_batch_norm``.
    """
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = linear.bias if linear.bias is not None else torch.zeros_like(bn.running_mean)
        folded = nn.Linear(linear.in_features, linear.out_features, bias=True)
        folded = folded.to(dtype=linear.weight.dtype)
        folded.weight.copy_(linear.weight * scale[:, None])
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return folded
