"""Fans, gains, the LeCun, Xavier/Glorot and He/Kaiming schemes, and the named inits of
``notebooks/02_initialization`` (mirroring ``torch.nn.init``: names, signatures and, for the
in-place initializers, the exact random draws under the same ``torch.Generator``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from course_utils.nets import init_std
from course_utils.plotting import PALETTE

_LINEAR_GAIN_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

#: activation names understood by :func:`activation_stds` and :func:`layer_statistics`
ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")
#: init names understood by :func:`activation_stds` and :func:`layer_statistics`: the course's
#: vocabulary (:data:`course_utils.nets.INITS`), with its ``normal`` init in the two sizes this
#: notebook compares, ``small`` (std :data:`SMALL_STD`) and ``standard_normal`` (std 1)
INITS = ("zeros", "small", "standard_normal", "pytorch_default", "lecun", "xavier", "he")
#: standard deviation of the "small" init
SMALL_STD = 0.01
#: the notebook's two fixed-size ``normal`` inits: name -> std
NORMAL_STDS = {"small": SMALL_STD, "standard_normal": 1.0}

INIT_COLORS = {
    "small": PALETTE[5],
    "standard_normal": PALETTE[3],
    "pytorch_default": PALETTE[1],
    "lecun": PALETTE[0],
    "xavier": PALETTE[4],
    "he": PALETTE[2],
    "zeros": PALETTE[6],
}
INIT_LABELS = {
    "zeros": "zeros",
    "small": f"small, N(0, {SMALL_STD}²)",
    "standard_normal": "N(0, 1)",
    "pytorch_default": "PyTorch default (uniform)",
    "lecun": "LeCun, N(0, 1/fan_in)",
    "xavier": "Xavier, N(0, 2/(fan_in+fan_out))",
    "he": "He, N(0, 2/fan_in)",
}


# ------------------------------------------------------------------------ fans and gains
def fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight with this shape, exactly as PyTorch computes them.

    ``shape[0]`` counts output units (or output channels) and ``shape[1]`` input units (or
    input channels); any further dimensions form the receptive field (the kernel), whose size
    multiplies both. A ``Linear(in, out)`` weight has shape ``(out, in)``, so its fan-in is
    ``in`` and its fan-out is its own ``out``. Raises ``ValueError`` for fewer than 2 dims.

    Taught in notebooks/02_initialization.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan-in and fan-out need a weight with at least 2 dimensions, got shape {shape}"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain ``torch.nn.init.calculate_gain`` recommends for a nonlinearity.

    linear, conv*, conv_transpose* and sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope**2)) with slope ``param`` (0.01 when ``param`` is None);
    selu: 3/4. Any other name raises ``ValueError``.

    Taught in notebooks/02_initialization.
    """
    if nonlinearity in _LINEAR_GAIN_NAMES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _mode_fan(shape: Sequence[int], mode: str) -> int:
    fan_in, fan_out = fan_in_and_fan_out(shape)
    mode = mode.lower()
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode {mode!r} is not supported: use 'fan_in' or 'fan_out'")


