"""Metrics that say whether a training-data attribution is right, for any method that returns scores.

Conventions: ``scores`` has shape ``(n_test, n_train)``; ``scores[t, i] > 0`` means training example ``i`` helps
test example ``t``: it *raises* the measured output ``f(t)`` (for the synthetic task, ``f = -loss``, so TracIn's
scores, which are positive when a training step on ``i`` lowers the test loss, follow this convention as they
are). A method whose scores predict a change of the loss itself should pass ``-scores``.

* :func:`linear_datamodeling_score` (LDS): retrain on random subsets ``S_m`` (half the data by default); for each
  test example, the Spearman correlation over subsets between the predicted output ``sum_{i in S_m} scores[t, i]``
  and the output the retrained model gives. The retraining is a callable ``retrain(masks) -> (M, n_test)``, so
  several methods can share one set of retrained models (:func:`datamodel_outputs` + :func:`lds`).
* :func:`leave_one_out_correlation`: the Pearson correlation, per test example, between ``scores[t, i]`` and the
  actual change ``f_full(t) - f_without_i(t)`` over a set of removed examples.
* :func:`mislabel_auc`: the area under the ROC curve of ranking examples by self-influence to find flipped labels.

Example:
    >>> import torch
    >>> from intellego.influence.metrics import lds, mislabel_auc
    >>> masks = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    >>> scores = torch.tensor([[1.0, 2.0, 3.0]])
    >>> actual = (masks.double() @ scores.double().T).T  # outputs exactly additive in the scores
    >>> round(lds(scores, masks, actual).score, 12)
    1.0
    >>> mislabel_auc(torch.tensor([0.9, 0.1, 0.8, 0.2]), torch.tensor([True, False, True, False]))
    1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import describe, require

__all__ = ["LDSResult", "lds", "datamodel_outputs", "linear_datamodeling_score", "leave_one_out_changes",
           "leave_one_out_correlation", "mislabel_auc", "rank", "spearman", "pearson", "random_subsets"]


def rank(values: Tensor, dim: int = -1) -> Tensor:
    """Ranks along ``dim`` (0-based), ties given their average rank."""
    values = values.to(torch.float64).movedim(dim, -1)
    order = values.argsort(dim=-1, stable=True)
    ranks = torch.empty_like(values)
    ranks.scatter_(-1, order, torch.arange(values.shape[-1], dtype=torch.float64).expand_as(values).contiguous())
    # average the ranks of tied values
    sorted_vals = values.gather(-1, order)
    flat_vals, flat_order, flat_ranks = sorted_vals.reshape(-1, values.shape[-1]), order.reshape(
        -1, values.shape[-1]), ranks.reshape(-1, values.shape[-1])
    for row in range(flat_vals.shape[0]):
        vals = flat_vals[row]
        if bool((vals[1:] == vals[:-1]).any()):
            uniq, inverse = torch.unique_consecutive(vals, return_inverse=True)
            sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(
                0, inverse, torch.arange(len(vals), dtype=torch.float64))
            counts = torch.bincount(inverse, minlength=len(uniq)).to(torch.float64)
            flat_ranks[row, flat_order[row]] = (sums / counts)[inverse]
    return flat_ranks.reshape(values.shape).movedim(-1, dim)


def pearson(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """Pearson correlation along ``dim`` (NaN where either side is constant)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim))


