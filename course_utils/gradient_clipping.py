"""Gradient clipping by value and by norm, and the plots around it.

Taught in ``notebooks/04_gradient_clipping``. :func:`clip_by_value` and :func:`clip_by_norm`
work on one NumPy array; :func:`clip_grad_value_` and :func:`clip_grad_norm_` work in place on
the ``.grad`` of torch parameters and match ``torch.nn.utils``. The plotting functions are
pure: they return a ``Figure`` and touch no global state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_utils.nets import mlp
from course_utils.plotting import OKABE_ITO, PALETTE, color, row_of_axes


# --------------------------------------------------------------------------- NumPy
# --------------------------------------------------------------------------- the experiment
def make_outlier_data(n: int = 512, d: int = 10, heavy_fraction: float = 0.02,
                      heavy_scale: float = 20.0, seed: int = 0):
    """Regression data in which a few rows have features ``heavy_scale`` times larger.

    Returns ``(X, y, heavy)``: ``X`` (n, d) standard normal, except the rows where the boolean
    mask ``heavy`` is set (each with probability ``heavy_fraction``), which are scaled up;
    ``y = 3 tanh(X w / 3) + 0.1 noise`` (n, 1) for a random ``w``. Drawn from
    ``torch.Generator().manual_seed(seed)``. Used in ``notebooks/04_gradient_clipping``.
    """
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen)
    heavy = torch.rand(n, generator=gen) < heavy_fraction
    X[heavy] *= heavy_scale
    w_star = torch.randn(d, 1, generator=gen)
    y = 3 * torch.tanh(X @ w_star / 3) + 0.1 * torch.randn(n, 1, generator=gen)
    return X, y, heavy


def make_model(seed: int = 0, d: int = 10, hidden: int = 64) -> nn.Sequential:
    """The notebook's regression network: Linear(d, hidden), ReLU, Linear(hidden, hidden),
    ReLU, Linear(hidden, 1), with PyTorch's default init seeded with ``seed`` (a
    :func:`course_utils.nets.mlp`). Used in ``notebooks/04_gradient_clipping``.
    """
    return mlp(d, 1, depth=2, width=hidden, activation="relu", init=None,
               seed=seed).as_sequential()


def clip_by_value(grad, clip_value):
    """Clip every entry of ``grad`` into ``[-clip_value, clip_value]``; returns a new array.

    Taught in ``notebooks/04_gradient_clipping``.
    """
    return np.clip(np.asarray(grad, dtype=float), -clip_value, clip_value)


def clip_by_norm(grad, max_norm):
    """Rescale ``grad`` to L2 norm ``max_norm`` if its norm (over all entries) is larger.

    Returns a new float array; a gradient whose norm is at most ``max_norm`` comes back
    unchanged (clipping only ever shrinks). Taught in ``notebooks/04_gradient_clipping``.
    """
    g = np.array(grad, dtype=float)
    norm = float(np.sqrt(np.sum(g * g)))
    if norm > max_norm:
        g = g * (max_norm / norm)
    return g


def cosine_similarity(a, b) -> float:
    """Cosine of the angle between two arrays (flattened). Used in ``04_gradient_clipping``."""
    a = np.ravel(np.asarray(a, dtype=float))
    b = np.ravel(np.asarray(b, dtype=float))
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- torch
def _grads(parameters):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_value_(parameters, clip_value) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` in place.

    ``parameters`` is a tensor or an iterable of tensors; those without ``.grad`` are skipped.
    Same as ``torch.nn.utils.clip_grad_value_``. Taught in ``notebooks/04_gradient_clipping``.
    """
    clip_value = float(clip_value)
    with torch.no_grad():
        for g in _grads(parameters):
            g.clamp_(min=-clip_value, max=clip_value)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0) -> torch.Tensor:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of the vector of per-tensor norms (the norm of all
    gradient entries concatenated); ``norm_type=inf`` gives the largest absolute entry. Every
    gradient is multiplied in place by ``min(1, max_norm / (total + 1e-6))``. Returns the total
    norm before clipping (a 0-d tensor; ``tensor(0.)`` when no parameter has a gradient).
    Same as ``torch.nn.utils.clip_grad_norm_``. Taught in ``notebooks/04_gradient_clipping``.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return torch.tensor(0.0)
    with torch.no_grad():
        norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
        total = torch.linalg.vector_norm(norms, norm_type)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype))
    return total


