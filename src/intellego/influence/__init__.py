"""Training-data attribution: which training examples made the model say this (Captum's ``captum.influence``).

Example:
    >>> from intellego.influence import DataInfluence
    >>> DataInfluence.get_name()
    'DataInfluence'
"""

from intellego._docs import INFLUENCE, INFLUENCE_RETURNS, add_shared_args
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

# Shared argument texts and Returns sections (intellego/_docs.py) for every class above.
for _cls in (DataInfluence, SimilarityInfluence, TracInCPBase, TracInCP, TracInCPFast, TracInCPFastRandProj,
             NaiveInfluenceFunction, ArnoldiInfluenceFunction, EKFACInfluence, TRAKInfluence):
    add_shared_args(_cls, INFLUENCE, INFLUENCE_RETURNS)
