"""CAV classifiers: Captum's ``Classifier`` interface, a torch-only default and FastCAV.

A classifier learns to tell the concepts of an experimental set apart from their layer activations; its weights
(one row per class) are the concept activation vectors. Any object with ``train_and_eval(dataloader, **kwargs)``,
``weights()`` and ``classes()`` works (subclassing :class:`Classifier` is not required).

Example:
    >>> import torch
    >>> from intellego.concept import DefaultClassifier
    >>> x = torch.cat([torch.randn(20, 5) + 2, torch.randn(20, 5) - 2])
    >>> y = torch.tensor([7] * 20 + [9] * 20)
    >>> clf = DefaultClassifier(generator=torch.Generator().manual_seed(0))
    >>> stats = clf.train_and_eval([(x, y)])
    >>> float(stats["accs"]), clf.classes(), tuple(clf.weights().shape)
    (1.0, [7, 9], (2, 5))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require
from ._fit import linear_accuracy, logistic_ovr, mean_difference, stratified_split, take_rows

__all__ = ["Classifier", "DefaultClassifier", "FastCAVClassifier", "gather_batches"]


class Classifier(ABC):
    """Captum's classifier interface: ``train_and_eval`` on ``(activations, labels)`` batches, then ``weights()``
    (``C x F``, one row per class) and ``classes()`` (the labels, in the order of the rows).

    Example:
        >>> import torch
        >>> class FirstRow(Classifier):  # a toy: the first activation of each class is its CAV
        ...     def train_and_eval(self, dataloader, **kwargs):
        ...         x, y = next(iter(dataloader))
        ...         self.labels = sorted(set(y.tolist()))
        ...         self.rows = torch.stack([x[y == c][0] for c in self.labels])
        ...     def weights(self):
        ...         return self.rows
        ...     def classes(self):
        ...         return self.labels
        >>> clf = FirstRow()
        >>> clf.train_and_eval([(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([3, 5]))])
        >>> clf.classes(), clf.weights().tolist()
        ([3, 5], [[1.0, 0.0], [0.0, 1.0]])
    """

    @abstractmethod
    def train_and_eval(self, dataloader: Iterable[Any], **kwargs: Any) -> dict[str, Any] | None:
        """Fit on the batches; return statistics such as ``{"accs": accuracy}`` (or ``None``)."""

    @abstractmethod
    def weights(self) -> Tensor:
        """The ``C x F`` weights of the last fit."""

    @abstractmethod
    def classes(self) -> list[int]:
        """The class labels of the last fit, in the order of the rows of :meth:`weights`."""


def gather_batches(dataloader: Iterable[Any]) -> tuple[list[Tensor], Tensor]:
    """The ``(inputs, labels)`` batches as a list of ``(n_b, F)`` row-blocks (not copied) and all labels."""
    xs, ys = [], []
    for batch in dataloader:
        require(isinstance(batch, (tuple, list)) and len(batch) == 2,
                f"the classifier's dataloader must yield (activations, labels) pairs, got {describe(batch)}")
        x, y = batch
        xs.append(x.reshape(x.shape[0], -1) if x.dim() != 2 else x)
        ys.append(torch.as_tensor(y).reshape(-1))
    require(bool(xs), "the classifier's dataloader yielded no batches: no concept examples to train on")
    widths = sorted({x.shape[1] for x in xs})
    require(len(widths) == 1, f"activation batches have different numbers of features: {widths}")
    y = torch.cat(ys).long().cpu()
    rows = sum(x.shape[0] for x in xs)
    require(rows == y.shape[0], f"{rows} activation rows but {y.shape[0]} labels")
    return xs, y


class _LinearCAV(Classifier):
    """Shared state and evaluation of the built-in linear classifiers."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        require(generator is None or isinstance(generator, torch.Generator),
                f"generator must be a torch.Generator or None, got {describe(generator)}")
        self.generator = generator
        self._weights: Tensor | None = None
        self._bias: Tensor | None = None
        self._classes: list[int] = []

    def _split_gen(self) -> torch.Generator:
        return self.generator if self.generator is not None else torch.Generator().manual_seed(0)

    def _fit(self, parts: list[Tensor], y: Tensor, train: Tensor) -> tuple[Tensor, Tensor, list[int]]:
        raise NotImplementedError

    def train_and_eval(self, dataloader: Iterable[Any], test_split_ratio: float = 0.33,
                       **kwargs: Any) -> dict[str, Any]:
        """Split each class at random (``test_split_ratio`` of it held out), fit on the rest, and return
        ``{"accs": held-out accuracy}`` (NaN without held-out examples)."""
        if kwargs:
            raise IntellegoError(f"{type(self).__name__}.train_and_eval got unknown arguments {sorted(kwargs)}")
        parts, y = gather_batches(dataloader)
        require(bool(torch.unique(y).numel() >= 2),
                f"{type(self).__name__} needs examples of at least two concepts, got labels "
                f"{torch.unique(y).tolist()}")
        train, test = stratified_split(y, test_split_ratio, self._split_gen())
        self._weights, self._bias, self._classes = self._fit(parts, y, train)
        return {"accs": linear_accuracy(parts, y, test, self._weights, self._bias, self._classes)}

    def weights(self) -> Tensor:
        if self._weights is None:
            raise IntellegoError(f"{type(self).__name__} has no weights yet: call train_and_eval first")
        return self._weights

    def classes(self) -> list[int]:
        require(bool(self._classes), f"{type(self).__name__} has no classes yet: call train_and_eval first")
        return list(self._classes)


