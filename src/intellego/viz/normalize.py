"""Pure-NumPy normalisation of attribution maps for display (no matplotlib needed).

A map is reduced to one sign (``all``, ``positive``, ``negative`` or ``absolute_value``), then divided by a
robust scale: the smallest magnitude among the largest values that together hold ``outlier_perc`` percent of
the total magnitude. Everything above that scale is clipped, so a handful of extreme pixels cannot wash out
the rest of the map. ``negative`` maps come out as magnitudes in ``[0, 1]``, ``all`` maps in ``[-1, 1]``.

Example:
    >>> import numpy as np
    >>> normalize_attr(np.array([[0.0, 1.0], [2.0, 4.0]]), "positive", outlier_perc=0).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
"""

from __future__ import annotations

import warnings
from enum import Enum
from typing import Any

import numpy as np
import torch

from ..errors import IntellegoError, require

__all__ = [
    "VisualizeSign",
    "ImageVisualizationMethod",
    "TimeseriesVisualizationMethod",
    "SIGNS",
    "IMAGE_METHODS",
    "TIMESERIES_METHODS",
    "check_choice",
    "to_numpy",
    "cumulative_sum_threshold",
    "normalize_attr",
]


class VisualizeSign(Enum):
    """Which sign of the attributions a figure shows."""

    positive = 1
    absolute_value = 2
    negative = 3
    all = 4


class ImageVisualizationMethod(Enum):
    """How :func:`~intellego.viz.image.visualize_image_attr` draws a map."""

    heat_map = 1
    blended_heat_map = 2
    original_image = 3
    masked_image = 4
    alpha_scaling = 5


class TimeseriesVisualizationMethod(Enum):
    """How :func:`~intellego.viz.timeseries.visualize_timeseries_attr` draws a series."""

    overlay_individual = 1
    overlay_combined = 2
    colored_graph = 3


SIGNS: tuple[str, ...] = tuple(VisualizeSign.__members__)
IMAGE_METHODS: tuple[str, ...] = tuple(ImageVisualizationMethod.__members__)
TIMESERIES_METHODS: tuple[str, ...] = tuple(TimeseriesVisualizationMethod.__members__)


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """Return ``value`` as a name from ``choices`` (enum members are accepted too), or raise.

    Example:
        >>> check_choice(VisualizeSign.positive, SIGNS, "sign")
        'positive'
    """
    if isinstance(value, Enum):
        value = value.name
    if not isinstance(value, str) or value not in choices:
        raise IntellegoError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A float64 NumPy copy of an array or tensor (detached, on the CPU), rejecting NaN and infinity.

    Example:
        >>> to_numpy(torch.ones(2), "attr").dtype
        dtype('float64')
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise IntellegoError(f"{name} must be a numeric array or tensor, got {type(x).__name__}") from err
    require(bool(np.isfinite(arr).all()), f"{name} contains NaN or infinite values (shape {arr.shape})")
    return arr


def cumulative_sum_threshold(values: np.ndarray, percentile: float) -> float:
    """The smallest value whose ascending cumulative sum reaches ``percentile`` percent of the total.

    ``values`` must be non-negative. With ``percentile=100`` this is the maximum.

    Args:
        values: Non-negative values, any shape.
        percentile: Percent of the total, 0 to 100.

    Returns:
        The threshold value.

    Example:
        >>> cumulative_sum_threshold(np.array([1.0, 1.0, 2.0]), 50)
        1.0
    """
    require(0 <= percentile <= 100, f"percentile must be between 0 and 100, got {percentile!r}")
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    require(flat.size > 0, "cannot normalise an empty attribution map")
    sums = np.cumsum(flat)
    index = int(np.searchsorted(sums, sums[-1] * 0.01 * percentile, side="left"))
    return float(flat[min(index, flat.size - 1)])


def _signed(attr: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.maximum(attr, 0.0)
    if sign == "negative":
        return np.minimum(attr, 0.0)
    if sign == "absolute_value":
        return np.abs(attr)
    return attr


def normalize_attr(attr: Any, sign: Any = "absolute_value", outlier_perc: float = 2) -> np.ndarray:
    """Keep one sign of ``attr`` and scale it into ``[-1, 1]`` (``[0, 1]`` unless ``sign="all"``).

    The scale is the magnitude at which the largest values start to hold ``outlier_perc`` percent of the
    summed magnitude; values beyond it are clipped to 1. An all-zero map (after keeping the sign) warns and
    returns zeros rather than dividing by zero.

    Args:
        attr: Array or tensor of any shape; channels are not summed here.
        sign: ``"all"``, ``"positive"``, ``"negative"`` or ``"absolute_value"`` (or a :class:`VisualizeSign`).
        outlier_perc: Percent of the total magnitude, held by the largest values, that is clipped (0-100).

    Returns:
        A float64 array of the same shape as ``attr``.

    Example:
        >>> normalize_attr(np.array([-2.0, 1.0]), "all", outlier_perc=0).tolist()
        [-1.0, 0.5]
    """
    sign = check_choice(sign, SIGNS, "sign")
    require(isinstance(outlier_perc, (int, float)) and 0 <= outlier_perc <= 100,
            f"outlier_perc must be a number between 0 and 100, got {outlier_perc!r}")
    arr = _signed(to_numpy(attr, "attr"), sign)
    magnitude = np.abs(arr)
    scale = cumulative_sum_threshold(magnitude, 100.0 - outlier_perc)
    if scale == 0.0 and magnitude.any():  # outlier_perc near 100: clip every non-zero value
        scale = float(magnitude[magnitude > 0].min())
    if scale == 0.0:
        warnings.warn(f"all attributions are zero for sign={sign!r} (shape {arr.shape}); drawing a blank map",
                      UserWarning, stacklevel=2)
        return np.zeros_like(arr)
    if sign == "negative":
        scale = -scale
    return np.clip(arr / scale, -1.0, 1.0)
