"""Plots of ``notebooks/02_initialization``: pure functions that return a
``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from course_utils.initialization.schemes import (
    INIT_COLORS,
    INIT_LABELS,
)
from course_utils.plotting import PALETTE


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


def plot_first_losses(runs: dict[str, dict]) -> Figure:
    """Training loss per step (log scale) of classifiers that differ in their output layer.

    ``runs`` maps a label to a :func:`train_first_steps` dict; the dotted line is ln 10, the
    loss of a uniform prediction over the 10 digits. Used in notebooks/02_initialization.
    """
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (label, run) in enumerate(runs.items()):
        ax.plot(np.arange(len(run["loss"])), run["loss"], "-", lw=1.8,
                color=PALETTE[i % len(PALETTE)], label=label)
    ax.axhline(math.log(10), color="0.4", ls=":", lw=1.2, label="ln 10 = 2.303")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training loss (cross-entropy, log scale)")
    ax.set_title("Training loss over the first steps, by output-layer init")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
