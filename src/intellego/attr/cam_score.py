"""The CAM maps that need no gradient: Score-CAM and Eigen-CAM (the gradient-weighted ones are in
:mod:`intellego.attr.cam`, which also holds :func:`~intellego.attr.cam.vit_reshape_transform`).

- :class:`LayerScoreCam` (Wang et al., 2020): each channel, upsampled and scaled to [0, 1], masks the input;
  the target scores on the masked inputs, soft-maxed over channels, weight the channels;
- :class:`LayerEigenCam` (Muhammad and Yeasin, 2020): the activations' first principal component (no target).

``relu_attributions`` (default True, as pytorch-grad-cam) keeps positive evidence.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.batching import chunks
from ..core.grad import ForwardSpec
from ..core.inputs import pack
from ..engines.layers import restructure
from ..errors import IntellegoError
from ._base import public_call
from ._layer_engine import LayerMethod, evals_at, rows_for
from .cam import Transform, channel_maps

__all__ = ["LayerScoreCam", "LayerEigenCam", "eigen_projection"]


class LayerEigenCam(LayerMethod):
    """EigenCAM: the projection of each position's activation vector on the first principal component.

    The component's sign is fixed so the largest-magnitude value of the map is positive (as scikit-learn's
    ``svd_flip``); pytorch-grad-cam leaves it to the SVD routine. ``target`` is accepted and unused.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerEigenCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> LayerEigenCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 1, 6, 6])
    """

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False, relu_attributions: bool = True, *,
                  reshape_transform: Transform = None) -> Any:
        """Compute the attributions.

        Returns:
            One ``(N, 1, *spatial)`` map per layer tensor.
        """
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, None, additional_forward_args, xs[0].shape[0])
        acts, layout = evals_at(spec, self._sites(attribute_to_layer_input), xs, xs[0].shape[0])
        out = []
        for a in acts:
            cam = eigen_projection(channel_maps(a, reshape_transform))
            out.append(F.relu(cam) if relu_attributions else cam)
        return restructure(layout, out, self._many)


def eigen_projection(acts: Tensor) -> Tensor:
    """``(N, C, *S) -> (N, 1, *S)``: centred activations projected on their first right singular vector."""
    n, c = acts.shape[:2]
    rows = acts.reshape(n, c, -1).transpose(1, 2)
    rows = rows - rows.mean(1, keepdim=True)
    # The SVD runs in float32 for half precision (no half-precision SVD on CPU) and on zeros for examples with
    # NaN or Inf activations (it fails to converge on them); their projection stays NaN through ``rows``.
    work = rows if rows.dtype in (torch.float32, torch.float64) else rows.float()
    finite = torch.isfinite(work).flatten(1).all(1)
    if not bool(finite.all()):
        work = torch.where(finite.view(-1, 1, 1), work, torch.zeros((), dtype=work.dtype, device=work.device))
    _, _, vh = torch.linalg.svd(work, full_matrices=False)
    proj = rows @ vh[:, 0, :].unsqueeze(-1).to(rows.dtype)      # (N, S, 1)
    peak = proj.abs().argmax(1, keepdim=True)
    sign = torch.sign(torch.gather(proj, 1, peak))
    proj = proj * torch.where(sign == 0, torch.ones_like(sign), sign)
    return proj.transpose(1, 2).reshape(n, 1, *acts.shape[2:])


class LayerScoreCam(LayerMethod):
    """Score-CAM: channels weighted by the soft-maxed target scores of the input masked by each channel.

    Each channel map is upsampled to the input's spatial size (linear interpolation with aligned corners),
    scaled to [0, 1] per example, and multiplies the (single) input tensor; all ``N * C`` masked inputs are
    scored in batches of ``internal_batch_size`` (default: sized by the memory budget).

    Example:
        >>> import torch
        >>> from intellego.attr import LayerScoreCam
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                             torch.nn.Linear(144, 2))
        >>> LayerScoreCam(model, model[1]).attribute(torch.randn(2, 3, 8, 8), target=1).shape
        torch.Size([2, 1, 6, 6])
    """

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False, relu_attributions: bool = True, *,
                  reshape_transform: Transform = None, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            One ``(N, 1, *spatial)`` map per layer tensor.
        """
        xs, _ = pack(inputs)
        if len(xs) != 1 or xs[0].dim() < 3:
            raise IntellegoError("LayerScoreCam masks one (N, C, *spatial) input tensor, got "
                                 f"{len(xs)} tensor(s) of shape {tuple(xs[0].shape)}")
        x = xs[0]
        batch = x.shape[0]
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, batch)
        acts, layout = evals_at(spec, self._sites(attribute_to_layer_input), xs, batch)
        out = []
        for a in acts:
            a = channel_maps(a, reshape_transform)
            weights = self._weights(spec, x, a, internal_batch_size, memory_budget)
            cam = (weights.reshape(*weights.shape, *[1] * (a.dim() - 2)) * a).sum(1, keepdim=True)
            out.append(F.relu(cam) if relu_attributions else cam)
        return restructure(layout, out, self._many)

    @staticmethod
    def _weights(spec: ForwardSpec, x: Tensor, acts: Tensor, limit: int | None, budget: int | None) -> Tensor:
        n, c = acts.shape[:2]
        if acts.dim() != x.dim():
            raise IntellegoError(f"LayerScoreCam needs as many spatial dimensions in the layer "
                                 f"{tuple(acts.shape)} as in the input {tuple(x.shape)}")
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[acts.dim() - 2]
        up = F.interpolate(acts, size=x.shape[2:], mode=mode, align_corners=True)
        flat = up.reshape(n, c, -1)
        lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
        masks = ((flat - lo) / (hi - lo + 1e-8)).reshape(up.shape)
        masked = (x.unsqueeze(1) * masks.unsqueeze(2)).reshape(n * c, *x.shape[1:])
        expanded = spec.interleaved(c)
        rows = rows_for(spec, (x,), n * c, limit, budget)
        with torch.no_grad():
            scores = torch.cat([expanded.rows(sl).scores((masked[sl],)) for sl in chunks(n * c, rows)])
        return torch.softmax(scores.reshape(n, c), dim=1)
