"""Initialization lab: measured per-layer activation and gradient spread against theory.

Shown in notebooks/02_initialization.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_utils.initialization import gaussian_moments
from course_utils.nets import (
    HIDDEN_ACTIVATIONS,
    INIT_LABELS,
    INITS,
    he_gain,
    init_std,
    mlp,
    single_thread,
)
from course_utils.plotting import (
    OKABE_ITO,
    figure_with_axes,
    log_safe,
    set_log_axis,
    style_axes,
)

from .base import Visualiser, dropdown, int_slider, log_slider


def init_lab_data(depth: int = 10, width: int = 256, activation: str = "tanh",
                  init: str = "xavier", gain_mult: float = 1.0, layer: int | None = None,
                  n_samples: int = 256, bins: int = 40, seed: int = 0) -> dict:
    """Push N(0, 1) data through ``depth`` Linear+activation layers (zero biases) and back.

    Measured: std of each layer's activations a_l, and of the gradient ∂L/∂a_l for a loss
    L = Σ a_L · g with g ~ N(0, 1). Theory (mean field, infinitely wide): Var z_l =
    fan_in · Var w · E[a_{l-1}²], moments of f(z) by quadrature; backwards Var ∂L/∂a_{l-1} =
    fan_out · Var w · E[f'(z_l)²] · Var ∂L/∂a_l, the moments from
    :func:`course_utils.initialization.gaussian_moments`. Histograms of layer ``layer``
    (default: last).
    """
    layer = depth if layer is None else int(min(max(layer, 1), depth))
    with single_thread():
        gen = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(n_samples, width, generator=gen, dtype=torch.float64)
        gain = he_gain(activation) if init == "he" else None
        model = mlp(width, 1, depth=depth, width=width, activation=activation, init=init,
                    gain=gain, head_gain=1.0, scale=gain_mult, bias=0.0, seed=seed,
                    dtype=torch.float64)
        model(x, keep=True)
        upstream = torch.randn(n_samples, width, generator=gen, dtype=torch.float64)
        (model.activations[-1] * upstream).sum().backward()
        act_std = np.array([float(a.detach().std()) for a in model.activations])
        grad_std = np.array([float(a.grad.std()) for a in model.activations])
        a_sel = model.activations[layer - 1].detach().numpy().ravel()
        g_sel = model.activations[layer - 1].grad.numpy().ravel()

        var_w = (init_std(init, width, width, gain=gain) * gain_mult) ** 2
        second_moment = 1.0  # E[a_0²] for standardized inputs
        theory_act, dfd2 = [], []
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(depth):
                var_z = width * var_w * second_moment
                mean, second_moment, d2 = gaussian_moments(activation, var_z)
                theory_act.append(np.sqrt(max(second_moment - mean**2, 0.0)))
                dfd2.append(d2)
            theory_grad = np.empty(depth)
            theory_grad[-1] = 1.0  # Var of g
            for i in range(depth - 1, 0, -1):
                theory_grad[i - 1] = width * var_w * dfd2[i] * theory_grad[i]
            theory_grad = np.sqrt(theory_grad)

    def hist(v):
        v = v[np.isfinite(v)]
        if v.size == 0 or np.ptp(v) == 0:
            centre = float(v[0]) if v.size else 0.0
            return np.array([v.size]), np.array([centre - 0.5, centre + 0.5])
        return np.histogram(v, bins=bins)

    return {"layers": np.arange(1, depth + 1), "act_std": act_std, "grad_std": grad_std,
            "theory_act_std": np.array(theory_act), "theory_grad_std": theory_grad,
            "layer": layer, "act_hist": hist(a_sel), "grad_hist": hist(g_sel),
            "weight_std": float(np.sqrt(var_w)), "depth": depth, "width": width,
            "activation": activation, "init": init, "gain_mult": gain_mult}


def plot_initialization(data: dict, fig: Figure | None = None) -> Figure:
    """Per-layer std (measured dots, theory lines) and histograms of the chosen layer."""
    fig, (ax_s, ax_a, ax_g) = figure_with_axes(
        fig, "initialization", 11.0, 3.9,
        lambda f: f.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1, 1]}))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.8, wspace=0.3)
    layers = data["layers"]
    series = [("activation std", data["act_std"], data["theory_act_std"], OKABE_ITO["blue"], "o"),
              ("gradient std", data["grad_std"], data["theory_grad_std"], OKABE_ITO["orange"],
               "s")]
    values = []
    for label, measured, theory, colour, marker in series:
        m, t = log_safe(measured, 1e-200), log_safe(theory, 1e-200)
        values += [m, t]
        ax_s.plot(layers, m, ls="none", marker=marker, ms=4, color=colour,
                  label=f"{label}: measured")
        ax_s.plot(layers, t, ls="--", lw=1.3, color=colour, label=f"{label}: theory")
    lo = max(min(v.min() for v in values), 1e-200) / 3
    hi = min(max(v.max() for v in values), 1e300) * 3
    set_log_axis(ax_s)
    ax_s.set_ylim(min(lo, 0.1), max(hi, 10))
    ax_s.axhspan(0.5, 2.0, color=OKABE_ITO["green"], alpha=0.12, lw=0)
    ax_s.axvline(data["layer"], color=OKABE_ITO["grey"], lw=0.8, ls=":")
    ax_s.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax_s.legend(fontsize=7, frameon=False, loc="best")
    style_axes(ax_s, xlabel="layer l", ylabel="std over samples and units (log)",
               title="green band: std within ×2 of 1")
    for ax, key, colour, what in ((ax_a, "act_hist", OKABE_ITO["blue"], "activation a"),
                                  (ax_g, "grad_hist", OKABE_ITO["orange"], "gradient ∂L/∂a")):
        counts, edges = data[key]
        ax.stairs(counts, edges, fill=True, color=colour, alpha=0.75)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        style_axes(ax, xlabel=f"{what} at layer {data['layer']}", ylabel="count",
                   title=f"layer {data['layer']}: {what.split(' ')[0]}s")
    last = data["act_std"][-1]
    if not np.isfinite(last) or last > 1e3:
        verdict = "the signal EXPLODES"
    elif last < 1e-3:
        verdict = "the signal VANISHES"
    else:
        verdict = "the signal survives"
    fig.suptitle(f"{data['activation']} + {INIT_LABELS.get(data['init'], data['init'])} "
                 f"(× {data['gain_mult']:.3g}), weight std {data['weight_std']:.3g}: {verdict} "
                 f"after {data['depth']} layers\nLook for: dots on their dashed theory line, "
                 "and staying inside the green band at every layer", fontsize=10)
    return fig


class InitializationLab(Visualiser):
    """Depth, width, activation, init scheme, gain multiplier and histogram layer.

    Shown in notebooks/02_initialization.
    """

    name = "initialization_lab"
    defaults = {"depth": 10, "width": 256, "activation": "tanh", "init": "xavier",
                "gain_mult": 1.0, "layer": 10}
    layout_columns = 3

    data_function = staticmethod(init_lab_data)
    plot_function = staticmethod(plot_initialization)

    def make_controls(self):
        p = self.params
        return {
            "depth": int_slider("layers", p["depth"], 1, 50),
            "width": int_slider("width", p["width"], 16, 512, step=16),
            "activation": dropdown("activation", p["activation"], list(HIDDEN_ACTIVATIONS)),
            "init": dropdown("init", p["init"], [(INIT_LABELS[k], k) for k in INITS]),
            "gain_mult": log_slider("gain ×", p["gain_mult"], -0.6, 0.6, step=0.05),
            "layer": int_slider("histogram layer", min(p["layer"], p["depth"]), 1, p["depth"]),
        }

    def sync_controls(self, key):
        if key == "depth":
            layer = self._controls["layer"]
            layer.max = self.params["depth"]
            self.params["layer"] = layer.value  # the slider clamps its value to the new max


def initialization_lab(**params) -> InitializationLab:
    """Build the lab (display it as a cell's last expression)."""
    return InitializationLab(**params)
