"""Tests of course_utils.diagnostics against quantities computed directly with torch."""

import math

import pytest
import torch
from torch import nn

from course_utils import diagnostics as dg


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                         nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 1)).double()


def _data():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(32, 4, generator=g, dtype=torch.float64),
            torch.randn(32, 1, generator=g, dtype=torch.float64))


def test_record_layer_stats_matches_direct_computation():
    model = _model()
    x, y = _data()
    with dg.record_layer_stats(model) as rec:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
    stats = rec.stats
    assert [s.name for s in stats] == [str(i) for i in range(7)]
    assert [s.kind for s in stats] == ["Linear", "ReLU", "Linear", "Tanh", "Linear",
                                       "Sigmoid", "Linear"]
    # recompute every output and its gradient by hand
    outs, a = [], x
    for m in model:
        a = m(a)
        a.retain_grad()
        outs.append(a)
    model.zero_grad()
    nn.functional.mse_loss(outs[-1], y).backward()
    for s, out in zip(stats, outs, strict=True):
        assert s.out_mean == pytest.approx(out.mean().item(), rel=1e-12, abs=1e-15)
        assert s.out_std == pytest.approx(out.std(unbiased=False).item(), rel=1e-12)
        assert s.grad_out_norm == pytest.approx(float(out.grad.norm()), rel=1e-10)
        assert s.out_shape == tuple(out.shape)
    for i in (0, 2, 4, 6):
        w = model[i].weight
        assert stats[i].weight_norm == pytest.approx(w.norm().item(), rel=1e-12)
        assert stats[i].weight_grad_norm == pytest.approx(w.grad.norm().item(), rel=1e-10)
        assert stats[i].grad_to_weight == pytest.approx(
            (w.grad.std(unbiased=False) / w.std(unbiased=False)).item(), rel=1e-10)
    relu_out = outs[1]
    assert stats[1].zero_fraction == pytest.approx(float((relu_out == 0).double().mean()))
    assert stats[1].dead_fraction == pytest.approx(
        float((relu_out == 0).all(dim=0).double().mean()))
    assert stats[3].saturated_fraction == pytest.approx(
        float((outs[3].abs() > 0.97).double().mean()))
    assert stats[5].saturated_fraction == pytest.approx(
        float(((2 * outs[5] - 1).abs() > 0.97).double().mean()))
    assert stats[0].saturated_fraction is None and stats[0].dead_fraction is None
    assert stats[1].weight_norm is None


def test_hooks_removed_and_model_unchanged():
    model = _model()
    x, y = _data()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError):
        with dg.record_layer_stats(model):
            model(x)
            raise RuntimeError("boom")
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b) and p.grad is None


def test_types_filter_keep_tensors_and_inplace_relu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(inplace=True), nn.Linear(5, 2))
    x = torch.randn(10, 3)
    with dg.record_layer_stats(model, types=(nn.Linear,), keep_tensors=True) as rec:
        model(x).sum().backward()
    assert [s.name for s in rec.stats] == ["0", "2"]
    pre = model[0](x)
    assert torch.allclose(rec["0"].output, pre)  # recorded before the in-place ReLU ran
    expected_grad = (model[2].weight.sum(dim=0) * (pre > 0)).expand_as(pre)
    assert torch.allclose(rec["0"].grad_output, expected_grad)
    assert "0" in rec.table() and rec.column("out_std", kinds=["Linear"])[0] > 0


def test_stats_frozen_after_exit():
    model = _model()
    x, y = _data()
    with dg.record_layer_stats(model) as rec:
        nn.functional.mse_loss(model(x), y).backward()
    norm = rec.stats[0].weight_norm
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    assert rec.stats[0].weight_norm == norm


def test_ratios():
    w = nn.Parameter(torch.tensor([[1.0, -1.0], [2.0, 0.0]], dtype=torch.float64))
    assert math.isnan(dg.grad_to_weight_ratio(w))
    assert math.isnan(dg.update_to_weight_ratio(w, 0.1))
    w.grad = torch.tensor([[0.1, 0.3], [-0.2, 0.0]], dtype=torch.float64)
    gstd, wstd = float(w.grad.std(unbiased=False)), float(w.detach().std(unbiased=False))
    assert dg.grad_to_weight_ratio(w) == pytest.approx(gstd / wstd)
    assert dg.update_to_weight_ratio(w, 0.01) == pytest.approx(math.log10(0.01 * gstd / wstd))
    w.grad = torch.zeros_like(w)
    assert dg.update_to_weight_ratio(w, 0.01) == -math.inf
    before = torch.tensor([1.0, 2.0, 3.0])
    after = before + torch.tensor([0.001, -0.001, 0.0])
    expected = math.log10(float((after - before).std(unbiased=False) / before.std(unbiased=False)))
    assert dg.measured_update_ratio(before, after) == pytest.approx(expected, rel=1e-5)


def test_update_ratios_and_weight_grad_norms():
    model = _model()
    x, y = _data()
    nn.functional.mse_loss(model(x), y).backward()
    ratios = dg.update_ratios(model, lr=0.1)
    assert list(ratios) == ["0.weight", "2.weight", "4.weight", "6.weight"]
    assert ratios["2.weight"] == pytest.approx(dg.update_to_weight_ratio(model[2].weight, 0.1))
    assert dg.weight_grad_norms(model) == pytest.approx(
        [float(model[i].weight.grad.norm()) for i in (0, 2, 4, 6)])


def test_fraction_helpers():
    a = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    assert dg.zero_fraction(a) == pytest.approx(4 / 6)
    assert dg.dead_fraction(a) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        dg.dead_fraction(torch.zeros(3))
    s = torch.tensor([0.001, 0.5, 0.999, 0.98])
    assert dg.saturated_fraction(s, "sigmoid") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        dg.saturated_fraction(s, "relu")


def test_capture_outputs_records_calls_in_order_and_removes_hooks():
    from course_utils.diagnostics import capture_outputs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    out, calls = capture_outputs(model, x, [model[2], model[0]])
    assert [m for m, _ in calls] == [model[0], model[2]]  # forward order, not argument order
    torch.testing.assert_close(calls[1][1], out)
    assert not out.requires_grad and all(not m._forward_hooks for m in model)
    out, calls = capture_outputs(model, x, [model[0]], no_grad=False)
    (g,) = torch.autograd.grad(out.sum(), [calls[0][1]])
    assert g.shape == (5, 4) and all(not m._forward_hooks for m in model)

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    bad = nn.Sequential(nn.Linear(3, 3), Boom())
    with pytest.raises(RuntimeError):
        capture_outputs(bad, x, [bad[0]])
    assert not bad[0]._forward_hooks
