"""Reference implementations of notebooks/07_low_precision against torch: casting, torch.finfo,
torch.amp.GradScaler("cpu") step by step; the experiment; the visualiser (headless); and the
grader on the notebook (solution full marks, stub zero, each plausible wrong answer losing
points on its own exercise only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils import low_precision as lp

FORMATS = ["float16", "bfloat16"]


def torch_outcome(x: np.ndarray, name: str) -> np.ndarray:
    """The oracle: cast with torch and classify the result."""
    y = torch.tensor(x, dtype=torch.float64).to(lp.DTYPES[name]).double().numpy()
    tiny = torch.finfo(lp.DTYPES[name]).smallest_normal
    out = np.full(x.shape, "ok", dtype="<U9")
    out[(y != 0) & (np.abs(y) < tiny)] = "subnormal"
    out[(y == 0) & (x != 0)] = "underflow"
    out[np.isinf(y)] = "overflow"
    out[~np.isfinite(x)] = "nonfinite"
    return out


# --------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name", [*FORMATS, "float32"])
def test_format_facts_match_finfo_and_casting(name):
    dt = lp.DTYPES[name]
    f = lp.format_facts(name)
    info = torch.finfo(dt)
    assert f["max"] == info.max and f["eps"] == info.eps
    assert f["smallest_normal"] == info.smallest_normal
    assert f["mantissa_bits"] == {"float16": 10, "bfloat16": 7, "float32": 23}[name]

    def cast(v):
        return torch.tensor([v], dtype=torch.float64).to(dt).item()
    # the smallest subnormal exists, half of it rounds to 0 (tie to even), a bit more does not
    s = f["smallest_subnormal"]
    assert cast(s) == s and cast(s / 2) == 0.0 and cast(s * 0.75) == s
    assert cast(f["underflow_threshold"]) == 0.0
    # one spacing: 1 + eps is the next number after 1; 1 + eps/2 rounds back to 1
    assert cast(1 + f["eps"]) == 1 + f["eps"] and cast(1 + f["eps"] / 2) == 1.0
    if name != "float32":  # (float32's threshold is not a float32 number itself)
        assert cast(f["max"]) == f["max"]
        assert math.isinf(cast(f["overflow_threshold"]))
        below = float(np.nextafter(np.float32(f["overflow_threshold"]), np.float32(0)))
        assert cast(below) == f["max"]


def test_torch_dtype_names_and_errors():
    assert lp.torch_dtype("bfloat16") is torch.bfloat16
    assert lp.torch_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown format"):
        lp.torch_dtype("float8")


# --------------------------------------------------------------------------- cast_outcome
def boundary_values(name):
    f = lp.format_facts(name)
    t, u = f["overflow_threshold"], f["underflow_threshold"]
    n, s = f["smallest_normal"], f["smallest_subnormal"]
    f32 = np.float32

    def around(v):
        v = f32(v)
        return [float(np.nextafter(v, f32(0))), float(v), float(np.nextafter(v, f32(np.inf)))]
    vals = [0.0, -0.0, 1.0, f["max"], -f["max"], *around(t), *around(u), *around(n - s / 2),
            *around(n), s, -s, s / 4, np.inf, -np.inf, np.nan, 1e300, -1e-300]
    return np.array(vals + [-v for v in around(t)] + [-v for v in around(u)])


@pytest.mark.parametrize("name", FORMATS)
def test_cast_outcome_matches_torch_casting(name):
    rng = np.random.default_rng(1)
    x = boundary_values(name)
    np.testing.assert_array_equal(lp.cast_outcome(x, name), torch_outcome(x, name))
    # float64 values that are not float32 numbers: torch rounds twice, and so does the reference
    wild = rng.normal(size=4000) * 10.0 ** rng.uniform(-50, 45, 4000)
    np.testing.assert_array_equal(lp.cast_outcome(wild, name), torch_outcome(wild, name))
    counts = {k: int((torch_outcome(wild, name) == k).sum()) for k in lp.OUTCOMES}
    assert all(counts[k] > 0 for k in ("ok", "overflow", "underflow", "subnormal"))


def test_cast_outcome_shapes_and_labels():
    x = np.array([[1e5, 1e-9], [3e-6, np.nan]])
    out = lp.cast_outcome(x, "float16")
    assert out.shape == (2, 2)
    assert out.tolist() == [["overflow", "underflow"], ["subnormal", "nonfinite"]]
    assert lp.cast_outcome(np.array(1e5), "bfloat16").shape == ()
    assert lp.cast_outcome(np.array(1e5), "bfloat16").item() == "ok"
    with pytest.raises(ValueError, match="float16"):
        lp.cast_outcome(x, "float32")


# --------------------------------------------------------------------------- loss scaler
def scripted_run(scaler, inject, steps=14, unscale_first=False, max_norm=None):
    """A float32 model trained with SGD; at the steps in ``inject`` one gradient entry is
    overwritten (inf, NaN) after backward. Returns scales, weights and unscale_ results."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=gen))
        model.bias.copy_(torch.randn(2, generator=gen))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, generator=gen)
    scales, weights, found = [], [], []
    for t in range(steps):
        opt.zero_grad()
        scaler.scale(model(x).pow(2).mean()).backward()
        if t in inject:
            model.weight.grad[0, 1] = inject[t]
        if unscale_first:
            found.append(scaler.unscale_(opt))
            if max_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        weights.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
    return scales, torch.stack(weights), found


