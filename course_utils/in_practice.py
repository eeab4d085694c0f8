"""The practical recipe: ablations, short training runs with diagnostics, and their plots.

Taught in ``notebooks/05_in_practice``. Everything here is small enough to run on a laptop CPU
in seconds: deep but narrow MLPs on scikit-learn's bundled digits (see
:func:`course_utils.datasets.load_digits_split`).

* :class:`RunConfig` describes one run (activation, initialization, batch norm, residual
  connections, clipping, optimizer, learning rate, and the deliberate bugs of the "training
  doctor": zero or huge init, negative biases, batch norm left in eval mode);
* :func:`make_mlp` builds the network, :func:`train_run` trains it with a fixed seed and records
  the loss, every layer's gradient norm and update-to-weight ratio at every step, and the
  activations' statistics at checkpoints;
* :func:`gradient_health` is the reference for the notebook's exercise;
* ``plot_*`` functions are pure: they return a :class:`matplotlib.figure.Figure` and change no
  global state.

Importing this module changes no global state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import (
    UPDATE_RATIO_REFERENCE,
    dead_fraction,
    saturated_fraction,
)

__all__ = [
    "ACTIVATIONS",
    "PALETTE",
    "VANISH_ABS",
    "VANISH_RATIO",
    "EXPLODE_ABS",
    "RunConfig",
    "RunResult",
    "MLP",
    "make_mlp",
    "train_run",
    "run_seeds",
    "summarize_runs",
    "format_table",
    "layer_activation_fraction",
    "gradient_health",
    "health_verdict",
    "SATURATION_MAX",
    "build_health_case",
    "collect_layer_tensors",
    "plot_loss_curves",
    "plot_grad_norm_profiles",
    "plot_layer_histograms",
    "plot_layer_fractions",
    "plot_update_ratios",
    "plot_grad_to_weight",
    "plot_doctor_chart",
    "with_name",
    "DOCTOR_CAUSES",
    "doctor_cases",
    "doctor_summary",
]

#: Okabe-Ito colour-blind-safe palette (black last).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}

#: ``gradient_health`` thresholds (stated in ``notebooks/05_in_practice``).
EXPLODE_ABS = 1e3
VANISH_ABS = 1e-5
VANISH_RATIO = 1e-3
SATURATION_MAX = 0.5


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class RunConfig:
    """One training run. Taught in ``notebooks/05_in_practice``.

    ``init`` is one of ``"normal"`` (N(0, init_scale**2)), ``"xavier"`` (Glorot normal, gain
    1), ``"he"`` (Kaiming normal for ReLU, fan_in), ``"lecun"`` (Kaiming normal with
    ``nonlinearity="linear"``: std 1/sqrt(fan_in)), ``"zeros"`` or ``"default"`` (PyTorch's own
    ``nn.Linear`` init, biases included). Except for ``"default"``, hidden biases are set to
    ``bias_init`` and the output bias to 0. ``optimizer`` is ``"sgd"``, ``"momentum"`` (SGD
    with momentum 0.9), ``"adam"``, ``"rmsprop"`` or ``"adam_then_sgd"`` (Adam with ``lr`` for
    the first half of the steps, then SGD with momentum 0.9 and ``lr_after``).
    ``clip`` is a max global gradient L2 norm (``None``: no clipping). ``bn_eval=True``
    reproduces a bug: the batch-norm layers stay in eval mode while the rest trains.
    """

    name: str = "run"
    activation: str = "relu"
    init: str = "he"
    init_scale: float = 1.0
    bias_init: float = 0.0
    depth: int = 12
    width: int = 48
    batch_norm: bool = False
    residual: bool = False
    clip: float | None = None
    optimizer: str = "momentum"
    lr: float = 0.02
    lr_after: float = 0.02
    steps: int = 150
    batch_size: int = 64
    bn_eval: bool = False
    record_every: int = 10
    measure_steps: bool = False


# --------------------------------------------------------------------------- model
class MLP(nn.Module):
    """``depth`` hidden blocks Linear -> [BatchNorm1d] -> activation, then a Linear output.

    With ``residual=True`` every hidden block after the first adds its output to its input
    (``h = h + block(h)``). The blocks are ``nn.Sequential``, so iterating ``modules()`` meets
    each ``nn.Linear`` just before its own activation. Taught in ``notebooks/05_in_practice``.
    """

    def __init__(self, in_features: int, out_features: int, depth: int, width: int,
                 activation: str = "relu", batch_norm: bool = False, residual: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be at least 1")
        act = ACTIVATIONS[activation]

        def block(n_in: int) -> nn.Sequential:
            parts: list[nn.Module] = [nn.Linear(n_in, width)]
            if batch_norm:
                parts.append(nn.BatchNorm1d(width))
            parts.append(act())
            return nn.Sequential(*parts)

        self.residual = residual
        self.blocks = nn.ModuleList([block(in_features)] + [block(width) for _ in range(depth - 1)])
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](x)
        for b in self.blocks[1:]:
            h = h + b(h) if self.residual else b(h)
        return self.head(h)


def _init_linear(layer: nn.Linear, cfg: RunConfig, gen: torch.Generator, is_head: bool) -> None:
    w = layer.weight
    with torch.no_grad():
        if cfg.init == "default":
            return
        if cfg.init == "normal":
            nn.init.normal_(w, 0.0, cfg.init_scale, generator=gen)
        elif cfg.init == "xavier":
            nn.init.xavier_normal_(w, gain=cfg.init_scale, generator=gen)
        elif cfg.init == "he":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
            w.mul_(cfg.init_scale)
        elif cfg.init == "lecun":
            nn.init.kaiming_normal_(w, nonlinearity="linear", generator=gen)
            w.mul_(cfg.init_scale)
        elif cfg.init == "zeros":
            w.zero_()
        else:
            raise ValueError(f"unknown init {cfg.init!r}")
        layer.bias.fill_(0.0 if is_head else cfg.bias_init)


def make_mlp(cfg: RunConfig, seed: int = 0, in_features: int = 64,
             out_features: int = 10) -> MLP:
    """Build and initialize the network ``cfg`` describes, deterministically from ``seed``.

    The global torch RNG is left as it was. Taught in ``notebooks/05_in_practice``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(in_features, out_features, cfg.depth, cfg.width, cfg.activation,
                    cfg.batch_norm, cfg.residual)
    gen = torch.Generator().manual_seed(10_000 + seed)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        _init_linear(layer, cfg, gen, is_head=i == len(linears) - 1)
    return model