def total_grad_norm(parameters, norm_type=2.0) -> float:
    """Global gradient norm of ``parameters`` as a float, without changing anything.

    Used in ``notebooks/04_gradient_clipping`` to watch gradients during training.
    """
    grads = _grads(parameters)
    if not grads:
        return 0.0
    with torch.no_grad():
        norms = torch.stack([torch.linalg.vector_norm(g, float(norm_type)) for g in grads])
        return torch.linalg.vector_norm(norms, float(norm_type)).item()


# --------------------------------------------------------------------------- plots
def plot_clipping_geometry(grad, clip_value, max_norm):
    """A 2-D gradient, clipped by value (a square) and by norm (a circle), drawn as arrows.

    The left panel shows the whole picture; the right one zooms on the clipping region.
    Used in ``notebooks/04_gradient_clipping``.
    """
    from matplotlib.patches import Circle, Rectangle

    g = np.asarray(grad, dtype=float)
    by_value = clip_by_value(g, clip_value)
    by_norm = clip_by_norm(g, max_norm)
    fig, axes = row_of_axes(ncols=2, width=4.6, height=4.4)
    for ax, zoom in zip(axes, (False, True), strict=True):
        ax.add_patch(Rectangle((-clip_value, -clip_value), 2 * clip_value, 2 * clip_value,
                               fill=False, ls="--", color=PALETTE[1]))
        ax.add_patch(Circle((0, 0), max_norm, fill=False, ls="--", color=PALETTE[0]))
        if not zoom:
            ax.annotate("", g, (0, 0), arrowprops={"arrowstyle": "->", "color": "grey"})
            ax.plot([], [], color="grey", label=f"gradient ({g[0]:.4g}, {g[1]:.4g})")
        for vec, colour, name in ((by_value, PALETTE[1], "clipped by value"),
                                  (by_norm, PALETTE[0], "clipped by norm")):
            ax.annotate("", vec, (0, 0), arrowprops={"arrowstyle": "->", "color": colour,
                                                     "lw": 2})
            ax.plot([], [], color=colour, lw=2, label=f"{name} ({vec[0]:.4g}, {vec[1]:.4g})")
        lim = 1.25 * max(clip_value, max_norm) if zoom else 1.1 * np.abs(g).max()
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="lightgrey", lw=0.8)
        ax.axvline(0, color="lightgrey", lw=0.8)
        ax.set_xlabel("g[0]")
        ax.set_ylabel("g[1]")
        ax.set_title("zoom on the clipping region" if zoom else "whole gradient")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("By value: the box turns the arrow; by norm: the circle keeps its direction")
    return fig


def plot_grad_norm_trace(norms_by_run: dict, threshold: float | None = None,
                         title: str = "Global gradient norm during training",
                         ylabel: str = "global gradient norm (log scale)"):
    """Gradient norm per step (log scale) for each run, with the clipping threshold.

    A run that produced inf/NaN is cut where it broke and marked with a cross.
    Used in ``notebooks/04_gradient_clipping``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, norms) in enumerate(norms_by_run.items()):
        norms = np.asarray(norms, dtype=float)
        finite = np.isfinite(norms)
        n_ok = int(np.argmin(finite)) if not finite.all() else len(norms)
        colour = color(i)
        ax.semilogy(np.arange(n_ok), norms[:n_ok], color=colour, lw=1, label=label)
        if n_ok < len(norms) and n_ok > 0:
            ax.plot([n_ok - 1], [norms[n_ok - 1]], "x", color=colour, ms=10, mew=2)
    if threshold is not None:
        ax.axhline(threshold, color=PALETTE[3], ls="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return fig


def plot_loss_curves(histories: dict, title: str = "Training loss", log: bool = True):
    """Loss per step for each run (``label -> losses``); a diverged run ends with a cross.

    Used in ``notebooks/04_gradient_clipping``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, loss) in enumerate(histories.items()):
        loss = np.asarray(loss, dtype=float)
        finite = np.isfinite(loss)
        n_ok = int(np.argmin(finite)) if not finite.all() else len(loss)
        colour = color(i)
        ax.plot(np.arange(n_ok), loss[:n_ok], color=colour, label=label)
        if n_ok < len(loss) and n_ok > 0:
            ax.plot([n_ok - 1], [loss[n_ok - 1]], "x", color=colour, ms=10, mew=2)
            ax.annotate(f"inf/NaN at step {n_ok}", (n_ok - 1, loss[n_ok - 1]), color=colour,
                        xytext=(5, -12), textcoords="offset points")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    ax.set_title(title)
    ax.legend()
    return fig


