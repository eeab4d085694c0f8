"""The training doctor of ``notebooks/05_in_practice``: the mystery runs, the causes to choose
from, the numbers a doctor reads (:func:`doctor_summary`) and the alarms it raises
(:func:`diagnose`), which the :class:`course_utils.visualisers.TrainingDoctor` widget shows
for its live runs too.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from course_utils.diagnostics import UPDATE_RATIO_REFERENCE
from course_utils.in_practice.health import (
    EXPLODE_RATIO,
    SATURATION_MAX,
    VANISH_RATIO,
    depth_ratio,
    flow_verdict,
)
from course_utils.in_practice.runs import RunConfig, RunResult

__all__ = ["DOCTOR_CAUSES", "doctor_cases", "doctor_summary", "diagnose"]

#: The causes students choose from in the notebook's "training doctor" finale. A run may have
#: two causes, and a cause may appear in several runs (or in none).
DOCTOR_CAUSES = {
    "A": "all weights initialized to zero",
    "B": "weights initialized far too large (N(0, 1))",
    "C": "a deep stack of sigmoid layers",
    "D": "dying ReLUs (hidden biases started very negative)",
    "E": "a learning rate far too high",
    "F": "model.train() forgotten after an evaluation: batch norm keeps normalizing with "
         "the running statistics it had then",
    "G": "nothing is wrong: a healthy run",
    "H": "initial weights too small for a deep ReLU stack (PyTorch's default init, "
         "variance 1/(3 fan_in))",
}

def doctor_cases(steps: int = 100) -> dict[str, tuple[str, RunConfig]]:
    """The mystery runs of the "training doctor": ``{"run 1": (card, config), ...}``.

    Each card says only what a student could read in their own model code (activation, batch
    norm, optimizer, how often the model is evaluated); the configuration holds the hidden
    causes. Do not print the configurations before you have made
    your diagnosis. Taught in ``notebooks/05_in_practice``.
    """
    base = RunConfig(name="mystery", steps=steps)
    relu = "12 hidden layers of 48 ReLU units, SGD + momentum"
    relu_bn = ("12 hidden layers of 48 ReLU units, batch norm after every Linear, "
               "SGD + momentum, evaluated on the test set during training")
    cases = [
        (relu_bn, replace(base, batch_norm=True, init="pytorch_default", eval_from=5)),
        (relu, replace(base, init="zeros")),
        (relu, replace(base, lr=2.0)),
        (relu_bn, replace(base, batch_norm=True)),
        ("12 hidden layers of 48 sigmoid units, SGD + momentum",
         replace(base, activation="sigmoid", init="xavier")),
        (relu, replace(base, init="pytorch_default")),
        (relu_bn, replace(base, batch_norm=True, lr=0.1, eval_from=20)),
        (relu, replace(base, bias_init=-1.0)),
    ]
    return {f"run {i + 1}": (card, replace(cfg, name=f"run {i + 1}"))
            for i, (card, cfg) in enumerate(cases)}


def doctor_summary(run: RunResult) -> str:
    """One paragraph of numbers about a mystery run (what the doctor reads besides the chart).

    Taught in ``notebooks/05_in_practice``.
    """
    g0 = run.grad_norms[0]
    finite = np.isfinite(run.losses)
    n_ok = int(finite.sum())
    ur = run.update_ratios[np.isfinite(run.update_ratios)]
    med_ratio = float(np.median(ur)) if ur.size else float("nan")
    frac_start = run.act_fraction[0] if run.act_fraction.size else np.zeros(1)
    frac_end = run.act_fraction[-1] if run.act_fraction.size else np.zeros(1)
    lines = [
        f"loss: first step {run.losses[0]:.4g}, "
        + (f"last step {run.losses[n_ok - 1]:.4g}" if n_ok else "no finite loss")
        + (f"; became inf/NaN at step {n_ok}" if run.diverged else "")
        + f"; test accuracy {100 * run.test_accuracy:.1f}%"
        if math.isfinite(run.test_accuracy) else
        f"loss: first step {run.losses[0]:.4g}; became inf/NaN at step {n_ok}",
        f"step 0 gradient norms: first layer {g0[0]:.3g}, output layer {g0[-1]:.3g}, "
        f"largest {np.nanmax(g0):.3g}",
        f"saturated/dead fraction per hidden layer: start max {np.max(frac_start):.2f}, "
        f"end max {np.max(frac_end):.2f}",
        f"weight std of the first layer: start {run.weight_std[0][0]:.3g}, "
        f"end {run.weight_std[-1][0]:.3g}",
        "activation std of hidden layers 1, 4, 8, 12 at the last checkpoint: "
        + " ".join(f"{run.act_std[-1][k]:.2g}" for k in (0, 3, 7, 11)
                   if k < len(run.act_std[-1])),
        "median log10 update-to-weight ratio: "
        + (f"{med_ratio:.2f}" if math.isfinite(med_ratio)
           else "undefined (every gradient or every weight is exactly 0)"),
    ]
    if run.bn_var_history is not None:
        steps = ", ".join(str(int(c)) for c in run.checkpoints)
        values = " ".join(f"{v:.3g}" for v in run.bn_var_history.mean(axis=1))
        lines.append(f"batch-norm running variance (mean over layers) at steps {steps}: "
                     f"{values}")
    return "\n".join(lines)


def diagnose(losses, grad_norms, out_grad_rms, update_ratios, fractions,
             kind: str = "dead") -> str:
    """The doctor's first alarm for a run so far, in one line.

    Arguments are arrays over the steps run (as :class:`RunResult` and the training doctor
    widget hold them): ``losses`` (T,), ``grad_norms`` (T, L) per Linear layer, input side
    first, ``out_grad_rms`` (rows, L): the RMS of ``dL/dz`` at each Linear's output on the
    steps where it was recorded (the last row is read), ``update_ratios`` (T, L) as log10
    update/weight, ``fractions`` (T, L-1) saturated or dead fraction per hidden layer
    (``kind`` says which). The checks, in order: a loss or gradient that became inf/NaN;
    vanishing or exploding by the rule of ``gradient_health``
    (:func:`course_utils.in_practice.health.flow_verdict` on the last recorded row: every
    weight gradient exactly 0, or ``r`` = first over last hidden layer's ``dL/dz`` RMS below
    ``VANISH_RATIO`` or above ``EXPLODE_RATIO``); a hidden layer more than
    ``SATURATION_MAX`` saturated or dead; a median update ratio over the last 20 steps more
    than 1.5 decades above ``UPDATE_RATIO_REFERENCE`` (1e-3), or 2 decades below it. Without
    an alarm, the line gives the measured size of the updates: the median over the layers of
    each layer's median log10 update ratio over the last 20 steps.
    """
    losses = np.asarray(losses, dtype=float)
    grad_norms = np.asarray(grad_norms, dtype=float)
    if losses.size == 0:
        return "no steps yet"
    if not np.isfinite(losses).all() or not np.isfinite(grad_norms[-1]).all():
        return "DIVERGED (loss or gradients became inf/NaN): lower the learning rate or clip"
    d = np.asarray(out_grad_rms, dtype=float)
    d = d[-1] if d.ndim == 2 and len(d) else np.full(grad_norms.shape[-1], np.nan)
    flow = flow_verdict(grad_norms[-1], d) if np.isfinite(d).all() else None
    if flow is None and (grad_norms[-1] == 0).all():
        flow = "vanishing"
    r = depth_ratio(d)
    if flow == "exploding":
        return (f"the first hidden layer gets {r:.0e}× the last hidden layer's dL/dz "
                f"(> {EXPLODE_RATIO:.0e}): exploding")
    if flow == "vanishing":
        if (grad_norms[-1] == 0).all():
            return "every weight gradient is exactly 0: nothing flows (vanishing)"
        return (f"the first hidden layer gets {r:.0e}× the last hidden layer's dL/dz "
                f"(< {VANISH_RATIO:.0e}): vanishing")
    fractions = np.asarray(fractions, dtype=float)
    if fractions.size and np.nanmax(fractions[-1], initial=0.0) > SATURATION_MAX:
        return f"many {kind} units: try ReLU-family + He init, or batch norm"
    recent = np.asarray(update_ratios, dtype=float)[-20:]
    recent = recent[np.isfinite(recent).any(axis=1)]
    if not recent.size:
        return "no alarm: gradients flow (no update ratio measured yet)"
    with np.errstate(all="ignore"):
        per_layer = np.nanmedian(recent, axis=0)
    top = float(np.nanmax(per_layer))
    if top > UPDATE_RATIO_REFERENCE + 1.5:
        return "updates are > 3% of the weights per step: learning rate too high"
    if top < UPDATE_RATIO_REFERENCE - 2.0:
        return ("updates are < 1e-5 of the weights: learning rate too low or gradients "
                "vanish")
    mid = float(np.nanmedian(per_layer))
    return (f"no alarm: gradients flow; the median layer's updates are about {10 ** mid:.0e} "
            f"of its weights per step (log10 {mid:.1f}; reference {UPDATE_RATIO_REFERENCE:g})")
