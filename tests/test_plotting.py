"""course_utils.plotting: palette, figure helpers and the text-caching renderer."""

import subprocess
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from course_utils import plotting as P

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_palette_is_okabe_ito():
    assert len(P.PALETTE) == len(set(P.PALETTE)) == 8
    assert set(P.PALETTE) <= set(P.OKABE_ITO.values())
    assert P.PALETTE[0] == P.OKABE_ITO["blue"] and P.PALETTE[-1] == P.OKABE_ITO["yellow"]
    assert [P.color(i) for i in range(10)] == [*P.PALETTE, *P.PALETTE[:2]]
    assert len(P.LINESTYLES) == len(P.MARKERS) == 8


def test_subplots_and_row_of_axes():
    fig, axes = P.subplots(2, 3, figsize=(6, 4), sharex=True)
    assert isinstance(fig, Figure) and axes.shape == (2, 3)
    fig, row = P.row_of_axes(2, width=3.0, height=2.0)
    assert len(row) == 2 and tuple(fig.get_size_inches()) == (6.0, 2.0)


def test_figure_with_axes_reuses_its_own_figure_only():
    make = lambda f: f.subplots(1, 2)  # noqa: E731
    fig, (a, b) = P.figure_with_axes(None, "two", 4, 2, make)
    a.plot([1, 2], [3, 4])
    a.set_yscale("log")
    again, (a2, b2) = P.figure_with_axes(fig, "two", 4, 2, make)
    assert again is fig and a2 is a and not a2.lines and a2.get_yscale() == "linear"
    other, _ = P.figure_with_axes(fig, "three", 4, 2, make)
    assert other is not fig
    foreign = Figure()
    assert P.figure_with_axes(foreign, "two", 4, 2, make)[0] is not foreign


def test_text_caching_canvas_draws_what_agg_draws():
    def draw(fig, text=True):
        ax = fig.add_subplot()
        ax.plot(np.arange(10), np.arange(10) ** 2, color=P.PALETTE[0])
        P.style_axes(ax, xlabel="step" if text else "", ylabel="loss" if text else "",
                     title="a title" if text else None)
        P.set_log_axis(ax, "y")
        if text:
            ax.text(2, 20, "rotated", rotation=30)
        else:
            ax.tick_params(labelbottom=False, labelleft=False)
        return fig

    def pixels(fig):
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba(), dtype=float)

    def differ(a, b):  # fraction of pixels of a with no close match within one pixel in b
        best = np.full(a.shape[:2], np.inf)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = np.roll(b, (dy, dx), axis=(0, 1))
                best = np.minimum(best, np.abs(a - shifted).max(axis=2))
        return np.mean(best > 64)

    plain = pixels(draw(Figure(figsize=(4, 3), dpi=72, facecolor="white")))
    text_area = differ(plain, pixels(draw(Figure(figsize=(4, 3), dpi=72, facecolor="white"),
                                          text=False)))
    assert text_area > 0.001
    cached = P.new_figure(4, 3)
    draw(cached)
    for _ in range(2):  # the second draw uses the cached bitmaps
        assert P.figure_to_png(cached).startswith(PNG_MAGIC)
        got = np.asarray(cached.canvas.buffer_rgba(), dtype=float)
        assert got.shape == plain.shape
        # text lands on whole pixels, at most half a pixel from where Agg puts it
        assert differ(got, plain) < 0.1 * text_area


def test_text_caching_canvas_lays_text_out_as_agg_does(monkeypatch):
    def extents(fig):
        ax = fig.add_subplot()
        ax.plot([1, 10, 100], [3, 30, 3000])
        P.style_axes(ax, xlabel="steps\n(two lines)", ylabel="loss", title="Title")
        P.set_log_axis(ax, "y")
        ax.text(2, 20, "rotated", rotation=30, fontsize=13)
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
        return [tuple(np.round(t.get_window_extent(renderer).bounds, 6)) for t in texts]

    import matplotlib.text

    font_reads = []
    real = matplotlib.text.get_font
    monkeypatch.setattr(matplotlib.text, "get_font",
                        lambda *a, **k: font_reads.append(1) or real(*a, **k))
    plain = extents(Figure(figsize=(4, 3), dpi=72))
    assert len(plain) > 8 and font_reads  # plain Agg reads the font's tables per label
    font_reads.clear()
    assert extents(P.new_figure(4, 3)) == plain
    assert font_reads == []  # the cached canvas answered from its own metrics


def test_log_safe_and_finite_or():
    np.testing.assert_array_equal(P.finite_or([1.0, np.nan, np.inf], -1.0), [1.0, -1.0, -1.0])
    out = P.log_safe([0.0, np.nan, np.inf, 5.0])
    assert out[0] == out[1] == 1e-300 and out[2] == 1e300 and out[3] == 5.0


def test_import_does_not_import_matplotlib():
    code = ("import sys, course_utils.plotting; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
