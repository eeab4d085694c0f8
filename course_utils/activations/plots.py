"""Plots of ``notebooks/01_activations``: pure functions that return a ``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from course_utils.activations.experiments import (
    reference_activations,
)
from course_utils.activations.functions import (
    gelu,
    gelu_sigmoid_approx,
    relu,
)
from course_utils.plotting import PALETTE, color, subplots


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


def plot_dying_units(runs):
    """What :func:`dying_units_experiment` measured, one dot per seed and a bar for the mean:
    left, the fraction of hidden units that are off on every training sample; right, the test
    accuracy; each after the burst of large steps and after the recovery phase.

    ``runs`` is the list of :class:`DyingRun` it returns. Taught in
    ``notebooks/01_activations``.
    """
    names = list(dict.fromkeys(r.activation for r in runs))
    panels = [("fraction of hidden units off on every sample",
               ("off_after_burst", "off_after_recovery")),
              ("test accuracy", ("accuracy_after_burst", "accuracy_after_recovery"))]
    phases = ("after the burst", "after recovery")
    fig, axes = subplots(1, 2, figsize=(10, 3.8))
    pos = np.arange(len(names))
    for ax, (ylabel, fields) in zip(axes[0], panels, strict=True):
        for j, (field, phase) in enumerate(zip(fields, phases, strict=True)):
            offset = (j - 0.5) * 0.36
            for i, name in enumerate(names):
                v = np.array([getattr(r, field) for r in runs if r.activation == name])
                ax.bar(pos[i] + offset, v.mean(), 0.34, color=color(j), alpha=0.45,
                       label=phase if i == 0 else None)
                ax.plot(np.full(v.size, pos[i] + offset), v, "o", ms=4, color=color(j))
        ax.set_xticks(pos, names)
        ax.set_ylim(0, 1)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=9, loc="upper right")
    axes[0, 0].set_title("Units that are off (dots: seeds; bars: mean)", fontsize=10)
    axes[0, 1].set_title("Test accuracy on the digits (10 classes)", fontsize=10)
    return fig
