"""Inputs, baselines and additional forward arguments: tensor-or-tuple in, the same structure out.

Nothing here mutates a caller's tensor; expanded baselines are views or new tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require

__all__ = [
    "TensorOrTuple",
    "pack",
    "unpack",
    "pack_baselines",
    "pack_baseline_distribution",
    "pack_args",
    "require_float",
    "require_same_batch",
    "same_structure",
]

TensorOrTuple = Tensor | tuple[Tensor, ...]
T = TypeVar("T")


def pack(inputs: Any, name: str = "inputs") -> tuple[tuple[Tensor, ...], bool]:
    """Return ``(tuple_of_tensors, was_tuple)`` for a tensor or a tuple/list of tensors."""
    if isinstance(inputs, Tensor):
        return (inputs,), False
    if isinstance(inputs, (tuple, list)):
        require(len(inputs) > 0, f"{name} must hold at least one tensor, got an empty {type(inputs).__name__}")
        for i, x in enumerate(inputs):
            require(isinstance(x, Tensor), f"{name}[{i}] must be a torch.Tensor, got {describe(x)}")
        return tuple(inputs), True
    raise IntellegoError(f"{name} must be a torch.Tensor or a tuple of tensors, got {describe(inputs)}")


def unpack(values: Sequence[T], was_tuple: bool) -> Any:
    """Inverse of :func:`pack`: a tuple if the caller passed one, else the single element."""
    return tuple(values) if was_tuple else values[0]


def require_float(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Gradients need floating-point inputs that share their batch dimension; say which tensor is not."""
    for i, x in enumerate(inputs):
        require(
            x.is_floating_point() or x.is_complex(),
            f"{name}[{i}] has dtype {x.dtype}: gradient-based attribution needs floating-point inputs "
            "(for token ids, attribute to the embedding layer, e.g. with LayerIntegratedGradients)",
        )
    require_same_batch(inputs, name)


def require_same_batch(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Every tensor of ``inputs`` holds the same number of examples (dimension 0)."""
    if len(inputs) > 1 and all(x.dim() > 0 for x in inputs) and len({x.shape[0] for x in inputs}) > 1:
        raise IntellegoError(f"{name} must all have the same number of examples (dimension 0), got shapes "
                             f"{[tuple(x.shape) for x in inputs]}")


def same_structure(values: Any, count: int, name: str) -> tuple[Any, ...]:
    """Turn a per-input option (single value or tuple) into a tuple with one entry per input tensor."""
    if isinstance(values, (tuple, list)):
        require(len(values) == count, f"{name} has {len(values)} entries but there are {count} input tensors")
        return tuple(values)
    return (values,) * count


def _broadcast_baseline(base: Any, x: Tensor, name: str, noun: str = "the input", promote: bool = False) -> Tensor:
    """``base`` (a number, bool or tensor) broadcast to ``x``, in ``x``'s dtype; with ``promote``, a float
    baseline of an integer or boolean input keeps a float dtype (the perturbed input is float, as in Captum)."""
    if isinstance(base, (bool, int, float)):
        keep = promote and not x.is_floating_point()
        return torch.full_like(x, base, dtype=torch.result_type(x, base) if keep else x.dtype)
    require(isinstance(base, Tensor), f"{name} must be None, a number or a tensor, got {describe(base)}")
    keep = promote and not x.is_floating_point()
    base = base.to(device=x.device, dtype=torch.promote_types(x.dtype, base.dtype) if keep else x.dtype)
    if base.shape == x.shape:
        return base
    if base.dim() == x.dim() - 1 and base.shape == x.shape[1:]:
        base = base.unsqueeze(0)
    try:
        return base.expand_as(x)
    except RuntimeError:
        raise IntellegoError(
            f"{name} of shape {tuple(base.shape)} cannot be broadcast to {noun} of shape {tuple(x.shape)}; "
            f"use a number, a tensor of shape {tuple(x.shape)}, or one of shape (1, {', '.join(map(str, x.shape[1:]))})"
        ) from None


def pack_baselines(baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines", *,
                   inputs_name: str = "inputs", noun: str = "the input", promote: bool = False) -> tuple[Tensor, ...]:
    """Baselines broadcast to the inputs' shapes: None (zeros), a number, a bool, a tensor or a tuple of those.

    Error messages call the argument ``name``, the tensors ``inputs_name`` and one of them ``noun``. With
    ``promote`` (perturbation methods), float baselines of integer or boolean inputs stay float."""
    if baselines is None:
        return tuple(torch.zeros_like(x) for x in inputs)
    if isinstance(baselines, (tuple, list)):
        require(
            len(baselines) == len(inputs),
            f"{name} has {len(baselines)} entries but {inputs_name} has {len(inputs)} tensors",
        )
        return tuple(
            torch.zeros_like(x) if b is None else _broadcast_baseline(b, x, f"{name}[{i}]", noun, promote)
            for i, (b, x) in enumerate(zip(baselines, inputs))
        )
    require(len(inputs) == 1 or not isinstance(baselines, Tensor),
            f"{name} is a single tensor but {inputs_name} has {len(inputs)} tensors; pass a tuple of {name}")
    return tuple(_broadcast_baseline(baselines, x, name, noun, promote) for x in inputs)


def pack_baseline_distribution(
    baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines", min_count: int = 1
) -> tuple[Tensor, ...]:
    """A set of reference samples per input tensor, each of shape ``(M, *input.shape[1:])``.

    ``baselines`` may be a tensor, a tuple of tensors or numbers, or a callable returning those
    (called with the inputs when it takes an argument, as in Captum).
    """
    if callable(baselines) and not isinstance(baselines, Tensor):
        try:
            baselines = baselines(inputs if len(inputs) > 1 else inputs[0])
        except TypeError:
            baselines = baselines()
    if isinstance(baselines, (tuple, list)):
        entries = same_structure(baselines, len(inputs), name)
    else:
        require(len(inputs) == 1, f"{name} must be a tuple with one entry per input tensor ({len(inputs)})")
        entries = (baselines,)
    out = []
    for i, (b, x) in enumerate(zip(entries, inputs)):
        label = name if len(inputs) == 1 else f"{name}[{i}]"
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            b = torch.full((1, *x.shape[1:]), float(b), dtype=x.dtype, device=x.device)
        require(isinstance(b, Tensor), f"{label} must be a tensor or a number, got {describe(b)}")
        b = b.to(device=x.device, dtype=x.dtype)
        if b.dim() == x.dim() - 1:
            b = b.unsqueeze(0)
        require(
            b.dim() == x.dim() and b.shape[1:] == x.shape[1:],
            f"{label} of shape {tuple(b.shape)} does not match the input's per-example shape "
            f"{tuple(x.shape[1:])}: expected (M, {', '.join(map(str, x.shape[1:]))})",
        )
        out.append(b)
    counts = {b.shape[0] for b in out}
    require(len(counts) == 1, f"{name} must hold the same number of samples for every input, got {sorted(counts)}")
    require(
        out[0].shape[0] >= min_count,
        f"{name} holds {out[0].shape[0]} sample(s) but this method needs at least {min_count}; "
        "pass a distribution of baselines along the first dimension",
    )
    return tuple(out)


def pack_args(additional_forward_args: Any) -> tuple[Any, ...]:
    """Captum's convention: None -> (), a tuple stays a tuple, anything else becomes a 1-tuple."""
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)
