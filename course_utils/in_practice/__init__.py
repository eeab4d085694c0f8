"""The practical recipe of ``notebooks/05_in_practice``: ablations, short training runs with
diagnostics, gradient health, the training doctor, and their plots.

Everything here is small enough to run on a laptop CPU in seconds: deep but narrow MLPs on
scikit-learn's bundled digits (see :func:`course_utils.datasets.load_digits_split`). The
package is split by job; every public name is importable from ``course_utils.in_practice``:

=====================  =====================================================================
module                 holds
=====================  =====================================================================
:mod:`.runs`           ``RunConfig``, ``make_mlp``, ``RunResult``, ``summarize_runs``,
                       ``format_table``, ``with_name``
:mod:`.trainer`        ``Trainer`` (and its live mode for the widget), ``train_run``,
                       ``run_seeds``
:mod:`.health`         ``gradient_health`` (the exercise's reference), ``health_verdict`` and
                       its thresholds, ``build_health_case``, ``collect_layer_tensors``
:mod:`.doctor`         ``DOCTOR_CAUSES``, ``doctor_cases``, ``doctor_summary``, ``diagnose``
                       (also the alarms of the ``TrainingDoctor`` widget)
:mod:`.plots`          ``plot_*``: pure functions returning a ``matplotlib.figure.Figure``
=====================  =====================================================================

Importing this package changes no global state.
"""

from course_utils.in_practice.doctor import DOCTOR_CAUSES, diagnose, doctor_cases, doctor_summary
from course_utils.in_practice.health import (
    EXPLODE_RATIO,
    SATURATION_MAX,
    VANISH_RATIO,
    VERDICTS,
    build_health_case,
    collect_layer_tensors,
    gradient_health,
    health_verdict,
    layer_activation_fraction,
)
from course_utils.in_practice.plots import (
    plot_doctor_chart,
    plot_grad_norm_profiles,
    plot_grad_to_weight,
    plot_layer_fractions,
    plot_layer_histograms,
    plot_loss_curves,
    plot_update_ratios,
)
from course_utils.in_practice.runs import (
    RunConfig,
    RunResult,
    format_table,
    make_mlp,
    summarize_runs,
    with_name,
)
from course_utils.in_practice.trainer import Trainer, run_seeds, train_run

__all__ = [
    "VANISH_RATIO",
    "EXPLODE_RATIO",
    "VERDICTS",
    "SATURATION_MAX",
    "RunConfig",
    "RunResult",
    "Trainer",
    "make_mlp",
    "train_run",
    "run_seeds",
    "summarize_runs",
    "format_table",
    "layer_activation_fraction",
    "gradient_health",
    "health_verdict",
    "build_health_case",
    "collect_layer_tensors",
    "plot_loss_curves",
    "plot_grad_norm_profiles",
    "plot_layer_histograms",
    "plot_layer_fractions",
    "plot_update_ratios",
    "plot_grad_to_weight",
    "plot_doctor_chart",
    "with_name",
    "DOCTOR_CAUSES",
    "doctor_cases",
    "doctor_summary",
    "diagnose",
]
