"""Feature descriptions for the explorer, with Captum Insights' names and signatures.

A feature is one input tensor of the model. It says how a raw sample becomes the model's input
(``input_transforms``), which baselines to compare it with (``baseline_transforms``), how to show it
(``visualization_transform``) and how its attributions are drawn: a heat map over an image, colours over
tokens, or one bar per column.

Example:
    >>> import torch
    >>> feature = ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[])
    >>> x = torch.rand(3, 4, 4)
    >>> [tuple(b.shape) for b in feature.baselines(feature.transform(x))]
    [(3, 4, 4)]
    >>> feature.view(x, torch.ones(3, 4, 4))["kind"]
    'image'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require
from ..viz.image import channels_at_end
from ._arrays import as_numpy, encode, hwc, png_base64, scaled, to_rgb

__all__ = ["BaseFeature", "ImageFeature", "TextFeature", "GeneralFeature", "TabularFeature", "EmptyFeature",
           "FeatureOutput", "encode"]

Transform = Callable[[Any], Any]


class FeatureOutput(NamedTuple):
    """What ``visualize`` returns (Captum Insights' record): the feature's ``name``, the ``base`` shown (a PNG as
    base64 for images, the text, or ``"category: value"`` strings), the ``modified`` attribution (a heat-map PNG
    as base64, or per-token / per-category scores scaled to [-100, 100]), the ``type`` and the
    ``contribution`` fraction given."""

    name: str
    base: Any
    modified: Any
    type: str
    contribution: Any


def _as_list(transforms: Transform | Sequence[Transform] | None, name: str) -> list[Transform]:
    if transforms is None:
        return []
    items: list[Transform] = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]  # type: ignore[list-item]
    for i, t in enumerate(items):
        require(callable(t), f"{name}[{i}] must be callable, got {describe(t)}")
    return items


@fill_docs
class BaseFeature:
    """One model input: its name, transforms and how its attributions are shown.

    Args:
        {FEATURE_NAME}
        {BASELINE_TRANSFORMS}
        {INPUT_TRANSFORMS}
        {VISUALIZATION_TRANSFORM}

    Example:
        >>> f = BaseFeature("x", baseline_transforms=[torch.zeros_like], input_transforms=[lambda t: t * 2])
        >>> f.name, f.kind
        ('x', 'general')
    """

    kind = "general"
    #: whether methods that need interpretable feature groups (KernelShap, Lime, FeatureAblation) apply.
    groupable = True

    def __init__(
        self,
        name: str,
        baseline_transforms: Transform | Sequence[Transform] | None = None,
        input_transforms: Transform | Sequence[Transform] | None = None,
        visualization_transform: Transform | None = None,
    ) -> None:
        require(isinstance(name, str) and name != "", f"feature name must be a non-empty str, got {describe(name)}")
        require(visualization_transform is None or callable(visualization_transform),
                f"visualization_transform of feature {name!r} must be callable, "
                f"got {describe(visualization_transform)}")
        self.name = name
        self.baseline_transforms = _as_list(baseline_transforms, f"{name}.baseline_transforms")
        self.input_transforms = _as_list(input_transforms, f"{name}.input_transforms")
        self.visualization_transform = visualization_transform

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def transform(self, sample: Tensor) -> Tensor:
        """The model's input for one raw sample (no batch dimension)."""
        out = sample
        for t in self.input_transforms:
            out = t(out)
        if not isinstance(out, Tensor):
            raise IntellegoError(f"input_transforms of feature {self.name!r} must return a tensor, got {describe(out)}")
        return out

    def baselines(self, transformed: Tensor) -> list[Tensor]:
        """One baseline per ``baseline_transforms`` entry (zeros without any), each like ``transformed``."""
        if not self.baseline_transforms:
            return [torch.zeros_like(transformed)]
        out = []
        for i, t in enumerate(self.baseline_transforms):
            b = t(transformed)
            b = torch.as_tensor(b, dtype=transformed.dtype, device=transformed.device)
            require(b.numel() == 1 or b.shape == transformed.shape,
                    f"baseline_transforms[{i}] of feature {self.name!r} returned {describe(b)}; expected the "
                    f"shape of the transformed input {tuple(transformed.shape)}")
            out.append(b.expand_as(transformed).clone())
        return out

    def spatial_dims(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Dimensions (of a sample without batch dimension) that windows and patches slide over."""
        return tuple(range(len(shape)))

    def window(self, size: int, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A sliding window (or stride) of ``size`` along the spatial dims, whole along the others."""
        dims = self.spatial_dims(shape)
        return tuple(min(size, n) if d in dims else n for d, n in enumerate(shape))

    def groups(self, patch: int, shape: tuple[int, ...]) -> Tensor:
        """Interpretable feature ids (int64, ``shape``): square patches of side ``patch`` over the spatial dims."""
        dims = self.spatial_dims(shape)
        ids = torch.zeros((), dtype=torch.long)
        for d in dims:
            n_blocks = -(-shape[d] // patch)
            block = torch.arange(shape[d]) // patch
            view = [1] * len(shape)
            view[d] = shape[d]
            ids = ids * n_blocks + block.view(view)
        return ids.expand(shape).contiguous()

    def view(self, raw: Tensor, attribution: Tensor) -> dict[str, Any]:
        """JSON-ready payload for the front end: the sample and its attribution in this feature's form."""
        values = as_numpy(self._shown(raw)).reshape(-1)
        attr = as_numpy(attribution).reshape(-1)
        return {"kind": "columns", "names": [f"{self.name}[{i}]" for i in range(attr.size)],
                "values": values.tolist() if values.size == attr.size else None, "attribution": attr.tolist()}

    def _shown(self, raw: Tensor) -> Any:
        return self.visualization_transform(raw) if self.visualization_transform is not None else raw

    @staticmethod
    def visualization_type() -> str:
        """Captum Insights' name of the feature's kind (``"image"``, ``"text"``, ``"general"``, ``"empty"``)."""
        raise NotImplementedError("BaseFeature.visualization_type is defined by each feature class")

    def visualize(self, attribution: Tensor, data: Tensor, contribution_frac: Any) -> FeatureOutput:
        """Captum Insights' rendering of one example (batch of one) as a :class:`FeatureOutput`."""
        raise NotImplementedError(f"{type(self).__name__}.visualize is defined by each feature class")


@fill_docs
class ImageFeature(BaseFeature):
    """An image input ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``, shown with a heat-map overlay.

    Args:
        {FEATURE_NAME}
        {BASELINE_TRANSFORMS}
        {INPUT_TRANSFORMS}
        {VISUALIZATION_TRANSFORM}

    Example:
        >>> f = ImageFeature("img", baseline_transforms=[], input_transforms=[])
        >>> f.window(4, (3, 32, 32)), tuple(f.groups(16, (3, 32, 32)).unique().tolist())
        ((3, 4, 4), (0, 1, 2, 3))
    """

    kind = "image"

    def __init__(self, name: str, baseline_transforms: Transform | Sequence[Transform] | None = None,
                 input_transforms: Transform | Sequence[Transform] | None = None,
                 visualization_transform: Transform | None = None) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    def spatial_dims(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The height and width axes of a per-example shape (the channel axis by :func:`channels_at_end`)."""
        if len(shape) == 3 and channels_at_end(shape):
            return (0, 1)
        return tuple(range(len(shape)))[-2:]

    def view(self, raw: Tensor, attribution: Tensor) -> dict[str, Any]:
        image = as_numpy(self._shown(raw))
        attr = as_numpy(attribution)
        return {"kind": "image", "image": encode(to_rgb(image, self.name)), "heat": encode(self._heat(attr))}

    @staticmethod
    def visualization_type() -> str:
        return "image"

    def visualize(self, attribution: Tensor, data: Tensor, contribution_frac: Any) -> FeatureOutput:
        """The image and its absolute-value heat map as base64 PNGs (``data``, ``attribution``: ``(1, C, H, W)``)."""
        from ..attr import visualization as viz

        if self.visualization_transform is not None:
            data = self.visualization_transform(data)
        image, attr = (hwc(t, self.name, what) for t, what in ((data, "data"), (attribution, "attribution")))
        original, _ = viz.visualize_image_attr(attr, image, method="original_image", use_pyplot=False)
        heat, _ = viz.visualize_image_attr(attr, image, method="heat_map", sign="absolute_value", use_pyplot=False)
        return FeatureOutput(self.name, png_base64(original), png_base64(heat), self.visualization_type(),
                             contribution_frac)

    def _heat(self, attr: np.ndarray) -> np.ndarray:
        if attr.ndim == 3:
            channel = -1 if self.spatial_dims(attr.shape) == (0, 1) else 0
            return attr.sum(axis=channel)
        if attr.ndim == 2:
            return attr
        if attr.ndim > 3:
            return attr.reshape(-1, *attr.shape[-2:]).sum(axis=0)
        return attr.reshape(1, -1)


@fill_docs
class TextFeature(BaseFeature):
    """A token sequence: the model's input is ``(L, ...)`` (for example embeddings), shown as coloured tokens.

    Args:
        {FEATURE_NAME}
        {BASELINE_TRANSFORMS}
        {INPUT_TRANSFORMS}
        visualization_transform: Callable mapping the raw sample to a list of token strings.

    Example:
        >>> f = TextFeature("text", None, None, lambda ids: [str(int(i)) for i in ids])
        >>> f.view(torch.tensor([3, 4]), torch.ones(2, 8))["tokens"]
        ['3', '4']
    """

    kind = "text"

    def __init__(self, name: str, baseline_transforms: Transform | Sequence[Transform] | None = None,
                 input_transforms: Transform | Sequence[Transform] | None = None,
                 visualization_transform: Transform | None = None) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    def spatial_dims(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (0,)

    def view(self, raw: Tensor, attribution: Tensor) -> dict[str, Any]:
        attr = as_numpy(attribution)
        per_token = attr.reshape(attr.shape[0], -1).sum(axis=1) if attr.ndim else attr.reshape(1)
        shown = self._shown(raw)
        if isinstance(shown, str):
            tokens = shown.split()
        elif isinstance(shown, Tensor):
            tokens = [str(v) for v in shown.reshape(-1).tolist()]
        else:
            tokens = [str(t) for t in shown]
        n = min(len(tokens), per_token.size)
        return {"kind": "text", "tokens": tokens[:n], "attribution": per_token[:n].tolist()}

    @staticmethod
    def visualization_type() -> str:
        return "text"

    def visualize(self, attribution: Tensor, data: Tensor, contribution_frac: Any) -> FeatureOutput:
        """The text (``visualization_transform(data)``, else ``data``) and one score per token in [-100, 100]:
        attributions summed over the embedding dimension and divided by their largest magnitude."""
        text = self.visualization_transform(data) if self.visualization_transform is not None else data
        require(isinstance(attribution, Tensor), f"TextFeature {self.name!r}: attribution must be a tensor, got "
                                                 f"{describe(attribution)}")
        attribution = attribution.squeeze(0)
        if attribution.dim() > 1:
            attribution = attribution.sum(dim=1)
        return FeatureOutput(self.name, text, scaled(attribution, attribution.abs().max()),
                             self.visualization_type(), contribution_frac)


class GeneralFeature(BaseFeature):
    """A vector input with one named category per entry, shown as one signed bar per category.

    Args:
        name: Label shown in the explorer.
        categories: One name per entry of the (flattened) input.

    Example:
        >>> f = GeneralFeature("scores", categories=["a", "b"])
        >>> f.view(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.5]))["names"]
        ['a', 'b']
    """

    kind = "columns"

    def __init__(self, name: str, categories: Sequence[str], *,
                 baseline_transforms: Transform | Sequence[Transform] | None = None,
                 input_transforms: Transform | Sequence[Transform] | None = None) -> None:
        super().__init__(name, baseline_transforms, input_transforms, None)
        require(isinstance(categories, (list, tuple)) and all(isinstance(c, str) for c in categories),
                f"categories of feature {name!r} must be a list of str, got {describe(categories)}")
        self.categories = list(categories)

    def spatial_dims(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (0,)

    def groups(self, patch: int, shape: tuple[int, ...]) -> Tensor:
        """Every column is its own interpretable feature; ``patch`` does not apply."""
        return torch.arange(int(np.prod(shape)), dtype=torch.long).reshape(shape)

    def view(self, raw: Tensor, attribution: Tensor) -> dict[str, Any]:
        attr = as_numpy(attribution).reshape(-1)
        values = as_numpy(raw).reshape(-1)
        names = self.categories if len(self.categories) == attr.size else [f"{self.name}[{i}]" for i in
                                                                           range(attr.size)]
        return {"kind": "columns", "names": names, "values": values.tolist() if values.size == attr.size else None,
                "attribution": attr.tolist()}

    @staticmethod
    def visualization_type() -> str:
        return "general"

    def visualize(self, attribution: Tensor, data: Tensor, contribution_frac: Any) -> FeatureOutput:
        """``"category: value"`` strings and one score per category in [-100, 100] (attributions divided by
        their L2 norm), for ``data`` and ``attribution`` of shape ``(1, C)``."""
        require(isinstance(attribution, Tensor) and isinstance(data, Tensor),
                f"GeneralFeature {self.name!r}: attribution and data must be tensors, got {describe(attribution)} "
                f"and {describe(data)}")
        attribution, data = attribution.squeeze(0), data.squeeze(0)
        base = [f"{c}: {d:.2f}" for c, d in zip(self.categories, data.tolist())]
        return FeatureOutput(self.name, base, scaled(attribution, attribution.norm()), self.visualization_type(),
                             contribution_frac)


class TabularFeature(GeneralFeature):
    """Column data ``(D,)``: each row shows every column's value next to its signed contribution.

    Args:
        name: Label shown in the explorer.
        columns: The ``D`` column names.
        baseline_transforms: As in :class:`BaseFeature` (for example the training means).
        input_transforms: As in :class:`BaseFeature` (for example standardisation).

    Example:
        >>> f = TabularFeature("row", columns=["age", "income"])
        >>> f.view(torch.tensor([30.0, 2.5]), torch.tensor([0.1, 0.3]))["values"]
        [30.0, 2.5]
    """

    def __init__(self, name: str, columns: Sequence[str],
                 baseline_transforms: Transform | Sequence[Transform] | None = None,
                 input_transforms: Transform | Sequence[Transform] | None = None) -> None:
        super().__init__(name, columns, baseline_transforms=baseline_transforms, input_transforms=input_transforms)

    @property
    def columns(self) -> list[str]:
        return self.categories


class EmptyFeature(BaseFeature):
    """A model input that is not shown (Captum Insights' placeholder): it still takes part in the attribution.

    Example:
        >>> EmptyFeature().visualize(torch.ones(1, 2), torch.ones(1, 2), 0.5)
        FeatureOutput(name='empty', base=None, modified=None, type='empty', contribution=0.5)
    """

    def __init__(self, name: str = "empty", baseline_transforms: Transform | Sequence[Transform] | None = None,
                 input_transforms: Transform | Sequence[Transform] | None = None,
                 visualization_transform: Transform | None = None) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    @staticmethod
    def visualization_type() -> str:
        return "empty"

    def visualize(self, attribution: Tensor, data: Tensor, contribution_frac: Any) -> FeatureOutput:
        return FeatureOutput(self.name, None, None, self.visualization_type(), contribution_frac)

    def view(self, raw: Tensor, attribution: Tensor) -> dict[str, Any]:
        """Nothing to show: an empty column list."""
        return {"kind": "columns", "names": [], "values": None, "attribution": []}
