"""Training runs of ``notebooks/05_in_practice``: what a run is, how it trains, what it records.

* :class:`RunConfig` describes one run (activation, initialization, batch norm, residual
  connections, clipping, optimizer, learning rate, and the deliberate bugs of the training
  doctor: zero or huge init, negative biases, batch norm left in eval mode);
* :func:`make_mlp` builds its network with :func:`course_utils.nets.mlp`;
* :class:`RunResult` is what a run recorded (:mod:`course_utils.in_practice.trainer` trains
  it: the loss, every layer's gradient norm and update-to-weight ratio at every step and the
  activations' statistics at checkpoints); :func:`summarize_runs` and :func:`format_table`
  compare configurations over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from course_utils.nets import INITS, MLP, init_linear_, mlp

__all__ = ["RunConfig", "RunResult", "make_mlp", "summarize_runs", "format_table", "with_name"]


@dataclass(frozen=True)
class RunConfig:
    """One training run. Taught in ``notebooks/05_in_practice``.

    ``init`` is a name of :data:`course_utils.nets.INITS`: ``"normal"`` (N(0,
    init_scale**2)), ``"xavier"`` (Glorot normal, gain ``init_scale``), ``"he"`` (Kaiming
    normal for ReLU, fan_in), ``"lecun"`` (Kaiming normal with ``nonlinearity="linear"``: std
    1/sqrt(fan_in)), ``"zeros"`` or ``"pytorch_default"`` (PyTorch's own ``nn.Linear`` init,
    biases included; ``"default"`` is accepted for it too); ``he`` and ``lecun`` weights are
    then multiplied by ``init_scale``. Except for ``"pytorch_default"``, hidden biases are set
    to ``bias_init`` and the output bias to 0. ``optimizer`` is ``"sgd"``, ``"momentum"`` (SGD
    with momentum 0.9), ``"adam"``, ``"rmsprop"`` or ``"adam_then_sgd"`` (Adam with ``lr`` for
    the first half of the steps, then SGD with momentum 0.9 and ``lr_after``).
    ``clip`` is a max global gradient L2 norm (``None``: no clipping). ``bn_eval=True``
    reproduces a bug: the batch-norm layers stay in eval mode while the rest trains.
    ``eval_from=k`` reproduces a commoner one: the model is put in eval mode at step ``k`` (to
    evaluate it) and ``model.train()`` is never called again, so from then on batch norm
    normalizes with the running statistics it had at step ``k``.
    ``branch_scale`` multiplies the initial weights of every residual block after the first
    (only with ``residual=True``): with a ReLU branch and zero biases this scales the branch
    ``f(h)`` itself at initialization (``1 / sqrt(depth - 1)`` keeps the sum of the branches'
    variances near that of one block); ``0.0`` zero-initializes the branches.
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
    branch_scale: float = 1.0
    eval_from: int | None = None


def _init_linear(layer: nn.Linear, cfg: RunConfig, gen: torch.Generator, is_head: bool) -> None:
    """``cfg.init`` (times ``cfg.init_scale``) on one layer, in torch.nn.init's own terms."""
    if cfg.init in ("pytorch_default", "default"):
        return
    if cfg.init not in INITS:
        raise ValueError(f"unknown init {cfg.init!r}: use one of {INITS}")
    bias = 0.0 if is_head else cfg.bias_init
    if cfg.init == "normal":
        init_linear_(layer, "normal", std=cfg.init_scale, bias=bias, generator=gen)
    elif cfg.init == "xavier":
        init_linear_(layer, "xavier", gain=cfg.init_scale, bias=bias, generator=gen)
    else:  # he: kaiming_normal_(nonlinearity="relu"); lecun: nonlinearity="linear"
        gain = {"he": math.sqrt(2.0), "lecun": 1.0, "zeros": None}[cfg.init]
        init_linear_(layer, cfg.init, gain=gain, scale=cfg.init_scale, bias=bias, generator=gen)


def make_mlp(cfg: RunConfig, seed: int = 0, in_features: int = 64,
             out_features: int = 10) -> MLP:
    """Build and initialize the network ``cfg`` describes (a :func:`course_utils.nets.mlp`),
    deterministically from ``seed``.

    The global torch RNG is left as it was. Taught in ``notebooks/05_in_practice``.
    """
    model = mlp(in_features, out_features, depth=cfg.depth, width=cfg.width,
                activation=cfg.activation, init=None, batch_norm=cfg.batch_norm,
                residual=cfg.residual, seed=seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    for i, layer in enumerate(model.linears):
        _init_linear(layer, cfg, gen, is_head=i == len(model.linears) - 1)
    if cfg.residual and cfg.branch_scale != 1.0:
        with torch.no_grad():
            for block in model.blocks[1:]:
                block[0].weight.mul_(cfg.branch_scale)
    return model


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
    ``checkpoints`` gives the step of each row); ``bn_var_history`` holds, at the same
    checkpoints, each batch-norm layer's mean running variance (``None`` without batch norm).
    ``out_grad_rms`` has one row per training step taken at a checkpoint (steps 0,
    ``record_every``, ...): the RMS of ``dL/dz`` at each Linear's output ``z`` on that step's
    mini-batch, input side first (what :func:`course_utils.in_practice.health.depth_ratio`
    reads).
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
    bn_var_history: np.ndarray | None = None
    out_grad_rms: np.ndarray | None = None
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def final_loss(self) -> float:
        """Mean mini-batch loss over the last 10 recorded steps (NaN if diverged)."""
        tail = self.losses[-10:]
        return float(np.mean(tail)) if np.isfinite(tail).all() else float("nan")


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


def with_name(cfg: RunConfig, name: str, **changes) -> RunConfig:
    """A copy of ``cfg`` with a new name and other fields changed."""
    return replace(cfg, name=name, **changes)
