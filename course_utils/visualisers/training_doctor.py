"""Training doctor: configure a deep MLP, train it live, and read its diagnostics.

Shown in notebooks/05_in_practice. Loss, per-layer gradient norms over time (a heat map),
update-to-weight ratios (log10 std(Δw) / std(w), against the usual 1e-3 reference) and the
fraction of saturated (sigmoid/tanh) or dead (ReLU family) units per layer.

How the Stop button works: a run trains in a background thread in chunks of a few steps; the
kernel's main thread stays free, so button clicks and control changes are handled at once.
Stop (or any control change, which starts a new run) sets the run's own ``threading.Event``;
the thread checks it between chunks and ends within one chunk (~10 steps). Each run has a
generation number and only the current generation may touch the widgets, so an old thread can
never overwrite a newer run's figure; a run superseded by a newer one also ends within one step
(its thread checks the generation before each step). Without a widget front end, everything
runs synchronously.
"""

from __future__ import annotations

import bisect
import functools
import math
import threading
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_utils.datasets import DigitsSplit, load_digits_split
from course_utils.diagnostics import UPDATE_RATIO_REFERENCE
from course_utils.in_practice import RunConfig, Trainer, diagnose
from course_utils.nets import HIDDEN_ACTIVATIONS, INIT_LABELS, INITS, single_thread
from course_utils.plotting import (
    OKABE_ITO,
    SEQUENTIAL_CMAP,
    figure_to_png,
    finite_or,
    log_safe,
    new_figure,
    style_axes,
)

from .base import Visualiser, dropdown, float_slider, int_slider, log_slider

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
SATURATING = ("sigmoid", "tanh")
N_CLASSES = 10  # scikit-learn's digits
BATCH = 64  # mini-batch size, and the samples each step's activations are probed on


@functools.lru_cache(maxsize=1)
def _digits() -> DigitsSplit:
    return load_digits_split()


class TrainingRun:
    """One live run of the notebook's training doctor: a
    :class:`course_utils.in_practice.Trainer` on scikit-learn's digits, advanced in chunks.

    The widget's parameters become a :class:`course_utils.in_practice.RunConfig` (mini-batches
    of 64, activations probed on 64 samples at every step, the optimizer's real step
    measured), trained by a ``live`` Trainer (it records only what the widget shows).
    ``history()`` holds ``loss`` (T,), ``grad_norms`` (T, L) for the L Linear layers (input
    side first), ``out_grad_rms`` (R, L): the RMS of dL/dz at each Linear's output on the
    batch of the last step of each ``advance`` (the steps, counted from 1 like ``step``, in
    ``out_grad_step``; the last row is the last step's, which is all the diagnosis reads),
    ``update_ratio`` (T, L) as log10 std(Δw)/std(w), ``saturation`` (T, L-1): the saturated
    (sigmoid, tanh) or dead (ReLU) fraction of each hidden layer, and ``status`` ("running",
    "done", "stopped", "diverged").
    """

    def __init__(self, depth=6, width=64, activation="sigmoid", init="pytorch_default",
                 batch_norm=False, clip=0.0, residual=False, optimizer="sgd", lr=0.1,
                 steps=300, seed=0):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose from {OPTIMIZERS}")
        self.config = {"depth": depth, "width": width, "activation": activation, "init": init,
                       "batch_norm": batch_norm, "clip": clip, "residual": residual,
                       "optimizer": optimizer, "lr": lr, "steps": steps, "seed": seed}
        cfg = RunConfig(name="training doctor", activation=activation, init=init, depth=depth,
                        width=width, batch_norm=batch_norm, residual=residual,
                        clip=clip if clip > 0 else None, optimizer=optimizer, lr=lr,
                        steps=steps, batch_size=BATCH, record_every=1, measure_steps=True)
        with single_thread():
            self.trainer = Trainer(cfg, _digits(), seed=seed, probe_size=BATCH, live=True)
        self.model = self.trainer.model
        self.total_steps = steps
        self.status = "running"

    @property
    def step_count(self) -> int:
        return self.trainer.step

    @property
    def grad_norms(self) -> np.ndarray:
        return self.trainer.grad_norms

    @property
    def done(self) -> bool:
        return self.status != "running"

    def advance(self, n_steps: int, stop=None) -> None:
        """Train up to ``n_steps`` more steps (fewer if the run ends or diverges, or once
        ``stop()``, asked before each step, returns True)."""
        if self.done:
            return
        with single_thread():
            self.trainer.advance(n_steps, stop)
        if self.trainer.diverged:
            self.status = "diverged"
        elif self.trainer.done:
            self.status = "done"

    def stop(self) -> None:
        if not self.done:
            self.status = "stopped"

    def history(self) -> dict:
        tr, t = self.trainer, self.trainer.step
        if tr.diverged:
            t += 1  # the step whose loss became inf/NaN
        frac = np.asarray(tr.act_fraction[:t], dtype=float).reshape(-1, self.config["depth"])
        rows = bisect.bisect_left(tr.out_grad_steps, t)  # the rows of steps 0 .. t-1
        n_lin = tr.grad_norms.shape[1]
        return {"step": np.arange(1, t + 1), "loss": tr.losses[:t].copy(),
                "grad_norms": tr.grad_norms[:t].copy(),
                "out_grad_rms": np.asarray(tr.out_grad_rms[:rows], dtype=float).reshape(-1, n_lin),
                "out_grad_step": np.asarray(tr.out_grad_steps[:rows], dtype=int) + 1,
                "update_ratio": tr.step_ratios[:t].copy(),
                "saturation": frac, "status": self.status,
                "total_steps": self.total_steps, "config": dict(self.config)}


