"""The figures of ``notebooks/00_unstable_gradients``. Every ``plot_*`` function is
pure: it takes numbers and returns a ``matplotlib`` Figure, never calls ``plt.show`` and never
touches rcParams.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from course_utils.plotting import color
from course_utils.unstable_gradients.experiments import tent_network


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
