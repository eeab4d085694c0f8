"""The reference initializers of ``course_utils.initialization`` against ``torch.nn.init``.

Fans and gains must equal torch's exactly; every in-place initializer must reproduce torch's
draws bit for bit under the same ``torch.Generator``; the experiments and plots must run.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

import course_utils.initialization as I

SHAPES = [(3, 5), (5, 3), (7, 4, 3), (16, 8, 3, 3), (4, 2, 3, 5, 2), (1, 1), (200, 100)]
GAINS = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fans_match_torch(shape):
    expected = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert I.fan_in_and_fan_out(shape) == expected
    assert I.fan_in_and_fan_out(torch.Size(shape)) == expected


@pytest.mark.parametrize("shape", [(), (5,)], ids=str)
def test_fans_need_two_dims(shape):
    with pytest.raises(ValueError):
        nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError):
        I.fan_in_and_fan_out(shape)


def test_linear_and_conv_fans():
    assert I.fan_in_and_fan_out(nn.Linear(100, 200).weight.shape) == (100, 200)
    assert I.fan_in_and_fan_out(nn.Conv2d(16, 32, 3).weight.shape) == (16 * 9, 32 * 9)


@pytest.mark.parametrize("name", GAINS)
def test_gains_match_torch(name):
    assert I.calculate_gain(name) == nn.init.calculate_gain(name)


@pytest.mark.parametrize("param", [None, 0, 0.2, 1, -0.5, math.sqrt(5)])
def test_leaky_relu_gain(param):
    assert I.calculate_gain("leaky_relu", param) == pytest.approx(
        nn.init.calculate_gain("leaky_relu", param), rel=1e-15)


@pytest.mark.parametrize("args", [("softmax",), ("leaky_relu", "0.1"), ("leaky_relu", True)])
def test_gain_errors(args):
    with pytest.raises(ValueError):
        nn.init.calculate_gain(*args)
    with pytest.raises(ValueError):
        I.calculate_gain(*args)


INITS = [
    ("xavier_uniform_", {}),
    ("xavier_uniform_", {"gain": 5 / 3}),
    ("xavier_normal_", {}),
    ("xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_uniform_", {"a": 0.2, "mode": "FAN_OUT"}),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {"nonlinearity": "tanh"}),
    ("kaiming_normal_", {"a": 0.1, "nonlinearity": "leaky_relu"}),
]


@pytest.mark.parametrize("name, kw", INITS, ids=[f"{n}-{kw}" for n, kw in INITS])
@pytest.mark.parametrize("shape", [(30, 20), (8, 4, 3, 3)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_initializers_match_torch_draw_for_draw(name, kw, shape, dtype):
    ours = torch.empty(shape, dtype=dtype)
    theirs = torch.empty(shape, dtype=dtype)
    out = getattr(I, name)(ours, generator=torch.Generator().manual_seed(7), **kw)
    getattr(nn.init, name)(theirs, generator=torch.Generator().manual_seed(7), **kw)
    assert out is ours
    assert torch.equal(ours, theirs)
    assert ours.dtype == dtype


@pytest.mark.parametrize("shape", [(30, 20), (8, 4, 3, 3)], ids=str)
def test_lecun_normal_is_kaiming_linear(shape):
    ours, theirs = torch.empty(shape), torch.empty(shape)
    I.lecun_normal_(ours, generator=torch.Generator().manual_seed(3))
    nn.init.kaiming_normal_(theirs, nonlinearity="linear",
                            generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs)


def test_initializers_record_no_history():
    w = torch.empty(50, 40, requires_grad=True)
    for fn in (I.xavier_uniform_, I.xavier_normal_, I.kaiming_uniform_, I.kaiming_normal_,
               I.lecun_normal_):
        out = fn(w)
        assert out is w and out.grad_fn is None and w.is_leaf and w.requires_grad


def test_initializers_use_the_global_generator_like_torch():
    torch.manual_seed(11)
    a = I.kaiming_uniform_(torch.empty(10, 6), a=math.sqrt(5))
    torch.manual_seed(11)
    b = nn.Linear(6, 10).weight.detach()
    assert torch.equal(a, b)


def test_empty_tensor_is_a_no_op_for_kaiming():
    w = torch.empty(0, 3)
    assert I.kaiming_uniform_(w) is w and I.kaiming_normal_(w) is w


def test_stds():
    shape = (30, 20)
    assert I.xavier_std(shape) == pytest.approx(math.sqrt(2 / 50))
    assert I.xavier_std(shape, gain=2.0) == pytest.approx(2 * math.sqrt(2 / 50))
    assert I.kaiming_std(shape) == pytest.approx(math.sqrt(2 / 20))
    assert I.kaiming_std(shape, mode="fan_out", nonlinearity="relu") == pytest.approx(
        math.sqrt(2 / 30))
    assert I.kaiming_std(shape, a=math.sqrt(5)) == pytest.approx(1 / math.sqrt(60))
    assert I.lecun_std(shape) == pytest.approx(1 / math.sqrt(20))
    with pytest.raises(ValueError):
        I.kaiming_std(shape, mode="fan_avg")


def test_named_inits_have_their_std():
    gen = torch.Generator().manual_seed(0)
    for init in I.INITS:
        w = I.init_named_(torch.empty(400, 300, dtype=torch.float64), init, gen)
        want = I.init_weight_std(init, 300, 400)
        assert w.std().item() == pytest.approx(want, rel=0.02, abs=1e-12)
    w = I.init_named_(torch.empty(400, 300, dtype=torch.float64), "pytorch_default", gen)
    assert w.abs().max().item() <= 1 / math.sqrt(300)


def test_activation_stds_follow_theory():
    for act, init in [("tanh", "xavier"), ("relu", "small"), ("selu", "lecun"),
                      ("linear", "lecun")]:
        got = I.activation_stds(8, 256, act, init, n_samples=500)
        want = I.predicted_stds(8, 256, act, init)["act_std"]
        assert got.shape == (8,)
        np.testing.assert_allclose(np.log(got), np.log(want), atol=0.3)
    a = I.activation_stds(3, 32, "relu", "he", seed=4)
    assert np.array_equal(a, I.activation_stds(3, 32, "relu", "he", seed=4))
    with pytest.raises(ValueError):
        I.activation_stds(3, 32, "swish", "he")


def test_layer_statistics_and_theory_shapes():
    res = I.layer_statistics(6, 64, "tanh", "xavier", n_samples=128, keep=100)
    th = I.predicted_stds(6, 64, "tanh", "xavier")
    assert res["act_std"].shape == res["grad_std"].shape == th["grad_std"].shape == (6,)
    assert len(res["act_samples"]) == 6 and res["act_samples"][0].shape == (100,)
    np.testing.assert_allclose(np.log(res["act_std"]), np.log(th["act_std"]), atol=0.2)
    np.testing.assert_allclose(np.log(res["grad_std"]), np.log(th["grad_std"]), atol=0.4)


@pytest.mark.parametrize("q", [0.25, 1.0, 3.0, 40.0])
def test_gaussian_moments_of_relu_are_the_closed_forms(q):
    """E[relu(z)] = s/sqrt(2 pi), E[relu(z)^2] = s^2/2, E[relu'(z)^2] = 1/2 for z ~ N(0, s^2):
    no node on the kink, where a grid would add the density at 0 times its spacing."""
    mean, second, slope2 = I.gaussian_moments("relu", q)
    assert mean == pytest.approx(math.sqrt(q / (2 * math.pi)), rel=1e-12)
    assert second == pytest.approx(q / 2, rel=1e-12)
    assert slope2 == pytest.approx(0.5, rel=1e-12)
    assert I.gaussian_moments("linear", q)[1] == pytest.approx(q, rel=1e-12)
    assert I.gaussian_moments("leaky_relu", q)[1] == pytest.approx(q * (1 + 0.01**2) / 2,
                                                                    rel=1e-12)


def _fine_moments(activation, q):
    """The same three integrals by Simpson's rule on 2,000,000 intervals per side of 0."""
    t = np.linspace(0.0, 12.0, 2_000_001)
    simpson = np.full(t.size, 2.0)
    simpson[1::2] = 4.0
    simpson[[0, -1]] = 1.0
    simpson *= (t[1] - t[0]) / 3 * np.exp(-0.5 * t**2) / math.sqrt(2 * math.pi)
    total = np.zeros(3)
    for side in (-1.0, 1.0):
        z = torch.tensor(side * math.sqrt(q) * t, dtype=torch.float64, requires_grad=True)
        y = ACTIVATION_FUNCTIONS[activation](z)
        (slope,) = torch.autograd.grad(y.sum(), z)
        y, slope = y.detach().numpy(), slope.numpy()
        slope[0] = slope[1]  # at a kink, the slope of the side this half-line lies on
        total += [np.sum(simpson * y), np.sum(simpson * y**2), np.sum(simpson * slope**2)]
    return total


ACTIVATION_FUNCTIONS = {"tanh": torch.tanh, "elu": torch.nn.functional.elu,
                        "selu": torch.nn.functional.selu, "gelu": torch.nn.functional.gelu,
                        "sigmoid": torch.sigmoid}


@pytest.mark.parametrize("activation", list(ACTIVATION_FUNCTIONS))
@pytest.mark.parametrize("q", [0.3, 1.0, 4.0])
def test_gaussian_moments_match_a_fine_integral(activation, q):
    got = I.gaussian_moments(activation, q)
    np.testing.assert_allclose(got, _fine_moments(activation, q), rtol=1e-9, atol=1e-12)


def test_gaussian_moments_of_a_blown_up_signal():
    mean, second, slope2 = I.gaussian_moments("tanh", math.inf)
    assert math.isnan(mean) and second == math.inf and math.isnan(slope2)


def test_plots_are_pure_figures():
    before = dict(matplotlib.rcParams)
    res = [I.layer_statistics(4, 32, a, i, n_samples=64, keep=50)
           for a in ("tanh", "relu") for i in ("xavier", "he")]
    th = [I.predicted_stds(4, 32, r["activation"], r["init"]) for r in res]
    figs = [
        I.plot_std_curves(res, th),
        I.plot_std_curves(res, th, quantity="grad_std"),
        I.plot_layer_histograms(res[:2], [1, 4]),
        I.plot_variance_vs_n([1, 10, 100], [1.0, 9.0, 110.0]),
        I.plot_normal_vs_uniform(np.random.default_rng(0).normal(size=500),
                                 np.random.default_rng(1).uniform(-1, 1, 500), 1 / math.sqrt(3)),
        I.plot_default_linear_init([10, 100], 50, [0.18, 0.058], res[:2]),
        I.plot_elu_factors({1.0: np.ones(4), 2.0: np.ones(4) * 2}),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        assert fig.axes and all(ax.get_xlabel() for ax in fig.axes if ax.get_visible())
    assert dict(matplotlib.rcParams) == before


def _per_layer_grad_factor(activation, init="xavier", depth=30, width=256):
    r = I.layer_statistics(depth, width, activation, init, dtype=torch.float64)
    return (r["grad_std"][0] / r["grad_std"][-1]) ** (1 / (depth - 1))


def _std_across_inputs(activation, depth=30, width=256, init="xavier"):
    x = torch.randn(512, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = I.build_mlp(depth, width, activation, init, torch.Generator().manual_seed(0),
                        torch.float64)
    with torch.no_grad():
        model(x, keep=True)
    a = model.activations[-1]
    return a.mean().item(), a.std().item(), a.std(0).mean().item()


def test_xavier_premise_fails_for_the_sigmoid():
    """Notebook 02, section 7: Xavier keeps a linear stack, loses ~5%/layer with tanh, and
    with the sigmoid shrinks the gradient's std by about sigma'(0) = 1/4 per layer while every
    unit's output stops depending on the input (the printed 0.998, 0.949, 0.235, 3e-17)."""
    assert _per_layer_grad_factor("linear") == pytest.approx(0.998, abs=0.01)
    assert _per_layer_grad_factor("tanh") == pytest.approx(0.949, abs=0.01)
    sig = _per_layer_grad_factor("sigmoid")
    assert sig == pytest.approx(0.235, abs=0.01)
    theory = I.predicted_stds(30, 256, "sigmoid", "xavier")["grad_std"][0] ** (1 / 29)
    assert sig == pytest.approx(theory, rel=0.02)
    mean, std_all, std_inputs = _std_across_inputs("sigmoid")
    assert mean == pytest.approx(0.5, abs=0.02) and 0.1 < std_all < 0.15
    assert std_inputs < 1e-12  # the outputs no longer depend on the input
    assert _std_across_inputs("tanh")[2] > 0.1
    assert _std_across_inputs("linear")[2] > 0.8


def test_tanh_gain_from_the_second_moment():
    """Notebook 02, section 11: g = 1/sqrt(E[tanh(z)^2]) = 1.5925 makes q = 1 a fixed point;
    5/3 settles at q* = 1.1785 (std 0.651); both fixed points have chi > 1."""
    _, second, _ = I.gaussian_moments("tanh", 1.0)
    g = 1 / math.sqrt(second)
    assert g == pytest.approx(1.5925, abs=1e-4)
    assert abs(g - 5 / 3) / (5 / 3) == pytest.approx(0.0445, abs=0.002)
    want = {1.0: (0.0025, 0.995), g: (1.0, 1.1778), 5 / 3: (1.1785, 1.2098)}
    for gain, (q_star, chi) in want.items():
        q = I.predicted_stds(200, 256, "tanh", "lecun", gain=gain)["q"][-1]
        _, second_q, slope2 = I.gaussian_moments("tanh", q)
        assert q == pytest.approx(q_star, abs=2e-4)
        assert gain**2 * slope2 == pytest.approx(chi, abs=2e-3)
    r = I.layer_statistics(30, 256, "tanh", "lecun", gain=5 / 3)
    assert r["act_std"][9] == pytest.approx(0.651, abs=0.01)
    assert r["act_std"][-1] == pytest.approx(0.651, abs=0.01)
    assert 10 < r["grad_std"][0] < 20


HEADS = {"N(0, 1)": ("normal", 1.0), "He": ("he", 1.0), "He x 0.01": ("he", 0.01),
         "zeros": ("zeros", 1.0)}


@pytest.fixture(scope="module")
def digits():
    from course_utils.datasets import load_digits_split

    return load_digits_split()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_loss_is_ln_10_only_when_the_output_layer_starts_small(digits, seed):
    """Notebook 02, section 13: the first loss of a 10-class classifier against ln 10."""
    first = {}
    for label, (head_init, head_scale) in HEADS.items():
        net = I.digits_classifier(head_init, head_scale, seed=seed)
        with torch.no_grad():
            first[label] = F.cross_entropy(net(digits.x_train), digits.y_train).item()
    assert first["zeros"] == pytest.approx(math.log(10), abs=1e-6)
    assert first["He x 0.01"] == pytest.approx(math.log(10), abs=0.01)
    assert first["He"] > math.log(10) + 0.3
    assert first["N(0, 1)"] > 4 * math.log(10)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_too_large_output_layer_costs_the_first_steps_and_the_test_loss(digits, seed):
    """Notebook 02, section 13: with Adam, N(0, 1) output weights are still above ln 10 after 5
    steps while a zeroed output layer is below it; after 100 steps the test loss is over twice
    as large and the accuracy lower."""
    big = I.train_first_steps(I.digits_classifier("normal", 1.0, seed=seed), digits, steps=100)
    zero = I.train_first_steps(I.digits_classifier("zeros", 1.0, seed=seed), digits, steps=100)
    assert big["loss"].shape == zero["loss"].shape == (101,)
    assert big["loss"][5] > math.log(10) > zero["loss"][5]
    assert zero["loss"][0] == pytest.approx(math.log(10), abs=1e-6)
    assert big["test_loss"] > 2 * zero["test_loss"]
    assert big["test_accuracy"] < zero["test_accuracy"]


def test_plot_first_losses_is_a_pure_figure(digits):
    before = dict(matplotlib.rcParams)
    runs = {label: I.train_first_steps(I.digits_classifier(*head), digits, steps=3)
            for label, head in HEADS.items()}
    fig = I.plot_first_losses(runs)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == len(HEADS) + 1
    assert dict(matplotlib.rcParams) == before
