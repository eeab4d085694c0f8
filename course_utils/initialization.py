"""Weight initialization: fans, gains, the LeCun, Xavier/Glorot and He/Kaiming schemes, and
experiments that push a signal through a deep network to see which scheme keeps it alive.

Taught in notebooks/02_initialization. The first half mirrors ``torch.nn.init`` (names,
signatures and, for the in-place initializers, the exact random draws under the same
``torch.Generator``); the second half holds the signal-propagation experiments, the
mean-field theory drawn over them, and the plotting functions the notebook calls.

Importing this module changes no global state: no rcParams, no backend, no seeding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils.nets import MLP, activation_module, init_std, mlp
from course_utils.plotting import PALETTE

_LINEAR_GAIN_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

#: activation names understood by :func:`activation_stds` and :func:`layer_statistics`
ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")
#: init names understood by :func:`activation_stds` and :func:`layer_statistics`: the course's
#: vocabulary (:data:`course_utils.nets.INITS`), with its ``normal`` init in the two sizes this
#: notebook compares, ``small`` (std :data:`SMALL_STD`) and ``standard_normal`` (std 1)
INITS = ("zeros", "small", "standard_normal", "pytorch_default", "lecun", "xavier", "he")
#: standard deviation of the "small" init
SMALL_STD = 0.01
#: the notebook's two fixed-size ``normal`` inits: name -> std
NORMAL_STDS = {"small": SMALL_STD, "standard_normal": 1.0}

INIT_COLORS = {
    "small": PALETTE[5],
    "standard_normal": PALETTE[3],
    "pytorch_default": PALETTE[1],
    "lecun": PALETTE[0],
    "xavier": PALETTE[4],
    "he": PALETTE[2],
    "zeros": PALETTE[6],
}
INIT_LABELS = {
    "zeros": "zeros",
    "small": f"small, N(0, {SMALL_STD}²)",
    "standard_normal": "N(0, 1)",
    "pytorch_default": "PyTorch default (uniform)",
    "lecun": "LeCun, N(0, 1/fan_in)",
    "xavier": "Xavier, N(0, 2/(fan_in+fan_out))",
    "he": "He, N(0, 2/fan_in)",
}


# ------------------------------------------------------------------------ fans and gains
def fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight with this shape, exactly as PyTorch computes them.

    ``shape[0]`` counts output units (or output channels) and ``shape[1]`` input units (or
    input channels); any further dimensions form the receptive field (the kernel), whose size
    multiplies both. A ``Linear(in, out)`` weight has shape ``(out, in)``, so its fan-in is
    ``in`` and its fan-out is its own ``out``. Raises ``ValueError`` for fewer than 2 dims.

    Taught in notebooks/02_initialization.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan-in and fan-out need a weight with at least 2 dimensions, got shape {shape}"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain ``torch.nn.init.calculate_gain`` recommends for a nonlinearity.

    linear, conv*, conv_transpose* and sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope**2)) with slope ``param`` (0.01 when ``param`` is None);
    selu: 3/4. Any other name raises ``ValueError``.

    Taught in notebooks/02_initialization.
    """
    if nonlinearity in _LINEAR_GAIN_NAMES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _mode_fan(shape: Sequence[int], mode: str) -> int:
    fan_in, fan_out = fan_in_and_fan_out(shape)
    mode = mode.lower()
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode {mode!r} is not supported: use 'fan_in' or 'fan_out'")


