"""Captum's path ``captum.influence._core.influence``: re-exports only."""

from intellego.influence._common import DataInfluence

__all__ = ["DataInfluence"]
