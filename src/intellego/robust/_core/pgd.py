"""Alias of :class:`intellego.robust.PGD` at Captum's path ``captum.robust._core.pgd``."""

from ..pgd import PGD

__all__ = ["PGD"]