def training_doctor_data(steps: int = 300, **config) -> dict:
    """Train one run to the end (synchronously) and return its history."""
    run = TrainingRun(steps=steps, **config)
    while not run.done:
        run.advance(50)
    return run.history()


def _layer_colours(n: int):
    from matplotlib import colormaps

    cmap = colormaps[SEQUENTIAL_CMAP]
    return [cmap(0.05 + 0.85 * i / max(n - 1, 1)) for i in range(n)]


def _diagnosis(h: dict) -> str:
    if not len(h["step"]):
        return "no steps yet"
    kind = "saturated" if h["config"]["activation"] in SATURATING else "dead"
    return diagnose(h["loss"], h["grad_norms"], h["out_grad_rms"], h["update_ratio"],
                    h["saturation"], kind)


def plot_training(history: dict, fig: Figure | None = None) -> Figure:
    """Loss, gradient-norm heat map, update-to-weight ratios and saturation, over steps.

    Always a new figure (``fig`` is accepted for a uniform signature and ignored): the live
    run draws from a background thread, where sharing one figure between frames is unsafe.
    """
    del fig
    fig = new_figure(11.0, 6.2)
    (ax_l, ax_h), (ax_u, ax_s) = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.09, top=0.86, wspace=0.28, hspace=0.42)
    step, cfg = history["step"], history["config"]
    total = history["total_steps"]
    n_lin = history["grad_norms"].shape[1] if history["grad_norms"].ndim == 2 else cfg["depth"] + 1
    colours = _layer_colours(n_lin)

    loss = finite_or(np.clip(history["loss"], 0.0, 10.0), 10.0)  # inf/NaN drawn at the top
    ax_l.plot(step, loss, color=OKABE_ITO["blue"], lw=1.2)
    ax_l.axhline(math.log(N_CLASSES), color=OKABE_ITO["grey"], ls="--", lw=1,
                 label=f"chance: ln {N_CLASSES}")
    ax_l.set_ylim(0, max(math.log(N_CLASSES) * 1.3, float(np.max(loss, initial=0.0)) * 1.05))
    ax_l.set_xlim(0, total)
    ax_l.legend(fontsize=7, frameon=False, loc="lower left")
    style_axes(ax_l, xlabel="training step", ylabel="cross-entropy loss (nats)",
               title="loss: should fall well below chance")

    if len(step):
        heat = np.log10(log_safe(history["grad_norms"], 1e-30, 1e30)).T
        im = ax_h.imshow(heat, aspect="auto", origin="lower", cmap=SEQUENTIAL_CMAP,
                         interpolation="nearest", extent=(0.5, len(step) + 0.5, 0.5, n_lin + 0.5))
        cbar = fig.colorbar(im, ax=ax_h, pad=0.02)
        cbar.set_label("log10 of gradient norm ||dL/dW||", fontsize=8)
    ax_h.set_xlim(0, total)
    ax_h.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    style_axes(ax_h, xlabel="training step", ylabel="layer l (1 = input side)",
               title="gradient norm per layer: look for dark rows (vanishing)", grid=False)

    for i in range(n_lin):
        if len(step):
            ax_u.plot(step, finite_clip(history["update_ratio"][:, i]), color=colours[i], lw=1,
                      label=f"layer {i + 1}" if n_lin <= 8 or i in (0, n_lin - 1) else None)
    ax_u.axhline(UPDATE_RATIO_REFERENCE, color="black", ls="--", lw=1, label="reference 1e-3")
    ax_u.set_xlim(0, total)
    ax_u.legend(fontsize=6, frameon=False, ncol=2, loc="upper right")
    style_axes(ax_u, xlabel="training step", ylabel="log10 std(Δw) / std(w)",
               title="update-to-weight ratio: near -3 is healthy")

    n_hidden = history["saturation"].shape[1] if history["saturation"].ndim == 2 else 0
    kind = "saturated" if cfg["activation"] in SATURATING else "dead"
    for i in range(n_hidden):
        if len(step):
            ax_s.plot(step, history["saturation"][:, i], color=colours[i], lw=1)
    ax_s.set_ylim(-0.03, 1.03)
    ax_s.set_xlim(0, total)
    style_axes(ax_s, xlabel="training step", ylabel=f"fraction of {kind} units",
               title=f"{kind} units per hidden layer (dark = input side): want near 0")

    extras = [name for name, on in (("batch norm", cfg["batch_norm"]),
                                    ("residual", cfg["residual"])) if on]
    if cfg["clip"] > 0:
        extras.append(f"clip {cfg['clip']:g}")
    status = {"running": "training", "done": "done", "stopped": "stopped",
              "diverged": "diverged"}[history["status"]]
    fig.suptitle(f"{cfg['depth']}×{cfg['width']} {cfg['activation']}, "
                 f"{INIT_LABELS.get(cfg['init'], cfg['init'])}"
                 f"{', ' + ', '.join(extras) if extras else ''}; {cfg['optimizer']} lr "
                 f"{cfg['lr']:.3g}. Step {len(step)}/{total} ({status})\n"
                 f"Diagnosis: {_diagnosis(history)}", fontsize=10)
    return fig


