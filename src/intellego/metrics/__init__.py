"""Evaluation of attributions.

* Captum's ``infidelity`` (with ``infidelity_perturb_func_decorator``) and ``sensitivity_max``, same names,
  argument order and defaults, batched, reproducible with a keyword-only ``generator``.
* Faithfulness curves: ``deletion_curve`` / ``insertion_curve`` (MoRF or LeRF order) and their areas.
* The model-parameter randomization sanity check: ``randomization_check`` (cascading or independent), scored by
  Spearman rank correlation or SSIM; it randomizes deep copies, never the caller's model.
* Localization against ground-truth masks: ``pointing_game``, ``relevance_mass``, ``relevance_rank``.
* ``evaluate(model, data, methods, metrics)``: a tidy table of every method against every metric;
  ``demo_table()`` prints it for the shipped demo model.

Example:
    >>> from intellego.metrics import METRICS
    >>> sorted(METRICS)[:3]
    ['deletion', 'infidelity', 'insertion']
"""

from .curves import Curve, deletion_curve, faithfulness_curve, feature_groups, insertion_curve
from .infidelity import infidelity, infidelity_perturb_func_decorator, noise_perturbation
from .localization import align_to_mask, pointing_game, relevance_mass, relevance_rank
from .sanity import SanityResult, parametrized_layers, randomization_check, randomize_layer, spearman, ssim
from .sensitivity import default_perturb_func, sensitivity_max
from .table import METRICS, MetricTable, blur, demo_table, evaluate

__all__ = [
    "evaluate",
    "demo_table",
    "MetricTable",
    "METRICS",
    "blur",
    "pointing_game",
    "relevance_mass",
    "relevance_rank",
    "align_to_mask",
    "SanityResult",
    "randomization_check",
    "randomize_layer",
    "parametrized_layers",
    "spearman",
    "ssim",
    "Curve",
    "deletion_curve",
    "insertion_curve",
    "faithfulness_curve",
    "feature_groups",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "noise_perturbation",
    "sensitivity_max",
    "default_perturb_func",
]
