"""Alias of Captum's module path ``captum.concept._core.concept``."""

from ..concept import Concept, ConceptInterpreter

__all__ = ["Concept", "ConceptInterpreter"]
