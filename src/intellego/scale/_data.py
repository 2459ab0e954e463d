"""Reading a map-style dataset (or a sequential DataLoader) in fixed shards and batches.

Shard ``k`` holds dataset indices ``[k * shard_size, (k + 1) * shard_size)``; within a shard, batches of
``batch_size``. The layout does not depend on the number of ranks, which is what makes a sharded run equal a
single-process one and lets a rerun with another world size resume.

Example:
    >>> import torch
    >>> data = [(torch.tensor([float(i)]), i % 2) for i in range(5)]
    >>> source = Source.of(data, None)
    >>> x, y = source.batch(range(0, 2))
    >>> x.tolist(), y.tolist(), shard_ranges(5, 2)
    ([[0.0], [1.0]], [0, 1], [range(0, 2), range(2, 4), range(4, 5)])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, SequentialSampler, default_collate

from ..errors import describe, require

__all__ = ["Source", "shard_ranges", "to_device"]

Inputs = Tensor | tuple[Tensor, ...]


def shard_ranges(n: int, shard_size: int) -> list[range]:
    """The dataset index range of every shard."""
    return [range(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def _as_inputs(x: Any) -> Inputs:
    if isinstance(x, Tensor):
        return x
    require(isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x),
            f"dataset inputs must be a tensor or a tuple of tensors, got {describe(x)}")
    return tuple(x)


@dataclass
class Source:
    """A dataset with its collate function and whether its items are ``(inputs, label)`` pairs.

    An item is ``(inputs, label)`` when it is a pair whose second entry is an int or a 0-d tensor; otherwise
    the whole item is the inputs (a tensor or a tuple of tensors).
    """

    dataset: Any
    collate: Callable[[list[Any]], Any]
    labelled: bool
    loader_batch_size: int | None = None

    @staticmethod
    def of(data: Any, collate_fn: Callable[[list[Any]], Any] | None) -> Source:
        """Wrap a map-style dataset or a DataLoader over one (whose sampler must be sequential)."""
        batch_size = None
        if isinstance(data, DataLoader):
            require(isinstance(data.sampler, SequentialSampler),
                    f"dataset: a DataLoader must read in order (shuffle=False, no sampler), got sampler "
                    f"{describe(data.sampler)}; pass the dataset itself to shard it")
            collate_fn = collate_fn or data.collate_fn
            batch_size = data.batch_size
            data = data.dataset
        require(not isinstance(data, IterableDataset) and hasattr(data, "__len__") and hasattr(data, "__getitem__"),
                f"dataset must be map-style (len() and [index]) or a DataLoader over one, got {describe(data)}")
        require(len(data) > 0, "dataset is empty")
        first = data[0]
        label = first[1] if isinstance(first, (tuple, list)) and len(first) == 2 else None
        labelled = isinstance(label, int) or (isinstance(label, Tensor) and label.dim() == 0)
        if not labelled:
            _as_inputs(first)
        return Source(data, collate_fn or default_collate, labelled, batch_size)

    def batch(self, indices: Sequence[int]) -> tuple[Inputs, Tensor | None]:
        """The collated inputs and labels (None without labels) of ``indices``."""
        batch = self.collate([self.dataset[i] for i in indices])
        if not self.labelled:
            return _as_inputs(batch), None
        x, y = batch
        return _as_inputs(x), torch.as_tensor(y)


def to_device(x: Inputs, device: torch.device | str | None) -> Inputs:
    if device is None:
        return x
    return x.to(device) if isinstance(x, Tensor) else tuple(t.to(device) for t in x)
