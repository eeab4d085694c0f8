"""Reference implementations of notebooks/04_gradient_clipping against torch.nn.utils."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import gradient_clipping as gc


def test_clip_by_value_and_norm_numpy():
    g = np.array([0.9, 100.0])
    np.testing.assert_array_equal(gc.clip_by_value(g, 1.0), [0.9, 1.0])
    clipped = gc.clip_by_norm(g, 1.0)
    np.testing.assert_allclose(clipped, g / math.hypot(0.9, 100.0), rtol=1e-15)
    assert round(clipped[0], 4) == 0.0090 and round(clipped[1], 5) == 0.99996
    small = np.array([[1e-3, -2e-3]])
    np.testing.assert_array_equal(gc.clip_by_norm(small, 1.0), small)  # never enlarges
    np.testing.assert_array_equal(gc.clip_by_norm(np.zeros(3), 1.0), np.zeros(3))
    np.testing.assert_array_equal(g, [0.9, 100.0])  # input untouched
    assert gc.cosine_similarity(g, clipped) == pytest.approx(1.0)


def _model_with_grads(seed=0, scale=1.0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    frozen = nn.Parameter(torch.ones(3))  # never gets a gradient
    x = torch.randn(16, 4) * scale
    (model(x) ** 2).sum().backward()
    return [*model.parameters(), frozen]


def _twins(seed=0, scale=1.0):
    a = _model_with_grads(seed, scale)
    b = _model_with_grads(seed, scale)
    return a, b


@pytest.mark.parametrize("max_norm", [1e-4, 0.5, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ours, ref = _twins()
    held = [p.grad for p in ours if p.grad is not None]
    total = gc.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
    torch.testing.assert_close(total, total_ref)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad)
    assert all(h is p.grad for h, p in zip(held, [p for p in ours if p.grad is not None],
                                             strict=True))


def test_clip_grad_norm_exact_boundary_generator_and_single_tensor():
    ours, ref = _twins()
    total = gc.total_grad_norm(ours)
    gc.clip_grad_norm_(iter(ours), total)  # a generator is consumed only once
    torch.nn.utils.clip_grad_norm_(iter(ref), total)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)
    t1 = torch.zeros(3, requires_grad=True)
    t1.grad = torch.tensor([3.0, 4.0, 0.0])
    assert gc.clip_grad_norm_(t1, 1.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(t1.grad, torch.tensor([3.0, 4.0, 0.0]) / (5 + 1e-6))
    none = nn.Parameter(torch.ones(2))
    assert gc.clip_grad_norm_([none], 1.0).item() == 0.0


def test_clip_grad_value_matches_torch():
    ours, ref = _twins(scale=5.0)
    gc.clip_grad_value_(ours, 0.05)
    torch.nn.utils.clip_grad_value_(ref, 0.05)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_plots_return_figures():
    from matplotlib.figure import Figure

    figs = [
        gc.plot_clipping_geometry([0.9, 100.0], 1.0, 1.0),
        gc.plot_grad_norm_trace({"a": [1.0, 10.0, np.inf]}, threshold=5.0),
        gc.plot_loss_curves({"a": [1.0, 0.5], "b": [1.0, np.nan]}),
        gc.plot_threshold_sweep([0.1, 1, 10], [0.5, 0.2, np.nan], [1.0, 0.5, 0.0],
                                {"median": 1.0}),
    ]
    assert all(isinstance(f, Figure) for f in figs)


def test_more_plots_return_figures():
    from matplotlib.figure import Figure

    fig = gc.plot_global_vs_per_tensor(["w1", "b1"], [10.0, 0.1], [1.0, 0.01], [1.0, 0.1], 1.0)
    assert isinstance(fig, Figure)
    fig = gc.plot_relu6(np.linspace(-2, 8, 50), {"relu": ([1, 2], [1.0, 2.0])})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert isinstance(gc.plot_relu6(np.linspace(-2, 8, 50)), Figure)