# --------------------------------------------------------------------------- activations
def layer_activation_fraction(module: nn.Module, a: torch.Tensor) -> float:
    """Saturated or dead fraction of an activation module's output ``a`` (a batch).

    ``nn.Sigmoid``: fraction of entries with ``|2a - 1| > 0.97``; ``nn.Tanh``: entries with
    ``|a| > 0.97`` (local derivative below about 6% of its maximum); ``nn.ReLU``: fraction of
    units that output 0 for every sample of the batch (dead units); any other module: 0.0.
    Taught in ``notebooks/05_in_practice``.
    """
    if isinstance(module, nn.Sigmoid):
        return saturated_fraction(a, "sigmoid")
    if isinstance(module, nn.Tanh):
        return saturated_fraction(a, "tanh")
    if isinstance(module, nn.ReLU):
        return dead_fraction(a)
    return 0.0


_WATCHED_ACTS = (nn.Sigmoid, nn.Tanh, nn.ReLU)


def _act_after_each_linear(model: nn.Module, x: torch.Tensor):
    """Run ``model(x)`` once with forward hooks on every ``nn.Linear`` and every watched
    activation (``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``).

    Returns ``(output, entries)``: one entry ``(name, linear, act)`` per ``nn.Linear`` in
    ``model.named_modules()`` order, where ``act`` is ``(module, output)`` of the first watched
    activation that ran after that Linear and before the next Linear ran, or ``None``.
    """
    events: list[tuple[nn.Module, torch.Tensor]] = []

    def hook(module, inputs, output):
        events.append((module, output))

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, (nn.Linear, *_WATCHED_ACTS)):
                handles.append(m.register_forward_hook(hook))
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    act_of: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    current = None
    for m, o in events:
        if isinstance(m, nn.Linear):
            current = id(m)
        elif current is not None and current not in act_of:
            act_of[current] = (m, o)
            current = None
    entries = [(name, m, act_of.get(id(m))) for name, m in model.named_modules()
               if isinstance(m, nn.Linear)]
    return out, entries


