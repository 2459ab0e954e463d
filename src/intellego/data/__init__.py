"""Synthetic demo data sets with ground truth for checking attributions.

Every generator is deterministic from its seed, vectorized with torch and
needs no downloads:

* ``make_shapes``: colour images of four shape classes with object masks.
* ``make_tabular``: a binary tabular task with known feature importances.
* ``make_tokens``: a token-sequence sentiment task with known deciding tokens.

Example:
    >>> from intellego.data import make_shapes, make_tabular, make_tokens
    >>> len(make_shapes(8)), len(make_tabular(8)), len(make_tokens(8))
    (8, 8, 8)
"""

from intellego.data.shapes import SHAPE_CLASSES, ShapesData, make_shapes
from intellego.data.tabular import (
    TABULAR_FEATURE_NAMES,
    TabularData,
    make_tabular,
    tabular_logit,
    true_importances,
)
from intellego.data.tokens import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    TOKEN_VOCAB,
    TokenData,
    make_tokens,
)

__all__ = [
    "NEGATIVE_WORDS",
    "POSITIVE_WORDS",
    "SHAPE_CLASSES",
    "TABULAR_FEATURE_NAMES",
    "TOKEN_VOCAB",
    "ShapesData",
    "TabularData",
    "TokenData",
    "make_shapes",
    "make_tabular",
    "make_tokens",
    "tabular_logit",
    "true_importances",
]
