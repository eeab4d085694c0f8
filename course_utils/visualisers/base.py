"""The public base of every visualiser: :class:`Visualiser`, front-end detection and controls.

A visualiser is a parameter dict, a pure data function, a pure plot function and a few
ipywidgets controls. To write one, subclass :class:`Visualiser`::

    from course_utils.plotting import figure_with_axes, style_axes
    from course_utils.visualisers.base import Visualiser, float_slider

    class SineViewer(Visualiser):
        name = "sine_viewer"                      # CSS class tug-sine-viewer
        defaults = {"freq": 1.0}

        def compute(self, params):                # pure: params -> data
            x = np.linspace(0, 6.3, 200)
            return x, np.sin(params["freq"] * x)

        def plot(self, data, fig=None):           # pure: data -> Figure (reuse fig)
            fig, ax = figure_with_axes(fig, "sine", 6, 3, lambda f: f.add_subplot())
            ax.plot(*data)
            style_axes(ax, xlabel="x", ylabel="sin(freq x)")
            return fig

        def make_controls(self):                  # {parameter: widget}
            return {"freq": float_slider("frequency", self.params["freq"], 0.1, 5, 0.1)}

Show it as the last expression of a cell (``SineViewer()``). Without a widget front end
(nbconvert, nbgrader, ``TUG_STATIC_WIDGETS=1``: see :data:`STATIC_ENV` and
:func:`widgets_available`) the same call shows the static figure and a one-line note. The
control helpers :func:`int_slider`, :func:`float_slider`, :func:`log_slider` and
:func:`dropdown` make controls that redraw once, when released.

Importing this module changes no global state (no pyplot, no rcParams, no backend switch), and
it imports ipywidgets only when a widget is built.
"""

from __future__ import annotations

import html
import os
import time
import traceback
from typing import Any

from matplotlib.figure import Figure

from course_utils.plotting import OKABE_ITO, figure_to_png

__all__ = [
    "STATIC_ENV",
    "Visualiser",
    "widgets_available",
    "int_slider",
    "float_slider",
    "log_slider",
    "dropdown",
]

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


