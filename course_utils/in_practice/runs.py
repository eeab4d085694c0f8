"""Training runs of ``notebooks/05_in_practice``: what a run is, how it trains, what it records.

* :class:`RunConfig` describes one run (activation, initialization, batch norm, residual
  connections, clipping, optimizer, learning rate, and the deliberate bugs of the training
  doctor: zero or huge init, negative biases, batch norm left in eval mode);
* :func:`make_mlp` builds its network with :func:`course_utils.nets.mlp`;
* :class:`Trainer` trains it a few steps at a time and records the loss, every layer's gradient
  norm and update-to-weight ratio at every step and the activations' statistics at
  checkpoints; :func:`train_run` runs a :class:`Trainer` to the end and returns its
  :class:`RunResult`; :func:`run_seeds`, :func:`summarize_runs` and :func:`format_table`
  compare configurations over seeds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import capture_outputs
from course_utils.in_practice.health import layer_activation_fraction
from course_utils.nets import ACTIVATION_TYPES, INITS, MLP, init_linear_, mlp

__all__ = ["RunConfig", "RunResult", "Trainer", "make_mlp", "train_run", "run_seeds",
           "summarize_runs", "format_table", "with_name"]


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


def _make_optimizer(cfg: RunConfig, params, phase: int = 0):
    # foreach=True: one batched update for all parameters (the small nets here are dominated
    # by per-tensor overhead); the arithmetic is that of the per-tensor loop.
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, foreach=True)
    if cfg.optimizer == "momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, foreach=True)
    if cfg.optimizer == "adam" or (cfg.optimizer == "adam_then_sgd" and phase == 0):
        return torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    if cfg.optimizer == "adam_then_sgd":
        return torch.optim.SGD(params, lr=cfg.lr_after, momentum=0.9, foreach=True)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, foreach=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _set_mode(model: nn.Module, cfg: RunConfig, step: int = 0) -> None:
    if cfg.eval_from is not None and step >= cfg.eval_from:
        model.eval()  # evaluated at step eval_from, and model.train() was never called again
        return
    model.train()
    if cfg.bn_eval:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.eval()


def _probe(model: nn.Module, x: torch.Tensor, acts: list[nn.Module], moments: bool = True):
    """``(std, mean, frac)`` of each activation module's output on ``x`` (std and mean are
    ``None`` without ``moments``)."""
    _, calls = capture_outputs(model, x, acts)
    outs = {id(m): o for m, o in calls}
    frac = [layer_activation_fraction(m, outs[id(m)]) for m in acts]
    if not moments:
        return None, None, frac
    std = [float(outs[id(m)].double().std(unbiased=False)) for m in acts]
    mean = [float(outs[id(m)].double().mean()) for m in acts]
    return std, mean, frac


def _log_ratio(num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or den <= 0 or num <= 0:
        return float("nan")
    return math.log10(num / den)


class Trainer:
    """One training run of :func:`train_run`, advanced a few steps at a time.

    ``Trainer(cfg, data, seed)`` builds the network and the optimizer; ``advance(n)`` trains up
    to ``n`` more steps, recording as it goes (the arrays of :class:`RunResult`, filled up to
    ``step``); ``done`` is True when all ``cfg.steps`` ran or the loss became inf or NaN;
    ``result()`` finishes the run (last checkpoint, evaluation) and returns the
    :class:`RunResult`. Activation statistics are measured on the first ``probe_size`` training
    samples. The training doctor widget drives one of these from a thread.

    ``out_grad_steps`` lists the step of each ``out_grad_rms`` row. ``live=True`` (the widget)
    records only what the live doctor shows and :func:`diagnose` reads, with the values a full
    run records: loss, gradient norms, ``step_ratios``, ``act_fraction``, and ``dL/dz`` on the
    last step of each ``advance`` call instead of at checkpoints (the rest stays NaN or empty).
    """

    def __init__(self, cfg: RunConfig, data, seed: int = 0, keep_model: bool = False,
                 probe_size: int = 256, live: bool = False):
        self.t0 = time.perf_counter()
        self.cfg, self.seed, self.keep_model = cfg, seed, keep_model
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.model = make_mlp(cfg, seed, in_features=self.x_train.shape[1],
                              out_features=int(self.y_train.max()) + 1)
        self.linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        self.acts = [m for m in self.model.modules() if isinstance(m, ACTIVATION_TYPES)]
        self.norms = [m for m in self.model.modules() if isinstance(m, nn.BatchNorm1d)]
        self.live = live
        n_lin = len(self.linears)
        self.loss_fn = nn.CrossEntropyLoss()
        self.gen = torch.Generator().manual_seed(20_000 + seed)
        self.probe_x = self.x_train[:probe_size]
        steps = cfg.steps
        self.losses = np.full(steps, np.nan)
        self.grad_norms = np.full((steps, n_lin), np.nan)
        self.update_ratios = np.full((steps, n_lin), np.nan)
        self.step_ratios = np.full((steps, n_lin), np.nan)
        self.grad_to_weight = np.full((steps, n_lin), np.nan)
        self.checkpoints: list[int] = []
        self.act_std: list = []
        self.act_mean: list = []
        self.act_fraction: list = []
        self.weight_std: list = []
        self.bn_var_history: list = []
        self.out_grad_rms: list = []
        self.out_grad_steps: list[int] = []
        self.opt = _make_optimizer(cfg, self.model.parameters())
        self.diverged = False
        self.clipped = 0
        self.step = 0
        self._mode: str | None = None

    def _ensure_mode(self, step: int) -> None:
        """:func:`_set_mode` for ``step``, skipped when the model is already in that mode
        (walking every module on every step is a sizeable share of a small run's time)."""
        cfg = self.cfg
        mode = "eval" if cfg.eval_from is not None and step >= cfg.eval_from else "train"
        if mode != self._mode:
            _set_mode(self.model, cfg, step)
            self._mode = mode

    @property
    def done(self) -> bool:
        return self.diverged or self.step >= self.cfg.steps

    def checkpoint(self, step: int) -> None:
        """Record the activations' statistics on the probe batch and the weights' spread."""
        model, norms = self.model, self.norms
        self._ensure_mode(step)  # the probe sees the mode the training step would use
        was = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0  # the probe must not move the running statistics
        s, mu, fr = _probe(model, self.probe_x, self.acts, moments=not self.live)
        for m, mom in zip(norms, was, strict=True):
            m.momentum = mom
        self.checkpoints.append(step)
        self.act_fraction.append(fr)
        if self.live:
            return
        self.act_std.append(s)
        self.act_mean.append(mu)
        self.weight_std.append([float(m.weight.detach().double().std(unbiased=False))
                                for m in self.linears])
        if norms:
            self.bn_var_history.append([float(m.running_var.detach().double().mean())
                                        for m in norms])

    def advance(self, n_steps: int, stop=None) -> None:
        """Train up to ``n_steps`` more steps: fewer when the run ends or diverges, or when
        ``stop`` (a callable, asked before each step) returns True."""
        cfg, model, linears = self.cfg, self.model, self.linears
        n, live = self.x_train.shape[0], self.live
        last = min(self.step + n_steps, cfg.steps) - 1  # live: the step dL/dz is kept on
        for _ in range(n_steps):
            if self.done or (stop is not None and stop()):
                return
            step = self.step
            if cfg.optimizer == "adam_then_sgd" and step == cfg.steps // 2:
                self.opt = _make_optimizer(cfg, model.parameters(), phase=1)
            at_checkpoint = step % cfg.record_every == 0
            if at_checkpoint:
                self.checkpoint(step)
            self._ensure_mode(step)
            idx = torch.randint(0, n, (cfg.batch_size,), generator=self.gen)
            if (step == last) if live else at_checkpoint:  # keep dL/dz of each Linear's z
                out, calls = capture_outputs(model, self.x_train[idx], linears, no_grad=False)
                zs = [z for _, z in calls]
                for z in zs:
                    z.retain_grad()
            else:
                out, zs = model(self.x_train[idx]), None
            loss = self.loss_fn(out, self.y_train[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if zs is not None:
                zero = torch.zeros((), dtype=torch.float64)
                self.out_grad_rms.append(torch.stack([
                    zero if z.grad is None else z.grad.double().pow(2).mean() for z in zs
                ]).sqrt().tolist())
                self.out_grad_steps.append(step)
            lv = float(loss.detach())
            self.losses[step] = lv
            lr = self.opt.param_groups[0]["lr"]
            with torch.no_grad():
                grads = [m.weight.grad for m in linears]
                self.grad_norms[step] = torch.stack(torch._foreach_norm(grads)).double()
                if not live:
                    ws = torch.stack([m.weight.std(unbiased=False) for m in linears]).double()
                    gs = torch.stack([g.std(unbiased=False) for g in grads]).double().numpy()
                    with np.errstate(all="ignore"):
                        self.grad_to_weight[step] = gs / ws.numpy()
                        self.update_ratios[step] = np.log10(lr * self.grad_to_weight[step])
            before = [m.weight.detach().clone() for m in linears] if cfg.measure_steps else None
            if not math.isfinite(lv):
                self.diverged = True
                return
            if cfg.clip is not None:
                total = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                self.clipped += int(float(total) > cfg.clip)
            self.opt.step()
            if before is not None:
                with torch.no_grad():
                    d = torch.stack([(m.weight - b).double().std(unbiased=False)
                                     for m, b in zip(linears, before, strict=True)]).tolist()
                    w = torch.stack([b.double().std(unbiased=False) for b in before]).tolist()
                for j in range(len(linears)):
                    self.step_ratios[step, j] = _log_ratio(d[j], w[j])
            self.step = step + 1

    def result(self) -> RunResult:
        """Finish the run (last checkpoint, evaluation on train and test) and return it."""
        model, loss_fn = self.model, self.loss_fn
        diverged = self.diverged
        if not diverged:
            self.checkpoint(self.cfg.steps)
        model.eval()
        with torch.no_grad():
            train_loss = float(loss_fn(model(self.x_train), self.y_train))
            acc = float((model(self.x_test).argmax(1) == self.y_test).double().mean())
        if not math.isfinite(train_loss):
            diverged = True
        bn_var = [m.running_var.detach().double().mean().item() for m in model.modules()
                  if isinstance(m, nn.BatchNorm1d)]
        losses = self.losses
        return RunResult(
            config=self.cfg, seed=self.seed, losses=losses, grad_norms=self.grad_norms,
            update_ratios=self.update_ratios, step_ratios=self.step_ratios,
            grad_to_weight=self.grad_to_weight, checkpoints=np.asarray(self.checkpoints),
            act_std=np.asarray(self.act_std), act_mean=np.asarray(self.act_mean),
            act_fraction=np.asarray(self.act_fraction), weight_std=np.asarray(self.weight_std),
            train_loss=train_loss, test_accuracy=acc if not diverged else float("nan"),
            diverged=diverged, seconds=time.perf_counter() - self.t0,
            clip_fraction=self.clipped / max(int(np.isfinite(losses).sum()), 1),
            bn_running_var=np.asarray(bn_var) if bn_var else None,
            bn_var_history=(np.asarray(self.bn_var_history) if self.bn_var_history
                            else None),
            out_grad_rms=np.asarray(self.out_grad_rms, dtype=float),
            model=model if self.keep_model else None,
        )


def train_run(cfg: RunConfig, data, seed: int = 0, keep_model: bool = False) -> RunResult:
    """Train the network ``cfg`` describes on ``data`` (a ``DigitsSplit`` or a tuple
    ``x_train, y_train, x_test, y_test``) with a fixed ``seed`` for init and batches.

    Cross-entropy loss, ``cfg.steps`` mini-batch steps of ``cfg.batch_size`` samples drawn
    with replacement. Stops early (rest NaN) when the loss becomes inf or NaN. The global
    torch RNG is left as it was. Taught in ``notebooks/05_in_practice``.
    """
    trainer = Trainer(cfg, data, seed, keep_model)
    trainer.advance(cfg.steps)
    return trainer.result()


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


def with_name(cfg: RunConfig, name: str, **changes) -> RunConfig:
    """A copy of ``cfg`` with a new name and other fields changed."""
    return replace(cfg, name=name, **changes)
