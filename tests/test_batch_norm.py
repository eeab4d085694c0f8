"""Reference implementations of notebooks/03_batch_norm against torch (values and gradients)."""

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import batch_norm as bn


def _x(n=16, d=5, seed=0, scale=3.0, shift=2.0):
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def test_fit_standardizer_matches_population_std_and_guards_constants():
    X = _x()
    X[:, 2] = 0.1  # np.std of this column is about 1e-17, not 0
    X[:, 3] = 5.0
    mean, std = bn.fit_standardizer(X)
    np.testing.assert_allclose(mean, X.mean(axis=0))
    expected = X.std(axis=0)
    expected[[2, 3]] = 1.0
    np.testing.assert_allclose(std, expected)
    Z = bn.standardize(X, mean, std)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[:, [0, 1, 4]].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, [0, 1, 4]].std(axis=0), 1)


@pytest.mark.parametrize("eps", [1e-5, 0.3])
@pytest.mark.parametrize("n", [2, 7, 64])
def test_forward_matches_torch_training_mode(eps, n):
    x = _x(n=n, d=4)
    gamma = np.array([1.0, 2.0, -0.5, 0.1])
    beta = np.array([0.0, -1.0, 3.0, 0.2])
    out, cache = bn.batchnorm_forward(x, gamma, beta, eps=eps)
    # the notebook fixes the cache layout (x, x_hat, mu, var, gamma, eps) so that its tests
    # can build caches for the student's backward pass with this reference
    assert len(cache) == 6
    np.testing.assert_array_equal(cache[0], x)
    np.testing.assert_allclose(cache[2], x.mean(axis=0))
    np.testing.assert_allclose(cache[3], x.var(axis=0))
    assert cache[5] == eps
    np.testing.assert_allclose(cache[1] * np.sqrt(cache[3] + eps) + cache[2], x)
    ref = torch.nn.functional.batch_norm(
        torch.tensor(x), None, None, torch.tensor(gamma), torch.tensor(beta),
        training=True, eps=eps)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [2, 5, 32])
def test_backward_matches_autograd(n):
    rng = np.random.default_rng(n)
    x = _x(n=n, d=3, seed=n)
    gamma = rng.normal(size=3)
    beta = rng.normal(size=3)
    dout = rng.normal(size=(n, 3))
    out, cache = bn.batchnorm_forward(x, gamma, beta, eps=1e-3)
    dx, dgamma, dbeta = bn.batchnorm_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = torch.tensor(beta, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-3)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-10)


def test_numerical_gradient_and_relative_error():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    x0 = x.copy()
    g = bn.numerical_gradient(lambda v: np.sum(v**3), x, h=0.1)
    np.testing.assert_allclose(g, 3 * x0**2 + 0.01, rtol=1e-10)  # centred: error exactly h^2
    np.testing.assert_array_equal(x, x0)
    assert bn.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert bn.relative_error([1.0, 0.0], [0.0, 1.0]) == pytest.approx(2**-0.5)
    assert bn.relative_error([2.0], [1.0]) == pytest.approx(1 / 3)


def test_backward_matches_finite_differences_and_ones_trap():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2))
    gamma, beta = rng.normal(size=2), rng.normal(size=2)
    dout = rng.normal(size=(6, 2))
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    dx, _, _ = bn.batchnorm_backward(dout, cache)
    num = bn.numerical_gradient(lambda v: np.sum(bn.batchnorm_forward(v, gamma, beta)[0] * dout), x)
    assert bn.relative_error(dx, num) < 1e-6
    dx_ones, _, _ = bn.batchnorm_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx_ones, 0, atol=1e-12)


