"""Reference code, small experiments and plots for ``notebooks/00_unstable_gradients``.

* :func:`chain_grad_magnitudes` and :func:`layer_grad_norms` are the reference answers of the
  notebook's two exercises; :func:`chain_grad_magnitudes_autograd` is the independent oracle
  (``torch.autograd``) the tests compare them with.
* :func:`make_mlp`, :func:`make_rings` and :func:`train_sgd` build the deep networks, the toy
  data set and the short training runs the notebook uses to show vanishing and exploding
  gradients.
* ``plot_*`` functions are pure: they take numbers and return a ``matplotlib`` Figure, never
  call ``plt.show`` and never touch rcParams.

Importing this module changes no global state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils.diagnostics import grad_to_weight_ratio
from course_utils.nets import activation_module, init_linear_, mlp
from course_utils.plotting import color

__all__ = [
    "chain_grad_magnitudes",
    "chain_grad_magnitudes_autograd",
    "layer_grad_norms",
    "make_rings",
    "make_mlp",
    "ResidualBlock",
    "train_sgd",
    "tent_network",
    "count_linear_pieces",
    "plot_chain_gradients",
    "plot_layer_grad_norms",
    "plot_training_curves",
    "plot_sawtooth",
    "backward_profiles",
    "plot_backward_profiles",
]

_CHAIN_ACTIVATIONS = ("sigmoid", "tanh", "relu")


# --------------------------------------------------------------------------- exercise 1
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


# --------------------------------------------------------------------------- exercise 2
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


# --------------------------------------------------------------------------- experiments
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


# --------------------------------------------------------------------------- depth
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


# --------------------------------------------------------------------------- plots
def plot_chain_gradients(curves: dict[str, Sequence[float]], title: str | None = None) -> Figure:
    """``|d a_L / d a_l|`` against the layer index ``l`` for several chains, log scale.

    ``curves`` maps a label to the array returned by ``chain_grad_magnitudes``. Zeros are
    drawn at the bottom of the axis as open markers. Used in
    ``notebooks/00_unstable_gradients``.
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, g) in enumerate(curves.items()):
        g = np.asarray(g, dtype=float)
        layers = np.arange(g.size)
        shown = np.where(g > 0, g, np.nan)
        ax.semilogy(layers, shown, "o-", ms=3, color=color(i), label=label)
    ax.set_xlabel("layer l (0 = input a_0; the output a_L is on the right)")
    ax.set_ylabel("|d a_L / d a_l|")
    ax.set_title(title or "Gradient reaching layer l: watch it shrink or grow geometrically "
                 "toward the input")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return fig


