"""Experiments of ``notebooks/03_batch_norm``: the teacher data, the notebook's MLP, training and
what it measures (input drift, the loss along the gradient, the spread of batch statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from course_utils.nets import minibatch_loss, mlp


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
        loss = minibatch_loss(model, X, y, nn.functional.cross_entropy, batch_size, g)
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
        loss = minibatch_loss(model, X, y, nn.functional.cross_entropy, batch_size, g)
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


def bn_depth_sweep(depths: Sequence[int], width: int = 64, batch_size: int = 64,
                   n_in: int = 10, n_out: int = 3, seeds: Sequence[int] = range(5)) -> dict:
    """First/last-layer weight-gradient ratio at initialization, per depth, with and without BN.

    For every depth, ReLU MLPs with He init and no skip connections are built twice: with
    batch norm before each ReLU (``"BN"``) and without (``"no BN"``). One training-mode
    backward pass of cross-entropy on a batch of standard-normal inputs with random labels
    gives ``||dL/dW_1|| / ||dL/dW_last||`` (``W_last`` is the head). Each entry is the geometric
    mean over ``seeds`` (the seed sets the weights and the batch). Returns
    ``{"BN": array, "no BN": array}``, one value per depth. Used in ``notebooks/03_batch_norm``
    to test whether BN keeps gradients of similar size in every layer (after Yang et al., 2019).
    """
    out = {}
    for label, where in (("BN", "before"), ("no BN", None)):
        ratios = []
        for depth in depths:
            logs = []
            for seed in seeds:
                net = mlp(n_in, n_out, depth=depth, width=width, activation="relu", init="he",
                          batch_norm=where, seed=seed)
                g = torch.Generator().manual_seed(10_000 + seed)
                X = torch.randn(batch_size, n_in, generator=g)
                y = torch.randint(0, n_out, (batch_size,), generator=g)
                net.train()
                nn.functional.cross_entropy(net(X), y).backward()
                linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
                first, last = linears[0].weight.grad.norm(), linears[-1].weight.grad.norm()
                logs.append(float(torch.log(first / last)))
            ratios.append(float(np.exp(np.mean(logs))))
        out[label] = np.array(ratios)
    return out


def init_scale_sweep(scales: Sequence[float], seeds: Sequence[int] = range(3), depth: int = 5,
                     width: int = 64, steps: int = 40, lr: float = 0.3,
                     batch_size: int = 64) -> dict:
    """Test accuracy after a short training run, against the scale of the initial weights,
    for the same deep ReLU MLP with and without batch norm, on scikit-learn's digits.

    For each ``scale`` in ``scales`` and each seed, every ``nn.Linear`` (head included) is
    drawn with He's standard deviation times ``scale`` (``nets.mlp(init="he", scale=...)``),
    then trained with :func:`train_classifier` (plain SGD, ``steps`` mini-batches of
    ``batch_size``, learning rate ``lr``) on the standardized training split of
    :func:`course_utils.datasets.load_digits_split`; the seed sets the weights and the batches.
    ``"BN"`` puts batch norm before every ReLU, ``"no BN"`` has none.

    Returns ``{"accuracy": {"BN": a, "no BN": a}, "loss": {...}}`` with arrays of shape
    ``(len(scales), len(seeds))``: eval-mode accuracy on the test split (a run whose loss
    became inf/NaN keeps whatever its broken weights predict), and the mean training loss of
    the last 10 steps (NaN for a run that diverged). Used in ``notebooks/03_batch_norm``, after
    the initialization experiment of CS231n's batch-norm assignment.
    """
    from course_utils.datasets import load_digits_split

    digits = load_digits_split()
    n_in, n_out = digits.x_train.shape[1], int(digits.y_train.max()) + 1
    accuracy, loss = {}, {}
    for label, where in (("BN", "before"), ("no BN", None)):
        acc = np.zeros((len(scales), len(seeds)))
        last = np.zeros((len(scales), len(seeds)))
        for i, scale in enumerate(scales):
            for j, seed in enumerate(seeds):
                net = mlp(n_in, n_out, depth=depth, width=width, activation="relu", init="he",
                          scale=scale, batch_norm=where, seed=seed).as_sequential()
                hist = train_classifier(net, digits.x_train, digits.y_train, lr=lr,
                                        steps=steps, batch_size=batch_size, seed=seed,
                                        X_val=digits.x_test, y_val=digits.y_test)
                acc[i, j] = hist["val_acc"]
                tail = hist["loss"][-10:]
                last[i, j] = tail.mean() if np.isfinite(tail).all() else float("nan")
        accuracy[label], loss[label] = acc, last
    return {"accuracy": accuracy, "loss": loss}