# --------------------------------------------------------------------------- exercise reference
def health_verdict(grad_norms: list[float], saturated: list[float], dead: list[float]) -> str:
    """The notebook's rule, from per-layer weight-gradient norms (input side first, output
    layer last) and each layer's saturated and dead fractions.

    1. ``"exploding"`` if any norm is inf or NaN, or the largest norm exceeds ``EXPLODE_ABS``
       (1e3);
    2. otherwise ``"vanishing"`` if the largest norm is below ``VANISH_ABS`` (1e-5), or the
       first layer's norm is below ``VANISH_RATIO`` (1e-3) times the last (output) layer's,
       or some layer's saturated or dead fraction exceeds ``SATURATION_MAX`` (0.5);
    3. otherwise ``"healthy"``.

    Taught in ``notebooks/05_in_practice``.
    """
    g = np.asarray(grad_norms, dtype=float)
    s = np.concatenate([np.asarray(saturated, dtype=float), np.asarray(dead, dtype=float)])
    if g.size == 0:
        raise ValueError("no layers")
    if not np.isfinite(g).all() or g.max() > EXPLODE_ABS:
        return "exploding"
    if g.max() < VANISH_ABS or g[0] < VANISH_RATIO * g[-1] or (s > SATURATION_MAX).any():
        return "vanishing"
    return "healthy"


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> dict:
    """Per-layer gradient report and an overall verdict (reference solution).

    One forward pass ``loss = loss_fn(model(x), y)`` in the model's current mode and one
    backward pass. Returns ``{"layers": [...], "verdict": str}`` with one dict per
    ``nn.Linear`` in ``model.named_modules()`` order, output layer included::

        {"name": str,                  # the Linear's name in model.named_modules()
         "grad_norm": float,           # L2 norm of d loss / d weight (the bias is ignored)
         "saturated_fraction": float,  # after a Sigmoid/Tanh: entries with |2a-1| or |a| > 0.97
         "dead_fraction": float}       # after a ReLU: units that are 0 for every sample

    The activation of a Linear is the first ``nn.Sigmoid``, ``nn.Tanh`` or ``nn.ReLU`` that
    runs after it and before the next Linear runs; fractions that do not apply are 0.0. The
    verdict follows :func:`health_verdict`. The parameters' ``.grad`` fields and the model's
    mode are left as they were. Taught in ``notebooks/05_in_practice``.
    """
    out, entries = _act_after_each_linear(model, x)
    loss = loss_fn(out, y)
    grads = torch.autograd.grad(loss, [m.weight for _, m, _ in entries], allow_unused=True)
    layers = []
    for (name, _, act), g in zip(entries, grads, strict=True):
        norm = 0.0 if g is None else float(g.detach().to(torch.float64).norm())
        sat = dead = 0.0
        if act is not None:
            module, a = act[0], act[1].detach()
            if isinstance(module, nn.ReLU):
                dead = dead_fraction(a)
            else:
                sat = saturated_fraction(a, "sigmoid" if isinstance(module, nn.Sigmoid)
                                         else "tanh")
        layers.append({"name": name, "grad_norm": norm, "saturated_fraction": float(sat),
                       "dead_fraction": float(dead)})
    verdict = health_verdict([d["grad_norm"] for d in layers],
                             [d["saturated_fraction"] for d in layers],
                             [d["dead_fraction"] for d in layers])
    return {"layers": layers, "verdict": verdict}


