"""Alias of :class:`intellego.robust.AttackComparator` at Captum's path
``captum.robust._core.metrics.attack_comparator``."""

from ...attack_comparator import AttackComparator

__all__ = ["AttackComparator"]
