"""The course's one vocabulary for small torch networks: activations, inits and an MLP builder.

Every topic module, visualiser and notebook builds its multilayer perceptrons here, so a name
means the same thing everywhere:

* :data:`ACTIVATIONS` maps an activation's name to a factory of its ``torch.nn`` module
  (``ACTIVATIONS["relu"]()`` is an ``nn.ReLU``); :func:`activation_module` does the lookup with
  a clear error for an unknown name;
* :data:`INITS` names the weight initializations the notebooks teach: ``pytorch_default``
  (``nn.Linear``'s own U(-1/sqrt(fan_in), 1/sqrt(fan_in))), ``zeros``, ``normal`` (N(0, std²),
  std given), ``lecun`` (N(0, 1/fan)), ``xavier`` (N(0, gain² 2/(fan_in+fan_out))) and ``he``
  (N(0, gain²/fan), gain sqrt(2) unless given); ``fan`` is fan_in or fan_out as ``mode`` says,
  as in ``torch.nn.init``. :func:`init_std` gives the standard deviation, :func:`init_linear_`
  fills an ``nn.Linear`` and :func:`he_gain` is the gain He init uses for an activation;
* :func:`mlp` builds a :class:`MLP` (depth, width, activation, init, batch-norm placement,
  residual blocks) with reproducible weights from a seed or a ``torch.Generator``.

Example::

    from course_utils.nets import mlp
    model = mlp(2, 1, depth=10, width=32, activation="tanh", init="xavier", seed=0)

Importing this module changes no global state; building a network leaves the global torch RNG
as it was.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_TYPES",
    "HIDDEN_ACTIVATIONS",
    "INITS",
    "INIT_LABELS",
    "BATCH_NORM_PLACEMENTS",
    "MLP",
    "activation_module",
    "he_gain",
    "init_std",
    "init_linear_",
    "mlp",
    "minibatch_loss",
    "single_thread",
]

#: name -> factory of the ``torch.nn`` module (``linear`` and ``identity`` are the same).
ACTIVATIONS: Mapping[str, Callable[[], nn.Module]] = MappingProxyType({
    "identity": nn.Identity,
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "relu6": nn.ReLU6,
})

#: The module classes of the activations of :data:`ACTIVATIONS` (identity excluded), for
#: ``isinstance`` checks on a network's modules.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU,
                                                 nn.ELU, nn.SELU, nn.GELU, nn.ReLU6)

#: The activations the course's experiments put in hidden layers (dropdowns, sweeps).
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")

#: The weight initializations the notebooks teach, in the order they are taught.
INITS = ("pytorch_default", "zeros", "normal", "lecun", "xavier", "he")

#: Short labels for legends and dropdowns.
INIT_LABELS: Mapping[str, str] = MappingProxyType({
    "pytorch_default": "PyTorch default U(±1/√fan_in)",
    "zeros": "zeros",
    "normal": "N(0, std²)",
    "lecun": "LeCun N(0, 1/fan_in)",
    "xavier": "Xavier/Glorot normal",
    "he": "He/Kaiming normal",
})

#: Where :func:`mlp` puts batch norm: nowhere, between Linear and activation, or after it.
BATCH_NORM_PLACEMENTS = (None, "before", "after")


def activation_module(name: str | Callable[[], nn.Module]) -> nn.Module:
    """A new ``torch.nn`` module for the activation ``name`` (a key of :data:`ACTIVATIONS`);
    a module class or factory (such as ``nn.ReLU``) is called instead."""
    if callable(name):
        return name()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def he_gain(activation: str) -> float:
    """The gain He init uses for ``activation``: ``torch.nn.init.calculate_gain`` where torch
    defines one (``leaky_relu`` with its slope 0.01), sqrt(2) (ReLU's) for ``elu``, ``gelu``
    and ``relu6``, and 1 for ``selu`` and the identity (SELU is meant for LeCun's std 1/fan_in,
    which is He with gain 1)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
    if activation in ("relu", "elu", "gelu", "relu6"):
        return math.sqrt(2.0)
    if activation == "leaky_relu":
        return math.sqrt(2.0 / (1 + 0.01**2))
    if activation == "tanh":
        return 5.0 / 3.0
    return 1.0


def init_std(init: str, fan_in: int, fan_out: int, *, gain: float | None = None,
             std: float = 1.0, mode: str = "fan_in") -> float:
    """Standard deviation of the weights the named ``init`` draws (see :data:`INITS`).

    ``gain`` multiplies ``xavier`` (default 1) and replaces He's sqrt(2); ``std`` is the
    ``normal`` init's standard deviation; ``mode`` ("fan_in" or "fan_out") picks the fan of
    ``lecun`` and ``he``, as in ``torch.nn.init.kaiming_normal_``.
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', not {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    if init == "pytorch_default":
        return 1.0 / math.sqrt(3.0 * fan_in)
    if init == "zeros":
        return 0.0
    if init == "normal":
        return float(std)
    if init == "lecun":
        return 1.0 / math.sqrt(fan)
    if init == "xavier":
        return (1.0 if gain is None else gain) * math.sqrt(2.0 / (fan_in + fan_out))
    if init == "he":
        return math.sqrt(2.0 / fan) if gain is None else gain / math.sqrt(fan)
    raise ValueError(f"unknown init {init!r}: use one of {INITS}")


def init_linear_(linear: nn.Linear, init: str = "pytorch_default", *,
                 gain: float | None = None, std: float = 1.0, mode: str = "fan_in",
                 scale: float = 1.0, bias: float | None = None, uniform: bool | None = None,
                 generator: torch.Generator | None = None) -> nn.Linear:
    """Fill ``linear``'s weight (and bias) in place with the named ``init``; return ``linear``.

    The weight's standard deviation is ``scale * init_std(init, ...)`` (see :func:`init_std`
    for ``gain``, ``std`` and ``mode``). It is drawn from a uniform distribution for
    ``pytorch_default`` and a normal one otherwise; ``uniform=True``/``False`` overrides that
    (same standard deviation). ``bias=None`` gives each scheme's own bias: ``pytorch_default``
    draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (times ``scale``) like ``nn.Linear``, the others
    0; a number fills the bias with it. Draws come from ``generator`` (the global RNG if None),
    weight first, then bias.
    """
    fan_out, fan_in = linear.weight.shape
    w_std = init_std(init, fan_in, fan_out, gain=gain, std=std, mode=mode)
    if uniform is None:
        uniform = init == "pytorch_default"
    with torch.no_grad():
        if init == "zeros":
            linear.weight.zero_()
        elif uniform:
            # U(-b, b) has std b / sqrt(3); nn.Linear's own bound is exactly 1 / sqrt(fan_in)
            bound = (1.0 / math.sqrt(fan_in) if init == "pytorch_default"
                     else math.sqrt(3.0) * w_std)
            linear.weight.uniform_(-bound, bound, generator=generator)
        else:
            linear.weight.normal_(0.0, w_std, generator=generator)
        if scale != 1.0:
            linear.weight.mul_(scale)  # as torch.nn.init's draw followed by a rescale
        if linear.bias is not None:
            if bias is not None:
                linear.bias.fill_(bias)
            elif init == "pytorch_default":
                bound = scale / math.sqrt(fan_in)
                linear.bias.uniform_(-bound, bound, generator=generator)
            else:
                linear.bias.zero_()
    return linear


class MLP(nn.Module):
    """``depth`` hidden blocks (``nn.Sequential`` of Linear, [BatchNorm1d,] activation
    [, BatchNorm1d]) and a Linear ``head`` (or none); build one with :func:`mlp`.

    With ``residual=True`` every block after the first adds its input to its output
    (``h = h + block(h)``). ``linears`` lists every ``nn.Linear``, input side first, head last.
    ``forward(x, keep=True)`` also keeps each block's pre-activation (the activation's input,
    detached, in ``preactivations``) and its output (with ``retain_grad``, in ``activations``),
    so a backward pass leaves the gradient of the loss with respect to each block's output.
    ``act_index`` is the activation's position in each block (default: last).
    """

    def __init__(self, blocks: list[nn.Sequential], head: nn.Linear | None,
                 residual: bool = False, act_index: int = -1):
        super().__init__()
        self.act_index = act_index
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.residual = residual
        self.linears: list[nn.Linear] = [b[0] for b in blocks] + ([head] if head else [])
        self.activations: list[torch.Tensor] = []
        self.preactivations: list[torch.Tensor] = []

    def as_sequential(self) -> nn.Sequential:
        """The same modules (shared, not copied) as one flat ``nn.Sequential``, for code that
        indexes or iterates the layers. Not for residual networks (the skips would be lost)."""
        if self.residual:
            raise ValueError("a residual MLP is not a flat sequence of layers; keep the MLP")
        head = [] if self.head is None else [self.head]
        return nn.Sequential(*[m for block in self.blocks for m in block], *head)

    def forward(self, x: torch.Tensor, keep: bool = False) -> torch.Tensor:
        if keep:
            self.activations, self.preactivations = [], []
        for i, block in enumerate(self.blocks):
            if keep:
                k = self.act_index % len(block)
                z = block[:k](x)
                a = block[k:](z)
                self.preactivations.append(z.detach())
            else:
                a = block(x)
            if self.residual and i > 0:
                a = a + x
            if keep:
                if a.requires_grad:
                    a.retain_grad()
                self.activations.append(a)
            x = a
        return x if self.head is None else self.head(x)


def mlp(n_in: int, n_out: int | None, *, depth: int, width: int,
        activation: str | Callable[[], nn.Module] = "relu",
        init: str | None = "pytorch_default", gain: float | None = None, std: float = 1.0,
        mode: str = "fan_in", scale: float = 1.0, bias: float | None = None,
        head_init: str | None = None, head_gain: float | None = None,
        head_bias: float | None = None, uniform: bool | None = None, linear_bias: bool = True,
        batch_norm: str | bool | None = None, norm: Callable[[int], nn.Module] | None = None,
        residual: bool = False, seed: int | None = 0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32) -> MLP:
    """A multilayer perceptron: ``depth`` hidden blocks of ``width`` units, then a Linear head.

    ``n_in``/``n_out``: input and output sizes (``n_out=None``: no head, the last block's
    output is the network's). ``activation``: a key of :data:`ACTIVATIONS`
    (or a module class such as ``nn.ReLU``).
    ``init``, ``gain``, ``std``, ``mode``, ``scale``, ``bias`` and ``uniform``: how every hidden
    Linear is filled (see :func:`init_linear_`); the head uses ``head_init`` (default: ``init``),
    ``head_gain`` (default: ``gain``) and ``head_bias`` (default: ``bias``). ``init=None`` keeps
    ``nn.Linear``'s own initialization, drawn from the global RNG seeded with ``seed`` inside
    ``torch.random.fork_rng`` (so the global RNG is left as it was).
    ``batch_norm``: ``None``/``False`` (none), ``"before"``/``True`` (Linear, BN, activation)
    or ``"after"`` (Linear, activation, BN); ``norm(width)`` replaces ``nn.BatchNorm1d``.
    ``residual``: blocks 2..depth add their input to their output.
    Weights come from ``generator`` if given, else from ``torch.Generator().manual_seed(seed)``;
    layers are filled input side first, weight then bias. ``linear_bias=False`` builds every
    Linear without a bias. ``dtype``: of every parameter.
    """
    if depth < 1 or width < 1 or n_in < 1 or (n_out is not None and n_out < 1):
        raise ValueError(f"depth, width, n_in and n_out must be at least 1 "
                         f"(got depth={depth}, width={width}, n_in={n_in}, n_out={n_out})")
    activation_module(activation)  # a clear error for an unknown name
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")
    if batch_norm is True:
        batch_norm = "before"
    if batch_norm is False:
        batch_norm = None
    if batch_norm not in BATCH_NORM_PLACEMENTS:
        raise ValueError(f"batch_norm must be one of {BATCH_NORM_PLACEMENTS} (or True/False), "
                         f"not {batch_norm!r}")
    norm = norm or (lambda n: nn.BatchNorm1d(n, dtype=dtype))
    with torch.random.fork_rng(devices=[]):
        if seed is not None:  # the CPU generator only (torch.manual_seed also seeds devices)
            torch.default_generator.manual_seed(seed)
        blocks, fan = [], n_in
        for _ in range(depth):
            parts: list[nn.Module] = [nn.Linear(fan, width, bias=linear_bias, dtype=dtype)]
            if batch_norm == "before":
                parts.append(norm(width))
            parts.append(activation_module(activation))
            if batch_norm == "after":
                parts.append(norm(width))
            blocks.append(nn.Sequential(*parts))
            fan = width
        head = None if n_out is None else nn.Linear(fan, n_out, bias=linear_bias, dtype=dtype)
    model = MLP(blocks, head, residual=residual, act_index=2 if batch_norm == "before" else 1)
    if init is None:
        return model
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    common = dict(std=std, mode=mode, scale=scale, uniform=uniform, generator=generator)
    for block in model.blocks:
        init_linear_(block[0], init, gain=gain, bias=bias, **common)
    if head is not None:
        init_linear_(head, head_init or init, gain=gain if head_gain is None else head_gain,
                     bias=bias if head_bias is None else head_bias, **common)
    return model


def minibatch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn,
                   batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``loss_fn(model(x[idx]), y[idx])`` on ``batch_size`` rows ``idx`` drawn with replacement
    (one ``torch.randint`` from ``generator``): one step of a mini-batch training loop.

    The loops of ``01_activations``, ``03_batch_norm`` and ``06_architectures`` call it once a
    step; what each records around ``backward()`` and ``step()`` stays in the loop.
    """
    idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
    return loss_fn(model(x[idx]), y[idx])


_threads_lock = threading.RLock()
_threads_depth = [0, 0]  # [nesting depth, saved thread count]


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block, then restore the previous setting.

    Small networks are several times slower with torch's second thread on a busy machine.
    Nested and concurrent uses are counted: the setting is restored when the last block exits.
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
