"""Alias of :class:`intellego.robust.FGSM` at Captum's path ``captum.robust._core.fgsm``."""

from ..fgsm import FGSM

__all__ = ["FGSM"]
