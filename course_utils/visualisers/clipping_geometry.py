"""Clipping geometry: a 2-D gradient clipped by value and by norm, and how often a threshold
fires on a recorded run's gradient-norm trace.

Shown in notebooks/04_gradient_clipping. Same rules as ``torch.nn.utils``: by value clamps each
component to [-c, c]; by norm multiplies by ``max_norm / (norm + 1e-6)`` only when that is < 1.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from course_utils.nets import mlp, single_thread
from course_utils.plotting import (
    OKABE_ITO,
    figure_with_axes,
    set_log_axis,
    style_axes,
)

from .base import Visualiser, float_slider, log_slider


def _angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0))))


@functools.lru_cache(maxsize=4)
def recorded_grad_norm_trace(steps: int = 300, seed: int = 0) -> np.ndarray:
    """Total gradient L2 norm at each step of a real run (6-layer tanh MLP, SGD with momentum,
    a learning rate on the edge of stability): spiky, as real traces are. Cached."""
    with single_thread():
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(256, 8, generator=gen, dtype=torch.float64)
        y = torch.sin(3 * x[:, :1]) + x[:, 1:2] ** 2
        model = mlp(8, 1, depth=6, width=32, activation="tanh", init="xavier", scale=1.5, bias=0.0,
                    seed=seed, dtype=torch.float64)
        opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
        norms = np.empty(steps)
        for t in range(steps):
            idx = torch.randint(0, 256, (32,), generator=gen)
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            norms[t] = float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())))
            opt.step()
    norms.setflags(write=False)
    return norms


def clipping_data(gx: float = 0.9, gy: float = 100.0, clip: float = 1.0,
                  threshold: float = 5.0, trace=None) -> dict:
    """The gradient g = (gx, gy) clipped by value (to [-clip, clip]) and by norm (to ``clip``),
    the angles they make with g, and for a gradient-norm ``trace`` (default: a recorded run) the
    steps where norm clipping at ``threshold`` fires."""
    if clip <= 0 or threshold <= 0:
        raise ValueError("clip and threshold must be positive")
    g = np.array([gx, gy], dtype=float)
    by_value = np.clip(g, -clip, clip)
    norm = float(np.linalg.norm(g))
    coef = min(clip / (norm + 1e-6), 1.0)
    by_norm = g * coef
    trace = recorded_grad_norm_trace() if trace is None else np.asarray(trace, dtype=float)
    fires = trace > threshold
    return {"g": g, "by_value": by_value, "by_norm": by_norm, "norm": norm, "clip": clip,
            "angle_value_deg": _angle_deg(g, by_value), "angle_norm_deg": _angle_deg(g, by_norm),
            "trace": trace, "threshold": threshold, "fires": fires,
            "fire_fraction": float(fires.mean()) if trace.size else 0.0}


def plot_clipping(data: dict, fig: Figure | None = None) -> Figure:
    """Left: g and its two clipped versions around the clipping box and circle. Right: the
    gradient-norm trace with the threshold and the steps where clipping fires."""
    fig, (ax_g, ax_t) = figure_with_axes(
        fig, "clipping", 11.0, 4.2,
        lambda f: f.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]}))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.8, wspace=0.22)
    c, g = data["clip"], data["g"]
    lim = 1.8 * max(c, min(np.abs(g).max(), c * 1.2))
    ax_g.add_patch(Rectangle((-c, -c), 2 * c, 2 * c, fill=False, ec=OKABE_ITO["orange"],
                             ls="--", lw=1.2))
    ax_g.add_patch(Circle((0, 0), c, fill=False, ec=OKABE_ITO["blue"], ls=":", lw=1.2))
    shown = g * min(1.0, 0.97 * lim / max(np.abs(g).max(), 1e-12))  # g may be far outside
    g_label = "g" if np.allclose(shown, g) else "g (cut at the frame)"
    arrows = ((g_label, shown, "black", 1.6),
              (f"by value (turned {data['angle_value_deg']:.1f}°)", data["by_value"],
               OKABE_ITO["orange"], 2.4),
              (f"by norm (turned {data['angle_norm_deg']:.1f}°)", data["by_norm"],
               OKABE_ITO["blue"], 2.4))
    for label, v, colour, lw in arrows:
        ax_g.annotate("", xy=(v[0], v[1]), xytext=(0, 0), annotation_clip=False,
                      arrowprops={"arrowstyle": "-|>", "color": colour, "lw": lw,
                                  "shrinkA": 0, "shrinkB": 0})
        ax_g.plot([], [], color=colour, lw=lw, label=label)
    ax_g.set_xlim(-lim, lim)
    ax_g.set_ylim(-lim, lim)
    ax_g.set_aspect("equal")
    ax_g.legend(fontsize=7, loc="lower left", frameon=True, framealpha=0.9)
    style_axes(ax_g, xlabel="gradient component ∂L/∂w₁", ylabel="component ∂L/∂w₂",
               title=f"g = ({g[0]:g}, {g[1]:g}), ‖g‖ = {data['norm']:.3g}; box/circle: c = {c:g}")
    bv, bn = data["by_value"], data["by_norm"]
    ax_g.text(0.02, 0.98, f"by value: ({bv[0]:.4g}, {bv[1]:.4g})\nby norm: ({bn[0]:.4g}, "
              f"{bn[1]:.4g})", transform=ax_g.transAxes, va="top", fontsize=8)

    trace, fires, thr = data["trace"], data["fires"], data["threshold"]
    steps = np.arange(1, len(trace) + 1)
    ax_t.plot(steps, trace, color=OKABE_ITO["grey"], lw=1, label="‖g‖ per step")
    ax_t.plot(steps[fires], trace[fires], ls="none", marker="v", ms=4,
              color=OKABE_ITO["vermillion"], label="clipping fires")
    ax_t.axhline(thr, color=OKABE_ITO["blue"], ls="--", lw=1.2, label=f"threshold {thr:.3g}")
    set_log_axis(ax_t)
    ax_t.legend(fontsize=7, frameon=False, loc="upper right")
    style_axes(ax_t, xlabel="training step", ylabel="total gradient norm ‖g‖₂ (log)",
               title=f"recorded run: clipping fires on {data['fire_fraction']:.0%} of steps")
    fig.suptitle("Look for: clipping by value turns the gradient (orange), clipping by norm "
                 "keeps its direction (blue);\na good threshold clips only the rare spikes, "
                 "not most steps", fontsize=10)
    return fig


class ClippingGeometry(Visualiser):
    """Set a 2-D gradient and the clip value; slide a threshold over a recorded trace.

    Shown in notebooks/04_gradient_clipping. Pass ``trace=`` (a 1-D array of gradient norms)
    to use a run recorded in the notebook instead of the built-in one.
    """

    name = "clipping_geometry"
    defaults = {"gx": 0.9, "gy": 100.0, "clip": 1.0, "threshold": 5.0}
    layout_columns = 2

    def __init__(self, trace=None, **params):
        super().__init__(**params)
        self.trace = None if trace is None else np.asarray(trace, dtype=float)

    def compute(self, params):
        return clipping_data(**params, trace=self.trace)

    plot_function = staticmethod(plot_clipping)

    def make_controls(self):
        p = self.params
        return {
            "gx": float_slider("g₁", p["gx"], -120.0, 120.0, 0.1, readout_format=".1f"),
            "gy": float_slider("g₂", p["gy"], -120.0, 120.0, 0.1, readout_format=".1f"),
            "clip": log_slider("clip value / max norm c", p["clip"], -1, 2, step=0.05),
            "threshold": log_slider("trace threshold", p["threshold"], -1, 2, step=0.05),
        }


def clipping_geometry(trace=None, **params) -> ClippingGeometry:
    """Build the visualiser (display it as a cell's last expression)."""
    return ClippingGeometry(trace=trace, **params)