def finite_clip(a, lo=-12.0, hi=3.0):
    a = np.asarray(a, dtype=float)
    return np.clip(np.where(np.isnan(a), np.nan, a), lo, hi)


class TrainingDoctor(Visualiser):
    """Configure a network, train it live with a Stop button, and read its diagnostics.

    Shown in notebooks/05_in_practice. Any control change starts a new run (in a background
    thread when a widget front end is present); the figure refreshes every ``frame_interval``
    seconds while training. ``background=False`` trains synchronously (tests, benchmarks).
    """

    name = "training_doctor"
    defaults = {"depth": 6, "width": 64, "activation": "sigmoid", "init": "pytorch_default",
                "batch_norm": False, "clip": 0.0, "residual": False, "optimizer": "sgd",
                "lr": 0.1, "steps": 300}
    layout_columns = 4
    chunk = 10

    def __init__(self, background: bool = True, frame_interval: float = 0.4, **params):
        super().__init__(**params)
        self.background = background
        self.frame_interval = frame_interval
        self.run: TrainingRun | None = None
        self.generation = 0
        self.first_frame = threading.Event()
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = None
        self._buttons = None

    # pure part: a whole synchronous run (static display, tests)
    def compute(self, params):
        return training_doctor_data(**params)

    def plot(self, data, fig=None):
        return plot_training(data)

    def make_controls(self):
        import ipywidgets as w

        p = self.params
        controls = {
            "depth": int_slider("hidden layers", p["depth"], 1, 20),
            "width": int_slider("width", p["width"], 8, 256, step=8),
            "activation": dropdown("activation", p["activation"], list(HIDDEN_ACTIVATIONS)),
            "init": dropdown("init", p["init"], [(INIT_LABELS[k], k) for k in INITS]),
            "batch_norm": w.Checkbox(value=p["batch_norm"], description="batch norm"),
            "residual": w.Checkbox(value=p["residual"], description="residual"),
            "clip": float_slider("clip norm (0 = off)", p["clip"], 0.0, 5.0, 0.1,
                                 readout_format=".1f"),
            "optimizer": dropdown("optimizer", p["optimizer"], list(OPTIMIZERS)),
            "lr": log_slider("learning rate", p["lr"], -4, 1, step=0.25),
            "steps": int_slider("steps", p["steps"], 50, 2000, step=50),
        }
        self._progress = w.IntProgress(value=0, min=0, max=p["steps"], description="progress")
        train = w.Button(description="Train again", icon="play", button_style="success")
        stop = w.Button(description="Stop", icon="stop", button_style="danger")
        train.add_class("tug-train")
        stop.add_class("tug-stop")
        train.on_click(lambda _b: self.redraw())
        stop.on_click(lambda _b: self.stop())
        self._buttons = {"train": train, "stop": stop}
        return controls

    def control_rows(self):
        import ipywidgets as w

        rows = super().control_rows()
        return [*rows, w.HBox([self._buttons["train"], self._buttons["stop"], self._progress])]

    # live part
    def redraw(self):
        """Start a new run with the current parameters (replacing any running one).

        The very first run (when the widget is built) trains synchronously, so the displayed
        output already holds a finished figure, also for front ends without widgets.
        """
        background = self.background and self.n_draws > 0 and self.has_widget
        self.start(background=background)

    def start(self, background: bool = True):
        with self._lock:
            self._stop_event.set()  # ends the previous run's thread at its next chunk
            self.generation += 1
            gen = self.generation
            stop_event = threading.Event()
            self._stop_event = stop_event
            self.first_frame = threading.Event()
            self._start_time = time.perf_counter()
        try:
            run = TrainingRun(**self.params)
        except Exception as exc:
            self.show_error(exc)
            return
        self.run = run
        self._set_stop_button(active=True)
        if self._progress is not None:
            self._progress.max = run.total_steps
            self._progress.value = 0
            self._progress.bar_style = "info"
        if background:
            self._thread = threading.Thread(target=self._train_loop,
                                            args=(gen, run, stop_event, True),
                                            name=f"training-doctor-{gen}", daemon=True)
            self._thread.start()
        else:
            self._train_loop(gen, run, stop_event, live=False)

    def _set_stop_button(self, active: bool) -> None:
        """Red and clickable while a run trains; grey and disabled once it has ended."""
        stop = (self._buttons or {}).get("stop")
        if stop is not None:
            stop.button_style = "danger" if active else ""
            stop.disabled = not active

    @property
    def running(self) -> bool:
        """True while a background run's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def buttons(self) -> dict:
        """``{"train": Button, "stop": Button}`` once the widget is built."""
        self.controls  # noqa: B018 - builds the widget
        return self._buttons

    @property
    def progress(self):
        """The progress bar (an ``ipywidgets.IntProgress``) once the widget is built."""
        self.controls  # noqa: B018
        return self._progress

    def stop(self):
        """Ask the current run to stop at its next chunk (a few milliseconds)."""
        self._stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current background run ends; True if it did within ``timeout``."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _train_loop(self, gen, run, stop_event, live):
        last_frame = -math.inf
        try:
            while not run.done:
                if stop_event.is_set():
                    run.stop()
                    break
                # a newer run ends this one within a step (its steps would only slow the new
                # run's first frame, and it never draws again); Stop ends it within the chunk
                run.advance(self.chunk, stop=lambda: gen != self.generation)
                if gen != self.generation:  # superseded by a newer run: end quietly
                    run.stop()
                    return
                if self._progress is not None:
                    self._progress.value = run.step_count
                now = time.perf_counter()
                if live and (not self.first_frame.is_set()
                             or now - last_frame >= self.frame_interval) and not run.done:
                    self._publish(gen, run)
                    last_frame = time.perf_counter()
            if stop_event.is_set():
                run.stop()
            self._publish(gen, run)
        except Exception as exc:  # never let a thread die silently
            self.show_error(exc)

    def _publish(self, gen, run):
        history = run.history()
        fig = plot_training(history)
        png = figure_to_png(fig)
        with self._lock:
            if gen != self.generation:
                return  # a newer run owns the widgets now
            self.data, self.figure, self.png = history, fig, png
            self.n_draws += 1
            if self.has_widget:
                self.image.value = png
            if self._progress is not None:
                self._progress.value = run.step_count
                self._progress.bar_style = {"done": "success", "stopped": "warning",
                                            "diverged": "danger"}.get(run.status, "info")
            if run.done:
                self._set_stop_button(active=False)
            last_loss = history["loss"][-1] if len(history["loss"]) else float("nan")
            self.set_status(f"{run.status}: step {run.step_count}/{run.total_steps}, "
                             f"loss {last_loss:.4g}")
            if not self.first_frame.is_set():
                self.last_update_ms = (time.perf_counter() - self._start_time) * 1000.0
                self.first_frame.set()


def training_doctor(**params) -> TrainingDoctor:
    """Build the doctor (display it as a cell's last expression)."""
    return TrainingDoctor(**params)
