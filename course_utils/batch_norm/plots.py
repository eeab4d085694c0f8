"""Plots of ``notebooks/03_batch_norm``: pure functions that return a ``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import warnings

import numpy as np

from course_utils.plotting import PALETTE, color, row_of_axes


# --------------------------------------------------------------------------- plots
def plot_loss_curves(histories: dict, title: str = "Training loss", smooth: int = 10,
                     log: bool = False):
    """One curve per run (``label -> loss array``), smoothed with a running mean.

    A run that diverged ends where its curve stops and is marked with a cross.
    Used in ``notebooks/03_batch_norm`` and ``notebooks/04_gradient_clipping``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, loss) in enumerate(histories.items()):
        loss = np.asarray(loss, dtype=float)
        finite = np.isfinite(loss)
        n_ok = int(np.argmin(finite)) if not finite.all() else len(loss)
        shown = loss[:n_ok]
        if smooth > 1 and len(shown) >= smooth:
            kernel = np.ones(smooth) / smooth
            shown = np.convolve(shown, kernel, mode="valid")
            steps = np.arange(smooth - 1, n_ok)
        else:
            steps = np.arange(n_ok)
        colour = color(i)
        ax.plot(steps, shown, color=colour, label=label)
        if n_ok < len(loss):
            ax.plot([n_ok], [shown[-1] if len(shown) else 0], "x", color=colour, ms=10, mew=2)
            ax.annotate("inf/NaN", (n_ok, shown[-1] if len(shown) else 0), color=colour,
                        xytext=(5, 5), textcoords="offset points")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" + (f" (running mean of {smooth})" if smooth > 1 else ""))
    ax.set_title(title)
    ax.legend()
    return fig


def plot_layer_grad_norms(norms_by_run: dict, title: str = "Gradient norm per layer"):
    """Per-layer weight-gradient norms (log scale), one line per run (``label -> norms``).

    Used in ``notebooks/03_batch_norm``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, norms) in enumerate(norms_by_run.items()):
        norms = np.asarray(norms, dtype=float)
        ax.semilogy(np.arange(1, len(norms) + 1), norms, "o-", color=color(i),
                    label=label)
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel("||dL/dW|| (log scale)")
    ax.set_title(title)
    ax.legend()
    return fig


def plot_batch_stat_spread(batch_sizes, mean_spread, std_spread):
    """How noisy the batch mean and batch std are, against batch size, with 1/sqrt(B) lines.

    Used in ``notebooks/03_batch_norm``.
    """
    fig, (ax,) = row_of_axes()
    b = np.asarray(batch_sizes, dtype=float)
    ax.loglog(b, mean_spread, "o-", color=PALETTE[0], label="spread of the batch mean")
    ax.loglog(b, std_spread, "s-", color=PALETTE[1], label="spread of the batch std")
    ax.loglog(b, mean_spread[0] * np.sqrt(b[0] / b), "--", color="grey",
              label=r"$\propto 1/\sqrt{B}$")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("std over mini-batches")
    ax.set_title("Spread of the batch statistics against batch size")
    ax.legend()
    return fig


def plot_train_vs_eval_stats(batch_means, batch_vars, running_means, running_vars,
                             true_mean, true_var):
    """Batch statistics (noisy) and running averages (smooth) of one feature over steps.

    Used in ``notebooks/03_batch_norm``.
    """
    fig, axes = row_of_axes(ncols=2, width=5.0)
    steps = np.arange(1, len(batch_means) + 1)
    for ax, batch, running, true, name in (
        (axes[0], batch_means, running_means, true_mean, "mean"),
        (axes[1], batch_vars, running_vars, true_var, "variance"),
    ):
        ax.plot(steps, batch, ".", color=PALETTE[1], ms=4, label=f"batch {name} (train mode)")
        ax.plot(steps, running, "-", color=PALETTE[0], label=f"running {name} (eval mode)")
        ax.axhline(true, color="grey", ls="--", label=f"{name} of the whole data")
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: batch values jump, the running average settles")
        ax.legend(fontsize=8)
    return fig


def plot_layer_stats(stats_by_run: dict, title: str = "Activation statistics per layer"):
    """Mean and std of each layer's activations, one line per run (``label -> (means, stds)``).

    Used in ``notebooks/03_batch_norm``.
    """
    fig, axes = row_of_axes(ncols=2, width=5.0)
    for i, (label, (means, stds)) in enumerate(stats_by_run.items()):
        layers = np.arange(1, len(means) + 1)
        colour = color(i)
        axes[0].plot(layers, means, "o-", color=colour, label=label)
        axes[1].plot(layers, stds, "o-", color=colour, label=label)
    axes[0].axhline(0, color="grey", ls="--")
    axes[1].axhline(1, color="grey", ls="--")
    axes[0].set_ylabel("mean of activations")
    axes[1].set_ylabel("std of activations")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.legend(fontsize=8)
    axes[0].set_title(title + ": mean")
    axes[1].set_title(title + ": std")
    return fig


def plot_depth_sweep(depths, ratios_by_run: dict, title: str = "First/last gradient ratio at init"):
    """First/last-layer weight-gradient ratio against depth (log scale), one line per run
    (``label -> ratios``), with a dotted line at 1 (equal gradients).

    Used in ``notebooks/03_batch_norm``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, ratios) in enumerate(ratios_by_run.items()):
        ax.semilogy(depths, np.asarray(ratios, dtype=float), "o-", color=color(i), label=label)
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("||dL/dW_1|| / ||dL/dW_last|| (log scale)")
    ax.set_title(title)
    ax.legend()
    return fig


def plot_init_scale_sweep(scales, sweep: dict, chance: float | None = None,
                          title: str = "Init-scale sweep"):
    """Test accuracy (left) and final training loss (right) against the init scale (log x),
    one line per run label of :func:`init_scale_sweep`: the mean over seeds, with a band from
    the worst to the best seed. In the loss panel a cross at the top marks a scale at which a
    seed diverged (NaN loss). ``chance`` draws a dotted line at the accuracy of guessing.

    Used in ``notebooks/03_batch_norm``.
    """
    fig, axes = row_of_axes(2, width=5.0)
    s = np.asarray(scales, dtype=float)
    panels = (("accuracy", "test accuracy"), ("loss", "training loss, last 10 steps"))
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        runs = {label: np.asarray(v, dtype=float) for label, v in sweep[key].items()}
        finite = [v[np.isfinite(v)] for v in runs.values()]
        top = max((f.max() for f in finite if f.size), default=1.0)
        for i, (label, v) in enumerate(runs.items()):
            with warnings.catch_warnings():  # a scale at which every seed diverged: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(v, axis=1)
                lo, hi = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
            ax.plot(s, mean, "o-", color=color(i), label=label)
            ax.fill_between(s, lo, hi, color=color(i), alpha=0.2, linewidth=0)
            broken = np.isnan(v).any(axis=1)
            if broken.any():
                ax.plot(s[broken], np.full(int(broken.sum()), 1.08 * top), "x", color=color(i),
                        ms=9, mew=2, label=f"{label}: a seed diverged (inf/NaN)")
        if key == "accuracy" and chance is not None:
            ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("init scale (multiple of He's std)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[0].set_title(title)
    return fig
