"""Headless tests of the visualisers: the data each plot draws, the figures, and the wiring of
every widget's controls (one change -> exactly one redraw). No pyplot, no browser: Agg only.
The browser tests are in tests/e2e/."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from course_utils import visualisers as V
from course_utils.visualisers.base import STATIC_ENV, widgets_available

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(STATIC_ENV, raising=False)


# -- package hygiene ----------------------------------------------------------------------------

def test_import_changes_no_global_state():
    code = textwrap.dedent("""
        import sys, matplotlib, torch
        def rc():  # reading rcParams['backend'] itself would import pyplot: skip it
            return {k: dict.__getitem__(matplotlib.rcParams, k) for k in matplotlib.rcParams}
        before = rc()
        threads = torch.get_num_threads()
        import course_utils.visualisers as V
        V.GradientFlowExplorer().render()
        assert rc() == before, 'rcParams changed'
        assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'
        assert 'ipywidgets' not in sys.modules, 'ipywidgets imported before a widget is built'
        assert torch.get_num_threads() == threads, 'torch thread count not restored'
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_widgets_available_rules(monkeypatch):
    assert widgets_available() is False  # pytest is not an IPython kernel
    monkeypatch.setenv(STATIC_ENV, "0")
    assert widgets_available() is True
    monkeypatch.setenv(STATIC_ENV, "1")
    assert widgets_available() is False


# -- 00 gradient flow ---------------------------------------------------------------------------

def test_gradient_flow_data_shapes_and_verdicts():
    d = V.gradient_flow_data(depth=20, activation="sigmoid")
    assert d["grad_norms"].shape == (21,) and list(d["layer"]) == list(range(1, 22))
    assert np.all(d["grad_norms"] > 0)
    assert d["verdict"] == "vanishing" and d["ratio"] < 1e-6
    assert V.gradient_flow_data(depth=20, activation="relu", init="he")["verdict"] == \
        "healthy"
    assert V.gradient_flow_data(depth=20, activation="tanh", init="normal")["verdict"] == \
        "exploding"


def test_gradient_flow_norms_match_an_independent_torch_model():
    from course_utils.nets import mlp

    d = V.gradient_flow_data(depth=3, width=8, activation="tanh", n_samples=5, seed=4)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    model = mlp(8, 1, depth=3, width=8, activation="tanh", bias=0.0, seed=4, dtype=torch.float64)
    seq = torch.nn.Sequential(*[m for b in model.blocks for m in b], model.head)
    torch.nn.functional.mse_loss(seq(x), y).backward()
    expected = [m.weight.grad.norm().item() for m in seq if isinstance(m, torch.nn.Linear)]
    np.testing.assert_allclose(d["grad_norms"], expected, rtol=1e-12)


def test_plot_gradient_flow_figure():
    fig = V.plot_gradient_flow(V.gradient_flow_data(depth=10))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    assert "VANISHING" in fig.get_suptitle()


# -- 01 activations -----------------------------------------------------------------------------

def test_activation_data_values_and_moments():
    d = V.activation_data(("relu", "sigmoid", "selu", "leaky_relu"), negative_slope=0.2)
    x, c = d["x"], d["curves"]
    zero = np.argmin(np.abs(x))
    assert x[zero] == 0.0
    assert c["relu"]["dy"][zero] == 0.0  # torch's derivative of ReLU at exactly 0
    assert c["leaky_relu"]["dy"][zero] == pytest.approx(0.2)
    assert c["sigmoid"]["dy"].max() == pytest.approx(0.25, abs=1e-4)
    assert c["relu"]["out_mean"] == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-4)
    assert c["relu"]["out_std"] == pytest.approx(math.sqrt(0.5 - 1 / (2 * math.pi)), abs=1e-4)
    assert c["selu"]["out_mean"] == pytest.approx(0.0, abs=1e-3)
    assert c["selu"]["out_std"] == pytest.approx(1.0, abs=1e-3)
    sat = c["sigmoid"]["saturated"]
    assert len(sat) == 2 and sat[0][0] == -6.0 and sat[1][1] == 6.0
    assert c["relu"]["saturated"][0][0] == -6.0 and c["relu"]["saturated"][0][1] <= 0.0


