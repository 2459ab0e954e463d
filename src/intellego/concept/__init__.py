"""Concept-based interpretation (Captum's ``captum.concept``): TCAV, CAVs, concept classifiers, significance.

Example:
    >>> from intellego.concept import TCAV, Concept, CAV, Classifier, DefaultClassifier, FastCAVClassifier
    >>> Concept(0, "striped", None).identifier
    'striped-0'
"""

from .cav import CAV
from .classifier import Classifier, DefaultClassifier, FastCAVClassifier
from .concept import Concept, ConceptInterpreter, concepts_to_str
from .data import CustomIterableDataset, dataset_to_dataloader
from .tcav import TCAV, ConceptSignificance, significance_table

__all__ = [
    "CAV",
    "Concept",
    "ConceptInterpreter",
    "TCAV",
    "Classifier",
    "DefaultClassifier",
    "FastCAVClassifier",
    "ConceptSignificance",
    "significance_table",
    "concepts_to_str",
    "CustomIterableDataset",
    "dataset_to_dataloader",
]
