"""Captum's path ``captum.influence._core.arnoldi_influence_function``: re-exports only."""

from intellego.influence.influence_function import ArnoldiInfluenceFunction

__all__ = ["ArnoldiInfluenceFunction"]
