"""Image attribution figures with Captum's arguments, plus the raw arrays behind them.

Arrays may be NumPy (channel-last ``(H, W, C)`` as in Captum, or ``(H, W)``) or torch tensors in either layout
(``(C, H, W)``, ``(H, W, C)``, ``(H, W)``, or with a leading batch dimension of one). Every figure is drawn
from :func:`render_image_attr`, an RGBA array you can also use directly; :func:`normalize_image_attr` gives
the normalised map itself.

Example:
    >>> import numpy as np
    >>> attr = np.zeros((4, 6)); attr[1, 2] = 1.0
    >>> fig, ax = visualize_image_attr(attr, method="heat_map", sign="positive", use_pyplot=False)
    >>> ax.get_images()[0].get_array().shape
    (4, 6, 4)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .._docs import fill_docs
from ..errors import IntellegoError, require
from . import figure as _figure
from .normalize import IMAGE_METHODS, SIGNS, check_choice, normalize_attr, to_numpy

__all__ = [
    "as_image_array",
    "normalize_image_attr",
    "render_image_attr",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
    "default_cmap",
    "channels_at_end",
]

_CHANNELS = (1, 3, 4)


def channels_at_end(shape: tuple[int, ...], channels_last: bool | None = None, *, prefer_last: bool = False) -> bool:
    """The one image-layout rule (figures here and the Insights explorer): whether a 3-d image's channel axis is
    its last. ``channels_last`` when given; else the end whose size is 1, 3 or 4 when only one end has such a size;
    else ``prefer_last`` (True for NumPy arrays, Captum's ``(H, W, C)``; False for tensors, torch's ``(C, H, W)``).

    Example:
        >>> channels_at_end((32, 32, 3)), channels_at_end((3, 32, 32)), channels_at_end((5, 6, 7))
        (True, False, False)
    """
    if channels_last is not None:
        return channels_last
    first, last = shape[0] in _CHANNELS, shape[-1] in _CHANNELS
    if first != last:
        return last
    return prefer_last


def as_image_array(x: Any, name: str, channels_last: bool | None = None) -> np.ndarray:
    """``x`` as a float64 array of shape ``(H, W)`` or ``(H, W, C)``.

    A 3-d array's channel axis is ``channels_last`` when given; otherwise the axis of size 1, 3 or 4 if only one
    end has such a size, else the last axis for NumPy arrays (Captum's layout) and the first for tensors.

    Args:
        x: An image or map: array or tensor, 2-d, 3-d, or 4-d with a batch of one.
        name: The argument's name for error messages.
        channels_last: Where the channel axis of a 3-d input is; None infers it.

    Returns:
        A float64 array ``(H, W)`` or ``(H, W, C)``.

    Example:
        >>> as_image_array(torch.zeros(1, 3, 5, 7), "image").shape
        (5, 7, 3)
    """
    is_tensor = isinstance(x, torch.Tensor)
    arr = to_numpy(x, name)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    require(arr.ndim in (2, 3), f"{name} must have shape (H, W), (H, W, C) or (C, H, W), got shape {arr.shape}")
    require(min(arr.shape) > 0, f"{name} must not be empty, got shape {arr.shape}")
    if arr.ndim == 3 and not channels_at_end(arr.shape, channels_last, prefer_last=not is_tensor):
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _check_shapes(attr: np.ndarray, image: np.ndarray) -> None:
    if attr.shape[:2] != image.shape[:2]:
        raise IntellegoError(f"attr has height and width {attr.shape[:2]} (shape {attr.shape}) but "
                             f"original_image has {image.shape[:2]} (shape {image.shape}); they must match")
    if attr.ndim == 3 and image.ndim == 3 and attr.shape[2] not in (1, image.shape[2]):
        raise IntellegoError(f"attr has {attr.shape[2]} channels (shape {attr.shape}) but original_image has "
                             f"{image.shape[2]} (shape {image.shape})")


def _unit_image(image: np.ndarray) -> np.ndarray:
    """Captum's convention: values up to 1 are fractions, larger ones are 0-255. Returns RGB(A) in [0, 1]."""
    unit = np.clip(image, 0.0, 1.0) if image.max() <= 1.0 else np.clip(image, 0.0, 255.0) / 255.0
    if unit.ndim == 3 and unit.shape[2] == 1:
        unit = unit[:, :, 0]
    if unit.ndim == 2:
        return np.repeat(unit[:, :, None], 3, axis=2)
    require(unit.shape[2] in (3, 4), f"original_image must have 1, 3 or 4 channels, got shape {image.shape}")
    return unit


@fill_docs
def normalize_image_attr(attr: Any, sign: Any = "absolute_value", outlier_perc: float = 2, *,
                         channels_last: bool | None = None) -> np.ndarray:
    """The ``(H, W)`` map a figure shows: channels summed, then :func:`~intellego.viz.normalize.normalize_attr`.

    Args:
        {VIZ_ATTR}
        {SIGN}
        {OUTLIER_PERC}
        {CHANNELS_LAST}

    Returns:
        A float64 ``(H, W)`` array in ``[-1, 1]`` (``[0, 1]`` unless ``sign="all"``).

    Example:
        >>> normalize_image_attr(torch.ones(3, 2, 2), "positive").tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    arr = as_image_array(attr, "attr", channels_last)
    if arr.ndim == 3:
        arr = arr.sum(axis=2)
    return normalize_attr(arr, sign, outlier_perc)


def default_cmap(sign: str) -> tuple[Any, float, float]:
    """The colormap and value range used for ``sign`` when ``cmap`` is None."""
    _figure.matplotlib()
    from matplotlib.colors import LinearSegmentedColormap

    if sign == "all":
        return LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]), -1.0, 1.0
    return {"positive": "Greens", "negative": "Reds", "absolute_value": "Blues"}[sign], 0.0, 1.0


def _checked(method: Any, sign: Any, original_image: Any) -> tuple[str, str]:
    method = check_choice(method, IMAGE_METHODS, "method")
    sign = check_choice(sign, SIGNS, "sign")
    if method != "heat_map" and original_image is None:
        raise IntellegoError(f"method={method!r} needs original_image; only 'heat_map' draws without it")
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise IntellegoError(f"method={method!r} cannot show both signs; use sign='positive', 'negative' "
                             "or 'absolute_value'")
    return method, sign


@fill_docs
def render_image_attr(attr: Any, original_image: Any = None, method: Any = "heat_map",
                      sign: Any = "absolute_value", outlier_perc: float = 2, cmap: Any = None,
                      alpha_overlay: float = 0.5, *, channels_last: bool | None = None) -> np.ndarray:
    """The ``(H, W, 4)`` RGBA image (floats in ``[0, 1]``) that :func:`visualize_image_attr` draws.

    ``heat_map`` colours the normalised map; ``blended_heat_map`` lays it with opacity ``alpha_overlay`` over
    the grayscale image; ``original_image`` is the image; ``masked_image`` multiplies the image by the map;
    ``alpha_scaling`` keeps the image's colours and uses the map as opacity.

    Args:
        {VIZ_ATTR}
        {ORIGINAL_IMAGE}
        {VIZ_METHOD}
        {SIGN}
        {OUTLIER_PERC}
        {CMAP}
        {ALPHA_OVERLAY}
        {CHANNELS_LAST}

    Returns:
        The ``(H, W, 4)`` float array.

    Example:
        >>> rgba = render_image_attr(np.ones((2, 3)), np.zeros((2, 3, 3)), "alpha_scaling", "positive")
        >>> rgba[..., 3].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    method, sign = _checked(method, sign, original_image)
    require(0.0 <= alpha_overlay <= 1.0, f"alpha_overlay must be in [0, 1], got {alpha_overlay!r}")
    if method == "original_image" and attr is None:  # showing the image needs no attribution (Captum's tutorials
        # pass None there; Captum itself then fails)
        return _with_alpha(_unit_image(as_image_array(original_image, "original_image", channels_last)))
    require(attr is not None, f"attr is None: method={method!r} draws attributions; only 'original_image' "
            "shows the image without them")
    arr = as_image_array(attr, "attr", channels_last)
    image = np.zeros(arr.shape[:2] + (3,))  # only heat_map goes without an image, and does not use it
    if original_image is not None:
        given = as_image_array(original_image, "original_image", channels_last)
        _check_shapes(arr, given)
        image = _unit_image(given)
    if method == "original_image":
        return _with_alpha(image)
    norm = normalize_attr(arr.sum(axis=2) if arr.ndim == 3 else arr, sign, outlier_perc)
    if method in ("heat_map", "blended_heat_map"):
        default, vmin, vmax = default_cmap(sign)
        heat = np.asarray(_figure.get_cmap(default if cmap is None else cmap)((norm - vmin) / (vmax - vmin)))
        if method == "heat_map":
            return heat
        gray = np.repeat(image[:, :, :3].mean(axis=2, keepdims=True), 3, axis=2)
        blended = (1.0 - alpha_overlay) * gray + alpha_overlay * heat[:, :, :3]
        return _with_alpha(blended)
    rgba = _with_alpha(image)
    if method == "masked_image":
        rgba[:, :, :3] *= norm[:, :, None]
    else:
        rgba[:, :, 3] = norm
    return rgba


def _with_alpha(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[2] == 4:
        return rgb.copy()
    return np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,))], axis=2)