INJECT = {2: float("inf"), 3: float("nan"), 5: float("-inf"), 9: float("inf")}
SCALER_PARAMS = [
    {},
    {"growth_interval": 2},
    {"growth_interval": 3},
    {"init_scale": 3.0, "growth_factor": 3.0, "backoff_factor": 0.3, "growth_interval": 1},
    {"init_scale": 2.0**120, "growth_factor": 256.0, "growth_interval": 1},  # growth to inf
    {"init_scale": 1024.0, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 2},
]


@pytest.mark.parametrize("params", SCALER_PARAMS)
@pytest.mark.parametrize("unscale_first", [False, True])
def test_loss_scaler_matches_gradscaler_step_by_step(params, unscale_first):
    ours = scripted_run(lp.DynamicLossScaler(**params), INJECT, unscale_first=unscale_first,
                        max_norm=0.5 if unscale_first else None)
    ref = scripted_run(torch.amp.GradScaler("cpu", **params), INJECT,
                       unscale_first=unscale_first, max_norm=0.5 if unscale_first else None)
    assert ours[0] == ref[0]  # the same scale sequence, exactly
    assert torch.equal(ours[1], ref[1])  # the same parameters (skipped steps included)
    if unscale_first:
        assert ours[2] == [t in INJECT for t in range(14)]


def test_loss_scaler_scale_sequence_by_hand():
    """The rules written out: growth after 2 clean steps, backoff and a fresh count after an
    overflow, no growth on a skipped step."""
    scales, weights, _ = scripted_run(lp.DynamicLossScaler(init_scale=8.0, growth_interval=2),
                                      {1: float("inf"), 4: float("nan")}, steps=8)
    assert scales == [8.0, 4.0, 4.0, 8.0, 4.0, 4.0, 8.0, 8.0]
    assert torch.equal(weights[1], weights[0]) and torch.equal(weights[4], weights[3])
    assert not torch.equal(weights[2], weights[1])


