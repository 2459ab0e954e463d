"""Captum's path ``captum.influence._utils.nearest_neighbors``: re-exports only (the exact torch index replaces
the annoy-based default)."""

from intellego.influence.tracincp_fast import ExactNearestNeighbors, NearestNeighbors

__all__ = ["NearestNeighbors", "ExactNearestNeighbors"]
