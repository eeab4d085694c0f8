"""Experiments of ``notebooks/01_activations``: dead ReLUs, the torch oracle the tests compare
with, the notebook's MLP and activation timings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

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
    import torch
    from torch import nn

    counts = [0, 0]  # dead, total

    def hook(module, inputs, output):
        units = output.detach().reshape(output.shape[0], -1)
        counts[0] += int((units == 0).all(dim=0).sum())
        counts[1] += units.shape[1]

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the model has no nn.ReLU module")
    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if counts[1] == 0:
        raise ValueError("no nn.ReLU module ran during the forward pass")
    return counts[0] / counts[1]


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
