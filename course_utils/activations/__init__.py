"""Activation functions, their derivatives, and the plots of ``notebooks/01_activations``.

Every function here is a reference implementation of an exercise of that notebook (the
notebook's test cells import them as the trusted answer) or a pure plotting/measuring helper.

Conventions shared by all activation functions below:

* NumPy only, elementwise, for a scalar or an array of any shape;
* the result has the input's shape and a floating dtype: float inputs keep their dtype
  (float32 stays float32, as in torch), integer and boolean inputs give float64;
* a 0-d input gives a NumPy float scalar;
* no overflow, invalid-value or divide-by-zero floating-point events for ``|x|`` up to 1e4
  (underflow to 0 is allowed and expected, e.g. ``exp(-1e4)``);
* the input is never modified;
* each ``*_grad`` equals what ``torch.autograd`` gives for the matching
  ``torch.nn.functional`` op at every point, kinks included: torch takes the ``x <= 0`` branch
  at 0 (``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``, ``elu'(0) = alpha``,
  ``selu'(0) = scale * alpha``) and ``relu6'(0) = relu6'(6) = 0``.

Importing this module changes no global state (no rcParams, no backend, no seeding).

The package is split by job; every public name is importable from ``course_utils.activations``:
``functions`` (the activation functions and their derivatives, NumPy), ``experiments``
(dead ReLUs and whether other units come back, the torch oracle, ``make_mlp``, timings)
and ``plots``.
"""

from course_utils.activations.experiments import (
    DYING_ACTIVATIONS,
    DyingRun,
    dead_relu_fraction,
    dying_units_experiment,
    fp_outcome,
    make_mlp,
    mean_std_over_seeds,
    off_unit_fraction,
    reference_activations,
    time_activations,
    torch_activation,
)
from course_utils.activations.functions import (
    GELU_SIGMOID_COEF,
    SELU_ALPHA,
    SELU_SCALE,
    elu,
    elu_grad,
    erf,
    erfc,
    gelu,
    gelu_grad,
    gelu_sigmoid_approx,
    leaky_relu,
    leaky_relu_grad,
    relu,
    relu6,
    relu6_grad,
    relu_grad,
    selu,
    selu_grad,
    sigmoid,
    sigmoid_grad,
    tanh,
    tanh_grad,
)
from course_utils.activations.plots import (
    plot_activation_speed,
    plot_activations,
    plot_dead_relu_fraction,
    plot_dying_units,
    plot_gelu_approximations,
    plot_gradient_decay,
)

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "GELU_SIGMOID_COEF",
    "sigmoid",
    "sigmoid_grad",
    "tanh",
    "tanh_grad",
    "relu",
    "relu_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "elu",
    "elu_grad",
    "selu",
    "selu_grad",
    "erf",
    "erfc",
    "gelu",
    "gelu_grad",
    "gelu_sigmoid_approx",
    "relu6",
    "relu6_grad",
    "dead_relu_fraction",
    "fp_outcome",
    "torch_activation",
    "reference_activations",
    "make_mlp",
    "time_activations",
    "DYING_ACTIVATIONS",
    "DyingRun",
    "off_unit_fraction",
    "dying_units_experiment",
    "mean_std_over_seeds",
    "plot_activations",
    "plot_gradient_decay",
    "plot_dead_relu_fraction",
    "plot_dying_units",
    "plot_gelu_approximations",
    "plot_activation_speed",
]
