"""Batch-norm explorer: batch statistics against running statistics, train versus eval.

Shown in notebooks/03_batch_norm. The statistics come from ``torch.nn.BatchNorm1d`` itself
(biased batch variance to normalize, unbiased variance in the running average).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course_utils.nets import single_thread
from course_utils.plotting import (
    OKABE_ITO,
    figure_with_axes,
    style_axes,
)

from .base import Visualiser, float_slider, int_slider

EPS = 1e-5


def batchnorm_data(batch_size: int = 16, momentum: float = 0.1, mode: str = "train",
                   steps: int = 50, feature_mean: float = 3.0, feature_std: float = 2.0,
                   n_probe_batches: int = 64, bins: int = 40, seed: int = 0) -> dict:
    """Feed ``steps`` training batches of x ~ N(feature_mean, feature_std²) to a BatchNorm1d(1).

    Returns per step the batch mean, biased batch variance, and the running mean and variance
    after the update; then the normalized outputs of ``n_probe_batches`` fresh batches in
    ``mode`` ("train": each batch's own statistics; "eval": the running statistics), with
    their histogram, mean and std.
    """
    if mode not in ("train", "eval"):
        raise ValueError("mode must be 'train' or 'eval'")
    if batch_size < 2:
        raise ValueError("batch norm in training mode needs at least 2 samples per batch")
    with single_thread():
        gen = torch.Generator().manual_seed(seed)
        bn = torch.nn.BatchNorm1d(1, momentum=momentum, eps=EPS, dtype=torch.float64)
        bn.train()
        x = feature_mean + feature_std * torch.randn(steps, batch_size, 1, generator=gen,
                                                      dtype=torch.float64)
        running_mean, running_var = np.empty(steps), np.empty(steps)
        with torch.no_grad():
            for t in range(steps):
                bn(x[t])
                running_mean[t] = float(bn.running_mean[0])
                running_var[t] = float(bn.running_var[0])
        if steps:
            batch_mean = x.mean(dim=(1, 2)).numpy()
            batch_var = x.var(dim=(1, 2), unbiased=False).numpy()
        else:
            batch_mean, batch_var = np.empty(0), np.empty(0)
        probe = feature_mean + feature_std * torch.randn(n_probe_batches, batch_size,
                                                          generator=gen, dtype=torch.float64)
        with torch.no_grad():
            if mode == "train":
                out = torch.cat([F.batch_norm(b[:, None], None, None, training=True, eps=EPS)
                                 for b in probe])
            else:
                bn.eval()
                out = bn(probe.reshape(-1, 1))
        out = out.numpy().ravel()
    counts, edges = np.histogram(out, bins=bins)
    return {"step": np.arange(1, steps + 1), "batch_mean": batch_mean, "batch_var": batch_var,
            "running_mean": running_mean, "running_var": running_var,
            "final_running_mean": float(bn.running_mean[0]),
            "final_running_var": float(bn.running_var[0]),
            "out": out, "out_mean": float(out.mean()), "out_std": float(out.std()),
            "hist": (counts, edges), "mode": mode, "batch_size": batch_size,
            "momentum": momentum, "steps": steps, "feature_mean": feature_mean,
            "feature_std": feature_std}


def plot_batchnorm(data: dict, fig: Figure | None = None) -> Figure:
    """Batch vs running mean, batch vs running variance, and the normalized distribution."""
    fig, (ax_m, ax_v, ax_h) = figure_with_axes(fig, "batchnorm", 11.0, 3.9,
                                               lambda f: f.subplots(1, 3))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.15, top=0.8, wspace=0.3)
    step = data["step"]
    for ax, batch, running, true, what in (
            (ax_m, data["batch_mean"], data["running_mean"], data["feature_mean"], "mean"),
            (ax_v, data["batch_var"], data["running_var"], data["feature_std"] ** 2,
             "variance")):
        if len(step):
            ax.plot(step, batch, ls="none", marker=".", ms=4, color=OKABE_ITO["sky_blue"],
                    label=f"batch {what}")
            ax.plot(step, running, color=OKABE_ITO["blue"], lw=2, label=f"running {what}")
        ax.axhline(true, color="black", ls="--", lw=1, label=f"true {what}")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        style_axes(ax, xlabel="training step (batches seen)",
                   ylabel=f"{what} of x ({'units of x' if what == 'mean' else 'units of x²'})",
                   title=f"{what}: batch (dots) vs running (line)")
    counts, edges = data["hist"]
    widths = np.diff(edges)
    density = counts / max(counts.sum(), 1) / widths
    ax_h.stairs(density, edges, fill=True, color=OKABE_ITO["orange"], alpha=0.7,
                label=f"BN output ({data['mode']} mode)")
    grid = np.linspace(-4, 4, 200)
    ax_h.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), color="black", ls="--", lw=1,
              label="N(0, 1)")
    lo, hi = min(edges[0], -4), max(edges[-1], 4)
    ax_h.set_xlim(max(lo, -12), min(hi, 12))
    ax_h.legend(fontsize=7, frameon=False, loc="upper right")
    style_axes(ax_h, xlabel="normalized output x̂ (standard units)", ylabel="density",
               title=f"{data['mode']} mode: mean {data['out_mean']:.2f}, std "
                     f"{data['out_std']:.2f}")
    fig.suptitle(f"batch size {data['batch_size']}, momentum {data['momentum']:g}, "
                 f"{data['steps']} steps. Look for: the running line smoothing the noisy dots; "
                 "in eval mode the output is\nstandardized (mean 0, std 1) only once the running "
                 "statistics have caught up with the true ones", fontsize=10)
    return fig


class BatchNormExplorer(Visualiser):
    """Batch size, momentum, steps seen and the train/eval switch.

    Shown in notebooks/03_batch_norm.
    """

    name = "batch_norm_explorer"
    defaults = {"batch_size": 16, "momentum": 0.1, "mode": "train", "steps": 50}
    layout_columns = 2

    data_function = staticmethod(batchnorm_data)
    plot_function = staticmethod(plot_batchnorm)

    def make_controls(self):
        import ipywidgets as w

        p = self.params
        return {
            "batch_size": int_slider("batch size", p["batch_size"], 2, 128),
            "momentum": float_slider("momentum", p["momentum"], 0.01, 1.0, 0.01),
            "steps": int_slider("training steps", p["steps"], 0, 300, step=5),
            "mode": w.ToggleButtons(options=["train", "eval"], value=p["mode"],
                                    description="mode"),
        }


def batch_norm_explorer(**params) -> BatchNormExplorer:
    """Build the explorer (display it as a cell's last expression)."""
    return BatchNormExplorer(**params)
