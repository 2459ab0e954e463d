"""Alias of :class:`intellego.robust.Perturbation` at Captum's path ``captum.robust._core.perturbation``."""

from ..perturbation import Perturbation

__all__ = ["Perturbation"]
