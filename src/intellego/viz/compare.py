"""One call for the figure everybody draws by hand: several attribution methods side by side on a few inputs.

Rows are inputs, the first column the input itself, then one column per method. The methods can be attribution
objects, attribution classes (built on ``model``), ``(method, attribute_kwargs)`` pairs, callables
``f(inputs, target)`` or precomputed tensors. Besides the figure you get every method's raw attributions and
the normalised ``(N, H, W)`` maps that were drawn, for plotting yourself.

Example:
    >>> import torch
    >>> from intellego.attr import IntegratedGradients, Saliency
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    >>> x = torch.rand(2, 3, 10, 12)
    >>> _ = model(x)
    >>> result = compare_methods(model, x, {"IG": IntegratedGradients, "Saliency": Saliency}, target=1)
    >>> result.maps["IG"].shape
    (2, 10, 12)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require
from . import figure as _figure
from .image import as_image_array, normalize_image_attr, visualize_image_attr
from .normalize import IMAGE_METHODS, SIGNS, check_choice

__all__ = ["Comparison", "compare_methods", "run_method"]


@dataclass
class Comparison:
    """What :func:`compare_methods` returns.

    Attributes:
        figure: The matplotlib figure (rows: inputs; columns: the input, then each method).
        attributions: Method name -> attribution tensor shaped like the inputs.
        maps: Method name -> float array ``(N, H, W)``: the normalised maps as drawn.
        axes: The ``(N, 1 + methods)`` array of axes.

    Example:
        >>> from intellego.attr import Saliency
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
        >>> result = compare_methods(model, torch.rand(1, 3, 4, 4), {"Saliency": Saliency}, target=0)
        >>> isinstance(result, Comparison), sorted(result.maps)
        (True, ['Saliency'])
    """

    figure: Any
    attributions: dict[str, Tensor]
    maps: dict[str, np.ndarray]
    axes: Any = field(default=None, repr=False)

    def save(self, path: str | os.PathLike, dpi: float | None = None) -> Path:
        """Write the figure; the suffix picks the format (``.png``, ``.svg``, ``.pdf``, ...)."""
        return _figure.save_figure(self.figure, path, dpi)


def run_method(spec: Any, model: Any, inputs: Tensor, target: Any, name: str = "method") -> Tensor:
    """Attributions of ``inputs`` from one method spec (see :func:`compare_methods`), checked against the inputs.

    Args:
        spec: An attribution object or class, a ``(method, attribute_kwargs)`` pair, a callable
            ``f(inputs, target)`` or a precomputed tensor.
        model: The model that classes are built on.
        inputs: The batch to explain.
        target: Passed to ``attribute`` when it takes a target.
        name: The method's name in error messages.

    Returns:
        The attributions, shaped like ``inputs`` and detached.

    Example:
        >>> from intellego.attr import Saliency
        >>> run_method(Saliency, torch.nn.Linear(3, 2), torch.randn(4, 3), 0).shape
        torch.Size([4, 3])
    """
    kwargs: dict[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec[0], dict(spec[1])
    if isinstance(spec, type):
        require(model is not None, f"methods[{name!r}] is a class ({spec.__name__}); pass a model to build it")
        spec = spec(model)
    if isinstance(spec, Tensor):
        out = spec
    elif hasattr(spec, "attribute"):
        if "target" in inspect.signature(spec.attribute).parameters:
            kwargs.setdefault("target", target)
        out = spec.attribute(inputs, **kwargs)
    elif callable(spec):
        out = spec(inputs, target, **kwargs)
    else:
        raise IntellegoError(f"methods[{name!r}] must be an attribution object or class, a (method, kwargs) pair, "
                             f"a callable or a tensor, got {type(spec).__name__}")
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor) and out[0].shape == inputs.shape:
        out = out[0]  # (attributions, delta)
    require(isinstance(out, Tensor) and out.shape == inputs.shape,
            f"methods[{name!r}] must give attributions shaped like the inputs {tuple(inputs.shape)}, "
            f"got {describe(out)}")
    return out.detach()


def _labels(model: Any, inputs: Tensor, target: Any, class_names: Any) -> list[str]:
    """Row labels: the per-row target (when there is one) and the model's top class with its probability."""
    n = inputs.shape[0]

    def name(i: int) -> str:
        return str(class_names[i]) if class_names is not None and 0 <= i < len(class_names) else str(i)

    rows = [""] * n
    per_row = target.tolist() if isinstance(target, Tensor) and target.dim() == 1 else target
    if isinstance(per_row, list) and len(per_row) == n and all(isinstance(t, int) for t in per_row):
        rows = [f"target {name(t)}" for t in per_row]
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            probs = torch.softmax(model(inputs).reshape(n, -1).double(), dim=1)
        top = probs.max(dim=1)
        rows = [(r + "\n" if r else "") + f"pred {name(c)} ({p:.2f})"
                for r, c, p in zip(rows, top.indices.tolist(), top.values.tolist())]
    return rows


