"""Tests of course_utils.in_practice against quantities computed directly with torch."""

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils import in_practice as ip
from course_utils.datasets import load_digits_split


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


def _direct_report(model, x, y, loss_fn):
    """The rule of notebook 05 computed the plain way: backward() on a copy of the model,
    with tensor hooks for dL/dz at each Linear's output."""
    import copy

    m = copy.deepcopy(model)
    acts, zgrads = {}, {}
    mods = list(m.modules())
    for i, mod in enumerate(mods):
        if isinstance(mod, (nn.Sigmoid, nn.Tanh, nn.ReLU)):
            mod.register_forward_hook(lambda mm, inp, out, i=i: acts.__setitem__(i, out.detach()))
        if isinstance(mod, nn.Linear):
            def keep_grad(mm, inp, out, i=i):
                out.register_hook(lambda g: zgrads.__setitem__(i, g))  # returns None: out stays

            mod.register_forward_hook(keep_grad)
    loss_fn(m(x), y).backward()
    layers = []
    lin_idx = [i for i, mod in enumerate(mods) if isinstance(mod, nn.Linear)]
    for k, i in enumerate(lin_idx):
        nxt = lin_idx[k + 1] if k + 1 < len(lin_idx) else len(mods)
        act = next((j for j in range(i + 1, nxt) if j in acts), None)
        sat = dead = 0.0
        if act is not None:
            a = acts[act].double()
            if isinstance(mods[act], nn.ReLU):
                dead = float((a == 0).all(0).double().mean())
            elif isinstance(mods[act], nn.Sigmoid):
                sat = float(((2 * a - 1).abs() > 0.97).double().mean())
            else:
                sat = float((a.abs() > 0.97).double().mean())
        rms = float(zgrads[i].double().pow(2).mean().sqrt())
        layers.append((float(mods[i].weight.grad.double().norm()), rms, sat, dead))
    return layers


@pytest.mark.parametrize("kw", [
    dict(depth=4, width=32),
    dict(depth=6, width=16, activation="sigmoid", init="normal", scale=3.0),
    dict(depth=5, width=16, activation="tanh", init="xavier", batch_norm=True),
    dict(depth=5, width=32, bias=-0.5),
    dict(depth=3, width=8, activation="selu", init="lecun", loss="mse"),
])
def test_gradient_health_matches_direct_computation(kw):
    model, x, y, loss_fn = ip.build_health_case(**kw)
    rep = ip.gradient_health(model, x, y, loss_fn)
    direct = _direct_report(model, x, y, loss_fn)
    assert [d["name"] for d in rep["layers"]] == [n for n, m in model.named_modules()
                                                  if isinstance(m, nn.Linear)]
    for d, (g, r, s, z) in zip(rep["layers"], direct, strict=True):
        assert set(d) == {"name", "grad_norm", "out_grad_rms", "saturated_fraction",
                          "dead_fraction"}
        assert math.isclose(d["grad_norm"], g, rel_tol=1e-5, abs_tol=1e-12)
        assert math.isclose(d["out_grad_rms"], r, rel_tol=1e-5, abs_tol=1e-15)
        assert d["saturated_fraction"] == pytest.approx(s, abs=1e-12)
        assert d["dead_fraction"] == pytest.approx(z, abs=1e-12)
    assert all(type(d["grad_norm"]) is float for d in rep["layers"])


def test_gradient_health_leaves_model_untouched():
    model, x, y, loss_fn = ip.build_health_case(depth=3, width=8, batch_norm=True)
    model.eval()
    ip.gradient_health(model, x, y, loss_fn)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    filled = [torch.full_like(p, 0.5) for p in model.parameters()]
    for p, g in zip(model.parameters(), filled, strict=True):
        p.grad = g.clone()
    ip.gradient_health(model, x, y, loss_fn)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), filled, strict=True))


