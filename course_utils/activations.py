"""Activation functions, their derivatives, and the plots of ``notebooks/01_activations``.

Every function here is a reference implementation of an exercise of that notebook (the
notebook's test cells import them as the trusted answer) or a pure plotting/measuring helper.

Conventions shared by all activation functions below:

* NumPy only, elementwise, for a scalar or an array of any shape;
* the result has the input's shape and a floating dtype: float inputs keep their dtype
  (float32 stays float32, as in torch), integer and boolean inputs give float64;
* a 0-d input gives a NumPy float scalar;
* no overflow, invalid-value or divide-by-zero floating-point events for ``|x|`` up to 1e4
  (underflow to 0 is allowed and expected, e.g. ``exp(-1e4)``);
* the input is never modified;
* each ``*_grad`` equals what ``torch.autograd`` gives for the matching
  ``torch.nn.functional`` op at every point, kinks included: torch takes the ``x <= 0`` branch
  at 0 (``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``, ``elu'(0) = alpha``,
  ``selu'(0) = scale * alpha``) and ``relu6'(0) = relu6'(6) = 0``.

Importing this module changes no global state (no rcParams, no backend, no seeding).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from course_utils.plotting import PALETTE, color, subplots

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "GELU_SIGMOID_COEF",
    "sigmoid",
    "sigmoid_grad",
    "tanh",
    "tanh_grad",
    "relu",
    "relu_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "elu",
    "elu_grad",
    "selu",
    "selu_grad",
    "erf",
    "erfc",
    "gelu",
    "gelu_grad",
    "gelu_sigmoid_approx",
    "relu6",
    "relu6_grad",
    "dead_relu_fraction",
    "fp_outcome",
    "torch_activation",
    "reference_activations",
    "make_mlp",
    "time_activations",
    "plot_activations",
    "plot_gradient_decay",
    "plot_dead_relu_fraction",
    "plot_gelu_approximations",
    "plot_activation_speed",
]

#: SELU's constants, exactly as ``torch.nn.SELU`` uses them (Klambauer et al., 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: The coefficient of GELU's sigmoid approximation ``x * sigmoid(1.702 x)``.
GELU_SIGMOID_COEF = 1.702

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_KAPPA = 0.044715



def _float_array(x) -> np.ndarray:
    """``x`` as an array of a floating dtype (never a copy-and-modify of the caller's data)."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    return a


def _finish(out: np.ndarray):
    """Return 0-d results as NumPy scalars, everything else unchanged."""
    out = np.asarray(out)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- sigmoid, tanh
def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow.

    ``exp`` only ever sees ``-|x|``: for ``x >= 0`` use ``1 / (1 + e)``, for ``x < 0`` use
    ``e / (1 + e)``, with ``e = exp(-|x|)`` in (0, 1]. Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    e = np.exp(-np.abs(x))
    return _finish(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def sigmoid_grad(x):
    """``sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2`` with ``e = exp(-|x|)``.

    The second form is exact even where ``1 - sigmoid(x)`` would cancel. At most 1/4 (at 0).
    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    e = np.exp(-np.abs(x))
    return _finish(e / (1.0 + e) ** 2)


def tanh(x):
    """Hyperbolic tangent (``2 sigmoid(2x) - 1``). Taught in ``notebooks/01_activations``."""
    return _finish(np.tanh(_float_array(x)))


def tanh_grad(x):
    """``tanh'(x) = 1 - tanh(x)^2`` (at most 1, at 0). Taught in ``notebooks/01_activations``."""
    t = np.tanh(_float_array(x))
    return _finish(1.0 - t * t)


# --------------------------------------------------------------------------- ReLU family
def relu(x):
    """``max(0, x)``. Taught in ``notebooks/01_activations``."""
    x = _float_array(x)
    return _finish(np.where(x > 0, x, np.zeros_like(x)))


def relu_grad(x):
    """1 for ``x > 0``, else 0; at exactly 0 it is 0, as in torch.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish((x > 0).astype(x.dtype))


def leaky_relu(x, negative_slope=0.01):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (``torch.nn.functional.leaky_relu``).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(np.where(x > 0, x, negative_slope * x))


def leaky_relu_grad(x, negative_slope=0.01):
    """1 for ``x > 0``, ``negative_slope`` for ``x <= 0`` (torch's choice at 0).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    one = np.ones_like(x)
    return _finish(np.where(x > 0, one, negative_slope * one))


def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha (exp(x) - 1)`` otherwise; ``expm1`` keeps it exact near 0.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = alpha * np.expm1(np.minimum(x, 0))
    return _finish(np.where(x > 0, x, neg))


def elu_grad(x, alpha=1.0):
    """1 for ``x > 0``, ``alpha exp(x)`` for ``x <= 0`` (so ``elu'(0) = alpha``, as in torch).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = alpha * np.exp(np.minimum(x, 0))
    return _finish(np.where(x > 0, np.ones_like(x), neg))


def selu(x):
    """``SELU_SCALE * elu(x, SELU_ALPHA)`` with torch's constants to full double precision.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = SELU_ALPHA * np.expm1(np.minimum(x, 0))
    return _finish(SELU_SCALE * np.where(x > 0, x, neg))


def selu_grad(x):
    """``SELU_SCALE`` for ``x > 0``, ``SELU_SCALE * SELU_ALPHA * exp(x)`` for ``x <= 0``.

    Its largest value is ``SELU_SCALE * SELU_ALPHA`` (about 1.7581), reached at 0 (where torch
    takes the ``x <= 0`` branch). Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))
    return _finish(np.where(x > 0, SELU_SCALE * np.ones_like(x), neg))


def relu6(x):
    """``min(max(0, x), 6)``. Taught in ``notebooks/01_activations``."""
    x = _float_array(x)
    return _finish(np.clip(x, 0, 6))


def relu6_grad(x):
    """1 for ``0 < x < 6``, else 0 (torch gives 0 at both kinks, 0 and 6).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(((x > 0) & (x < 6)).astype(x.dtype))


# --------------------------------------------------------------------------- GELU
_erf_elementwise = np.frompyfunc(math.erf, 1, 1)
_erfc_elementwise = np.frompyfunc(math.erfc, 1, 1)


def erf(x):
    """The error function, elementwise, in float64 (``math.erf`` on every element).

    NumPy has no ``erf``; ``math.erf`` is accurate to double precision. Used by :func:`gelu`.
    Taught in ``notebooks/01_activations``.
    """
    a = np.asarray(x, dtype=np.float64)
    return _finish(np.asarray(_erf_elementwise(a), dtype=np.float64))


def erfc(x):
    """``1 - erf(x)``, elementwise, in float64, without cancellation for large ``x``.

    Taught in ``notebooks/01_activations``.
    """
    a = np.asarray(x, dtype=np.float64)
    return _finish(np.asarray(_erfc_elementwise(a), dtype=np.float64))


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x, approximate="none"):
    """GELU ``x * Phi(x)``, ``Phi`` the standard normal CDF (``approximate="none"``), or torch's
    tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``"tanh"``).

    ``Phi(x) = erfc(-x / sqrt(2)) / 2`` is used so that the left tail keeps full relative
    precision. Computed in float64 and returned in the input's float dtype.
    Taught in ``notebooks/01_activations``.
    """
    _check_approximate(approximate)
    x0 = _float_array(x)
    x = x0.astype(np.float64)
    if approximate == "none":
        out = x * 0.5 * np.asarray(erfc(-x * _INV_SQRT_2))
    else:
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_KAPPA * x * x * x)
        out = 0.5 * x * (1.0 + np.tanh(inner))
    return _finish(out.astype(x0.dtype))


def gelu_grad(x, approximate="none"):
    """Derivative of :func:`gelu`: ``Phi(x) + x phi(x)`` (exact) or the derivative of the tanh
    formula (``"tanh"``), matching ``torch.autograd`` for ``torch.nn.functional.gelu``.

    Taught in ``notebooks/01_activations``.
    """
    _check_approximate(approximate)
    x0 = _float_array(x)
    x = x0.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * np.asarray(erfc(-x * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        out = cdf + x * pdf
    else:
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_KAPPA * x * x * x)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_KAPPA * x * x)
        out = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    return _finish(out.astype(x0.dtype))


def gelu_sigmoid_approx(x):
    """The sigmoid approximation of GELU, ``x * sigmoid(1.702 x)``.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(x * np.asarray(sigmoid(GELU_SIGMOID_COEF * x)))


# --------------------------------------------------------------------------- dead ReLUs
def dead_relu_fraction(model, x) -> float:
    """Fraction of the hidden ReLU units of ``model`` that output 0 for every sample of ``x``.

    Which units count: run ``model(x)`` once, without recording gradients and in the mode the
    model is in. Every time an ``nn.ReLU`` module (found with ``model.modules()``; functional
    ``relu`` calls and other activations do not count) produces an output of shape
    ``(N, ...)``, each of its ``prod(...)`` positions is one unit (a feature of a linear layer,
    or one channel at one position of a convolutional map); a module called twice contributes
    the units of both calls. A unit is dead when its output is exactly 0 for all ``N`` samples.
    Returns ``dead units / all units`` as a Python float; raises ``ValueError`` when the model
    has no ``nn.ReLU`` module. The model is left as it was (no hooks, no gradients, same mode).
    Taught in ``notebooks/01_activations``.
    """
    import torch
    from torch import nn

    counts = [0, 0]  # dead, total

    def hook(module, inputs, output):
        units = output.detach().reshape(output.shape[0], -1)
        counts[0] += int((units == 0).all(dim=0).sum())
        counts[1] += units.shape[1]

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the model has no nn.ReLU module")
    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if counts[1] == 0:
        raise ValueError("no nn.ReLU module ran during the forward pass")
    return counts[0] / counts[1]


# --------------------------------------------------------------------------- test helpers
def fp_outcome(fn: Callable[[], object]) -> str:
    """Run ``fn()`` with NumPy raising on overflow, invalid values and division by zero (underflow
    to 0 is allowed): ``"ok"``, or the name of the exception (``"FloatingPointError"``).

    Used by the test cells of ``notebooks/01_activations`` to check that an activation computes
    ``exp`` only where it cannot overflow.
    """
    from course_utils.testing import outcome

    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        return outcome(fn)


# --------------------------------------------------------------------------- torch oracle
def _torch_fn(name: str, params: Mapping):
    import torch
    import torch.nn.functional as F

    table = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, params.get("negative_slope", 0.01)),
        "elu": lambda t: F.elu(t, params.get("alpha", 1.0)),
        "selu": F.selu,
        "gelu": lambda t: F.gelu(t, approximate=params.get("approximate", "none")),
        "relu6": F.relu6,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name]


def torch_activation(name: str, x, grad: bool = False, **params) -> np.ndarray:
    """What torch computes for activation ``name`` at ``x``, in float64, as a NumPy array.

    ``grad=False`` gives the value of the ``torch.nn.functional`` op (``torch.sigmoid`` and
    ``torch.tanh`` for those two), ``grad=True`` the derivative ``torch.autograd`` gives for it.
    ``params`` are ``negative_slope``, ``alpha`` or ``approximate``. The result has the shape of
    ``x`` (0-d for a scalar). The test cells of ``notebooks/01_activations`` use it as the
    independent oracle.
    """
    import torch

    f = _torch_fn(name, params)
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)
    y = f(t)
    if not grad:
        return y.detach().numpy().copy()
    y.sum().backward()
    return t.grad.numpy().copy()


def reference_activations() -> dict[str, tuple[Callable, Callable]]:
    """``{name: (f, f')}`` for the activations of ``notebooks/01_activations`` (defaults)."""
    return {
        "sigmoid": (sigmoid, sigmoid_grad),
        "tanh": (tanh, tanh_grad),
        "ReLU": (relu, relu_grad),
        "ReLU6": (relu6, relu6_grad),
        "leaky ReLU (0.1)": (lambda x: leaky_relu(x, 0.1), lambda x: leaky_relu_grad(x, 0.1)),
        "ELU": (elu, elu_grad),
        "SELU": (selu, selu_grad),
        "GELU": (gelu, gelu_grad),
    }


# --------------------------------------------------------------------------- experiments
def make_mlp(depth: int, width: int, activation: Callable, in_features: int | None = None,
             out_features: int = 1, init: Callable | None = None, seed: int = 0):
    """A plain MLP (:func:`course_utils.nets.mlp`, as one ``nn.Sequential``): ``depth`` blocks
    ``Linear -> activation()``, then a final ``Linear``.

    ``activation`` is a module class such as ``nn.ReLU``; ``init(weight, generator)``
    (optional) is applied to every hidden weight after PyTorch's default init, and then the
    biases are set to 0; the head keeps PyTorch's default weights and a zero bias. Everything
    is drawn from a private ``torch.Generator`` seeded with ``seed``, layer by layer (the global
    RNG is untouched). Taught in ``notebooks/01_activations``.
    """
    import torch

    from course_utils.nets import init_linear_, mlp

    in_features = width if in_features is None else in_features
    gen = torch.Generator().manual_seed(seed)
    model = mlp(in_features, out_features, depth=depth, width=width, activation=activation,
                init=None, seed=seed)
    for block in model.blocks:
        lin = init_linear_(block[0], "pytorch_default", generator=gen)
        if init is not None:
            with torch.no_grad():
                init(lin.weight, gen)
                lin.bias.zero_()
    init_linear_(model.head, "pytorch_default", bias=0.0, generator=gen)
    return model.as_sequential()


def time_activations(n: int = 1_000_000, repeat: int = 5, number: int = 3,
                     names: Sequence[str] = ("relu", "leaky_relu", "relu6", "elu", "selu",
                                             "gelu", "gelu_tanh", "sigmoid", "tanh"),
                     backward: bool = True) -> dict[str, float]:
    """Best-of-``repeat`` time in microseconds of one forward (and backward) pass of each torch
    activation on a float32 tensor of ``n`` elements. Timings depend on the machine: compare
    them with each other, not across machines. Taught in ``notebooks/01_activations``.
    """
    import torch
    import torch.nn.functional as F

    fns = {
        "relu": F.relu, "leaky_relu": F.leaky_relu, "relu6": F.relu6, "elu": F.elu,
        "selu": F.selu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    }
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=gen, requires_grad=backward)
    ones = torch.ones(n)
    out = {}
    for name in names:
        f = fns[name]
        for _ in range(2):  # warm-up: the first calls of an op can be much slower
            y = f(x)
            if backward:
                torch.autograd.grad(y, x, ones)
        best = math.inf
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                y = f(x)
                if backward:
                    (g,) = torch.autograd.grad(y, x, ones)
            best = min(best, (time.perf_counter() - start) / number)
        out[name] = best * 1e6
    return out


# --------------------------------------------------------------------------- plots
def plot_activations(functions: Mapping[str, tuple[Callable, Callable]] | None = None,
                     x=None, saturation: float = 0.05, ncols: int = 4):
    """One panel per activation: the function (solid), its derivative (dashed), and the inputs
    where the derivative is below ``saturation`` (shaded: there the unit passes back almost no
    gradient). ``functions`` maps a name to ``(f, f')``; by default the references of
    :func:`reference_activations`. Returns a ``matplotlib.figure.Figure``.
    Taught in ``notebooks/01_activations``.
    """
    functions = reference_activations() if functions is None else functions
    x = np.linspace(-7, 7, 1401) if x is None else np.asarray(x, dtype=float)
    n = len(functions)
    nrows = math.ceil(n / ncols)
    fig, axes = subplots(nrows, ncols, figsize=(3.1 * ncols, 2.6 * nrows), sharex=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, (f, df)) in zip(axes.flat, functions.items(), strict=False):
        y, dy = np.asarray(f(x), float), np.asarray(df(x), float)
        sat = np.abs(dy) < saturation
        ax.fill_between(x, 0, 1, where=sat, transform=ax.get_xaxis_transform(),
                        color="0.85", linewidth=0, label=f"|f'| < {saturation}")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.plot(x, y, color=PALETTE[0], lw=2, label="f(x)")
        ax.plot(x, dy, color=PALETTE[3], lw=2, ls="--", label="f'(x)")
        ax.set_title(f"{name}: max f' = {dy.max():.3g}", fontsize=10)
        ax.set_ylim(-2.2, 3.2)
        ax.set_xlabel("x")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Activation functions (solid) and derivatives (dashed); grey: saturated, "
                 "the gradient nearly vanishes there")
    return fig


def plot_gradient_decay(grad_norms: Mapping[str, Sequence[float]], title: str | None = None):
    """Per-layer gradient norms (log scale) for several networks, input layer on the left.

    ``grad_norms`` maps a label to one norm per layer. Taught in ``notebooks/01_activations``.
    """
    fig, axes = subplots(figsize=(7, 3.8))
    ax = axes[0, 0]
    for i, (label, norms) in enumerate(grad_norms.items()):
        norms = np.asarray(norms, dtype=float)
        ax.semilogy(np.arange(1, len(norms) + 1), norms, "o-", ms=3, color=color(i),
                    label=label)
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("||dL/dW|| of the layer")
    ax.set_title(title or "Gradient norm per layer: a falling curve means vanishing gradients")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def plot_dead_relu_fraction(fractions: Mapping[str, Sequence[float]], steps=None,
                            xlabel: str = "training step"):
    """Fraction of dead ReLU units against training steps, one line per run.

    Taught in ``notebooks/01_activations``.
    """
    fig, axes = subplots(figsize=(7, 3.6))
    ax = axes[0, 0]
    for i, (label, fr) in enumerate(fractions.items()):
        fr = np.asarray(fr, dtype=float)
        xs = np.arange(len(fr)) if steps is None else np.asarray(steps)
        ax.plot(xs, fr, "-", lw=2, color=color(i), label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of dead ReLU units")
    ax.set_title("Dying ReLUs: a unit that outputs 0 on every sample gets no gradient")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def plot_gelu_approximations(x=None):
    """Exact GELU against its tanh and sigmoid approximations, and their absolute errors.

    The title of the right panel gives each approximation's largest error on the plotted range.
    Taught in ``notebooks/01_activations``.
    """
    x = np.linspace(-6, 6, 2401) if x is None else np.asarray(x, dtype=float)
    exact = gelu(x)
    approx = {
        "tanh approx.": gelu(x, approximate="tanh"),
        "x sigmoid(1.702x)": gelu_sigmoid_approx(x),
    }
    fig, axes = subplots(1, 2, figsize=(10, 3.6))
    ax, ax_err = axes[0]
    ax.plot(x, exact, color=PALETTE[0], lw=3, label="exact x Phi(x)")
    ax.plot(x, relu(x), color="0.6", lw=1, ls=":", label="ReLU")
    for i, (label, y) in enumerate(approx.items(), start=1):
        ax.plot(x, y, color=PALETTE[i], lw=1.5, ls="--", label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("GELU(x)")
    ax.set_title("The three curves are indistinguishable at this scale")
    ax.legend(fontsize=9)
    parts = []
    for i, (label, y) in enumerate(approx.items(), start=1):
        err = np.abs(y - exact)
        ax_err.semilogy(x, np.maximum(err, 1e-18), color=PALETTE[i], lw=1.5, label=label)
        parts.append(f"{label.split()[0]} max {err.max():.1e}")
    ax_err.set_ylim(1e-10, 1e-1)
    ax_err.set_xlabel("x")
    ax_err.set_ylabel("|approx - exact|")
    ax_err.set_title("Error: " + ", ".join(parts), fontsize=10)
    ax_err.grid(True, which="both", alpha=0.3)
    ax_err.legend(fontsize=9)
    return fig


def plot_activation_speed(times_us: Mapping[str, float]):
    """Horizontal bars of forward+backward time per activation, relative to ReLU if present.

    ``times_us`` comes from :func:`time_activations`. Taught in ``notebooks/01_activations``.
    """
    names = sorted(times_us, key=times_us.get)
    vals = np.array([times_us[n] for n in names])
    base = times_us.get("relu", vals.min())
    fig, axes = subplots(figsize=(7, 0.35 * len(names) + 1.4))
    ax = axes[0, 0]
    ax.barh(names, vals, color=[PALETTE[0] if n == "relu" else PALETTE[5] for n in names])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v / base:.1f}x", va="center", fontsize=9)
    ax.set_xlabel("time per forward + backward pass (microseconds, this machine)")
    ax.set_title("Cost of each activation in torch (ratio to ReLU)")
    ax.set_xlim(0, vals.max() * 1.2)
    return fig