# ------------------------------------------------------------------------ standard deviations
def xavier_std(shape: Sequence[int], gain: float = 1.0) -> float:
    """Standard deviation of Xavier/Glorot init: ``gain * sqrt(2 / (fan_in + fan_out))``.

    Taught in notebooks/02_initialization.
    """
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def kaiming_std(shape: Sequence[int], a: float = 0, mode: str = "fan_in",
                nonlinearity: str = "leaky_relu") -> float:
    """Standard deviation of He/Kaiming init: ``calculate_gain(nonlinearity, a) / sqrt(fan)``.

    ``fan`` is the fan-in or the fan-out, as ``mode`` says. With the defaults (leaky_relu with
    slope ``a = 0``) the gain is sqrt(2), i.e. the ReLU gain.

    Taught in notebooks/02_initialization.
    """
    fan = _mode_fan(shape, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def lecun_std(shape: Sequence[int]) -> float:
    """Standard deviation of LeCun init: ``1 / sqrt(fan_in)`` (Kaiming with gain 1, fan_in mode).

    Taught in notebooks/02_initialization.
    """
    fan_in, _ = fan_in_and_fan_out(shape)
    return 1.0 / math.sqrt(fan_in)


# ------------------------------------------------------------------------ in-place initializers
def _uniform_(tensor: torch.Tensor, bound: float, generator) -> torch.Tensor:
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def _normal_(tensor: torch.Tensor, std: float, generator) -> torch.Tensor:
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from U(-b, b) with ``b = sqrt(3) * xavier_std`` and return it.

    Matches ``torch.nn.init.xavier_uniform_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    return _uniform_(tensor, math.sqrt(3.0) * xavier_std(tensor.shape, gain), generator)


def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, xavier_std**2) and return it.

    Matches ``torch.nn.init.xavier_normal_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    return _normal_(tensor, xavier_std(tensor.shape, gain), generator)


def kaiming_uniform_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from U(-b, b) with ``b = sqrt(3) * kaiming_std`` and return it.

    Matches ``torch.nn.init.kaiming_uniform_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    if 0 in tensor.shape:  # torch warns and leaves an empty tensor alone
        return tensor
    std = kaiming_std(tensor.shape, a=a, mode=mode, nonlinearity=nonlinearity)
    return _uniform_(tensor, math.sqrt(3.0) * std, generator)


def kaiming_normal_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, kaiming_std**2) and return it.

    Matches ``torch.nn.init.kaiming_normal_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    if 0 in tensor.shape:  # torch warns and leaves an empty tensor alone
        return tensor
    std = kaiming_std(tensor.shape, a=a, mode=mode, nonlinearity=nonlinearity)
    return _normal_(tensor, std, generator)


