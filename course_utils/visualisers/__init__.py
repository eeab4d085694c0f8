"""Interactive visualisers, one per notebook: a pure ``plot_*`` function returning a
``matplotlib.figure.Figure`` (with the ``*_data`` function it draws) and a thin widget class.

========================  =============================  ==========================================
notebook                  widget                         pure functions
========================  =============================  ==========================================
00_unstable_gradients     :class:`GradientFlowExplorer`  gradient_flow_data / plot_gradient_flow
01_activations            :class:`ActivationExplorer`    activation_data / plot_activations
02_initialization         :class:`InitializationLab`     init_lab_data / plot_initialization
03_batch_norm             :class:`BatchNormExplorer`     batchnorm_data / plot_batchnorm
04_gradient_clipping      :class:`ClippingGeometry`      clipping_data / plot_clipping
05_in_practice            :class:`TrainingDoctor`        training_doctor_data / plot_training
06_architectures          :class:`RNNGradientExplorer`   rnn_gradient_data / plot_rnn_gradients
07_low_precision          :class:`FloatFormatExplorer`   float_format_data / plot_float_format
========================  =============================  ==========================================

Display a widget as the last expression of a cell. Without a widget front end (nbconvert,
nbgrader, ``TUG_STATIC_WIDGETS=1``) the same call shows the static figure and a one-line note.
Every visualiser subclasses :class:`course_utils.visualisers.base.Visualiser` (see that
module for how to write one); networks come from :mod:`course_utils.nets` and colours and
figure helpers from :mod:`course_utils.plotting`.

Importing this package changes no global state (no pyplot, no rcParams, no backend switch).
"""

from course_utils.plotting import OKABE_ITO, figure_to_png

from .activation_explorer import (
    ActivationExplorer,
    activation_data,
    activation_explorer,
    plot_activations,
)
from .base import STATIC_ENV, Visualiser, widgets_available
from .batch_norm_explorer import (
    BatchNormExplorer,
    batch_norm_explorer,
    batchnorm_data,
    plot_batchnorm,
)
from .clipping_geometry import (
    ClippingGeometry,
    clipping_data,
    clipping_geometry,
    plot_clipping,
    recorded_grad_norm_trace,
)
from .float_formats import (
    FloatFormatExplorer,
    float_format_data,
    float_format_explorer,
    plot_float_format,
)
from .gradient_flow import (
    GradientFlowExplorer,
    gradient_flow_data,
    gradient_flow_explorer,
    plot_gradient_flow,
)
from .initialization_lab import (
    InitializationLab,
    init_lab_data,
    initialization_lab,
    plot_initialization,
)
from .rnn_gradients import (
    RNNGradientExplorer,
    plot_rnn_gradients,
    rnn_gradient_data,
    rnn_gradient_explorer,
)
from .training_doctor import (
    TrainingDoctor,
    TrainingRun,
    plot_training,
    training_doctor,
    training_doctor_data,
)

__all__ = [
    "OKABE_ITO", "STATIC_ENV", "Visualiser", "figure_to_png", "widgets_available",
    "ActivationExplorer", "activation_data", "activation_explorer", "plot_activations",
    "BatchNormExplorer", "batch_norm_explorer", "batchnorm_data", "plot_batchnorm",
    "ClippingGeometry", "clipping_data", "clipping_geometry", "plot_clipping",
    "recorded_grad_norm_trace",
    "GradientFlowExplorer", "gradient_flow_data", "gradient_flow_explorer", "plot_gradient_flow",
    "InitializationLab", "init_lab_data", "initialization_lab", "plot_initialization",
    "TrainingDoctor", "TrainingRun", "plot_training", "training_doctor", "training_doctor_data",
    "RNNGradientExplorer", "plot_rnn_gradients", "rnn_gradient_data", "rnn_gradient_explorer",
    "FloatFormatExplorer", "float_format_data", "float_format_explorer", "plot_float_format",
]
