"""Captum's path ``captum.influence._core.influence_function``: re-exports only."""

from intellego.influence.influence_function import ArnoldiInfluenceFunction, NaiveInfluenceFunction

__all__ = ["NaiveInfluenceFunction", "ArnoldiInfluenceFunction"]