def test_running_stats_and_eval_match_torch_module():
    torch.manual_seed(0)
    ref = nn.BatchNorm1d(3, eps=1e-3, momentum=0.3).double()
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(4):
        x = _x(n=8, d=3, seed=step)
        ref(torch.tensor(x))
        rm, rv = bn.update_running_stats(rm, rv, x, momentum=0.3)
    np.testing.assert_allclose(rm, ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, ref.running_var.numpy(), rtol=1e-12)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        ref.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    ref.eval()
    x = _x(n=5, d=3, seed=9)
    out = bn.batchnorm_eval(x, rm, rv, ref.weight.detach().numpy(), ref.bias.detach().numpy(),
                            eps=1e-3)
    np.testing.assert_allclose(out, ref(torch.tensor(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("eps,momentum", [(1e-5, 0.1), (0.1, 0.5)])
def test_module_matches_torch_train_and_eval(eps, momentum):
    ours = bn.BatchNorm1d(4, eps=eps, momentum=momentum)
    ref = nn.BatchNorm1d(4, eps=eps, momentum=momentum)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(10, 4, generator=g) * 3 + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        w = torch.randn(10, 4, generator=g)
        (ours(xa) * w).sum().backward()
        (ref(xb) * w).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    ours.eval()
    ref.eval()
    x = torch.randn(3, 4, generator=g)
    torch.testing.assert_close(ours(x), ref(x))
    assert sorted(n for n, _ in ours.named_parameters()) == ["bias", "weight"]


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batchnorm_matches_linear_then_bn_in_eval(bias):
    torch.manual_seed(0)
    lin = nn.Linear(5, 3, bias=bias)
    norm = nn.BatchNorm1d(3, eps=1e-2)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        norm.running_var.copy_(torch.tensor([4.0, 0.25, 1.5]))
        norm.weight.copy_(torch.tensor([2.0, -1.0, 0.3]))
        norm.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    norm.eval()
    w0 = lin.weight.detach().clone()
    folded = bn.fold_batchnorm(lin, norm)
    x = torch.randn(7, 5)
    torch.testing.assert_close(folded(x), norm(lin(x)))
    assert isinstance(folded, nn.Linear) and folded is not lin
    torch.testing.assert_close(lin.weight, w0)


def test_experiment_helpers_are_deterministic():
    X, y = bn.make_teacher_data(200, seed=1)
    X2, y2 = bn.make_teacher_data(200, seed=1)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert len(torch.unique(y)) == 3
    model = bn.make_mlp(10, 16, 3, 3, activation="relu", bn="before", seed=0)
    hist = bn.train_classifier(model, (X - X.mean(0)) / X.std(0), y, lr=0.1, steps=20)
    assert hist["loss"].shape == (20,) and hist["grad_norms"].shape == (20, 4)
    ms, ss = bn.batch_stat_spread(np.random.default_rng(0).normal(size=1000), [4, 64])
    assert ms[0] > ms[1] and ss[0] > ss[1]


def test_plots_return_figures():
    from matplotlib.figure import Figure

    figs = [
        bn.plot_loss_curves({"a": np.linspace(1, 0, 30), "b": [1.0, 2.0, np.nan]}),
        bn.plot_layer_grad_norms({"a": [1e-3, 1e-2, 1e-1]}),
        bn.plot_batch_stat_spread([2, 8, 32], np.array([1.0, 0.5, 0.25]), np.ones(3)),
        bn.plot_train_vs_eval_stats(np.ones(5), np.ones(5), np.ones(5), np.ones(5), 1.0, 1.0),
        bn.plot_layer_stats({"a": (np.zeros(3), np.ones(3))}),
    ]
    assert all(isinstance(f, Figure) for f in figs)


def test_bn_depth_sweep_numbers_quoted_in_the_notebook():
    # notebook 03, section 9: "about 3 at 12 hidden layers and about 4.5e4 at 60, about 1.22
    # per added layer; without BN between about 0.2 and 0.4 at every depth"
    depths = [12, 24, 36, 48, 60]
    sweep = bn.bn_depth_sweep(depths)
    with_bn, without_bn = sweep["BN"], sweep["no BN"]
    assert 2.0 < with_bn[0] < 4.0
    assert 2e4 < with_bn[-1] < 1e5
    assert np.all(np.diff(np.log(with_bn)) > 0)  # grows at every step of the sweep
    growth = (with_bn[-1] / with_bn[0]) ** (1 / 48)
    assert 1.18 < growth < 1.26
    assert np.all((without_bn > 0.15) & (without_bn < 0.5))


def test_bn_depth_sweep_is_the_first_over_last_gradient_ratio():
    from course_utils.nets import mlp

    ratio = bn.bn_depth_sweep([5], seeds=[3])["BN"][0]
    net = mlp(10, 3, depth=5, width=64, activation="relu", init="he", batch_norm="before", seed=3)
    g = torch.Generator().manual_seed(10_003)
    X = torch.randn(64, 10, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    nn.functional.cross_entropy(net(X), y).backward()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    expected = (linears[0].weight.grad.norm() / linears[-1].weight.grad.norm()).item()
    assert ratio == pytest.approx(expected, rel=1e-5)


def test_plot_depth_sweep_returns_a_figure():
    from matplotlib.figure import Figure

    fig = bn.plot_depth_sweep([12, 24], {"BN": [3.0, 40.0], "no BN": [0.2, 0.3]})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3


def _torch_graph_grads(x, gamma, beta, dout, eps):
    """Gradients at every node of the batch-norm graph, by torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = torch.tensor(beta, requires_grad=True)
    mu = xt.mean(0)
    mu.retain_grad()
    var = ((xt - mu) ** 2).mean(0)
    var.retain_grad()
    x_hat = (xt - mu) / torch.sqrt(var + eps)
    x_hat.retain_grad()
    (gt * x_hat + bt).backward(torch.tensor(dout))
    return {"dbeta": bt.grad, "dgamma": gt.grad, "dx_hat": x_hat.grad, "dvar": var.grad,
            "dmu": mu.grad, "dx": xt.grad}


@pytest.mark.parametrize("n,eps", [(2, 1e-5), (9, 1e-5), (32, 0.1)])
def test_staged_backward_matches_torch_at_every_node(n, eps):
    rng = np.random.default_rng(n)
    x = rng.normal(1.0, 3.0, size=(n, 4))
    gamma, beta, dout = rng.normal(size=4), rng.normal(size=4), rng.normal(size=(n, 4))
    _, cache = bn.batchnorm_forward(x, gamma, beta, eps=eps)
    got = bn.batchnorm_backward_staged(dout, cache)
    want = _torch_graph_grads(x, gamma, beta, dout, eps)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key].numpy(), rtol=1e-6, atol=1e-9, err_msg=key)
    dx, dgamma, dbeta = bn.batchnorm_backward(dout, cache)  # the compact form agrees
    np.testing.assert_allclose(got["dx"], dx, rtol=1e-9, atol=1e-12)


def test_init_scale_sweep_numbers_quoted_in_the_notebook():
    # notebook 03, section 9, "Initialization scale": without BN only He's own scale (factor 1)
    # learns in 40 steps (chance, loss ln 10, at 0.3 and below; inf/NaN at 3 and above); with
    # BN every factor from 0.01 to 10 learns, so its accuracy spread across scales is much
    # narrower, but it still falls off towards both ends.
    scales = [0.01, 0.1, 0.3, 1.0, 3.0, 10.0]
    sweep = bn.init_scale_sweep(scales, seeds=range(3))
    acc, loss = sweep["accuracy"], sweep["loss"]
    assert acc["BN"].shape == acc["no BN"].shape == (6, 3)
    plain, with_bn = acc["no BN"].mean(axis=1), acc["BN"].mean(axis=1)
    assert plain[3] > 0.85 and np.all(acc["no BN"][[0, 1, 2, 4, 5]] < 0.15)
    np.testing.assert_allclose(loss["no BN"][:3], np.log(10), atol=0.02)
    assert np.isnan(loss["no BN"][4:]).all() and np.isfinite(loss["no BN"][:4]).all()
    assert np.isfinite(loss["BN"]).all()
    assert acc["BN"].min() > 0.6 and with_bn.argmax() == 3
    assert with_bn[0] < with_bn[3] - 0.1 and with_bn[-1] < with_bn[3] - 0.1
    # the numbers the notebook's prose quotes
    np.testing.assert_allclose([plain[3], with_bn[3], with_bn[-1]], [0.91, 0.935, 0.70],
                               atol=0.01)
    assert 0.9 < loss["BN"][-1].mean() < 1.1 and 0.15 < loss["BN"][3].mean() < 0.2
    spread_bn, spread_plain = np.ptp(with_bn), np.ptp(plain)
    assert spread_plain > 0.75 and spread_bn < 0.3 and spread_bn < spread_plain / 2.5


def test_init_scale_sweep_is_the_run_it_describes():
    # one cell of the sweep is train_classifier on nets.mlp(init="he", scale=...) with digits
    from course_utils.datasets import load_digits_split
    from course_utils.nets import mlp

    sweep = bn.init_scale_sweep([0.5], seeds=[4], depth=2, width=16, steps=15)
    d = load_digits_split()
    net = mlp(64, 10, depth=2, width=16, activation="relu", init="he", scale=0.5,
              batch_norm="before", seed=4).as_sequential()
    hist = bn.train_classifier(net, d.x_train, d.y_train, lr=0.3, steps=15, seed=4,
                               X_val=d.x_test, y_val=d.y_test)
    assert sweep["accuracy"]["BN"][0, 0] == pytest.approx(hist["val_acc"])
    assert sweep["loss"]["BN"][0, 0] == pytest.approx(hist["loss"][-10:].mean())


def test_plot_init_scale_sweep_marks_diverged_runs():
    from matplotlib.figure import Figure

    sweep = {"accuracy": {"BN": np.full((3, 2), 0.9), "no BN": np.full((3, 2), 0.1)},
             "loss": {"BN": np.full((3, 2), 0.3), "no BN": np.array([[2.3, 2.3], [0.2, np.nan],
                                                                   [np.nan, np.nan]])}}
    fig = bn.plot_init_scale_sweep([0.1, 1.0, 10.0], sweep, chance=0.1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    crosses = [ln for ln in fig.axes[1].lines if ln.get_marker() == "x"]
    assert len(crosses) == 1 and len(crosses[0].get_xdata()) == 2
