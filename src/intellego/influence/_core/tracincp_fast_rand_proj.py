"""Captum's path ``captum.influence._core.tracincp_fast_rand_proj``: re-exports only."""

from intellego.influence.tracincp_fast import TracInCPFast, TracInCPFastRandProj

__all__ = ["TracInCPFast", "TracInCPFastRandProj"]