def test_loss_scaler_unscale_divides_in_place_and_reports():
    p = nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p, nn.Parameter(torch.zeros(1))], lr=1.0)
    scaler, ref = lp.DynamicLossScaler(init_scale=4.0), torch.amp.GradScaler("cpu", init_scale=4.0)
    p.grad = torch.tensor([4.0, -8.0, 1.0])
    held = p.grad
    assert scaler.unscale_(opt) is False
    assert held is p.grad and p.grad.tolist() == [1.0, -2.0, 0.25]
    p.grad = torch.tensor([4.0, -8.0, 1.0])
    ref.scale(torch.tensor(1.0))  # GradScaler makes its scale tensor on the first scale()
    ref.unscale_(opt)
    assert p.grad.tolist() == [1.0, -2.0, 0.25]
    with pytest.raises(RuntimeError, match="already"):
        scaler.unscale_(opt)
    assert lp.DynamicLossScaler(init_scale=4.0).scale(torch.tensor(2.5)).item() == 10.0
    with pytest.raises(RuntimeError, match="update"):
        lp.DynamicLossScaler().update()


@pytest.mark.parametrize("bad", [{"init_scale": 0.0}, {"growth_factor": 1.0},
                                 {"backoff_factor": 1.0}, {"growth_interval": 0}])
def test_loss_scaler_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        lp.DynamicLossScaler(**bad)


# --------------------------------------------------------------------------- lost updates
def half_ulp_rule(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Independent float16 oracle: NumPy's own float16 arithmetic."""
    w16, u16 = w.astype(np.float16), u.astype(np.float16)
    return (w16 + u16) == w16


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_lost_update_fraction_matches_torch(name):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(50, 40)).astype(np.float32)
    u = (rng.normal(size=(50, 40)) * 10.0 ** rng.uniform(-9, -1, (50, 40))).astype(np.float32)
    dt = lp.DTYPES[name]
    wt, ut = torch.from_numpy(w).to(dt), torch.from_numpy(u).to(dt)
    expected = ((wt + ut) == wt).double().mean().item()
    assert lp.lost_update_fraction(w, u, name) == expected
    assert lp.lost_update_fraction(torch.from_numpy(w), torch.from_numpy(u), name) == expected
    if name == "float16":
        assert expected == half_ulp_rule(w, u).mean()
    if name == "float32":
        assert expected == ((w + u) == w).mean()


def test_lost_update_fraction_half_ulp_edges():
    # spacing of float16 at 1.0 is 2**-10; adding exactly half of it is a tie: round to even
    # (1.0 stays), a little more than half moves to the next number
    half = 2.0**-11
    assert lp.lost_update_fraction([1.0], [half], "float16") == 1.0
    assert lp.lost_update_fraction([1.0], [half * 1.01], "float16") == 0.0
    assert lp.lost_update_fraction([1.0, 1.0 + 2**-10], [half, half], "float16") == 0.5
    assert lp.lost_update_fraction([1.0, 2.0, 3.0], 0.0, "bfloat16") == 1.0  # broadcast, zero
    assert lp.lost_update_fraction([1.0], [1e-4], "float32") == 0.0
    assert lp.lost_update_fraction([1.0], [1e-4], "bfloat16") == 1.0


# --------------------------------------------------------------------------- one step
def twin(dtype, seed=0):
    data = lp.decoder_data(n=64, n_out=16, seed=seed)
    master = lp.decoder_net(8, 16, seed=seed)
    work = lp.decoder_net(8, 16, dtype=dtype, seed=seed)
    opt = torch.optim.SGD(master.parameters(), lr=0.5)
    return data, master, work, opt


def mse(out, y):
    return 2.0**-12 * nn.functional.mse_loss(out, y)


@pytest.mark.parametrize("max_norm", [None, 1e-3])
def test_mixed_precision_step_same_with_our_scaler_and_gradscaler(max_norm):
    (x, y), m1, w1, o1 = twin(torch.float16)
    _, m2, w2, o2 = twin(torch.float16)
    s1 = lp.DynamicLossScaler(init_scale=2.0**10, growth_interval=2)
    s2 = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    scales = []
    for step in range(5):
        xs = x.half()
        if step == 2:
            xs[0, 0] = float("inf")  # step 2: the forward pass meets an inf
        l1 = lp.mixed_precision_step(w1, list(m1.parameters()), o1, s1, mse, xs, y, max_norm)
        l2 = lp.mixed_precision_step(w2, list(m2.parameters()), o2, s2, mse, xs, y, max_norm)
        assert l1 == l2 or (math.isnan(l1) and math.isnan(l2))
        assert s1.get_scale() == s2.get_scale()
        scales.append(s1.get_scale())
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    assert scales == [2.0**10, 2.0**11, 2.0**10, 2.0**10, 2.0**11]


