"""Alias of Captum's module path ``captum.concept._utils.common``."""

from ..concept import concepts_to_str

__all__ = ["concepts_to_str"]
