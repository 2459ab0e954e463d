"""Captum's ``captum.insights.attr_vis.features``: the feature types of :mod:`intellego.insights.features`."""

from ..features import (
    BaseFeature,
    EmptyFeature,
    FeatureOutput,
    GeneralFeature,
    ImageFeature,
    TabularFeature,
    TextFeature,
)

__all__ = ["BaseFeature", "ImageFeature", "TextFeature", "GeneralFeature", "TabularFeature", "EmptyFeature",
           "FeatureOutput"]
