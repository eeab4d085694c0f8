"""Gradient flow: per-layer gradient norms of a deep MLP, on a log scale.

Shown in notebooks/00_unstable_gradients (the chain rule multiplies one factor per layer).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_utils.nets import HIDDEN_ACTIVATIONS, INIT_LABELS, INITS, he_gain, mlp, single_thread
from course_utils.plotting import (
    OKABE_ITO,
    figure_with_axes,
    log_safe,
    set_log_axis,
    style_axes,
)

from .base import Visualiser, dropdown, int_slider

# A layer whose gradient norm is 100 times smaller (larger) than the output layer's is drawn in
# the vanishing (exploding) band.
BAND_FACTOR = 100.0


def gradient_flow_data(depth: int = 20, width: int = 64, activation: str = "sigmoid",
                       init: str = "pytorch_default", n_samples: int = 64,
                       seed: int = 0) -> dict:
    """One forward/backward pass of a ``depth``-layer MLP on random regression data.

    Returns ``{"layer": 1..depth+1, "grad_norms": ‖∂L/∂W_l‖₂ per Linear layer (input side first,
    output layer last), "reference": the output layer's norm, "ratio": first/last,
    "verdict": "vanishing" | "exploding" | "healthy", plus the settings}``.
    """
    if depth < 1 or width < 1:
        raise ValueError("depth and width must be at least 1")
    with single_thread():
        gen = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(n_samples, width, generator=gen, dtype=torch.float64)
        y = torch.randn(n_samples, 1, generator=gen, dtype=torch.float64)
        model = mlp(width, 1, depth=depth, width=width, activation=activation, init=init,
                    gain=he_gain(activation) if init == "he" else None, head_gain=1.0,
                    bias=0.0, seed=seed, dtype=torch.float64)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        norms = np.array([float(lin.weight.grad.norm()) for lin in model.linears])
    reference = norms[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(norms[0] / reference) if reference > 0 else float("nan")
    if not np.all(np.isfinite(norms)) or ratio > BAND_FACTOR:
        verdict = "exploding"
    elif not ratio >= 1.0 / BAND_FACTOR:
        verdict = "vanishing"
    else:
        verdict = "healthy"
    return {"layer": np.arange(1, len(norms) + 1), "grad_norms": norms, "reference": reference,
            "ratio": ratio, "verdict": verdict, "loss": float(loss.detach()), "depth": depth,
            "width": width, "activation": activation, "init": init}


def plot_gradient_flow(data: dict, fig: Figure | None = None) -> Figure:
    """Per-layer gradient norms (log scale) with the vanishing and exploding bands shaded."""
    fig, ax = figure_with_axes(fig, "gradient_flow", 8.0, 3.8,
                               lambda f: f.add_subplot(1, 1, 1))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.14, top=0.84)
    layers, norms, ref = data["layer"], log_safe(data["grad_norms"]), data["reference"]
    ref = ref if np.isfinite(ref) and ref > 0 else 1.0
    lo, hi = ref / BAND_FACTOR, ref * BAND_FACTOR
    ymin = min(norms.min(), lo) / 10
    ymax = max(norms.max(), hi) * 10
    set_log_axis(ax)
    ax.set_ylim(ymin, ymax)
    ax.axhspan(ymin, lo, color=OKABE_ITO["sky_blue"], alpha=0.18, lw=0)
    ax.axhspan(hi, ymax, color=OKABE_ITO["vermillion"], alpha=0.15, lw=0)
    ax.axhline(ref, color=OKABE_ITO["grey"], ls="--", lw=1)
    ax.text(0.99, lo, f"vanishing band (< output layer / {BAND_FACTOR:.0f})",
            transform=ax.get_yaxis_transform(), ha="right", va="top", fontsize=8)
    ax.text(0.99, hi, f"exploding band (> output layer × {BAND_FACTOR:.0f})",
            transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
    ax.plot(layers, norms, color=OKABE_ITO["blue"], marker="o", ms=4, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    style_axes(ax, xlabel="layer l (1 = next to the input; last = output layer)",
               ylabel="gradient norm ‖∂L/∂W_l‖₂ (log)")
    verdict = data["verdict"]
    what = {"vanishing": "early layers get almost no gradient: VANISHING",
            "exploding": "early layers get huge gradients: EXPLODING",
            "healthy": "gradients stay within 100× of the output layer: healthy"}[verdict]
    ratio = data["ratio"]
    ratio_txt = f"{ratio:.1e}" if np.isfinite(ratio) else "overflow"
    fig.suptitle(f"{data['depth']} hidden layers, {data['activation']}, "
                 f"{INIT_LABELS.get(data['init'], data['init'])}: first/last = {ratio_txt}\n"
                 f"Look at the left end: {what}", fontsize=10)
    return fig


class GradientFlowExplorer(Visualiser):
    """Depth, width, activation and init controls over :func:`plot_gradient_flow`.

    Shown in notebooks/00_unstable_gradients.
    """

    name = "gradient_flow"
    defaults = {"depth": 20, "width": 64, "activation": "sigmoid", "init": "pytorch_default"}
    layout_columns = 2

    data_function = staticmethod(gradient_flow_data)
    plot_function = staticmethod(plot_gradient_flow)

    def make_controls(self):
        p = self.params
        return {
            "depth": int_slider("hidden layers", p["depth"], 1, 50),
            "width": int_slider("width", p["width"], 4, 256, step=4),
            "activation": dropdown("activation", p["activation"], list(HIDDEN_ACTIVATIONS)),
            "init": dropdown("init", p["init"], [(INIT_LABELS[k], k) for k in INITS]),
        }


def gradient_flow_explorer(**params) -> GradientFlowExplorer:
    """Build the explorer (display it as a cell's last expression)."""
    return GradientFlowExplorer(**params)