def visualize_image_attr(
    attr: Any,
    original_image: Any = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    plt_fig_axis: Any = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
    *,
    channels_last: bool | None = None,
    path: str | os.PathLike | None = None,
) -> tuple[Any, Any]:
    """Draw one attribution map on a matplotlib axis (Captum's ``visualize_image_attr``).

    Args:
        attr: Attributions, ``(H, W)`` or with channels (summed); NumPy channel-last or tensors in any layout.
        original_image: The input image, same height and width; values in ``[0, 1]`` or ``[0, 255]``.
            Needed by every method but ``heat_map``.
        method: ``heat_map``, ``blended_heat_map``, ``original_image``, ``masked_image`` or ``alpha_scaling``.
        sign: ``all`` (red negative, green positive), ``positive``, ``negative`` or ``absolute_value``.
        plt_fig_axis: A ``(figure, axis)`` to draw on instead of a new figure.
        outlier_perc: Percent of the total magnitude, held by the largest values, that is clipped.
        cmap: Colormap (or its name) for the heat maps; defaults depend on ``sign``.
        alpha_overlay: Opacity of the heat map in ``blended_heat_map``.
        show_colorbar: Add a colour bar under the axis (an empty slot for methods without a heat map).
        title: Axis title.
        fig_size: Size of a new figure, in inches.
        use_pyplot: Create the figure through pyplot and show it; False returns a bare figure, never shown.
        channels_last: Where the channel axis of 3-d inputs is; None infers it (see :func:`as_image_array`).
        path: Save the figure there; the suffix picks the format (``.png``, ``.svg``, ``.pdf``, ...).

    Returns:
        ``(figure, axis)``.

    Example:
        >>> img = np.random.rand(8, 5, 3)
        >>> fig, ax = visualize_image_attr(img - 0.5, img, "blended_heat_map", "all", use_pyplot=False)
        >>> ax.get_images()[0].get_array().shape
        (8, 5, 4)
    """
    method, sign = _checked(method, sign, original_image)
    rgba = render_image_attr(attr, original_image, method, sign, outlier_perc, cmap, alpha_overlay,
                             channels_last=channels_last)
    fig, ax = _figure.new_figure(plt_fig_axis, use_pyplot, fig_size)
    if isinstance(ax, (list, tuple, np.ndarray)):
        ax = np.asarray(ax).ravel()[0]
    _figure.bare_axis(ax)
    ax.imshow(rgba, interpolation="nearest")
    if show_colorbar:
        has_map = method in ("heat_map", "blended_heat_map")
        default, vmin, vmax = default_cmap(sign)
        _figure.add_colorbar(fig, ax, (default if cmap is None else cmap) if has_map else None, vmin, vmax,
                             alpha=alpha_overlay if method == "blended_heat_map" else None)
    if title:
        ax.set_title(title)
    _figure.finish(fig, use_pyplot, path)
    return fig, ax


