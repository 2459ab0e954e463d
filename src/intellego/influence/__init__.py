"""Training-data attribution: which training examples made the model say this (Captum's ``captum.influence``).

Example:
    >>> from intellego.influence import DataInfluence
    >>> DataInfluence.get_name()
    'DataInfluence'
"""

from intellego.influence._common import DataInfluence, KMostInfluentialResults

__all__ = [
    "DataInfluence",
    "KMostInfluentialResults",
]
