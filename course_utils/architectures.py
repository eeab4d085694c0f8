"""Residual connections, normalization layers and gating: reference implementations and the
experiments of the notebook.

Taught in ``notebooks/06_architectures``. The NumPy references (:func:`layer_norm_forward`,
:func:`layer_norm_backward`, :func:`rms_norm`, :func:`rnn_hidden_grad_norms`) and the torch ones
(:class:`ResidualMLP`, :func:`lstm_cell`) match ``torch.nn.functional.layer_norm``,
``torch.nn.functional.rms_norm``, ``torch.nn.LSTMCell`` and ``torch.autograd`` (see
``tests/test_architectures.py``). The experiment helpers build their own generators and never
touch the global random state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_utils.nets import init_linear_, minibatch_loss
from course_utils.plotting import LINESTYLES, MARKERS, color, set_log_axis, style_axes, subplots

NORMS = (None, "layer", "batch")


# --------------------------------------------------------------------------- normalization
def layer_norm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization over the last dimension of ``x`` (any shape ``(..., D)``).

    Returns ``(out, cache)`` with ``cache = (x, x_hat, mu, var, gamma, eps)``; ``mu`` and the
    biased variance ``var`` keep the last axis (shape ``(..., 1)``). Taught in
    ``notebooks/06_architectures``.
    """
    x = np.asarray(x, dtype=float)
    gamma = np.asarray(gamma, dtype=float)
    beta = np.asarray(beta, dtype=float)
    if x.ndim == 0 or gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]:
        raise ValueError(f"gamma and beta must have shape (D,) = {x.shape[-1:]} to match the "
                         f"last axis of x; got {gamma.shape} and {beta.shape}")
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x, x_hat, mu, var, gamma, eps)


