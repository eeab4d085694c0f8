"""Shared machinery of the visualisers: palette, front-end detection, PNG rendering, base class.

Nothing here touches global state: no pyplot, no rcParams, no backend switch. Every figure is a
``matplotlib.figure.Figure`` rendered with the Agg canvas straight to PNG bytes, which an
``ipywidgets.Image`` shows. (An ``Image`` widget rather than an ``Output`` widget: replacing its
``value`` redraws exactly once, needs no ``clear_output`` dance, and works from the training
doctor's background thread, where output capture does not.)
"""

from __future__ import annotations

import html
import io
import os
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Lines also differ by style or marker, so nothing relies on colour alone.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#999999",
}
PALETTE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue",
                                   "black", "yellow")]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1)), (0, (1, 1)), "-"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
SEQUENTIAL_CMAP = "cividis"  # perceptually uniform and colour-blind safe

STATIC_ENV = "TUG_STATIC_WIDGETS"
STATIC_NOTE = ("Static figure: no interactive widget front end here (set {env}=0 to force "
               "widgets). Open the notebook in JupyterLab to move the controls.")


def widgets_available() -> bool:
    """Return True when an interactive widget front end can plausibly show the controls.

    Rules, in order:

    1. ``TUG_STATIC_WIDGETS=1`` (or ``true``/``yes``) forces the static figure; ``=0`` forces
       widgets. The autograder and the notebook tests set it to 1.
    2. Outside an IPython *kernel* (plain Python, terminal IPython, pytest) there is no front end.
    3. ipywidgets must import.

    Inside a kernel the answer is True even under nbconvert/nbclient, which cannot be told apart
    from JupyterLab from inside the kernel. That case is safe anyway: nothing ever waits for the
    front end, and the displayed bundle carries a static ``image/png`` fallback next to the
    widget view, which is what nbconvert keeps and renders.
    """
    flag = os.environ.get(STATIC_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return False
    if flag in ("0", "false", "no", "off"):
        return _ipywidgets_importable()
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return _ipywidgets_importable()


def _ipywidgets_importable() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _TextCachingRenderer(RendererAgg):
    """An Agg renderer that rasterizes each distinct text once and then blits the bitmap.

    Text is most of the cost of a redraw (matplotlib lays out and renders every glyph of every
    tick label on each draw), and a visualiser redraws the same labels over and over. Bitmaps
    are keyed by string, font, angle, colour and dpi and placed at whole-pixel positions (at
    most half a pixel from where Agg would put them). Only figures made by :func:`new_figure`
    use this renderer: no global matplotlib state is touched.
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
        """(ascent, descent, line gap) of the font, as ``Text._get_layout`` computes them
        from the font's tables on every layout; cached here."""
        key = ("height", hash(prop), self.dpi)
        value = _lru_get(_TEXT_METRICS, key)
        if value is None:
            from matplotlib.font_manager import fontManager, get_font

            font = get_font(fontManager._find_fonts_by_props(prop))
            value = (None, None, None)
            for table_name, gap_key, ascent_key, descent_key in (
                    ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                    ("hhea", "lineGap", "ascent", "descent")):
                table = font.get_sfnt_table(table_name)
                if table is None:
                    continue
                scale = prop.get_size_in_points() * self.dpi / 72 / font.get_sfnt_table(
                    "head")["unitsPerEm"]
                value = (table[ascent_key] * scale, -table[descent_key] * scale,
                         table[gap_key] * scale)
                break
            _lru_put(_TEXT_METRICS, key, value)
        return value

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if (ismath == "TeX" or gc.get_clip_rectangle() is not None
                or gc.get_clip_path()[0] is not None or not (np.isfinite(x) and np.isfinite(y))):
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
            self._renderer.draw_image(gc, int(round(x)) + dx,
                                      self.height - top - bitmap.shape[0], bitmap)
        return None

    def _rasterize_text(self, gc, s, prop, angle, ismath, mtext):
        w, h, d = super().get_text_width_height_descent(s, prop, ismath)
        r = int(np.ceil(np.hypot(w, h + d))) + 4  # room for any rotation about the origin
        scratch = RendererAgg(2 * r, 2 * r, self.dpi)
        RendererAgg.draw_text(scratch, gc, r, r, s, prop, angle, ismath, mtext)
        buf = np.asarray(scratch.buffer_rgba())
        alpha = buf[..., 3]
        rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
        if rows.size == 0:
            return None, 0, 0
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # draw_image wants the bottom row first
        return np.ascontiguousarray(buf[r0:r1, c0:c1][::-1]), int(c0 - r), int(r0 - r)


class _TextCachingCanvas(FigureCanvasAgg):
    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = _TextCachingRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer


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
    """A bare Figure (not registered with pyplot, so it is garbage-collected when dropped),
    drawn by the text-caching Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
    _TextCachingCanvas(fig)
    return fig


def figure_with_axes(fig: Figure | None, layout: str, width: float, height: float,
                     make_axes) -> tuple[Figure, Any]:
    """``(fig, axes)`` for a plot function: reuse ``fig`` if it was made for ``layout``
    (its axes emptied of every artist, scales and limits reset), else a new figure with
    ``make_axes(fig)``.

    Reusing keeps the axes and their tick objects, which matplotlib otherwise rebuilds for
    every new figure: a widget redraws into the same figure on each control change.
    """
    if fig is not None and getattr(fig, "_tug_layout", None) == layout:
        axes = fig._tug_axes
        for ax in np.ravel(axes):
            _empty_axes(ax)
        return fig, axes
    fig = new_figure(width, height)
    axes = make_axes(fig)
    fig._tug_layout, fig._tug_axes = layout, axes
    return fig, axes


def _empty_axes(ax) -> None:
    for artists in (ax.lines, ax.patches, ax.collections, ax.texts, ax.images, ax.tables):
        for artist in list(artists):
            artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_title("")
    ax.set_xscale("linear")
    ax.set_yscale("linear")
    ax.set_aspect("auto")
    ax.relim()
    ax.set_autoscale_on(True)


def figure_to_png(fig: Figure) -> bytes:
    """Render ``fig`` with Agg to PNG bytes (one draw)."""
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
    """Log scale with plain-text decade labels ("1e-05").

    Matplotlib's default log labels are mathtext, which a fresh Agg renderer re-parses on every
    draw (the single most expensive step of a redraw here); plain text is several times faster.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, numticks=max_labels))
    target.set_major_formatter(FuncFormatter(_log_tick))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def finite_or(a, fill: float) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, fill)


