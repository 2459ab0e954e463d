"""The CAM family of pytorch-grad-cam and Captum on intellego's layer machinery: the gradient-weighted maps.

Every class maps a layer's activations ``A`` and the gradients ``G`` of the target with respect to them, of
shape ``(N, C, *spatial)``, to one map ``(N, 1, *spatial)``; upsample it with
:meth:`LayerAttribution.interpolate`. For vision transformers pass ``reshape_transform`` (e.g.
:func:`vit_reshape_transform`) to turn ``(N, tokens, D)`` into ``(N, D, H, W)`` before the map is computed.

- :class:`LayerGradCam` (Selvaraju et al., 2017; Captum's signature, ``relu_attributions`` off by default) and
  :class:`GuidedGradCam` (Guided Backprop times the upsampled Grad-CAM map);
- :class:`LayerGradCamPlusPlus` (Chattopadhay et al., 2018), :class:`LayerXGradCam` (Fu et al., 2020),
  :class:`LayerHiResCam` (Draelos and Carin, 2020), :class:`LayerCam` (Jiang et al., 2021): channel or
  element weights from ``G``; ``relu_attributions`` (default True, as pytorch-grad-cam) keeps positive evidence.

The maps that need no gradient (Score-CAM, Eigen-CAM) are in :mod:`intellego.attr.cam_score`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.grad import ForwardSpec, use_grad_kwargs
from ..core.inputs import pack, unpack
from ..engines.layers import restructure
from ..errors import IntellegoError, require
from ._base import GradientAttribution, LayerAttribution, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod, grads_at, rows_for
from .guided import GuidedBackprop

__all__ = ["LayerGradCam", "GuidedGradCam", "LayerGradCamPlusPlus", "LayerXGradCam", "LayerHiResCam", "LayerCam",
           "vit_reshape_transform", "channel_maps"]

Transform = Callable[[Tensor], Tensor] | None


def vit_reshape_transform(height: int, width: int, skip_tokens: int = 1) -> Callable[[Tensor], Tensor]:
    """``(N, skip + H*W, D) -> (N, D, H, W)``: drop the class token(s) and lay the patch tokens on a grid.

    Example:
        >>> import torch
        >>> vit_reshape_transform(2, 3)(torch.randn(4, 7, 8)).shape
        torch.Size([4, 8, 2, 3])
    """

    def transform(t: Tensor) -> Tensor:
        require(t.dim() == 3 and t.shape[1] == skip_tokens + height * width,
                f"vit_reshape_transform({height}, {width}, skip_tokens={skip_tokens}) expects (N, "
                f"{skip_tokens + height * width}, D) tokens, got shape {tuple(t.shape)}")
        grid = t[:, skip_tokens:].reshape(t.shape[0], height, width, t.shape[2])
        return grid.permute(0, 3, 1, 2)

    return transform


def _spatial(t: Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.dim()))


def channel_maps(t: Tensor, transform: Transform) -> Tensor:
    """A layer value as ``(N, C, *spatial)`` maps (after ``transform``), or a named error."""
    t = transform(t) if transform is not None else t
    if t.dim() < 3:
        raise IntellegoError(f"CAM methods need (N, C, *spatial) layer values, got shape {tuple(t.shape)}; "
                             "pass reshape_transform for token sequences")
    return t


class _GradientCam(LayerMethod, GradientAttribution):
    """Template: gradients and activations at the layer, then ``_map(A, G) -> (N, 1, *spatial)``."""

    def _map(self, acts: Tensor, grads: Tensor) -> Tensor:
        raise NotImplementedError

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False, relu_attributions: bool = True, *,
                  reshape_transform: Transform = None, targets: list[Any] | None = None,
                  internal_batch_size: int | None = None, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            One ``(N, 1, *spatial)`` map per layer tensor (a tuple or list as for the other layer methods); ``(K, N,
            1, *spatial)`` for ``K`` ``targets`` (see :class:`~intellego.attr.LayerAttribution`).
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, attribute_to_layer_input, relu_attributions, reshape_transform=reshape_transform,
                internal_batch_size=internal_batch_size, memory_budget=memory_budget), inputs, None,
                additional_forward_args)
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        rows = rows_for(spec, xs, xs[0].shape[0], internal_batch_size, memory_budget)
        grads, acts, layout = grads_at(spec, self._sites(attribute_to_layer_input), xs, rows)
        out = []
        for a, g in zip(acts, grads):
            cam = self._map(channel_maps(a, reshape_transform), channel_maps(g, reshape_transform))
            out.append(F.relu(cam) if relu_attributions else cam)
        return restructure(layout, out, self._many)


class LayerGradCamPlusPlus(_GradientCam):
    """Grad-CAM++: channel weights ``sum_s relu(G) * G^2 / (2 G^2 + sum_s(A) G^3)``.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerGradCamPlusPlus
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                             torch.nn.Linear(144, 2))
        >>> LayerGradCamPlusPlus(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=0).shape
        torch.Size([2, 1, 6, 6])
    """

    eps = 1e-6

    def _map(self, acts: Tensor, grads: Tensor) -> Tensor:
        g2, g3 = grads ** 2, grads ** 3
        total = acts.sum(_spatial(acts), keepdim=True)
        alpha = torch.where(grads != 0, g2 / (2 * g2 + total * g3 + self.eps), torch.zeros_like(grads))
        weights = (F.relu(grads) * alpha).sum(_spatial(acts), keepdim=True)
        return (weights * acts).sum(1, keepdim=True)


class LayerXGradCam(_GradientCam):
    """XGrad-CAM: channel weights ``sum_s(G * A) / sum_s(A)``.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerXGradCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                             torch.nn.Linear(144, 2))
        >>> LayerXGradCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=0).shape
        torch.Size([2, 1, 6, 6])
    """

    eps = 1e-7

    def _map(self, acts: Tensor, grads: Tensor) -> Tensor:
        dims = _spatial(acts)
        weights = (grads * acts).sum(dims, keepdim=True) / (acts.sum(dims, keepdim=True) + self.eps)
        return (weights * acts).sum(1, keepdim=True)


class LayerHiResCam(_GradientCam):
    """HiResCAM: ``sum_c G * A`` element-wise (no spatial averaging of the gradients).

    Example:
        >>> import torch
        >>> from intellego.attr import LayerHiResCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                             torch.nn.Linear(144, 2))
        >>> LayerHiResCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=0).shape
        torch.Size([2, 1, 6, 6])
    """

    def _map(self, acts: Tensor, grads: Tensor) -> Tensor:
        return (grads * acts).sum(1, keepdim=True)


class LayerCam(_GradientCam):
    """LayerCAM: ``sum_c relu(G) * A`` element-wise.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                             torch.nn.Linear(144, 2))
        >>> LayerCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=0).shape
        torch.Size([2, 1, 6, 6])
    """

    def _map(self, acts: Tensor, grads: Tensor) -> Tensor:
        return (F.relu(grads) * acts).sum(1, keepdim=True)


class LayerGradCam(LayerMethod, GradientAttribution):
    """Grad-CAM (Selvaraju et al., 2017): channel weights are the spatially averaged gradients.

    The result is ``sum_c mean_s(dF/dA_c) * A_c`` with the channel dimension kept (size 1), or per channel
    with ``attr_dim_summation=False``; ``relu_attributions`` keeps only positive evidence. Upsample to the
    input with :meth:`LayerAttribution.interpolate`.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerGradCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                             torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> LayerGradCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=1).shape
        torch.Size([2, 1, 6, 6])
    """

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False, relu_attributions: bool = False,
                  attr_dim_summation: bool = True, grad_kwargs: dict[str, Any] | None = None, *,
                  targets: list[Any] | None = None, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            One map per layer tensor, shaped like the activation with the channel dimension summed out.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, attribute_to_layer_input, relu_attributions, attr_dim_summation, grad_kwargs,
                internal_batch_size=internal_batch_size, memory_budget=memory_budget), inputs, None,
                additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        rows = rows_for(spec, xs, xs[0].shape[0], internal_batch_size, memory_budget)
        grads, acts, layout = grads_at(spec, self._sites(attribute_to_layer_input), xs, rows)
        out = []
        for g, a in zip(grads, acts):
            w = g.mean(dim=tuple(range(2, g.dim())), keepdim=True) if g.dim() > 2 else g
            cam = (w * a).sum(1, keepdim=True) if attr_dim_summation else w * a
            out.append(F.relu(cam) if relu_attributions else cam)
        return restructure(layout, out, self._many)


class GuidedGradCam(LayerMethod, GradientAttribution):
    """Guided Grad-CAM (Selvaraju et al., 2017): Guided Backprop times the ReLU'd Grad-CAM map upsampled to
    each input's spatial size. An input whose shape the map cannot be upsampled to gets an empty tensor
    (with a warning), as in Captum.

    Example:
        >>> import torch
        >>> from intellego.attr import GuidedGradCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                             torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> GuidedGradCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=1).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, model: Any, layer: Any, device_ids: list[int] | None = None) -> None:
        require(not isinstance(layer, (list, tuple)), "GuidedGradCam takes one layer, not a list")
        super().__init__(model, layer, device_ids)
        self.grad_cam = LayerGradCam(model, layer, device_ids)
        self.guided_backprop = GuidedBackprop(model)

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  interpolate_mode: str = "nearest", attribute_to_layer_input: bool = False, *,
                  targets: list[Any] | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like ``inputs`` (``(K, N, ...)`` for ``K`` ``targets``).
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, interpolate_mode, attribute_to_layer_input), inputs, None, additional_forward_args)
        xs, was_tuple = pack(inputs)
        cam = self.grad_cam.attribute(xs, target, additional_forward_args, attribute_to_layer_input,
                                      relu_attributions=True)
        if isinstance(cam, tuple):
            require(len(cam) == 1, "GuidedGradCam needs a layer with one output tensor that runs once")
            cam = cam[0]
        guided, _ = pack(self.guided_backprop.attribute(xs, target, additional_forward_args))
        out = []
        for x, g in zip(xs, guided):
            try:
                out.append(g * LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode))
            except (RuntimeError, ValueError):
                warnings.warn(f"Grad-CAM map of shape {tuple(cam.shape)} cannot be upsampled to an input of shape "
                              f"{tuple(x.shape)}; returning an empty tensor for it", UserWarning, stacklevel=2)
                out.append(torch.empty(0))
        return unpack(out, was_tuple)