@pytest.mark.parametrize("kw, verdict", [
    (dict(depth=4, width=32), "healthy"),
    (dict(depth=12, width=48), "healthy"),                          # He, deep
    (dict(depth=12, width=32, activation="sigmoid", init="default"), "vanishing"),
    (dict(depth=10, width=32, activation="sigmoid", init="xavier"), "vanishing"),
    (dict(depth=6, width=64, init="normal"), "exploding"),
    (dict(depth=10, width=32, scale=3.0), "exploding"),             # uniformly over-scaled He
    (dict(depth=5, width=32, init="zeros"), "vanishing"),
    (dict(depth=3, width=32, bias=-1.0), "saturated or dead"),      # many dead units, flat
    (dict(depth=4, width=32, head_scale=1e-4), "healthy"),          # tiny output layer
    (dict(depth=8, width=128, activation="sigmoid", init="normal", scale=3.0),
     "saturated or dead"),
    (dict(depth=10, width=32, activation="selu", init="lecun"), "healthy"),
])
def test_verdicts_of_built_networks(kw, verdict):
    assert ip.gradient_health(*ip.build_health_case(**kw))["verdict"] == verdict


@pytest.mark.parametrize("kw", [
    dict(depth=6, width=64, init="normal"),
    dict(depth=10, width=32, activation="sigmoid", init="xavier"),
    dict(depth=3, width=32, bias=-1.0),
    dict(depth=4, width=32, head_scale=1e-4),
])
def test_verdict_is_free_of_the_loss_scale(kw):
    model, x, y, loss_fn = ip.build_health_case(**kw)
    base = ip.gradient_health(model, x, y, loss_fn)["verdict"]
    for c in (1e-6, 1e6):
        assert ip.gradient_health(model, x, y, lambda o, t, c=c: c * loss_fn(o, t))[
            "verdict"] == base


def test_health_verdict_rule():
    v = ip.health_verdict
    one, zero = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    assert v(one, one, zero, zero) == "healthy"
    assert v([1.0, float("nan"), 1.0], one, zero, zero) == "exploding"
    assert v(one, [float("inf"), 1.0, 1.0], zero, zero) == "exploding"
    assert v(one, [2e3, 1.0, 1.0], zero, zero) == "exploding"     # first hidden / last hidden
    assert v(one, [1e-4, 1.0, 1.0], zero, zero) == "vanishing"
    assert v(one, [1.0, 1.0, 1e-6], zero, zero) == "healthy"      # the output layer is not used
    assert v([1e9, 1e9, 1e9], [5e8, 1e9, 1e9], zero, zero) == "healthy"   # no absolute size
    assert v(zero, zero, zero, zero) == "vanishing"               # nothing flows at all
    assert v(one, one, [0.6, 0, 0], zero) == "saturated or dead"
    assert v(one, one, zero, [0, 0.6, 0]) == "saturated or dead"
    assert v(one, [1e-4, 1.0, 1.0], zero, [0, 0.9, 0]) == "vanishing"  # vanishing comes first
    assert v(one, one, [0.5, 0, 0], zero) == "healthy"            # strictly above 0.5
    assert v([1.0, 1.0], [1e-9, 1.0], zero[:2], zero[:2]) == "healthy"  # one hidden layer
    with pytest.raises(ValueError):
        v([], [], [], [])


