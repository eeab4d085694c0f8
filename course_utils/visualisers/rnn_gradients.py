"""RNN gradients through time: the spectral radius of the recurrent weights against the norm of
``d h_T / d h_t``, and how saturation of the tanh caps the growth (and, with large inputs,
makes the gradient vanish at any radius).

Shown in notebooks/06_architectures. The tanh RNN is ``h_t = tanh(W_hh h_{t-1} + W_xh x_t)``
with ``W_hh`` a multiple of a random orthogonal matrix (every singular value equals the radius)
and inputs of a chosen size; the norms are those of
:func:`course_utils.architectures.rnn_hidden_grad_norms`.
"""

from __future__ import annotations

import functools

import numpy as np
from matplotlib.figure import Figure

from course_utils.architectures import recurrent_matrix, rnn_forward, rnn_hidden_grad_norms
from course_utils.plotting import (
    LINESTYLES,
    OKABE_ITO,
    color,
    figure_with_axes,
    log_safe,
    set_log_axis,
    style_axes,
)

from .base import Visualiser, float_slider, int_slider, log_slider

REFERENCE_RADII = (0.5, 0.9, 1.1, 1.5)


@functools.lru_cache(maxsize=64)
def _case(radius: float, input_scale: float, T: int, hidden: int, seed: int):
    rng = np.random.default_rng(seed)
    W_xh = rng.normal(size=(hidden, 4)) / 2
    xs = rng.normal(size=(T, 4)) * input_scale
    W_hh = recurrent_matrix(hidden, radius, seed + 1)
    b, h0 = np.zeros(hidden), np.zeros(hidden)
    norms = rnn_hidden_grad_norms(W_hh, W_xh, b, xs, h0)[::-1].copy()  # index: distance - 1
    hs = rnn_forward(W_hh, W_xh, b, xs, h0)[1:]
    saturation = 1.0 - (1.0 - hs**2).mean(axis=1)  # 1 - mean tanh derivative, per step
    norms.setflags(write=False)
    saturation.setflags(write=False)
    return norms, saturation


def rnn_gradient_data(radius: float = 0.9, input_scale: float = 0.05, T: int = 50,
                      hidden: int = 32, seed: int = 0) -> dict:
    """Norms of ``d h_T / d h_t`` against the distance ``T - t`` for a tanh RNN whose recurrent
    matrix has spectral radius ``radius`` (and, for comparison, for a few fixed radii), the
    prediction ``radius ** distance`` of the linear regime, and the mean saturation
    ``1 - mean(1 - h_t**2)`` of the hidden units at every step."""
    if radius <= 0 or input_scale < 0:
        raise ValueError("radius must be positive and input_scale non-negative")
    if T < 1 or hidden < 1:
        raise ValueError("T and hidden must be at least 1")
    T, hidden, seed = int(T), int(hidden), int(seed)
    norms, saturation = _case(float(radius), float(input_scale), T, hidden, seed)
    distance = np.arange(1, T + 1)
    refs = {r: _case(r, float(input_scale), T, hidden, seed)[0] for r in REFERENCE_RADII}
    with np.errstate(over="ignore"):
        linear = float(radius) ** distance.astype(float)
    return {"radius": float(radius), "input_scale": float(input_scale), "T": T,
            "distance": distance, "norms": norms, "linear": linear, "references": refs,
            "saturation": saturation, "longest": float(norms[-1])}


def plot_rnn_gradients(data: dict, fig: Figure | None = None) -> Figure:
    """Left: ``||d h_T / d h_t||`` against the distance, for the chosen radius (bold), the
    reference radii (thin) and ``radius ** distance`` (dotted). Right: saturation per step."""
    fig, (ax_n, ax_s) = figure_with_axes(
        fig, "rnn_gradients", 11.0, 4.2,
        lambda f: f.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]}))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.8, wspace=0.25)
    d = data["distance"]
    for i, (r, ref) in enumerate(data["references"].items()):
        ax_n.plot(d, log_safe(ref), color=color(i + 1), lw=1, ls=LINESTYLES[(i + 1) % 8],
                  alpha=0.7, label=f"radius {r:g}")
    ax_n.plot(d, log_safe(data["linear"]), color=OKABE_ITO["grey"], ls=":", lw=1.5,
              label=f"{data['radius']:.2f} ** distance")
    ax_n.plot(d, log_safe(data["norms"]), color=OKABE_ITO["blue"], lw=2.6,
              label=f"radius {data['radius']:.2f} (chosen)")
    finite = np.concatenate([log_safe(data["norms"]), *map(log_safe, data["references"].values())])
    lo, hi = max(finite.min(), 1e-30), min(finite.max(), 1e30)
    ax_n.set_ylim(lo / 3, hi * 3)
    set_log_axis(ax_n)
    ax_n.legend(fontsize=7, frameon=False, loc="lower left")
    style_axes(ax_n, xlabel="distance T - t (steps)", ylabel="‖∂h_T/∂h_t‖₂ (log)",
               title=f"T = {data['T']}, inputs of size {data['input_scale']:.3g}: "
                     f"‖∂h_T/∂h_0‖ = {data['longest']:.2e}")
    steps = np.arange(1, data["T"] + 1)
    ax_s.plot(steps, data["saturation"], color=OKABE_ITO["vermillion"], lw=2)
    ax_s.set_ylim(0, 1)
    style_axes(ax_s, xlabel="time step t", ylabel="1 - mean tanh'(·) at step t",
               title="saturation of the hidden units")
    fig.suptitle("Look for: below radius 1 the gradient shrinks like radius ** distance; above 1 "
                 "it grows, far less than\nradius ** distance once the hidden units saturate "
                 "(right); with large inputs saturation makes it vanish at any radius",
                 fontsize=10)
    return fig


class RNNGradientExplorer(Visualiser):
    """Slide the spectral radius of a tanh RNN's recurrent matrix, the input size and the
    sequence length; watch the norm of ``d h_T / d h_t`` through time.

    Shown in notebooks/06_architectures.
    """

    name = "rnn_gradient_explorer"
    defaults = {"radius": 0.9, "input_scale": 0.05, "T": 50}
    layout_columns = 3

    def compute(self, params):
        return rnn_gradient_data(**params)

    def plot(self, data, fig=None):
        return plot_rnn_gradients(data, fig=fig)

    def make_controls(self):
        p = self.params
        return {
            "radius": float_slider("spectral radius of W_hh", p["radius"], 0.3, 2.0, 0.05),
            "input_scale": log_slider("input size", p["input_scale"], -3, 1, step=0.25),
            "T": int_slider("sequence length T", p["T"], 5, 100, 5),
        }


def rnn_gradient_explorer(**params) -> RNNGradientExplorer:
    """Build the visualiser (display it as a cell's last expression)."""
    return RNNGradientExplorer(**params)
