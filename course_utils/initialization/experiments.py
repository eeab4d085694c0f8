"""Experiments of ``notebooks/02_initialization``: signal propagation through deep stacks and
the mean-field theory drawn over it, and the first-loss check of a classifier's output layer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.datasets import DigitsSplit
from course_utils.initialization.schemes import (
    ACTIVATIONS,
    INITS,
    init_named_,
    init_weight_std,
)
from course_utils.nets import MLP, activation_module, mlp, single_thread


def _check_names(activation: str, init: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use one of {ACTIVATIONS}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")


def build_mlp(depth: int, width: int, activation: str, init: str,
              generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
              gain: float = 1.0, uniform: bool | None = None) -> MLP:
    """``depth`` blocks of ``Linear(width, width, bias=False)`` followed by the activation, no
    head (a :func:`course_utils.nets.mlp`).

    Weights are drawn with the named init (see :func:`init_named_` for ``gain`` and
    ``uniform``), layer by layer from the input side.
    Taught in notebooks/02_initialization.
    """
    _check_names(activation, init)
    model = mlp(width, None, depth=depth, width=width, activation=activation, init=None,
                linear_bias=False, dtype=dtype)
    for linear in model.linears:
        init_named_(linear.weight, init, generator, gain=gain, uniform=uniform)
    return model


def make_small_net(fill: float | None = None, seed: int = 0) -> nn.Sequential:
    """Linear(4, 8), ReLU, Linear(8, 8), ReLU, Linear(8, 1) with PyTorch's default init seeded
    with ``seed`` (a :func:`course_utils.nets.mlp`); with ``fill``, every weight and bias is
    set to that constant instead. Used in ``notebooks/02_initialization``.
    """
    net = mlp(4, 1, depth=2, width=8, activation="relu", init=None, seed=seed).as_sequential()
    if fill is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(fill)
    return net


def activation_stds(depth: int, width: int, activation: str, init: str,
                    n_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Push standardized data through ``depth`` linear+activation layers; return each std.

    The data are ``n_samples`` vectors of ``width`` independent N(0, 1) features. Layer ``l``
    computes ``a_l = act(a_{l-1} @ W_l.T)`` with a ``(width, width)`` weight and no bias.
    Returns a float array of shape ``(depth,)`` whose entry ``l - 1`` is the standard deviation
    of all ``n_samples * width`` entries of ``a_l``. ``activation`` is one of
    :data:`ACTIVATIONS`; ``init`` one of :data:`INITS`. Everything random comes from one
    ``torch.Generator`` seeded with ``seed``.

    Taught in notebooks/02_initialization.
    """
    _check_names(activation, init)
    if depth < 1 or width < 1 or n_samples < 2:
        raise ValueError("depth and width must be positive and n_samples at least 2")
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n_samples, width, generator=generator, dtype=torch.float64)
    act = activation_module(activation)
    stds = np.empty(depth)
    with torch.no_grad():
        for layer in range(depth):
            w = init_named_(torch.empty(width, width, dtype=torch.float64), init, generator)
            a = act(a @ w.T)
            stds[layer] = a.std().item()
    return stds


def layer_statistics(depth: int, width: int, activation: str, init: str,
                     n_samples: int = 512, seed: int = 0, keep: int = 4000,
                     dtype: torch.dtype = torch.float32, gain: float = 1.0,
                     uniform: bool | None = None) -> dict:
    """One forward and backward pass through :func:`build_mlp`, recorded layer by layer.

    ``model(x, keep=True)`` keeps every layer's output ``a_l`` and asks autograd to keep its
    gradient. The loss is ``sum(a_L * r)`` with ``r`` standard normal, so the
    gradient arriving at the last layer has standard deviation 1. Returns a dict with
    ``act_std`` and ``grad_std`` (arrays of shape ``(depth,)``, entry ``l - 1`` for layer
    ``l``: std of ``a_l`` and of ``dL/da_l``), and ``act_samples`` / ``grad_samples`` (a list
    per layer of up to ``keep`` values, for histograms). ``gain`` and ``uniform`` change the
    weights' scale and distribution as in :func:`init_named_`.

    Taught in notebooks/02_initialization.
    """
    generator = torch.Generator().manual_seed(seed)
    model = build_mlp(depth, width, activation, init, generator, dtype, gain, uniform)
    x = torch.randn(n_samples, width, generator=generator, dtype=dtype)
    out = model(x, keep=True)  # keeps every layer's output a_l and, after backward, dL/da_l
    outputs = model.activations
    r = torch.randn(out.shape, generator=generator, dtype=dtype)
    (out * r).sum().backward()
    pick = torch.randperm(n_samples * width, generator=generator)[:keep]
    act_std, grad_std, act_samples, grad_samples = [], [], [], []
    for a in outputs:
        g = a.grad if a.grad is not None else torch.zeros_like(a)
        act_std.append(a.detach().double().std().item())
        grad_std.append(g.double().std().item())
        act_samples.append(a.detach().reshape(-1)[pick].double().numpy())
        grad_samples.append(g.reshape(-1)[pick].double().numpy())
    return {
        "activation": activation,
        "init": init,
        "width": width,
        "gain": gain,
        "act_std": np.array(act_std),
        "grad_std": np.array(grad_std),
        "act_samples": act_samples,
        "grad_samples": grad_samples,
    }


