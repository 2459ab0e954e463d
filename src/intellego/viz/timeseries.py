"""Time-series attribution figures with Captum's arguments (``visualize_timeseries_attr``).

The attribution colour band behind a curve is one collection of rectangles spanning the axis height (not one
patch per time step), with edges half way between neighbouring ``x_values``, so long or unevenly spaced series
draw quickly and correctly.

Example:
    >>> import numpy as np
    >>> t = np.linspace(0, 6, 50)
    >>> data = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> fig, axes = visualize_timeseries_attr(data, data, use_pyplot=False)
    >>> len(axes)
    2
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .._docs import fill_docs
from ..errors import require
from . import figure as _figure
from .image import default_cmap
from .normalize import SIGNS, TIMESERIES_METHODS, check_choice, normalize_attr, to_numpy

__all__ = ["visualize_timeseries_attr", "step_edges"]


def step_edges(x_values: np.ndarray) -> np.ndarray:
    """``len(x_values) + 1`` cell edges: midpoints between neighbours, ends padded by half a step.

    Example:
        >>> step_edges(np.array([0.0, 1.0, 3.0])).tolist()
        [-0.5, 0.5, 2.0, 4.0]
    """
    x = np.asarray(x_values, dtype=np.float64)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2.0
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def _channels_first(x: Any, name: str, channels_last: bool) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.ndim == 1:
        return arr[None, :]
    require(arr.ndim == 2, f"{name} must have shape (N, C) (or (C, N) with channels_last=False), got {arr.shape}")
    return arr.T if channels_last else arr


def _band(ax: Any, edges: np.ndarray, colors: np.ndarray) -> Any:
    from matplotlib.collections import PolyCollection

    boxes = [[(lo, 0.0), (hi, 0.0), (hi, 1.0), (lo, 1.0)] for lo, hi in zip(edges[:-1], edges[1:])]
    band = PolyCollection(boxes, facecolors=colors, edgecolors="none", transform=ax.get_xaxis_transform(),
                          zorder=0)
    ax.add_collection(band, autolim=False)
    return band


def _colored_line(ax: Any, x: np.ndarray, y: np.ndarray, colors: np.ndarray, **kwargs: Any) -> None:
    from matplotlib.collections import LineCollection

    points = np.stack([x, y], axis=1)
    segments = np.stack([points[:-1], points[1:]], axis=1)
    ax.add_collection(LineCollection(list(segments), colors=(colors[:-1] + colors[1:]) / 2.0, **kwargs))
    lo, hi = float(y.min()), float(y.max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.5
    ax.set_ylim(lo - pad, hi + pad)


@fill_docs
def visualize_timeseries_attr(
    attr: Any,
    data: Any,
    x_values: Any = None,
    method: str = "overlay_individual",
    sign: str = "absolute_value",
    channel_labels: list[str] | None = None,
    channels_last: bool = True,
    plt_fig_axis: Any = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.7,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
    *,
    path: str | os.PathLike | None = None,
    **pyplot_kwargs: Any,
) -> tuple[Any, Any]:
    """Draw a multichannel series with its attributions (Captum's ``visualize_timeseries_attr``).

    Args:
        attr: Attributions shaped like ``data``: ``(N, C)``, or ``(C, N)`` with ``channels_last=False``
            (a 1-d series is one channel). NumPy arrays or tensors.
        data: The series, equally or unequally spaced along ``x_values``.
        x_values: Positions of the ``N`` steps; default ``0 .. N-1``.
        method: ``overlay_individual`` (one panel per channel, attributions as a colour band behind it),
            ``overlay_combined`` (all channels in one panel, channel-summed attributions as the band) or
            ``colored_graph`` (one panel per channel, the curve coloured by its attributions).
        {SIGN}
        {OUTLIER_PERC}
        {CMAP}
        {SHOW_COLORBAR}
        {TITLE}
        {FIG_SIZE}
        {USE_PYPLOT}
        {PLT_FIG_AXIS}
        channel_labels: One label per channel (y-axis labels, or the legend for ``overlay_combined``).
        channels_last: Whether the channel axis is the last one.
        alpha_overlay: Opacity of the colour band.
        {PATH}
        **pyplot_kwargs: Passed to the line plots (``linewidth=2``, ``color="k"``, ...).

    Returns:
        ``(figure, axes)``: one axis for one panel, else an array of axes.

    Example:
        >>> import torch
        >>> fig, ax = visualize_timeseries_attr(torch.randn(30), torch.randn(30), method="colored_graph",
        ...                                     use_pyplot=False)
        >>> len(ax.collections)
        1
    """
    method = check_choice(method, TIMESERIES_METHODS, "method")
    sign = check_choice(sign, SIGNS, "sign")
    a, d, x = _series(attr, data, x_values, channels_last, channel_labels)
    n_channels = d.shape[0]
    combined = method == "overlay_combined"
    norm = normalize_attr(a.sum(axis=0, keepdims=True) if combined else a, sign, outlier_perc)
    default, vmin, vmax = default_cmap(sign)
    colormap = _figure.get_cmap(default if cmap is None else cmap)
    colors = np.asarray(colormap((norm - vmin) / (vmax - vmin)))
    panels = 1 if combined else n_channels
    fig, axes = _figure.new_figure(plt_fig_axis, use_pyplot, fig_size, nrows=panels, sharex=True, squeeze=False)
    axes = np.asarray(axes, dtype=object).ravel()
    require(len(axes) >= panels, f"plt_fig_axis must hold {panels} axes for method={method!r}, got {len(axes)}")
    _draw(axes, method, x, d, colors, channel_labels, alpha_overlay, pyplot_kwargs)
    if show_colorbar:
        _figure.add_colorbar(fig, axes[panels - 1], colormap, vmin, vmax, pad=0.4,
                             alpha=1.0 if method == "colored_graph" else alpha_overlay)
    if title:
        axes[0].set_title(title)
    if plt_fig_axis is None and panels > 1:
        fig.subplots_adjust(hspace=0)
    _figure.finish(fig, use_pyplot, path)
    return fig, axes[0] if panels == 1 else axes[:panels]


def _series(attr: Any, data: Any, x_values: Any, channels_last: bool,
            channel_labels: list[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attributions and data as ``(C, N)`` arrays and the ``N`` step positions, checked against each other."""
    a, d = _channels_first(attr, "attr", channels_last), _channels_first(data, "data", channels_last)
    require(a.shape == d.shape, f"attr and data must have the same shape, got {tuple(np.shape(attr))} and "
            f"{tuple(np.shape(data))}")
    n_channels, length = d.shape
    if n_channels > length:
        warnings.warn(f"{n_channels} channels but only {length} time steps; is channels_last={channels_last} "
                      "right?", UserWarning, stacklevel=3)
    require(channel_labels is None or len(channel_labels) == n_channels,
            f"channel_labels must have one entry per channel ({n_channels}), got {channel_labels!r}")
    x = np.arange(length, dtype=np.float64) if x_values is None else to_numpy(x_values, "x_values").ravel()
    require(x.shape[0] == length, f"x_values must have {length} entries (one per step), got {x.shape[0]}")
    return a, d, x


def _draw(axes: Any, method: str, x: np.ndarray, d: np.ndarray, colors: np.ndarray,
          channel_labels: list[str] | None, alpha_overlay: float, pyplot_kwargs: dict[str, Any]) -> None:
    """The curves and colour bands of every channel on their panels (one panel for ``overlay_combined``)."""
    combined = method == "overlay_combined"
    edges = step_edges(x)
    for c in range(d.shape[0]):
        ax = axes[0 if combined else c]
        label = channel_labels[c] if channel_labels else None
        if method == "colored_graph":
            _colored_line(ax, x, d[c], colors[c], **pyplot_kwargs)
        else:
            ax.plot(x, d[c], label=label, **pyplot_kwargs)
            if not combined:
                _band(ax, edges, _faded(colors[c], alpha_overlay))
        if label is not None and not combined:
            ax.set_ylabel(label)
    if combined:
        _band(axes[0], edges, _faded(colors[0], alpha_overlay))
        if channel_labels:
            axes[0].legend(loc="best")
    if method == "colored_graph":
        axes[0].set_xlim(x[0], x[-1] if d.shape[1] > 1 else x[0] + 1.0)
    else:
        axes[0].set_xlim(edges[0], edges[-1])


def _faded(colors: np.ndarray, alpha: float) -> np.ndarray:
    out = np.array(colors, dtype=np.float64)
    out[:, 3] = alpha
    return out

