"""The numerical pieces of the stochastic gates, one small function each.

The gate modules only hold parameters and call these. Noise is drawn in the dtype and on the device of the gate
parameters, from ``generator`` when one is given and from torch's global generator otherwise (as Captum does).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require

__all__ = ["GateLayout", "check_mask", "layout", "expand_gates", "logistic_noise", "gaussian_noise",
           "concrete_gates", "gaussian_gates", "stretch", "concrete_active_probs", "gaussian_active_probs",
           "reduce_reg"]

REDUCTIONS = ("none", "mean", "sum")


def _generator_device(generator: torch.Generator | None, like: Tensor) -> None:
    if generator is not None and generator.device.type != like.device.type:
        raise IntellegoError(f"generator is on {generator.device} but the gate parameters are on {like.device}: "
                             f"pass a torch.Generator(device={str(like.device)!r})")


def logistic_noise(rows: int, like: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """``logit(u)`` for ``u ~ U(eps, 1 - eps)``, shape ``(rows, len(like))``: the same draws as Captum's uniform.

    >>> g = torch.Generator().manual_seed(0)
    >>> logistic_noise(2, torch.zeros(3), 1e-8, g).shape
    torch.Size([2, 3])
    """
    _generator_device(generator, like)
    u = torch.empty(rows, like.shape[0], dtype=like.dtype, device=like.device)
    return u.uniform_(eps, 1 - eps, generator=generator).logit_()


def gaussian_noise(rows: int, like: Tensor, std: float, generator: torch.Generator | None) -> Tensor:
    """``N(0, std^2)`` draws of shape ``(rows, len(like))``, like Captum's ``normal_``.

    >>> gaussian_noise(4, torch.zeros(2), 0.5, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2])
    """
    _generator_device(generator, like)
    n = torch.empty(rows, like.shape[0], dtype=like.dtype, device=like.device)
    return n.normal_(0.0, std, generator=generator)


class _HardConcrete(torch.autograd.Function):
    """Stretched, clamped binary concrete gates as one autograd node (fewer passes and nodes than composing
    six operations); the backward pass recovers the sigmoid from the saved gates, where it matters."""

    @staticmethod
    def forward(ctx: Any, noise: Tensor, log_alpha: Tensor, temperature: float, lower: float,  # type: ignore[override]
                upper: float) -> Tensor:
        gates = noise.add_(log_alpha).div_(temperature).sigmoid_().mul_(upper - lower).add_(lower).clamp_(0, 1)
        ctx.save_for_backward(gates)
        ctx.constants = (temperature, lower, upper)
        return gates

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (gates,) = ctx.saved_tensors
        temperature, lower, upper = ctx.constants
        width = upper - lower
        s = (gates - lower).div_(width)
        slope = s.mul_(1 - s).mul_(grad).masked_fill_((gates <= 0) | (gates >= 1), 0)
        return None, slope.sum(0).mul_(width / temperature), None, None, None


FUSE_FROM = 1 << 16  # elements: below this a custom autograd node costs more Python than it saves passes


def concrete_gates(noise: Tensor, log_alpha: Tensor, temperature: float, lower: float, upper: float) -> Tensor:
    """Binary concrete draws ``sigmoid((noise + log_alpha) / temperature)`` stretched onto ``(lower, upper)`` and
    clamped to [0, 1]; ``noise`` (logistic, shape ``(rows, n)``) is overwritten.

    Large draws run as one autograd node (:class:`_HardConcrete`), small ones as plain operations.

    >>> concrete_gates(torch.zeros(1, 2), torch.tensor([0.0, 10.0]), 0.5, -0.1, 1.1)
    tensor([[0.5000, 1.0000]])
    """
    if noise.numel() >= FUSE_FROM:
        return _HardConcrete.apply(noise, log_alpha, temperature, lower, upper)
    s = torch.sigmoid(noise.add_(log_alpha).div_(temperature))
    return torch.clamp(stretch(s, lower, upper), min=0, max=1)


def gaussian_gates(noise: Tensor, mu: Tensor) -> Tensor:
    """Gaussian gate draws ``clamp(noise + mu, 0, 1)``; ``noise`` (``N(0, std^2)``, shape ``(rows, n)``) is
    overwritten. (A fused autograd node, as for the binary concrete gates, measured no faster here.)

    >>> gaussian_gates(torch.tensor([[0.2, -0.4, 0.9]]), torch.full((3,), 0.5))
    tensor([[0.7000, 0.1000, 1.0000]])
    """
    return torch.clamp(noise.add_(mu), min=0, max=1)


def stretch(s: Tensor, lower: float, upper: float) -> Tensor:
    """Map ``s`` in (0, 1) linearly onto (lower, upper).

    >>> stretch(torch.tensor([0.0, 0.5, 1.0]), -0.1, 1.1)
    tensor([-0.1000,  0.5000,  1.1000])
    """
    return (s * (upper - lower)).add_(lower)


def concrete_active_probs(log_alpha: Tensor, temperature: float, lower: float, upper: float) -> Tensor:
    """P(gate > 0) of the stretched binary concrete distribution: ``sigmoid(log_alpha - T log(-lower / upper))``.

    >>> concrete_active_probs(torch.zeros(1), 2 / 3, -0.1, 1.1)
    tensor([0.8318])
    """
    return torch.sigmoid(log_alpha - temperature * math.log(-lower / upper))


def gaussian_active_probs(mu: Tensor, std: float) -> Tensor:
    """P(gate > 0) of ``N(mu, std^2)``: the normal CDF at ``mu / std``, as ``erfc`` so that it keeps its relative
    precision in the lower tail (``(1 + erf) / 2`` rounds to 0 there, which ties the ranking of closed gates).

    >>> gaussian_active_probs(torch.tensor([0.0, 0.5, -4.0]), 0.5)
    tensor([5.0000e-01, 8.4134e-01, 6.2210e-16])
    """
    return torch.special.erfc(mu * (-1 / (std * math.sqrt(2)))).mul_(0.5)


def reduce_reg(probs: Tensor, reduction: str, weight: float) -> Tensor:
    """The L0 penalty: the active probabilities summed, averaged or kept, times ``weight``.

    >>> reduce_reg(torch.tensor([0.25, 0.75]), "mean", 2.0)
    tensor(1.)
    """
    reg = probs.sum() if reduction == "sum" else probs.mean() if reduction == "mean" else probs
    return reg if weight == 1.0 else reg * weight


def check_mask(mask: Tensor, n_gates: int) -> Tensor:
    """Validate a gate mask (integer ids ``0 .. n_gates - 1``, each used) and return it as ``int64``.

    >>> check_mask(torch.tensor([0, 0, 1]), 2)
    tensor([0, 0, 1])
    """
    require(isinstance(mask, Tensor), f"mask must be a tensor of gate ids, got {describe(mask)}")
    require(not mask.dtype.is_floating_point and not mask.dtype.is_complex and mask.dtype != torch.bool,
            f"mask must hold integer gate ids, got {describe(mask)}")
    require(mask.numel() > 0, f"mask is empty ({describe(mask)})")
    ids = mask.detach().to(torch.int64)
    low, high = int(ids.min()), int(ids.max())
    require(low >= 0, f"mask ids must be >= 0, got a minimum of {low}")
    require(high == n_gates - 1,
            f"n_gates ({n_gates}) does not match the mask: its largest id is {high}, so it defines {high + 1} "
            f"gates (ids 0 .. n_gates - 1, one per gate)")
    used = torch.bincount(ids.reshape(-1).cpu(), minlength=n_gates) > 0
    missing = (~used).nonzero().reshape(-1).tolist()
    require(not missing,
            f"mask ids have gaps: ids {missing[:10]}{' ...' if len(missing) > 10 else ''} of 0 .. {n_gates - 1} "
            f"are never used, so those gates would gate nothing; renumber the groups 0 .. k - 1")
    return ids.clone()


class GateLayout:
    """How gates of shape ``(rows, n_gates)`` map onto an input: an index into the gates and a view shape.

    ``index`` is ``None`` without a mask. ``per_example`` masks (batch dimension equal to the input's) gather
    row by row; shared masks select the same columns for every row, and the result broadcasts over the
    dimensions the mask leaves at 1.
    """

    __slots__ = ("index", "shape", "per_example")

    def __init__(self, index: Tensor | None, shape: tuple[int, ...], per_example: bool) -> None:
        self.index, self.shape, self.per_example = index, shape, per_example


def layout(mask: Tensor | None, n_gates: int, input_shape: torch.Size) -> GateLayout:
    """The :class:`GateLayout` of ``mask`` for an input of ``input_shape``, with a clear error when they do not
    fit (Captum's rule: the mask broadcasts to the input; without one, one gate per element of an example).

    >>> lay = layout(torch.tensor([[0, 1]]), 2, torch.Size([5, 3, 2]))
    >>> lay.shape, lay.per_example
    ((1, 2), False)
    """
    require(len(input_shape) > 1,
            f"input must have a batch dimension and at least one more, got shape {tuple(input_shape)}")
    if mask is None:
        per_row = math.prod(input_shape[1:])
        require(per_row == n_gates,
                f"without a mask every example needs one element per gate: input of shape {tuple(input_shape)} "
                f"has {per_row} elements per example but there are {n_gates} gates")
        return GateLayout(None, tuple(input_shape[1:]), False)
    require(mask.dim() <= len(input_shape),
            f"mask of shape {tuple(mask.shape)} has more dimensions than the input of shape {tuple(input_shape)}")
    full = (1,) * (len(input_shape) - mask.dim()) + tuple(mask.shape)
    fits = all(m in (1, i) for m, i in zip(full, input_shape))
    require(fits, f"mask of shape {tuple(mask.shape)} does not broadcast to the input of shape {tuple(input_shape)}")
    if full[0] != 1:
        return GateLayout(mask.reshape(full[0], -1), full[1:], True)
    return GateLayout(mask.reshape(-1), full[1:], False)


def expand_gates(gates: Tensor, lay: GateLayout) -> Tensor:
    """Gate values per input element from gates of shape ``(rows, n_gates)``; rows is 1 or the batch size.

    >>> expand_gates(torch.tensor([[0.0, 1.0]]), layout(torch.tensor([1, 0, 1]), 2, torch.Size([4, 3])))
    tensor([[1., 0., 1.]])
    """
    rows = gates.shape[0]
    if lay.index is None:
        return gates.reshape(rows, *lay.shape)
    if lay.per_example:
        index = lay.index
        if rows != index.shape[0]:
            gates = gates.expand(index.shape[0], -1)
        return torch.gather(gates, 1, index).reshape(index.shape[0], *lay.shape)
    return gates.index_select(1, lay.index).reshape(rows, *lay.shape)
