"""Figures for attributions: images, time series, text, feature bars and method comparisons.

matplotlib is needed only when a figure is drawn (``pip install 'intellego[viz]'``); importing this package
and the pure-NumPy helpers in :mod:`intellego.viz.normalize` work without it. Pass ``use_pyplot=False`` to get
a bare :class:`matplotlib.figure.Figure` that works headless with any backend, and ``path=`` to save a
figure as PNG, SVG or PDF. Captum's names are also importable from :mod:`intellego.attr.visualization`.

Example:
    >>> import torch, intellego
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 2))
    >>> result = intellego.explain(model, torch.rand(1, 3, 6, 6), target=1)
    >>> fig, ax = result.plot(use_pyplot=False)
    >>> ax.get_images()[0].get_array().shape
    (6, 6, 4)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import IntellegoError, describe, require
from .bar_chart import visualize_feature_attr
from .compare import Comparison, compare_methods, run_method
from .image import (
    as_image_array,
    normalize_image_attr,
    render_image_attr,
    visualize_image_attr,
    visualize_image_attr_multiple,
)
from .normalize import cumulative_sum_threshold, normalize_attr
from .text import HTML, VisualizationDataRecord, visualize_text
from .timeseries import visualize_timeseries_attr

__all__ = [
    "plot_explanation",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
    "visualize_timeseries_attr",
    "visualize_feature_attr",
    "visualize_text",
    "VisualizationDataRecord",
    "HTML",
    "compare_methods",
    "run_method",
    "Comparison",
    "render_image_attr",
    "normalize_image_attr",
    "normalize_attr",
    "cumulative_sum_threshold",
    "as_image_array",
]


def _pick(value: Any, input_index: int, name: str) -> Any:
    if isinstance(value, tuple):
        require(0 <= input_index < len(value), f"input_index must be in [0, {len(value)}), got {input_index}")
        return value[input_index]
    return value


def _displayable(x: Tensor) -> bool:
    return x.is_floating_point() and float(x.min()) >= 0.0 and float(x.max()) <= 255.0


def plot_explanation(explanation: Any, index: int = 0, *, input_index: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """Draw example ``index`` of an :class:`~intellego.Explanation` (what ``Explanation.plot`` calls).

    The figure follows the attributions' shape: ``(N, C, H, W)`` images become a blended heat map over the
    input (a plain heat map when the input is not an image in ``[0, 1]`` or ``[0, 255]``), ``(N, C, L)`` a time
    series, ``(N, F)`` a bar per feature. For tuple inputs, ``input_index`` picks the tensor. Other keyword
    arguments go to :func:`visualize_image_attr`, :func:`visualize_timeseries_attr` or
    :func:`visualize_feature_attr`.

    Args:
        explanation: What :func:`intellego.explain` returns.
        index: The example to draw.
        input_index: For tuple inputs, which tensor.
        **kwargs: Passed to the drawing function.

    Returns:
        ``(figure, axis)``.

    Example:
        >>> import torch, intellego
        >>> model = torch.nn.Linear(5, 2)
        >>> result = intellego.explain(model, torch.randn(3, 5), method="saliency", target=0)
        >>> fig, ax = plot_explanation(result, index=2, use_pyplot=False)
        >>> len(ax.patches)
        5
    """
    attrs = _pick(explanation.attributions, input_index, "attributions")
    inputs = _pick(explanation.inputs, input_index, "inputs")
    require(isinstance(attrs, Tensor) and attrs.dim() >= 2,
            f"explanation attributions must be a batched tensor, got {describe(attrs)}")
    require(-attrs.shape[0] <= index < attrs.shape[0], f"index must be < batch size {attrs.shape[0]}, got {index}")
    a = attrs[index]
    x = inputs[index] if isinstance(inputs, Tensor) and inputs.shape == attrs.shape else None
    kwargs.setdefault("title", f"{explanation.method}, target {_target_text(explanation.target, index)}")
    if a.dim() == 3:
        image = x if x is not None and _displayable(x) else None
        kwargs.setdefault("method", "blended_heat_map" if image is not None else "heat_map")
        return visualize_image_attr(a, kwargs.pop("original_image", image), channels_last=False, **kwargs)
    if a.dim() == 2:
        require(x is not None, "plotting a time series needs the inputs, shaped like the attributions")
        return visualize_timeseries_attr(a, x, channels_last=False, **kwargs)
    if a.dim() == 1:
        return visualize_feature_attr(a, **kwargs)
    raise IntellegoError(f"cannot plot attributions of shape {tuple(attrs.shape)}; expected (N, F), (N, C, L) "
                         "or (N, C, H, W)")


def _target_text(target: Any, index: int) -> str:
    if isinstance(target, Tensor) and target.dim() > 0:
        return str(target[index].tolist()) if target.shape[0] > index else str(target.tolist())
    if isinstance(target, list):
        return str(target[index]) if len(target) > index else str(target)
    return str(target.item() if isinstance(target, Tensor) else target)
