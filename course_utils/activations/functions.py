"""The activation functions of ``notebooks/01_activations`` and their derivatives, in NumPy.

The conventions they share are in the docstring of :mod:`course_utils.activations`.
"""

from __future__ import annotations

import math

import numpy as np

#: SELU's constants, exactly as ``torch.nn.SELU`` uses them (Klambauer et al., 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: The coefficient of GELU's sigmoid approximation ``x * sigmoid(1.702 x)``.
GELU_SIGMOID_COEF = 1.702

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_KAPPA = 0.044715



def _float_array(x) -> np.ndarray:
    """``x`` as an array of a floating dtype (never a copy-and-modify of the caller's data)."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    return a


def _finish(out: np.ndarray):
    """Return 0-d results as NumPy scalars, everything else unchanged."""
    out = np.asarray(out)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- sigmoid, tanh
def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow.

    ``exp`` only ever sees ``-|x|``: for ``x >= 0`` use ``1 / (1 + e)``, for ``x < 0`` use
    ``e / (1 + e)``, with ``e = exp(-|x|)`` in (0, 1]. Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    e = np.exp(-np.abs(x))
    return _finish(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def sigmoid_grad(x):
    """``sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2`` with ``e = exp(-|x|)``.

    The second form is exact even where ``1 - sigmoid(x)`` would cancel. At most 1/4 (at 0).
    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    e = np.exp(-np.abs(x))
    return _finish(e / (1.0 + e) ** 2)


def tanh(x):
    """Hyperbolic tangent (``2 sigmoid(2x) - 1``). Taught in ``notebooks/01_activations``."""
    return _finish(np.tanh(_float_array(x)))


def tanh_grad(x):
    """``tanh'(x) = 1 - tanh(x)^2`` (at most 1, at 0). Taught in ``notebooks/01_activations``."""
    t = np.tanh(_float_array(x))
    return _finish(1.0 - t * t)


# --------------------------------------------------------------------------- ReLU family
def relu(x):
    """``max(0, x)``. Taught in ``notebooks/01_activations``."""
    x = _float_array(x)
    return _finish(np.where(x > 0, x, np.zeros_like(x)))


def relu_grad(x):
    """1 for ``x > 0``, else 0; at exactly 0 it is 0, as in torch.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish((x > 0).astype(x.dtype))


def leaky_relu(x, negative_slope=0.01):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (``torch.nn.functional.leaky_relu``).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(np.where(x > 0, x, negative_slope * x))


def leaky_relu_grad(x, negative_slope=0.01):
    """1 for ``x > 0``, ``negative_slope`` for ``x <= 0`` (torch's choice at 0).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    one = np.ones_like(x)
    return _finish(np.where(x > 0, one, negative_slope * one))


def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha (exp(x) - 1)`` otherwise; ``expm1`` keeps it exact near 0.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = alpha * np.expm1(np.minimum(x, 0))
    return _finish(np.where(x > 0, x, neg))


def elu_grad(x, alpha=1.0):
    """1 for ``x > 0``, ``alpha exp(x)`` for ``x <= 0`` (so ``elu'(0) = alpha``, as in torch).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = alpha * np.exp(np.minimum(x, 0))
    return _finish(np.where(x > 0, np.ones_like(x), neg))


def selu(x):
    """``SELU_SCALE * elu(x, SELU_ALPHA)`` with torch's constants to full double precision.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = SELU_ALPHA * np.expm1(np.minimum(x, 0))
    return _finish(SELU_SCALE * np.where(x > 0, x, neg))


def selu_grad(x):
    """``SELU_SCALE`` for ``x > 0``, ``SELU_SCALE * SELU_ALPHA * exp(x)`` for ``x <= 0``.

    Its largest value is ``SELU_SCALE * SELU_ALPHA`` (about 1.7581), reached at 0 (where torch
    takes the ``x <= 0`` branch). Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    neg = SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))
    return _finish(np.where(x > 0, SELU_SCALE * np.ones_like(x), neg))


def relu6(x):
    """``min(max(0, x), 6)``. Taught in ``notebooks/01_activations``."""
    x = _float_array(x)
    return _finish(np.clip(x, 0, 6))


def relu6_grad(x):
    """1 for ``0 < x < 6``, else 0 (torch gives 0 at both kinks, 0 and 6).

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(((x > 0) & (x < 6)).astype(x.dtype))


# --------------------------------------------------------------------------- GELU
_erf_elementwise = np.frompyfunc(math.erf, 1, 1)
_erfc_elementwise = np.frompyfunc(math.erfc, 1, 1)


def erf(x):
    """The error function, elementwise, in float64 (``math.erf`` on every element).

    NumPy has no ``erf``; ``math.erf`` is accurate to double precision. Used by :func:`gelu`.
    Taught in ``notebooks/01_activations``.
    """
    a = np.asarray(x, dtype=np.float64)
    return _finish(np.asarray(_erf_elementwise(a), dtype=np.float64))


def erfc(x):
    """``1 - erf(x)``, elementwise, in float64, without cancellation for large ``x``.

    Taught in ``notebooks/01_activations``.
    """
    a = np.asarray(x, dtype=np.float64)
    return _finish(np.asarray(_erfc_elementwise(a), dtype=np.float64))


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x, approximate="none"):
    """GELU ``x * Phi(x)``, ``Phi`` the standard normal CDF (``approximate="none"``), or torch's
    tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``"tanh"``).

    ``Phi(x) = erfc(-x / sqrt(2)) / 2`` is used so that the left tail keeps full relative
    precision. Computed in float64 and returned in the input's float dtype.
    Taught in ``notebooks/01_activations``.
    """
    _check_approximate(approximate)
    x0 = _float_array(x)
    x = x0.astype(np.float64)
    if approximate == "none":
        out = x * 0.5 * np.asarray(erfc(-x * _INV_SQRT_2))
    else:
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_KAPPA * x * x * x)
        out = 0.5 * x * (1.0 + np.tanh(inner))
    return _finish(out.astype(x0.dtype))


def gelu_grad(x, approximate="none"):
    """Derivative of :func:`gelu`: ``Phi(x) + x phi(x)`` (exact) or the derivative of the tanh
    formula (``"tanh"``), matching ``torch.autograd`` for ``torch.nn.functional.gelu``.

    Taught in ``notebooks/01_activations``.
    """
    _check_approximate(approximate)
    x0 = _float_array(x)
    x = x0.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * np.asarray(erfc(-x * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        out = cdf + x * pdf
    else:
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_KAPPA * x * x * x)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_KAPPA * x * x)
        out = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    return _finish(out.astype(x0.dtype))


def gelu_sigmoid_approx(x):
    """The sigmoid approximation of GELU, ``x * sigmoid(1.702 x)``.

    Taught in ``notebooks/01_activations``.
    """
    x = _float_array(x)
    return _finish(x * np.asarray(sigmoid(GELU_SIGMOID_COEF * x)))
