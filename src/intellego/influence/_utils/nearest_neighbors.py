"""Captum's path ``captum.influence._utils.nearest_neighbors``: the index interface, the exact torch index, and
``AnnoyNearestNeighbors`` under Captum's name (exact search; the annoy package is not needed).

Example:
    >>> import torch
    >>> index = AnnoyNearestNeighbors(num_trees=100)
    >>> index.setup(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
    >>> index.get_nearest_neighbors(torch.tensor([[0.1, 1.0]]), k=2)[0].tolist()
    [[1, 2]]
"""

from intellego.core.batching import check_positive_int
from intellego.influence.tracincp_fast import ExactNearestNeighbors, NearestNeighbors

__all__ = ["NearestNeighbors", "ExactNearestNeighbors", "AnnoyNearestNeighbors"]


class AnnoyNearestNeighbors(ExactNearestNeighbors):
    """Captum's annoy-backed index, by name and arguments, for code that imports it (Captum's TracIn tutorial
    does): ``num_trees`` is checked and kept, and the search is exact in torch, so the neighbours are the true
    largest dot products where annoy's trees give an approximation (see docs/porting.md)."""

    def __init__(self, num_trees: int = 10) -> None:
        check_positive_int(num_trees, "num_trees", allow_none=False)
        super().__init__()
        self.num_trees = num_trees
