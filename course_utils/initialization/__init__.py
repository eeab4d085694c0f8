"""Weight initialization: fans, gains, the LeCun, Xavier/Glorot and He/Kaiming schemes, and
experiments that push a signal through a deep network to see which scheme keeps it alive.

Taught in notebooks/02_initialization. The first half mirrors ``torch.nn.init`` (names,
signatures and, for the in-place initializers, the exact random draws under the same
``torch.Generator``); the second half holds the signal-propagation experiments, the
mean-field theory drawn over them, and the plotting functions the notebook calls.

Importing this module changes no global state: no rcParams, no backend, no seeding.

The package is split by job; every public name is importable from
``course_utils.initialization``: ``schemes`` (fans, gains, the standard deviations and in-place
initializers, the notebook's named inits), ``experiments`` (signal propagation through deep
stacks and its mean-field theory; the first loss of a classifier as a check of its output
layer's scale) and ``plots``.
"""

from course_utils.initialization.experiments import (
    activation_stds,
    build_mlp,
    digits_classifier,
    gaussian_moments,
    layer_statistics,
    make_small_net,
    predicted_stds,
    train_first_steps,
)
from course_utils.initialization.plots import (
    plot_default_linear_init,
    plot_elu_factors,
    plot_first_losses,
    plot_layer_histograms,
    plot_normal_vs_uniform,
    plot_std_curves,
    plot_variance_vs_n,
)
from course_utils.initialization.schemes import (
    ACTIVATIONS,
    INIT_COLORS,
    INIT_LABELS,
    INITS,
    NORMAL_STDS,
    SMALL_STD,
    calculate_gain,
    fan_in_and_fan_out,
    init_named_,
    init_weight_std,
    kaiming_normal_,
    kaiming_std,
    kaiming_uniform_,
    lecun_normal_,
    lecun_std,
    xavier_normal_,
    xavier_std,
    xavier_uniform_,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "SMALL_STD",
    "NORMAL_STDS",
    "INIT_COLORS",
    "INIT_LABELS",
    "fan_in_and_fan_out",
    "calculate_gain",
    "xavier_std",
    "kaiming_std",
    "lecun_std",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "lecun_normal_",
    "init_weight_std",
    "init_named_",
    "build_mlp",
    "make_small_net",
    "activation_stds",
    "layer_statistics",
    "gaussian_moments",
    "predicted_stds",
    "digits_classifier",
    "train_first_steps",
    "plot_std_curves",
    "plot_layer_histograms",
    "plot_variance_vs_n",
    "plot_normal_vs_uniform",
    "plot_default_linear_init",
    "plot_elu_factors",
    "plot_first_losses",
]
