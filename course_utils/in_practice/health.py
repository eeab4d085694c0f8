"""Gradient health of ``notebooks/05_in_practice``: the reference of the ``gradient_health``
exercise, its verdict rule and thresholds, the test networks it is graded on, and per-layer
activation/gradient tensors for histograms.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import capture_outputs, dead_fraction, saturated_fraction
from course_utils.nets import ACTIVATION_TYPES, init_linear_, init_std, mlp

__all__ = ["VANISH_RATIO", "EXPLODE_RATIO", "SATURATION_MAX", "VERDICTS",
           "layer_activation_fraction", "depth_ratio", "flow_verdict", "health_verdict",
           "gradient_health", "build_health_case", "collect_layer_tensors"]

#: ``gradient_health`` thresholds (stated in ``notebooks/05_in_practice``): the gradient that
#: reaches the first hidden layer against the one at the last hidden layer, and the largest
#: saturated or dead fraction of a layer.
VANISH_RATIO = 1e-3
EXPLODE_RATIO = 1e3
SATURATION_MAX = 0.5
#: The verdicts, in the order the rule tests them (``"healthy"`` when none applies).
VERDICTS = ("exploding", "vanishing", "saturated or dead", "healthy")


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
    """Run ``model(x)`` once (in the autograd graph) with forward hooks on every ``nn.Linear``
    and every watched activation (``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``).

    Returns ``(output, entries)``: one entry ``(name, linear, z, act)`` per ``nn.Linear`` in
    ``model.named_modules()`` order, where ``z`` is the Linear's output (``None`` if it did
    not run) and ``act`` is ``(module, output)`` of the first watched activation that ran
    after that Linear and before the next Linear ran, or ``None``.
    """
    watched = [m for m in model.modules() if isinstance(m, (nn.Linear, *_WATCHED_ACTS))]
    out, calls = capture_outputs(model, x, watched, no_grad=False)
    z_of: dict[int, torch.Tensor] = {}
    act_of: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    current = None
    for m, o in calls:
        if isinstance(m, nn.Linear):
            current = id(m)
            z_of.setdefault(current, o)
        elif current is not None and current not in act_of:
            act_of[current] = (m, o)
            current = None
    entries = [(name, m, z_of.get(id(m)), act_of.get(id(m)))
               for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return out, entries


def depth_ratio(out_grad_rms) -> float:
    """``r = out_grad_rms[0] / out_grad_rms[-2]``: the RMS of ``dL/dz`` at the first hidden
    layer over the one at the last hidden layer (values in report order, the output layer
    last). NaN when there are fewer than two hidden layers or ``out_grad_rms[-2]`` is not
    positive. Taught in ``notebooks/05_in_practice``.
    """
    d = np.asarray(out_grad_rms, dtype=float)
    return float(d[0] / d[-2]) if d.size >= 3 and d[-2] > 0 else float("nan")


def flow_verdict(grad_norms, out_grad_rms) -> str | None:
    """The vanishing/exploding part of :func:`health_verdict`: ``"exploding"`` if a value is
    inf or NaN or :func:`depth_ratio` exceeds ``EXPLODE_RATIO``, otherwise ``"vanishing"`` if
    every weight gradient is exactly 0 or the ratio is below ``VANISH_RATIO``, otherwise
    ``None``. Scale-free: multiplying every gradient by a constant never changes it.
    """
    g = np.asarray(grad_norms, dtype=float)
    d = np.asarray(out_grad_rms, dtype=float)
    if not (np.isfinite(g).all() and np.isfinite(d).all()):
        return "exploding"
    r = depth_ratio(d)
    if r > EXPLODE_RATIO:
        return "exploding"
    if (g == 0).all() or r < VANISH_RATIO:
        return "vanishing"
    return None


def health_verdict(grad_norms: list[float], out_grad_rms: list[float], saturated: list[float],
                   dead: list[float]) -> str:
    """The notebook's rule, from per-layer values in report order (input side first, the
    output layer last): weight-gradient norms, the RMS of ``dL/dz`` at each Linear's output
    ``z``, and each layer's saturated and dead fractions.

    With ``r = out_grad_rms[0] / out_grad_rms[-2]`` (first hidden layer over last hidden
    layer; defined only with at least two hidden layers and ``out_grad_rms[-2] > 0``):

    1. ``"exploding"`` if any value is inf or NaN, or ``r > EXPLODE_RATIO`` (1e3);
    2. otherwise ``"vanishing"`` if every weight gradient is exactly 0, or
       ``r < VANISH_RATIO`` (1e-3);
    3. otherwise ``"saturated or dead"`` if some layer's saturated or dead fraction exceeds
       ``SATURATION_MAX`` (0.5);
    4. otherwise ``"healthy"``.

    Every test is a ratio or an exact zero, so multiplying the loss (or every gradient) by a
    constant never changes the verdict. Taught in ``notebooks/05_in_practice``.
    """
    s = np.concatenate([np.asarray(saturated, dtype=float), np.asarray(dead, dtype=float)])
    if np.asarray(grad_norms).size == 0:
        raise ValueError("no layers")
    flow = flow_verdict(grad_norms, out_grad_rms)
    if flow is not None:
        return flow
    if (s > SATURATION_MAX).any():
        return "saturated or dead"
    return "healthy"


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> dict:
    """Per-layer gradient report and an overall verdict (reference solution).

    One forward pass ``loss = loss_fn(model(x), y)`` in the model's current mode and one
    backward pass. Returns ``{"layers": [...], "verdict": str}`` with one dict per
    ``nn.Linear`` in ``model.named_modules()`` order, output layer included::

        {"name": str,                  # the Linear's name in model.named_modules()
         "grad_norm": float,           # L2 norm of d loss / d weight (the bias is ignored)
         "out_grad_rms": float,        # root mean square of d loss / d z, z the Linear's output
         "saturated_fraction": float,  # after a Sigmoid/Tanh: entries with |2a-1| or |a| > 0.97
         "dead_fraction": float}       # after a ReLU: units that are 0 for every sample

    The activation of a Linear is the first ``nn.Sigmoid``, ``nn.Tanh`` or ``nn.ReLU`` that
    runs after it and before the next Linear runs; fractions that do not apply are 0.0. The
    verdict follows :func:`health_verdict`. The parameters' ``.grad`` fields and the model's
    mode are left as they were. Taught in ``notebooks/05_in_practice``.
    """
    out, entries = _act_after_each_linear(model, x)
    loss = loss_fn(out, y)
    ran = [z for _, _, z, _ in entries if z is not None]
    grads = torch.autograd.grad(loss, [m.weight for _, m, _, _ in entries] + ran,
                                allow_unused=True)
    w_grads, z_grads = grads[:len(entries)], iter(grads[len(entries):])
    layers = []
    for (name, _, z, act), g in zip(entries, w_grads, strict=True):
        norm = 0.0 if g is None else float(g.detach().to(torch.float64).norm())
        gz = next(z_grads) if z is not None else None
        rms = 0.0 if gz is None else float(gz.detach().to(torch.float64).pow(2).mean().sqrt())
        sat = dead = 0.0
        if act is not None:
            module, a = act[0], act[1].detach()
            if isinstance(module, nn.ReLU):
                dead = dead_fraction(a)
            else:
                sat = saturated_fraction(a, "sigmoid" if isinstance(module, nn.Sigmoid)
                                         else "tanh")
        layers.append({"name": name, "grad_norm": norm, "out_grad_rms": rms,
                       "saturated_fraction": float(sat), "dead_fraction": float(dead)})
    verdict = health_verdict([d["grad_norm"] for d in layers],
                             [d["out_grad_rms"] for d in layers],
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
    acts = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATION_TYPES)]
    out, calls = capture_outputs(model, x, [m for _, m in acts], no_grad=False)
    outs = [o for _, o in calls]
    grads = torch.autograd.grad(loss_fn(out, y), outs)
    return ([n for n, _ in acts], [o.detach().numpy().ravel() for o in outs],
            [g.detach().numpy().ravel() for g in grads])
