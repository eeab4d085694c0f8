"""Small torch building blocks the network-running visualisers share.

Self-contained on purpose (only torch): the visualisers must not depend on the exercise
modules. Everything runs in float64 so that exploding signals reach 1e100 before they overflow.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
from torch import nn

_threads_lock = threading.RLock()
_threads_depth = [0, 0]  # [nesting depth, saved thread count]


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block, then restore the previous setting.

    The visualisers' networks are tiny; on a busy 2-core machine torch's second thread (and the
    BLAS threads behind matmul) makes them several times slower, not faster. Nested and
    concurrent uses are counted, so the setting is restored only when the last block exits.
    """
    with _threads_lock:
        if _threads_depth[0] == 0:
            _threads_depth[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_depth[0] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_depth[0] -= 1
            if _threads_depth[0] == 0:
                torch.set_num_threads(_threads_depth[1])


ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")
INITS = ("pytorch_default", "normal_1", "small_normal", "xavier", "kaiming", "lecun")
INIT_LABELS = {
    "pytorch_default": "PyTorch default U(±1/√fan_in)",
    "normal_1": "N(0, 1)",
    "small_normal": "N(0, 0.01²)",
    "xavier": "Xavier/Glorot normal",
    "kaiming": "He/Kaiming normal",
    "lecun": "LeCun normal",
}


def activation_module(name: str) -> nn.Module:
    modules = {
        "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU, "identity": nn.Identity,
    }
    if name not in modules:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(modules)}")
    return modules[name]()


def kaiming_gain(activation: str) -> float:
    """torch.nn.init.calculate_gain for the activation (ELU and GELU take ReLU's gain; SELU
    takes 1, as PyTorch recommends with nonlinearity='linear')."""
    if activation in ("relu", "elu", "gelu"):
        return math.sqrt(2.0)
    if activation == "leaky_relu":
        return math.sqrt(2.0 / (1 + 0.01**2))
    if activation == "tanh":
        return 5.0 / 3.0
    return 1.0


def weight_std(init: str, fan_in: int, fan_out: int, activation: str) -> float:
    """Standard deviation of the weights each scheme draws (before the gain multiplier)."""
    if init == "pytorch_default":
        return 1.0 / math.sqrt(3.0 * fan_in)
    if init == "normal_1":
        return 1.0
    if init == "small_normal":
        return 0.01
    if init == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "kaiming":
        return kaiming_gain(activation) / math.sqrt(fan_in)
    if init == "lecun":
        return 1.0 / math.sqrt(fan_in)
    raise ValueError(f"unknown init {init!r}; choose from {INITS}")


def init_linear_(layer: nn.Linear, init: str, activation: str, gain_mult: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
    """Fill a Linear layer's weight with the scheme (times gain_mult); zero its bias."""
    fan_out, fan_in = layer.weight.shape
    std = weight_std(init, fan_in, fan_out, activation) * gain_mult
    with torch.no_grad():
        if init == "pytorch_default":
            bound = math.sqrt(3.0) * std
            layer.weight.uniform_(-bound, bound, generator=generator)
        else:
            layer.weight.normal_(0.0, std, generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


class MLP(nn.Module):
    """``depth`` hidden blocks of Linear (+ BatchNorm) + activation (+ residual), then a head.

    ``self.linears`` lists every ``nn.Linear``, input side first, head last.
    """

    def __init__(self, n_in: int, width: int, n_out: int, depth: int, activation: str,
                 init: str = "pytorch_default", gain_mult: float = 1.0, batch_norm: bool = False,
                 residual: bool = False, seed: int = 0, dtype=torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.residual = residual
        self.blocks = nn.ModuleList()
        self.linears: list[nn.Linear] = []
        dims = [n_in] + [width] * depth
        for i in range(depth):
            lin = nn.Linear(dims[i], dims[i + 1], dtype=dtype)
            init_linear_(lin, init, activation, gain_mult, gen)
            parts = [lin]
            if batch_norm:
                parts.append(nn.BatchNorm1d(dims[i + 1], dtype=dtype))
            parts.append(activation_module(activation))
            self.blocks.append(nn.Sequential(*parts))
            self.linears.append(lin)
        self.head = nn.Linear(dims[-1], n_out, dtype=dtype)
        init_linear_(self.head, init, "identity" if init == "kaiming" else activation,
                     gain_mult, gen)
        self.linears.append(self.head)
        self.activations: list[torch.Tensor] = []
        self.preactivations: list[torch.Tensor] = []

    def forward(self, x, keep: bool = False):
        if keep:
            self.activations, self.preactivations = [], []
        for i, block in enumerate(self.blocks):
            *pre_parts, act = block
            z = x
            for part in pre_parts:
                z = part(z)
            a = act(z)
            if self.residual and i > 0 and a.shape == x.shape:
                a = a + x
            if keep:
                a.retain_grad()
                self.preactivations.append(z.detach())
                self.activations.append(a)
            x = a
        return self.head(x)
