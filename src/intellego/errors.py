"""The library's one error type.

``IntellegoError`` subclasses both :class:`ValueError` and :class:`AssertionError`, so code written for
Captum (which raises ``AssertionError`` for bad input) keeps catching our errors unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["IntellegoError", "ShapeError", "require", "require_shape", "describe"]


class IntellegoError(ValueError, AssertionError):
    """Raised for invalid arguments; the message names the argument and the shapes or values involved."""


class ShapeError(IntellegoError):
    """An argument's shape does not fit the inputs or the model's output: the error a missing batch dimension
    causes, so the input guard checks for one (running the model once on ``inputs.unsqueeze(0)``) before it
    passes this error on."""


def describe(value: Any) -> str:
    """A short description of a value for error messages: shapes for tensors, types otherwise."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if isinstance(value, list):
        return f"list of length {len(value)}"
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        text = repr(value)
        return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"
    return f"an object of type {type(value).__name__}"


def require(condition: bool, message: str) -> None:
    """Raise :class:`IntellegoError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise IntellegoError(message)


def require_shape(condition: bool, message: str) -> None:
    """Raise :class:`ShapeError` with ``message`` unless ``condition`` holds (a shape that does not fit)."""
    if not condition:
        raise ShapeError(message)
