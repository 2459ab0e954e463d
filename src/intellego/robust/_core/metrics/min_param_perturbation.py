"""Alias of :class:`intellego.robust.MinParamPerturbation` at Captum's path
``captum.robust._core.metrics.min_param_perturbation``."""

from ...min_param_perturbation import MinParamPerturbation

__all__ = ["MinParamPerturbation"]
