"""Per-layer diagnostics for torch models: what the activations and gradients are doing.

Introduced in ``notebooks/00_unstable_gradients``; used again in ``02_initialization`` (the
activation and gradient curves per init) and ``05_in_practice`` (the training doctor).

The main entry point is the context manager :func:`record_layer_stats`::

    with record_layer_stats(model) as rec:
        loss = loss_fn(model(x), y)
        loss.backward()
    for s in rec.stats:              # one LayerStats per watched module, in module order
        print(s.name, s.kind, s.out_std, s.grad_out_norm, s.weight_grad_norm)

Inside the ``with`` block, forward hooks record statistics of every watched module's output and
attach a tensor hook that records the gradient of the loss with respect to that output when
``backward`` runs. Weight norms and weight-gradient norms are read when the block exits. The
hooks are removed on exit, even after an exception, so the model is left exactly as it was.

The ratio helpers follow the usual rules of thumb for reading a training run:

* :func:`grad_to_weight_ratio`: ``std(grad) / std(weight)`` of one parameter;
* :func:`update_to_weight_ratio`: ``log10(std(lr * grad) / std(weight))``, the size of a plain
  SGD step relative to the weights (values near ``UPDATE_RATIO_REFERENCE`` = -3 are healthy;
  much lower means the layer hardly learns, much higher means the step rewrites the weights);
* :func:`measured_update_ratio`: the same from weights before and after any optimizer step.

Importing this module changes no global state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "param_grad_norms",
    "SATURATING",
    "RECTIFIERS",
    "UPDATE_RATIO_REFERENCE",
    "LayerStats",
    "LayerStatsRecorder",
    "record_layer_stats",
    "default_watch",
    "saturated_fraction",
    "dead_fraction",
    "zero_fraction",
    "grad_to_weight_ratio",
    "update_to_weight_ratio",
    "measured_update_ratio",
    "weight_grad_norms",
    "update_ratios",
    "capture_outputs",
]

#: Activation modules whose output saturates (derivative near 0 for large |z|).
SATURATING: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid)
#: Activation modules whose units can die (output exactly 0 on a whole half-line).
RECTIFIERS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
#: Reference line for log10 of the update-to-weight ratio (an update of about 1/1000 of the
#: weights' spread per step).
UPDATE_RATIO_REFERENCE = -3.0


# --------------------------------------------------------------------------- single tensors
def saturated_fraction(a: torch.Tensor, kind: str, threshold: float = 0.97) -> float:
    """Fraction of the entries of a sigmoid or tanh output ``a`` that are saturated.

    One criterion for both: an entry is saturated when it is within ``1 - threshold`` of the
    ends of the output range on the tanh scale, i.e. ``|a| > threshold`` for tanh and
    ``|2a - 1| > threshold`` for sigmoid (because ``2 sigmoid(z) - 1 = tanh(z / 2)``). With the
    default 0.97 the local derivative there is below about 6% of its maximum.

    ``kind`` is ``"tanh"`` or ``"sigmoid"``. Taught in ``notebooks/00_unstable_gradients``.
    """
    a = a.detach().to(torch.float64)
    if kind == "tanh":
        u = a
    elif kind == "sigmoid":
        u = 2.0 * a - 1.0
    else:
        raise ValueError(f"kind must be 'tanh' or 'sigmoid', got {kind!r}")
    if a.numel() == 0:
        return float("nan")
    return float((u.abs() > threshold).to(torch.float64).mean())


def zero_fraction(a: torch.Tensor) -> float:
    """Fraction of the entries of ``a`` that are exactly 0 (e.g. inactive ReLU outputs).

    Taught in ``notebooks/00_unstable_gradients``.
    """
    a = a.detach()
    if a.numel() == 0:
        return float("nan")
    return float((a == 0).to(torch.float64).mean())


def dead_fraction(a: torch.Tensor) -> float:
    """Fraction of units that output exactly 0 for every sample of the batch.

    ``a`` has the batch along dimension 0; every other position (a feature, or a channel and
    pixel for convolutional maps) counts as one unit. A unit that is 0 for the whole batch
    passes no gradient back for any of these samples: a dead (or at least sleeping) ReLU.
    Taught in ``notebooks/00_unstable_gradients`` (dying ReLUs: ``01_activations``).
    """
    a = a.detach()
    if a.dim() < 2 or a.shape[0] == 0:
        raise ValueError("dead_fraction needs a batch: shape (N, units...) with N >= 1")
    units = a.reshape(a.shape[0], -1)
    return float((units == 0).all(dim=0).to(torch.float64).mean())


def _std(t: torch.Tensor) -> float:
    t = t.detach().to(torch.float64)
    return float(t.std(unbiased=False)) if t.numel() > 0 else float("nan")


def grad_to_weight_ratio(param: torch.Tensor) -> float:
    """``std(param.grad) / std(param)``: how big the gradient is relative to the weights.

    Returns ``nan`` when the parameter has no gradient. Taught in
    ``notebooks/00_unstable_gradients``; read over training in ``05_in_practice``.
    """
    if param.grad is None:
        return float("nan")
    w = _std(param)
    return _std(param.grad) / w if w > 0 else float("inf")


def update_to_weight_ratio(param: torch.Tensor, lr: float) -> float:
    """``log10(std(lr * param.grad) / std(param))`` for a plain SGD step of size ``lr``.

    Around ``UPDATE_RATIO_REFERENCE`` (-3) is the usual healthy range; far below means the
    layer barely moves, far above means every step rewrites its weights. Returns ``nan``
    without a gradient and ``-inf`` for an all-zero gradient. Taught in
    ``notebooks/00_unstable_gradients``; tracked over training in ``05_in_practice``.
    """
    if param.grad is None:
        return float("nan")
    w = _std(param)
    u = abs(lr) * _std(param.grad)
    if w == 0:
        return float("inf") if u > 0 else float("nan")
    return math.log10(u / w) if u > 0 else float("-inf")


def measured_update_ratio(before: torch.Tensor, after: torch.Tensor) -> float:
    """``log10(std(after - before) / std(before))`` for a step taken by any optimizer.

    Use it with Adam or momentum, where the step is not ``lr * grad``. Taught in
    ``notebooks/05_in_practice``.
    """
    w = _std(before)
    u = _std(after.detach() - before.detach())
    if w == 0:
        return float("inf") if u > 0 else float("nan")
    return math.log10(u / w) if u > 0 else float("-inf")


def weight_grad_norms(model: nn.Module, types: tuple[type[nn.Module], ...] = (nn.Linear,)
                      ) -> list[float]:
    """L2 norms of the ``.weight.grad`` of every module of ``types``, in module order.

    Reads the gradients already stored in the model (it runs no backward pass); a module
    whose weight has no gradient gives ``nan``. Taught in ``notebooks/00_unstable_gradients``.
    """
    norms = []
    for m in model.modules():
        if isinstance(m, types):
            g = m.weight.grad
            norms.append(float(g.detach().to(torch.float64).norm()) if g is not None
                         else float("nan"))
    return norms


def param_grad_norms(model: nn.Module) -> dict[str, float]:
    """``{name: L2 norm of its .grad}`` for every parameter of ``model`` that has a gradient,
    in ``model.named_parameters()`` order. Taught in ``notebooks/04_gradient_clipping``."""
    return {name: p.grad.norm().item() for name, p in model.named_parameters()
            if p.grad is not None}


def update_ratios(model: nn.Module, lr: float, min_dim: int = 2) -> dict[str, float]:
    """:func:`update_to_weight_ratio` of every parameter with at least ``min_dim`` dimensions.

    Keys are the parameter names from ``model.named_parameters()`` (weight matrices only by
    default: biases start at 0, so their ratio is meaningless early on). Taught in
    ``notebooks/05_in_practice``.
    """
    return {n: update_to_weight_ratio(p, lr) for n, p in model.named_parameters()
            if p.dim() >= min_dim}


# --------------------------------------------------------------------------- hooks
def capture_outputs(model: nn.Module, x: torch.Tensor, modules: Iterable[nn.Module], *,
                    no_grad: bool = True) -> tuple[object, list[tuple[nn.Module, torch.Tensor]]]:
    """Run ``model(x)`` once and capture what each of ``modules`` returned.

    Returns ``(output, calls)``: the model's output and one ``(module, its output)`` pair per
    call of a watched module, in the order the forward pass ran them (a module called twice
    appears twice). With ``no_grad=True`` (the default) the pass runs under
    ``torch.no_grad()``; with ``no_grad=False`` the captured outputs stay in the autograd
    graph, so ``torch.autograd.grad(loss, [a for _, a in calls])`` gives ``dL/da``. The forward
    hooks are removed before returning, even after an exception. Used in
    ``notebooks/05_in_practice`` (its training runs and ``gradient_health``).
    """
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def hook(module, inputs, output):
        calls.append((module, output))

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        if no_grad:
            with torch.no_grad():
                out = model(x)
        else:
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, calls


@dataclass
class LayerStats:
    """What one module did during the last forward (and backward) pass inside the recorder.

    Output statistics (``out_*``) describe the module's output ``a``; ``grad_out_norm`` is the
    L2 norm of ``dL/da`` (``None`` until a backward pass reaches it). Fields that do not apply
    are ``None``: ``saturated_fraction`` only for sigmoid/tanh-like modules, ``zero_fraction``
    and ``dead_fraction`` only for ReLU/ReLU6, the ``weight_*`` fields only for modules with a
    ``weight`` parameter. ``output`` and ``grad_output`` hold detached CPU copies of the
    tensors when the recorder was asked to keep them (for histograms), else ``None``.
    Taught in ``notebooks/00_unstable_gradients``.
    """

    name: str
    kind: str
    out_shape: tuple[int, ...]
    out_mean: float
    out_std: float
    saturated_fraction: float | None = None
    zero_fraction: float | None = None
    dead_fraction: float | None = None
    grad_out_norm: float | None = None
    grad_out_std: float | None = None
    weight_norm: float | None = None
    weight_grad_norm: float | None = None
    grad_to_weight: float | None = None
    output: torch.Tensor | None = field(default=None, repr=False)
    grad_output: torch.Tensor | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """The scalar fields as a plain dict (handy for tables)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("output", "grad_output")}


