"""The deep networks, the toy data set and the short runs that
``notebooks/00_unstable_gradients`` uses to show vanishing and exploding gradients
(:func:`make_mlp`, :func:`make_rings`, :func:`train_sgd`, :class:`ResidualBlock`), what depth
buys (:func:`tent_network`, :func:`count_linear_pieces`) and where a mis-scaled network
explodes (:func:`backward_profiles`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import grad_to_weight_ratio
from course_utils.nets import activation_module, init_linear_, mlp


def make_rings(n: int = 512, seed: int = 0, noise: float = 0.15
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric rings in 2-D (radius 1: class 0, radius 2: class 1), standardized.

    Returns ``x`` of shape (n, 2) and float labels ``y`` of shape (n, 1). A one-hidden-layer
    network separates them easily, so any failure to learn is the depth's fault.
    Used in ``notebooks/00_unstable_gradients``.
    """
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, size=n)
    radius = 1.0 + label + noise * rng.standard_normal(n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return (torch.tensor(x, dtype=torch.float32),
            torch.tensor(label[:, None], dtype=torch.float32))


class ResidualBlock(nn.Module):
    """``a + act(Linear(a))``: the identity path carries the gradient past the block.

    Used in ``notebooks/00_unstable_gradients`` (taught in ``05_in_practice``); the networks of
    :func:`make_mlp` with ``residual=True`` compute the same thing.
    """

    def __init__(self, width: int, activation: str = "relu"):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.act = activation_module(activation)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a + self.act(self.linear(a))


def make_mlp(depth: int, width: int, activation: str = "sigmoid", *, in_features: int = 2,
             out_features: int = 1, init: str | float | None = None, batch_norm: bool = False,
             residual: bool = False, seed: int = 0) -> nn.Module:
    """A :func:`course_utils.nets.mlp` of ``depth`` hidden layers of ``width`` units, then a
    Linear head (one flat ``nn.Sequential`` unless ``residual``).

    ``init``: ``None`` keeps PyTorch's default; ``"he"`` draws N(0, 2/fan_in); ``"xavier"``
    N(0, 2/(fan_in + fan_out)); a number ``s`` draws N(0, s^2/fan_in) (He with gain ``s``, so
    ``s = sqrt(2)`` is He). Biases start at 0 whenever ``init`` is given. ``batch_norm`` inserts
    BatchNorm1d before each hidden activation; ``residual`` makes hidden layers 2..depth
    residual. Every layer first gets PyTorch's default init from
    ``torch.Generator().manual_seed(seed)``, then ``init`` from the same generator, so the
    global RNG is untouched. Used in ``notebooks/00_unstable_gradients``.
    """
    if isinstance(init, int | float) and not isinstance(init, bool):
        scheme, gain = "he", float(init)
    elif init in (None, "he", "xavier"):
        scheme, gain = init, None
    else:
        raise ValueError(f"unknown init {init!r}: use None, 'he', 'xavier' or a number")
    gen = torch.Generator().manual_seed(seed)
    model = mlp(in_features, out_features, depth=depth, width=width, activation=activation,
                init=None, batch_norm=batch_norm, residual=residual, seed=seed)
    for lin in model.linears:
        init_linear_(lin, "pytorch_default", generator=gen)
        if scheme is not None:
            init_linear_(lin, scheme, gain=gain, generator=gen)
    return model if residual else model.as_sequential()


def train_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, *, steps: int,
              lr: float, clip_norm: float | None = None) -> dict:
    """Full-batch SGD for ``steps`` steps, recording what a practitioner would watch.

    Returns a dict with ``loss`` (one value per step, before the update; the run stops at the
    first non-finite loss), ``grad_norms`` (steps x layers, each ``nn.Linear`` weight gradient
    norm), ``max_abs_weight`` per step, ``rel_change`` (per Linear layer,
    ``||W_end - W_0|| / ||W_0||``) and ``first_nonfinite`` (the step where the loss became inf
    or NaN, or ``None``). With ``clip_norm`` the gradient is clipped to that global L2 norm
    before each step (``grad_norms`` records it before clipping; clipping is taught in
    ``04_gradient_clipping``). Used in ``notebooks/00_unstable_gradients``.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    w0 = [lin.weight.detach().clone() for lin in linears]
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=lr)
    losses, grad_norms, max_w = [], [], []
    first_bad = None
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        with torch.no_grad():
            max_w.append(float(torch.stack([p.detach().abs().max() for p in params]).max()))
        if not math.isfinite(losses[-1]):
            first_bad = step
            grad_norms.append([math.nan] * len(linears))
            break
        loss.backward()
        with torch.no_grad():
            grad_norms.append(torch.stack([lin.weight.grad.norm() for lin in linears]).tolist())
        if clip_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
    with torch.no_grad():
        rel = [float((lin.weight - w).norm() / w.norm()) for lin, w in zip(linears, w0,
                                                                           strict=True)]
    return {"loss": np.array(losses), "grad_norms": np.array(grad_norms),
            "max_abs_weight": np.array(max_w), "rel_change": np.array(rel),
            "first_nonfinite": first_bad}


def tent_network(k: int) -> nn.Sequential:
    """A ReLU network with ``k`` hidden layers of 2 units that computes the tent map k times.

    The tent map ``t(x) = 2 relu(x) - 4 relu(x - 1/2)`` folds [0, 1] onto itself; composed k
    times it is a sawtooth with ``2^k`` linear pieces, built from only ``6k + 1`` parameters
    (Telgarsky's depth-separation example). Used in ``notebooks/00_unstable_gradients``.
    """
    layers: list[nn.Module] = []
    for i in range(k):
        lin = nn.Linear(1 if i == 0 else 2, 2)
        with torch.no_grad():
            if i == 0:
                lin.weight.copy_(torch.tensor([[1.0], [1.0]]))
            else:  # feed t(previous) = 2 h1 - 4 h2 into both units
                lin.weight.copy_(torch.tensor([[2.0, -4.0], [2.0, -4.0]]))
            lin.bias.copy_(torch.tensor([0.0, -0.5]))
        layers += [lin, nn.ReLU()]
    head = nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, -4.0]]))
        head.bias.zero_()
    layers.append(head)
    return nn.Sequential(*layers).double()


def count_linear_pieces(xs: np.ndarray, ys: np.ndarray, tol: float = 1e-6) -> int:
    """Number of linear pieces of a piecewise-linear function sampled on a fine grid.

    Counts slope changes between consecutive grid intervals (a kink inside an interval shows
    up as two changes, so the grid should put kinks on grid points, e.g. dyadic grids for the
    sawtooth). Used in ``notebooks/00_unstable_gradients``.
    """
    slopes = np.diff(ys) / np.diff(xs)
    return int(1 + np.sum(np.abs(np.diff(slopes)) > tol * max(1.0, np.abs(slopes).max())))


def backward_profiles(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      loss_fn) -> dict[str, np.ndarray]:
    """Per ``nn.Linear`` (input side first), after one forward/backward pass of
    ``loss_fn(model(x), y)``, the four factors of ``dL/dW_l = delta_l a_{l-1}^T``.

    Keys: ``"input"`` (the norm of the layer's input ``a_{l-1}`` over the batch),
    ``"delta"`` (the norm of ``delta_l = dL/dz_l``, the gradient at the layer's output),
    ``"weight_grad"`` (``||dL/dW_l||``) and ``"grad_to_weight"``
    (``std(dL/dW_l) / std(W_l)``). Every ``.grad`` is left as it was. Used in
    ``notebooks/00_unstable_gradients`` to show where a uniformly mis-scaled network explodes.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(mod, (inp[0], out)))
               for m in linears]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for h in handles:
            h.remove()
    outs = [seen[m][1] for m in linears]
    weights = [m.weight for m in linears]
    grads = torch.autograd.grad(loss, outs + weights)
    deltas, weight_grads = grads[:len(linears)], grads[len(linears):]
    ratios = []
    for w, g in zip(weights, weight_grads, strict=True):
        w.grad, saved = g, w.grad
        ratios.append(grad_to_weight_ratio(w))
        w.grad = saved
    return {
        "input": np.array([float(seen[m][0].detach().norm()) for m in linears]),
        "delta": np.array([float(d.norm()) for d in deltas]),
        "weight_grad": np.array([float(g.norm()) for g in weight_grads]),
        "grad_to_weight": np.array(ratios),
    }
