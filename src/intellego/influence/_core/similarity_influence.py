"""Captum's path ``captum.influence._core.similarity_influence``: re-exports only."""

from intellego.influence.similarity import SimilarityInfluence, cosine_similarity, euclidean_distance

__all__ = ["SimilarityInfluence", "cosine_similarity", "euclidean_distance"]
