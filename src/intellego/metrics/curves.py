"""Deletion and insertion curves (pixel flipping, MoRF / LeRF) and their areas.

Features (single input values, or groups given by a ``feature_mask``) are ranked by their summed attribution.
The *deletion* curve replaces a growing fraction of the features by the baseline, most relevant first
(``order="morf"``) or least relevant first (``order="lerf"``), and records the target score: a faithful
attribution makes the MoRF deletion curve drop fast (small area). The *insertion* curve starts from the
baseline and puts features back in the same order: a faithful attribution makes it rise fast (large area).
Every perturbed input of a batch is built at once by broadcasting the ranks against the step thresholds, and
the model runs over them in chunks.

Example:
    >>> import torch
    >>> from intellego.metrics import deletion_curve
    >>> model = torch.nn.Linear(4, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[4.0, 3.0, 2.0, 1.0]]))
    >>> x = torch.ones(1, 4)
    >>> curve = deletion_curve(model, x, model.weight.detach().clone(), n_steps=4)
    >>> curve.scores[0].tolist()
    [10.0, 6.0, 3.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..core.batching import check_positive_int, chunks, plan_rows
from ..core.grad import ForwardSpec
from ..core.inputs import pack, pack_baselines, same_structure
from ..errors import IntellegoError, describe, require

__all__ = ["Curve", "deletion_curve", "insertion_curve", "faithfulness_curve", "feature_groups"]

_ROW_BYTES_BUDGET = 256 << 20  # bytes of perturbed inputs built per model call when no limit is given


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve per example.

    Attributes:
        fractions: ``(S + 1,)`` fraction of the features removed (deletion) or inserted (insertion).
        scores: ``(N, S + 1)`` target score at each fraction.
        mode: ``"deletion"`` or ``"insertion"``.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).

    Example:
        >>> curve = Curve(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([[1.0, 0.5, 0.0]]), "deletion", "morf")
        >>> curve.auc.tolist()
        [0.5]
    """

    fractions: Tensor
    scores: Tensor
    mode: str
    order: str

    @property
    def auc(self) -> Tensor:
        """Area under each example's curve over the fraction axis, ``(N,)`` (trapezoid rule)."""
        return torch.trapezoid(self.scores, self.fractions.to(self.scores.dtype), dim=1)

    def plot(self, ax: Any = None, index: int | None = None, **kwargs: Any) -> Any:
        """Draw the mean curve (or example ``index``) with matplotlib; returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        y = self.scores.mean(0) if index is None else self.scores[index]
        ax.plot(self.fractions.cpu(), y.detach().cpu(), **kwargs)
        ax.set_xlabel(f"fraction of features {'removed' if self.mode == 'deletion' else 'inserted'}")
        ax.set_ylabel("target score")
        return ax


def feature_groups(xs: tuple[Tensor, ...], feature_mask: Any) -> tuple[tuple[Tensor, ...], int]:
    """Dense group ids (``0..G-1``), one long tensor of each input's full shape, and ``G``.

    Without a mask every value of every input is its own feature. A mask (per input, like Captum's
    ``feature_mask``) broadcasts to its input; equal ids in different inputs are one feature.

    Args:
        xs: The input tensors.
        feature_mask: None, a mask, or a tuple with one mask per input.

    Returns:
        ``(ids, G)``: one long tensor per input, of its full shape, and the number of groups.

    Example:
        >>> ids, n = feature_groups((torch.zeros(2, 3),), torch.tensor([[5, 5, 9]]))
        >>> ids[0].tolist(), n
        ([[0, 0, 1], [0, 0, 1]], 2)
    """
    batch = xs[0].shape[0]
    if feature_mask is None:
        ids, start = [], 0
        for x in xs:
            per = x[0].numel()
            ids.append((torch.arange(per, device=x.device) + start).reshape(1, *x.shape[1:]).expand_as(x))
            start += per
        return tuple(ids), start
    masks = same_structure(feature_mask, len(xs), "feature_mask") if isinstance(feature_mask, (tuple, list)) \
        else (feature_mask,) * len(xs)
    expanded = []
    for i, (m, x) in enumerate(zip(masks, xs)):
        require(isinstance(m, Tensor) and not m.is_floating_point(),
                f"feature_mask[{i}] must be an integer tensor, got {describe(m)}")
        m = m.to(x.device)
        try:
            expanded.append((m if m.dim() == x.dim() else m.unsqueeze(0)).expand_as(x))
        except RuntimeError:
            raise IntellegoError(f"feature_mask[{i}] of shape {tuple(m.shape)} cannot be broadcast to the input "
                                 f"of shape {tuple(x.shape)}; give one id per input value (leading dimension "
                                 "1 or N)") from None
    flat = torch.cat([m.reshape(batch, -1) for m in expanded], dim=1)
    values, inverse = torch.unique(flat, return_inverse=True)
    out, start = [], 0
    for x in xs:
        per = x[0].numel()
        out.append(inverse[:, start:start + per].reshape(x.shape))
        start += per
    return tuple(out), int(values.numel())


def _ranks(attrs: tuple[Tensor, ...], ids: tuple[Tensor, ...], n_groups: int, order: str) -> Tensor:
    """Position of each feature group in the removal order, ``(N, G)``; ties keep index order."""
    batch = attrs[0].shape[0]
    dtype = torch.promote_types(attrs[0].dtype, torch.float32)
    score = torch.zeros(batch, n_groups, dtype=dtype, device=attrs[0].device)
    for a, i in zip(attrs, ids):
        score.scatter_add_(1, i.reshape(batch, -1).to(a.device), a.reshape(batch, -1).to(dtype))
    idx = torch.argsort(score, dim=1, descending=order == "morf", stable=True)
    ranks = torch.empty_like(idx)
    ranks.scatter_(1, idx, torch.arange(n_groups, device=idx.device).expand(batch, -1))
    return ranks


@fill_docs
def faithfulness_curve(
    forward_func: Callable[..., Tensor],
    inputs: Any,
    attributions: Any,
    target: Any = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    n_steps: int = 20,
    feature_mask: Any = None,
    *,
    mode: str = "deletion",
    order: str = "morf",
    softmax: bool = False,
    max_examples_per_batch: int | None = None,
) -> Curve:
    """A deletion or insertion curve of ``forward_func``'s target score along the attribution order.

    Args:
        {FORWARD_FUNC}
        {METRIC_INPUTS}
        {METRIC_ATTRIBUTIONS}
        {TARGET}
        {CURVE_BASELINES}
        {ADDITIONAL_FORWARD_ARGS}
        {CURVE_N_STEPS}
        {CURVE_FEATURE_MASK}
        mode: ``"deletion"`` or ``"insertion"``.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        softmax: Track the softmax probability of the target instead of the raw output.
        max_examples_per_batch: At most this many perturbed inputs per model call.

    Returns:
        A :class:`Curve`.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> x = torch.ones(1, 4)
        >>> curve = faithfulness_curve(model, x, model.weight * x, n_steps=4)
        >>> curve.scores.shape, bool(torch.isclose(curve.scores[0, -1], model.bias[0]))
        (torch.Size([1, 5]), True)
    """
    require(mode in ("deletion", "insertion"), f"mode must be 'deletion' or 'insertion', got {mode!r}")
    require(order in ("morf", "lerf"), f"order must be 'morf' or 'lerf', got {order!r}")
    check_positive_int(n_steps, "n_steps", allow_none=False)
    check_positive_int(max_examples_per_batch, "max_examples_per_batch")
    xs, _ = pack(inputs)
    attrs, _ = pack(attributions, "attributions")
    require(len(attrs) == len(xs) and all(a.shape == x.shape for a, x in zip(attrs, xs)),
            f"attributions {describe(attrs)} must have the structure and shapes of the inputs {describe(xs)}")
    bases = pack_baselines(baselines, xs)
    ids, n_groups = feature_groups(xs, feature_mask)
    ranks = _ranks(attrs, ids, n_groups, order)
    elem_ranks = [ranks.gather(1, i.reshape(i.shape[0], -1)) for i in ids]
    counts = torch.round(torch.linspace(0, 1, n_steps + 1, dtype=torch.float64) * n_groups).long()
    func = _softmaxed(forward_func) if softmax else forward_func
    batch, points = xs[0].shape[0], n_steps + 1
    spec = ForwardSpec.build(func, target, additional_forward_args, batch).interleaved(points)
    row_bytes = sum(x[0].numel() * x.element_size() for x in xs)
    limit = max_examples_per_batch or max(_ROW_BYTES_BUDGET // max(row_bytes, 1), 1)
    total = batch * points
    scores = []
    with torch.no_grad():
        for sl in chunks(total, plan_rows(total, limit=limit)):
            rows = torch.arange(sl.start, sl.stop)
            example, step = rows // points, rows % points
            moved = [(r[example.to(r.device)] < counts[step].to(r.device)[:, None]).reshape(-1, *x.shape[1:])
                     for r, x in zip(elem_ranks, xs)]
            ex = [example.to(x.device) for x in xs]
            if mode == "deletion":
                perturbed = tuple(torch.where(m, b[e], x[e]) for m, b, x, e in zip(moved, bases, xs, ex))
            else:
                perturbed = tuple(torch.where(m, x[e], b[e]) for m, b, x, e in zip(moved, bases, xs, ex))
            s = spec.rows(sl).scores(perturbed)
            require(s.dim() == 1 and s.shape[0] == sl.stop - sl.start,
                    f"the model must give one target score per input, got {describe(s)}")
            scores.append(s)
    fractions = counts.to(torch.float64) / max(n_groups, 1)
    return Curve(fractions.to(xs[0].device), torch.cat(scores).reshape(batch, points), mode, order)


def _softmaxed(forward_func: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def probabilities(*args: Any) -> Tensor:
        return torch.softmax(forward_func(*args), dim=-1)

    return probabilities


@fill_docs
def deletion_curve(forward_func: Callable[..., Tensor], inputs: Any, attributions: Any, target: Any = None,
                   baselines: Any = None, additional_forward_args: Any = None, n_steps: int = 20,
                   feature_mask: Any = None, **kwargs: Any) -> Curve:
    """:func:`faithfulness_curve` with ``mode="deletion"`` (most relevant features removed first by default).

    Args:
        {FORWARD_FUNC}
        {METRIC_INPUTS}
        {METRIC_ATTRIBUTIONS}
        {TARGET}
        {CURVE_BASELINES}
        {ADDITIONAL_FORWARD_ARGS}
        {CURVE_N_STEPS}
        {CURVE_FEATURE_MASK}
        **kwargs: The keyword-only options of :func:`faithfulness_curve` (``order``, ``softmax``, ...).

    Returns:
        A :class:`Curve` with ``mode="deletion"``; ``curve.auc`` is the area under it per example.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> x = torch.ones(2, 4)
        >>> deletion_curve(model, x, model.weight * x, n_steps=2).scores.shape
        torch.Size([2, 3])
    """
    return faithfulness_curve(forward_func, inputs, attributions, target, baselines, additional_forward_args,
                              n_steps, feature_mask, mode="deletion", **kwargs)


@fill_docs
def insertion_curve(forward_func: Callable[..., Tensor], inputs: Any, attributions: Any, target: Any = None,
                    baselines: Any = None, additional_forward_args: Any = None, n_steps: int = 20,
                    feature_mask: Any = None, **kwargs: Any) -> Curve:
    """:func:`faithfulness_curve` with ``mode="insertion"`` (most relevant features inserted first by default).

    Args:
        {FORWARD_FUNC}
        {METRIC_INPUTS}
        {METRIC_ATTRIBUTIONS}
        {TARGET}
        {CURVE_BASELINES}
        {ADDITIONAL_FORWARD_ARGS}
        {CURVE_N_STEPS}
        {CURVE_FEATURE_MASK}
        **kwargs: The keyword-only options of :func:`faithfulness_curve` (``order``, ``softmax``, ...).

    Returns:
        A :class:`Curve` with ``mode="insertion"``; ``curve.auc`` is the area under it per example.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> x = torch.ones(2, 4)
        >>> insertion_curve(model, x, model.weight * x, n_steps=2).scores.shape
        torch.Size([2, 3])
    """
    return faithfulness_curve(forward_func, inputs, attributions, target, baselines, additional_forward_args,
                              n_steps, feature_mask, mode="insertion", **kwargs)