@fill_docs
class DefaultClassifier(_LinearCAV):
    """L2-regularised logistic regression (one-vs-rest), solved exactly by Newton's method in torch.

    The objective is ``mean(logistic loss) + alpha / 2 * |w|^2`` (``alpha=0.01`` like the penalty of Captum's
    default ``SGDClassifier``). The optimum is unique and found full-batch, so the only randomness is the
    train/test split: reruns with the same generator state give bit-identical CAVs. Two concepts give the weight
    rows ``[-w, w]``.

    Args:
        alpha: Strength of the L2 penalty (positive).
        max_iter: At most this many Newton steps.
        {CAV_GENERATOR}

    Example:
        >>> import torch
        >>> x = torch.tensor([[2.0, 0.0], [3.0, 1.0], [-2.0, 0.0], [-3.0, -1.0]])
        >>> clf = DefaultClassifier()
        >>> stats = clf.train_and_eval([(x, torch.tensor([1, 1, 0, 0]))], test_split_ratio=0.0)
        >>> w = clf.weights()
        >>> clf.classes(), bool(w[1, 0] > 0), torch.equal(w[0], -w[1])
        ([0, 1], True, True)
    """

    def __init__(self, alpha: float = 0.01, max_iter: int = 100, generator: torch.Generator | None = None) -> None:
        require(isinstance(alpha, (int, float)) and alpha > 0, f"alpha must be a positive number, got {alpha!r}")
        require(isinstance(max_iter, int) and max_iter > 0, f"max_iter must be a positive int, got {max_iter!r}")
        super().__init__(generator)
        self.alpha, self.max_iter = float(alpha), max_iter

    def _fit(self, parts: list[Tensor], y: Tensor, train: Tensor) -> tuple[Tensor, Tensor, list[int]]:
        return logistic_ovr(take_rows(parts, train), y[train].to(parts[0].device), self.alpha, self.max_iter)


@fill_docs
class FastCAVClassifier(_LinearCAV):
    """FastCAV: each concept's mean activation minus the mean of the concept means (no optimisation).

    One pass over the activations; for two concepts the CAV is half the difference of their means. Accurate when
    the concepts differ mostly in their mean, and much faster than training on wide layers.

    Args:
        {CAV_GENERATOR}

    Example:
        >>> import torch
        >>> x = torch.tensor([[4.0, 0.0], [2.0, 2.0], [0.0, 0.0], [0.0, 2.0]])
        >>> clf = FastCAVClassifier()
        >>> _ = clf.train_and_eval([(x, torch.tensor([1, 1, 0, 0]))], test_split_ratio=0.0)
        >>> clf.weights().tolist()  # half the difference of the two class means, and its negative
        [[-1.5, 0.0], [1.5, 0.0]]
    """

    def _fit(self, parts: list[Tensor], y: Tensor, train: Tensor) -> tuple[Tensor, Tensor, list[int]]:
        return mean_difference(parts, y, train)