def build_health_case(depth: int, width: int, activation: str = "relu", init: str = "he",
                      scale: float = 1.0, bias: float = 0.0, batch_norm: bool = False,
                      in_features: int = 16, out_features: int = 4, n_samples: int = 64,
                      x_scale: float = 1.0, y_scale: float = 1.0, loss: str = "ce",
                      layer_scales=None, head_scale: float = 1.0, seed: int = 0):
    """A small ``nn.Sequential`` MLP with its data and loss, built deterministically from
    ``seed``, for testing ``gradient_health`` on networks that vanish, explode or are healthy.

    Returns ``(model, x, y, loss_fn)``. ``init`` sets the std of every weight ("he",
    "xavier", "lecun", "normal" = 1, "zeros", "default" = PyTorch's variance 1/(3 fan_in)),
    times ``scale`` (and ``layer_scales[i]`` for layer i, ``head_scale`` for the output
    layer); hidden biases are ``bias``. ``loss`` is "ce" (cross-entropy on class labels) or
    "mse" (targets N(0, y_scale**2)). Taught in ``notebooks/05_in_practice``.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        n = in_features
        for _ in range(depth):
            layers.append(nn.Linear(n, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(ACTIVATIONS[activation]())
            n = width
        layers.append(nn.Linear(n, out_features))
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            fan_out, fan_in = lin.weight.shape
            std = {"he": math.sqrt(2 / fan_in), "xavier": math.sqrt(2 / (fan_in + fan_out)),
                   "lecun": math.sqrt(1 / fan_in), "normal": 1.0, "zeros": 0.0,
                   "default": math.sqrt(1 / (3 * fan_in))}[init]
            lin.weight.normal_(0.0, 1.0, generator=gen).mul_(std * scale)
            if layer_scales is not None:
                lin.weight.mul_(layer_scales[i])
            is_head = i == len(linears) - 1
            if is_head:
                lin.weight.mul_(head_scale)
            lin.bias.fill_(0.0 if is_head else bias)
    model = nn.Sequential(*layers)
    x = torch.randn(n_samples, in_features, generator=gen) * x_scale
    if loss == "ce":
        y = torch.randint(0, out_features, (n_samples,), generator=gen)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        y = torch.randn(n_samples, out_features, generator=gen) * y_scale
        loss_fn = nn.MSELoss()
    return model, x, y, loss_fn


# --------------------------------------------------------------------------- training
@dataclass
class RunResult:
    """What :func:`train_run` records. Taught in ``notebooks/05_in_practice``.

    Arrays over steps have one row per optimizer step (NaN after a run diverged and stopped):
    ``losses`` (mini-batch loss), ``grad_norms`` (L2 norm of each Linear weight's gradient,
    before clipping, input side first), ``update_ratios`` (log10 std(lr * grad) / std(W), the
    plain-SGD step), ``step_ratios`` (log10 std(W_after - W_before) / std(W_before), the step
    the optimizer really took), ``grad_to_weight`` (std(grad) / std(W)). Activation
    statistics are measured on a fixed probe batch every ``record_every`` steps (rows of
    ``act_std``, ``act_mean`` and ``act_fraction``, one column per hidden activation;
    ``checkpoints`` gives the step of each row).
    """

    config: RunConfig
    seed: int
    losses: np.ndarray
    grad_norms: np.ndarray
    update_ratios: np.ndarray
    step_ratios: np.ndarray
    grad_to_weight: np.ndarray
    checkpoints: np.ndarray
    act_std: np.ndarray
    act_mean: np.ndarray
    act_fraction: np.ndarray
    weight_std: np.ndarray
    train_loss: float
    test_accuracy: float
    diverged: bool
    seconds: float
    clip_fraction: float = 0.0
    bn_running_var: np.ndarray | None = None
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def final_loss(self) -> float:
        """Mean mini-batch loss over the last 10 recorded steps (NaN if diverged)."""
        tail = self.losses[-10:]
        return float(np.mean(tail)) if np.isfinite(tail).all() else float("nan")


def _make_optimizer(cfg: RunConfig, params, phase: int = 0):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr)
    if cfg.optimizer == "momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
    if cfg.optimizer == "adam" or (cfg.optimizer == "adam_then_sgd" and phase == 0):
        return torch.optim.Adam(params, lr=cfg.lr)
    if cfg.optimizer == "adam_then_sgd":
        return torch.optim.SGD(params, lr=cfg.lr_after, momentum=0.9)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _set_mode(model: nn.Module, cfg: RunConfig) -> None:
    model.train()
    if cfg.bn_eval:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.eval()


def _probe(model: nn.Module, x: torch.Tensor):
    acts = [m for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))
            and not isinstance(m, nn.Identity)]
    outs: dict[int, torch.Tensor] = {}
    handles = [m.register_forward_hook(
        lambda mod, i, o, k=k: outs.__setitem__(k, o.detach())) for k, m in enumerate(acts)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    std = [float(outs[k].double().std(unbiased=False)) for k in range(len(acts))]
    mean = [float(outs[k].double().mean()) for k in range(len(acts))]
    frac = [layer_activation_fraction(m, outs[k]) for k, m in enumerate(acts)]
    return std, mean, frac


def _log_ratio(num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or den <= 0 or num <= 0:
        return float("nan")
    return math.log10(num / den)


def train_run(cfg: RunConfig, data, seed: int = 0, keep_model: bool = False) -> RunResult:
    """Train the network ``cfg`` describes on ``data`` (a ``DigitsSplit`` or a tuple
    ``x_train, y_train, x_test, y_test``) with a fixed ``seed`` for init and batches.

    Cross-entropy loss, ``cfg.steps`` mini-batch steps of ``cfg.batch_size`` samples drawn
    with replacement. Stops early (rest NaN) when the loss becomes inf or NaN. The global
    torch RNG is left as it was. Taught in ``notebooks/05_in_practice``.
    """
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = data
    model = make_mlp(cfg, seed, in_features=x_train.shape[1],
                     out_features=int(y_train.max()) + 1)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    n_lin = len(linears)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(20_000 + seed)
    probe_x = x_train[:256]

    steps = cfg.steps
    losses = np.full(steps, np.nan)
    gnorm = np.full((steps, n_lin), np.nan)
    uratio = np.full((steps, n_lin), np.nan)
    sratio = np.full((steps, n_lin), np.nan)
    g2w = np.full((steps, n_lin), np.nan)
    checkpoints, a_std, a_mean, a_frac, w_std = [], [], [], [], []

    def checkpoint(step: int) -> None:
        _set_mode(model, cfg)  # batch-norm statistics of the probe batch in training mode
        was = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = 0.0  # the probe must not move the running statistics
        s, mu, fr = _probe(model, probe_x)
        for m, mom in zip((m for m in model.modules() if isinstance(m, nn.BatchNorm1d)), was,
                          strict=True):
            m.momentum = mom
        checkpoints.append(step)
        a_std.append(s)
        a_mean.append(mu)
        a_frac.append(fr)
        w_std.append([float(m.weight.detach().double().std(unbiased=False)) for m in linears])

    opt = _make_optimizer(cfg, model.parameters())
    diverged = False
    clipped = 0
    n = x_train.shape[0]
    for step in range(steps):
        if cfg.optimizer == "adam_then_sgd" and step == steps // 2:
            opt = _make_optimizer(cfg, model.parameters(), phase=1)
        if step % cfg.record_every == 0:
            checkpoint(step)
        _set_mode(model, cfg)
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lv = float(loss.detach())
        losses[step] = lv
        lr = opt.param_groups[0]["lr"]
        ws = torch.stack([m.weight.detach().std(unbiased=False) for m in linears]).double()
        gs = torch.stack([m.weight.grad.detach().std(unbiased=False) for m in linears]).double()
        gnorm[step] = torch.stack([m.weight.grad.detach().norm() for m in linears]).double()
        with np.errstate(all="ignore"):
            uratio[step] = np.log10(lr * gs.numpy() / ws.numpy())
            g2w[step] = gs.numpy() / ws.numpy()
        before = [m.weight.detach().clone() for m in linears] if cfg.measure_steps else None
        if not math.isfinite(lv):
            diverged = True
            break
        if cfg.clip is not None:
            total = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            clipped += int(float(total) > cfg.clip)
        opt.step()
        if before is not None:
            for j, m in enumerate(linears):
                d = (m.weight.detach() - before[j]).double().std(unbiased=False)
                sratio[step, j] = _log_ratio(float(d),
                                             float(before[j].double().std(unbiased=False)))
    if not diverged:
        checkpoint(steps)

    model.eval()
    with torch.no_grad():
        out_tr = model(x_train)
        train_loss = float(loss_fn(out_tr, y_train))
        acc = float((model(x_test).argmax(1) == y_test).double().mean())
    if not math.isfinite(train_loss):
        diverged = True
    bn_var = [m.running_var.detach().double().mean().item() for m in model.modules()
              if isinstance(m, nn.BatchNorm1d)]
    return RunResult(
        config=cfg, seed=seed, losses=losses, grad_norms=gnorm, update_ratios=uratio,
        step_ratios=sratio, grad_to_weight=g2w, checkpoints=np.asarray(checkpoints),
        act_std=np.asarray(a_std), act_mean=np.asarray(a_mean), act_fraction=np.asarray(a_frac),
        weight_std=np.asarray(w_std), train_loss=train_loss,
        test_accuracy=acc if not diverged else float("nan"), diverged=diverged,
        seconds=time.perf_counter() - t0,
        clip_fraction=clipped / max(int(np.isfinite(losses).sum()), 1),
        bn_running_var=np.asarray(bn_var) if bn_var else None,
        model=model if keep_model else None,
    )


def run_seeds(cfg: RunConfig, data, seeds=(0, 1, 2)) -> list[RunResult]:
    """:func:`train_run` once per seed. Taught in ``notebooks/05_in_practice``."""
    return [train_run(cfg, data, seed=s) for s in seeds]


def summarize_runs(runs: list[RunResult]) -> dict:
    """Mean and spread over seeds of one configuration's runs.

    Keys: ``name``, ``n_seeds``, ``diverged`` (count), ``final_loss_mean``/``_std`` and
    ``test_acc_mean``/``_std`` (over the runs that did not diverge; NaN if none),
    ``grad_ratio_log10`` (mean over seeds of log10 of first-layer over last-layer gradient
    norm at step 0), ``seconds``. Taught in ``notebooks/05_in_practice``.
    """
    ok = [r for r in runs if not r.diverged]
    fl = np.array([r.final_loss for r in ok])
    acc = np.array([r.test_accuracy for r in ok])
    ratios = []
    for r in runs:
        g0 = r.grad_norms[0]
        if np.isfinite(g0).all() and g0[0] > 0 and g0[-1] > 0:
            ratios.append(math.log10(g0[0] / g0[-1]))
    return {
        "name": runs[0].config.name,
        "n_seeds": len(runs),
        "diverged": len(runs) - len(ok),
        "final_loss_mean": float(fl.mean()) if ok else float("nan"),
        "final_loss_std": float(fl.std()) if ok else float("nan"),
        "test_acc_mean": float(acc.mean()) if ok else float("nan"),
        "test_acc_std": float(acc.std()) if ok else float("nan"),
        "grad_ratio_log10": float(np.mean(ratios)) if ratios else float("nan"),
        "seconds": float(sum(r.seconds for r in runs)),
    }


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of :func:`summarize_runs` rows."""
    head = (f"{'configuration':<34}{'final loss':>16}{'test acc %':>14}"
            f"{'log10 g1/gL':>13}{'diverged':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        fl = (f"{r['final_loss_mean']:.3f} ± {r['final_loss_std']:.3f}"
              if math.isfinite(r["final_loss_mean"]) else "—")
        acc = (f"{100 * r['test_acc_mean']:.1f} ± {100 * r['test_acc_std']:.1f}"
               if math.isfinite(r["test_acc_mean"]) else "—")
        gr = f"{r['grad_ratio_log10']:.1f}" if math.isfinite(r["grad_ratio_log10"]) else "—"
        lines.append(f"{r['name'][:33]:<34}{fl:>16}{acc:>14}{gr:>13}"
                     f"{r['diverged']:>6}/{r['n_seeds']}")
    return "\n".join(lines)


