"""course_utils.nets: the activation table, init vocabulary and MLP builder, against torch."""

import math

import pytest
import torch
from torch import nn

from course_utils import nets


def test_activation_table_builds_torch_modules():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    expected = {"sigmoid": torch.sigmoid(x), "tanh": torch.tanh(x), "relu": torch.relu(x),
                "leaky_relu": nn.functional.leaky_relu(x, 0.01), "elu": nn.functional.elu(x),
                "selu": nn.functional.selu(x), "gelu": nn.functional.gelu(x),
                "relu6": nn.functional.relu6(x), "identity": x, "linear": x}
    assert set(nets.ACTIVATIONS) == set(expected)
    for name, want in expected.items():
        module = nets.activation_module(name)
        assert isinstance(module, nn.Module)
        torch.testing.assert_close(module(x), want, rtol=0, atol=0)
        if name not in ("identity", "linear"):
            assert isinstance(module, nets.ACTIVATION_TYPES)
    assert set(nets.HIDDEN_ACTIVATIONS) <= set(nets.ACTIVATIONS)
    assert isinstance(nets.activation_module(nn.Tanh), nn.Tanh)  # a module class is called
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        nets.activation_module("softmax")


def test_he_gain_follows_torch_where_torch_defines_one():
    for name in ("sigmoid", "tanh", "relu", "linear"):
        assert nets.he_gain(name) == pytest.approx(nn.init.calculate_gain(name), rel=1e-15)
    assert nets.he_gain("leaky_relu") == pytest.approx(nn.init.calculate_gain("leaky_relu", 0.01))
    assert nets.he_gain("gelu") == nets.he_gain("elu") == math.sqrt(2.0)
    assert nets.he_gain("selu") == 1.0


@pytest.mark.parametrize("init, torch_fill", [
    ("he", lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
    ("lecun", lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g)),
    ("xavier", lambda w, g: nn.init.xavier_normal_(w, generator=g)),
    ("normal", lambda w, g: nn.init.normal_(w, 0.0, 1.0, generator=g)),
    ("zeros", lambda w, g: nn.init.zeros_(w)),
])
def test_init_linear_draws_what_torch_nn_init_draws(init, torch_fill):
    ours, ref = nn.Linear(30, 20), nn.Linear(30, 20)
    nets.init_linear_(ours, init, generator=torch.Generator().manual_seed(3))
    torch_fill(ref.weight, torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours.weight, ref.weight, rtol=0, atol=0)
    assert torch.count_nonzero(ours.bias) == 0


