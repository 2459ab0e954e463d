"""Alias of Captum's module path ``captum.concept._utils.data_iterator``."""

from ..data import CustomIterableDataset, dataset_to_dataloader

__all__ = ["CustomIterableDataset", "dataset_to_dataloader"]