def plot_layer_grad_norms(norms: dict[str, Sequence[float]], title: str | None = None) -> Figure:
    """Per-layer weight-gradient norms (input side on the left) for several networks, log scale.

    ``norms`` maps a label to the list returned by ``layer_grad_norms``. Used in
    ``notebooks/00_unstable_gradients``.
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^vP*X"
    for i, (label, g) in enumerate(norms.items()):
        g = np.asarray(g, dtype=float)
        ax.semilogy(np.arange(1, g.size + 1), np.where(g > 0, g, np.nan),
                    marker=markers[i % len(markers)], ms=4, color=color(i),
                    label=label)
    ax.set_xlabel("Linear layer (1 = input side)")
    ax.set_ylabel("||dL/dW|| (L2 norm)")
    ax.set_title(title or "Weight-gradient norm per layer")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_training_curves(runs: dict[str, dict], title: str | None = None) -> Figure:
    """Three panels for runs from :func:`train_sgd`: loss, largest weight, per-layer movement.

    A vanishing run shows a flat loss and input-side layers that hardly move; an exploding run
    shows the loss and the largest weight shooting up until the loss is inf/NaN (its loss
    leaves the linear-scale loss panel through the top; the step where it became non-finite
    is marked with an x in the weight panel). Layers that moved by exactly 0 are marked with a
    triangle at the bottom of the last panel; runs whose weights became non-finite have no
    bars there. Used in ``notebooks/00_unstable_gradients``.
    """
    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_loss, ax_w, ax_rel = fig.subplots(1, 3)
    finite_first = [float(r["loss"][0]) for r in runs.values()
                    if r.get("first_nonfinite") is None and len(r["loss"])]
    top = 1.3 * max(finite_first) if finite_first else None
    width = 0.8 / max(len(runs), 1)
    rel_min = min((float(v) for r in runs.values() for v in np.asarray(r["rel_change"])
                   if np.isfinite(v) and v > 0), default=1e-8)
    for i, (label, run) in enumerate(runs.items()):
        c = color(i)
        loss = np.asarray(run["loss"], dtype=float)
        steps = np.arange(loss.size)
        bad = run.get("first_nonfinite")
        tag = f"{label}: inf/NaN at step {bad}" if bad is not None else label
        ax_loss.plot(steps, np.where(np.isfinite(loss), loss, np.nan), color=c, label=tag)
        mw = np.asarray(run["max_abs_weight"], dtype=float)
        ax_w.semilogy(np.arange(mw.size), np.where(np.isfinite(mw), mw, np.nan), color=c,
                      label=label)
        if bad is not None and np.isfinite(mw[:bad + 1]).any():
            last = int(np.flatnonzero(np.isfinite(mw[:bad + 1]))[-1])
            ax_w.plot([last], [mw[last]], "x", color=c, ms=10, mew=2)
        rel = np.asarray(run["rel_change"], dtype=float)
        if rel.size and np.isfinite(rel).all():
            pos = np.arange(1, rel.size + 1) + (i - (len(runs) - 1) / 2) * width
            ax_rel.bar(pos, np.where(rel > 0, rel, np.nan), width=width, color=c, label=label)
            zero = rel == 0
            if zero.any():
                ax_rel.plot(pos[zero], np.full(zero.sum(), rel_min / 3), "v", color=c, ms=8,
                            label=f"{label}: moved exactly 0")
    if top is not None:
        ax_loss.set_ylim(0.0, top)
    ax_rel.set_yscale("log")
    ax_loss.set_xlabel("SGD step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("Loss (a blow-up leaves through the top)")
    ax_w.set_xlabel("SGD step")
    ax_w.set_ylabel("max |parameter|")
    ax_w.set_title("Largest parameter (x: last finite value)")
    ax_rel.set_xlabel("Linear layer (1 = input side)")
    ax_rel.set_ylabel("||W_end - W_0|| / ||W_0||")
    ax_rel.set_title("How far each layer moved")
    for ax in (ax_loss, ax_w, ax_rel):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_sawtooth(ks: Sequence[int], n_grid: int = 2**12) -> Figure:
    """The functions computed by :func:`tent_network` for several depths ``ks``.

    Each doubling of the number of teeth costs one more 2-unit layer. Used in
    ``notebooks/00_unstable_gradients``.
    """
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    xs = torch.linspace(0, 1, n_grid + 1, dtype=torch.float64)[:, None]
    for i, k in enumerate(ks):
        with torch.no_grad():
            ys = tent_network(k)(xs)[:, 0]
        ax.plot(xs[:, 0].numpy(), ys.numpy(), color=color(i),
                label=f"{k} layers of 2 ReLUs: {2**k} pieces")
    ax.set_xlabel("x")
    ax.set_ylabel("network output")
    ax.set_title("Each extra layer doubles the number of linear pieces")
    ax.legend(fontsize="small", loc="upper right")
    return fig


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


def plot_backward_profiles(profiles: dict[str, dict], title: str | None = None) -> Figure:
    """Three panels per run from :func:`backward_profiles` (``label -> profiles``): the
    factors ``||a_{l-1}||`` and ``||delta_l||``, their product's bound ``||dL/dW_l||``, and
    ``std(dL/dW_l) / std(W_l)``, per Linear layer on log scales. Used in
    ``notebooks/00_unstable_gradients``.
    """
    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, (label, prof) in enumerate(profiles.items()):
        layers = np.arange(1, len(prof["delta"]) + 1)
        axes[0].semilogy(layers, prof["delta"], "o-", ms=4, color=color(i),
                         label=f"{label}: ||dL/dz_l||")
        axes[0].semilogy(layers, prof["input"], "s--", ms=4, color=color(i),
                         label=f"{label}: ||a_(l-1)||")
        axes[1].semilogy(layers, prof["weight_grad"], "o-", ms=4, color=color(i), label=label)
        axes[2].semilogy(layers, prof["grad_to_weight"], "o-", ms=4, color=color(i), label=label)
    for ax, ylabel in zip(axes, ("norm over the batch", "||dL/dW_l||",
                                 "std(dL/dW_l) / std(W_l)"), strict=True):
        ax.set_xlabel("Linear layer (1 = input side)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(title or "Per-layer factors of dL/dW = delta a^T")
    return fig