def test_mixed_precision_step_clips_after_unscaling():
    (x, y), master, work, opt = twin(torch.float16)
    _, master_ref, _, _ = twin(torch.float16)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    lp.mixed_precision_step(work, list(master.parameters()), opt, scaler, mse, x.half(), y,
                            max_norm=1e-4)
    step = torch.cat([(p - q).flatten() for p, q in zip(master.parameters(),
                                                         master_ref.parameters(), strict=True)])
    # SGD with lr 0.5 on a gradient clipped to norm 1e-4: the step has norm 0.5e-4 (a bit less:
    # clip_grad_norm_ divides by norm + 1e-6). Clipping the scaled gradient would give 2**-12 of it.
    assert step.norm().item() == pytest.approx(0.5e-4, rel=0.02)


def test_mixed_precision_step_without_scaler_and_errors():
    (x, y), master, work, opt = twin(torch.bfloat16)
    loss = lp.mixed_precision_step(work, list(master.parameters()), opt, None, mse, x.bfloat16(), y)
    assert isinstance(loss, float) and loss > 0
    with pytest.raises(ValueError, match="parameter tensors"):
        lp.mixed_precision_step(work, list(master.parameters())[:2], opt, None, mse, x, y)


def test_first_nonfinite():
    a, b = torch.ones(2, 3), torch.ones(4)
    assert lp.first_nonfinite([("a", a), ("b", b)]) is None
    b[2] = float("nan")
    a[1, 0] = float("inf")
    assert lp.first_nonfinite([("b", b), ("a", a)])[:2] == ("b", (2,))
    name, idx, value = lp.first_nonfinite([("a", a), ("b", b)])
    assert (name, idx, value) == ("a", (1, 0), float("inf"))


# --------------------------------------------------------------------------- experiment
def test_float16_run_stalls_without_loss_scaling_and_trains_with_it():
    data = lp.decoder_data()
    kw = {"steps": 240, "loss_weight": 2.0**-10, "data": data}
    fp32 = lp.train_mixed_precision("float32", **kw)
    fp16 = lp.train_mixed_precision("float16", **kw)
    scaled = lp.train_mixed_precision("float16", lp.DynamicLossScaler(growth_interval=50), **kw)
    bf16 = lp.train_mixed_precision("bfloat16", **kw)
    assert fp16["zero_grads"][-40:].min() > 0.98  # almost every gradient entry underflowed
    # and the loss stopped falling (under 2% in the last 100 steps; float32: over 20%)
    assert fp16["loss"][-1] > 0.98 * fp16["loss"][-100]
    assert fp32["loss"][-1] < 0.8 * fp32["loss"][-100]
    assert fp16["loss"][-1] > 3 * fp32["loss"][-1]
    assert scaled["loss"][-1] < 1.1 * fp32["loss"][-1]
    assert bf16["loss"][-1] < 1.1 * fp32["loss"][-1]
    assert scaled["zero_grads"][-1] < 0.01 and bf16["zero_grads"][-1] < 0.01
    assert list(scaled["scale"][[0, 49, 50, 100]]) == [2.0**16, 2.0**16, 2.0**17, 2.0**18]


def test_plots_return_figures():
    log = lp.train_mixed_precision("bfloat16", steps=3)
    assert isinstance(lp.plot_mixed_precision_runs({"a": log}), Figure)
    assert isinstance(lp.plot_format_ranges(), Figure)
    assert isinstance(lp.plot_gradient_histogram([np.array([1e-9, 1e-3])], "float16", 2**16),
                      Figure)