class LayerStatsRecorder:
    """Holds the hooks of :func:`record_layer_stats` and the statistics they collect.

    Taught in ``notebooks/00_unstable_gradients``.
    """

    def __init__(self, model: nn.Module, modules: list[tuple[str, nn.Module]],
                 keep_tensors: bool, saturation_threshold: float):
        self.model = model
        self._modules = modules
        self._keep = keep_tensors
        self._threshold = saturation_threshold
        self._by_name: dict[str, LayerStats] = {}
        self._handles: list = []

    # -- hook management
    def _attach(self) -> None:
        for name, module in self._modules:
            self._handles.append(module.register_forward_hook(self._make_forward_hook(name)))

    def _detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_forward_hook(self, name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            if not isinstance(output, torch.Tensor):
                return
            a = output.detach()
            a64 = a.to(torch.float64)
            s = LayerStats(
                name=name,
                kind=type(module).__name__,
                out_shape=tuple(a.shape),
                out_mean=float(a64.mean()) if a.numel() else float("nan"),
                out_std=_std(a64),
            )
            if isinstance(module, nn.Sigmoid):
                s.saturated_fraction = saturated_fraction(a, "sigmoid", self._threshold)
            elif isinstance(module, SATURATING):
                lo, hi = (0.0, 1.0) if isinstance(module, nn.Hardsigmoid) else (
                    getattr(module, "min_val", -1.0), getattr(module, "max_val", 1.0))
                u = (2.0 * a64 - (lo + hi)) / (hi - lo)
                s.saturated_fraction = float((u.abs() > self._threshold).to(torch.float64).mean())
            if isinstance(module, RECTIFIERS):
                s.zero_fraction = zero_fraction(a)
                if a.dim() >= 2 and a.shape[0] > 0:
                    s.dead_fraction = dead_fraction(a)
            if self._keep:
                s.output = a.to("cpu", copy=True)
            self._by_name[name] = s
            if output.requires_grad:
                output.register_hook(self._make_grad_hook(s))

        return hook

    def _make_grad_hook(self, s: LayerStats):
        def hook(grad: torch.Tensor) -> None:
            g = grad.detach().to(torch.float64)
            s.grad_out_norm = float(g.norm())
            s.grad_out_std = _std(g)
            if self._keep:
                s.grad_output = grad.detach().to("cpu", copy=True)

        return hook

    def _read_weights(self) -> None:
        for name, module in self._modules:
            s = self._by_name.get(name)
            w = getattr(module, "weight", None)
            if s is None or not isinstance(w, torch.Tensor):
                continue
            s.weight_norm = float(w.detach().to(torch.float64).norm())
            if w.grad is not None:
                s.weight_grad_norm = float(w.grad.detach().to(torch.float64).norm())
                s.grad_to_weight = grad_to_weight_ratio(w)

    # -- results
    @property
    def stats(self) -> list[LayerStats]:
        """One :class:`LayerStats` per watched module that ran, in module order.

        Weight statistics are read now while the block is open, and frozen when it exits (so
        an optimizer step taken after the block does not change them).
        """
        if self._handles:
            self._read_weights()
        return [self._by_name[n] for n, _ in self._modules if n in self._by_name]

    def __getitem__(self, name: str) -> LayerStats:
        if self._handles:
            self._read_weights()
        return self._by_name[name]

    def column(self, field_name: str, kinds: Iterable[str] | None = None) -> list:
        """One field across layers, e.g. ``rec.column("grad_out_norm", kinds=["Linear"])``."""
        kinds = None if kinds is None else set(kinds)
        return [getattr(s, field_name) for s in self.stats if kinds is None or s.kind in kinds]

    def table(self) -> str:
        """A fixed-width text table of the main statistics, one row per module."""
        head = (f"{'layer':<14}{'kind':<10}{'out mean':>10}{'out std':>10}{'sat/dead':>10}"
                f"{'|dL/da|':>11}{'|W|':>10}{'|dL/dW|':>11}")
        rows = [head, "-" * len(head)]

        def f(v, w=10, p=3):
            return f"{'-':>{w}}" if v is None else f"{v:>{w}.{p}g}"

        for s in self.stats:
            frac = s.saturated_fraction if s.saturated_fraction is not None else s.dead_fraction
            rows.append(f"{s.name[:13]:<14}{s.kind[:9]:<10}{f(s.out_mean)}{f(s.out_std)}"
                        f"{f(frac)}{f(s.grad_out_norm, 11)}{f(s.weight_norm)}"
                        f"{f(s.weight_grad_norm, 11)}")
        return "\n".join(rows)


def default_watch(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules :func:`record_layer_stats` watches by default: every leaf module, in order.

    Leaf modules are those without children (Linear, Conv, activations, norms ...). Dropout
    and Identity are skipped. Taught in ``notebooks/00_unstable_gradients``.
    """
    skip = (nn.Dropout, nn.Identity)
    return [(n, m) for n, m in model.named_modules()
            if n and not any(True for _ in m.children()) and not isinstance(m, skip)]


@contextmanager
def record_layer_stats(model: nn.Module, types: tuple[type[nn.Module], ...] | None = None,
                       keep_tensors: bool = False, saturation_threshold: float = 0.97
                       ) -> Iterator[LayerStatsRecorder]:
    """Record per-layer statistics of ``model`` during the passes run inside the block.

    ``types`` restricts the watched modules (default: every leaf module, see
    :func:`default_watch`). ``keep_tensors=True`` also keeps each output and output gradient
    (detached CPU copies) for histograms. Each module's statistics describe the last forward
    pass inside the block and the backward pass that followed it. The recorder stays readable
    after the block; all hooks are removed when it exits.

    Taught in ``notebooks/00_unstable_gradients``; used in ``02_initialization`` and
    ``05_in_practice``.
    """
    modules = default_watch(model)
    if types is not None:
        modules = [(n, m) for n, m in modules if isinstance(m, types)]
    rec = LayerStatsRecorder(model, modules, keep_tensors, saturation_threshold)
    rec._attach()
    try:
        yield rec
    finally:
        rec._detach()
        rec._read_weights()
