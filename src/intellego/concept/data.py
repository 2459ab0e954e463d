"""Small data helpers with Captum's names (``captum.concept._utils.data_iterator``) for building concept sets.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from intellego.concept import dataset_to_dataloader
    >>> [tuple(b[0].shape) for b in dataset_to_dataloader(TensorDataset(torch.zeros(5, 2)), batch_size=4)]
    [(4, 2), (1, 2)]
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, IterableDataset

__all__ = ["CustomIterableDataset", "dataset_to_dataloader"]


class CustomIterableDataset(IterableDataset):
    """Examples read from files: every file under the folder ``path`` (or the file ``path`` itself) mapped
    through ``transform_filename_to_tensor``.

    Args:
        transform_filename_to_tensor: ``f(filename)`` -> an example (for a folder: one per file, in sorted
            order) or, for a single file, an iterable of examples.
        path: A folder of files or one file.

    Example:
        >>> import os, tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for i in range(3):
        ...         torch.save(torch.full((2,), float(i)), os.path.join(d, f"{i}.pt"))
        ...     data = CustomIterableDataset(torch.load, d)
        ...     [x.tolist() for x in data]
        [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    """

    def __init__(self, transform_filename_to_tensor: Callable[[str], Any], path: str) -> None:
        self.path = path
        self.transform_filename_to_tensor = transform_filename_to_tensor
        self.file_itr = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else None

    def __iter__(self) -> Iterator[Any]:
        if self.file_itr is not None:
            return map(self.transform_filename_to_tensor, self.file_itr)
        return iter(self.transform_filename_to_tensor(self.path))


def dataset_to_dataloader(dataset: Dataset, batch_size: int = 64) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` with ``batch_size`` examples per batch.

    Args:
        dataset: A map-style or iterable dataset.
        batch_size: Examples per batch.

    Returns:
        The ``DataLoader``.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> [b[0].shape[0] for b in dataset_to_dataloader(TensorDataset(torch.zeros(5, 2)), batch_size=2)]
        [2, 2, 1]
    """
    return DataLoader(dataset, batch_size=batch_size)
