"""Batch normalization from scratch, and the experiments around it.

Taught in ``notebooks/03_batch_norm``. The NumPy functions work on inputs of shape ``(N, D)``
(``N`` samples, ``D`` features) and compute every statistic per feature, over axis 0.
:class:`BatchNorm1d` is a ``torch.nn.Module`` that matches ``torch.nn.BatchNorm1d`` for
``(N, C)`` input. The plotting functions are pure: they return a ``Figure`` and touch no global
state.

The package is split by job; every public name is importable from ``course_utils.batch_norm``:
``reference`` (standardization, batch norm forward/backward/eval in NumPy, gradient checks,
the ``BatchNorm1d`` module, folding), ``experiments`` (the teacher data, the notebook's MLP,
training and measurements) and ``plots``.
"""

from course_utils.batch_norm.experiments import (
    NoisyBatchNorm1d,
    batch_stat_spread,
    bn_depth_sweep,
    init_scale_sweep,
    layer_input_drift,
    loss_along_gradient,
    make_mlp,
    make_teacher_data,
    train_classifier,
)
from course_utils.batch_norm.plots import (
    plot_batch_stat_spread,
    plot_depth_sweep,
    plot_init_scale_sweep,
    plot_layer_grad_norms,
    plot_layer_stats,
    plot_loss_curves,
    plot_train_vs_eval_stats,
)
from course_utils.batch_norm.reference import (
    BatchNorm1d,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_eval,
    batchnorm_forward,
    fit_standardizer,
    fold_batchnorm,
    numerical_gradient,
    relative_error,
    standardize,
    update_running_stats,
)

__all__ = [
    "fit_standardizer",
    "standardize",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_staged",
    "update_running_stats",
    "batchnorm_eval",
    "numerical_gradient",
    "relative_error",
    "BatchNorm1d",
    "fold_batchnorm",
    "make_teacher_data",
    "make_mlp",
    "train_classifier",
    "NoisyBatchNorm1d",
    "layer_input_drift",
    "loss_along_gradient",
    "batch_stat_spread",
    "bn_depth_sweep",
    "init_scale_sweep",
    "plot_loss_curves",
    "plot_layer_grad_norms",
    "plot_batch_stat_spread",
    "plot_depth_sweep",
    "plot_init_scale_sweep",
    "plot_train_vs_eval_stats",
    "plot_layer_stats",
]