def log_safe(a, floor: float = 1e-300, ceil: float = 1e300) -> np.ndarray:
    """Values for a log axis: NaN/inf/zero replaced by the floor or ceiling."""
    a = np.asarray(a, dtype=float)
    out = np.where(np.isnan(a), floor, a)
    out = np.where(np.isposinf(out), ceil, out)
    return np.clip(out, floor, ceil)


class Visualiser:
    """Base class: a parameter dict, a pure data function, a pure plot function, and widgets.

    Subclasses define ``defaults`` (parameter name -> value), ``compute(params) -> data``,
    ``plot(data) -> Figure`` and ``_make_controls() -> {param: widget}``. Every control writes
    one parameter; each change triggers exactly one redraw (``n_draws`` counts them, and
    ``last_update_ms`` times the last one kernel-side: compute + plot + PNG).
    """

    name = "visualiser"
    defaults: dict[str, Any] = {}
    layout_columns = 3

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown parameter(s) {sorted(unknown)}; "
                            f"known: {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}
        self.data = None
        self.figure: Figure | None = None
        self.png: bytes | None = None
        self.n_draws = 0
        self.last_update_ms: float | None = None
        self._controls = None
        self._widget = None
        self._image = None
        self._status = None
        self._suspend = False

    # -- the pure part -------------------------------------------------------------------
    def compute(self, params: dict) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def plot(self, data, fig: Figure | None = None) -> Figure:  # pragma: no cover - abstract
        """Draw ``data``; into ``fig`` (emptied first) when it was made by this plot before."""
        raise NotImplementedError

    def _make_controls(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self) -> Figure:
        """Compute and plot with the current parameters; no widgets involved."""
        self.data = self.compute(dict(self.params))
        self.figure = self.plot(self.data, fig=self.figure)
        return self.figure

    # -- the widget part -----------------------------------------------------------------
    @property
    def controls(self) -> dict:
        if self._controls is None:
            self._build_widget()
        return self._controls

    @property
    def widget(self):
        if self._widget is None:
            self._build_widget()
        return self._widget

    def _build_widget(self):
        import ipywidgets as w

        self._controls = self._make_controls()
        for key, control in self._controls.items():
            control.add_class(f"tug-control-{key.replace('_', '-')}")  # for the browser tests
            if key in self.params:
                control.observe(self._on_change(key), names="value")
        self._image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self._image.add_class("tug-figure")
        self._status = w.HTML(value="")
        self._status.add_class("tug-status")
        rows = self._control_rows()
        self._widget = w.VBox([*rows, self._image, self._status])
        self._widget.add_class("tug-visualiser")
        self._widget.add_class(f"tug-{self.name.replace('_', '-')}")
        self.redraw()

    def _control_rows(self) -> list:
        import ipywidgets as w

        items = list(self._controls.values())
        n = self.layout_columns
        return [w.HBox(items[i:i + n]) for i in range(0, len(items), n)]

    def _on_change(self, key):
        def handler(change):
            self.params[key] = change["new"]
            if self._suspend:
                return
            self._suspend = True  # dependent controls may move; they must not redraw too
            try:
                self._sync_controls(key)
            finally:
                self._suspend = False
            self.redraw()
        return handler

    def _sync_controls(self, key: str) -> None:
        """Adjust controls that depend on ``key`` (e.g. a layer slider's max on depth)."""

    def redraw(self):
        """Recompute, re-plot and push one new PNG to the image widget (one draw per call)."""
        start = time.perf_counter()
        try:
            self.render()
            self.png = figure_to_png(self.figure)
        except Exception as exc:  # shown in the widget, never raised into the comm handler
            self._show_error(exc)
            return
        self.n_draws += 1
        if self._image is not None:
            self._image.value = self.png
            self._set_status("")
        self.last_update_ms = (time.perf_counter() - start) * 1000.0

    def _set_status(self, text: str, *, error: bool = False):
        if self._status is None:
            return
        if not text:
            self._status.value = ""
            return
        colour = OKABE_ITO["vermillion"] if error else "#333333"
        cls = "tug-error" if error else "tug-info"
        self._status.value = (f'<pre class="{cls}" style="color:{colour};white-space:pre-wrap;'
                              f'margin:0">{html.escape(text)}</pre>')

    def _show_error(self, exc: BaseException):
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self._set_status(f"Could not draw with {self.params}: {detail}", error=True)
        if self._status is None:
            raise exc

    def set(self, **params):
        """Change parameters in one go (through the controls when they exist): one redraw."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"unknown parameter(s) {sorted(unknown)}")
        if self._controls is None:
            self.params.update(params)
            return self
        self._suspend = True
        try:
            for key, value in params.items():
                self._controls[key].value = value
        finally:
            self._suspend = False
        self.redraw()
        return self

    # -- display -------------------------------------------------------------------------
    def static_bundle(self) -> dict:
        if self.png is None or self.figure is None:
            self.render()
            self.png = figure_to_png(self.figure)
        note = STATIC_NOTE.format(env=STATIC_ENV)
        return {"image/png": self.png, "text/plain": note}

    def _widget_bundle(self, include=None, exclude=None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        # Front ends without the widget manager (nbconvert, nbgrader) show this instead.
        if self.png is not None:
            bundle.setdefault("image/png", self.png)
        return bundle

    def _repr_mimebundle_(self, include=None, exclude=None):
        if not widgets_available():
            return self.static_bundle()
        return self._widget_bundle(include, exclude)

    def _ipython_display_(self):
        self.display()

    def display(self):
        """Show the widget, or the static figure with a one-line note when there is no front end.

        Never waits for a front end, so executing a notebook (nbclient, nbgrader) cannot hang.
        """
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with ipykernel
            self.render()
            print(STATIC_NOTE.format(env=STATIC_ENV))
            return self.figure
        if widgets_available():
            display(self._widget_bundle(), raw=True)
        else:
            bundle = self.static_bundle()
            display({"text/plain": bundle["text/plain"]}, raw=True)
            display({"image/png": bundle["image/png"],
                     "text/plain": f"<{type(self).__name__} figure>"}, raw=True)
        return None


def int_slider(description, value, lo, hi, step=1, **kw):
    import ipywidgets as w

    return w.IntSlider(value=value, min=lo, max=hi, step=step, description=description,
                       continuous_update=False, style={"description_width": "initial"}, **kw)


def float_slider(description, value, lo, hi, step, readout_format=".2f", **kw):
    import ipywidgets as w

    return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                         continuous_update=False, readout_format=readout_format,
                         style={"description_width": "initial"}, **kw)


def log_slider(description, value, lo_exp, hi_exp, step=0.25, readout_format=".3g", **kw):
    import ipywidgets as w

    return w.FloatLogSlider(value=value, base=10, min=lo_exp, max=hi_exp, step=step,
                            description=description, continuous_update=False,
                            readout_format=readout_format,
                            style={"description_width": "initial"}, **kw)


def dropdown(description, value, options, **kw):
    import ipywidgets as w

    return w.Dropdown(value=value, options=options, description=description,
                      style={"description_width": "initial"}, **kw)
