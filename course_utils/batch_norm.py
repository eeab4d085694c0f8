"""Batch normalization from scratch, and the experiments around it.

Taught in ``notebooks/03_batch_norm``. The NumPy functions work on inputs of shape ``(N, D)``
(``N`` samples, ``D`` features) and compute every statistic per feature, over axis 0.
:class:`BatchNorm1d` is a ``torch.nn.Module`` that matches ``torch.nn.BatchNorm1d`` for
``(N, C)`` input. The plotting functions are pure: they return a ``Figure`` and touch no global
state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from course_utils.nets import mlp
from course_utils.plotting import PALETTE, color, row_of_axes

# Okabe-Ito palette (colour-blind safe).


# --------------------------------------------------------------------------- input features
def fit_standardizer(X_train):
    """Per-feature mean and standard deviation of the training set ``X_train`` (N, D).

    The standard deviation is the population one (``ddof=0``). A feature whose values are all
    equal gets std 1 instead of 0, so that :func:`standardize` never divides by zero (its
    ``np.std`` can come out as 1e-17 rather than 0 because of rounding, so the test is on the
    values, not on the std). Taught in ``notebooks/03_batch_norm``.
    """
    X = np.asarray(X_train, dtype=float)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    constant = np.ptp(X, axis=0) == 0
    std = np.where(constant, 1.0, std)
    return mean, std


def standardize(X, mean, std):
    """``(X - mean) / std`` with statistics fitted on the training set.

    Taught in ``notebooks/03_batch_norm``.
    """
    return (np.asarray(X, dtype=float) - mean) / std


# --------------------------------------------------------------------------- batch norm, NumPy
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm of ``x`` (N, D): returns ``(out, cache)``.

    ``out = gamma * (x - mu) / sqrt(var + eps) + beta`` with the batch mean ``mu`` and the
    biased batch variance ``var`` (divide by N). ``cache`` is the tuple
    ``(x, x_hat, mu, var, gamma, eps)`` that :func:`batchnorm_backward` expects (the notebook
    fixes this layout so that its tests can grade the backward pass on its own).
    Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    mu = x.mean(axis=0)
    var = x.var(axis=0)  # biased: divide by N
    x_hat = (x - mu) / np.sqrt(var + eps)
    out = gamma * x_hat + beta
    cache = (x, x_hat, mu, var, gamma, eps)
    return out, cache


def batchnorm_backward(dout, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of batch norm given the upstream gradient ``dout``.

    ``cache`` is ``(x, x_hat, mu, var, gamma, eps)`` from :func:`batchnorm_forward`. Uses the
    compact form ``dx = gamma * inv_std / N * (N dout - sum(dout) - x_hat * sum(dout * x_hat))``
    with ``inv_std = 1 / sqrt(var + eps)``, sums over the batch axis. Taught in
    ``notebooks/03_batch_norm``.
    """
    _, x_hat, _, var, gamma, eps = cache
    dout = np.asarray(dout, dtype=float)
    n = dout.shape[0]
    inv_std = 1.0 / np.sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, x, momentum=0.1):
    """New running ``(mean, var)`` after seeing batch ``x``, with PyTorch's convention.

    ``new = (1 - momentum) * old + momentum * batch``; the batch variance is the unbiased one
    (divide by N - 1). Inputs are not modified. Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    batch_mean = x.mean(axis=0)
    batch_var = x.var(axis=0, ddof=1)
    new_mean = (1 - momentum) * np.asarray(running_mean, dtype=float) + momentum * batch_mean
    new_var = (1 - momentum) * np.asarray(running_var, dtype=float) + momentum * batch_var
    return new_mean, new_var


def batchnorm_eval(x, running_mean, running_var, gamma, beta, eps=1e-5):
    """Eval-mode batch norm: normalize with the running statistics, not the batch's.

    Taught in ``notebooks/03_batch_norm``.
    """
    x = np.asarray(x, dtype=float)
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta


# --------------------------------------------------------------------------- gradient checks
def numerical_gradient(f: Callable[[np.ndarray], float], x, h=1e-5):
    """Centred finite differences ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every entry.

    ``x`` is restored after each probe. Taught in ``notebooks/03_batch_norm``.
    """
    x = np.array(x, dtype=float)  # a private copy, so the caller's array is never touched
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a, b):
    """``||a - b|| / (||a|| + ||b||)`` with L2 norms over all entries; 0.0 when both are zero.

    Taught in ``notebooks/03_batch_norm``.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(a - b) / denom)


