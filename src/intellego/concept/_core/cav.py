"""Alias of Captum's module path ``captum.concept._core.cav``."""

from ..cav import CAV

__all__ = ["CAV"]