@fill_docs
def compare_methods(
    model: Any,
    inputs: Tensor,
    methods: Mapping[str, Any],
    target: Any = None,
    *,
    images: Any = None,
    method: str = "blended_heat_map",
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.6,
    class_names: Any = None,
    title: str | None = None,
    fig_size: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
    use_pyplot: bool = False,
) -> Comparison:
    """Attribute ``inputs`` with each of ``methods`` and draw them side by side, one row per input.

    Args:
        model: The model; used to build methods given as classes and to label rows with its predictions
            (may be None when every method is an object, callable or tensor).
        inputs: A batch of images ``(N, C, H, W)`` (or ``(N, H, W)`` grayscale); keep ``N`` small.
        methods: Column title -> an attribution object (``IntegratedGradients(model)``), a class, a
            ``(method, attribute_kwargs)`` pair such as ``(Occlusion(model), {"sliding_window_shapes": (3, 8, 8)})``,
            a callable ``f(inputs, target) -> attributions`` or a precomputed attribution tensor.
        target: Passed to every method's ``attribute``.
        images: What to draw under the maps, shaped like ``inputs`` (default: ``inputs``); values in
            ``[0, 1]`` or ``[0, 255]``. Pass it when ``inputs`` are normalised.
        {VIZ_METHOD}
        {SIGN}
        {OUTLIER_PERC}
        {CMAP}
        {ALPHA_OVERLAY}
        class_names: Names of the model's output classes for the row labels.
        title: Figure title.
        fig_size: Figure size in inches; default about 2.2 inches per cell.
        path: Save the figure there (``.png``, ``.svg``, ``.pdf``, ...).
        use_pyplot: Create the figure through pyplot (and show it on interactive backends).

    Returns:
        A :class:`Comparison` with the figure, the raw attributions and the drawn maps.

    Example:
        >>> from intellego.attr import Occlusion, Saliency
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> x = torch.rand(2, 3, 8, 8)
        >>> result = compare_methods(model, x, {"Saliency": Saliency,
        ...                                     "Occlusion": (Occlusion(model), {"sliding_window_shapes": (3, 4, 4)})},
        ...                          target=0)
        >>> result.axes.shape, result.attributions["Occlusion"].shape
        ((2, 3), torch.Size([2, 3, 8, 8]))
    """
    require(isinstance(inputs, Tensor) and inputs.dim() in (3, 4),
            f"inputs must be a batch of images (N, C, H, W) or (N, H, W), got {describe(inputs)}")
    require(isinstance(methods, Mapping) and len(methods) > 0,
            f"methods must be a non-empty dict of name -> method, got {type(methods).__name__}")
    method = check_choice(method, IMAGE_METHODS, "method")
    sign = check_choice(sign, SIGNS, "sign")
    shown = inputs if images is None else images
    require(isinstance(shown, (Tensor, np.ndarray)) and tuple(shown.shape) == tuple(inputs.shape),
            f"images must be shaped like inputs {tuple(inputs.shape)}, got {describe(shown)}")
    attributions = {name: run_method(spec, model, inputs, target, name) for name, spec in methods.items()}
    n, layout = inputs.shape[0], {"channels_last": False} if inputs.dim() == 4 else {}
    maps = {name: np.stack([normalize_image_attr(a[i], sign, outlier_perc, **layout) for i in range(n)])
            for name, a in attributions.items()}
    cols = 1 + len(methods)
    fig, axes = _figure.new_figure(None, use_pyplot, fig_size or (2.2 * cols, 2.2 * n + 0.4), nrows=n,
                                   ncols=cols, squeeze=False)
    row_labels = _labels(model, inputs, target, class_names)
    for i in range(n):
        image = as_image_array(shown[i], "images", **layout)
        visualize_image_attr(np.zeros(image.shape[:2]), image, "original_image", plt_fig_axis=(fig, axes[i, 0]),
                             use_pyplot=False, title="input" if i == 0 else None)
        axes[i, 0].set_ylabel(row_labels[i])
        for j, name in enumerate(attributions, start=1):
            visualize_image_attr(maps[name][i], image, method, "all" if sign == "all" else "positive",
                                 plt_fig_axis=(fig, axes[i, j]), outlier_perc=0, cmap=cmap or _cmap(sign),
                                 alpha_overlay=alpha_overlay, use_pyplot=False, title=name if i == 0 else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _figure.finish(fig, use_pyplot, path)
    return Comparison(fig, attributions, maps, axes)


def _cmap(sign: str) -> Any:
    from .image import default_cmap

    return default_cmap(sign)[0]