# ------------------------------------------------------------------------ mean-field theory
# E[g(z)] for z ~ N(0, q) is the integral of g(sqrt(q) t) against the standard normal density
# phi(t). Every activation of ACTIVATIONS is smooth except at 0 (the kink of ReLU, leaky ReLU
# and SELU, the jump in ELU's second derivative), so the integral is split there: on each half,
# [-12, 0] and [0, 12], the integrand is smooth and 128 Gauss-Legendre nodes give it to about
# 1e-14 (tests/test_initialization.py checks the closed forms and a high-resolution integral).
# The mass beyond |t| = 12 is below 1e-32. No node sits on 0, so the slope at the kink, which
# has probability 0, never enters.
_HALF_NODES, _HALF_WEIGHTS = np.polynomial.legendre.leggauss(128)
_T_MAX = 12.0
_T = (_HALF_NODES + 1.0) * (_T_MAX / 2)
_T = np.concatenate([-_T[::-1], _T])
_W = np.concatenate([_HALF_WEIGHTS[::-1], _HALF_WEIGHTS]) * (_T_MAX / 2)
_W = _W * np.exp(-0.5 * _T**2) / math.sqrt(2 * math.pi)


def gaussian_moments(activation: str, q: float) -> tuple[float, float, float]:
    """For ``z ~ N(0, q)`` return ``(E[f(z)], E[f(z)**2], E[f'(z)**2])``, ``f`` the activation.

    Gauss-Legendre quadrature on each side of 0, where the ReLU family has its kink: accurate
    to about 1e-14 relative for every activation of :data:`ACTIVATIONS` (E[relu(z)**2] is
    ``q / 2`` to rounding). ``f'`` is what autograd gives. An infinite or NaN ``q`` (a signal
    that has already blown up) gives ``(nan, inf, nan)``.
    Taught in notebooks/02_initialization; drawn in the initialization lab.
    """
    if not math.isfinite(q):
        return float("nan"), float("inf"), float("nan")
    z = torch.tensor(math.sqrt(max(q, 0.0)) * _T, dtype=torch.float64, requires_grad=True)
    y = activation_module(activation)(z)
    (slope,) = torch.autograd.grad(y.sum(), z)
    f, slope = y.detach().numpy(), slope.numpy()
    # elementwise sums rather than a BLAS dot product: no thread pool to wake up
    return (float(np.sum(_W * f)), float(np.sum(_W * f * f)),
            float(np.sum(_W * slope * slope)))


def predicted_stds(depth: int, width: int, activation: str, init: str,
                   gain: float = 1.0) -> dict:
    """What mean-field theory predicts for :func:`layer_statistics` (square layers, no bias).

    Forward: ``q_1 = n Var(w)`` and ``q_{l+1} = n Var(w) E[f(z_l)**2]`` with
    ``z_l ~ N(0, q_l)``; the activation std is ``sqrt(E[f**2] - E[f]**2)``. Backward: the
    gradient variance ``v_L = 1`` and ``v_{l-1} = n Var(w) E[f'(z_l)**2] v_l``. Returns a dict
    with ``act_std``, ``grad_std`` and ``q`` (the pre-activation variances), each of shape
    ``(depth,)``. ``gain`` multiplies the weights' standard deviation.

    Taught in notebooks/02_initialization.
    """
    _check_names(activation, init)
    scale = width * (gain * init_weight_std(init, width, width)) ** 2
    q = scale * 1.0  # the input has E[x**2] = 1
    qs, act_std, slope2 = [], [], []
    for _ in range(depth):
        mean, second, s2 = gaussian_moments(activation, q)
        qs.append(q)
        act_std.append(math.sqrt(max(second - mean**2, 0.0)))
        slope2.append(s2)
        q = scale * second
    grad_var = [1.0] * depth
    for layer in range(depth - 1, 0, -1):
        grad_var[layer - 1] = scale * slope2[layer] * grad_var[layer]
    return {"q": np.array(qs), "act_std": np.array(act_std),
            "grad_std": np.sqrt(np.array(grad_var))}


# ------------------------------------------------------------------------ the first loss
def digits_classifier(head_init: str = "he", head_scale: float = 1.0, *, depth: int = 2,
                      width: int = 128, seed: int = 0) -> MLP:
    """A classifier for the digits (64 inputs, 10 classes): ``depth`` ReLU layers of ``width``
    units with He weights and zero biases, then the output layer (``head``).

    The head's weight is drawn with ``head_init`` (a name of :data:`course_utils.nets.INITS`:
    ``"he"`` like the hidden layers, ``"normal"`` for N(0, 1), ``"zeros"``) and multiplied by
    ``head_scale``; its bias is 0. A :func:`course_utils.nets.mlp` seeded with ``seed``.
    Used in notebooks/02_initialization.
    """
    net = mlp(64, 10, depth=depth, width=width, activation="relu", init="he",
              head_init=head_init, head_bias=0.0, seed=seed)
    with torch.no_grad():
        net.head.weight.mul_(head_scale)
    return net


def train_first_steps(net: nn.Module, data: DigitsSplit, *, steps: int = 100,
                      lr: float = 1e-3) -> dict:
    """Full-batch Adam (learning rate ``lr``) on the cross-entropy of ``data``'s training split.

    Returns a dict with ``loss`` (a float array of ``steps + 1`` training losses: entry ``t``
    is the loss after ``t`` steps, so entry 0 is the first loss) and, after the last step,
    ``test_loss`` and ``test_accuracy``. Used in notebooks/02_initialization.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    with single_thread():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(data.x_train), data.y_train)
            losses.append(loss.item())
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses.append(F.cross_entropy(net(data.x_train), data.y_train).item())
            logits = net(data.x_test)
            test_loss = F.cross_entropy(logits, data.y_test).item()
            test_accuracy = (logits.argmax(1) == data.y_test).double().mean().item()
    return {"loss": np.array(losses), "test_loss": test_loss, "test_accuracy": test_accuracy}