def plot_threshold_sweep(thresholds, final_losses, clip_fractions, norms_percentiles=None):
    """Final loss and the fraction of clipped steps against the threshold (log x axis).

    ``norms_percentiles`` (``label -> value``) draws vertical lines at observed percentiles.
    Used in ``notebooks/04_gradient_clipping``.
    """
    fig, axes = row_of_axes(ncols=2, width=4.8)
    t = np.asarray(thresholds, dtype=float)
    losses = np.asarray(final_losses, dtype=float)
    shown = np.where(np.isfinite(losses), losses, np.nan)
    axes[0].semilogx(t, shown, "o-", color=PALETTE[0])
    for tt, ll in zip(t, losses, strict=True):
        if not math.isfinite(ll):
            axes[0].annotate("diverged", (tt, np.nanmax(shown) if np.isfinite(shown).any()
                                          else 1.0), color=PALETTE[3], rotation=90, fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("final training loss (log)")
    axes[0].set_title("Final loss against the clipping threshold")
    axes[1].semilogx(t, clip_fractions, "s-", color=PALETTE[1])
    axes[1].set_ylabel("fraction of steps clipped")
    axes[1].set_title("How often clipping fires")
    for ax in axes:
        ax.set_xlabel("clipping threshold max_norm")
        if norms_percentiles:
            for i, (label, value) in enumerate(norms_percentiles.items()):
                ax.axvline(value, color=PALETTE[2 + i % 4], ls=":", label=label)
            ax.legend(fontsize=8)
    return fig


def plot_global_vs_per_tensor(names, original, global_clipped, per_tensor_clipped,
                              max_norm: float):
    """Per-layer gradient norms before clipping, after global and after per-tensor clipping.

    Bars on a log scale, one group per parameter tensor. Global clipping shifts every bar down
    by the same factor (ratios kept); per-tensor clipping flattens the tall bars only.
    Used in ``notebooks/04_gradient_clipping``.
    """
    fig, (ax,) = row_of_axes(width=7.0)
    x = np.arange(len(names))
    width = 0.27
    series = (("before clipping", original, OKABE_ITO["black"]),
              ("global norm clipping", global_clipped, PALETTE[0]),
              ("per-tensor clipping", per_tensor_clipped, PALETTE[1]))
    for i, (label, values, colour) in enumerate(series):
        ax.bar(x + (i - 1) * width, np.asarray(values, dtype=float), width, label=label,
               color=colour)
    ax.axhline(max_norm, color=PALETTE[3], ls="--", lw=1, label=f"max_norm {max_norm:g}")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_xlabel("parameter tensor")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title("Gradient norm per tensor: unclipped, global and per-tensor clipping")
    ax.legend(fontsize=8)
    return fig


def plot_relu6(z, depth_norms: dict | None = None):
    """Left: ReLU6 and its derivative. Right (optional): gradient norm at the first hidden
    layer against depth for each network in ``depth_norms`` (``label -> (depths, norms)``).

    Look for: the derivative is 1 or 0, never between, so ReLU6 never shrinks a gradient; it
    only zeroes it where the activation is capped. Used in ``notebooks/04_gradient_clipping``.
    """
    z = np.asarray(z, dtype=float)
    ncols = 2 if depth_norms else 1
    fig, axes = row_of_axes(ncols=ncols, width=4.8)
    ax = axes[0]
    ax.plot(z, np.clip(z, 0.0, 6.0), color=PALETTE[0], label="relu6(z)")
    ax.plot(z, ((z > 0) & (z < 6)).astype(float), color=PALETTE[3], ls="--",
            label="derivative")
    ax.set_xlabel("pre-activation z")
    ax.set_ylabel("value")
    ax.set_title("ReLU6 and its derivative")
    ax.legend(fontsize=8)
    if depth_norms:
        ax = axes[1]
        markers = "os^vD"
        for i, (label, (depths, norms)) in enumerate(depth_norms.items()):
            ax.semilogy(depths, norms, marker=markers[i % len(markers)],
                        color=color(i), label=label,
                        ls="-" if i == 0 else "--")
        ax.set_xlabel("number of layers")
        ax.set_ylabel("gradient at the first hidden layer (log)")
        ax.set_title("Gradient at the first hidden layer against depth")
        ax.legend(fontsize=8)
    return fig