def collect_layer_tensors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None):
    """Each hidden activation's output and its gradient ``dL/da`` for one batch.

    Returns ``(names, activations, gradients)``: lists of 1-D NumPy arrays, one per activation
    module in module order. The model's ``.grad`` fields are left untouched (the gradients
    come from ``torch.autograd.grad``). Taught in ``notebooks/05_in_practice``.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    acts = [(n, m) for n, m in model.named_modules()
            if isinstance(m, tuple(ACTIVATIONS.values())) and not isinstance(m, nn.Identity)]
    outs: list[torch.Tensor] = [None] * len(acts)  # type: ignore[list-item]
    handles = [m.register_forward_hook(lambda mod, i, o, k=k: outs.__setitem__(k, o))
               for k, (_, m) in enumerate(acts)]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, outs)
    return ([n for n, _ in acts], [o.detach().numpy().ravel() for o in outs],
            [g.detach().numpy().ravel() for g in grads])


# --------------------------------------------------------------------------- plots
def _figure(nrows=1, ncols=1, size=(6.4, 4.0), **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def plot_loss_curves(groups: dict[str, list[RunResult]], title: str | None = None,
                     smooth: int = 5, log: bool = True):
    """Mini-batch loss against step: the mean over seeds as a line, min..max as a band.

    ``groups`` maps a label to that configuration's runs. Diverged steps are left blank.
    Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(size=(7.5, 4.2))
    ax = axes[0, 0]
    for k, (label, runs) in enumerate(groups.items()):
        L = np.vstack([r.losses for r in runs])
        if smooth > 1:
            kern = np.ones(smooth) / smooth
            L = np.vstack([np.convolve(row, kern, mode="valid") for row in L])
        steps = np.arange(L.shape[1]) + (smooth - 1) / 2
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(np.isfinite(L), L, np.nan), axis=0) if L.size else L
            lo = np.nanmin(np.where(np.isfinite(L), L, np.nan), axis=0)
            hi = np.nanmax(np.where(np.isfinite(L), L, np.nan), axis=0)
        c = PALETTE[k % len(PALETTE)]
        ax.plot(steps, mean, color=c, label=label, lw=1.8)
        ax.fill_between(steps, lo, hi, color=c, alpha=0.18, lw=0)
    ax.axhline(math.log(10), color="0.5", ls=":", lw=1)
    ax.text(0.99, math.log(10), "ln 10: chance level", color="0.4", ha="right", va="bottom",
            transform=ax.get_yaxis_transform(), fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("mini-batch cross-entropy (mean over seeds, band: min..max)")
    ax.set_title(title or "Loss curves: which configurations leave the chance level, and how fast?")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_grad_norm_profiles(groups: dict[str, list[RunResult]], step: int = 0,
                            title: str | None = None):
    """Per-layer weight-gradient norm (log scale) at one step, input layer on the left.

    One line per configuration (mean of log10 over seeds). A line that falls steeply toward
    the input means vanishing gradients; a high flat line means exploding ones. Taught in
    ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(size=(7.5, 4.2))
    ax = axes[0, 0]
    for k, (label, runs) in enumerate(groups.items()):
        G = np.vstack([r.grad_norms[step] for r in runs])
        with np.errstate(all="ignore"):
            logg = np.log10(np.where(G > 0, G, np.nan))
            m = np.nanmean(logg, axis=0)
        layers = np.arange(1, G.shape[1] + 1)
        ax.plot(layers, m, marker="o", ms=3, color=PALETTE[k % len(PALETTE)], label=label)
    ax.set_xlabel("Linear layer (1 = input side, last = output layer)")
    ax.set_ylabel(f"log10 ‖dL/dW‖ at step {step}")
    ax.set_title(title or "Per-layer gradient norms: a slope toward the input means vanishing")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_layer_histograms(names: list[str], values: list[np.ndarray], title: str,
                          xlabel: str, bins: int = 60, log_x: bool = False,
                          max_layers: int = 8):
    """Overlaid histograms of one quantity per layer (activations or their gradients).

    With ``log_x=True`` the histogram is of log10 |value| (zeros dropped), which separates
    gradients that differ by orders of magnitude. At most ``max_layers`` evenly spaced layers
    are drawn. Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(size=(7.5, 3.8))
    ax = axes[0, 0]
    keep = np.unique(np.linspace(0, len(values) - 1, min(max_layers, len(values))).astype(int))
    cmap_vals = np.linspace(0.15, 0.95, len(keep))
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for c, i in zip(cmap_vals, keep, strict=True):
        v = np.asarray(values[i], dtype=float)
        if log_x:
            v = np.log10(np.abs(v[v != 0])) if np.any(v != 0) else np.array([])
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        ax.hist(v, bins=bins, histtype="step", density=True, color=cmap(c), lw=1.4,
                label=f"layer {i + 1}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def plot_layer_fractions(groups: dict[str, np.ndarray], title: str | None = None):
    """Saturated (sigmoid/tanh) or dead (ReLU) fraction per hidden layer, one bar group each.

    ``groups`` maps a label to a 1-D array of fractions (input side first). Taught in
    ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(size=(7.5, 3.8))
    ax = axes[0, 0]
    n = max(len(v) for v in groups.values())
    w = 0.8 / max(len(groups), 1)
    for k, (label, fr) in enumerate(groups.items()):
        ax.bar(np.arange(1, len(fr) + 1) + (k - (len(groups) - 1) / 2) * w, fr, width=w,
               color=PALETTE[k % len(PALETTE)], label=label)
    ax.set_xlim(0.4, n + 0.6)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("hidden layer (1 = input side)")
    ax.set_ylabel("saturated or dead fraction")
    ax.set_title(title or "Saturated (sigmoid/tanh) or dead (ReLU) units per layer")
    ax.legend(fontsize=8)
    return fig


def plot_update_ratios(run: RunResult, title: str | None = None, measured: bool = False,
                       reference: float = UPDATE_RATIO_REFERENCE, ylim=(-9.0, 1.0)):
    """log10 of the update-to-weight ratio of each Linear layer over training steps.

    ``measured=False`` plots ``log10 std(lr * grad) / std(W)``; ``True`` the step the
    optimizer really took. The dashed line is the rule-of-thumb reference (-3). Colours run
    from the input layer (dark) to the output layer (light). Taught in
    ``notebooks/05_in_practice``.
    """
    from matplotlib import colormaps

    fig, axes = _figure(size=(7.5, 4.0))
    ax = axes[0, 0]
    R = run.step_ratios if measured else run.update_ratios
    cmap = colormaps["viridis"]
    n = R.shape[1]
    for j in range(n):
        ax.plot(np.arange(R.shape[0]), R[:, j], color=cmap(0.1 + 0.85 * j / max(n - 1, 1)),
                lw=1.0, label=f"layer {j + 1}" if j in (0, n - 1) else None)
    ax.axhline(reference, color="k", ls="--", lw=1.2, label=f"reference {reference:g}")
    ax.set_ylim(*ylim)
    ax.set_xlabel("training step")
    what = "std(ΔW)" if measured else "std(lr · grad)"
    ax.set_ylabel(f"log10 {what} / std(W)")
    ax.set_title(title or "Update-to-weight ratio per layer: near the dashed line is healthy")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_grad_to_weight(groups: dict[str, RunResult], step: int = 0, title: str | None = None):
    """std(grad) / std(W) per Linear layer at one step (log scale), one line per run.

    Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(size=(7.5, 3.8))
    ax = axes[0, 0]
    for k, (label, run) in enumerate(groups.items()):
        r = run.grad_to_weight[step]
        ax.plot(np.arange(1, r.size + 1), r, marker="o", ms=3, color=PALETTE[k % len(PALETTE)],
                label=label)
    ax.set_yscale("log")
    ax.set_xlabel("Linear layer (1 = input side)")
    ax.set_ylabel(f"std(grad) / std(W) at step {step}")
    ax.set_title(title or "Gradient-to-weight ratio: how far one unit-lr step would move W")
    ax.legend(fontsize=8)
    return fig


def plot_doctor_chart(run: RunResult, label: str):
    """Four panels for one mystery run: loss, per-layer gradient norms at the first and last
    recorded step, saturated/dead fraction per hidden layer over checkpoints, and the median
    update-to-weight ratio over steps. Taught in ``notebooks/05_in_practice``.
    """
    fig, axes = _figure(1, 4, size=(13.0, 3.0))
    a0, a1, a2, a3 = axes[0]
    steps = np.arange(run.losses.size)
    a0.plot(steps, run.losses, color=PALETTE[0])
    finite = run.losses[np.isfinite(run.losses)]
    if finite.size and finite.min() > 0 and finite.max() > 10 * finite.min():
        a0.set_yscale("log")  # only when the loss spans orders of magnitude
    a0.axhline(math.log(10), color="0.5", ls=":", lw=1)
    a0.set_xlabel("step")
    a0.set_ylabel("mini-batch loss")
    a0.set_title(f"{label}: loss (dotted: ln 10)")
    last = int(np.max(np.flatnonzero(np.isfinite(run.grad_norms).all(axis=1)), initial=0))
    layers = np.arange(1, run.grad_norms.shape[1] + 1)
    with np.errstate(all="ignore"):
        for row, c, lab in ((0, PALETTE[1], "step 0"), (last, PALETTE[2], f"step {last}")):
            g = run.grad_norms[row]
            a1.plot(layers, np.where(g > 0, g, np.nan), marker="o", ms=3, color=c, label=lab)
    a1.set_yscale("log")
    a1.set_xlabel("Linear layer (1 = input)")
    a1.set_ylabel("‖dL/dW‖")
    a1.set_title("gradient norm per layer")
    a1.legend(fontsize=7)
    if run.act_fraction.size:
        for i, row in enumerate(run.act_fraction):
            a2.plot(np.arange(1, row.size + 1), row, color=PALETTE[5 if i == 0 else 3],
                    alpha=0.3 + 0.7 * i / max(len(run.act_fraction) - 1, 1), lw=1)
    a2.set_ylim(-0.03, 1.03)
    a2.set_xlabel("hidden layer")
    a2.set_ylabel("saturated / dead fraction")
    a2.set_title("light: start, dark: end")
    ur = np.where(np.isfinite(run.update_ratios), run.update_ratios, np.nan)
    med = np.full(ur.shape[0], np.nan)
    rows = ~np.isnan(ur).all(axis=1)
    med[rows] = np.nanmedian(ur[rows], axis=1)
    a3.plot(steps, med, color=PALETTE[4])
    a3.axhline(UPDATE_RATIO_REFERENCE, color="k", ls="--", lw=1)
    a3.set_ylim(-10, 2)
    a3.set_xlabel("step")
    a3.set_ylabel("median log10 update ratio")
    a3.set_title("update / weight (dashed: -3)")
    return fig


def with_name(cfg: RunConfig, name: str, **changes) -> RunConfig:
    """A copy of ``cfg`` with a new name and other fields changed."""
    return replace(cfg, name=name, **changes)


# --------------------------------------------------------------------------- training doctor
#: The causes students choose from in the notebook's "training doctor" finale.
DOCTOR_CAUSES = {
    "A": "all weights initialized to zero",
    "B": "weights initialized far too large (N(0, 1))",
    "C": "a deep stack of sigmoid layers",
    "D": "dying ReLUs (hidden biases started very negative)",
    "E": "a learning rate far too high",
    "F": "batch norm left in eval mode while the rest trains",
    "G": "nothing is wrong: a healthy run",
}


def doctor_cases(steps: int = 100) -> dict[str, tuple[str, RunConfig]]:
    """The mystery runs of the "training doctor": ``{"run 1": (card, config), ...}``.

    Each card says only what a student could read in their own model code (activation, batch
    norm, optimizer); the configuration holds the hidden cause. Do not print the
    configurations before you have made your diagnosis. Taught in ``notebooks/05_in_practice``.
    """
    base = RunConfig(name="mystery", steps=steps)
    cases = [
        ("12 hidden layers of 48 ReLU units, batch norm after every Linear, "
         "SGD + momentum", replace(base, batch_norm=True, bn_eval=True, init="default")),
        ("12 hidden layers of 48 ReLU units, SGD + momentum", replace(base, init="zeros")),
        ("12 hidden layers of 48 ReLU units, SGD + momentum", replace(base, lr=2.0)),
        ("12 hidden layers of 48 ReLU units, batch norm after every Linear, "
         "SGD + momentum", replace(base, batch_norm=True)),
        ("12 hidden layers of 48 sigmoid units, SGD + momentum",
         replace(base, activation="sigmoid", init="xavier")),
        ("12 hidden layers of 48 ReLU units, SGD + momentum", replace(base, bias_init=-1.0)),
        ("12 hidden layers of 48 ReLU units, SGD + momentum",
         replace(base, init="normal", init_scale=1.0)),
    ]
    return {f"run {i + 1}": (card, replace(cfg, name=f"run {i + 1}"))
            for i, (card, cfg) in enumerate(cases)}


def doctor_summary(run: RunResult) -> str:
    """One paragraph of numbers about a mystery run (what the doctor reads besides the chart).

    Taught in ``notebooks/05_in_practice``.
    """
    g0 = run.grad_norms[0]
    finite = np.isfinite(run.losses)
    n_ok = int(finite.sum())
    ur = run.update_ratios[np.isfinite(run.update_ratios)]
    med_ratio = float(np.median(ur)) if ur.size else float("nan")
    frac_start = run.act_fraction[0] if run.act_fraction.size else np.zeros(1)
    frac_end = run.act_fraction[-1] if run.act_fraction.size else np.zeros(1)
    lines = [
        f"loss: first step {run.losses[0]:.4g}, "
        + (f"last step {run.losses[n_ok - 1]:.4g}" if n_ok else "no finite loss")
        + (f"; became inf/NaN at step {n_ok}" if run.diverged else "")
        + f"; test accuracy {100 * run.test_accuracy:.1f}%"
        if math.isfinite(run.test_accuracy) else
        f"loss: first step {run.losses[0]:.4g}; became inf/NaN at step {n_ok}",
        f"step 0 gradient norms: first layer {g0[0]:.3g}, output layer {g0[-1]:.3g}, "
        f"largest {np.nanmax(g0):.3g}",
        f"saturated/dead fraction per hidden layer: start max {np.max(frac_start):.2f}, "
        f"end max {np.max(frac_end):.2f}",
        f"weight std of the first layer: start {run.weight_std[0][0]:.3g}, "
        f"end {run.weight_std[-1][0]:.3g}",
        "median log10 update-to-weight ratio: "
        + (f"{med_ratio:.2f}" if math.isfinite(med_ratio)
           else "undefined (every gradient or every weight is exactly 0)"),
    ]
    if run.bn_running_var is not None:
        lines.append("batch-norm running variance after training (mean over layers): "
                     f"{float(np.mean(run.bn_running_var)):.4f}")
    return "\n".join(lines)
