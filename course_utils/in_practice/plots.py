"""Plots of ``notebooks/05_in_practice``: pure functions of :class:`RunResult` values (or
arrays) that return a ``matplotlib.figure.Figure`` and change no global state.
"""

from __future__ import annotations

import math

import numpy as np

from course_utils.diagnostics import UPDATE_RATIO_REFERENCE
from course_utils.in_practice.runs import RunResult
from course_utils.plotting import PALETTE, color, subplots

__all__ = ["plot_loss_curves", "plot_grad_norm_profiles", "plot_layer_histograms",
           "plot_layer_fractions", "plot_update_ratios", "plot_grad_to_weight",
           "plot_doctor_chart"]


def plot_loss_curves(groups: dict[str, list[RunResult]], title: str | None = None,
                     smooth: int = 5, log: bool = True):
    """Mini-batch loss against step: the mean over seeds as a line, min..max as a band.

    ``groups`` maps a label to that configuration's runs. Diverged steps are left blank.
    Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(figsize=(7.5, 4.2))
    ax = axes[0, 0]
    for k, (label, runs) in enumerate(groups.items()):
        L = np.vstack([r.losses for r in runs])
        if smooth > 1:
            kern = np.ones(smooth) / smooth
            L = np.vstack([np.convolve(row, kern, mode="valid") for row in L])
        steps = np.arange(L.shape[1]) + (smooth - 1) / 2
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(np.isfinite(L), L, np.nan), axis=0) if L.size else L
            lo = np.nanmin(np.where(np.isfinite(L), L, np.nan), axis=0)
            hi = np.nanmax(np.where(np.isfinite(L), L, np.nan), axis=0)
        c = color(k)
        ax.plot(steps, mean, color=c, label=label, lw=1.8)
        ax.fill_between(steps, lo, hi, color=c, alpha=0.18, lw=0)
    ax.axhline(math.log(10), color="0.5", ls=":", lw=1)
    ax.text(0.99, math.log(10), "ln 10: chance level", color="0.4", ha="right", va="bottom",
            transform=ax.get_yaxis_transform(), fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("mini-batch cross-entropy (mean over seeds, band: min..max)")
    ax.set_title(title or "Loss curves: which configurations leave the chance level, and how fast?")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_grad_norm_profiles(groups: dict[str, list[RunResult]], step: int = 0,
                            title: str | None = None):
    """Per-layer weight-gradient norm (log scale) at one step, input layer on the left.

    One line per configuration (mean of log10 over seeds). A line that falls steeply toward
    the input means vanishing gradients; a high flat line means exploding ones. Taught in
    ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(figsize=(7.5, 4.2))
    ax = axes[0, 0]
    for k, (label, runs) in enumerate(groups.items()):
        G = np.vstack([r.grad_norms[step] for r in runs])
        with np.errstate(all="ignore"):
            logg = np.log10(np.where(G > 0, G, np.nan))
            m = np.nanmean(logg, axis=0)
        layers = np.arange(1, G.shape[1] + 1)
        ax.plot(layers, m, marker="o", ms=3, color=color(k), label=label)
    ax.set_xlabel("Linear layer (1 = input side, last = output layer)")
    ax.set_ylabel(f"log10 ‖dL/dW‖ at step {step}")
    ax.set_title(title or "Per-layer gradient norms: a slope toward the input means vanishing")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_layer_histograms(names: list[str], values: list[np.ndarray], title: str,
                          xlabel: str, bins: int = 60, log_x: bool = False,
                          max_layers: int = 8):
    """Overlaid histograms of one quantity per layer (activations or their gradients).

    With ``log_x=True`` the histogram is of log10 |value| (zeros dropped), which separates
    gradients that differ by orders of magnitude. At most ``max_layers`` evenly spaced layers
    are drawn. Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(figsize=(7.5, 3.8))
    ax = axes[0, 0]
    keep = np.unique(np.linspace(0, len(values) - 1, min(max_layers, len(values))).astype(int))
    cmap_vals = np.linspace(0.15, 0.95, len(keep))
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for c, i in zip(cmap_vals, keep, strict=True):
        v = np.asarray(values[i], dtype=float)
        if log_x:
            v = np.log10(np.abs(v[v != 0])) if np.any(v != 0) else np.array([])
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        ax.hist(v, bins=bins, histtype="step", density=True, color=cmap(c), lw=1.4,
                label=f"layer {i + 1}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def plot_layer_fractions(groups: dict[str, np.ndarray], title: str | None = None):
    """Saturated (sigmoid/tanh) or dead (ReLU) fraction per hidden layer, one bar group each.

    ``groups`` maps a label to a 1-D array of fractions (input side first). Taught in
    ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(figsize=(7.5, 3.8))
    ax = axes[0, 0]
    n = max(len(v) for v in groups.values())
    w = 0.8 / max(len(groups), 1)
    for k, (label, fr) in enumerate(groups.items()):
        ax.bar(np.arange(1, len(fr) + 1) + (k - (len(groups) - 1) / 2) * w, fr, width=w,
               color=color(k), label=label)
    ax.set_xlim(0.4, n + 0.6)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("hidden layer (1 = input side)")
    ax.set_ylabel("saturated or dead fraction")
    ax.set_title(title or "Saturated (sigmoid/tanh) or dead (ReLU) units per layer")
    ax.legend(fontsize=8)
    return fig


