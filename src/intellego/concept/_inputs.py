"""Model inputs as TCAV reads them: a tensor, a tuple/list of tensors, or a dict of keyword inputs.

Example:
    >>> import torch
    >>> forward, xs = as_call(torch.nn.Linear(3, 2), {"input": torch.ones(4, 3)}, "inputs")
    >>> len(xs), tuple(forward(*xs).shape)
    (1, (4, 2))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..errors import IntellegoError, describe, require

__all__ = ["as_call"]


class _KeywordForward:
    """``model(**fixed, **dict(zip(keys, tensors)))``: a dict-input model as a positional forward function."""

    def __init__(self, model: nn.Module, keys: list[str], fixed: dict[str, Any]) -> None:
        self.model, self.keys, self.fixed = model, keys, fixed

    def __call__(self, *tensors: Any) -> Any:
        return self.model(**self.fixed, **dict(zip(self.keys, tensors)))


def as_call(model: nn.Module, inputs: Any, what: str) -> tuple[Any, tuple[Tensor, ...]]:
    """``(forward_func, input tensors)`` for a tensor, a tuple/list of tensors or a dict of inputs."""
    if isinstance(inputs, Tensor):
        xs: tuple[Tensor, ...] = (inputs,)
        forward: Any = model
    elif isinstance(inputs, Mapping):
        keys = [str(k) for k, v in inputs.items() if isinstance(v, Tensor) and v.dim() > 0]
        require(bool(keys), f"{what} is a dict without tensors; got keys {sorted(map(str, inputs))}")
        fixed = {str(k): v for k, v in inputs.items() if str(k) not in keys}
        xs, forward = tuple(inputs[k] for k in keys), _KeywordForward(model, keys, fixed)
    elif isinstance(inputs, (tuple, list)) and inputs and all(isinstance(t, Tensor) for t in inputs):
        xs, forward = tuple(inputs), model
    else:
        raise IntellegoError(f"{what} must be a tensor, a tuple of tensors or a dict of tensors, got "
                             f"{describe(inputs)}")
    sizes = {t.shape[0] if t.dim() else None for t in xs}
    require(len(sizes) == 1 and None not in sizes,
            f"{what}: every tensor needs the batch as its first dimension, of one size; got {describe(xs)}")
    return forward, xs
