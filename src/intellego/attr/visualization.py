"""Captum's ``captum.attr.visualization`` names, backed by :mod:`intellego.viz`.

Porting ``from captum.attr import visualization as viz`` means importing this module instead; the
functions take Captum's arguments in Captum's order, and new options are keyword-only.

Example:
    >>> import numpy as np
    >>> from intellego.attr import visualization as viz
    >>> fig, ax = viz.visualize_image_attr(np.random.rand(4, 4, 3), method="heat_map", use_pyplot=False)
"""

from ..viz.helpers import (
    draw_mask_border,
    draw_mask_legend,
    format_classname,
    format_special_tokens,
    format_tooltip,
)
from ..viz.image import visualize_image_attr, visualize_image_attr_multiple
from ..viz.normalize import (
    ImageVisualizationMethod,
    TimeseriesVisualizationMethod,
    VisualizeSign,
    cumulative_sum_threshold,
    normalize_attr,
)
from ..viz.text import VisualizationDataRecord, format_word_importances, importance_color, visualize_text
from ..viz.timeseries import visualize_timeseries_attr

# Captum's private helper names, for code that reached into them.
_normalize_attr = normalize_attr
_cumulative_sum_threshold = cumulative_sum_threshold
_get_color = importance_color

__all__ = [
    "ImageVisualizationMethod",
    "TimeseriesVisualizationMethod",
    "VisualizeSign",
    "VisualizationDataRecord",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
    "visualize_timeseries_attr",
    "visualize_text",
    "format_word_importances",
    "importance_color",
    "normalize_attr",
    "cumulative_sum_threshold",
    "draw_mask_border",
    "draw_mask_legend",
    "format_classname",
    "format_special_tokens",
    "format_tooltip",
]
