"""What every influence method shares: the base class, the k-most-influential result, batches of a dataset.

Example:
    >>> import torch
    >>> from intellego.influence._common import KMostInfluentialResults
    >>> KMostInfluentialResults(torch.tensor([[2, 0]]), torch.tensor([[0.5, 0.1]])).indices.tolist()
    [[2, 0]]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from torch import Tensor, nn
from torch.utils.data import Dataset

__all__ = ["DataInfluence", "KMostInfluentialResults"]


class DataInfluence(ABC):
    """Base class of every training-data attribution method: ``influence(inputs, **kwargs)`` says how much each
    training example influences the model's behaviour on ``inputs``.

    Subclasses set ``self.model`` and ``self.train_dataset`` (this constructor does it for them).

    Example:
        >>> import torch
        >>> class Agreement(DataInfluence):  # a toy: the dot product of test and training features
        ...     def influence(self, inputs=None, **kwargs):
        ...         return inputs @ self.train_dataset.T
        >>> Agreement(torch.nn.Identity(), torch.eye(3)).influence(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
        [[1.0, 2.0, 3.0]]
    """

    def __init__(self, model: nn.Module, train_dataset: Any = None, **kwargs: Any) -> None:
        self.model = model
        self.train_dataset: Dataset | Any = train_dataset

    @abstractmethod
    def influence(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Influence of the training data on ``inputs``; the form of the result depends on the method."""

    @classmethod
    def get_name(cls) -> str:
        """The method's name, as shown on progress bars."""
        return cls.__name__


class KMostInfluentialResults(NamedTuple):
    """``indices[i, j]``: the training example with the j-th highest (proponents) or lowest (opponents) score on
    test example ``i``; ``influence_scores[i, j]`` is that score.

    Attributes:
        indices: ``(n_test, k)`` indices into the training set.
        influence_scores: ``(n_test, k)`` their scores.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[1.0, 7.0, 3.0]])
        >>> top = KMostInfluentialResults(*reversed(scores.topk(2)))
        >>> top.indices.tolist(), top.influence_scores.tolist()
        ([[1, 2]], [[7.0, 3.0]])
    """

    indices: Tensor
    influence_scores: Tensor
