"""Experiments of ``notebooks/01_activations``: dead ReLUs (and whether leaky ReLU or GELU
units come back), the torch oracle the tests compare with, the notebook's MLP and activation
timings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from course_utils.activations import functions as fns


# --------------------------------------------------------------------------- dead ReLUs
def dead_relu_fraction(model, x) -> float:
    """Fraction of the hidden ReLU units of ``model`` that output 0 for every sample of ``x``.

    Which units count: run ``model(x)`` once, without recording gradients and in the mode the
    model is in. Every time an ``nn.ReLU`` module (found with ``model.modules()``; functional
    ``relu`` calls and other activations do not count) produces an output of shape
    ``(N, ...)``, each of its ``prod(...)`` positions is one unit (a feature of a linear layer,
    or one channel at one position of a convolutional map); a module called twice contributes
    the units of both calls. A unit is dead when its output is exactly 0 for all ``N`` samples.
    Returns ``dead units / all units`` as a Python float; raises ``ValueError`` when the model
    has no ``nn.ReLU`` module. The model is left as it was (no hooks, no gradients, same mode).
    Taught in ``notebooks/01_activations``.
    """
    from torch import nn

    from course_utils.diagnostics import capture_outputs

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the model has no nn.ReLU module")
    _, calls = capture_outputs(model, x, relus)
    if not calls:
        raise ValueError("no nn.ReLU module ran during the forward pass")
    dead = total = 0
    for _, output in calls:
        units = output.detach().reshape(output.shape[0], -1)
        dead += int((units == 0).all(dim=0).sum())
        total += units.shape[1]
    return dead / total


# --------------------------------------------------------------------------- test helpers
def fp_outcome(fn: Callable[[], object]) -> str:
    """Run ``fn()`` with NumPy raising on overflow, invalid values and division by zero (underflow
    to 0 is allowed): ``"ok"``, or the name of the exception (``"FloatingPointError"``).

    Used by the test cells of ``notebooks/01_activations`` to check that an activation computes
    ``exp`` only where it cannot overflow.
    """
    from course_utils.testing import outcome

    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        return outcome(fn)


# --------------------------------------------------------------------------- torch oracle
def _torch_fn(name: str, params: Mapping):
    import torch
    import torch.nn.functional as F

    table = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, params.get("negative_slope", 0.01)),
        "elu": lambda t: F.elu(t, params.get("alpha", 1.0)),
        "selu": F.selu,
        "gelu": lambda t: F.gelu(t, approximate=params.get("approximate", "none")),
        "relu6": F.relu6,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name]


def torch_activation(name: str, x, grad: bool = False, **params) -> np.ndarray:
    """What torch computes for activation ``name`` at ``x``, in float64, as a NumPy array.

    ``grad=False`` gives the value of the ``torch.nn.functional`` op (``torch.sigmoid`` and
    ``torch.tanh`` for those two), ``grad=True`` the derivative ``torch.autograd`` gives for it.
    ``params`` are ``negative_slope``, ``alpha`` or ``approximate``. The result has the shape of
    ``x`` (0-d for a scalar). The test cells of ``notebooks/01_activations`` use it as the
    independent oracle.
    """
    import torch

    f = _torch_fn(name, params)
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)
    y = f(t)
    if not grad:
        return y.detach().numpy().copy()
    y.sum().backward()
    return t.grad.numpy().copy()


def reference_activations() -> dict[str, tuple[Callable, Callable]]:
    """``{name: (f, f')}`` for the activations of ``notebooks/01_activations`` (defaults)."""
    return {
        "sigmoid": (fns.sigmoid, fns.sigmoid_grad),
        "tanh": (fns.tanh, fns.tanh_grad),
        "ReLU": (fns.relu, fns.relu_grad),
        "ReLU6": (fns.relu6, fns.relu6_grad),
        "leaky ReLU (0.1)": (lambda x: fns.leaky_relu(x, 0.1),
                             lambda x: fns.leaky_relu_grad(x, 0.1)),
        "ELU": (fns.elu, fns.elu_grad),
        "SELU": (fns.selu, fns.selu_grad),
        "GELU": (fns.gelu, fns.gelu_grad),
    }


# --------------------------------------------------------------------------- experiments
def make_mlp(depth: int, width: int, activation: Callable, in_features: int | None = None,
             out_features: int = 1, init: Callable | None = None, seed: int = 0):
    """A plain MLP (:func:`course_utils.nets.mlp`, as one ``nn.Sequential``): ``depth`` blocks
    ``Linear -> activation()``, then a final ``Linear``.

    ``activation`` is a module class such as ``nn.ReLU``; ``init(weight, generator)``
    (optional) is applied to every hidden weight after PyTorch's default init, and then the
    biases are set to 0; the head keeps PyTorch's default weights and a zero bias. Everything
    is drawn from a private ``torch.Generator`` seeded with ``seed``, layer by layer (the global
    RNG is untouched). Taught in ``notebooks/01_activations``.
    """
    import torch

    from course_utils.nets import init_linear_, mlp

    in_features = width if in_features is None else in_features
    gen = torch.Generator().manual_seed(seed)
    model = mlp(in_features, out_features, depth=depth, width=width, activation=activation,
                init=None, seed=seed)
    for block in model.blocks:
        lin = init_linear_(block[0], "pytorch_default", generator=gen)
        if init is not None:
            with torch.no_grad():
                init(lin.weight, gen)
                lin.bias.zero_()
    init_linear_(model.head, "pytorch_default", bias=0.0, generator=gen)
    return model.as_sequential()


def time_activations(n: int = 1_000_000, repeat: int = 5, number: int = 3,
                     names: Sequence[str] = ("relu", "leaky_relu", "relu6", "elu", "selu",
                                             "gelu", "gelu_tanh", "sigmoid", "tanh"),
                     backward: bool = True) -> dict[str, float]:
    """Best-of-``repeat`` time in microseconds of one forward (and backward) pass of each torch
    activation on a float32 tensor of ``n`` elements. Timings depend on the machine: compare
    them with each other, not across machines. Taught in ``notebooks/01_activations``.
    """
    import torch
    import torch.nn.functional as F

    fns = {
        "relu": F.relu, "leaky_relu": F.leaky_relu, "relu6": F.relu6, "elu": F.elu,
        "selu": F.selu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    }
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=gen, requires_grad=backward)
    ones = torch.ones(n)
    out = {}
    for name in names:
        f = fns[name]
        for _ in range(2):  # warm-up: the first calls of an op can be much slower
            y = f(x)
            if backward:
                torch.autograd.grad(y, x, ones)
        best = math.inf
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                y = f(x)
                if backward:
                    (g,) = torch.autograd.grad(y, x, ones)
            best = min(best, (time.perf_counter() - start) / number)
        out[name] = best * 1e6
    return out


# --------------------------------------------------------------------------- do other units die?
#: The activations :func:`dying_units_experiment` compares, by the names it prints.
DYING_ACTIVATIONS = {"ReLU": "relu", "leaky ReLU (0.01)": "leaky_relu", "GELU": "gelu"}


def off_unit_fraction(model, x) -> float:
    """Fraction of the hidden units of a plain ``nn.Sequential`` MLP (as :func:`make_mlp` builds
    it) whose pre-activation is ``<= 0`` for every sample of ``x``.

    For ReLU such a unit outputs 0 on every sample and passes no gradient back: it is dead, the
    count :func:`dead_relu_fraction` makes. For leaky ReLU or GELU the same unit is only *off*:
    its slope there is small but not 0, so training can still move it. The pre-activations are
    the outputs of every ``nn.Linear`` but the last (the head). Runs under ``torch.no_grad()``.
    Taught in ``notebooks/01_activations``.
    """
    import torch
    from torch import nn

    layers = list(model)
    if not layers or not isinstance(layers[-1], nn.Linear):
        raise ValueError("off_unit_fraction needs an nn.Sequential that ends with an "
                         "nn.Linear head")
    off = total = 0
    h = x
    with torch.no_grad():
        for layer in layers[:-1]:
            h = layer(h)
            if isinstance(layer, nn.Linear):
                off += int((h <= 0).all(dim=0).sum())
                total += h.shape[1]
    if total == 0:
        raise ValueError("the model has no hidden nn.Linear layer")
    return off / total


@dataclass(frozen=True)
class DyingRun:
    """One run of :func:`dying_units_experiment`: an activation, a seed, and what was measured
    after the burst of large steps and after the recovery phase (fractions of hidden units
    that are off on every training sample, test accuracy; training loss at the end)."""

    activation: str
    seed: int
    off_after_burst: float
    accuracy_after_burst: float
    off_after_recovery: float
    accuracy_after_recovery: float
    train_loss: float


def dying_units_experiment(activations: Sequence[str] = tuple(DYING_ACTIVATIONS),
                           seeds: Sequence[int] = range(5), burst_lr: float = 0.1,
                           burst_steps: int = 50, recovery_lr: float = 0.003,
                           recovery_steps: int = 100, depth: int = 4, width: int = 64,
                           batch_size: int = 64) -> list[DyingRun]:
    """Kill units with a burst of too-large steps, then train normally: which units come back?

    On the digits data (:func:`course_utils.datasets.load_digits_split`, standardized), a
    ``depth`` x ``width`` MLP with He normal weights (:func:`make_mlp`, the same init for every
    activation) is trained with Adam at ``burst_lr`` for ``burst_steps`` minibatches, then
    with a fresh Adam at ``recovery_lr`` for ``recovery_steps``. For every seed, the weights
    and the minibatches are the same for every activation; only the activation differs.
    ``activations`` are keys of :data:`DYING_ACTIVATIONS`. Units are counted with
    :func:`off_unit_fraction` on the training split, accuracy on the test split.
    Returns one :class:`DyingRun` per activation and seed. Taught in
    ``notebooks/01_activations``.
    """
    import torch
    import torch.nn.functional as F

    from course_utils.datasets import load_digits_split
    from course_utils.nets import ACTIVATIONS, minibatch_loss, single_thread

    x, y, x_test, y_test = load_digits_split()

    def he(w, gen):
        torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)

    def test_accuracy(model):
        with torch.no_grad():
            return float((model(x_test).argmax(1) == y_test).double().mean())

    runs = []
    with single_thread():
        for name in activations:
            if name not in DYING_ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; choose from "
                                 f"{list(DYING_ACTIVATIONS)}")
            act = ACTIVATIONS[DYING_ACTIVATIONS[name]]
            for seed in seeds:
                model = make_mlp(depth=depth, width=width, activation=act,
                                 in_features=x.shape[1], out_features=10, init=he, seed=seed)
                batches = torch.Generator().manual_seed(1000 + seed)
                measured = []
                for lr, steps in ((burst_lr, burst_steps), (recovery_lr, recovery_steps)):
                    opt = torch.optim.Adam(model.parameters(), lr=lr)
                    for _ in range(steps):
                        loss = minibatch_loss(model, x, y, F.cross_entropy, batch_size, batches)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                    measured += [off_unit_fraction(model, x), test_accuracy(model)]
                with torch.no_grad():
                    train_loss = float(F.cross_entropy(model(x), y))
                runs.append(DyingRun(name, int(seed), *measured, train_loss))
    return runs


def mean_std_over_seeds(runs: Sequence, fields: Sequence[str]
                   ) -> dict[str, dict[str, tuple[float, float]]]:
    """``{activation: {field: (mean, std)}}`` over the seeds of ``runs`` (population std).

    ``runs`` are :class:`DyingRun` (or any objects with an ``activation`` attribute and the
    ``fields``); activations keep the order in which they first appear.
    """
    out: dict[str, dict[str, tuple[float, float]]] = {}
    names = list(dict.fromkeys(r.activation for r in runs))
    for name in names:
        mine = [r for r in runs if r.activation == name]
        out[name] = {}
        for f in fields:
            v = np.array([getattr(r, f) for r in mine], dtype=float)
            out[name][f] = (float(v.mean()), float(v.std()))
    return out
