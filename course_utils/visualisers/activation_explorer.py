"""Activation explorer: activation functions, their derivatives, saturation, output statistics.

Shown in notebooks/01_activations. Values and derivatives come from ``torch.nn.functional`` and
autograd (the course's oracle), not from the exercise code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course_utils.nets import single_thread
from course_utils.plotting import (
    LINESTYLES,
    OKABE_ITO,
    PALETTE,
    figure_with_axes,
    style_axes,
)

from .base import Visualiser, dropdown, float_slider

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu")
SATURATION_THRESHOLD = 0.05  # |f'(x)| below this counts as saturated
SATURATION_LANE = 0.12  # height (in units of f') of each activation's strip of saturated inputs


def _activation_fn(name: str, negative_slope: float, alpha: float, approximate: str):
    fns = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "relu6": F.relu6,
        "leaky_relu": lambda x: F.leaky_relu(x, negative_slope),
        "elu": lambda x: F.elu(x, alpha),
        "selu": F.selu,
        "gelu": lambda x: F.gelu(x, approximate=approximate),
    }
    if name not in fns:
        raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATION_NAMES}")
    return fns[name]


def _label(name, negative_slope, alpha, approximate):
    if name == "leaky_relu":
        return f"leaky_relu (slope {negative_slope:g})"
    if name == "elu":
        return f"elu (α {alpha:g})"
    if name == "gelu" and approximate != "none":
        return f"gelu ({approximate})"
    return name


def _intervals(x: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous x-intervals ``(first, last)`` of the grid points where ``mask`` is True."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(float(x[i]), float(x[j])) for i, j in zip(starts, ends, strict=True)]


def activation_data(activations=("sigmoid", "relu"), negative_slope: float = 0.01,
                    alpha: float = 1.0, approximate: str = "none", mu: float = 0.0,
                    sigma: float = 1.0, x_max: float = 6.0, n_points: int = 601) -> dict:
    """Function, derivative (autograd), saturation intervals and N(mu, sigma²) output moments.

    Returns ``{"x": grid, "curves": {name: {"label", "y", "dy", "saturated": [(x0, x1), ...],
    "out_mean", "out_std"}}, "mu", "sigma"}``. The output mean and std are integrals against the
    normal density on a fine grid (mu ± 8 sigma), so they are deterministic.
    """
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    # k / half * x_max: symmetric, with exactly 0 in the middle (linspace gives -1e-16 there),
    # so the kinks at 0 show torch's one-sided derivative.
    half = max(int(n_points) // 2, 1)
    x = (torch.arange(-half, half + 1, dtype=torch.float64) / half * x_max).requires_grad_()
    z = torch.linspace(mu - 8 * sigma, mu + 8 * sigma, 4001, dtype=torch.float64)
    pdf = torch.exp(-0.5 * ((z - mu) / sigma) ** 2)
    pdf = pdf / torch.trapezoid(pdf, z)
    curves = {}
    with single_thread():
        for name in activations:
            fn = _activation_fn(name, negative_slope, alpha, approximate)
            y = fn(x)
            (dy,) = torch.autograd.grad(y.sum(), x)
            fz = fn(z)
            mean = float(torch.trapezoid(fz * pdf, z))
            var = float(torch.trapezoid((fz - mean) ** 2 * pdf, z))
            dy_np = dy.numpy()
            curves[name] = {
                "label": _label(name, negative_slope, alpha, approximate),
                "y": y.detach().numpy(),
                "dy": dy_np,
                "saturated": _intervals(x.detach().numpy(),
                                        np.abs(dy_np) < SATURATION_THRESHOLD),
                "out_mean": mean,
                "out_std": float(np.sqrt(max(var, 0.0))),
            }
    return {"x": x.detach().numpy(), "curves": curves, "mu": mu, "sigma": sigma,
            "threshold": SATURATION_THRESHOLD}


def plot_activations(data: dict, fig: Figure | None = None) -> Figure:
    """Three panels: f(x); f'(x) with, below 0, one strip per activation marking its saturated
    inputs; and output mean/std for inputs ~ N(mu, sigma²)."""
    fig, (ax_f, ax_d, ax_s) = figure_with_axes(
        fig, "activations", 11.0, 3.9,
        lambda f: f.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 1.0]}))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.8, wspace=0.32)
    x, curves, mu, sigma = data["x"], data["curves"], data["mu"], data["sigma"]
    density = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    outline_x = np.concatenate(([x[0]], x, [x[-1]]))
    outline_y = np.concatenate(([0.0], density / max(density.max(), 1e-300) * 0.8, [0.0]))
    for ax in (ax_f, ax_d):  # a plain polygon: much cheaper to build than fill_between
        ax.fill(outline_x, outline_y, color=OKABE_ITO["grey"], alpha=0.2, lw=0,
                label=f"inputs ~ N({mu:g}, {sigma:g}²) (scaled)")
    # Saturated inputs are drawn as one strip per activation below f' = 0, in the curve's
    # colour: strips never overlap, however many activations are picked (shading the whole
    # height for each one made overlapping regions unreadable).
    lane = SATURATION_LANE
    for i, (_name, c) in enumerate(curves.items()):
        colour, ls = PALETTE[i % len(PALETTE)], LINESTYLES[i % len(LINESTYLES)]
        ax_f.plot(x, c["y"], color=colour, ls=ls, lw=1.8, label=c["label"])
        ax_d.plot(x, c["dy"], color=colour, ls=ls, lw=1.8)
        y0 = -lane * (i + 1.5)
        if c["saturated"]:
            ax_d.broken_barh([(x0, x1 - x0) for x0, x1 in c["saturated"]], (y0, 0.7 * lane),
                             facecolors=colour, edgecolor="none")
    ax_f.set_ylim(-2.5, 6.5)
    ax_d.set_ylim(-lane * (len(curves) + 1.0), 1.9)
    ax_d.axhline(0, color=OKABE_ITO["grey"], lw=0.6)
    ax_d.set_yticks([0.0, 0.5, 1.0, 1.5])  # the strips below 0 are not values of f'
    style_axes(ax_f, xlabel="pre-activation z", ylabel="f(z)", title="function")
    style_axes(ax_d, xlabel="pre-activation z", ylabel="f'(z)  (autograd)",
               title=f"derivative; strips below 0: saturated (|f'| < {data['threshold']:g})")
    if curves:
        ax_f.legend(fontsize=7, loc="upper left", frameon=False)
        names = list(curves)
        pos = np.arange(len(names))
        means = [curves[n]["out_mean"] for n in names]
        stds = [curves[n]["out_std"] for n in names]
        # one bar call for both series (each call has a large fixed cost); proxies for the key
        ax_s.bar(np.concatenate((pos - 0.2, pos + 0.2)), means + stds, 0.4,
                 color=[OKABE_ITO["blue"]] * len(pos) + [OKABE_ITO["orange"]] * len(pos),
                 edgecolor=["none"] * len(pos) + ["black"] * len(pos), lw=0.6)
        ax_s.fill([], [], color=OKABE_ITO["blue"], label="mean")
        ax_s.fill([], [], color=OKABE_ITO["orange"], ec="black", lw=0.6, label="std")
        ax_s.axhline(0, color="black", lw=0.8)
        ax_s.axhline(1, color=OKABE_ITO["grey"], lw=0.8, ls="--")
        ax_s.set_xticks(pos, [curves[n]["label"].split(" ")[0] for n in names], rotation=30,
                        fontsize=8)
        ax_s.legend(fontsize=7, frameon=False)
    else:
        ax_s.text(0.5, 0.5, "pick at least one activation", ha="center", va="center",
                  transform=ax_s.transAxes)
    style_axes(ax_s, xlabel="", ylabel="output mean / std (units of f)",
               title=f"outputs for inputs ~ N({mu:g}, {sigma:g}²)")
    fig.suptitle("Look for: where an activation's strip is drawn, almost no gradient passes; "
                 "a mean near 0 and std near 1 (dashed) keeps the next layer's inputs standardized",
                 fontsize=10)
    return fig


class ActivationExplorer(Visualiser):
    """Pick activations and their parameters; see f, f', saturation and output statistics.

    Shown in notebooks/01_activations.
    """

    name = "activation_explorer"
    # The first comparison 01's prose asks for (section 12): ReLU, ELU and SELU.
    defaults = {"activations": ("relu", "elu", "selu"), "negative_slope": 0.01,
                "alpha": 1.0, "approximate": "none", "mu": 0.0, "sigma": 1.0}
    layout_columns = 3

    def compute(self, params):
        return activation_data(**{**params, "activations": tuple(params["activations"])})

    plot_function = staticmethod(plot_activations)

    def make_controls(self):
        import ipywidgets as w

        p = self.params
        return {
            "activations": w.SelectMultiple(options=list(ACTIVATION_NAMES),
                                            value=tuple(p["activations"]),
                                            rows=len(ACTIVATION_NAMES),
                                            description="activations"),
            "negative_slope": float_slider("leaky slope", p["negative_slope"], 0.0, 0.5, 0.01),
            "alpha": float_slider("ELU α", p["alpha"], 0.1, 3.0, 0.1),
            "approximate": dropdown("GELU approximate", p["approximate"], ["none", "tanh"]),
            "mu": float_slider("input mean μ", p["mu"], -4.0, 4.0, 0.25),
            "sigma": float_slider("input std σ", p["sigma"], 0.25, 5.0, 0.25),
        }


def activation_explorer(**params) -> ActivationExplorer:
    """Build the explorer (display it as a cell's last expression)."""
    return ActivationExplorer(**params)