# --------------------------------------------------------------------------- torch module
class BatchNorm1d(nn.Module):
    """Batch norm for ``(N, C)`` input, equal to ``torch.nn.BatchNorm1d(C, eps, momentum)``.

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers ``running_mean``
    (zeros), ``running_var`` (ones) and ``num_batches_tracked``. In training mode it normalizes
    with the batch mean and biased variance and updates the running statistics with the
    unbiased variance; in eval mode it uses the running statistics. Taught in
    ``notebooks/03_batch_norm``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            n = x.shape[0]
            with torch.no_grad():
                unbiased = var * n / (n - 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight * x_hat + self.bias


def fold_batchnorm(linear: nn.Linear, bn: nn.Module) -> nn.Linear:
    """A new ``nn.Linear`` equal, in eval mode, to ``linear`` followed by ``bn``.

    With ``s = bn.weight / sqrt(bn.running_var + bn.eps)``: ``W' = s[:, None] * W`` and
    ``b' = s * (b - running_mean) + bn.bias`` (``b = 0`` when ``linear`` has no bias).
    Neither input is modified. Taught in ``notebooks/03_batch_norm``.
    """
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = linear.bias if linear.bias is not None else torch.zeros_like(bn.running_mean)
        folded = nn.Linear(linear.in_features, linear.out_features, bias=True)
        folded = folded.to(dtype=linear.weight.dtype)
        folded.weight.copy_(linear.weight * scale[:, None])
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return folded


# --------------------------------------------------------------------------- experiments
def make_teacher_data(n: int, d: int = 10, n_classes: int = 3, seed: int = 0):
    """Synthetic classification data: ``(X, y)`` as float32 / int64 tensors.

    Features have very different scales and offsets (so standardizing matters); labels come
    from a fixed random teacher network. Deterministic for a given ``seed``. Used in
    ``notebooks/03_batch_norm``.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    w1 = torch.randn(d, 32, generator=g) / d**0.5
    w2 = torch.randn(32, n_classes, generator=g) / 32**0.5
    y = torch.tanh(z @ w1 * 2) @ w2
    y = y.argmax(dim=1)
    scales = torch.logspace(-1, 2, d)
    offsets = torch.linspace(-5, 20, d)
    X = z * scales + offsets
    return X, y


def make_mlp(in_features: int, width: int, depth: int, out_features: int,
             activation: str = "relu", bn: str | None = None, seed: int = 0,
             bn_class: type[nn.Module] | None = None) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with PyTorch's default init, seeded with
    ``seed`` (the global RNG is left as it was), as one ``nn.Sequential``.

    ``bn`` is ``None`` (no batch norm), ``"before"`` (Linear, BN, activation) or ``"after"``
    (Linear, activation, BN). ``bn_class`` replaces ``torch.nn.BatchNorm1d`` (for example with
    your own module). Built by :func:`course_utils.nets.mlp`. Used in ``notebooks/03_batch_norm``.
    """
    return mlp(in_features, out_features, depth=depth, width=width, activation=activation,
               init=None, batch_norm=bn, norm=bn_class, seed=seed).as_sequential()


def train_classifier(model: nn.Module, X, y, lr: float, steps: int, batch_size: int = 64,
                     seed: int = 0, X_val=None, y_val=None) -> dict:
    """Plain SGD on cross-entropy; returns a history dict.

    Keys: ``loss`` (per step, NaN once it diverged), ``grad_norms`` (per step, one L2 norm per
    ``nn.Linear`` weight, input side first), ``val_acc`` (final eval-mode accuracy, or None).
    Mini-batches come from a generator seeded with ``seed``. Used in ``notebooks/03_batch_norm``.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    losses, grad_norms = [], []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch_size,), generator=g)
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        grad_norms.append([m.weight.grad.norm().item() for m in linears])
        if not np.isfinite(losses[-1]):
            losses += [float("nan")] * (steps - len(losses))
            break
        opt.step()
    model.eval()
    val_acc = None
    if X_val is not None:
        with torch.no_grad():
            val_acc = (model(X_val).argmax(dim=1) == y_val).float().mean().item()
    return {"loss": np.array(losses), "grad_norms": np.array(grad_norms), "val_acc": val_acc}


class NoisyBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` followed, in training mode, by a random per-feature scale and shift
    redrawn at every step: it re-injects the "covariate shift" that batch norm removes.

    ``noise`` sets how large the scale (log-normal) and shift (normal) jitter are. Used in
    ``notebooks/03_batch_norm`` to test the internal-covariate-shift account, after
    Santurkar et al. (2018).
    """

    def __init__(self, num_features, noise: float = 0.5, seed: int = 0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.noise = noise
        self._gen = torch.Generator().manual_seed(seed)

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = out.shape[1]
            scale = torch.exp(self.noise * torch.randn(c, generator=self._gen))
            shift = self.noise * 2 * torch.randn(c, generator=self._gen)
            out = out * scale + shift
        return out


def layer_input_drift(model: nn.Module, X, y, lr: float, steps: int, layer: int,
                      batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """Train with SGD and record, after every step, the mean and std (over samples and units)
    of what the ``layer``-th activation module (0-based) outputs on a fixed probe batch.

    Returns an array of shape ``(steps, 2)``. The model is used in training mode throughout.
    Used in ``notebooks/03_batch_norm``.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    acts = [m for m in model.modules() if isinstance(m, nn.ReLU | nn.Sigmoid | nn.Tanh | nn.SELU)]
    probe = X[:256]
    seen = {}
    hook = acts[layer].register_forward_hook(lambda mod, inp, out: seen.__setitem__("a", out))
    stats = []
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch_size,), generator=g)
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model(probe)
            a = seen["a"]
            stats.append([a.mean().item(), a.std().item()])
    hook.remove()
    return np.array(stats)


def loss_along_gradient(model: nn.Module, X, y, step_sizes) -> np.ndarray:
    """Loss after one plain gradient step of each size in ``step_sizes`` from the current
    weights (the model itself is left unchanged). Training mode, batch ``(X, y)``.

    A flat, gently rising curve means a smooth landscape in the gradient direction. Used in
    ``notebooks/03_batch_norm``.
    """
    import copy

    model = copy.deepcopy(model)
    model.train()
    loss = nn.functional.cross_entropy(model(X), y)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    start = [p.detach().clone() for p in params]
    out = []
    with torch.no_grad():
        for eta in step_sizes:
            for p, p0, g in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * g)
            out.append(nn.functional.cross_entropy(model(X), y).item())
    return np.array(out)


def batch_stat_spread(x, batch_sizes: Sequence[int], n_batches: int = 200, seed: int = 0):
    """Std over ``n_batches`` random mini-batches of the batch mean and batch std of ``x`` (1-D).

    Returns two arrays, one value per batch size. Used in ``notebooks/03_batch_norm``.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=float)
    mean_spread, std_spread = [], []
    for b in batch_sizes:
        idx = rng.integers(0, x.shape[0], size=(n_batches, b))
        batches = x[idx]
        mean_spread.append(batches.mean(axis=1).std())
        std_spread.append(batches.std(axis=1).std())
    return np.array(mean_spread), np.array(std_spread)


# --------------------------------------------------------------------------- plots
def plot_loss_curves(histories: dict, title: str = "Training loss", smooth: int = 10,
                     log: bool = False):
    """One curve per run (``label -> loss array``), smoothed with a running mean.

    A run that diverged ends where its curve stops and is marked with a cross.
    Used in ``notebooks/03_batch_norm`` and ``notebooks/04_gradient_clipping``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, loss) in enumerate(histories.items()):
        loss = np.asarray(loss, dtype=float)
        finite = np.isfinite(loss)
        n_ok = int(np.argmin(finite)) if not finite.all() else len(loss)
        shown = loss[:n_ok]
        if smooth > 1 and len(shown) >= smooth:
            kernel = np.ones(smooth) / smooth
            shown = np.convolve(shown, kernel, mode="valid")
            steps = np.arange(smooth - 1, n_ok)
        else:
            steps = np.arange(n_ok)
        colour = color(i)
        ax.plot(steps, shown, color=colour, label=label)
        if n_ok < len(loss):
            ax.plot([n_ok], [shown[-1] if len(shown) else 0], "x", color=colour, ms=10, mew=2)
            ax.annotate("inf/NaN", (n_ok, shown[-1] if len(shown) else 0), color=colour,
                        xytext=(5, 5), textcoords="offset points")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" + (f" (running mean of {smooth})" if smooth > 1 else ""))
    ax.set_title(title)
    ax.legend()
    return fig


def plot_layer_grad_norms(norms_by_run: dict, title: str = "Gradient norm per layer"):
    """Per-layer weight-gradient norms (log scale), one line per run (``label -> norms``).

    Used in ``notebooks/03_batch_norm``.
    """
    fig, (ax,) = row_of_axes()
    for i, (label, norms) in enumerate(norms_by_run.items()):
        norms = np.asarray(norms, dtype=float)
        ax.semilogy(np.arange(1, len(norms) + 1), norms, "o-", color=color(i),
                    label=label)
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel("||dL/dW|| (log scale)")
    ax.set_title(title)
    ax.legend()
    return fig


def plot_batch_stat_spread(batch_sizes, mean_spread, std_spread):
    """How noisy the batch mean and batch std are, against batch size, with 1/sqrt(B) lines.

    Used in ``notebooks/03_batch_norm``.
    """
    fig, (ax,) = row_of_axes()
    b = np.asarray(batch_sizes, dtype=float)
    ax.loglog(b, mean_spread, "o-", color=PALETTE[0], label="spread of the batch mean")
    ax.loglog(b, std_spread, "s-", color=PALETTE[1], label="spread of the batch std")
    ax.loglog(b, mean_spread[0] * np.sqrt(b[0] / b), "--", color="grey",
              label=r"$\propto 1/\sqrt{B}$")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("std over mini-batches")
    ax.set_title("Small batches give noisy statistics (noise shrinks like 1/sqrt(B))")
    ax.legend()
    return fig


def plot_train_vs_eval_stats(batch_means, batch_vars, running_means, running_vars,
                             true_mean, true_var):
    """Batch statistics (noisy) and running averages (smooth) of one feature over steps.

    Used in ``notebooks/03_batch_norm``.
    """
    fig, axes = row_of_axes(ncols=2, width=5.0)
    steps = np.arange(1, len(batch_means) + 1)
    for ax, batch, running, true, name in (
        (axes[0], batch_means, running_means, true_mean, "mean"),
        (axes[1], batch_vars, running_vars, true_var, "variance"),
    ):
        ax.plot(steps, batch, ".", color=PALETTE[1], ms=4, label=f"batch {name} (train mode)")
        ax.plot(steps, running, "-", color=PALETTE[0], label=f"running {name} (eval mode)")
        ax.axhline(true, color="grey", ls="--", label=f"{name} of the whole data")
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: batch values jump, the running average settles")
        ax.legend(fontsize=8)
    return fig


def plot_layer_stats(stats_by_run: dict, title: str = "Activation statistics per layer"):
    """Mean and std of each layer's activations, one line per run (``label -> (means, stds)``).

    Used in ``notebooks/03_batch_norm``.
    """
    fig, axes = row_of_axes(ncols=2, width=5.0)
    for i, (label, (means, stds)) in enumerate(stats_by_run.items()):
        layers = np.arange(1, len(means) + 1)
        colour = color(i)
        axes[0].plot(layers, means, "o-", color=colour, label=label)
        axes[1].plot(layers, stds, "o-", color=colour, label=label)
    axes[0].axhline(0, color="grey", ls="--")
    axes[1].axhline(1, color="grey", ls="--")
    axes[0].set_ylabel("mean of activations")
    axes[1].set_ylabel("std of activations")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.legend(fontsize=8)
    axes[0].set_title(title + ": mean")
    axes[1].set_title(title + ": std")
    return fig
