"""Gradient health of ``notebooks/05_in_practice``: the reference of the ``gradient_health``
exercise, its verdict rule and thresholds, the test networks it is graded on, and per-layer
activation/gradient tensors for histograms.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import dead_fraction, saturated_fraction
from course_utils.nets import ACTIVATION_TYPES, init_linear_, init_std, mlp

__all__ = ["EXPLODE_ABS", "VANISH_ABS", "VANISH_RATIO", "SATURATION_MAX",
           "layer_activation_fraction", "health_verdict", "gradient_health",
           "build_health_case", "collect_layer_tensors"]

#: ``gradient_health`` thresholds (stated in ``notebooks/05_in_practice``).
EXPLODE_ABS = 1e3
VANISH_ABS = 1e-5
VANISH_RATIO = 1e-3
SATURATION_MAX = 0.5


def layer_activation_fraction(module: nn.Module, a: torch.Tensor) -> float:
    """Saturated or dead fraction of an activation module's output ``a`` (a batch).

    ``nn.Sigmoid``: fraction of entries with ``|2a - 1| > 0.97``; ``nn.Tanh``: entries with
    ``|a| > 0.97`` (local derivative below about 6% of its maximum); ``nn.ReLU``: fraction of
    units that output 0 for every sample of the batch (dead units); any other module: 0.0.
    Taught in ``notebooks/05_in_practice``.
    """
    if isinstance(module, nn.Sigmoid):
        return saturated_fraction(a, "sigmoid")
    if isinstance(module, nn.Tanh):
        return saturated_fraction(a, "tanh")
    if isinstance(module, nn.ReLU):
        return dead_fraction(a)
    return 0.0


_WATCHED_ACTS = (nn.Sigmoid, nn.Tanh, nn.ReLU)


def _act_after_each_linear(model: nn.Module, x: torch.Tensor):
    """Run ``model(x)`` once with forward hooks on every ``nn.Linear`` and every watched
    activation (``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``).

    Returns ``(output, entries)``: one entry ``(name, linear, act)`` per ``nn.Linear`` in
    ``model.named_modules()`` order, where ``act`` is ``(module, output)`` of the first watched
    activation that ran after that Linear and before the next Linear ran, or ``None``.
    """
    events: list[tuple[nn.Module, torch.Tensor]] = []

    def hook(module, inputs, output):
        events.append((module, output))

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, (nn.Linear, *_WATCHED_ACTS)):
                handles.append(m.register_forward_hook(hook))
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    act_of: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    current = None
    for m, o in events:
        if isinstance(m, nn.Linear):
            current = id(m)
        elif current is not None and current not in act_of:
            act_of[current] = (m, o)
            current = None
    entries = [(name, m, act_of.get(id(m))) for name, m in model.named_modules()
               if isinstance(m, nn.Linear)]
    return out, entries


def health_verdict(grad_norms: list[float], saturated: list[float], dead: list[float]) -> str:
    """The notebook's rule, from per-layer weight-gradient norms (input side first, output
    layer last) and each layer's saturated and dead fractions.

    1. ``"exploding"`` if any norm is inf or NaN, or the largest norm exceeds ``EXPLODE_ABS``
       (1e3);
    2. otherwise ``"vanishing"`` if the largest norm is below ``VANISH_ABS`` (1e-5), or the
       first layer's norm is below ``VANISH_RATIO`` (1e-3) times the last (output) layer's,
       or some layer's saturated or dead fraction exceeds ``SATURATION_MAX`` (0.5);
    3. otherwise ``"healthy"``.

    Taught in ``notebooks/05_in_practice``.
    """
    g = np.asarray(grad_norms, dtype=float)
    s = np.concatenate([np.asarray(saturated, dtype=float), np.asarray(dead, dtype=float)])
    if g.size == 0:
        raise ValueError("no layers")
    if not np.isfinite(g).all() or g.max() > EXPLODE_ABS:
        return "exploding"
    if g.max() < VANISH_ABS or g[0] < VANISH_RATIO * g[-1] or (s > SATURATION_MAX).any():
        return "vanishing"
    return "healthy"


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> dict:
    """Per-layer gradient report and an overall verdict (reference solution).

    One forward pass ``loss = loss_fn(model(x), y)`` in the model's current mode and one
    backward pass. Returns ``{"layers": [...], "verdict": str}`` with one dict per
    ``nn.Linear`` in ``model.named_modules()`` order, output layer included::

        {"name": str,                  # the Linear's name in model.named_modules()
         "grad_norm": float,           # L2 norm of d loss / d weight (the bias is ignored)
         "saturated_fraction": float,  # after a Sigmoid/Tanh: entries with |2a-1| or |a| > 0.97
         "dead_fraction": float}       # after a ReLU: units that are 0 for every sample

    The activation of a Linear is the first ``nn.Sigmoid``, ``nn.Tanh`` or ``nn.ReLU`` that
    runs after it and before the next Linear runs; fractions that do not apply are 0.0. The
    verdict follows :func:`health_verdict`. The parameters' ``.grad`` fields and the model's
    mode are left as they were. Taught in ``notebooks/05_in_practice``.
    """
    out, entries = _act_after_each_linear(model, x)
    loss = loss_fn(out, y)
    grads = torch.autograd.grad(loss, [m.weight for _, m, _ in entries], allow_unused=True)
    layers = []
    for (name, _, act), g in zip(entries, grads, strict=True):
        norm = 0.0 if g is None else float(g.detach().to(torch.float64).norm())
        sat = dead = 0.0
        if act is not None:
            module, a = act[0], act[1].detach()
            if isinstance(module, nn.ReLU):
                dead = dead_fraction(a)
            else:
                sat = saturated_fraction(a, "sigmoid" if isinstance(module, nn.Sigmoid)
                                         else "tanh")
        layers.append({"name": name, "grad_norm": norm, "saturated_fraction": float(sat),
                       "dead_fraction": float(dead)})
    verdict = health_verdict([d["grad_norm"] for d in layers],
                             [d["saturated_fraction"] for d in layers],
                             [d["dead_fraction"] for d in layers])
    return {"layers": layers, "verdict": verdict}


def build_health_case(depth: int, width: int, activation: str = "relu", init: str = "he",
                      scale: float = 1.0, bias: float = 0.0, batch_norm: bool = False,
                      in_features: int = 16, out_features: int = 4, n_samples: int = 64,
                      x_scale: float = 1.0, y_scale: float = 1.0, loss: str = "ce",
                      layer_scales=None, head_scale: float = 1.0, seed: int = 0):
    """A small MLP (a :func:`course_utils.nets.mlp` as one ``nn.Sequential``) with its data and
    loss, built deterministically from ``seed``, for testing ``gradient_health`` on networks
    that vanish, explode or are healthy.

    Returns ``(model, x, y, loss_fn)``. ``init`` sets the std of every weight ("he",
    "xavier", "lecun", "normal" = 1, "zeros", "pytorch_default" (or "default") = PyTorch's
    variance 1/(3 fan_in)),
    times ``scale`` (and ``layer_scales[i]`` for layer i, ``head_scale`` for the output
    layer); hidden biases are ``bias``. ``loss`` is "ce" (cross-entropy on class labels) or
    "mse" (targets N(0, y_scale**2)). Taught in ``notebooks/05_in_practice``.
    """
    gen = torch.Generator().manual_seed(seed)
    model = mlp(in_features, out_features, depth=depth, width=width, activation=activation,
                init=None, batch_norm=batch_norm, seed=seed).as_sequential()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for i, lin in enumerate(linears):
        fan_out, fan_in = lin.weight.shape
        std = init_std("pytorch_default" if init == "default" else init, fan_in, fan_out)
        is_head = i == len(linears) - 1
        # a standard normal draw, then the scale: N(0, 1) * std * scale [* layer, head scales]
        init_linear_(lin, "normal", std=1.0, scale=std * scale, bias=0.0 if is_head else bias,
                     generator=gen)
        with torch.no_grad():
            if layer_scales is not None:
                lin.weight.mul_(layer_scales[i])
            if is_head:
                lin.weight.mul_(head_scale)
    x = torch.randn(n_samples, in_features, generator=gen) * x_scale
    if loss == "ce":
        y = torch.randint(0, out_features, (n_samples,), generator=gen)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        y = torch.randn(n_samples, out_features, generator=gen) * y_scale
        loss_fn = nn.MSELoss()
    return model, x, y, loss_fn


def collect_layer_tensors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None):
    """Each hidden activation's output and its gradient ``dL/da`` for one batch.

    Returns ``(names, activations, gradients)``: lists of 1-D NumPy arrays, one per activation
    module in module order. The model's ``.grad`` fields are left untouched (the gradients
    come from ``torch.autograd.grad``). Taught in ``notebooks/05_in_practice``.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    acts = [(n, m) for n, m in model.named_modules()
            if isinstance(m, ACTIVATION_TYPES)]
    outs: list[torch.Tensor] = [None] * len(acts)  # type: ignore[list-item]
    handles = [m.register_forward_hook(lambda mod, i, o, k=k: outs.__setitem__(k, o))
               for k, (_, m) in enumerate(acts)]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, outs)
    return ([n for n, _ in acts], [o.detach().numpy().ravel() for o in outs],
            [g.detach().numpy().ravel() for g in grads])
