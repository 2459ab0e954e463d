"""``GaussianStochasticGates`` (the module path of ``captum.module.gaussian_stochastic_gates``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._docs import fill_docs
from ..errors import describe, require
from ._engine import gaussian_active_probs, gaussian_gates, gaussian_noise
from .stochastic_gates_base import StochasticGatesBase

__all__ = ["GaussianStochasticGates"]


@fill_docs
class GaussianStochasticGates(StochasticGatesBase):
    """Gates drawn from ``N(mu, std^2)`` and clamped to [0, 1], Yamada et al. 2020 (STG); ``mu`` is learned.

    Args:
        {N_GATES}
        {GATE_MASK}
        {REG_WEIGHT}
        std: Standard deviation of the draws, above 0, fixed throughout.
        {REG_REDUCTION}
        {GATE_GENERATOR}

    Example:
        >>> import torch
        >>> gates = GaussianStochasticGates(4, std=0.5, generator=torch.Generator().manual_seed(0))
        >>> _ = gates.eval()
        >>> gates(torch.ones(2, 4))[0].shape, gates.get_gate_active_probs().shape
        (torch.Size([2, 4]), torch.Size([4]))
    """

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0, std: float = 0.5,
                 reg_reduction: str = "sum", *, generator: torch.Generator | None = None) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction, generator=generator)
        require(isinstance(std, (int, float)) and math.isfinite(std) and std > 0,
                f"std must be a finite number > 0, got {describe(std)}")
        self.mu = nn.Parameter(self._init_parameter(0.5, 0.01))
        self.std = std

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        if not self.training:
            return self.mu.expand(batch_size, self.n_gates)
        return gaussian_noise(batch_size, self.mu, self.std, self.generator).add_(self.mu)

    def _clamped_gates(self, batch_size: int) -> Tensor:
        if type(self)._sample_gate_values is not GaussianStochasticGates._sample_gate_values:
            return super()._clamped_gates(batch_size)  # a subclass draws its own way
        if not self.training:
            return torch.clamp(self.mu, min=0, max=1).unsqueeze(0)
        return gaussian_gates(gaussian_noise(batch_size, self.mu, self.std, self.generator), self.mu)

    def _get_gate_values(self) -> Tensor:
        return self.mu

    def _get_gate_active_probs(self) -> Tensor:
        return gaussian_active_probs(self.mu, self.std)

    @classmethod
    def _from_pretrained(cls, mu: Tensor, *args: Any, **kwargs: Any) -> GaussianStochasticGates:
        """Gates with a trained ``mu`` (1-D); other arguments as the constructor's, after n_gates."""
        require(isinstance(mu, Tensor) and mu.dim() == 1, f"mu must be a 1-D tensor, got {describe(mu)}")
        gates = cls(mu.numel(), *args, **kwargs)
        with torch.no_grad():
            gates.mu.copy_(mu)
        return gates
