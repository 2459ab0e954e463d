"""Tiny pretrained demo models for the synthetic data sets in ``intellego.data``.

``python -m intellego.models.train`` retrains them and rewrites the shipped
weights.

Example:
    >>> from intellego.data import make_tabular
    >>> from intellego.models import load_tabular_mlp
    >>> data = make_tabular(200, seed=42)
    >>> model = load_tabular_mlp()
    >>> bool((model(data.features).argmax(1) == data.labels).float().mean() > 0.9)
    True
"""

from intellego.models.demo import (
    WEIGHT_FILES,
    ShapesCNN,
    TabularMLP,
    TokenClassifier,
    load_shapes_cnn,
    load_tabular_mlp,
    load_token_classifier,
)
from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer, train_tiny_lm

__all__ = [
    "WEIGHT_FILES",
    "ShapesCNN",
    "TabularMLP",
    "TokenClassifier",
    "load_shapes_cnn",
    "load_tabular_mlp",
    "load_token_classifier",
    "TinyCausalLM",
    "WordTokenizer",
    "train_tiny_lm",
]
