"""The public path ``intellego.insights.features`` (as in the docs and Captum programs): the feature types of
:mod:`intellego.insights.feature_types`, re-exported unchanged."""

from .feature_types import (
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
