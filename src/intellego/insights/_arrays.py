"""Arrays for the explorer's hosts: tensors as float32 arrays, images as RGB bytes or PNGs, arrays as JSON.

Example:
    >>> import torch
    >>> to_rgb(as_numpy(torch.zeros(3, 2, 2)), "x").shape
    (2, 2, 3)
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from ..viz.image import channels_at_end

__all__ = ["png_base64", "scaled", "encode", "as_numpy", "hwc", "to_rgb"]


def png_base64(fig: Any) -> str:
    """A matplotlib figure as a base64 PNG (tight layout, as Captum Insights sends it)."""
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("utf-8")


def scaled(attribution: Tensor, norm: Tensor) -> list[float]:
    """``attribution / norm * 100`` as a list, all zeros when the norm is zero."""
    values = attribution / norm if float(norm) != 0 else torch.zeros_like(attribution)
    return [v * 100 for v in values.tolist()]


def encode(array: np.ndarray) -> dict[str, Any]:
    """A numeric array as JSON: shape, dtype (``float32`` or ``uint8``) and little-endian base64 bytes.

    Example:
        >>> encode(np.zeros((2, 2), dtype=np.uint8))["b64"]
        'AAAAAA=='
    """
    dtype = np.uint8 if array.dtype == np.uint8 else np.dtype("<f4")
    data = np.ascontiguousarray(array, dtype=dtype)
    return {"shape": list(data.shape), "dtype": data.dtype.name, "b64": base64.b64encode(data.tobytes()).decode()}


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def hwc(t: Any, name: str, what: str) -> np.ndarray:
    """A ``(1, C, H, W)`` or ``(C, H, W)`` tensor as an ``(H, W, C)`` array (Captum's squeeze and permute)."""
    require(isinstance(t, Tensor), f"ImageFeature {name!r}: {what} must be a tensor, got {describe(t)}")
    squeezed = t.detach().squeeze()
    require(squeezed.dim() == 3, f"ImageFeature {name!r}: {what} must be one image (1, C, H, W) or (C, H, W), "
                                 f"got {describe(t)}")
    return squeezed.permute(1, 2, 0).cpu().numpy()


def to_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 from a CHW, HWC or HW array (the layout by :func:`~intellego.viz.image.channels_at_end`
    for tensors: the arrays here come from tensors), rescaled to [0, 255] when outside [0, 1]."""
    if image.ndim == 3 and not channels_at_end(image.shape):
        image = image.transpose(1, 2, 0)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise IntellegoError(f"ImageFeature {name!r} needs a (C, H, W), (H, W, C) or (H, W) image to show, "
                             f"got an array of shape {image.shape}")
    image = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    low, high = float(image.min(initial=0.0)), float(image.max(initial=1.0))
    if low < 0.0 or high > 1.0:
        image = (image - low) / max(high - low, 1e-12)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