# --------------------------------------------------------------------------- visualiser
def test_float_format_data_lands_where_torch_casts():
    from course_utils.visualisers.float_formats import float_format_data

    rows = {r["name"]: r for r in float_format_data(1e-8)["formats"]}
    assert rows["float16"]["where"] == "underflow to 0" and rows["float16"]["cast"] == 0.0
    assert rows["bfloat16"]["where"] == "normal" and rows["float32"]["where"] == "normal"
    assert rows["float16"]["rel_error"] == 1.0
    # scaled by 2**16 the same gradient is a normal float16 number, recovered to 0.1%
    rows = {r["name"]: r for r in float_format_data(1e-8, 16)["formats"]}
    assert rows["float16"]["where"] == "normal" and rows["float16"]["rel_error"] < 1e-3
    assert rows["float16"]["cast"] == torch.tensor(1e-8 * 2**16).half().item()
    assert float_format_data(7e4)["formats"][0]["where"] == "overflow to inf"
    assert float_format_data(3e-6)["formats"][0]["where"] == "subnormal"
    assert float_format_data(0.0)["formats"][0]["where"] == "zero"
    neg = {r["name"]: r for r in float_format_data(-1.0 - 2**-9)["formats"]}
    assert neg["float16"]["cast"] == -1.0 - 2**-9 and neg["float16"]["spacing"] == 2**-10
    assert neg["bfloat16"]["cast"] == -1.0 and neg["bfloat16"]["spacing"] == 2**-7
    with pytest.raises(ValueError, match="scale_exp"):
        float_format_data(1.0, scale_exp=-1)
    with pytest.raises(ValueError, match="finite"):
        float_format_data(math.inf)


def test_plot_float_format_and_widget_wiring(monkeypatch):
    from course_utils.plotting import figure_to_png
    from course_utils.visualisers.base import STATIC_ENV
    from course_utils.visualisers.float_formats import (
        FloatFormatExplorer,
        float_format_data,
        float_format_explorer,
        plot_float_format,
    )

    fig = plot_float_format(float_format_data(1e-9, 20))
    assert isinstance(fig, Figure) and figure_to_png(fig).startswith(b"\x89PNG")
    again = plot_float_format(float_format_data(3e4), fig=fig)  # redraw into the same figure
    assert again is fig
    monkeypatch.setenv(STATIC_ENV, "0")
    vis = float_format_explorer(value=1e-7)
    assert isinstance(vis, FloatFormatExplorer)
    controls = vis.controls
    assert set(controls) == {"value", "scale_exp"}
    before = vis.n_draws
    controls["scale_exp"].value = 16
    assert vis.n_draws == before + 1
    assert vis.data["formats"][0]["where"] == "normal"
    controls["value"].value = 1e5
    assert vis.n_draws == before + 2 and vis.data["formats"][0]["where"] == "overflow to inf"
    monkeypatch.setenv(STATIC_ENV, "1")
    assert "image/png" in float_format_explorer().static_bundle()


# --------------------------------------------------------------------------- the grader
SOLUTION = Path(__file__).resolve().parent.parent / "solutions" / "07_low_precision" / \
    "07_low_precision.ipynb"