def test_init_linear_pytorch_default_is_nn_linears_own_init():
    ours = nets.init_linear_(nn.Linear(50, 40), "pytorch_default",
                             generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    bound = 1 / math.sqrt(50)
    w = torch.empty(40, 50).uniform_(-bound, bound, generator=gen)
    b = torch.empty(40).uniform_(-bound, bound, generator=gen)
    torch.testing.assert_close(ours.weight, w, rtol=0, atol=0)
    torch.testing.assert_close(ours.bias, b, rtol=0, atol=0)
    assert nets.init_std("pytorch_default", 50, 40) == pytest.approx(bound / math.sqrt(3))


def test_init_std_options_and_errors():
    assert nets.init_std("he", 100, 10) == pytest.approx(math.sqrt(2 / 100))
    assert nets.init_std("he", 100, 10, mode="fan_out") == pytest.approx(math.sqrt(2 / 10))
    assert nets.init_std("he", 100, 10, gain=5 / 3) == pytest.approx(5 / 3 / 10)
    assert nets.init_std("xavier", 100, 10, gain=2.0) == pytest.approx(2 * math.sqrt(2 / 110))
    assert nets.init_std("normal", 100, 10, std=0.01) == 0.01
    lin = nets.init_linear_(nn.Linear(400, 300), "normal", std=1.0, scale=0.5, bias=0.25,
                            generator=torch.Generator().manual_seed(1))
    assert float(lin.weight.detach().std()) == pytest.approx(0.5, rel=0.02)
    assert torch.all(lin.bias == 0.25)
    with pytest.raises(ValueError, match="unknown init 'kaiming'"):
        nets.init_std("kaiming", 10, 10)
    with pytest.raises(ValueError, match="mode must be"):
        nets.init_std("he", 10, 10, mode="fan_avg")


def test_mlp_structure_and_batch_norm_placement():
    for placement, kinds in [(None, [nn.Linear, nn.Tanh]),
                             ("before", [nn.Linear, nn.BatchNorm1d, nn.Tanh]),
                             ("after", [nn.Linear, nn.Tanh, nn.BatchNorm1d])]:
        model = nets.mlp(3, 2, depth=4, width=8, activation="tanh", batch_norm=placement)
        assert len(model.blocks) == 4 and model.head.out_features == 2
        for block in model.blocks:
            assert [type(m) for m in block] == kinds
        assert model.linears == [b[0] for b in model.blocks] + [model.head]
        flat = model.as_sequential()
        x = torch.randn(5, 3)
        torch.testing.assert_close(flat(x), model(x))
    no_head = nets.mlp(6, None, depth=2, width=6, linear_bias=False)
    assert no_head.head is None and all(lin.bias is None for lin in no_head.linears)
    assert no_head(torch.randn(4, 6)).shape == (4, 6)


def test_mlp_residual_adds_each_block_input():
    model = nets.mlp(2, 1, depth=3, width=5, activation="relu", residual=True, seed=2)
    x = torch.randn(7, 2)
    h = model.blocks[0](x)
    for block in model.blocks[1:]:
        h = h + block(h)
    torch.testing.assert_close(model(x), model.head(h))
    with pytest.raises(ValueError, match="residual"):
        model.as_sequential()


def test_mlp_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = nets.mlp(4, 3, depth=3, width=16, init="he", seed=7)
    b = nets.mlp(4, 3, depth=3, width=16, init="he", seed=7)
    c = nets.mlp(4, 3, depth=3, width=16, init="he", seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(a.head.weight, c.head.weight)
    gen_model = nets.mlp(4, 3, depth=3, width=16, init="he",
                         generator=torch.Generator().manual_seed(7))
    for p, q in zip(a.parameters(), gen_model.parameters(), strict=True):
        assert torch.equal(p, q)
    kept = nets.mlp(4, 3, depth=3, width=16, init=None, seed=7)  # nn.Linear's own draws
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        first = nn.Linear(4, 16)
    assert torch.equal(kept.linears[0].weight, first.weight)


def test_mlp_keep_records_activations_and_their_gradients():
    model = nets.mlp(3, 1, depth=3, width=4, activation="tanh", batch_norm="before",
                     dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    model(x, keep=True).sum().backward()
    assert len(model.activations) == len(model.preactivations) == 3
    for a, z in zip(model.activations, model.preactivations, strict=True):
        torch.testing.assert_close(a.detach(), torch.tanh(z))
        assert a.grad is not None and a.grad.shape == a.shape


def test_mlp_rejects_bad_arguments_with_a_message():
    with pytest.raises(ValueError, match="depth, width"):
        nets.mlp(3, 1, depth=0, width=4)
    with pytest.raises(ValueError, match="unknown init"):
        nets.mlp(3, 1, depth=1, width=4, init="kaiming")
    with pytest.raises(ValueError, match="batch_norm must be"):
        nets.mlp(3, 1, depth=1, width=4, batch_norm="middle")
    with pytest.raises(ValueError, match="unknown activation"):
        nets.mlp(3, 1, depth=1, width=4, activation="swish")


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with nets.single_thread():
        assert torch.get_num_threads() == 1
        with nets.single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_minibatch_loss_draws_like_a_hand_written_loop():
    from course_utils.nets import minibatch_loss

    x, y = torch.randn(50, 3), torch.randint(0, 2, (50,))
    model = nets.mlp(3, 2, depth=1, width=4, seed=0)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(3):
        idx = torch.randint(0, len(x), (8,), generator=g1)
        expected = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        got = minibatch_loss(model, x, y, torch.nn.functional.cross_entropy, 8, g2)
        assert torch.equal(got, expected)