def spearman(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """Spearman rank correlation along ``dim``."""
    return pearson(rank(a, dim), rank(b, dim), dim)


@dataclass
class LDSResult:
    """``score``: the mean over test examples of ``per_test``, the Spearman correlations between ``predicted``
    and ``actual`` outputs (both ``(n_test, M)``) over the ``M`` subsets."""

    score: float
    per_test: Tensor
    predicted: Tensor
    actual: Tensor


def random_subsets(n_train: int, n_subsets: int, fraction: float = 0.5, *,
                   generator: torch.Generator | None = None) -> Tensor:
    """``n_subsets`` bool masks over ``n_train`` examples, each keeping ``round(fraction * n_train)`` of them."""
    require(0.0 < fraction < 1.0, f"fraction must be in (0, 1), got {describe(fraction)}")
    require(isinstance(n_subsets, int) and n_subsets >= 2, f"n_subsets must be an int >= 2, got {describe(n_subsets)}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    keep = max(1, round(fraction * n_train))
    masks = torch.zeros(n_subsets, n_train, dtype=torch.bool)
    for row in masks:
        row[torch.randperm(n_train, generator=gen)[:keep]] = True
    return masks


def datamodel_outputs(retrain: Callable[[Tensor], Tensor], n_train: int, n_subsets: int = 50, fraction: float = 0.5,
                      *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Retrain on random subsets: ``(masks (M, n_train), actual outputs (n_test, M))``; reuse them for many
    methods with :func:`lds`."""
    masks = random_subsets(n_train, n_subsets, fraction, generator=generator)
    out = retrain(masks)
    require(isinstance(out, Tensor) and out.dim() == 2 and out.shape[0] == n_subsets,
            f"retrain(masks) must return a tensor of shape ({n_subsets}, n_test), got {describe(out)}")
    return masks, out.T.contiguous()


def lds(scores: Tensor, masks: Tensor, actual: Tensor) -> LDSResult:
    """The LDS of ``scores`` ``(n_test, n_train)`` given subsets ``masks`` ``(M, n_train)`` and the retrained
    outputs ``actual`` ``(n_test, M)``."""
    require(isinstance(scores, Tensor) and scores.dim() == 2,
            f"scores must be a tensor of shape (n_test, n_train), got {describe(scores)}")
    require(isinstance(masks, Tensor) and masks.dim() == 2 and masks.shape[1] == scores.shape[1],
            f"masks must have shape (subsets, {scores.shape[1]}) to match scores {describe(scores)}, "
            f"got {describe(masks)}")
    require(isinstance(actual, Tensor) and actual.shape == (scores.shape[0], masks.shape[0]),
            f"actual outputs must have shape (n_test, subsets) = {(scores.shape[0], masks.shape[0])}, "
            f"got {describe(actual)}")
    predicted = scores.to(torch.float64) @ masks.to(torch.float64).T
    per_test = spearman(predicted, actual.to(torch.float64), dim=1)
    return LDSResult(float(per_test.nanmean()), per_test, predicted, actual)


def linear_datamodeling_score(scores: Tensor, retrain: Callable[[Tensor], Tensor], n_subsets: int = 50,
                              fraction: float = 0.5, *, generator: torch.Generator | None = None) -> LDSResult:
    """The linear datamodeling score of ``scores`` ``(n_test, n_train)``: see the module docstring.

    ``retrain(masks)`` trains one model per bool row of ``masks`` ``(M, n_train)`` (with a seeded loop: the same
    subsets must give the same models) and returns the measured output on each test example, ``(M, n_test)``.
    """
    require(isinstance(scores, Tensor) and scores.dim() == 2,
            f"scores must be a tensor of shape (n_test, n_train), got {describe(scores)}")
    masks, actual = datamodel_outputs(retrain, scores.shape[1], n_subsets, fraction, generator=generator)
    require(actual.shape[0] == scores.shape[0],
            f"retrain returned outputs for {actual.shape[0]} test examples but scores has {scores.shape[0]} rows")
    return lds(scores, masks, actual)


def leave_one_out_changes(retrain: Callable[[Tensor], Tensor], n_train: int, indices: Tensor) -> Tensor:
    """``f_full(t) - f_without_i(t)`` for each removed example ``i`` in ``indices``: shape ``(n_test, len)``.

    One batch of ``len(indices) + 1`` retrained models: the full set and each set with one example left out.
    """
    indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    require(len(indices) > 0 and int(indices.min()) >= 0 and int(indices.max()) < n_train,
            f"indices must be in [0, {n_train}), got {describe(indices)}")
    masks = torch.ones(len(indices) + 1, n_train, dtype=torch.bool)
    masks[torch.arange(1, len(indices) + 1), indices] = False
    out = retrain(masks)
    return (out[0:1] - out[1:]).T.contiguous()


def leave_one_out_correlation(scores: Tensor, changes: Tensor) -> float:
    """Mean over test examples of the Pearson correlation between ``scores`` and the actual leave-one-out
    ``changes``, both ``(n_test, n_removed)`` (pass ``scores[:, indices]``)."""
    require(isinstance(scores, Tensor) and isinstance(changes, Tensor) and scores.shape == changes.shape,
            f"scores and changes must have the same shape (n_test, n_removed), got {describe(scores)} and "
            f"{describe(changes)}")
    return float(pearson(scores, changes, dim=1).nanmean())


def mislabel_auc(self_influence: Tensor, flipped: Tensor) -> float:
    """Area under the ROC curve of finding the ``flipped`` examples by ranking ``self_influence`` (highest
    first): the probability that a flipped example outranks a clean one, ties counting one half."""
    require(isinstance(self_influence, Tensor) and self_influence.dim() == 1,
            f"self_influence must be a 1-d tensor, got {describe(self_influence)}")
    flipped = torch.as_tensor(flipped, dtype=torch.bool)
    require(flipped.shape == self_influence.shape,
            f"flipped must be a bool mask of shape {tuple(self_influence.shape)}, got {describe(flipped)}")
    n_pos, n_neg = int(flipped.sum()), int((~flipped).sum())
    require(n_pos > 0 and n_neg > 0, "flipped must mark at least one flipped and one clean example")
    ranks = rank(self_influence) + 1
    return float((ranks[flipped].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