def test_activation_data_follows_parameters():
    a = V.activation_data(("elu", "gelu"), alpha=2.0, approximate="tanh", mu=1.0, sigma=2.0)
    x = torch.tensor(a["x"])
    np.testing.assert_allclose(a["curves"]["elu"]["y"], torch.nn.functional.elu(x, 2.0))
    np.testing.assert_allclose(a["curves"]["gelu"]["y"],
                               torch.nn.functional.gelu(x, approximate="tanh"))
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mc = torch.nn.functional.elu(1.0 + 2.0 * z, 2.0)
    assert a["curves"]["elu"]["out_mean"] == pytest.approx(float(mc.mean()), abs=0.01)
    assert a["curves"]["elu"]["out_std"] == pytest.approx(float(mc.std()), abs=0.01)


def test_plot_activations_figure_and_empty_selection():
    fig = V.plot_activations(V.activation_data(("tanh",)))
    assert len(fig.axes) == 3 and all(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes)
    assert isinstance(V.plot_activations(V.activation_data(())), Figure)


def test_saturation_strips_do_not_overlap():
    """Each activation's saturated inputs are one strip of its own below f' = 0, in its colour,
    so eight activations at once stay readable (no overlapping shaded regions)."""
    names = ("sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu")
    d = V.activation_data(names, sigma=4.0)
    ax_d = V.plot_activations(d).axes[1]
    strips = [c for c in ax_d.collections if isinstance(c, PolyCollection)]
    saturating = [n for n in names if d["curves"][n]["saturated"]]
    # every one of them has |f'| < 0.05 somewhere in [-6, 6]: leaky ReLU's default slope 0.01 too
    assert len(strips) == len(saturating) == 8
    steeper = V.activation_data(("leaky_relu",), negative_slope=0.1, sigma=4.0)
    assert steeper["curves"]["leaky_relu"]["saturated"] == []  # a slope of 0.1 never is
    bands = sorted((float(p.get_extents().y0), float(p.get_extents().y1))
                   for c in strips for p in c.get_paths()[:1])
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(bands, bands[1:], strict=False))
    assert all(hi <= 0 for _, hi in bands)  # below the curves, not on top of them


def test_activation_explorer_shows_every_row_and_selects_what_the_notebook_compares():
    """Notebook 01, section 12 asks first to compare ReLU, ELU and SELU; the list shows all eight
    activations, so a selected one is never scrolled out of sight."""
    vis = V.ActivationExplorer()
    assert tuple(vis.params["activations"]) == ("relu", "elu", "selu")
    select = vis.controls["activations"]
    assert select.rows == len(select.options) == 8
    assert set(select.value) == {"relu", "elu", "selu"}


# -- 02 initialization --------------------------------------------------------------------------

@pytest.mark.parametrize("activation, init", [("tanh", "xavier"), ("relu", "he"),
                                              ("selu", "lecun"), ("relu", "pytorch_default")])
def test_init_lab_theory_matches_measurement(activation, init):
    d = V.init_lab_data(depth=8, width=256, activation=activation, init=init)
    assert d["act_std"].shape == d["theory_act_std"].shape == (8,)
    np.testing.assert_allclose(d["act_std"], d["theory_act_std"], rtol=0.25, atol=1e-6)


def test_init_lab_gradient_theory_and_histograms():
    d = V.init_lab_data(depth=6, width=256, activation="relu", init="he", layer=3,
                        n_samples=256)
    np.testing.assert_allclose(d["theory_grad_std"], 1.0, rtol=1e-6)  # He keeps it at 1
    np.testing.assert_allclose(d["grad_std"], d["theory_grad_std"], rtol=0.25)
    assert d["layer"] == 3
    assert d["act_hist"][0].sum() == 256 * 256 == d["grad_hist"][0].sum()
    assert V.init_lab_data(depth=4, layer=99)["layer"] == 4  # clamped to the depth


def test_init_lab_gain_multiplier_scales_weights():
    a = V.init_lab_data(depth=2, width=64, init="lecun", gain_mult=2.0)
    assert a["weight_std"] == pytest.approx(2.0 / 8.0)
    small = V.init_lab_data(depth=10, width=64, activation="tanh", init="normal",
                            gain_mult=0.01)
    assert small["act_std"][-1] < 1e-6  # "small random numbers" make the signal vanish


def test_plot_initialization_figure():
    fig = V.plot_initialization(V.init_lab_data(depth=5, width=32))
    assert len(fig.axes) == 3 and fig.axes[0].get_yscale() == "log"


# -- 03 batch norm ------------------------------------------------------------------------------

def test_batchnorm_running_stats_follow_pytorch_convention():
    d = V.batchnorm_data(batch_size=8, momentum=0.2, steps=30)
    # independent recurrence from the recorded batch statistics (unbiased var in running_var)
    rm, rv = 0.0, 1.0
    for mean, var in zip(d["batch_mean"], d["batch_var"], strict=True):
        rm = 0.8 * rm + 0.2 * mean
        rv = 0.8 * rv + 0.2 * var * 8 / 7
    assert d["running_mean"][-1] == pytest.approx(rm)
    assert d["running_var"][-1] == pytest.approx(rv)


