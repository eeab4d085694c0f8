"""The course's one palette and its figure and axis helpers, on public matplotlib API only.

* :data:`OKABE_ITO` names the eight colours of Okabe & Ito (2008), distinguishable with every
  common colour-vision deficiency; :data:`PALETTE` is their order for series (yellow, hard to
  see on white, last). Lines also differ by :data:`LINESTYLES` or :data:`MARKERS`, so nothing
  relies on colour alone; :data:`SEQUENTIAL_CMAP` is for heat maps.
* :func:`subplots` and :func:`row_of_axes` make a bare ``Figure`` (not registered with pyplot,
  so it is freed when dropped) with its axes, for the topic modules' ``plot_*`` functions;
* :func:`new_figure`, :func:`figure_with_axes` and :func:`figure_to_png` are for figures a
  widget redraws: reuse the figure and its axes, render to PNG bytes;
* :func:`style_axes`, :func:`set_log_axis`, :func:`finite_or` and :func:`log_safe` style axes
  and make data safe to draw.

Example::

    from course_utils.plotting import PALETTE, subplots
    fig, axes = subplots(1, 2, figsize=(8, 3))
    axes[0, 0].plot(x, y, color=PALETTE[0])

Importing this module changes no global state (no pyplot, no rcParams, no backend switch) and
imports matplotlib only when a figure is made.
"""

from __future__ import annotations

import functools
import io
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "LINESTYLES",
    "MARKERS",
    "SEQUENTIAL_CMAP",
    "color",
    "subplots",
    "row_of_axes",
    "text_caching_canvas",
    "new_figure",
    "figure_with_axes",
    "figure_to_png",
    "style_axes",
    "set_log_axis",
    "finite_or",
    "log_safe",
]

OKABE_ITO = MappingProxyType({
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#999999",
})
#: Series colours, in order.
PALETTE = tuple(OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple",
                                        "sky_blue", "black", "yellow"))
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1)), (0, (1, 1)), "-")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SEQUENTIAL_CMAP = "cividis"  # perceptually uniform and colour-blind safe