@fill_docs
def visualize_image_attr_multiple(
    attr: Any,
    original_image: Any,
    methods: list[str],
    signs: list[str],
    titles: list[str] | None = None,
    fig_size: tuple[float, float] = (8, 6),
    use_pyplot: bool = True,
    *,
    path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Draw the same attributions with several methods side by side in one row (Captum's function).

    Args:
        {VIZ_ATTR}
        {ORIGINAL_IMAGE}
        methods: Drawing methods, one per panel (see ``method`` of :func:`visualize_image_attr`).
        signs: The ``sign`` of each panel, parallel to ``methods``.
        titles: Panel titles, parallel to ``methods``.
        {FIG_SIZE}
        {USE_PYPLOT}
        {PATH}
        **kwargs: Passed to every :func:`visualize_image_attr` call (``outlier_perc``, ``cmap``, ...).

    Returns:
        ``(figure, axes)``: one axis for one method, else a list.

    Example:
        >>> img = np.random.rand(6, 6, 3)
        >>> fig, axes = visualize_image_attr_multiple(img, img, ["original_image", "heat_map"],
        ...                                           ["all", "positive"], use_pyplot=False)
        >>> len(axes)
        2
    """
    require(len(methods) == len(signs) > 0,
            f"methods and signs must be non-empty lists of equal length, got {len(methods)} and {len(signs)}")
    require(titles is None or len(titles) == len(methods),
            f"titles must have one entry per method ({len(methods)}), got {None if titles is None else len(titles)}")
    for method, sign in zip(methods, signs):
        _checked(method, sign, original_image)
    fig, axes = _figure.new_figure(None, use_pyplot, fig_size, nrows=1, ncols=len(methods), squeeze=False)
    axes = list(axes.ravel())
    for i, (method, sign) in enumerate(zip(methods, signs)):
        visualize_image_attr(attr, original_image, method, sign, plt_fig_axis=(fig, axes[i]), use_pyplot=False,
                             title=titles[i] if titles else None, **kwargs)
    fig.tight_layout()
    _figure.finish(fig, use_pyplot, path)
    return fig, axes[0] if len(axes) == 1 else axes