def plot_update_ratios(run: RunResult, title: str | None = None, measured: bool = False,
                       reference: float = UPDATE_RATIO_REFERENCE, ylim=(-9.0, 1.0)):
    """log10 of the update-to-weight ratio of each Linear layer over training steps.

    ``measured=False`` plots ``log10 std(lr * grad) / std(W)``; ``True`` the step the
    optimizer really took. The dashed line is the rule-of-thumb reference (-3). Colours run
    from the input layer (dark) to the output layer (light). Taught in
    ``notebooks/05_in_practice``.
    """
    from matplotlib import colormaps

    fig, axes = subplots(figsize=(7.5, 4.0))
    ax = axes[0, 0]
    R = run.step_ratios if measured else run.update_ratios
    cmap = colormaps["viridis"]
    n = R.shape[1]
    for j in range(n):
        ax.plot(np.arange(R.shape[0]), R[:, j], color=cmap(0.1 + 0.85 * j / max(n - 1, 1)),
                lw=1.0, label=f"layer {j + 1}" if j in (0, n - 1) else None)
    ax.axhline(reference, color="k", ls="--", lw=1.2, label=f"reference {reference:g}")
    ax.set_ylim(*ylim)
    ax.set_xlabel("training step")
    what = "std(ΔW)" if measured else "std(lr · grad)"
    ax.set_ylabel(f"log10 {what} / std(W)")
    ax.set_title(title or "Update-to-weight ratio per layer: near the dashed line is healthy")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_grad_to_weight(groups: dict[str, RunResult], step: int = 0, title: str | None = None):
    """std(grad) / std(W) per Linear layer at one step (log scale), one line per run.

    Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(figsize=(7.5, 3.8))
    ax = axes[0, 0]
    for k, (label, run) in enumerate(groups.items()):
        r = run.grad_to_weight[step]
        ax.plot(np.arange(1, r.size + 1), r, marker="o", ms=3, color=color(k),
                label=label)
    ax.set_yscale("log")
    ax.set_xlabel("Linear layer (1 = input side)")
    ax.set_ylabel(f"std(grad) / std(W) at step {step}")
    ax.set_title(title or "Gradient-to-weight ratio: how far one unit-lr step would move W")
    ax.legend(fontsize=8)
    return fig


def plot_doctor_chart(run: RunResult, label: str):
    """Four panels for one mystery run: loss, per-layer gradient norms at the first and last
    recorded step, saturated/dead fraction per hidden layer over checkpoints, and the median
    update-to-weight ratio over steps. Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = subplots(1, 4, figsize=(13.0, 3.0))
    a0, a1, a2, a3 = axes[0]
    steps = np.arange(run.losses.size)
    a0.plot(steps, run.losses, color=PALETTE[0])
    finite = run.losses[np.isfinite(run.losses)]
    if finite.size and finite.min() > 0 and finite.max() > 10 * finite.min():
        a0.set_yscale("log")  # only when the loss spans orders of magnitude
    a0.axhline(math.log(10), color="0.5", ls=":", lw=1)
    a0.set_xlabel("step")
    a0.set_ylabel("mini-batch loss")
    a0.set_title(f"{label}: loss (dotted: ln 10)")
    last = int(np.max(np.flatnonzero(np.isfinite(run.grad_norms).all(axis=1)), initial=0))
    layers = np.arange(1, run.grad_norms.shape[1] + 1)
    a1.set_xlabel("Linear layer (1 = input)")
    a1.set_ylabel("‖dL/dW‖")
    a1.set_title("gradient norm per layer")
    shown = run.grad_norms[[0, last]]
    if np.any(shown > 0):
        with np.errstate(all="ignore"):
            for row, c, lab in ((0, PALETTE[1], "step 0"), (last, PALETTE[2], f"step {last}")):
                g = run.grad_norms[row]
                a1.plot(layers, np.where(g > 0, g, np.nan), marker="o", ms=3, color=c,
                        label=lab)
        a1.set_yscale("log")
        a1.legend(fontsize=7)
    else:  # a log axis cannot show 0: say what the data are instead of drawing nothing
        a1.set_xlim(0.5, layers.size + 0.5)
        a1.set_yticks([])
        what = ("every weight gradient is exactly 0" if np.all(shown == 0)
                else "no finite gradient")
        a1.text(0.5, 0.5, f"{what}\nat step 0 and at step {last},\nin every layer",
                transform=a1.transAxes, ha="center", va="center", fontsize=9)
    if run.act_fraction.size:
        for i, row in enumerate(run.act_fraction):
            a2.plot(np.arange(1, row.size + 1), row, color=PALETTE[5 if i == 0 else 3],
                    alpha=0.3 + 0.7 * i / max(len(run.act_fraction) - 1, 1), lw=1)
    a2.set_ylim(-0.03, 1.03)
    a2.set_xlabel("hidden layer")
    a2.set_ylabel("saturated / dead fraction")
    a2.set_title("light: start, dark: end")
    ur = np.where(np.isfinite(run.update_ratios), run.update_ratios, np.nan)
    med = np.full(ur.shape[0], np.nan)
    rows = ~np.isnan(ur).all(axis=1)
    med[rows] = np.nanmedian(ur[rows], axis=1)
    a3.plot(steps, med, color=PALETTE[4])
    a3.axhline(UPDATE_RATIO_REFERENCE, color="k", ls="--", lw=1)
    a3.set_ylim(-10, 2)
    a3.set_xlim(0, max(steps.size - 1, 1))
    if not rows.any():
        finite = run.grad_norms[np.isfinite(run.grad_norms)]
        note = ("undefined at every step:\nevery weight and weight\ngradient is exactly 0"
                if np.all(finite == 0) else "undefined at every step")
        a3.text(0.5, 0.82, note, transform=a3.transAxes, ha="center", va="center", fontsize=9)
    return fig
