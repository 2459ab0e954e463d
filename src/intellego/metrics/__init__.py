"""Evaluation of attributions: Captum's ``infidelity`` and ``sensitivity_max``, and more."""

from .infidelity import infidelity, infidelity_perturb_func_decorator, noise_perturbation
from .sensitivity import default_perturb_func, sensitivity_max

__all__ = [
    "infidelity",
    "infidelity_perturb_func_decorator",
    "noise_perturbation",
    "sensitivity_max",
    "default_perturb_func",
]
