"""Captum's ``captum.insights.attr_vis.features``: the feature types of :mod:`intellego.insights.feature_types`."""

from ..feature_types import (
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
