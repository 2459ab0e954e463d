"""Attributions of flat feature vectors (tabular inputs) as a horizontal bar chart.

Example:
    >>> import numpy as np
    >>> fig, ax = visualize_feature_attr(np.array([0.5, -0.2, 0.1]), ["a", "b", "c"], use_pyplot=False)
    >>> len(ax.patches)
    3
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._docs import fill_docs
from ..errors import require
from . import figure as _figure
from .normalize import SIGNS, check_choice, to_numpy

__all__ = ["visualize_feature_attr"]

_POSITIVE, _NEGATIVE = "#2e8b3a", "#d03030"


@fill_docs
def visualize_feature_attr(
    attr: Any,
    feature_names: Sequence[str] | None = None,
    sign: str = "all",
    plt_fig_axis: Any = None,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 4),
    use_pyplot: bool = True,
    *,
    top_k: int | None = None,
    path: str | os.PathLike | None = None,
) -> tuple[Any, Any]:
    """One bar per feature (green positive, red negative), largest magnitude on top.

    Args:
        attr: A 1-d array or tensor of attributions.
        feature_names: One name per feature; default ``x0, x1, ...``.
        sign: Which values to keep: ``all``, ``positive``, ``negative`` or ``absolute_value``.
        {PLT_FIG_AXIS}
        {TITLE}
        {FIG_SIZE}
        {USE_PYPLOT}
        {PATH}
        top_k: Show only the ``top_k`` features of largest magnitude.

    Returns:
        ``(figure, axis)``.

    Example:
        >>> fig, ax = visualize_feature_attr([0.5, -1.0, 2.0], ["age", "income", "debt"], use_pyplot=False)
        >>> len(ax.patches)
        3
    """
    sign = check_choice(sign, SIGNS, "sign")
    values = to_numpy(attr, "attr")
    require(values.ndim == 1 and values.size > 0, f"attr must be a non-empty 1-d array, got shape {values.shape}")
    names = [f"x{i}" for i in range(values.size)] if feature_names is None else [str(n) for n in feature_names]
    require(len(names) == values.size, f"feature_names has {len(names)} entries but attr has {values.size}")
    require(top_k is None or (isinstance(top_k, int) and top_k > 0), f"top_k must be a positive int, got {top_k!r}")
    if sign == "positive":
        values = np.maximum(values, 0.0)
    elif sign == "negative":
        values = np.minimum(values, 0.0)
    elif sign == "absolute_value":
        values = np.abs(values)
    order = np.argsort(-np.abs(values), kind="stable")[:top_k][::-1]
    fig, ax = _figure.new_figure(plt_fig_axis, use_pyplot, fig_size)
    ax.barh(np.arange(order.size), values[order], color=[_POSITIVE if v >= 0 else _NEGATIVE for v in values[order]])
    ax.set_yticks(np.arange(order.size), [names[i] for i in order])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("attribution")
    if title:
        ax.set_title(title)
    _figure.finish(fig, use_pyplot, path)
    return fig, ax
