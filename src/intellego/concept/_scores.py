"""Scoring engine: layer values to one row per example, directional derivatives, TCAV scores.

Example:
    >>> import torch
    >>> from intellego.concept._scores import tcav_scores
    >>> grads = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]])
    >>> cavs = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    >>> out = tcav_scores(grads, cavs, magnitude="ratio")
    >>> [round(v, 4) for v in out["sign_count"].tolist()], out["magnitude"].tolist()
    ([0.3333, 0.6667], [0.25, 0.75])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import require

__all__ = ["POOLS", "MAGNITUDES", "flat_rows", "tcav_scores"]

POOLS = (None, "mean")
MAGNITUDES = ("ratio", "mean")


def _leaves(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    raise TypeError(f"a layer value must be a tensor or a tuple of tensors, got {type(value).__name__}")


def _pool_one(t: Tensor, pool: str | None, feature_dim: int, reduce: str) -> Tensor:
    if pool is None or t.dim() <= 2:
        return t.reshape(t.shape[0], -1)
    dim = feature_dim % t.dim()
    require(dim != 0, "feature_dim must not be the batch dimension (0)")
    moved = t.movedim(dim, -1).reshape(t.shape[0], -1, t.shape[dim])
    return moved.mean(1) if reduce == "mean" else moved.sum(1)


def flat_rows(value: Any, pool: str | None, feature_dim: int, reduce: str = "mean") -> Tensor:
    """One row per example: every tensor of a layer value flattened (``pool=None``) or averaged over all
    dimensions but the batch and ``feature_dim`` (``pool="mean"``), the parts concatenated.

    Gradients pool with ``reduce="sum"``: moving every position's activation by ``v`` moves the mean by ``v``,
    and the output by the sum of the per-position derivatives along ``v``.
    """
    parts = [_pool_one(t, pool, feature_dim, reduce) for t in _leaves(value)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def tcav_scores(grads: Tensor, cavs: Tensor, magnitude: str = "ratio") -> dict[str, Tensor]:
    """Per concept (a row of ``cavs``): ``sign_count`` (share of examples whose derivative along the CAV is
    positive) and ``magnitude``.

    ``magnitude="ratio"`` is ``sum(|s| * (s > 0)) / sum(|s|)`` over examples (0 when every ``s`` is 0), the formula
    Captum documents; ``"mean"`` is the plain mean of ``s``, what Captum 0.9 computes.
    """
    require(magnitude in MAGNITUDES, f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    s = grads @ cavs.to(grads.dtype).T  # n x C
    sign = (s > 0).to(s.dtype).mean(0)
    if magnitude == "mean":
        mag = s.mean(0)
    else:
        total = s.abs().sum(0)
        mag = torch.where(total > 0, s.clamp_min(0).sum(0) / total.clamp_min(torch.finfo(s.dtype).tiny),
                          torch.zeros_like(total))
    return {"sign_count": sign, "magnitude": mag}
