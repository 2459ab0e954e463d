"""``BinaryConcreteStochasticGates`` (the module path of ``captum.module.binary_concrete_stochastic_gates``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._docs import fill_docs
from ..errors import describe, require
from ._engine import concrete_active_probs, concrete_gates, logistic_noise, stretch
from .stochastic_gates_base import StochasticGatesBase

__all__ = ["BinaryConcreteStochasticGates"]


@fill_docs
class BinaryConcreteStochasticGates(StochasticGatesBase):
    """Gates drawn from a stretched binary concrete (hard concrete) distribution, Louizos et al. 2018.

    A draw is ``sigmoid((logit(u) + log_alpha) / temperature)`` stretched onto ``(lower_bound, upper_bound)`` and
    clamped to [0, 1], so a gate is exactly 0 or 1 with positive probability. ``log_alpha_param`` is learned.

    Args:
        {N_GATES}
        {GATE_MASK}
        {REG_WEIGHT}
        temperature: Temperature of the concrete distribution, in (0, 1).
        lower_bound: Lower end of the stretch, below 0.
        upper_bound: Upper end of the stretch, above 1.
        eps: The uniform draws stay in ``[eps, 1 - eps]``.
        {REG_REDUCTION}
        {GATE_GENERATOR}

    Example:
        >>> import torch
        >>> gates = BinaryConcreteStochasticGates(5, reg_weight=0.01, generator=torch.Generator().manual_seed(0))
        >>> gated, reg = gates(torch.randn(3, 5))
        >>> gated.shape, reg.shape
        (torch.Size([3, 5]), torch.Size([]))
    """

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0,
                 temperature: float = 2 / 3, lower_bound: float = -0.1, upper_bound: float = 1.1,
                 eps: float = 1e-8, reg_reduction: str = "sum", *, generator: torch.Generator | None = None) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction, generator=generator)
        _number = (int, float)
        require(isinstance(temperature, _number) and 0 < temperature < 1,
                f"temperature must be in (0, 1) (0 would be a hard Bernoulli gate), got {describe(temperature)}")
        require(isinstance(lower_bound, _number) and lower_bound < 0,
                f"lower_bound must be < 0 (the stretch below 0 lets a gate close exactly), got {describe(lower_bound)}")
        require(isinstance(upper_bound, _number) and upper_bound > 1,
                f"upper_bound must be > 1 (the stretch above 1 lets a gate open fully), got {describe(upper_bound)}")
        require(isinstance(eps, _number) and 0 <= eps < 0.5, f"eps must be in [0, 0.5), got {describe(eps)}")
        self.log_alpha_param = nn.Parameter(self._init_parameter(0.0, 0.01))
        self.temperature = temperature
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.eps = eps
        self.active_prob_offset: float = temperature * math.log(-lower_bound / upper_bound)

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        if not self.training:
            return self._get_gate_values().expand(batch_size, self.n_gates)
        noise = logistic_noise(batch_size, self.log_alpha_param, self.eps, self.generator)
        return stretch(torch.sigmoid(noise.add_(self.log_alpha_param).div_(self.temperature)), self.lower_bound,
                       self.upper_bound)

    def _clamped_gates(self, batch_size: int) -> Tensor:
        if type(self)._sample_gate_values is not BinaryConcreteStochasticGates._sample_gate_values:
            return super()._clamped_gates(batch_size)  # a subclass draws its own way
        if not self.training:
            return torch.clamp(self._get_gate_values(), min=0, max=1).unsqueeze(0)
        noise = logistic_noise(batch_size, self.log_alpha_param, self.eps, self.generator)
        return concrete_gates(noise, self.log_alpha_param, self.temperature, self.lower_bound, self.upper_bound)

    def _get_gate_values(self) -> Tensor:
        return stretch(torch.sigmoid(self.log_alpha_param), self.lower_bound, self.upper_bound)

    def _get_gate_active_probs(self) -> Tensor:
        return concrete_active_probs(self.log_alpha_param, self.temperature, self.lower_bound, self.upper_bound)

    @classmethod
    def _from_pretrained(cls, log_alpha_param: Tensor, *args: Any, **kwargs: Any) -> BinaryConcreteStochasticGates:
        """Gates with a trained ``log_alpha_param`` (1-D); other arguments as the constructor's, after n_gates."""
        require(isinstance(log_alpha_param, Tensor) and log_alpha_param.dim() == 1,
                f"log_alpha_param must be a 1-D tensor, got {describe(log_alpha_param)}")
        gates = cls(log_alpha_param.numel(), *args, **kwargs)
        with torch.no_grad():
            gates.log_alpha_param.copy_(log_alpha_param)
        return gates
