"""Training runs of ``notebooks/05_in_practice`` with their diagnostics: :class:`Trainer`
(step by step, what it records at each checkpoint, the live mode of the ``TrainingDoctor``
widget), :func:`train_run` and :func:`run_seeds`. The configuration, the network and the
result they use live in :mod:`course_utils.in_practice.runs`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from course_utils.diagnostics import capture_outputs
from course_utils.in_practice.health import layer_activation_fraction
from course_utils.in_practice.runs import RunConfig, RunResult, make_mlp
from course_utils.nets import ACTIVATION_TYPES

__all__ = ["Trainer", "train_run", "run_seeds"]


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
