"""Low-precision number formats (float16, bfloat16) and the tools that make training in them work.

Taught in ``notebooks/07_low_precision``. Reference implementations of the notebook's
exercises, each tested against torch in ``tests/test_low_precision.py``:

* :func:`cast_outcome` says, from the numbers in ``torch.finfo`` alone, what casting a float64
  value to float16 or bfloat16 does to it (``"ok"``, ``"overflow"``, ``"underflow"``,
  ``"subnormal"`` or ``"nonfinite"``);
* :class:`DynamicLossScaler` is dynamic loss scaling with the same scale sequence, skipped steps
  and parameter values as ``torch.amp.GradScaler("cpu")``;
* :func:`lost_update_fraction` measures how many weight updates vanish when added in a format;
* :func:`mixed_precision_step` is one training step with a low-precision working copy of the
  model and float32 master weights (loss scaling, unscaling, clipping, skipping).

Experiment helpers (:func:`decoder_data`, :func:`decoder_net`, :func:`train_mixed_precision`)
and pure plotting functions returning a ``Figure`` complete the module. Importing it changes no
global state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_utils.nets import mlp
from course_utils.plotting import LINESTYLES, PALETTE, set_log_axis, style_axes, subplots

__all__ = [
    "DTYPES",
    "OUTCOMES",
    "torch_dtype",
    "format_facts",
    "cast_outcome",
    "DynamicLossScaler",
    "lost_update_fraction",
    "mixed_precision_step",
    "first_nonfinite",
    "decoder_data",
    "decoder_net",
    "train_mixed_precision",
    "plot_format_ranges",
    "plot_gradient_histogram",
    "plot_mixed_precision_runs",
]

#: The formats the notebook compares, by name.
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
#: The labels :func:`cast_outcome` returns.
OUTCOMES = ("ok", "overflow", "underflow", "subnormal", "nonfinite")


def torch_dtype(dtype) -> torch.dtype:
    """``"float16"``, ``"bfloat16"`` or ``"float32"`` (or the torch dtype itself) -> torch dtype.

    Taught in ``notebooks/07_low_precision``.
    """
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown format {dtype!r}: use one of {sorted(DTYPES)}")


def format_facts(dtype) -> dict:
    """Range and precision of a format, from ``torch.finfo`` plus what follows from it.

    Keys: ``max``, ``smallest_normal``, ``smallest_subnormal`` (``smallest_normal * eps``),
    ``eps`` (spacing just above 1), ``mantissa_bits`` (stored fraction bits),
    ``overflow_threshold`` (the smallest magnitude that rounds to inf: ``max`` plus half the
    spacing at ``max``) and ``underflow_threshold`` (half the smallest subnormal: this and
    anything smaller rounds to 0). Taught in ``notebooks/07_low_precision``.
    """
    info = torch.finfo(torch_dtype(dtype))
    top_binade = 2.0 ** math.floor(math.log2(info.max))  # the power of two just below max
    smallest_subnormal = info.smallest_normal * info.eps
    return {
        "max": info.max,
        "smallest_normal": info.smallest_normal,
        "smallest_subnormal": smallest_subnormal,
        "eps": info.eps,
        "mantissa_bits": int(round(-math.log2(info.eps))),
        "overflow_threshold": info.max + info.eps * top_binade / 2,
        "underflow_threshold": smallest_subnormal / 2,
    }


def cast_outcome(x, dtype) -> np.ndarray:
    """What casting each float64 value of ``x`` to ``dtype`` (``"float16"``/``"bfloat16"``) does.

    Returns a string array of ``x``'s shape: ``"nonfinite"`` (already inf or NaN),
    ``"overflow"`` (becomes +-inf), ``"underflow"`` (non-zero, becomes 0), ``"subnormal"``
    (lands in the subnormal range, below the smallest normal number) or ``"ok"``. Decided from
    ``torch.finfo`` alone with round-to-nearest-even: a magnitude of exactly
    ``max + spacing/2`` rounds to inf, exactly half the smallest subnormal rounds to 0, and
    ``smallest_normal - smallest_subnormal/2`` rounds up to the smallest normal. Like torch,
    it rounds float64 to float32 first (which changes nothing for inputs that are float32
    numbers, and can round twice for others). Taught in ``notebooks/07_low_precision``.
    """
    if dtype not in ("float16", "bfloat16"):
        raise ValueError(f"dtype must be 'float16' or 'bfloat16', not {dtype!r}")
    f = format_facts(dtype)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):  # like torch: float64 -> float32 first (may be inf)
        a = np.abs(x).astype(np.float32).astype(np.float64)
    out = np.full(x.shape, "ok", dtype="<U9")
    out[(a > f["underflow_threshold"])
        & (a < f["smallest_normal"] - f["smallest_subnormal"] / 2)] = "subnormal"
    out[(x != 0) & (a <= f["underflow_threshold"])] = "underflow"
    out[a >= f["overflow_threshold"]] = "overflow"
    out[~np.isfinite(x)] = "nonfinite"
    return out


class DynamicLossScaler:
    """Dynamic loss scaling, step for step the same as ``torch.amp.GradScaler("cpu")``.

    ``scale(loss)`` multiplies the loss by the current scale; ``unscale_(optimizer)`` multiplies
    every gradient of the optimizer's parameters by ``1/scale`` in place and returns whether
    any of them holds inf or NaN (at most once per step); ``step(optimizer)`` unscales if that
    has not happened yet and calls ``optimizer.step()`` only when every gradient was finite;
    ``update()`` then backs the scale off (``* backoff_factor``) after a non-finite step, or
    counts a clean step and grows the scale (``* growth_factor``) after ``growth_interval``
    clean steps in a row; the count restarts after either event. The scale is kept in float32,
    as torch keeps it. One optimizer per scaler. Taught in ``notebooks/07_low_precision``.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000):
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"growth_factor must be larger than 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"backoff_factor must be between 0 and 1, got {backoff_factor}")
        if int(growth_interval) != growth_interval or growth_interval < 1:
            raise ValueError(f"growth_interval must be a positive integer, got {growth_interval}")
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self._scale = _as_float32(init_scale)
        self._growth_tracker = 0
        self._found_inf: bool | None = None  # None: not unscaled since the last update()

    def get_scale(self) -> float:
        return self._scale

    def scale(self, loss):
        return loss * self._scale

    def unscale_(self, optimizer) -> bool:
        if self._found_inf is not None:
            raise RuntimeError("unscale_() was already called since the last update(); call it "
                               "once per step, before step()")
        inv_scale = _as_float32(1.0 / self._scale)
        found = False
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if not bool(torch.isfinite(p.grad).all()):
                        found = True
                    p.grad.mul_(inv_scale)
        self._found_inf = found
        return found

    def step(self, optimizer):
        if self._found_inf is None:
            self.unscale_(optimizer)
        if self._found_inf:
            return None
        return optimizer.step()

    def update(self) -> None:
        if self._found_inf is None:
            raise RuntimeError("update() needs a step first: call unscale_() or step() before "
                               "update()")
        if self._found_inf:
            self._scale = _as_float32(self._scale * self.backoff_factor)
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                grown = _as_float32(self._scale * self.growth_factor)
                if math.isfinite(grown):
                    self._scale = grown
                self._growth_tracker = 0
        self._found_inf = None


