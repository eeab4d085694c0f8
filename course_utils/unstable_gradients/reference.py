"""The reference answers of ``notebooks/00_unstable_gradients``' two exercises,
:func:`chain_grad_magnitudes` and :func:`layer_grad_norms`, and the independent oracle the
tests compare the first with, :func:`chain_grad_magnitudes_autograd` (``torch.autograd``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

_CHAIN_ACTIVATIONS = ("sigmoid", "tanh", "relu")


def _act_and_derivative(z: np.ndarray | float, activation: str) -> tuple[float, float]:
    """act(z) and act'(z) for one scalar, overflow-free (relu'(0) = 0 as in PyTorch)."""
    z = float(z)
    if activation == "sigmoid":
        if z >= 0:
            a = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            a = e / (1.0 + e)
        return a, a * (1.0 - a)
    if activation == "tanh":
        a = math.tanh(z)
        return a, 1.0 - a * a
    if activation == "relu":
        return (z, 1.0) if z > 0 else (0.0, 0.0)
    raise ValueError(f"activation must be one of {_CHAIN_ACTIVATIONS}, got {activation!r}")


def chain_grad_magnitudes(weights, x, activation: str = "sigmoid") -> np.ndarray:
    """``|d a_L / d a_l|`` for l = 0..L-1 in the scalar chain ``a_l = act(w_l * a_{l-1})``.

    ``weights`` holds ``w_1..w_L``; ``a_0 = x``. The chain rule gives
    ``d a_L / d a_l = prod_{k=l+1}^{L} act'(z_k) * w_k``, accumulated here from the output
    side. ``activation`` is ``"sigmoid"``, ``"tanh"`` or ``"relu"`` (with ``relu'(0) = 0``, the
    value PyTorch uses); anything else raises ``ValueError``. Returns a float64 array of
    length L, input side first. Reference answer for ``notebooks/00_unstable_gradients``.
    """
    if activation not in _CHAIN_ACTIVATIONS:
        raise ValueError(f"activation must be one of {_CHAIN_ACTIVATIONS}, got {activation!r}")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    a = float(np.asarray(x, dtype=np.float64))
    factors = np.empty(w.size)
    for k in range(w.size):  # forward pass: factor k is act'(z_{k+1}) * w_{k+1}
        a, d = _act_and_derivative(w[k] * a, activation)
        factors[k] = d * w[k]
    out = np.empty(w.size)
    g = 1.0
    for l in range(w.size - 1, -1, -1):  # backward pass: d a_L / d a_l = g_{l+1} * factor
        g = g * factors[l]
        out[l] = abs(g)
    return out


def chain_grad_magnitudes_autograd(weights, x, activation: str = "sigmoid") -> np.ndarray:
    """The same quantity as :func:`chain_grad_magnitudes`, computed by ``torch.autograd``.

    Runs in float64. The oracle for the notebook's tests (``notebooks/00_unstable_gradients``).
    """
    acts: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
    if activation not in acts:
        raise ValueError(f"activation must be one of {_CHAIN_ACTIVATIONS}, got {activation!r}")
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64).reshape(-1))
    a = torch.tensor(float(np.asarray(x, dtype=np.float64)), dtype=torch.float64,
                     requires_grad=True)
    if w.numel() == 0:
        return np.zeros(0)
    chain = [a]
    for k in range(w.numel()):
        chain.append(acts[activation](w[k] * chain[-1]))
    grads = torch.autograd.grad(chain[-1], chain[:-1], allow_unused=True)
    return np.array([0.0 if g is None else abs(float(g)) for g in grads])


def layer_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[float]:
    """L2 norm of each ``nn.Linear`` weight gradient after one forward/backward pass.

    Order is module order (``model.modules()``), i.e. input side first for a feed-forward
    stack. Only ``weight`` gradients count (no biases, no other modules' parameters). The
    model's ``.grad`` fields are left exactly as they were found (None stays None, existing
    values, zero or not, are restored), and the returned norms are those of this pass's
    gradient alone, not accumulated onto what was there. Reference answer for
    ``notebooks/00_unstable_gradients``.
    """
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        loss = loss_fn(model(x), y)
        loss.backward()
        norms = []
        for m in model.modules():
            if isinstance(m, nn.Linear):
                g = m.weight.grad
                norms.append(0.0 if g is None else float(g.detach().to(torch.float64).norm()))
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    return norms
