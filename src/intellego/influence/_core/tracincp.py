"""Captum's path ``captum.influence._core.tracincp``: re-exports only."""

from intellego.influence.tracincp import TracInCP, TracInCPBase

__all__ = ["TracInCP", "TracInCPBase"]