def lecun_normal_(tensor: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, 1/fan_in) and return it.

    PyTorch has no ``lecun_normal_``; this matches
    ``torch.nn.init.kaiming_normal_(tensor, nonlinearity="linear")`` draw for draw.
    Taught in notebooks/02_initialization.
    """
    return _normal_(tensor, lecun_std(tensor.shape), generator)


# ------------------------------------------------------------------------ named schemes
def init_weight_std(init: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the weights each named init of :data:`INITS` draws.

    ``pytorch_default`` is ``nn.Linear``'s own init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    whose standard deviation is ``1 / sqrt(3 fan_in)``; the others are
    :func:`course_utils.nets.init_std`'s. Taught in notebooks/02_initialization.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")
    if init in NORMAL_STDS:
        return init_std("normal", fan_in, fan_out, std=NORMAL_STDS[init])
    return init_std(init, fan_in, fan_out)


def init_named_(weight: torch.Tensor, init: str, generator: torch.Generator | None = None,
                gain: float = 1.0, uniform: bool | None = None) -> torch.Tensor:
    """Fill a weight in place with one of the named inits of :data:`INITS` and return it.

    All are normal draws except ``pytorch_default`` (uniform) and ``zeros``. ``gain``
    multiplies the standard deviation; ``uniform=True`` (or ``False``) draws from a uniform
    (or normal) distribution with that same standard deviation instead of the init's own.
    Taught in notebooks/02_initialization.
    """
    fan_in, fan_out = fan_in_and_fan_out(weight.shape)
    std = gain * init_weight_std(init, fan_in, fan_out)
    if uniform is None:
        uniform = init == "pytorch_default"
    with torch.no_grad():
        if init == "zeros":
            return weight.zero_()
        if uniform:
            bound = math.sqrt(3.0) * std
            return weight.uniform_(-bound, bound, generator=generator)
        return weight.normal_(0.0, std, generator=generator)


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
_XI = np.linspace(-12.0, 12.0, 24001)
_PHI = np.exp(-0.5 * _XI**2) / math.sqrt(2 * math.pi) * (_XI[1] - _XI[0])


def _act_and_slope(activation: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    y = activation_module(activation)(t)
    (slope,) = torch.autograd.grad(y.sum(), t)
    return y.detach().numpy(), slope.numpy()


def gaussian_moments(activation: str, q: float) -> tuple[float, float, float]:
    """For ``z ~ N(0, q)`` return ``(E[f(z)], E[f(z)**2], E[f'(z)**2])``.

    Computed by quadrature on a fine grid (the kinks of ReLU-like functions are harmless).
    Taught in notebooks/02_initialization.
    """
    f, slope = _act_and_slope(activation, math.sqrt(max(q, 0.0)) * _XI)
    # elementwise sums rather than a BLAS dot product: no thread pool to wake up
    return (float(np.sum(_PHI * f)), float(np.sum(_PHI * f**2)),
            float(np.sum(_PHI * slope**2)))


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


# ------------------------------------------------------------------------ plots
def _positive(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def plot_std_curves(results: Sequence[dict], theory: Sequence[dict] | None = None,
                    quantity: str = "act_std") -> Figure:
    """Std per layer (log scale), one panel per activation, one line per init.

    ``results`` are :func:`layer_statistics` dicts; ``theory`` the matching
    :func:`predicted_stds` dicts, drawn dashed. ``quantity`` is ``"act_std"`` or ``"grad_std"``.
    Taught in notebooks/02_initialization.
    """
    activations = list(dict.fromkeys(r["activation"] for r in results))
    fig = Figure(figsize=(4.2 * len(activations), 3.8), layout="constrained")
    axes = fig.subplots(1, len(activations), squeeze=False, sharey=True)[0]
    what = "activation std  std(a_l)" if quantity == "act_std" else "gradient std  std(dL/da_l)"
    for ax, activation in zip(axes, activations, strict=True):
        for i, res in enumerate(results):
            if res["activation"] != activation:
                continue
            layers = np.arange(1, len(res[quantity]) + 1)
            color = INIT_COLORS.get(res["init"], PALETTE[i % len(PALETTE)])
            ax.plot(layers, _positive(res[quantity]), "o-", ms=3, color=color,
                    label=INIT_LABELS.get(res["init"], res["init"]))
            if theory is not None:
                th = theory[i]
                ax.plot(layers, _positive(th[quantity]), "--", lw=2.0, alpha=0.6, color=color)
        ax.set_yscale("log")
        ax.axhspan(0.1, 10, color="0.9", zorder=0)
        ax.set_title(f"{activation}")
        ax.set_xlabel("layer l")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(what)
    axes[-1].legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{what} per layer: measured (dots) and mean-field theory (dashed); "
        "the grey band is 0.1 to 10, where a signal stays usable"
    )
    return fig


def plot_layer_histograms(results: Sequence[dict], layers: Sequence[int]) -> Figure:
    """Histograms of activations and gradients at a few layers, one row per experiment.

    ``results`` are :func:`layer_statistics` dicts; ``layers`` are 1-based layer indices.
    Each row shares its x-range (set by the first layer shown for activations and the last
    one for gradients), so a distribution that collapses to a spike or spreads out of the
    frame is easy to see. Taught in notebooks/02_initialization.
    """
    fig = Figure(figsize=(10, 2.3 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), 2, squeeze=False)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(layers))]
    for row, res in zip(axes, results, strict=True):
        for ax, key, ref_layer, name in (
            (row[0], "act_samples", layers[0], "activations a_l"),
            (row[1], "grad_samples", layers[-1], "gradients dL/da_l"),
        ):
            ref = res[key][ref_layer - 1]
            spread = float(np.percentile(np.abs(ref), 99.5)) or 1.0
            bins = np.linspace(-spread, spread, 61)
            for color, layer in zip(colors, layers, strict=True):
                values = np.clip(res[key][layer - 1], bins[0], bins[-1])
                ax.hist(values, bins=bins, histtype="step", lw=1.6, color=color,
                        density=True, label=f"layer {layer}")
            ax.set_yscale("log")
            ax.set_title(f"{res['activation']} + {INIT_LABELS.get(res['init'], res['init'])}: "
                         f"{name}", fontsize=9)
            ax.set_xlabel(f"value of {name.split()[-1]} (beyond the frame: piled at its edges)",
                          fontsize=8)
            ax.set_ylabel("density (log)", fontsize=8)
            ax.tick_params(labelsize=8)
    axes[0][1].legend(fontsize=7, ncol=2)
    fig.suptitle("Where does each layer's distribution go? A spike at 0 means the signal died; "
                 "mass piled at the edges means it blew up or saturated")
    return fig


def plot_variance_vs_n(ns: Sequence[int], measured_var: Sequence[float]) -> Figure:
    """Measured Var(z) for z = sum of n products of N(0,1) numbers, against the line Var = n.

    Taught in notebooks/02_initialization.
    """
    ns = np.asarray(ns, dtype=float)
    fig = Figure(figsize=(5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.loglog(ns, ns, "--", color=PALETTE[6], label="theory: Var(z) = n")
    ax.loglog(ns, measured_var, "o", color=PALETTE[3], ms=7, label="measured")
    ax.set_xlabel("n (number of inputs)")
    ax.set_ylabel("Var(z)")
    ax.set_title("With N(0, 1) weights, Var(z) grows like n")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def plot_normal_vs_uniform(normal: np.ndarray, uniform: np.ndarray, std: float) -> Figure:
    """Histograms of a normal and a uniform sample with the same standard deviation ``std``.

    Taught in notebooks/02_initialization.
    """
    bound = math.sqrt(3.0) * std
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(-4.5 * std, 4.5 * std, 91)
    ax.hist(normal, bins=bins, density=True, histtype="stepfilled", alpha=0.45,
            color=PALETTE[0], label=f"normal, std {np.std(normal):.4f}")
    ax.hist(uniform, bins=bins, density=True, histtype="stepfilled", alpha=0.45,
            color=PALETTE[1], label=f"uniform on ±sqrt(3)·std, std {np.std(uniform):.4f}")
    for sign in (-1, 1):
        ax.axvline(sign * bound, color=PALETTE[3], ls="--", lw=1.2)
    ax.axvline(bound, color=PALETTE[3], ls="--", lw=1.2, label=f"±sqrt(3)·std = ±{bound:.4f}")
    ax.set_xlabel("weight value")
    ax.set_ylabel("density")
    ax.set_title("Same variance, different shapes: the uniform needs bound = sqrt(3)·std")
    ax.legend(fontsize=8)
    return fig


def plot_default_linear_init(fan_ins: Sequence[int], fan_out: int,
                             measured_std: Sequence[float],
                             depth_results: Sequence[dict]) -> Figure:
    """PyTorch's default ``nn.Linear`` init against LeCun, Xavier and He.

    Left: measured weight std of ``nn.Linear(fan_in, fan_out)`` for several ``fan_in`` with the
    formula of each scheme. Right: activation std through a deep network for each init
    (``depth_results`` are :func:`layer_statistics` dicts). Taught in
    notebooks/02_initialization.
    """
    n = np.asarray(fan_ins, dtype=float)
    fig = Figure(figsize=(11, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    curves = {
        "pytorch_default": 1 / np.sqrt(3 * n),
        "lecun": 1 / np.sqrt(n),
        "xavier": np.sqrt(2 / (n + fan_out)),
        "he": np.sqrt(2 / n),
    }
    for init, curve in curves.items():
        left.loglog(n, curve, "-", color=INIT_COLORS[init], label=INIT_LABELS[init])
    left.loglog(n, measured_std, "o", color="black", ms=6,
                label=f"measured: nn.Linear(fan_in, {fan_out}).weight.std()")
    left.set_xlabel("fan_in")
    left.set_ylabel("weight std")
    left.set_title("The default sits a factor sqrt(3) below LeCun", fontsize=10)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    for res in depth_results:
        layers = np.arange(1, len(res["act_std"]) + 1)
        right.semilogy(layers, _positive(res["act_std"]), "o-", ms=3,
                       color=INIT_COLORS.get(res["init"], PALETTE[6]),
                       label=f"{res['activation']} + {INIT_LABELS.get(res['init'], res['init'])}")
    right.set_xlabel("layer l")
    right.set_ylabel("activation std")
    right.set_title("In a deep ReLU stack the default shrinks the signal layer after layer",
                    fontsize=10)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    return fig


def plot_elu_factors(depth_stds: dict[float, np.ndarray]) -> Figure:
    """Activation std of a deep ELU stack for several variance factors ``c`` (Var(w) = c/n).

    Taught in notebooks/02_initialization.
    """
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (factor, stds) in enumerate(depth_stds.items()):
        layers = np.arange(1, len(stds) + 1)
        ax.plot(layers, stds, "o-", ms=3, color=PALETTE[i % len(PALETTE)],
                label=f"Var(w) = {factor:g} / fan_in")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("activation std (log scale)")
    ax.set_title("ELU: which factor keeps the activation std flat?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
