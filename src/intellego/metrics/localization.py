"""Localization scores against ground-truth masks: does the attribution point at the object?

* :func:`pointing_game` (Zhang et al., 2018): 1 when the most relevant location lies in the mask, else 0.
* :func:`relevance_mass` (Arras et al., 2022): the share of the positive relevance that falls in the mask.
* :func:`relevance_rank` (Arras et al., 2022): of the ``K`` most relevant locations, ``K`` the mask's size,
  the share that lies in the mask.

Attributions of shape ``(N, C, H, W)`` are summed over the dimensions where the mask has size 1 (so a
``(N, 1, H, W)`` mask scores pixels with their channels summed); a ``(N, H, W)`` mask is read as
``(N, 1, H, W)``. Masks are boolean (or 0/1) and must not be empty.

Example:
    >>> import torch
    >>> from intellego.metrics import pointing_game, relevance_mass, relevance_rank
    >>> attr = torch.tensor([[[0.0, 3.0], [1.0, 0.0]]])   # (1, 2, 2)
    >>> mask = torch.tensor([[[False, True], [False, False]]])
    >>> pointing_game(attr, mask).item(), relevance_mass(attr, mask).item(), relevance_rank(attr, mask).item()
    (1.0, 0.75, 1.0)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._docs import fill_docs
from ..errors import describe, require

__all__ = ["pointing_game", "relevance_mass", "relevance_rank", "align_to_mask"]


@fill_docs
def align_to_mask(attributions: Any, masks: Any, absolute: bool = False) -> tuple[Tensor, Tensor]:
    """Attributions summed to the mask's shape and the mask as bool, both flattened to ``(N, L)``.

    Raises a clear error for non-tensor arguments, shapes that do not fit, and empty masks.

    Args:
        {LOC_ATTRIBUTIONS}
        {LOC_MASKS}
        {LOC_ABSOLUTE}

    Returns:
        ``(attributions, masks)``: float ``(N, L)`` and bool ``(N, L)``.

    Example:
        >>> a, m = align_to_mask(torch.ones(2, 3, 4, 4), torch.ones(2, 4, 4))
        >>> tuple(a.shape), float(a[0, 0]), m.dtype
        ((2, 16), 3.0, torch.bool)
    """
    if isinstance(attributions, tuple) and len(attributions) == 1:
        attributions = attributions[0]
    require(isinstance(attributions, Tensor), "attributions must be one tensor (localization scores one input), "
                                              f"got {describe(attributions)}")
    require(isinstance(masks, Tensor), f"masks must be a tensor, got {describe(masks)}")
    attr = attributions.detach()
    masks = masks.to(attr.device)
    require(masks.dtype == torch.bool or bool(((masks == 0) | (masks == 1)).all()),
            f"masks must be boolean or hold only 0 and 1, got {describe(masks)}")
    masks = masks.bool()
    if masks.dim() == attr.dim() - 1:
        masks = masks.unsqueeze(1)
    fits = masks.dim() == attr.dim() and masks.shape[0] == attr.shape[0] and all(
        m in (1, a) for m, a in zip(masks.shape[1:], attr.shape[1:]))
    require(fits, f"masks of shape {tuple(masks.shape)} do not fit attributions of shape {tuple(attr.shape)}: "
                  "expected (N, ...) with each other dimension equal to the attributions' or 1")
    if absolute:
        attr = attr.abs()
    dims = tuple(d for d in range(1, attr.dim()) if masks.shape[d] == 1 and attr.shape[d] != 1)
    if dims:
        attr = attr.sum(dim=dims, keepdim=True)
    masks = masks.expand_as(attr)
    flat_mask = masks.reshape(masks.shape[0], -1)
    empty = (~flat_mask.any(dim=1)).nonzero().flatten().tolist()
    require(not empty, f"masks of examples {empty[:10]} are empty: localization needs at least one true value "
                       "per example (drop those examples or give their object masks)")
    return attr.reshape(attr.shape[0], -1), flat_mask


@fill_docs
def pointing_game(attributions: Any, masks: Any, *, absolute: bool = False, tolerance: int = 0) -> Tensor:
    """1.0 where the attribution's maximum lies in the mask, else 0.0; ``(N,)``.

    Args:
        attributions: ``(N, ...)`` attributions.
        masks: Ground-truth masks (see the module docs for shapes).
        absolute: Rank by absolute value.
        tolerance: Grow the mask by this many pixels (square neighbourhood) over its last two dimensions first,
            as in the original pointing game's 15-pixel tolerance.

    A constant attribution map has no maximum and scores 0.

    Returns:
        ``(N,)`` float tensor of 0.0 and 1.0.

    Example:
        >>> masks = torch.zeros(1, 4, 4, dtype=torch.bool)
        >>> masks[0, 1, 1] = True
        >>> pointing_game(masks.float() * 2 - 1, masks).tolist()
        [1.0]
    """
    require(isinstance(tolerance, int) and tolerance >= 0, f"tolerance must be a non-negative int, got {tolerance!r}")
    if tolerance and isinstance(masks, Tensor):
        require(masks.dim() >= 3, f"tolerance needs masks with two spatial dimensions, got {describe(masks)}")
        grown = F.max_pool2d(masks.float().reshape(-1, 1, *masks.shape[-2:]), 2 * tolerance + 1, 1, tolerance)
        masks = grown.reshape(masks.shape) > 0
    attr, mask = align_to_mask(attributions, masks, absolute)
    top = attr.argmax(dim=1, keepdim=True)
    hit = mask.gather(1, top).squeeze(1)
    constant = attr.amax(dim=1) == attr.amin(dim=1)
    return (hit & ~constant).to(_float(attr))


@fill_docs
def relevance_mass(attributions: Any, masks: Any, *, absolute: bool = False) -> Tensor:
    """Positive relevance inside the mask over all positive relevance (Arras et al., 2022).

    Args:
        {LOC_ATTRIBUTIONS}
        {LOC_MASKS}
        {LOC_ABSOLUTE}

    Returns:
        ``(N,)`` in ``[0, 1]`` (0 when there is no positive relevance).

    Example:
        >>> relevance_mass(torch.tensor([[3.0, 1.0, -2.0]]), torch.tensor([[1, 0, 0]])).tolist()
        [0.75]
    """
    attr, mask = align_to_mask(attributions, masks, absolute)
    pos = attr.clamp(min=0).to(_float(attr))
    total = pos.sum(dim=1)
    inside = (pos * mask).sum(dim=1)
    return torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)),
                       torch.zeros_like(total))


@fill_docs
def relevance_rank(attributions: Any, masks: Any, *, absolute: bool = False) -> Tensor:
    """Share of the ``K`` highest-ranked locations that lie in the mask (``K`` = the mask's size).

    Args:
        {LOC_ATTRIBUTIONS}
        {LOC_MASKS}
        {LOC_ABSOLUTE}

    Returns:
        ``(N,)`` in ``[0, 1]``.

    Example:
        >>> relevance_rank(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[1, 0, 1]])).tolist()
        [1.0]
    """
    attr, mask = align_to_mask(attributions, masks, absolute)
    k = mask.sum(dim=1, keepdim=True)
    order = torch.argsort(attr, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(attr.shape[1], device=attr.device).expand_as(order))
    in_top = (ranks < k) & mask
    return (in_top.sum(dim=1).to(_float(attr)) / k.squeeze(1).to(_float(attr)))


def _float(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32