class Visualiser:
    """Base class: a parameter dict, a pure data function, a pure plot function, and widgets.

    Subclasses set ``name`` and ``defaults`` (parameter name -> value), define
    ``compute(params) -> data`` and ``plot(data, fig=None) -> Figure`` (or set
    ``data_function`` and ``plot_function``) and ``make_controls() -> {param: widget}``;
    optionally ``sync_controls(key)`` (move controls that depend on ``key``) and
    ``control_rows()`` (lay the controls out). Every control writes
    one parameter; each change triggers exactly one redraw (``n_draws`` counts them, and
    ``last_update_ms`` times the last one kernel-side: compute + plot + PNG). ``render()``
    computes and plots without widgets; ``set(**params)`` changes several parameters at once;
    ``show_png(png)`` and ``set_status(text)`` update the widget from a background thread.
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

    #: Shortcut for the common case: the pure data function (``**params -> data``) and plot
    #: function (``(data, fig=None) -> Figure``), set as ``staticmethod(...)``; ``compute`` and
    #: ``plot`` call them unless a subclass defines its own.
    data_function = None
    plot_function = None

    # -- the pure part -------------------------------------------------------------------
    def compute(self, params: dict) -> Any:
        """Data for ``params`` (by default ``data_function(**params)``)."""
        if self.data_function is None:
            raise NotImplementedError(f"{type(self).__name__} sets no data_function and "
                                      "defines no compute()")
        return self.data_function(**params)

    def plot(self, data, fig: Figure | None = None) -> Figure:
        """Draw ``data``; into ``fig`` (emptied first) when it was made by this plot before
        (by default ``plot_function(data, fig=fig)``)."""
        if self.plot_function is None:
            raise NotImplementedError(f"{type(self).__name__} sets no plot_function and "
                                      "defines no plot()")
        return self.plot_function(data, fig=fig)

    def make_controls(self) -> dict:  # pragma: no cover - abstract
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

        self._controls = self.make_controls()
        for key, control in self._controls.items():
            control.add_class(f"tug-control-{key.replace('_', '-')}")  # for the browser tests
            if key in self.params:
                control.observe(self._on_change(key), names="value")
        self._image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self._image.add_class("tug-figure")
        self._status = w.HTML(value="")
        self._status.add_class("tug-status")
        rows = self.control_rows()
        self._widget = w.VBox([*rows, self._image, self._status])
        self._widget.add_class("tug-visualiser")
        self._widget.add_class(f"tug-{self.name.replace('_', '-')}")
        self.redraw()

    def control_rows(self) -> list:
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
                self.sync_controls(key)
            finally:
                self._suspend = False
            self.redraw()
        return handler

    def sync_controls(self, key: str) -> None:
        """Adjust controls that depend on ``key`` (e.g. a layer slider's max on depth)."""

    def redraw(self):
        """Recompute, re-plot and push one new PNG to the image widget (one draw per call)."""
        start = time.perf_counter()
        try:
            self.render()
            self.png = figure_to_png(self.figure)
        except Exception as exc:  # shown in the widget, never raised into the comm handler
            self.show_error(exc)
            return
        self.n_draws += 1
        self.show_png(self.png)
        self.last_update_ms = (time.perf_counter() - start) * 1000.0

    @property
    def image(self):
        """The ``ipywidgets.Image`` that shows the figure (None until the widget is built)."""
        return self._image

    @property
    def status(self):
        """The ``ipywidgets.HTML`` status line under the figure (None until built)."""
        return self._status

    @property
    def has_widget(self) -> bool:
        """True once the widget (image and controls) has been built."""
        return self._image is not None

    def show_png(self, png: bytes) -> None:
        """Push ``png`` to the image widget and clear the status line (no-op without widget)."""
        if self._image is not None:
            self._image.value = png
            self.set_status("")

    def set_status(self, text: str, *, error: bool = False):
        """Show ``text`` under the figure (in vermillion when ``error``); "" clears it."""
        if self._status is None:
            return
        if not text:
            self._status.value = ""
            return
        colour = OKABE_ITO["vermillion"] if error else "#333333"
        cls = "tug-error" if error else "tug-info"
        self._status.value = (f'<pre class="{cls}" style="color:{colour};white-space:pre-wrap;'
                              f'margin:0">{html.escape(text)}</pre>')

    def show_error(self, exc: BaseException):
        """Show ``exc`` in the status line; re-raise it when there is no widget to show it."""
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.set_status(f"Could not draw with {self.params}: {detail}", error=True)
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
    """An ``ipywidgets.IntSlider`` from ``lo`` to ``hi`` that updates when released."""
    import ipywidgets as w

    return w.IntSlider(value=value, min=lo, max=hi, step=step, description=description,
                       continuous_update=False, style={"description_width": "initial"}, **kw)


def float_slider(description, value, lo, hi, step, readout_format=".2f", **kw):
    """An ``ipywidgets.FloatSlider`` from ``lo`` to ``hi`` that updates when released."""
    import ipywidgets as w

    return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                         continuous_update=False, readout_format=readout_format,
                         style={"description_width": "initial"}, **kw)


def log_slider(description, value, lo_exp, hi_exp, step=0.25, readout_format=".3g", **kw):
    """An ``ipywidgets.FloatLogSlider`` from 10**lo_exp to 10**hi_exp, updated when released."""
    import ipywidgets as w

    return w.FloatLogSlider(value=value, base=10, min=lo_exp, max=hi_exp, step=step,
                            description=description, continuous_update=False,
                            readout_format=readout_format,
                            style={"description_width": "initial"}, **kw)


def dropdown(description, value, options, **kw):
    """An ``ipywidgets.Dropdown``; ``options`` as ipywidgets takes them (values or pairs)."""
    import ipywidgets as w

    return w.Dropdown(value=value, options=options, description=description,
                      style={"description_width": "initial"}, **kw)