def test_batchnorm_train_and_eval_outputs():
    train = V.batchnorm_data(batch_size=16, steps=0, mode="train")
    assert train["out_mean"] == pytest.approx(0.0, abs=1e-9)
    assert train["out_std"] == pytest.approx(1.0, abs=1e-4)
    cold = V.batchnorm_data(steps=0, mode="eval")  # running stats still (0, 1): no effect
    assert cold["out_mean"] == pytest.approx(3.0, abs=0.2)
    warm = V.batchnorm_data(steps=300, mode="eval")
    assert abs(warm["out_mean"]) < 0.2 and 0.8 < warm["out_std"] < 1.2
    two = V.batchnorm_data(batch_size=2, mode="train")
    np.testing.assert_allclose(np.abs(two["out"]), 1.0, atol=1e-2)  # only ±1 with 2 samples
    with pytest.raises(ValueError):
        V.batchnorm_data(mode="test")


def test_plot_batchnorm_figure():
    fig = V.plot_batchnorm(V.batchnorm_data(steps=10, mode="eval"))
    assert len(fig.axes) == 3 and "eval" in fig.axes[2].get_title()


# -- 04 clipping --------------------------------------------------------------------------------

def test_clipping_source_example():
    d = V.clipping_data(0.9, 100.0, clip=1.0)
    np.testing.assert_allclose(d["by_value"], [0.9, 1.0])
    np.testing.assert_allclose(d["by_norm"], [0.0090, 0.99996], atol=5e-5)
    assert d["angle_norm_deg"] == pytest.approx(0.0, abs=1e-6)
    assert d["angle_value_deg"] == pytest.approx(
        math.degrees(math.atan2(100, 0.9) - math.atan2(1, 0.9)), abs=1e-6)
    g = torch.tensor([0.9, 100.0], requires_grad=True)
    g.grad = g.detach().clone()
    torch.nn.utils.clip_grad_norm_([g], 1.0)
    np.testing.assert_allclose(d["by_norm"], g.grad.numpy(), rtol=1e-6)


def test_clipping_by_norm_only_shrinks_and_trace_fires():
    d = V.clipping_data(0.3, -0.4, clip=1.0, trace=[1, 5, 2, 8], threshold=3)
    np.testing.assert_allclose(d["by_norm"], [0.3, -0.4])
    assert list(d["fires"]) == [False, True, False, True] and d["fire_fraction"] == 0.5
    trace = V.recorded_grad_norm_trace()
    assert trace.shape == (300,) and np.all(np.isfinite(trace)) and np.all(trace > 0)
    assert 0 < V.clipping_data(threshold=5.0)["fire_fraction"] < 0.5


def test_plot_clipping_figure():
    fig = V.plot_clipping(V.clipping_data())
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    assert fig.axes[0].get_aspect() == 1.0


# -- 05 training doctor -------------------------------------------------------------------------

def test_training_run_history():
    h = V.training_doctor_data(steps=40, depth=3, width=16, activation="relu", init="he",
                               optimizer="adam", lr=3e-3)
    assert h["status"] == "done" and h["loss"].shape == (40,)
    assert h["grad_norms"].shape == (40, 4) and h["update_ratio"].shape == (40, 4)
    assert h["saturation"].shape == (40, 3)
    assert np.all(np.isfinite(h["loss"])) and h["loss"][-10:].mean() < h["loss"][:5].mean()
    assert np.all((h["saturation"] >= 0) & (h["saturation"] <= 1))


def test_training_run_keeps_dz_of_the_last_step_of_each_chunk():
    run = V.TrainingRun(steps=30, depth=3, width=16)
    run.advance(10)
    run.advance(7)
    h = run.history()
    assert list(h["out_grad_step"]) == [10, 17] and h["out_grad_rms"].shape == (2, 4)
    assert np.all(h["out_grad_rms"] > 0)
    run.advance(10, stop=lambda: run.step_count >= 20)  # a superseded run ends mid-chunk
    assert run.step_count == 20 and list(run.history()["out_grad_step"]) == [10, 17]


