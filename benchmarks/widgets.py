"""Kernel-side latency of the visualisers: control change -> new figure (PNG) ready.

For each visualiser, build its widget (no front end needed: ipywidgets works without a kernel),
then change one control back and forth ``repeats`` times and time each change, from the
assignment to ``control.value`` until the new PNG has been pushed to the image widget. For the
training doctor a change starts a new run in a background thread: the time is until its first
live frame. Matplotlib runs on Agg (no pyplot involved). Targets: 100 ms for the analytic
visualisers, 250 ms for those that run a network.

    python -m benchmarks.widgets            # prints the JSON
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

# name -> (class name, control to move, two values to alternate, target ms)
CASES = {
    "activation_explorer": ("ActivationExplorer", "mu", (0.5, -0.5), 100),
    "batch_norm_explorer": ("BatchNormExplorer", "momentum", (0.2, 0.05), 100),
    "clipping_geometry": ("ClippingGeometry", "gx", (5.0, 0.9), 100),
    "gradient_flow": ("GradientFlowExplorer", "depth", (25, 20), 250),
    "initialization_lab": ("InitializationLab", "gain_mult", (1.5, 1.0), 250),
    "training_doctor": ("TrainingDoctor", "lr", (0.3, 0.1), 250),
    "rnn_gradient_explorer": ("RNNGradientExplorer", "radius", (1.2, 0.9), 250),
    "float_format_explorer": ("FloatFormatExplorer", "scale_exp", (4, 0), 250),
}
TARGET_MS = {name: case[3] for name, case in CASES.items()}


def _time_change(vis, control, value) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) for one change."""
    start, cpu = time.perf_counter(), time.process_time()
    control.value = value
    if hasattr(vis, "first_frame"):  # training doctor: wait for the run's first frame
        if not vis.first_frame.wait(30):
            raise RuntimeError("training doctor produced no frame within 30 s")
    return (time.perf_counter() - start) * 1000.0, (time.process_time() - cpu) * 1000.0


def measure(name: str, repeats: int = 7) -> list[tuple[float, float]]:
    from course_utils import visualisers

    cls_name, key, values, _target = CASES[name]
    vis = getattr(visualisers, cls_name)()
    control = vis.controls[key]  # builds the widget and draws once (warm-up)
    _time_change(vis, control, values[0])  # warm caches (fonts, recorded traces)
    times = []
    try:
        for i in range(repeats):
            times.append(_time_change(vis, control, values[(i + 1) % 2]))
    finally:
        if hasattr(vis, "stop"):
            vis.stop()
            vis.wait(30)
    return times


def run(verbose: bool = False, repeats: int = 7) -> dict:
    """Median kernel-side update time per visualiser, in milliseconds.

    Returns ``{"widget_update_ms": {name: median wall ms}, "widget_update_detail": {name:
    {min_ms, max_ms, cpu_median_ms, target_ms, repeats, meets_target}},
    "widget_bench_load_avg": [before, after]}``; ``verbose`` prints one line per visualiser.
    """
    medians, details = {}, {}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for name in CASES:
        pairs = measure(name, repeats)
        wall = [w for w, _ in pairs]
        cpu = [c for _, c in pairs]
        medians[name] = round(statistics.median(wall), 1)
        details[name] = {"min_ms": round(min(wall), 1), "max_ms": round(max(wall), 1),
                         "cpu_median_ms": round(statistics.median(cpu), 1),
                         "target_ms": TARGET_MS[name], "repeats": repeats,
                         "meets_target": medians[name] <= TARGET_MS[name]}
        if verbose:
            d = details[name]
            print(f"  {name:<22} median {medians[name]:7.1f} ms (CPU {d['cpu_median_ms']:.1f} ms, "
                  f"target {d['target_ms']} ms{'' if d['meets_target'] else ', MISSED'})",
                  flush=True)
    # Wall times on a shared machine grow with its load: the 1-minute load average (before
    # and after) says how busy the cores were; CPU time is less sensitive to it.
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"widget_update_ms": medians, "widget_update_detail": details,
            "widget_bench_load_avg": [load_before, load_after]}


if __name__ == "__main__":
    print(json.dumps(run(verbose="--verbose" in sys.argv[1:]), indent=2))
