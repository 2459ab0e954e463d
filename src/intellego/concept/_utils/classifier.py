"""Alias of Captum's module path ``captum.concept._utils.classifier``."""

from ..classifier import Classifier, DefaultClassifier

__all__ = ["Classifier", "DefaultClassifier"]