def _as_float32(x: float) -> float:
    with np.errstate(over="ignore"):  # a scale grown past float32's range becomes inf
        return float(np.float32(x))


def lost_update_fraction(weights, updates, dtype) -> float:
    """Fraction of elements whose weight, stored in ``dtype``, does not change when the update
    is added in ``dtype`` (``"float16"``, ``"bfloat16"`` or ``"float32"``).

    ``weights`` and ``updates`` (arrays or tensors of the same shape, or an update that
    broadcasts) are first rounded to ``dtype``; an update of exactly 0 counts as lost.
    Taught in ``notebooks/07_low_precision``.
    """
    dt = torch_dtype(dtype)
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64)).to(dt)
    u = torch.as_tensor(np.asarray(updates, dtype=np.float64)).to(dt)
    unchanged = (w + u) == w
    return float(unchanged.double().mean())


def mixed_precision_step(model, master_params, optimizer, scaler, loss_fn, x, y,
                         max_norm=None) -> float:
    """One training step with a low-precision working copy and float32 master weights.

    ``model`` holds the float16/bfloat16 working copy; ``master_params`` are the float32
    parameters (same order as ``model.parameters()``) that ``optimizer`` updates. The step:
    copy the master weights into the model; forward in low precision; the loss in float32,
    ``loss_fn(model(x).float(), y)``; backward of ``scaler.scale(loss)`` (of ``loss`` when
    ``scaler`` is None); each gradient copied to its master parameter as float32;
    ``scaler.unscale_``; clipping of the master gradients to ``max_norm`` (if given), which must
    come after unscaling; ``scaler.step`` and ``scaler.update`` (``optimizer.step`` without a
    scaler). Returns the loss as a float. Works with :class:`DynamicLossScaler` and
    ``torch.amp.GradScaler``. Taught in ``notebooks/07_low_precision``.
    """
    work = list(model.parameters())
    master_params = list(master_params)
    if len(work) != len(master_params):
        raise ValueError(f"the model has {len(work)} parameter tensors but master_params has "
                         f"{len(master_params)}")
    with torch.no_grad():
        for p, q in zip(work, master_params, strict=True):
            p.copy_(q)
            p.grad = None
    loss = loss_fn(model(x).float(), y)
    (loss if scaler is None else scaler.scale(loss)).backward()
    for p, q in zip(work, master_params, strict=True):
        q.grad = None if p.grad is None else p.grad.float()
    if scaler is None:
        if max_norm is not None:
            nn.utils.clip_grad_norm_(master_params, max_norm)
        optimizer.step()
    else:
        scaler.unscale_(optimizer)
        if max_norm is not None:
            nn.utils.clip_grad_norm_(master_params, max_norm)
        scaler.step(optimizer)
        scaler.update()
    return float(loss.item())


