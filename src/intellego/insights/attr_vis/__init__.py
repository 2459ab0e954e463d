"""Captum's module path ``captum.insights.attr_vis``, so that porting changes only the package name."""

from .. import AttributionVisualizer, Batch

__all__ = ["AttributionVisualizer", "Batch"]
