"""``StochasticGatesBase``: L0-regularised input gates (the module path of ``captum.module.stochastic_gates_base``).

A subclass says how gate values are drawn (``_sample_gate_values``), what their means are
(``_get_gate_values``) and how likely each gate is to be open (``_get_gate_active_probs``); the base class gates
the input and returns the L0 penalty. The extension points are Captum's, so a Captum subclass ports unchanged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require
from ._engine import REDUCTIONS, GateLayout, check_mask, expand_gates, layout, reduce_reg

__all__ = ["StochasticGatesBase"]


@fill_docs
class StochasticGatesBase(nn.Module, ABC):
    """Stochastic gates in front of an input: ``forward(x) -> (x * gates, l0_penalty)``.

    Args:
        {N_GATES}
        {GATE_MASK}
        {REG_WEIGHT}
        {REG_REDUCTION}
        {GATE_GENERATOR}

    In evaluation mode (``gates.eval()``) the gates are their (clamped) means: no draws, deterministic.

    Example:
        >>> import torch
        >>> from intellego.module import GaussianStochasticGates
        >>> gates = GaussianStochasticGates(2, mask=torch.tensor([[0, 0, 1]])).eval()
        >>> gated, penalty = gates(torch.ones(4, 3))
        >>> isinstance(gates, StochasticGatesBase), gated.shape, bool(penalty > 0)
        (True, torch.Size([4, 3]), True)
    """

    mask: Tensor | None

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0,
                 reg_reduction: str = "sum", *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        require(isinstance(n_gates, int) and not isinstance(n_gates, bool) and n_gates > 0,
                f"n_gates must be a positive int, got {describe(n_gates)}")
        require(reg_reduction in REDUCTIONS,
                f"reg_reduction must be one of {', '.join(REDUCTIONS)}, got {describe(reg_reduction)}")
        require(isinstance(reg_weight, (int, float)) and math.isfinite(reg_weight) and reg_weight >= 0,
                f"reg_weight must be a finite number >= 0, got {describe(reg_weight)}")
        require(generator is None or isinstance(generator, torch.Generator),
                f"generator must be a torch.Generator or None, got {describe(generator)}")
        self.n_gates = n_gates
        self.reg_weight = reg_weight
        self.reg_reduction = reg_reduction
        self.generator = generator
        self.register_buffer("mask", None if mask is None else check_mask(mask, n_gates))

    def forward(self, input_tensor: Tensor) -> tuple[Tensor, Tensor]:
        """Gate ``input_tensor`` (batch first); returns ``(gated_input, l0_reg)``.

        Add ``l0_reg`` to the task loss, e.g. ``loss = criterion(model(gated), y) + l0_reg``.
        """
        if not isinstance(input_tensor, Tensor):
            raise IntellegoError(f"input_tensor must be a tensor, got {describe(input_tensor)}")
        lay = self._layout(input_tensor.shape)
        gated = input_tensor * expand_gates(self._clamped_gates(input_tensor.shape[0]), lay)
        return gated, reduce_reg(self._get_gate_active_probs(), self.reg_reduction, self.reg_weight)

    def _layout(self, shape: torch.Size) -> GateLayout:
        """The layout of the mask on inputs of ``shape``, validated; the last one is cached."""
        mask = self.mask
        version = None if mask is None else mask._version
        cached = self.__dict__.get("_layout_cache")
        if cached is not None and cached[0] is mask and cached[1] == version and cached[2] == shape:
            return cached[3]
        lay = layout(mask, self.n_gates, shape)
        self.__dict__["_layout_cache"] = (mask, version, shape, lay)
        return lay

    def _clamped_gates(self, batch_size: int) -> Tensor:
        """Gate values in [0, 1], shape ``(batch_size or 1, n_gates)`` (one row broadcasts over the batch)."""
        gates = self._sample_gate_values(batch_size)
        if not isinstance(gates, Tensor) or gates.shape != (batch_size, self.n_gates):
            raise IntellegoError(f"_sample_gate_values({batch_size}) must return shape ({batch_size}, "
                                 f"{self.n_gates}), got {describe(gates)}")
        if batch_size > 1 and gates.stride(0) == 0:  # the same row for every example (evaluation): broadcast it
            gates = gates[:1]
        return torch.clamp(gates, min=0, max=1)  # hard-sigmoid rectification

    def get_gate_values(self, clamp: bool = True) -> Tensor:
        """The means of the gate distributions, shape ``(n_gates,)``, clamped to [0, 1] unless ``clamp=False``
        (raw means tell apart gates that clamp to the same value)."""
        values = self._get_gate_values()
        return (torch.clamp(values, min=0, max=1) if clamp else values).detach()

    def get_gate_active_probs(self) -> Tensor:
        """P(gate > 0) for every gate, shape ``(n_gates,)``."""
        return self._get_gate_active_probs().detach()

    @abstractmethod
    def _get_gate_values(self) -> Tensor:
        """Unclamped gate means, shape ``(n_gates,)``."""

    @abstractmethod
    def _sample_gate_values(self, batch_size: int) -> Tensor:
        """Unclamped gate values for a batch, shape ``(batch_size, n_gates)`` (the means in evaluation mode)."""

    @abstractmethod
    def _get_gate_active_probs(self) -> Tensor:
        """P(gate > 0) for every gate, shape ``(n_gates,)``, differentiable in the parameters."""

    def _get_numel_of_input(self, input_tensor: Tensor) -> int:
        """Elements per example of a batched input."""
        require(input_tensor.dim() > 1,
                f"input must have a batch dimension and at least one more, got shape {tuple(input_tensor.shape)}")
        return input_tensor[0].numel()

    def _init_parameter(self, mean: float, std: float) -> Tensor:
        """A ``(n_gates,)`` draw from N(mean, std^2), from ``generator`` when set (Captum's initialisation)."""
        gen = self.generator
        values = torch.empty(self.n_gates, device=None if gen is None else gen.device)
        with torch.no_grad():
            values.normal_(mean, std, generator=gen)
        return values if gen is None else values.to(torch.get_default_device())

    def extra_repr(self) -> str:
        grouped = "" if self.mask is None else f", mask={tuple(self.mask.shape)}"
        return f"n_gates={self.n_gates}{grouped}, reg_weight={self.reg_weight}, reg_reduction={self.reg_reduction!r}"