def layer_norm_backward(dout, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of layer normalization; ``dgamma`` and ``dbeta`` are
    summed over every leading dimension (shape ``(D,)``). Taught in ``notebooks/06_architectures``.
    """
    x, x_hat, mu, var, gamma, eps = cache
    dout = np.asarray(dout, dtype=float)
    d = x.shape[-1]
    dx_hat = dout * gamma
    inv_std = 1.0 / np.sqrt(var + eps)
    dx = inv_std * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                    - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    dgamma = (dout * x_hat).reshape(-1, d).sum(axis=0)
    dbeta = dout.reshape(-1, d).sum(axis=0)
    return dx, dgamma, dbeta


def rms_norm(x, weight, eps=1e-6):
    """RMS normalization over the last dimension: ``x / sqrt(mean(x**2) + eps) * weight``, as
    ``torch.nn.functional.rms_norm`` computes it. Taught in ``notebooks/06_architectures``."""
    x = np.asarray(x, dtype=float)
    rms = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x / rms * np.asarray(weight, dtype=float)


# --------------------------------------------------------------------------- residual MLPs
def _norm_layer(norm, width):
    if norm is None:
        return nn.Identity()
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "batch":
        return nn.BatchNorm1d(width)
    raise ValueError(f"norm must be None, 'layer' or 'batch', not {norm!r}")


class ResidualBlock(nn.Module):
    """``x + branch_scale * fc2(relu(fc1(norm(x))))`` (pre-norm), the block of
    :class:`ResidualMLP`; ``skip=False`` drops the ``x +`` (a plain block, for comparisons) and
    ``post_norm=True`` applies the norm after the addition instead (post-LN).
    Taught in ``notebooks/06_architectures``."""

    def __init__(self, width, branch_scale=1.0, zero_init_last=False, norm=None, skip=True,
                 post_norm=False, rezero=False):
        super().__init__()
        self.norm = _norm_layer(None if post_norm else norm, width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.post = _norm_layer(norm if post_norm else None, width)
        self.branch_scale = branch_scale
        self.skip = skip
        self.alpha = nn.Parameter(torch.zeros(())) if rezero else None
        init_linear_(self.fc1, "he")  # N(0, 2 / width), bias 0: a ReLU follows
        init_linear_(self.fc2, "zeros" if zero_init_last else "lecun")  # N(0, 1 / width)

    def forward(self, x):
        branch = self.fc2(torch.relu(self.fc1(self.norm(x))))
        branch = self.branch_scale * branch
        if self.alpha is not None:
            branch = self.alpha * branch
        out = x + branch if self.skip else branch
        return self.post(out)


class ResidualMLP(nn.Module):
    """``depth`` residual blocks of width ``width``: ``x + branch_scale *
    Linear(ReLU(Linear(norm(x))))`` with ``norm`` None, ``"layer"`` or ``"batch"`` (pre-branch).

    First Linear: weights N(0, 2/width) (He), second: N(0, 1/width) (LeCun), biases 0, so a
    branch keeps the mean square of its input and each block multiplies it by
    ``1 + branch_scale**2`` at initialisation. ``zero_init_last=True`` sets the second Linear's
    weight and bias to 0: every block starts as the identity. Taught in
    ``notebooks/06_architectures``.
    """

    def __init__(self, width, depth, branch_scale=1.0, zero_init_last=False, norm=None):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be None, 'layer' or 'batch', not {norm!r}")
        self.blocks = nn.ModuleList(
            ResidualBlock(width, branch_scale, zero_init_last, norm) for _ in range(depth))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class Stack(nn.Module):
    """A stack of :class:`ResidualBlock` s for the experiments: ``kind`` is ``"residual"``
    (pre-norm), ``"plain"`` (no skip), ``"post"`` (post-norm residual) or ``"rezero"`` (a learned
    scalar, initialised to 0, on every branch). Taught in ``notebooks/06_architectures``."""

    KINDS = ("residual", "plain", "post", "rezero")

    def __init__(self, width, depth, kind="residual", norm=None, branch_scale=1.0, seed=0):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, not {kind!r}")
        with _seeded(seed):
            self.blocks = nn.ModuleList(
                ResidualBlock(width, branch_scale, norm=norm, skip=kind != "plain",
                              post_norm=kind == "post", rezero=kind == "rezero")
                for _ in range(depth))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _seeded:
    """Run a block under ``torch.manual_seed(seed)`` and restore the global generator after."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        torch.random.set_rng_state(self.state)
        return False


def residual_std_theory(depth, branch_scale=1.0, input_std=1.0):
    """Std of a :class:`ResidualMLP` 's output at initialisation (no norm), predicted from
    ``E[out**2] = E[x**2] * (1 + branch_scale**2) ** depth``. Taught in
    ``notebooks/06_architectures``."""
    return input_std * (1.0 + branch_scale**2) ** (depth / 2)


def block_grad_norms(model, x, seed=0):
    """L2 norm of the gradient of a fixed random linear read-out of ``model`` 's output with
    respect to the input of every block (index 0: the network input; last: the output), for a
    model with a ``blocks`` list. Returns a NumPy array of length ``len(blocks) + 1``.
    Taught in ``notebooks/06_architectures``."""
    gen = torch.Generator().manual_seed(seed)
    h = x.detach().clone().requires_grad_(True)
    inputs = [h]
    for block in model.blocks:
        h = block(h)
        h.retain_grad()
        inputs.append(h)
    probe = torch.randn(h.shape, generator=gen, dtype=h.dtype) / math.sqrt(h.numel())
    (h * probe).sum().backward()
    return np.array([float(t.grad.norm()) for t in inputs])


def train_regression(model, X, y, steps=200, lr=0.01, batch_size=64, seed=0):
    """Train ``model`` on ``(X, y)`` with Adam and MSE; return the loss at every step (NaN once
    it diverged). Taught in ``notebooks/06_architectures``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = np.full(steps, np.nan)
    model.train()
    for t in range(steps):
        loss = minibatch_loss(model, X, y, nn.functional.mse_loss, batch_size, gen)
        if not torch.isfinite(loss):
            break
        losses[t] = float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def make_regression(n=1024, width=32, seed=0):
    """Inputs of shape (n, width) and targets made by a fixed random smooth function of them.
    Taught in ``notebooks/06_architectures``."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, width, generator=gen)
    W = torch.randn(width, width, generator=gen) / math.sqrt(width)
    y = torch.sin(X @ W) + 0.5 * X
    return X, y


# --------------------------------------------------------------------------- recurrent nets
def rnn_forward(W_hh, W_xh, b, xs, h0):
    """Hidden states ``[h_0, h_1, ..., h_T]`` (array of shape (T + 1, n_hidden)) of
    ``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)``. Taught in ``notebooks/06_architectures``."""
    W_hh, W_xh = np.asarray(W_hh, dtype=float), np.asarray(W_xh, dtype=float)
    xs = np.asarray(xs, dtype=float)
    hs = [np.asarray(h0, dtype=float)]
    for x in xs:
        hs.append(np.tanh(W_hh @ hs[-1] + W_xh @ x + b))
    return np.array(hs)


def rnn_hidden_grad_norms(W_hh, W_xh, b, xs, h0):
    """Spectral norms of ``d h_T / d h_t`` for ``t = 0, ..., T - 1`` (NumPy array of length T)
    for the tanh RNN of :func:`rnn_forward`, as products of the step Jacobians
    ``diag(1 - h_s**2) W_hh``. Taught in ``notebooks/06_architectures``."""
    W_hh = np.asarray(W_hh, dtype=float)
    hs = rnn_forward(W_hh, W_xh, b, xs, h0)
    T = len(hs) - 1
    norms = np.empty(T)
    J = np.eye(W_hh.shape[0])
    for t in range(T - 1, -1, -1):  # d h_T / d h_t = (d h_T / d h_{t+1}) diag(1 - h_{t+1}^2) W_hh
        J = J @ ((1.0 - hs[t + 1] ** 2)[:, None] * W_hh)
        norms[t] = np.linalg.norm(J, 2)
    return norms


def recurrent_matrix(n, spectral_radius, seed=0):
    """``spectral_radius`` times a random orthogonal n x n matrix (every singular value and the
    modulus of every eigenvalue equal ``spectral_radius``). Taught in
    ``notebooks/06_architectures``."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return spectral_radius * q * np.sign(np.diag(r))


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step as ``torch.nn.LSTMCell`` computes it (gates in the order i, f, g, o);
    returns ``(h_new, c_new)``. Biases may be None. Taught in ``notebooks/06_architectures``."""
    gates = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new


def adding_problem(n, T, seed=0):
    """The adding problem (Hochreiter and Schmidhuber, 1997): ``n`` sequences of length ``T``
    with two channels, a value in U(0, 1) and a marker that is 1 at exactly two steps (one in
    each half); the target is the sum of the two marked values. Returns ``(x, y)`` of shapes
    (n, T, 2) and (n, 1). Predicting the mean 1 gives MSE 1/6. Taught in
    ``notebooks/06_architectures``."""
    if T < 2:
        raise ValueError("T must be at least 2 (one marker in each half)")
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, T, generator=gen)
    first = torch.randint(0, T // 2, (n,), generator=gen)
    second = torch.randint(T // 2, T, (n,), generator=gen)
    markers = torch.zeros(n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = (values * markers).sum(dim=1, keepdim=True)
    return x, y


class SequenceRegressor(nn.Module):
    """``nn.RNN`` (tanh) or ``nn.LSTM`` followed by a Linear read-out of the last hidden state.

    ``recurrent_radius`` replaces the RNN's recurrent weights by that multiple of a random
    orthogonal matrix; ``forget_bias`` sets the LSTM's forget-gate bias.
    Taught in ``notebooks/06_architectures``."""

    def __init__(self, kind="rnn", n_in=2, hidden=32, seed=0, recurrent_radius=None,
                 forget_bias=None):
        super().__init__()
        if kind not in ("rnn", "lstm"):
            raise ValueError(f"kind must be 'rnn' or 'lstm', not {kind!r}")
        with _seeded(seed):
            cls = nn.RNN if kind == "rnn" else nn.LSTM
            self.core = cls(n_in, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 1)
        if recurrent_radius is not None:
            if kind != "rnn":
                raise ValueError("recurrent_radius applies to kind='rnn' only")
            with torch.no_grad():
                W = recurrent_matrix(hidden, recurrent_radius, seed)
                self.core.weight_hh_l0.copy_(torch.as_tensor(W, dtype=torch.float32))
        if forget_bias is not None:
            if kind != "lstm":
                raise ValueError("forget_bias applies to kind='lstm' only")
            with torch.no_grad():  # gates i, f, g, o: the forget gate is the second quarter
                self.core.bias_ih_l0[hidden:2 * hidden] = forget_bias
                self.core.bias_hh_l0[hidden:2 * hidden] = 0.0
        self.kind = kind

    def forward(self, x, return_states=False):
        states, _ = self.core(x)
        out = self.head(states[:, -1])
        return (out, states) if return_states else out


def loss_grad_through_time(model, x, y, cell=None):
    """Norm of ``d loss / d h_t`` for every step t (averaged over the batch), with the hidden
    states of a :class:`SequenceRegressor` computed one step at a time (an LSTM's steps by
    ``cell``, default :func:`lstm_cell`, same signature). Returns a NumPy array of length T.
    Taught in ``notebooks/06_architectures``."""
    cell = lstm_cell if cell is None else cell
    core = model.core
    n, T, _ = x.shape
    h = torch.zeros(n, core.hidden_size)
    c = torch.zeros(n, core.hidden_size)
    states = []
    for t in range(T):
        if model.kind == "rnn":
            h = torch.tanh(x[:, t] @ core.weight_ih_l0.T + core.bias_ih_l0
                           + h @ core.weight_hh_l0.T + core.bias_hh_l0)
        else:
            h, c = cell(x[:, t], h, c, core.weight_ih_l0, core.weight_hh_l0,
                        core.bias_ih_l0, core.bias_hh_l0)
        h.retain_grad()
        states.append(h)
    loss = nn.functional.mse_loss(model.head(h), y)
    loss.backward()
    model.zero_grad()
    return np.array([float(s.grad.norm(dim=1).mean()) for s in states])


def train_sequence_model(model, x, y, steps=200, lr=0.01, batch_size=64, clip=None,
                         optimizer="adam", seed=0):
    """Train ``model`` with MSE, Adam or plain SGD, optionally with ``clip_grad_norm_`` at
    ``clip``; returns ``{"loss": per-step loss, "grad_norm": per-step total gradient norm before
    clipping}`` (NaN after a non-finite loss). Taught in ``notebooks/06_architectures``."""
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr))
    losses, norms = np.full(steps, np.nan), np.full(steps, np.nan)
    for t in range(steps):
        loss = minibatch_loss(model, x, y, nn.functional.mse_loss, batch_size, gen)
        if not torch.isfinite(loss):
            break
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
        losses[t], norms[t] = float(loss.detach()), float(norm)
        opt.step()
    return {"loss": losses, "grad_norm": norms}


# --------------------------------------------------------------------------- plots
def plot_lines(series: dict, *, xlabel: str, ylabel: str, title: str = "", log: bool = True,
               x=None, figsize=(6.4, 3.8)):
    """One line per entry of ``series`` (label -> 1-D array), on a log y axis by default;
    ``x`` (shared) defaults to 0, 1, 2, ... Returns the ``Figure``. Taught in
    ``notebooks/06_architectures``."""
    fig, axes = subplots(1, 1, figsize=figsize)
    ax = axes[0, 0]
    for i, (label, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        xs = np.arange(len(values)) if x is None else np.asarray(x)
        ax.plot(xs, values, color=color(i), ls=LINESTYLES[i % len(LINESTYLES)],
                marker=MARKERS[i % len(MARKERS)], markevery=max(1, len(values) // 8), ms=4,
                label=label)
    if log:
        set_log_axis(ax)
    ax.legend(fontsize=8, frameon=False)
    style_axes(ax, xlabel=xlabel, ylabel=ylabel, title=title or None)
    return fig
