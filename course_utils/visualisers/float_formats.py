"""Float formats on a number line: where a value, or a gradient times a loss scale, lands in
float16, bfloat16 and float32 (zero, subnormal, normal, inf) and how far apart the numbers are
there.

Shown in notebooks/07_low_precision. Every cast is done by torch (float64 -> format), so the
picture shows what torch really does, not a formula.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from course_utils.plotting import OKABE_ITO, figure_with_axes, style_axes

from .base import Visualiser, int_slider, log_slider

FORMATS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
LOG10_RANGE = (-48.0, 41.0)  # x-axis limits: float32's smallest subnormal to past its max


def _spacing(c: float, info: torch.finfo) -> float:
    """Distance from |c| to the next larger number of the format (its ulp)."""
    sub = info.smallest_normal * info.eps
    a = abs(c)
    if a < info.smallest_normal:
        return sub
    return 2.0 ** math.floor(math.log2(a)) * info.eps


def float_format_data(value: float = 1e-6, scale_exp: int = 0) -> dict:
    """Where ``value * 2**scale_exp`` lands in each format, and what dividing by the scale
    again gives back.

    For each format: ``cast`` (the value torch stores), ``where`` (``"zero"`` for an input of 0,
    ``"underflow to 0"``, ``"subnormal"``, ``"normal"`` or ``"overflow to inf"``), ``spacing``
    (gap to the next number there), ``recovered`` (cast / scale, in float64) and
    ``rel_error`` (of recovered against ``value``), plus the format's range as log10 numbers.
    """
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {value}")
    if int(scale_exp) != scale_exp or not 0 <= scale_exp <= 64:
        raise ValueError(f"scale_exp must be an integer from 0 to 64, got {scale_exp}")
    scale = 2.0 ** int(scale_exp)
    scaled = value * scale
    rows = []
    for name, dt in FORMATS.items():
        info = torch.finfo(dt)
        cast = torch.tensor(scaled, dtype=torch.float64).to(dt).item()
        if scaled == 0:
            where = "zero"
        elif math.isinf(cast):
            where = "overflow to inf"
        elif cast == 0:
            where = "underflow to 0"
        elif abs(cast) < info.smallest_normal:
            where = "subnormal"
        else:
            where = "normal"
        recovered = cast / scale
        rel = abs(recovered - value) / abs(value) if value != 0 else 0.0
        rows.append({
            "name": name,
            "cast": cast,
            "where": where,
            "spacing": _spacing(cast, info) if math.isfinite(cast) else math.inf,
            "recovered": recovered,
            "rel_error": rel,
            "log10_subnormal": math.log10(info.smallest_normal * info.eps),
            "log10_normal": math.log10(info.smallest_normal),
            "log10_max": math.log10(info.max),
        })
    return {"value": value, "scale_exp": int(scale_exp), "scale": scale, "scaled": scaled,
            "formats": rows}


def _log10_abs(v: float) -> float:
    if v == 0:
        return LOG10_RANGE[0]
    return float(np.clip(math.log10(abs(v)), *LOG10_RANGE))


def plot_float_format(data: dict, fig: Figure | None = None) -> Figure:
    """One number line per format (log10 of the magnitude): subnormal and normal ranges,
    the value (and the scaled value) as vertical lines, and what the cast gives."""
    fig, ax = figure_with_axes(fig, "float_format", 10.0, 3.8, lambda f: f.add_subplot())
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.78)
    colours = {"subnormal": OKABE_ITO["orange"], "normal": OKABE_ITO["sky_blue"]}
    lo, hi = LOG10_RANGE
    n = len(data["formats"])
    for i, row in enumerate(data["formats"]):
        y = n - 1 - i
        ax.broken_barh([(row["log10_subnormal"], row["log10_normal"] - row["log10_subnormal"])],
                       (y - 0.18, 0.36), color=colours["subnormal"])
        ax.broken_barh([(row["log10_normal"], row["log10_max"] - row["log10_normal"])],
                       (y - 0.18, 0.36), color=colours["normal"])
        ax.broken_barh([(row["log10_max"], hi - row["log10_max"])], (y - 0.05, 0.1),
                       color=OKABE_ITO["vermillion"])
        text = (f"{row['name']}: stored {row['cast']:.4g} ({row['where']}), spacing there "
                f"{row['spacing']:.2g}")
        if data["scale_exp"]:
            text += f"; / scale = {row['recovered']:.4g}"
        text += f", error {row['rel_error']:.1%}" if row["rel_error"] < 10 else ""
        ax.text(lo + 0.5, y + 0.26, text, fontsize=8, va="bottom")
    ax.plot([], [], color=colours["subnormal"], lw=6, label="subnormal")
    ax.plot([], [], color=colours["normal"], lw=6, label="normal")
    ax.plot([], [], color=OKABE_ITO["vermillion"], lw=2, label="rounds to inf")
    ax.axvline(_log10_abs(data["scaled"]), color=OKABE_ITO["black"], lw=1.6,
               label="value x scale" if data["scale_exp"] else "value")
    if data["scale_exp"]:
        ax.axvline(_log10_abs(data["value"]), color=OKABE_ITO["black"], lw=1.0, ls=":",
                   label="value before scaling")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.6, n - 0.1)
    ax.set_yticks(range(n), [r["name"] for r in reversed(data["formats"])])
    ax.legend(fontsize=7, loc="upper right", ncol=5, frameon=False, bbox_to_anchor=(1.0, 1.2))
    style_axes(ax, xlabel="log10 |value|   (left of a bar: rounds to 0)", ylabel="", grid=True)
    sign = "-" if data["value"] < 0 else ""
    fig.suptitle(f"value {sign}{abs(data['value']):.3g}, loss scale 2^{data['scale_exp']} = "
                 f"{data['scale']:g}: what each format stores", fontsize=10)
    return fig


class FloatFormatExplorer(Visualiser):
    """Slide a value (a gradient, an activation) and a loss scale 2**k; see where the product
    lands in float16, bfloat16 and float32 and what comes back after unscaling.

    Shown in notebooks/07_low_precision.
    """

    name = "float_format_explorer"
    defaults = {"value": 1e-6, "scale_exp": 0}
    layout_columns = 2

    def compute(self, params):
        return float_format_data(**params)

    def plot(self, data, fig=None):
        return plot_float_format(data, fig=fig)

    def make_controls(self):
        p = self.params
        return {
            "value": log_slider("value", p["value"], -45, 39, step=0.25, readout_format=".2e"),
            "scale_exp": int_slider("loss scale exponent k (scale 2^k)", p["scale_exp"], 0, 32),
        }


def float_format_explorer(**params) -> FloatFormatExplorer:
    """Build the visualiser (display it as a cell's last expression)."""
    return FloatFormatExplorer(**params)
