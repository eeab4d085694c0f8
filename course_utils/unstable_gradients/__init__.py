"""Reference code, small experiments and plots for ``notebooks/00_unstable_gradients``.

The package is split by job; every public name is importable from
``course_utils.unstable_gradients``:

* ``reference``: :func:`chain_grad_magnitudes` and :func:`layer_grad_norms`, the reference
  answers of the notebook's two exercises, and :func:`chain_grad_magnitudes_autograd`, the
  independent oracle (``torch.autograd``) the tests compare them with;
* ``experiments``: :func:`make_mlp`, :func:`make_rings` and :func:`train_sgd` build the deep
  networks, the toy data set and the short training runs the notebook uses to show vanishing
  and exploding gradients; :func:`tent_network`, :func:`count_linear_pieces` and
  :func:`backward_profiles`;
* ``plots``: pure ``plot_*`` functions that take numbers and return a ``matplotlib`` Figure,
  never call ``plt.show`` and never touch rcParams.

Importing this package changes no global state.
"""

from course_utils.unstable_gradients.experiments import (
    ResidualBlock,
    backward_profiles,
    count_linear_pieces,
    make_mlp,
    make_rings,
    tent_network,
    train_sgd,
)
from course_utils.unstable_gradients.plots import (
    plot_backward_profiles,
    plot_chain_gradients,
    plot_layer_grad_norms,
    plot_sawtooth,
    plot_training_curves,
)
from course_utils.unstable_gradients.reference import (
    chain_grad_magnitudes,
    chain_grad_magnitudes_autograd,
    layer_grad_norms,
)

__all__ = [
    "chain_grad_magnitudes",
    "chain_grad_magnitudes_autograd",
    "layer_grad_norms",
    "make_rings",
    "ResidualBlock",
    "make_mlp",
    "train_sgd",
    "tent_network",
    "count_linear_pieces",
    "plot_chain_gradients",
    "plot_layer_grad_norms",
    "plot_training_curves",
    "plot_sawtooth",
    "backward_profiles",
    "plot_backward_profiles",
]
