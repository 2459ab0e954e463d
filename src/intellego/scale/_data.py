"""Reading a dataset in fixed shards: map-style by index, iterable by position in the stream.

Shard ``k`` holds the examples at positions ``[k * shard_size, (k + 1) * shard_size)``: dataset indices for a
map-style dataset, the order of iteration for an iterable one. The layout does not depend on the number of
ranks, which is what makes a sharded run equal a single-process one and lets a rerun with another world size
resume. An iterable dataset is read whole by every rank, which keeps the items of its own shards and skips the
others without collating or computing them (the stream must give the same items in the same order every time
it is iterated; the count is checked on resume).

Example:
    >>> import torch
    >>> data = [(torch.tensor([float(i)]), i % 2) for i in range(5)]
    >>> source = Source.of(data, None)
    >>> [(k, rows) for k, rows, _ in source.walk(2, lambda k: k != 1)], source.count
    ([(0, range(0, 2)), (2, range(4, 5))], 5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, SequentialSampler, default_collate

from ..errors import describe, require

__all__ = ["Source", "shard_ranges"]


def shard_ranges(n: int, shard_size: int) -> list[range]:
    """The dataset index range of every shard."""
    return [range(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


@dataclass
class Source:
    """A dataset with its collate function; ``count`` is its length (for a stream: once it has been read)."""

    dataset: Any
    collate: Callable[[list[Any]], Any]
    iterable: bool
    count: int | None
    loader_batch_size: int | None = None

    @staticmethod
    def of(data: Any, collate_fn: Callable[[list[Any]], Any] | None) -> Source:
        """Wrap a map-style or iterable dataset, or a DataLoader over one (a map-style one read in order)."""
        batch_size = None
        if isinstance(data, DataLoader):
            iterable = isinstance(data.dataset, IterableDataset)
            require(iterable or isinstance(data.sampler, SequentialSampler),
                    f"dataset: a DataLoader must read in order (shuffle=False, no sampler), got sampler "
                    f"{describe(data.sampler)}; pass the dataset itself to shard it")
            collate_fn = collate_fn or (data.collate_fn if data.batch_size is not None else None)
            batch_size = data.batch_size
            data = data.dataset
        if isinstance(data, IterableDataset):
            return Source(data, collate_fn or default_collate, True, None, batch_size)
        require(hasattr(data, "__len__") and hasattr(data, "__getitem__"),
                f"dataset must be map-style (len() and [index]), an IterableDataset, or a DataLoader over one, got "
                f"{describe(data)}")
        require(len(data) > 0, "dataset is empty")
        return Source(data, collate_fn or default_collate, False, len(data), batch_size)

    def walk(self, shard_size: int, wanted: Callable[[int], bool]) -> Iterator[tuple[int, range, list[Any]]]:
        """``(k, rows, items)`` of every shard ``k`` with ``wanted(k)``, in order; sets ``count`` for a stream."""
        if not self.iterable:
            for k, rows in enumerate(shard_ranges(len(self.dataset), shard_size)):
                if wanted(k):
                    yield k, rows, [self.dataset[i] for i in rows]
            return
        stream, k, n = iter(self.dataset), 0, 0
        while True:
            keep = wanted(k)
            items = list(islice(stream, shard_size)) if keep else []
            size = len(items) if keep else _skip(stream, shard_size)
            if size == 0:
                break
            if keep:
                yield k, range(n, n + size), items
            n, k = n + size, k + 1
        self.count = n


def _skip(stream: Iterator[Any], count: int) -> int:
    """Advance ``stream`` by up to ``count`` items without keeping them; returns how many there were."""
    return sum(1 for _ in islice(stream, count))