# ------------------------------------------------------------------------ standard deviations
def xavier_std(shape: Sequence[int], gain: float = 1.0) -> float:
    """Standard deviation of Xavier/Glorot init: ``gain * sqrt(2 / (fan_in + fan_out))``.

    Taught in notebooks/02_initialization.
    """
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def kaiming_std(shape: Sequence[int], a: float = 0, mode: str = "fan_in",
                nonlinearity: str = "leaky_relu") -> float:
    """Standard deviation of He/Kaiming init: ``calculate_gain(nonlinearity, a) / sqrt(fan)``.

    ``fan`` is the fan-in or the fan-out, as ``mode`` says. With the defaults (leaky_relu with
    slope ``a = 0``) the gain is sqrt(2), i.e. the ReLU gain.

    Taught in notebooks/02_initialization.
    """
    fan = _mode_fan(shape, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def lecun_std(shape: Sequence[int]) -> float:
    """Standard deviation of LeCun init: ``1 / sqrt(fan_in)`` (Kaiming with gain 1, fan_in mode).

    Taught in notebooks/02_initialization.
    """
    fan_in, _ = fan_in_and_fan_out(shape)
    return 1.0 / math.sqrt(fan_in)


# ------------------------------------------------------------------------ in-place initializers
def _uniform_(tensor: torch.Tensor, bound: float, generator) -> torch.Tensor:
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def _normal_(tensor: torch.Tensor, std: float, generator) -> torch.Tensor:
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from U(-b, b) with ``b = sqrt(3) * xavier_std`` and return it.

    Matches ``torch.nn.init.xavier_uniform_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    return _uniform_(tensor, math.sqrt(3.0) * xavier_std(tensor.shape, gain), generator)


def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, xavier_std**2) and return it.

    Matches ``torch.nn.init.xavier_normal_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    return _normal_(tensor, xavier_std(tensor.shape, gain), generator)


def kaiming_uniform_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from U(-b, b) with ``b = sqrt(3) * kaiming_std`` and return it.

    Matches ``torch.nn.init.kaiming_uniform_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    if 0 in tensor.shape:  # torch warns and leaves an empty tensor alone
        return tensor
    std = kaiming_std(tensor.shape, a=a, mode=mode, nonlinearity=nonlinearity)
    return _uniform_(tensor, math.sqrt(3.0) * std, generator)


def kaiming_normal_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, kaiming_std**2) and return it.

    Matches ``torch.nn.init.kaiming_normal_`` draw for draw under the same generator.
    Taught in notebooks/02_initialization.
    """
    if 0 in tensor.shape:  # torch warns and leaves an empty tensor alone
        return tensor
    std = kaiming_std(tensor.shape, a=a, mode=mode, nonlinearity=nonlinearity)
    return _normal_(tensor, std, generator)


def lecun_normal_(tensor: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from N(0, 1/fan_in) and return it.

    PyTorch has no ``lecun_normal_``; this matches
    ``torch.nn.init.kaiming_normal_(tensor, nonlinearity="linear")`` draw for draw.
    Taught in notebooks/02_initialization.
    """
    return _normal_(tensor, lecun_std(tensor.shape), generator)


# ------------------------------------------------------------------------ named schemes
def init_weight_std(init: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the weights each named init of :data:`INITS` draws.

    ``pytorch_default`` is ``nn.Linear``'s own init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    whose standard deviation is ``1 / sqrt(3 fan_in)``; the others are
    :func:`course_utils.nets.init_std`'s. Taught in notebooks/02_initialization.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")
    if init in NORMAL_STDS:
        return init_std("normal", fan_in, fan_out, std=NORMAL_STDS[init])
    return init_std(init, fan_in, fan_out)


def init_named_(weight: torch.Tensor, init: str, generator: torch.Generator | None = None,
                gain: float = 1.0, uniform: bool | None = None) -> torch.Tensor:
    """Fill a weight in place with one of the named inits of :data:`INITS` and return it.

    All are normal draws except ``pytorch_default`` (uniform) and ``zeros``. ``gain``
    multiplies the standard deviation; ``uniform=True`` (or ``False``) draws from a uniform
    (or normal) distribution with that same standard deviation instead of the init's own.
    Taught in notebooks/02_initialization.
    """
    fan_in, fan_out = fan_in_and_fan_out(weight.shape)
    std = gain * init_weight_std(init, fan_in, fan_out)
    if uniform is None:
        uniform = init == "pytorch_default"
    with torch.no_grad():
        if init == "zeros":
            return weight.zero_()
        if uniform:
            bound = math.sqrt(3.0) * std
            return weight.uniform_(-bound, bound, generator=generator)
        return weight.normal_(0.0, std, generator=generator)