def test_training_run_diverges_and_clipping_is_applied():
    h = V.training_doctor_data(steps=100, activation="relu", init="normal", lr=1.0)
    assert h["status"] == "diverged" and len(h["loss"]) < 100
    clipped = V.TrainingRun(steps=5, depth=2, width=8, clip=1e-3, optimizer="sgd", lr=1.0)
    before = [p.detach().clone() for p in clipped.model.parameters()]
    clipped.advance(1)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum()
                           for p, b in zip(clipped.model.parameters(), before, strict=True)))
    assert float(moved) <= 1e-3 * 1.0 + 1e-6  # lr * max_norm bounds the step
    assert clipped.grad_norms[0].max() > 1e-3  # the recorded norm is before clipping


def test_plot_training_figure_for_partial_and_empty_runs():
    run = V.TrainingRun(steps=50, depth=2, width=8)
    assert isinstance(V.plot_training(run.history()), Figure)  # zero steps
    run.advance(10)
    fig = V.plot_training(run.history())
    assert len(fig.axes) == 5  # four panels and the heat map's colour bar
    assert "10/50" in fig.get_suptitle()


# -- widget wiring ------------------------------------------------------------------------------

WIRING = [
    (V.GradientFlowExplorer, "depth", 12),
    (V.GradientFlowExplorer, "activation", "relu"),
    (V.ActivationExplorer, "sigma", 2.0),
    (V.ActivationExplorer, "activations", ("elu", "selu")),
    (V.InitializationLab, "init", "he"),
    (V.InitializationLab, "gain_mult", 2.0),
    (V.BatchNormExplorer, "mode", "eval"),
    (V.BatchNormExplorer, "batch_size", 4),
    (V.ClippingGeometry, "gx", 50.0),
    (V.ClippingGeometry, "threshold", 2.0),
]


@pytest.mark.parametrize("cls, key, value", WIRING,
                         ids=[f"{c.__name__}-{k}" for c, k, _ in WIRING])
def test_control_change_redraws_exactly_once(cls, key, value):
    vis = cls()
    controls = vis.controls  # builds the widget: one initial draw
    assert vis.n_draws == 1 and bytes(vis.image.value).startswith(PNG_MAGIC)
    before_png, before_data = bytes(vis.image.value), vis.data
    controls[key].value = value
    assert vis.n_draws == 2
    assert vis.params[key] == value
    assert vis.data is not before_data
    assert bytes(vis.image.value) != before_png and bytes(vis.image.value) == vis.png
    assert vis.status.value == ""  # no error shown
    assert vis.last_update_ms is not None and vis.last_update_ms > 0


def test_dependent_control_does_not_redraw_twice():
    lab = V.InitializationLab(depth=10, layer=10)
    lab.controls["depth"].value = 4
    assert lab.n_draws == 2
    assert lab.controls["layer"].max == 4 and lab.params["layer"] == 4 == lab.data["layer"]


def test_set_changes_several_parameters_with_one_draw():
    vis = V.GradientFlowExplorer()
    _ = vis.controls
    vis.set(depth=5, width=16, activation="relu")
    assert vis.n_draws == 2 and vis.data["depth"] == 5 and vis.data["width"] == 16


def test_errors_are_shown_in_the_widget_not_raised():
    vis = V.ClippingGeometry()
    _ = vis.controls
    vis.controls["clip"].value = 1.0
    vis.params["clip"] = -1.0  # bypass the slider's bounds
    vis.redraw()
    assert "clip and threshold must be positive" in vis.status.value
    assert "tug-error" in vis.status.value


def test_unknown_parameter_is_rejected():
    with pytest.raises(TypeError, match="unknown parameter"):
        V.GradientFlowExplorer(colour="red")


def test_training_doctor_live_run_and_stop_button():
    doc = V.TrainingDoctor(steps=2000, depth=3, width=16, frame_interval=0.05)
    _ = doc.controls  # initial run: synchronous, complete
    assert doc.n_draws == 1 and doc.run.status == "done" and doc.run.step_count == 2000
    draws = doc.n_draws
    generation = doc.generation
    doc.controls["lr"].value = 0.01  # a change starts a new run in a background thread
    assert doc.generation == generation + 1
    assert doc.first_frame.wait(30), "no live frame"
    assert doc.running
    doc.buttons["stop"].click()
    assert doc.wait(10), "the run did not stop"
    assert doc.run.status == "stopped" and doc.run.step_count < 2000
    assert doc.n_draws > draws and "stopped" in doc.status.value
    assert doc.progress.bar_style == "warning"


def test_training_doctor_new_run_supersedes_old_one():
    doc = V.TrainingDoctor(steps=2000, depth=2, width=8)
    _ = doc.controls
    doc.controls["lr"].value = 0.05
    old_thread, old_run = doc._thread, doc.run
    doc.controls["optimizer"].value = "adam"  # replaces the running one
    assert old_thread.join(10) is None and not old_thread.is_alive()
    assert old_run.status == "stopped" and doc.run is not old_run
    doc.stop()
    assert doc.wait(10)
    assert doc.data["config"]["optimizer"] == "adam"  # only the newest run drew last