# (exercise, text in the solution, plausible wrong replacement)
WRONG_ANSWERS = {
    "overflow threshold at max": (
        "cast_outcome", 'out[a >= info.max + gap_at_max / 2] = "overflow"',
        'out[a > info.max] = "overflow"'),
    "overflow threshold one gap too far": (
        "cast_outcome", 'out[a >= info.max + gap_at_max / 2] = "overflow"',
        'out[a >= info.max + gap_at_max] = "overflow"'),
    "subnormals counted as underflow": (
        "cast_outcome", 'out[(a > 0) & (a <= smallest_subnormal / 2)] = "underflow"',
        'out[(a > 0) & (a < info.smallest_normal - smallest_subnormal / 2)] = "underflow"'),
    "scale grows on a skipped step": (
        "DynamicLossScaler", "            self.clean_steps = 0\n        else:\n",
        "            self.clean_steps = 0\n        if True:\n"),
    "growth counter not reset after an overflow": (
        "DynamicLossScaler", "            self.clean_steps = 0\n        else:\n",
        "        else:\n"),
    "unscaling after clipping": (
        "mixed_precision_step",
        "    if scaler is not None:\n        scaler.unscale_(optimizer)\n"
        "    if max_norm is not None:\n        nn.utils.clip_grad_norm_(master_params, max_norm)\n",
        "    if max_norm is not None:\n        nn.utils.clip_grad_norm_(master_params, max_norm)\n"
        "    if scaler is not None:\n        scaler.unscale_(optimizer)\n"),
    "lost-update test in float32": (
        "lost_update_fraction", "return ((w + u) == w).double().mean().item()",
        "return ((w.float() + u.float()) == w.float()).double().mean().item()"),
}


def solution_source(grade_id: str) -> str:
    nb = json.loads(SOLUTION.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise KeyError(grade_id)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(WRONG_ANSWERS))
def test_each_wrong_answer_loses_points_on_its_own_exercise_only(mistake, tmp_path):
    from conftest import check_json, copy_with

    exercise, right, wrong = WRONG_ANSWERS[mistake]
    source = solution_source(exercise)
    assert source.count(right) == 1, "the solution changed: update WRONG_ANSWERS"
    path = copy_with(SOLUTION, tmp_path / "07_low_precision.ipynb",
                     {exercise: source.replace(right, wrong)})
    rep = check_json(path)
    assert rep["status"] == "graded", rep
    got, full = {}, {}
    for t in rep["tests"]:
        key = t["exercise"] or t["grade_id"]
        got[key] = got.get(key, 0.0) + t["score"]
        full[key] = full.get(key, 0.0) + t["max_score"]
    assert got[exercise] < full[exercise], (mistake, rep["tests"])
    others = {k: (got[k], full[k]) for k in got if k != exercise and got[k] != full[k]}
    assert not others, (mistake, others)
    assert not any(f.startswith("delegation") for f in rep["flags"]), rep["flags"]


DELEGATED_CAST = '''def cast_outcome(x, dtype):
    x = np.asarray(x, dtype=np.float64)
    dt = torch.float16 if dtype == "float16" else torch.bfloat16
    y = torch.tensor(x).to(dt).double().numpy()
    out = np.full(x.shape, "ok", dtype="<U9")
    out[(y != 0) & (np.abs(y) < torch.finfo(dt).smallest_normal)] = "subnormal"
    out[(y == 0) & (x != 0)] = "underflow"
    out[np.isinf(y)] = "overflow"
    out[~np.isfinite(x)] = "nonfinite"
    return out'''
DELEGATED_SCALER = '''class DynamicLossScaler(torch.amp.GradScaler):
    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000):
        super().__init__("cpu", init_scale, growth_factor, backoff_factor, growth_interval)

    def unscale_(self, optimizer):
        super().unscale_(optimizer)
        return False'''


@pytest.mark.slow
def test_casting_with_torch_or_wrapping_gradscaler_scores_zero(tmp_path):
    from conftest import check_json, copy_with

    path = copy_with(SOLUTION, tmp_path / "07_low_precision.ipynb",
                     {"cast_outcome": DELEGATED_CAST, "DynamicLossScaler": DELEGATED_SCALER})
    rep = check_json(path)
    got = {}
    for t in rep["tests"]:
        key = t["exercise"] or t["grade_id"]
        got[key] = got.get(key, 0.0) + t["score"]
    assert got["cast_outcome"] == 0 and got["DynamicLossScaler"] == 0, rep["tests"]
    assert got["mixed_precision_step"] == 4 and got["lost_update_fraction"] == 3
    flags = " ".join(rep["flags"])
    assert "delegation: cast_outcome" in flags and "delegation: DynamicLossScaler" in flags
