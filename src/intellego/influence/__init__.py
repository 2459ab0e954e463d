"""Training-data attribution: which training examples made the model say this (Captum's ``captum.influence``).

Example:
    >>> from intellego.influence import DataInfluence
    >>> DataInfluence.get_name()
    'DataInfluence'
"""

from intellego.influence._common import DataInfluence, KMostInfluentialResults
from intellego.influence.influence_function import ArnoldiInfluenceFunction, NaiveInfluenceFunction
from intellego.influence.influence_function_ekfac import EKFACInfluence
from intellego.influence.influence_function_trak import TRAKInfluence
from intellego.influence.similarity import SimilarityInfluence
from intellego.influence.tracincp import TracInCP, TracInCPBase
from intellego.influence.tracincp_fast import TracInCPFast, TracInCPFastRandProj

__all__ = [
    "DataInfluence",
    "KMostInfluentialResults",
    "SimilarityInfluence",
    "TracInCPBase",
    "TracInCP",
    "TracInCPFast",
    "TracInCPFastRandProj",
    "NaiveInfluenceFunction",
    "ArnoldiInfluenceFunction",
    "EKFACInfluence",
    "TRAKInfluence",
]