def color(i: int) -> str:
    """The ``i``-th series colour, cycling through :data:`PALETTE`."""
    return PALETTE[i % len(PALETTE)]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.4, 4.0),
             **subplot_kw) -> tuple[Figure, np.ndarray]:
    """``(fig, axes)``: a constrained-layout ``Figure`` and a 2-D array of axes
    (``axes[row, col]``; extra keywords such as ``sharex`` go to ``Figure.subplots``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def row_of_axes(ncols: int = 1, width: float = 6.0, height: float = 3.8) -> tuple[Figure, list]:
    """``(fig, [ax, ...])``: one row of ``ncols`` axes, each ``width`` x ``height`` inches."""
    fig, axes = subplots(1, ncols, figsize=(width * ncols, height))
    return fig, list(axes[0])


@functools.cache
def text_caching_canvas():
    """The class of the Agg canvas that :func:`new_figure` gives its figures (built on first
    use, so that importing this module does not import matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

    class TextCachingRenderer(RendererAgg):
        """An Agg renderer that rasterizes each distinct text once and then pastes the bitmap.

        Text is most of the cost of a widget's redraw (every glyph of every tick label is laid out
        and rendered on each draw), and a widget redraws the same labels over and over. Bitmaps are
        keyed by string, font, angle, colour and dpi and placed at whole-pixel positions (at most
        half a pixel from where Agg puts them). Only the renderer's public interface is overridden
        (``get_text_width_height_descent``, ``draw_text``) plus matplotlib's optional
        ``_get_font_height_metrics`` hook (see there); the widget benchmark
        (``python -m benchmarks --only widgets``) shows what it saves.
        """

        def get_text_width_height_descent(self, s, prop, ismath):
            if ismath == "TeX":
                return super().get_text_width_height_descent(s, prop, ismath)
            key = (s, hash(prop), bool(ismath), self.dpi)
            value = _lru_get(_TEXT_METRICS, key)
            if value is None:
                value = super().get_text_width_height_descent(s, prop, ismath)
                _lru_put(_TEXT_METRICS, key, value)
            return value

        def _get_font_height_metrics(self, prop):
            """(ascent, descent, line gap) of ``prop``'s font in pixels, cached.

            matplotlib (3.10 and later) lays out every text by asking the renderer for this
            if the renderer has it, and otherwise reads the font's OS/2 or hhea table again
            for each of the dozens of labels a widget redraws (15 to 40 ms of a frame). The
            numbers are the ones matplotlib computes, from the public ``font_manager`` API. A
            matplotlib without this optional hook never calls it and lays text out as before;
            ``tests/test_plotting.py`` checks that both layouts agree.
            """
            key = ("height", hash(prop), self.dpi)
            value = _lru_get(_TEXT_METRICS, key)
            if value is None:
                from matplotlib.font_manager import findfont, get_font

                font = get_font(findfont(prop))
                value = (None, None, None)
                for table_name, gap_key, ascent_key, descent_key in (
                        ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                        ("hhea", "lineGap", "ascent", "descent")):
                    table = font.get_sfnt_table(table_name)
                    if table is None:
                        continue
                    scale = (prop.get_size_in_points() * self.dpi / 72
                             / font.get_sfnt_table("head")["unitsPerEm"])
                    value = (table[ascent_key] * scale, -table[descent_key] * scale,
                             table[gap_key] * scale)
                    break
                _lru_put(_TEXT_METRICS, key, value)
            return value

        def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
            if (ismath == "TeX" or gc.get_clip_rectangle() is not None
                    or gc.get_clip_path()[0] is not None
                    or not (np.isfinite(x) and np.isfinite(y))):
                return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            key = (s, hash(prop), bool(ismath), round(float(angle), 3), tuple(gc.get_rgb()),
                   gc.get_alpha(), gc.get_antialiased(), self.dpi)
            entry = _lru_get(_TEXT_BITMAPS, key)
            if entry is None:
                entry = self._rasterize_text(gc, s, prop, angle, ismath, mtext)
                _lru_put(_TEXT_BITMAPS, key, entry)
            bitmap, dx, dy = entry
            if bitmap is not None:
                top = int(round(y)) + dy  # Agg's text y counts rows from the top
                self.draw_image(gc, int(round(x)) + dx, self.height - top - bitmap.shape[0], bitmap)
            return None

        def _rasterize_text(self, gc, s, prop, angle, ismath, mtext):
            w, h, d = super().get_text_width_height_descent(s, prop, ismath)
            r = int(np.ceil(np.hypot(w, h + d))) + 4  # room for any rotation about the origin
            scratch = RendererAgg(2 * r, 2 * r, self.dpi)
            scratch.draw_text(gc, r, r, s, prop, angle, ismath, mtext)
            buf = np.asarray(scratch.buffer_rgba())
            alpha = buf[..., 3]
            rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
            if rows.size == 0:
                return None, 0, 0
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            # draw_image wants the bottom row first
            return np.ascontiguousarray(buf[r0:r1, c0:c1][::-1]), int(c0 - r), int(r0 - r)


    class TextCachingCanvas(FigureCanvasAgg):
        """An Agg canvas drawing with :class:`TextCachingRenderer` (one per figure size)."""

        renderer_key = None

        def get_renderer(self):
            w, h = self.get_width_height(physical=True)
            key = w, h, self.figure.dpi
            if self.renderer_key != key:
                self.renderer = TextCachingRenderer(w, h, self.figure.dpi)
                self.renderer_key = key
            return self.renderer

    return TextCachingCanvas


_TEXT_CACHE_SIZE = 4096
_TEXT_BITMAPS: OrderedDict = OrderedDict()
_TEXT_METRICS: OrderedDict = OrderedDict()
_TEXT_LOCK = threading.Lock()  # the training doctor draws from a background thread


def _lru_get(cache: OrderedDict, key):
    with _TEXT_LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def _lru_put(cache: OrderedDict, key, value) -> None:
    with _TEXT_LOCK:
        cache[key] = value
        while len(cache) > _TEXT_CACHE_SIZE:
            cache.popitem(last=False)


def new_figure(width: float, height: float, dpi: int = 72) -> Figure:
    """A bare white ``Figure`` of ``width`` x ``height`` inches for widgets, drawn by the
    text-caching canvas (see :func:`text_caching_canvas`); not registered with pyplot, so it
    is freed when dropped."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
    text_caching_canvas()(fig)
    return fig


# figure -> (layout, axes) of the figures figure_with_axes made; dropped with the figure
_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def figure_with_axes(fig: Figure | None, layout: str, width: float, height: float,
                     make_axes: Callable[[Figure], Any]) -> tuple[Figure, Any]:
    """``(fig, axes)`` for a widget's plot function: reuse ``fig`` if this function made it for
    ``layout`` (its axes emptied of every artist, scales and limits reset), else a new figure
    with ``axes = make_axes(fig)``.

    Reusing keeps the axes and their tick objects, which matplotlib otherwise rebuilds for every
    new figure: a widget redraws into the same figure on each control change.
    """
    known = _LAYOUTS.get(fig) if fig is not None else None
    if known is not None and known[0] == layout:
        axes = known[1]
        for ax in np.ravel(axes):
            _empty_axes(ax)
        return fig, axes
    fig = new_figure(width, height)
    axes = make_axes(fig)
    _LAYOUTS[fig] = (layout, axes)
    return fig, axes


def _empty_axes(ax) -> None:
    for artists in (ax.lines, ax.patches, ax.collections, ax.texts, ax.images, ax.tables):
        for artist in list(artists):
            artist.remove()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    ax.set_title("")
    ax.set_xscale("linear")
    ax.set_yscale("linear")
    ax.set_aspect("auto")
    ax.relim()
    ax.set_autoscale_on(True)


def figure_to_png(fig: Figure) -> bytes:
    """Render ``fig`` with Agg to PNG bytes (one draw)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image as PILImage

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    buf = io.BytesIO()
    # Fast zlib level, RGB (the figure is opaque): the PNG is sent once to the browser and
    # never stored, so a slightly larger file is worth the milliseconds saved per redraw.
    PILImage.fromarray(np.ascontiguousarray(rgb)).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def style_axes(ax, *, xlabel: str, ylabel: str, title: str | None = None, grid: bool = True):
    """Labels, a light grid and no top/right spines, set on this axes only (no rcParams)."""
    from matplotlib.ticker import AutoLocator, MaxNLocator

    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    # Few tick labels: text is most of the cost of a redraw.
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "linear" and type(axis.get_major_locator()) is AutoLocator:
            axis.set_major_locator(MaxNLocator(nbins=4))
    ax.tick_params(labelsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    if grid:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _log_tick(value, _pos=None) -> str:
    if value <= 0 or not np.isfinite(value):
        return ""
    exponent = int(round(np.log10(value)))
    if abs(np.log10(value) - exponent) > 1e-6:
        return ""
    if -2 <= exponent <= 2:
        return f"{value:g}"
    return f"1e{exponent}"


def set_log_axis(ax, axis: str = "y", max_labels: int = 5):
    """Log scale with plain-text decade labels ("1e-05") on the ``axis`` ("x" or "y").

    Matplotlib's default log labels are mathtext, which is re-parsed on every draw (the most
    expensive step of a widget's redraw); plain text is several times faster.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, numticks=max_labels))
    target.set_major_formatter(FuncFormatter(_log_tick))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def finite_or(a, fill: float) -> np.ndarray:
    """``a`` as a float array with NaN and infinities replaced by ``fill``."""
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, fill)


def log_safe(a, floor: float = 1e-300, ceil: float = 1e300) -> np.ndarray:
    """Values for a log axis: NaN/inf/zero replaced by the floor or ceiling."""
    a = np.asarray(a, dtype=float)
    out = np.where(np.isnan(a), floor, a)
    out = np.where(np.isposinf(out), ceil, out)
    return np.clip(out, floor, ceil)