def test_make_mlp_inits_and_determinism():
    for init, want in [("he", lambda fi, fo: math.sqrt(2 / fi)),
                       ("xavier", lambda fi, fo: math.sqrt(2 / (fi + fo))),
                       ("lecun", lambda fi, fo: math.sqrt(1 / fi))]:
        cfg = ip.RunConfig(init=init, depth=3, width=400)
        model = ip.make_mlp(cfg, seed=0, in_features=300)
        w = model.blocks[1][0].weight.detach().double()
        assert float(w.std()) == pytest.approx(want(400, 400), rel=0.02)
    cfg = ip.RunConfig(depth=3, width=16, bias_init=-1.0)
    a, b = ip.make_mlp(cfg, seed=4), ip.make_mlp(cfg, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.all(a.blocks[0][0].bias == -1.0) and torch.all(a.head.bias == 0.0)
    state = torch.random.get_rng_state()
    ip.make_mlp(cfg, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_residual_forward():
    cfg = ip.RunConfig(depth=3, width=8, residual=True)
    m = ip.make_mlp(cfg, seed=0, in_features=5, out_features=2)
    x = torch.randn(4, 5)
    h = m.blocks[0](x)
    h = h + m.blocks[1](h)
    h = h + m.blocks[2](h)
    torch.testing.assert_close(m(x), m.head(h))


def test_train_run_records_and_is_deterministic(data):
    cfg = ip.RunConfig(depth=3, width=16, steps=12, record_every=5, measure_steps=True)
    r1, r2 = ip.train_run(cfg, data, seed=0), ip.train_run(cfg, data, seed=0)
    np.testing.assert_array_equal(r1.losses, r2.losses)
    assert r1.losses.shape == (12,) and r1.grad_norms.shape == (12, 4)
    assert list(r1.checkpoints) == [0, 5, 10, 12]
    assert np.isfinite(r1.step_ratios).all() and not r1.diverged
    # update ratio = log10(lr * std(grad) / std(W)) and grad-to-weight = std(grad) / std(W)
    np.testing.assert_allclose(r1.update_ratios, np.log10(cfg.lr * r1.grad_to_weight), rtol=1e-9)


def test_bn_eval_bug_leaves_running_stats(data):
    cfg = ip.RunConfig(depth=3, width=16, steps=5, batch_norm=True, bn_eval=True)
    r = ip.train_run(cfg, data, seed=0)
    np.testing.assert_allclose(r.bn_running_var, 1.0)
    r = ip.train_run(ip.with_name(cfg, "ok", bn_eval=False), data, seed=0)
    assert np.all(r.bn_running_var != 1.0)


def test_divergence_and_clipping(data):
    cfg = ip.RunConfig(depth=12, width=48, steps=5, init="normal")
    r = ip.train_run(cfg, data, seed=0)
    assert r.diverged and math.isnan(r.final_loss)
    r = ip.train_run(ip.with_name(cfg, "clip", lr=0.05, clip=1e-3), data, seed=0)
    assert r.clip_fraction == 1.0


def test_summaries_doctor_and_plots(data):
    cfg = ip.RunConfig(depth=2, width=8, steps=10, record_every=5)
    runs = ip.run_seeds(cfg, data, seeds=(0, 1))
    s = ip.summarize_runs(runs)
    assert s["n_seeds"] == 2 and s["diverged"] == 0
    assert s["final_loss_mean"] == pytest.approx(np.mean([r.final_loss for r in runs]))
    assert "run" in ip.format_table([s])
    cases = ip.doctor_cases(steps=3)
    assert len(cases) == len(ip.DOCTOR_CAUSES) == 8
    assert "loss" in ip.doctor_summary(ip.train_run(cases["run 2"][1], data))
    x, y = data.x_train[:32], data.y_train[:32]
    model = ip.make_mlp(cfg)
    names, acts, grads = ip.collect_layer_tensors(model, x, y)
    assert len(names) == len(acts) == len(grads) == 2
    assert all(p.grad is None for p in model.parameters())
    figs = [ip.plot_loss_curves({"a": runs}), ip.plot_grad_norm_profiles({"a": runs}),
            ip.plot_layer_histograms(names, grads, "t", "x", log_x=True),
            ip.plot_layer_fractions({"a": runs[0].act_fraction[0]}),
            ip.plot_update_ratios(runs[0]), ip.plot_grad_to_weight({"a": runs[0]}),
            ip.plot_doctor_chart(runs[0], "a")]
    assert all(isinstance(f, Figure) for f in figs)


def test_residual_ablation_branch_scale_row(data):
    # Notebook 05, section 4 (100 steps): the plain ReLU + He residual net diverges for every
    # seed; the same net with each branch scaled by 1/sqrt(11) trains to a lower loss than
    # residual + BN and to the same test accuracy within the seeds' spread.
    base = ip.RunConfig(name="ReLU + He", steps=100)
    plain = ip.summarize_runs(ip.run_seeds(ip.with_name(base, "res", residual=True), data))
    scaled = ip.summarize_runs(ip.run_seeds(
        ip.with_name(base, "res / sqrt(11)", residual=True, branch_scale=1 / math.sqrt(11)), data))
    bn = ip.summarize_runs(ip.run_seeds(
        ip.with_name(base, "res + BN", residual=True, batch_norm=True), data))
    assert plain["diverged"] == 3
    assert scaled["diverged"] == 0 and bn["diverged"] == 0
    assert scaled["final_loss_mean"] < 0.1
    assert scaled["final_loss_mean"] <= bn["final_loss_mean"]
    assert (abs(scaled["test_acc_mean"] - bn["test_acc_mean"])
            <= max(scaled["test_acc_std"], bn["test_acc_std"]))


def test_branch_scale_scales_residual_branches_only():
    cfg = ip.RunConfig(residual=True)
    one = ip.make_mlp(cfg, seed=0)
    half = ip.make_mlp(ip.with_name(cfg, "half", branch_scale=0.5), seed=0)
    assert torch.equal(one.blocks[0][0].weight, half.blocks[0][0].weight)
    assert torch.equal(one.head.weight, half.head.weight)
    for a, b in zip(one.blocks[1:], half.blocks[1:], strict=True):
        assert torch.allclose(b[0].weight, 0.5 * a[0].weight)
    # not residual: branch_scale is ignored
    flat = ip.make_mlp(ip.RunConfig(branch_scale=0.5), seed=0)
    plain = ip.make_mlp(ip.RunConfig(), seed=0)
    assert torch.equal(flat.blocks[3][0].weight, plain.blocks[3][0].weight)


# The causes of each mystery run of notebook 05 (its hidden test holds the same letters).
DOCTOR_ANSWERS = {"run 1": "FH", "run 2": "A", "run 3": "E", "run 4": "G", "run 5": "C",
                  "run 6": "H", "run 7": "F", "run 8": "D"}


def _read_run(card, run):
    """The notebook's reading order, applied to the numbers doctor_summary prints and the
    chart shows: the letters of every cause it finds."""
    found = set()
    g0, w0 = run.grad_norms[0], run.weight_std[0][0]
    if w0 == 0:
        return "A"                                        # never non-zero weights
    if np.all(g0 == 0) and run.act_fraction[0].max() == 1.0:
        return "D"                                        # weights fine, every unit dead
    if run.bn_var_history is not None:
        v = run.bn_var_history.mean(axis=1)
        if len(v) >= 3 and v[-1] == v[-2] == v[-3]:
            found.add("F")                                # running statistics stopped moving
    if run.diverged and "F" not in found:
        found.add("B" if np.nanmax(g0) > 1e6 else "E")   # huge at step 0, or the steps
    if "sigmoid" in card and g0[0] < 1e-3 * g0[-1]:
        found.add("C")
    s = run.act_std[-1]
    if "ReLU" in card and w0 < 0.1 and s[-1] < 0.2 * s[0]:
        found.add("H")                                    # small weights, shrinking scale
    return "".join(sorted(found)) or "G"


def test_doctor_cases_are_told_apart_by_the_taught_diagnostics(data):
    cases = ip.doctor_cases(steps=100)
    runs = {k: ip.train_run(cfg, data, seed=0) for k, (card, cfg) in cases.items()}
    assert {k: _read_run(cases[k][0], r) for k, r in runs.items()} == DOCTOR_ANSWERS
    # the look-alikes of the notebook differ in a second diagnostic
    assert runs["run 2"].grad_norms[0].max() == runs["run 8"].grad_norms[0].max() == 0
    assert runs["run 2"].weight_std[0][0] == 0 < runs["run 8"].weight_std[0][0]
    assert runs["run 3"].diverged and runs["run 7"].diverged
    assert (np.nanmedian(runs["run 3"].update_ratios) > -1
            > np.nanmedian(runs["run 7"].update_ratios))
    assert np.nanmean(runs["run 7"].losses[15:20]) < 2.0     # run 7 learned before it blew up
    for k in ("run 1", "run 6"):
        assert runs[k].test_accuracy < 0.15 and np.nanmedian(runs[k].update_ratios) < -4
    assert runs["run 6"].bn_var_history is None
    v4 = runs["run 4"].bn_var_history.mean(axis=1)
    assert np.all(np.diff(v4) != 0)                           # healthy: statistics keep moving
    assert runs["run 4"].final_loss < 1.0


def test_bn_eval_mode_bug_depends_on_the_init(data):
    # Issue 12, item 3: batch norm left in eval mode from the start is the identity at init,
    # so with PyTorch's default init the run is the no-BN run; with He init it still trains.
    base = ip.RunConfig(steps=60)
    eval_default = ip.train_run(ip.with_name(base, "a", batch_norm=True, bn_eval=True,
                                             init="pytorch_default"), data)
    no_bn_default = ip.train_run(ip.with_name(base, "b", init="pytorch_default"), data)
    np.testing.assert_allclose(eval_default.grad_norms[0], no_bn_default.grad_norms[0],
                               rtol=1e-4)
    assert eval_default.final_loss > 2.2 and no_bn_default.final_loss > 2.2
    eval_he = ip.train_run(ip.with_name(base, "c", batch_norm=True, bn_eval=True), data)
    assert eval_he.final_loss < 1.2
    # model.train() forgotten at step 10: the running statistics stop at their step-10 values
    late = ip.train_run(ip.with_name(base, "d", batch_norm=True, eval_from=10), data)
    v = late.bn_var_history.mean(axis=1)
    assert v[1] != v[0] and np.all(v[2:] == v[1])


def test_doctor_chart_says_when_every_gradient_is_zero(data):
    run = ip.train_run(ip.RunConfig(depth=3, width=16, init="zeros", steps=12), data, seed=0)
    assert np.all(run.grad_norms == 0)
    fig = ip.plot_doctor_chart(run, "zeros")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("every weight gradient is exactly 0" in t for t in texts)
    assert any("undefined at every step" in t for t in texts)
    healthy = ip.train_run(ip.RunConfig(depth=3, width=16, steps=12), data, seed=0)
    fig = ip.plot_doctor_chart(healthy, "he")
    assert not any("exactly 0" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert fig.axes[1].get_yscale() == "log" and fig.axes[1].lines


def test_diagnose_reports_the_update_size_it_measured():
    t, n_lin = 30, 4
    ratios = np.full((t, n_lin), -2.2)
    ones = np.ones((t, n_lin))
    msg = ip.diagnose(np.ones(t), ones, ones, ratios, np.zeros((t, n_lin - 1)))
    assert msg.startswith("no alarm") and "6e-03" in msg and "log10 -2.2" in msg
    msg = ip.diagnose(np.ones(t), ones, ones, ratios - 1.0, np.zeros((t, n_lin - 1)))
    assert "1e-03" not in msg and "log10 -3.2" in msg


def test_diagnose_judges_the_flow_by_the_gradient_health_rule():
    # The uniformly over-scaled net: level weight gradients (the old first/last weight-gradient
    # test saw nothing) but r = d1/d(L-1) above 1e3; and the tiny output layer: steep weight
    # gradients but r near 1. diagnose must agree with gradient_health's verdict on both.
    t, ratios = 5, None
    for kw, verdict in [(dict(depth=10, width=32, scale=3.0), "exploding"),
                        (dict(depth=12, width=48, init="default"), "vanishing"),
                        (dict(depth=4, width=32, head_scale=1e-4), "healthy"),
                        (dict(depth=4, width=32), "healthy")]:
        rep = ip.gradient_health(*ip.build_health_case(**kw))
        assert rep["verdict"] == verdict
        g = np.array([[d["grad_norm"] for d in rep["layers"]]] * t)
        d = np.array([[d["out_grad_rms"] for d in rep["layers"]]] * t)
        ratios = np.full(g.shape, -3.0)
        msg = ip.diagnose(np.ones(t), g, d, ratios, np.zeros((t, g.shape[1] - 1)))
        assert (verdict if verdict != "healthy" else "no alarm") in msg, (kw, msg)
    # the loss scale never changes the alarm; all-zero gradients are vanishing
    msg = ip.diagnose(np.ones(t), 1e6 * g, 1e6 * d, ratios, np.zeros((t, g.shape[1] - 1)))
    assert msg.startswith("no alarm")
    zero = np.zeros_like(g)
    assert "exactly 0" in ip.diagnose(np.ones(t), zero, zero, ratios, zero[:, 1:])
    # the last recorded row is the one read
    d_old = np.vstack([d[:1] * [[1e-6] + [1] * (d.shape[1] - 1)], d])
    assert ip.diagnose(np.ones(t), g, d_old, ratios, zero[:, 1:]).startswith("no alarm")
    assert "vanishing" in ip.diagnose(np.ones(t), g, d_old[::-1], ratios, zero[:, 1:])


def test_runs_record_out_grad_rms_at_checkpoints(data):
    cfg = ip.RunConfig(depth=3, width=16, steps=12, record_every=5)
    run = ip.train_run(cfg, data, seed=0)
    assert run.out_grad_rms.shape == (3, 4) and np.all(run.out_grad_rms > 0)
    # the row of step 0 is gradient_health's out_grad_rms on that step's mini-batch
    model = ip.make_mlp(cfg, seed=0)
    idx = torch.randint(0, data.x_train.shape[0], (cfg.batch_size,),
                        generator=torch.Generator().manual_seed(20_000))
    rep = ip.gradient_health(model, data.x_train[idx], data.y_train[idx], nn.CrossEntropyLoss())
    np.testing.assert_allclose(run.out_grad_rms[0], [d["out_grad_rms"] for d in rep["layers"]],
                               rtol=1e-5)


def test_training_doctor_stop_button_is_reset_when_training_ends():
    from course_utils.visualisers.training_doctor import TrainingDoctor

    doc = TrainingDoctor(steps=50, depth=2, width=8, frame_interval=0.05)
    stop = doc.buttons["stop"]  # builds the widget; its first run is synchronous
    assert doc.run.status == "done"
    assert stop.disabled and stop.button_style == ""
    doc.start(background=False)
    assert doc.run.status == "done" and stop.disabled and stop.button_style == ""
    doc.params["steps"] = 2000
    doc.start(background=True)
    assert doc.first_frame.wait(30)
    assert not stop.disabled and stop.button_style == "danger"  # red while it trains
    doc.stop()
    assert doc.wait(10) and doc.run.status == "stopped"
    assert stop.disabled and stop.button_style == ""


def test_live_trainer_records_what_a_full_run_records(data):
    # The widget's live Trainer skips what it does not show, and keeps dL/dz only on the last
    # step of each advance(); every value it records equals the full run's.
    cfg = ip.RunConfig(depth=3, width=16, steps=25, record_every=1, measure_steps=True,
                       activation="sigmoid", init="pytorch_default", optimizer="sgd", lr=0.3)
    full, live = ip.Trainer(cfg, data, probe_size=64), ip.Trainer(cfg, data, probe_size=64,
                                                                  live=True)
    while not full.done:
        full.advance(10)
        live.advance(10)
        t = full.step
        for name in ("losses", "grad_norms", "step_ratios"):
            np.testing.assert_array_equal(getattr(live, name)[:t], getattr(full, name)[:t])
        assert live.act_fraction == full.act_fraction
        assert live.out_grad_steps[-1] == t - 1 and full.out_grad_steps == list(range(t))
        assert live.out_grad_rms[-1] == full.out_grad_rms[t - 1]
    assert live.out_grad_steps == [9, 19, 24] and not live.act_std
    assert np.isnan(live.update_ratios).all()


def test_trainer_advance_stops_when_asked(data):
    cfg = ip.RunConfig(depth=2, width=8, steps=20)
    trainer = ip.Trainer(cfg, data)
    trainer.advance(10, stop=lambda: trainer.step >= 3)
    assert trainer.step == 3 and not trainer.done