def test_training_doctor_synchronous_mode():
    doc = V.TrainingDoctor(background=False, steps=30, depth=2, width=8)
    _ = doc.controls
    doc.controls["activation"].value = "relu"
    assert doc.n_draws == 2 and doc.data["config"]["activation"] == "relu"
    assert doc.run.status == "done"


# -- no front end: static figure, never a hang --------------------------------------------------

def test_static_bundle_without_front_end(monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "1")
    vis = V.BatchNormExplorer()
    bundle = vis._repr_mimebundle_()
    assert bundle["image/png"].startswith(PNG_MAGIC)
    assert "Static figure" in bundle["text/plain"] and "\n" not in bundle["text/plain"]
    assert vis._widget is None  # no widget (no comm) was created


def test_widget_bundle_carries_a_static_fallback(monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "0")
    vis = V.GradientFlowExplorer()
    bundle = vis._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"].startswith(PNG_MAGIC)


NOTEBOOK_CELL = """
from course_utils.visualisers import (ActivationExplorer, BatchNormExplorer, ClippingGeometry,
    GradientFlowExplorer, InitializationLab, TrainingDoctor)
for vis in (GradientFlowExplorer(), ActivationExplorer(), InitializationLab(depth=4),
            BatchNormExplorer(), ClippingGeometry(), TrainingDoctor(steps=50, depth=2)):
    vis.display()
"""


@pytest.mark.parametrize("static", ["1", ""], ids=["TUG_STATIC_WIDGETS=1", "auto-detect"])
def test_notebook_execution_never_hangs(static, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    env = {k: v for k, v in os.environ.items() if k != STATIC_ENV}
    if static:
        env[STATIC_ENV] = static
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this environment
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 6
    widgets = [o for o in outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == (0 if static else 6)
    if static:
        notes = [o for o in outputs if o.get("data", {}).get("text/plain", "").startswith(
            "Static figure")]
        assert len(notes) == 6


# -- drawing speed-ups must not change what is drawn --------------------------------------------

REUSE_CASES = [
    ("plot_activations", lambda: V.activation_data(("relu", "elu")),
     lambda: V.activation_data(("sigmoid", "tanh", "gelu"), mu=1.0, sigma=2.0)),
    ("plot_batchnorm", lambda: V.batchnorm_data(mode="eval", steps=0),
     lambda: V.batchnorm_data(batch_size=4, steps=100)),
    ("plot_clipping", lambda: V.clipping_data(gx=-50.0, gy=3.0, clip=10.0),
     lambda: V.clipping_data()),
    ("plot_gradient_flow", lambda: V.gradient_flow_data(depth=3, activation="relu",
                                                        init="he"),
     lambda: V.gradient_flow_data(depth=30)),
    ("plot_initialization", lambda: V.init_lab_data(depth=3, init="normal",
                                                    activation="relu"),
     lambda: V.init_lab_data(depth=12, layer=4)),
]


@pytest.mark.parametrize("plot_name, first, second", REUSE_CASES,
                         ids=[c[0] for c in REUSE_CASES])
def test_redrawing_into_a_used_figure_equals_a_fresh_figure(plot_name, first, second):
    plot = getattr(V, plot_name)
    fresh = V.figure_to_png(plot(second()))
    fig = plot(first())
    V.figure_to_png(fig)
    again = plot(second(), fig=fig)
    assert again is fig  # the widget path: same figure, no stale artists, scales or limits
    assert V.figure_to_png(again) == fresh


def test_text_cache_draws_like_plain_agg():
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    data = V.batchnorm_data(steps=20)
    cached = V.figure_to_png(V.plot_batchnorm(data))
    plain_fig = V.plot_batchnorm(data)
    FigureCanvasAgg(plain_fig)  # matplotlib's own renderer, no cache
    buf = io.BytesIO()
    plain_fig.savefig(buf, format="png", dpi=plain_fig.dpi)
    a = np.asarray(Image.open(io.BytesIO(cached)).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(buf).convert("RGB"), dtype=float)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 3.0  # text lands within half a pixel of Agg's own


def test_widget_controls_are_labelled_for_the_browser_tests():
    vis = V.ClippingGeometry()
    for key, control in vis.controls.items():
        assert f"tug-control-{key.replace('_', '-')}" in control._dom_classes
        assert control.description  # every control says what it sets
