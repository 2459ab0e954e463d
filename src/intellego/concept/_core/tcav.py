"""Alias of Captum's module path ``captum.concept._core.tcav``."""

from ..tcav import TCAV

__all__ = ["TCAV"]