def first_nonfinite(named_tensors) -> tuple[str, tuple[int, ...], float] | None:
    """The first ``(name, index, value)`` whose value is inf or NaN, scanning ``(name, tensor)``
    pairs in order and each tensor in row-major order; None when all are finite.

    Taught in ``notebooks/07_low_precision``.
    """
    for name, t in named_tensors:
        bad = ~torch.isfinite(t.detach())
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            return name, idx, float(t.detach()[idx])
    return None


# --------------------------------------------------------------------------- experiment
def decoder_data(n: int = 512, n_in: int = 8, n_out: int = 128, seed: int = 0):
    """``(x, y)``: ``n`` codes of size ``n_in`` and the ``n_out`` outputs a random teacher
    decoder (a tanh MLP) makes from them, scaled to unit standard deviation.

    A stand-in for a model with many outputs per example (pixels, tokens): the loss averaged
    over ``n * n_out`` values gives each output a gradient of ``2 * error / (n * n_out)``.
    Taught in ``notebooks/07_low_precision``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=gen)
    teacher = decoder_net(n_in, n_out, seed=seed + 1000)
    with torch.no_grad():
        y = teacher(x)
    return x, y / y.std()


def decoder_net(n_in: int = 8, n_out: int = 128, width: int = 16, dtype=torch.float32,
                seed: int = 0) -> nn.Module:
    """The small decoder the experiment trains: ``n_in -> width -> n_out``, tanh, PyTorch's
    default init. Taught in ``notebooks/07_low_precision``."""
    return mlp(n_in, n_out, depth=1, width=width, activation="tanh", init=None, seed=seed,
               dtype=torch_dtype(dtype))


def train_mixed_precision(dtype="float16", scaler=None, *, steps: int = 300, lr: float = 1e-2,
                          loss_weight: float = 2.0**-8, step_fn=None, data=None,
                          seed: int = 0) -> dict:
    """Train :func:`decoder_net` on :func:`decoder_data` with a ``dtype`` working copy and
    float32 master weights (Adam), one :func:`mixed_precision_step` (or ``step_fn`` with the
    same signature) per step, on the full batch.

    The loss is ``loss_weight * mse``. Returns a dict of NumPy arrays, one entry per step:
    ``loss`` (the mean squared error of the master weights in float32, after the step, divided
    by the variance of y), ``scale`` (the scaler's scale before the step, 1 without scaler),
    ``skipped`` (master weights unchanged) and ``zero_grads`` (fraction of the working copy's
    gradient entries that are exactly 0). Taught in ``notebooks/07_low_precision``.
    """
    step_fn = step_fn or mixed_precision_step
    dt = torch_dtype(dtype)
    x, y = data if data is not None else decoder_data()
    master = decoder_net(x.shape[1], y.shape[1], seed=seed)
    work = decoder_net(x.shape[1], y.shape[1], dtype=dt, seed=seed)
    params = list(master.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    x_low = x.to(dt)
    var = float(y.var())

    def loss_fn(out, target):
        return loss_weight * nn.functional.mse_loss(out, target)

    log = {"loss": [], "scale": [], "skipped": [], "zero_grads": []}
    for _ in range(steps):
        log["scale"].append(1.0 if scaler is None else float(scaler.get_scale()))
        before = [p.detach().clone() for p in params]
        step_fn(work, params, opt, scaler, loss_fn, x_low, y)
        grads = [p.grad for p in work.parameters() if p.grad is not None]
        zeros = sum(int((g == 0).sum()) for g in grads)
        log["zero_grads"].append(zeros / max(1, sum(g.numel() for g in grads)))
        log["skipped"].append(all(bool(torch.equal(b, p)) for b, p in zip(before, params,
                                                                           strict=True)))
        with torch.no_grad():
            log["loss"].append(float(nn.functional.mse_loss(master(x), y)) / var)
    return {k: np.asarray(v) for k, v in log.items()}


# --------------------------------------------------------------------------- plots
def plot_format_ranges(dtypes=("float16", "bfloat16", "float32")):
    """Each format's range on a log2 axis: underflow to 0, subnormal, normal, overflow.

    Taught in ``notebooks/07_low_precision``.
    """
    fig, axes = subplots(1, 1, figsize=(9.0, 2.6))
    ax = axes[0, 0]
    for row, name in enumerate(dtypes):
        f = format_facts(name)
        lo, sub, top = (math.log2(f["smallest_subnormal"]), math.log2(f["smallest_normal"]),
                        math.log2(f["max"]))
        ax.barh(row, sub - lo, left=lo, color=PALETTE[1], height=0.5,
                label="subnormal" if row == 0 else None)
        ax.barh(row, top - sub, left=sub, color=PALETTE[0], height=0.5,
                label="normal" if row == 0 else None)
        ax.text(top + 2, row, f"max {f['max']:.3g}", va="center", fontsize=8)
        ax.text(lo - 2, row, f"{f['smallest_subnormal']:.2g}", va="center", ha="right",
                fontsize=8)
    ax.set_yticks(range(len(dtypes)), list(dtypes))
    ax.set_xlim(-175, 175)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    style_axes(ax, xlabel="log2 of the magnitude (0 is 1.0); left of a bar: rounds to 0, "
               "right: rounds to inf", ylabel="", title="Where each format has numbers")
    return fig


def plot_gradient_histogram(grads, dtype="float16", loss_scale=1.0, title=None):
    """Histogram of log2 |g| for the non-zero float32 gradient values ``grads``, with the
    format's subnormal and normal range shaded and the values shifted by ``loss_scale``.

    Taught in ``notebooks/07_low_precision``.
    """
    g = np.abs(np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in grads]))
    g = g[g > 0] * loss_scale
    f = format_facts(dtype)
    fig, axes = subplots(1, 1, figsize=(8.0, 3.2))
    ax = axes[0, 0]
    ax.axvspan(math.log2(f["underflow_threshold"]), math.log2(f["smallest_normal"]),
               color=PALETTE[1], alpha=0.25, label=f"{dtype} subnormal")
    ax.axvspan(math.log2(f["smallest_normal"]), math.log2(f["max"]), color=PALETTE[0],
               alpha=0.12, label=f"{dtype} normal")
    ax.hist(np.log2(g), bins=80, color=PALETTE[6], alpha=0.8,
            label=f"|gradient| x {loss_scale:g}")
    ax.axvline(math.log2(f["underflow_threshold"]), color=PALETTE[3], ls="--", lw=1.2,
               label="below this: 0")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    style_axes(ax, xlabel="log2 |value|", ylabel="count",
               title=title or f"Gradient values against the {dtype} range")
    return fig


def plot_mixed_precision_runs(runs: dict, title: str | None = None):
    """Left: relative loss per step (log scale) of each run in ``runs`` (label -> log of
    :func:`train_mixed_precision`). Right: the loss scale of the runs that used one, with
    skipped steps marked. Taught in ``notebooks/07_low_precision``."""
    fig, axes = subplots(1, 2, figsize=(11.0, 3.8))
    ax_l, ax_s = axes[0]
    for i, (label, log) in enumerate(runs.items()):
        steps = np.arange(1, len(log["loss"]) + 1)
        ax_l.plot(steps, log["loss"], color=PALETTE[i % 7], ls=LINESTYLES[i % 8], lw=1.6,
                  label=label)
        if np.any(log["scale"] != 1.0):
            ax_s.plot(steps, log["scale"], color=PALETTE[i % 7], ls=LINESTYLES[i % 8],
                      label=label)
            skipped = log["skipped"].astype(bool)
            ax_s.plot(steps[skipped], log["scale"][skipped], ls="none", marker="v",
                      color=PALETTE[3], ms=5)
    set_log_axis(ax_l)
    ax_l.legend(fontsize=8, frameon=False)
    style_axes(ax_l, xlabel="step", ylabel="loss / var(y) (log)", title=title or "Training loss")
    ax_s.set_yscale("log", base=2)
    ax_s.plot([], [], ls="none", marker="v", color=PALETTE[3], label="skipped step")
    ax_s.legend(fontsize=8, frameon=False)
    style_axes(ax_s, xlabel="step", ylabel="loss scale (log2)", title="Loss scale")
    return fig
