"""Tests of course_utils.unstable_gradients against torch autograd."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import unstable_gradients as ug


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chain_matches_autograd(activation, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 2.0, size=25)
    x = rng.normal()
    got = ug.chain_grad_magnitudes(w, x, activation)
    want = ug.chain_grad_magnitudes_autograd(w, x, activation)
    assert got.dtype == np.float64 and got.shape == (25,)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)


def test_chain_autograd_oracle_by_hand():
    # two sigmoid layers: d a2/d a1 = s'(z2) w2, d a2/d a0 = s'(z2) w2 s'(z1) w1
    w1, w2, x = 0.7, -1.3, 0.4
    s = 1 / (1 + np.exp(-w1 * x))
    t = 1 / (1 + np.exp(-w2 * s))
    want = [abs(t * (1 - t) * w2 * s * (1 - s) * w1), abs(t * (1 - t) * w2)]
    np.testing.assert_allclose(ug.chain_grad_magnitudes_autograd([w1, w2], x), want, rtol=1e-12)
    np.testing.assert_allclose(ug.chain_grad_magnitudes([w1, w2], x), want, rtol=1e-12)


def test_chain_relu_kink_and_extremes():
    # z_2 = 0 exactly: PyTorch's relu'(0) = 0
    np.testing.assert_array_equal(ug.chain_grad_magnitudes([1.0, 0.0, 2.0], 1.0, "relu"),
                                  [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ug.chain_grad_magnitudes_autograd([2.0, 3.0], 0.0, "relu"),
                                  [0.0, 0.0])
    for act in ("sigmoid", "tanh"):
        w = [1e4, -1e4, 3.0, 1e4]
        with np.errstate(all="raise"):
            got = ug.chain_grad_magnitudes(w, -1.0, act)
        np.testing.assert_allclose(got, ug.chain_grad_magnitudes_autograd(w, -1.0, act),
                                   rtol=1e-10, atol=1e-300)
    with pytest.raises(ValueError):
        ug.chain_grad_magnitudes([1.0], 1.0, "gelu")
    with pytest.raises(ValueError):
        ug.chain_grad_magnitudes_autograd([1.0], 1.0, "gelu")


def _nets():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 2))
    nested = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(),
                           nn.Sequential(nn.Linear(6, 4, bias=False), nn.Sigmoid()),
                           nn.Linear(4, 2))
    return [plain, nested]


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("state", ["none", "zero", "values"])
def test_layer_grad_norms(which, state):
    model = _nets()[which]
    twin = copy.deepcopy(model)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
    if state != "none":
        nn.functional.mse_loss(model(x), y * 3).backward()
        if state == "zero":
            model.zero_grad(set_to_none=False)
    before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    got = ug.layer_grad_norms(model, x, y, nn.functional.mse_loss)
    # oracle: a fresh copy, plain autograd
    nn.functional.mse_loss(twin(x), y).backward()
    want = [m.weight.grad.norm().item() for m in twin.modules() if isinstance(m, nn.Linear)]
    assert all(type(v) is float for v in got)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    for p, b in zip(model.parameters(), before, strict=True):
        if b is None:
            assert p.grad is None
        else:
            assert torch.equal(p.grad, b)


def test_make_mlp_and_train():
    x, y = ug.make_rings(64, seed=1)
    assert x.shape == (64, 2) and y.shape == (64, 1)
    m1, m2 = ug.make_mlp(3, 8, "relu", init="he", seed=5), ug.make_mlp(3, 8, "relu", init="he",
                                                                        seed=5)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    run = ug.train_sgd(m1, x, y, nn.BCEWithLogitsLoss(), steps=5, lr=0.1)
    assert run["loss"].shape == (5,) and run["grad_norms"].shape == (5, 4)
    assert run["first_nonfinite"] is None
    big = ug.make_mlp(10, 32, "relu", init=3.0)
    run = ug.train_sgd(big, *ug.make_rings(256), nn.BCEWithLogitsLoss(), steps=50, lr=0.1)
    assert run["first_nonfinite"] is not None
    res = ug.make_mlp(4, 8, "sigmoid", residual=True, batch_norm=False)
    xr = torch.randn(5, 2)
    h = res.blocks[0](xr)
    for block in res.blocks[1:]:  # hidden layers 2..4 are residual: h + sigmoid(Linear(h))
        h = h + torch.sigmoid(block[0](h))
    assert torch.allclose(res(xr), res.head(h))


def test_tent_network_pieces():
    for k in range(1, 7):
        net = ug.tent_network(k)
        xs = torch.linspace(0, 1, 2**10 + 1, dtype=torch.float64)[:, None]
        with torch.no_grad():
            ys = net(xs)[:, 0].numpy()
        assert ug.count_linear_pieces(xs[:, 0].numpy(), ys) == 2**k
        assert sum(p.numel() for p in net.parameters()) == 6 * k + 1
        assert ys.min() == pytest.approx(0.0) and ys.max() == pytest.approx(1.0)


def test_plots_return_figures():
    from matplotlib.figure import Figure

    curves = {a: ug.chain_grad_magnitudes([1.0] * 10, 1.0, a) for a in ("sigmoid", "relu")}
    assert isinstance(ug.plot_chain_gradients(curves), Figure)
    assert isinstance(ug.plot_layer_grad_norms({"a": [1.0, 0.1, 0.0]}), Figure)
    x, y = ug.make_rings(64)
    runs = {"ok": ug.train_sgd(ug.make_mlp(2, 8, "relu"), x, y, nn.BCEWithLogitsLoss(),
                               steps=3, lr=0.1),
            "bad": ug.train_sgd(ug.make_mlp(10, 32, "relu", init=3.0), x, y,
                                nn.BCEWithLogitsLoss(), steps=20, lr=0.1)}
    assert isinstance(ug.plot_training_curves(runs, title="t"), Figure)
    assert isinstance(ug.plot_sawtooth([1, 2]), Figure)


def test_backward_profiles_numbers_quoted_in_the_notebook():
    # notebook 00, "A closer look at the over-scaled ReLU network": delta grows about 29x
    # towards the input and the inputs about 29x towards the output, so the weight-gradient
    # profile keeps He's shape (largest/smallest about 3.5), shifted up about 60x; the
    # gradient-to-weight ratio is 2 to 7 against 0.05 to 0.17 at He's scale
    import math

    x, y = ug.make_rings(512, seed=0)
    bce = nn.BCEWithLogitsLoss()
    big = ug.backward_profiles(ug.make_mlp(10, 32, "relu", init=2.0), x, y, bce)
    he = ug.backward_profiles(ug.make_mlp(10, 32, "relu", init=math.sqrt(2)), x, y, bce)
    hidden = slice(1, -1)
    assert 25 < big["delta"][0] / big["delta"][-1] < 33
    assert 25 < big["input"][-1] / big["input"][1] < 33
    assert 0.7 < he["delta"][0] / he["delta"][-1] < 1.4  # the He network does not explode
    for p in (big, he):
        spread = p["weight_grad"][hidden].max() / p["weight_grad"][hidden].min()
        assert 3.0 < spread < 4.0
    shift = np.median(big["weight_grad"][hidden]) / np.median(he["weight_grad"][hidden])
    assert 50 < shift < 70
    assert 2.0 < big["grad_to_weight"][hidden].min() and big["grad_to_weight"][hidden].max() < 7.5
    assert 0.04 < he["grad_to_weight"][hidden].min() and he["grad_to_weight"][hidden].max() < 0.2


def test_backward_profiles_factors_and_untouched_grads():
    x, y = ug.make_rings(64, seed=1)
    bce = nn.BCEWithLogitsLoss()
    model = ug.make_mlp(3, 8, "relu", init="he")
    p = ug.backward_profiles(model, x, y, bce)
    assert all(q.grad is None for q in model.parameters())
    np.testing.assert_allclose(p["weight_grad"], ug.layer_grad_norms(model, x, y, bce), rtol=1e-5)
    np.testing.assert_allclose(p["input"][0], float(x.norm()), rtol=1e-6)
    # ||delta a^T|| <= ||delta|| ||a|| (Frobenius norms of the batch matrices)
    assert np.all(p["weight_grad"] <= p["delta"] * p["input"] * (1 + 1e-6))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    bce(model(x), y).backward()
    ratios = [float(m.weight.grad.std() / m.weight.detach().std()) for m in linears]
    np.testing.assert_allclose(p["grad_to_weight"], ratios, rtol=1e-5)
    from matplotlib.figure import Figure

    assert isinstance(ug.plot_backward_profiles({"he": p}), Figure)
