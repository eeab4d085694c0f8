"""Reference implementations of notebooks/06_architectures against torch (values and
gradients), the statistical bounds its hidden tests use, its visualiser (headless), and the
grader on the solution, the released stub and the plausible wrong answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import architectures as A


def _x(shape, seed=0, loc=1.5, scale=2.0):
    return np.random.default_rng(seed).normal(loc, scale, size=shape)


# -- layer norm ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (5, 4), (3, 6, 5), (2, 3, 4, 2)])
@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_layer_norm_forward_matches_torch(shape, eps):
    x = _x(shape)
    d = shape[-1]
    gamma, beta = _x((d,), seed=1), _x((d,), seed=2)
    out, cache = A.layer_norm_forward(x, gamma, beta, eps=eps)
    expected = F.layer_norm(torch.tensor(x), (d,), torch.tensor(gamma), torch.tensor(beta),
                            eps=eps).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    x_c, x_hat, mu, var, gamma_c, eps_c = cache  # the layout the notebook fixes
    np.testing.assert_array_equal(x_c, x)
    assert mu.shape == var.shape == shape[:-1] + (1,)
    np.testing.assert_allclose(var, x.var(axis=-1, keepdims=True))  # biased
    np.testing.assert_allclose(x_hat * gamma + beta, out)
    assert eps_c == eps and gamma_c is not None


def test_layer_norm_forward_float32_and_bad_shapes():
    x = _x((4, 3)).astype(np.float32)
    out, _ = A.layer_norm_forward(x, np.ones(3), np.zeros(3))
    assert out.dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        A.layer_norm_forward(x, np.ones(4), np.zeros(4))


@pytest.mark.parametrize("shape", [(6,), (5, 4), (3, 6, 5), (2, 2, 3, 4)])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layer_norm_backward_matches_autograd(shape, eps):
    x = _x(shape, seed=3)
    d = shape[-1]
    gamma, beta = _x((d,), seed=4), _x((d,), seed=5)
    dout = _x(shape, seed=6, loc=0.3)
    _, cache = A.layer_norm_forward(x, gamma, beta, eps=eps)
    dx, dgamma, dbeta = A.layer_norm_backward(dout, cache)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.layer_norm(xt, (d,), gt, bt, eps=eps).backward(torch.tensor(dout))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-8, atol=1e-10)
    assert dgamma.shape == dbeta.shape == (d,)


# -- RMS norm --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (4, 6), (2, 3, 7)])
@pytest.mark.parametrize("eps", [1e-6, 1e-2, 0.7])
def test_rms_norm_matches_torch(shape, eps):
    x = _x(shape, seed=7)
    w = _x(shape[-1:], seed=8)
    expected = F.rms_norm(torch.tensor(x), shape[-1:], torch.tensor(w), eps=eps).numpy()
    np.testing.assert_allclose(A.rms_norm(x, w, eps=eps), expected, rtol=1e-10)


def test_rms_norm_gradient_matches_torch():
    x = _x((3, 5), seed=9)
    w = _x((5,), seed=10)
    xt = torch.tensor(x, requires_grad=True)
    F.rms_norm(xt, (5,), torch.tensor(w), eps=1e-6).sum().backward()
    num = np.zeros_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):  # centred differences of the NumPy reference
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = (A.rms_norm(xp, w).sum() - A.rms_norm(xm, w).sum()) / (2 * h)
    np.testing.assert_allclose(num, xt.grad.numpy(), rtol=1e-6, atol=1e-8)


def test_rms_norm_keeps_the_mean_and_differs_from_layer_norm():
    x = np.array([[1.0, 2.0, 3.0]])
    out = A.rms_norm(x, np.ones(3), eps=0.0)
    np.testing.assert_allclose(out, x / np.sqrt(14 / 3))
    assert out.mean() > 0.5  # RMSNorm does not centre


# -- residual MLP -----------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [None, "layer", "batch"])
def test_zero_init_last_is_identity_and_parameter_count(norm):
    torch.manual_seed(0)
    model = A.ResidualMLP(16, 5, branch_scale=0.3, zero_init_last=True, norm=norm)
    x = torch.randn(8, 16) * 3 + 1
    assert torch.equal(model(x), x)
    extra = 0 if norm is None else 2 * 16
    assert sum(p.numel() for p in model.parameters()) == 5 * (2 * (16 * 16 + 16) + extra)
    loss = model(x).pow(2).sum()
    loss.backward()
    last = model.blocks[-1].fc2
    assert last.weight.grad.abs().sum() > 0  # zero-initialised, yet it learns
    with pytest.raises(ValueError, match="norm"):
        A.ResidualMLP(4, 2, norm="group")


def test_residual_block_formula():
    torch.manual_seed(1)
    model = A.ResidualMLP(6, 1, branch_scale=0.4, norm="layer")
    b = model.blocks[0]
    x = torch.randn(3, 6)
    expected = x + 0.4 * b.fc2(torch.relu(b.fc1(F.layer_norm(x, (6,)))))
    torch.testing.assert_close(model(x), expected)


# (width, depth, branch_scale, norm, log-sd measured over 200 seeds) for the notebook's checks
STD_CASES = [(128, 4, 1.0, None), (128, 16, 0.25, None), (128, 8, 1.0, "layer"),
             (128, 12, 0.5, "batch")]


def _std_theory(depth, branch_scale, norm):
    # the input has second moment 1, so both formulas agree: (1 + s^2)^L without a norm,
    # 1 + L s^2 with a pre-branch norm
    if norm is None:
        return A.residual_std_theory(depth, branch_scale)
    return math.sqrt(1 + depth * branch_scale**2)


@pytest.mark.parametrize("width, depth, s, norm", STD_CASES)
def test_output_std_at_init_within_the_notebooks_bounds_for_many_seeds(width, depth, s, norm):
    """The notebook checks std(out) / std(x) within theory * exp(+-6 sd) for one model; the
    measured log-sd is below the sd the bounds assume."""
    x = torch.randn(256, width, generator=torch.Generator().manual_seed(7))
    theory = _std_theory(depth, s, norm)
    logs = []
    for seed in range(40):
        torch.manual_seed(1000 + seed)
        with torch.no_grad():
            out = A.ResidualMLP(width, depth, branch_scale=s, norm=norm)(x)
        logs.append(math.log(float(out.pow(2).mean().sqrt() / x.pow(2).mean().sqrt())))
    logs = np.array(logs)
    assert abs(logs.mean() - math.log(theory)) < 0.03
    sd_assumed = {None: 0.06 if depth == 4 else 0.025, "layer": 0.035, "batch": 0.02}[norm]
    assert logs.std() < sd_assumed
    assert np.all(np.abs(logs - math.log(theory)) < 6 * sd_assumed)


def test_stack_kinds_and_seeding_leave_global_rng_alone():
    state = torch.random.get_rng_state()
    a = A.Stack(8, 3, "plain", norm="batch", seed=3)
    b = A.Stack(8, 3, "plain", norm="batch", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = torch.randn(4, 8)
    assert torch.equal(A.Stack(8, 4, "rezero")(x), x)  # alpha = 0: identity at init
    with pytest.raises(ValueError, match="kind"):
        A.Stack(8, 2, "dense")


def test_block_grad_norms_plain_bn_grows_towards_the_input():
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(0))
    plain = A.block_grad_norms(A.Stack(32, 20, "plain", norm="batch"), x)
    res = A.block_grad_norms(A.Stack(32, 20, "residual", norm="batch"), x)
    assert plain.shape == (21,)
    assert plain[0] > 10 * plain[-1]
    assert plain[0] / plain[-1] > 3 * res[0] / res[-1]


# -- RNN Jacobians ----------------------------------------------------------------------------

def _rnn_case(T=7, n=5, n_in=3, radius=1.2, seed=0):
    rng = np.random.default_rng(seed)
    W_hh = A.recurrent_matrix(n, radius, seed)
    W_xh = rng.normal(size=(n, n_in))
    b = rng.normal(size=n) * 0.1
    xs = rng.normal(size=(T, n_in))
    h0 = rng.normal(size=n) * 0.5
    return W_hh, W_xh, b, xs, h0


@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("radius", [0.5, 1.5])
def test_rnn_hidden_grad_norms_match_autograd_jacobian(T, radius):
    W_hh, W_xh, b, xs, h0 = _rnn_case(T=T, radius=radius)
    got = A.rnn_hidden_grad_norms(W_hh, W_xh, b, xs, h0)
    hs = A.rnn_forward(W_hh, W_xh, b, xs, h0)
    Wt, Xt, bt, xt = (torch.tensor(a) for a in (W_hh, W_xh, b, xs))
    expected = []
    for t in range(T):
        def tail(h, t=t):
            for s in range(t, T):
                h = torch.tanh(Wt @ h + Xt @ xt[s] + bt)
            return h
        J = torch.autograd.functional.jacobian(tail, torch.tensor(hs[t]))
        expected.append(float(torch.linalg.matrix_norm(J, ord=2)))
    assert got.shape == (T,)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_recurrent_matrix_has_the_requested_spectrum():
    W = A.recurrent_matrix(6, 0.8, seed=2)
    np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), 0.8)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(W)), 0.8)


# -- LSTM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [None, 1, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_matches_torch_values_and_gradients(batch, bias):
    torch.manual_seed(0)
    cell = nn.LSTMCell(3, 5, bias=bias, dtype=torch.float64)
    shape = () if batch is None else (batch,)
    x = torch.randn(*shape, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(*shape, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(*shape, 5, dtype=torch.float64, requires_grad=True)
    h_ref, c_ref = cell(x, (h, c))
    g = torch.autograd.grad((h_ref * 1.3 + c_ref * 0.7).sum(), [x, h, c, *cell.parameters()])
    h_new, c_new = A.lstm_cell(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                               cell.bias_hh)
    torch.testing.assert_close(h_new, h_ref)
    torch.testing.assert_close(c_new, c_ref)
    g2 = torch.autograd.grad((h_new * 1.3 + c_new * 0.7).sum(), [x, h, c, *cell.parameters()])
    for a, b in zip(g, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_adding_problem_and_forget_bias():
    x, y = A.adding_problem(50, 10, seed=1)
    assert x.shape == (50, 10, 2) and y.shape == (50, 1)
    assert torch.equal(x[..., 1].sum(dim=1), torch.full((50,), 2.0))
    assert torch.equal(x[:, :5, 1].sum(dim=1), torch.ones(50))
    torch.testing.assert_close(y[:, 0], (x[..., 0] * x[..., 1]).sum(dim=1))
    with pytest.raises(ValueError):
        A.adding_problem(3, 1)
    m = A.SequenceRegressor("lstm", hidden=4, forget_bias=2.0)
    torch.testing.assert_close(m.core.bias_ih_l0[4:8] + m.core.bias_hh_l0[4:8],
                               torch.full((4,), 2.0))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_step_by_step_states_match_torch_modules(kind):
    m = A.SequenceRegressor(kind, hidden=6, seed=0)
    x, y = A.adding_problem(8, 12, seed=0)
    g = A.loss_grad_through_time(m, x, y)
    assert g.shape == (12,) and np.all(g > 0)
    # the last step's gradient is the read-out's: d loss / d h_T = head.weight^T d loss / d out
    out, states = m(x, return_states=True)
    h_T = states[:, -1].detach().requires_grad_(True)
    F.mse_loss(m.head(h_T), y).backward()
    np.testing.assert_allclose(g[-1], float(h_T.grad.norm(dim=1).mean()), rtol=1e-5)
    assert all(p.grad is None or not p.grad.abs().sum() for p in m.core.parameters())


def test_clipping_keeps_a_diverging_rnn_finite():
    x, y = A.adding_problem(512, 20, seed=0)
    runs = {}
    for clip in (None, 1.0):
        m = A.SequenceRegressor("rnn", hidden=32, seed=0, recurrent_radius=1.5)
        runs[clip] = A.train_sequence_model(m, x, y, steps=80, lr=0.1, clip=clip,
                                            optimizer="sgd")
    assert np.isnan(runs[None]["loss"]).any()
    assert np.isfinite(runs[1.0]["loss"]).all()


# -- visualiser (headless: Agg only, no browser) ----------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_rnn_gradient_data_matches_the_reference_and_the_linear_regime():
    from course_utils.visualisers import rnn_gradient_data

    d = rnn_gradient_data(radius=0.8, input_scale=1e-4, T=20, hidden=16, seed=3)
    assert d["distance"].tolist() == list(range(1, 21))
    np.testing.assert_allclose(d["norms"], 0.8 ** d["distance"], rtol=1e-4)  # tanh ~ linear
    np.testing.assert_allclose(d["linear"], 0.8 ** d["distance"])
    assert d["longest"] == d["norms"][-1]
    assert np.all(d["saturation"] < 1e-6)
    big = rnn_gradient_data(radius=1.5, input_scale=5.0, T=40)
    assert big["saturation"].mean() > 0.5  # large inputs saturate the units
    assert big["norms"][-1] < 1.5 ** 40 / 1e6  # saturation caps the growth
    for radius in (0.3, 1.0, 1.5, 2.0):  # the visualiser's claim: inputs of size 10 (its top)
        assert rnn_gradient_data(radius=radius, input_scale=10.0)["longest"] < 1e-10
    for radius in (0.5, 1.5):
        ref = rnn_gradient_data(radius=radius)["references"]
        assert set(ref) == {0.5, 0.9, 1.1, 1.5}
    with pytest.raises(ValueError, match="radius"):
        rnn_gradient_data(radius=0.0)


def test_plot_rnn_gradients_figure_and_redraw_into_a_used_figure():
    from matplotlib.figure import Figure

    from course_utils.plotting import figure_to_png
    from course_utils.visualisers import plot_rnn_gradients, rnn_gradient_data

    second = rnn_gradient_data(radius=1.3, input_scale=0.5, T=30)
    fig = plot_rnn_gradients(rnn_gradient_data())
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_yscale() == "log"
    fresh = figure_to_png(plot_rnn_gradients(second))
    figure_to_png(fig)
    again = plot_rnn_gradients(second, fig=fig)
    assert again is fig and figure_to_png(again) == fresh


@pytest.mark.parametrize("key, value", [("radius", 1.4), ("input_scale", 1.0), ("T", 20)])
def test_rnn_gradient_explorer_control_redraws_once(key, value):
    from course_utils.visualisers import RNNGradientExplorer, rnn_gradient_explorer

    vis = rnn_gradient_explorer()
    assert isinstance(vis, RNNGradientExplorer)
    controls = vis.controls
    assert vis.n_draws == 1 and bytes(vis.image.value).startswith(PNG_MAGIC)
    before = bytes(vis.image.value)
    controls[key].value = value
    assert vis.n_draws == 2 and vis.params[key] == value
    assert bytes(vis.image.value) != before and vis.status.value == ""
    for name, control in controls.items():
        assert f"tug-control-{name.replace('_', '-')}" in control._dom_classes
        assert control.description
    assert "tug-rnn-gradient-explorer" in vis.widget._dom_classes


# -- the grader on plausible wrong answers ------------------------------------------------------
# Each wrong answer is the solution's code with one mistake. Each variant breaks several
# exercises at once (one mistake per exercise, each exercise's tests call only its own
# function), so two grader runs show that every mistake loses points on its own exercise and
# that every exercise left intact keeps full marks.

WRONG = {
    "batch axis, dgamma over axis 0, mean in RMSNorm, no tanh', gates f,i,g,o, bias not zeroed": {
        "layer_norm_forward": [("x.mean(axis=-1, keepdims=True)", "x.mean(axis=0, keepdims=True)"),
                               ("x.var(axis=-1, keepdims=True)", "x.var(axis=0, keepdims=True)")],
        "layer_norm_backward": [("(dout * x_hat).reshape(-1, d).sum(axis=0)",
                                 "(dout * x_hat).sum(axis=0)"),
                                ("dout.reshape(-1, d).sum(axis=0)", "dout.sum(axis=0)")],
        "rms_norm": [("    return x / np.sqrt(",
                      "    x = x - x.mean(axis=-1, keepdims=True)\n    return x / np.sqrt(")],
        "rnn_hidden_grad_norms": [("J @ ((1.0 - hs[t + 1] ** 2)[:, None] * W_hh)", "J @ W_hh")],
        "lstm_cell": [("i, f, g, o = gates.chunk(4, dim=-1)",
                       "f, i, g, o = gates.chunk(4, dim=-1)")],
        "ResidualMLP": [("                    last.weight.normal_(0.0, math.sqrt(1.0 / width))\n"
                         "                last.bias.zero_()",
                         "                    last.weight.normal_(0.0, math.sqrt(1.0 / width))\n"
                         "                    last.bias.zero_()")],
    },
    "unbiased variance, eps outside the root, norms in the wrong time order": {
        "layer_norm_forward": [("x.var(axis=-1, keepdims=True)",
                                "x.var(axis=-1, keepdims=True, ddof=1)")],
        "rms_norm": [("np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)",
                      "(np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + eps)")],
        "rnn_hidden_grad_norms": [("return norms", "return norms[::-1]")],
    },
    "delegation to the reference or to torch": {
        "rms_norm": [("x = np.asarray(x, dtype=float)\n",
                      "from course_utils.architectures import rms_norm as ref\n"
                      "    return ref(x, weight, eps)\n")],
        "layer_norm_forward": [("out = gamma * x_hat + beta",
                                "import torch\n    out = torch.nn.functional.layer_norm(\n"
                                "        torch.tensor(x), x.shape[-1:], torch.tensor(gamma),\n"
                                "        torch.tensor(beta), eps=eps).numpy()")],
        "lstm_cell": [("gates = x @ weight_ih.T + h @ weight_hh.T",
                       "return torch._VF.lstm_cell(x, (h, c), weight_ih, weight_hh,\n"
                       "                               bias_ih, bias_hh)\n"
                       "    gates = x @ weight_ih.T + h @ weight_hh.T")],
    },
}
DELEGATION = "delegation to the reference or to torch"
EXERCISES = {"layer_norm_forward": 3, "layer_norm_backward": 3, "rms_norm": 3,
             "rnn_hidden_grad_norms": 3, "lstm_cell": 3, "ResidualMLP": 3}


def _solution_sources():
    import json

    from conftest import ROOT

    nb = json.loads((ROOT / "solutions/06_architectures/06_architectures.ipynb").read_text())
    out = {}
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in EXERCISES:
            src = cell["source"]
            out[gid] = "".join(src) if isinstance(src, list) else src
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(WRONG), ids=["variant1", "variant2", "delegation"])
def test_wrong_answers_lose_points_on_their_own_exercise_only(variant, tmp_path):
    from conftest import ROOT, check_json, copy_with

    sources = _solution_sources()
    replacements = {}
    for gid, edits in WRONG[variant].items():
        src = sources[gid]
        for old, new in edits:
            assert old in src, (gid, old)
            src = src.replace(old, new)
        # drop the marker lines (indented inside a def) so the grader runs the edited code
        src = "\n".join(line for line in src.split("\n")
                        if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
        replacements[gid] = src
    nb = copy_with(ROOT / "solutions/06_architectures/06_architectures.ipynb",
                   tmp_path / "06_architectures" / "06_architectures.ipynb", replacements)
    rep = check_json(nb)
    assert rep["status"] == "graded", rep
    not_run = [(t["grade_id"], t["message"]) for t in rep["tests"]
               if "NameError" in (t.get("message") or "")]
    assert not not_run, not_run  # the edited answers must run and lose points on their merits
    per_exercise = {}
    for t in rep["tests"]:
        key = t["exercise"] or t["grade_id"]
        per_exercise[key] = per_exercise.get(key, 0.0) + t["score"]
    for gid, full in EXERCISES.items():
        if gid in WRONG[variant]:
            assert per_exercise[gid] < full, (gid, per_exercise)
            if variant == DELEGATION:
                assert per_exercise[gid] == 0, (gid, per_exercise, rep["flags"])
        else:
            assert per_exercise[gid] == full, (gid, per_exercise)
    mcqs = {k: v for k, v in per_exercise.items() if k.startswith(("predict_", "test_predict_"))}
    assert mcqs and all(v == 1 for v in mcqs.values()), mcqs
    assert rep["score"] == rep["max_score"] - sum(
        full - per_exercise[gid] for gid, full in EXERCISES.items())
