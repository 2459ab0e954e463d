"""Inputs, baselines and additional forward arguments: tensor-or-tuple in, the same structure out.

Nothing here mutates a caller's tensor; expanded baselines are views or new tensors.
"""

from __future__ import annotations

import cmath
import sys
import warnings
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import Tensor

from ..errors import IntellegoError, ShapeError, describe, require

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
    "check_inputs",
    "InputCheck",
    "warn_training_layers",
    "TRAINING_WARNED",
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
            if not isinstance(x, Tensor):
                raise IntellegoError(f"{name}[{i}] must be a torch.Tensor, got {describe(x)}")
        return tuple(inputs), True
    raise IntellegoError(f"{name} must be a torch.Tensor or a tuple of tensors, got {describe(inputs)}")


def unpack(values: Sequence[T], was_tuple: bool) -> Any:
    """Inverse of :func:`pack`: a tuple if the caller passed one, else the single element."""
    return tuple(values) if was_tuple else values[0]


def require_float(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Gradients need floating-point inputs that share their batch dimension; say which tensor is not."""
    for i, x in enumerate(inputs):
        if not (x.is_floating_point() or x.is_complex()):  # the message is built on failure only
            raise IntellegoError(f"{name}[{i}] has dtype {x.dtype}: gradient-based attribution needs floating-point "
                                 "inputs (for token ids, attribute to the embedding layer, e.g. with "
                                 "LayerIntegratedGradients)")
    require_same_batch(inputs, name)


def require_same_batch(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Every tensor of ``inputs`` holds the same number of examples (dimension 0)."""
    if len(inputs) > 1 and all(x.dim() > 0 for x in inputs) and len({x.shape[0] for x in inputs}) > 1:
        raise ShapeError(f"{name} must all have the same number of examples (dimension 0), got shapes "
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
    if not isinstance(base, Tensor):
        raise IntellegoError(f"{name} must be None, a number or a tensor, got {describe(base)}")
    keep = promote and not x.is_floating_point()
    base = base.to(device=x.device, dtype=torch.promote_types(x.dtype, base.dtype) if keep else x.dtype)
    if base.shape == x.shape:
        return base
    if base.dim() == x.dim() - 1 and base.shape == x.shape[1:]:
        base = base.unsqueeze(0)
    try:
        return base.expand_as(x)
    except RuntimeError:
        raise ShapeError(
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
        if not isinstance(b, Tensor):  # messages are built on failure only: this runs on every call
            raise IntellegoError(f"{label} must be a tensor or a number, got {describe(b)}")
        b = b.to(device=x.device, dtype=x.dtype)
        if b.dim() == x.dim() - 1:
            b = b.unsqueeze(0)
        if not (b.dim() == x.dim() and b.shape[1:] == x.shape[1:]):
            raise ShapeError(f"{label} of shape {tuple(b.shape)} does not match the input's per-example shape "
                             f"{tuple(x.shape[1:])}: expected (M, {', '.join(map(str, x.shape[1:]))})")
        out.append(b)
    counts = {b.shape[0] for b in out}
    if len(counts) != 1:
        raise IntellegoError(f"{name} must hold the same number of samples for every input, got {sorted(counts)}")
    if out[0].shape[0] < min_count:
        raise IntellegoError(f"{name} holds {out[0].shape[0]} sample(s) but this method needs at least {min_count}; "
                             "pass a distribution of baselines along the first dimension")
    return tuple(out)


def pack_args(additional_forward_args: Any) -> tuple[Any, ...]:
    """Captum's convention: None -> (), a tuple stays a tuple, anything else becomes a 1-tuple."""
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


# ---------------------------------------------------------------------------------------------------------------
# Checks every ``attribute`` call runs on its inputs before any model work (attr/_base.py applies them).

class InputCheck:
    """What :func:`check_inputs` found: the tensors, their labels, the model's parameter dtype and which
    inputs hold NaN or infinite values."""

    __slots__ = ("tensors", "labels", "param", "nonfinite")

    def __init__(self, tensors: tuple[Tensor, ...], labels: tuple[str, ...], param: Tensor | None,
                 nonfinite: bool) -> None:
        self.tensors, self.labels, self.param, self.nonfinite = tensors, labels, param, nonfinite

    def explain(self, exc: BaseException) -> None:
        """Raise a named error, from ``exc``, when the model failed on integer or boolean inputs that a model with
        floating-point parameters cannot take (torch's own message speaks of scalar types or dtypes)."""
        if self.param is None or not isinstance(exc, (RuntimeError, TypeError)) or isinstance(exc, IntellegoError):
            return
        text = str(exc)
        if "type" not in text.lower():
            return
        for x, label in zip(self.tensors, self.labels):
            if not (x.is_floating_point() or x.is_complex()):
                raise IntellegoError(
                    f"{label} has dtype {x.dtype} but the model's parameters are {self.param.dtype}, and the model "
                    f"failed on it ({text.splitlines()[0][:200]}); pass floating-point inputs, e.g. "
                    f"{label}.to({self.param.dtype}), or for token ids attribute to the embedding layer") from exc

    def nan_where_output_is_nan(self, result: Any, forward_func: Any, args: tuple[Any, ...]) -> Any:
        """``result`` with the examples whose model output holds NaN set to NaN (only called when an input held
        NaN or Inf: gradients through a NaN output can be finite, e.g. zero through a ReLU)."""
        n = self.tensors[0].shape[0]
        try:
            with torch.no_grad():
                out = forward_func(*self.tensors, *args)
        except Exception:  # noqa: BLE001 - the attribution succeeded; this extra pass is best effort
            return result
        if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != n:
            return result
        bad = torch.isnan(out.reshape(n, -1)).any(1) if out.is_floating_point() or out.is_complex() else None
        if bad is None or not bool(bad.any()):
            return result
        return _nan_rows(result, bad)


def _nan_rows(value: Any, bad: Tensor) -> Any:
    if isinstance(value, Tensor):
        if value.dim() == 0 or value.shape[0] != bad.shape[0] or not value.is_floating_point():
            return value
        mask = bad.to(value.device).reshape(-1, *([1] * (value.dim() - 1)))
        return torch.where(mask, torch.full((), float("nan"), dtype=value.dtype, device=value.device), value)
    if isinstance(value, tuple):
        return tuple(_nan_rows(v, bad) for v in value)
    if isinstance(value, list):
        return [_nan_rows(v, bad) for v in value]
    return value


def _first_parameter(forward_func: Any) -> Tensor | None:
    """The model's first parameter (depth first, as ``parameters()`` orders them), without building names."""
    if not isinstance(forward_func, torch.nn.Module):
        return None
    stack = [forward_func]
    while stack:
        module = stack.pop()
        for p in module._parameters.values():
            if p is not None:
                return p
        stack.extend(reversed([m for m in module._modules.values() if m is not None]))
    return None


def _autocast_on(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except (TypeError, RuntimeError):  # a device type without autocast
        return False


_FIND = object()


def check_inputs(inputs: Any, forward_func: Any, name: str = "inputs", *,
                 warn_stacklevel: int = 4, first_param: Any = _FIND) -> InputCheck | None:
    """Named errors, before any model call, for inputs no attribution can use, and one warning for NaN/Inf.

    Errors: a ``meta`` tensor (no data), an input with no examples (dimension 0 of size 0), and, when
    ``forward_func`` is a module whose parameters share one dtype and device, a floating-point or complex input of
    another dtype (outside ``torch.autocast``) or an input on another device. Integer and boolean inputs pass (an
    embedding takes token ids; perturbation methods work on them); :meth:`InputCheck.explain` names the dtype when
    the model then fails on them. Returns None when ``inputs`` is not a tensor or a tuple/list of tensors.

    Example:
        >>> import torch
        >>> check_inputs(torch.zeros(0, 3), torch.nn.Linear(3, 2))
        Traceback (most recent call last):
        ...
        intellego.errors.IntellegoError: inputs holds no examples: shape (0, 3); attribution needs at least one \
example along dimension 0
    """
    xs: tuple[Tensor, ...]
    labels: tuple[str, ...]
    if isinstance(inputs, Tensor):
        xs, labels = (inputs,), (name,)
    elif isinstance(inputs, (tuple, list)) and inputs and all(isinstance(x, Tensor) for x in inputs):
        xs, labels = tuple(inputs), tuple(f"{name}[{i}]" for i in range(len(inputs)))
    else:
        return None
    for x, label in zip(xs, labels):
        if x.is_meta:
            raise IntellegoError(f"{label} is a meta tensor (shape {tuple(x.shape)}, no data): attribution needs "
                                 "the input's values; pass a tensor on a real device")
    batched = [x for x in xs if x.dim() > 0]
    if batched and all(x.shape[0] == 0 for x in batched):  # one empty tensor beside a batch is a sparse input
        shapes = str(tuple(batched[0].shape)) if len(xs) == 1 else f"{[tuple(x.shape) for x in xs]}"
        raise IntellegoError(f"{name} holds no examples: shape{'' if len(xs) == 1 else 's'} {shapes}; attribution "
                             "needs at least one example along dimension 0")
    param = _first_parameter(forward_func) if first_param is _FIND or not isinstance(forward_func, torch.nn.Module) \
        else first_param
    if param is not None:
        _check_model_matches(forward_func, param, xs, labels)
    nonfinite = _warn_nonfinite(xs, labels, warn_stacklevel)
    return InputCheck(xs, labels, param if param is not None and param.is_floating_point() else None, nonfinite)


def _check_model_matches(model: torch.nn.Module, param: Tensor, xs: tuple[Tensor, ...],
                         labels: tuple[str, ...]) -> None:
    if param.is_meta:
        raise IntellegoError("the model's parameters are meta tensors (no data): load or materialize its weights "
                             "(e.g. model.to_empty(device=...) and load_state_dict) before attributing")
    for x, label in zip(xs, labels):
        if x.device != param.device and all(p.device == param.device for p in model.parameters()):
            raise IntellegoError(f"{label} is on device {x.device} but the model's parameters are on "
                                 f"{param.device}; move the inputs ({label}.to('{param.device}')) or the model")
        if ((x.is_floating_point() or x.is_complex()) and param.is_floating_point() and x.dtype != param.dtype
                and not _autocast_on(x.device.type)
                and all(p.dtype == param.dtype for p in model.parameters() if p.is_floating_point())):
            raise IntellegoError(f"{label} has dtype {x.dtype} but the model's parameters are {param.dtype}; "
                                 f"convert the inputs ({label}.to({param.dtype})) or the model "
                                 f"(model.to({x.dtype}))")


def _warn_nonfinite(xs: tuple[Tensor, ...], labels: tuple[str, ...], stacklevel: int) -> bool:
    """One warning naming every input that holds NaN or Inf, with the counts; True when there was one."""
    found = []
    for x, label in zip(xs, labels):
        if not (x.is_floating_point() or x.is_complex()) or cmath.isfinite((x.detach() if x.requires_grad else x).sum()
                                                                          .item()):
            continue  # one reduction: NaN and Inf reach the sum (a finite sum can only overflow: checked below)
        nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        if nan == inf == 0:
            continue
        rows = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(1).sum()) if x.dim() > 0 else 1
        found.append(f"{label} holds {nan} NaN and {inf} infinite value(s) in {rows} example(s)")
    if found:
        warnings.warn("; ".join(found) + ": attributions for those examples are NaN where the model output is NaN, "
                      "and may be meaningless elsewhere", RuntimeWarning, stacklevel=stacklevel)
    return bool(found)


# The kinds of layer (``"batch_norm"``, ``"dropout"``) that :func:`warn_training_layers` already named in the
# current call: the backward-rule engine leaves them out of its own warning, so each is reported once.
TRAINING_WARNED: ContextVar[tuple[str, ...]] = ContextVar("intellego_training_warned", default=())

_BATCH_DEPENDENT = (torch.nn.modules.batchnorm._BatchNorm,)
_RANDOM = (torch.nn.modules.dropout._DropoutNd,)


def warn_training_layers(models: Sequence[torch.nn.Module]) -> tuple[str, ...]:
    """One warning naming the layers of ``models`` that make attributions batch-dependent (BatchNorm) or random
    (dropout) while in training mode; returns the kinds it named (``"batch_norm"``, ``"dropout"``).

    Only models whose top module is in training mode are scanned, so a model in eval mode costs one attribute
    read. Example:
        >>> import warnings
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     warn_training_layers([net])
        ('batch_norm',)
        >>> "1 (BatchNorm1d)" in str(seen[0].message)
        True
    """
    for model in models:
        if model.training:
            break
    else:
        return ()
    norms, drops = [], []
    for model in models:
        for name, m in model.named_modules():
            if m.training and isinstance(m, _BATCH_DEPENDENT):
                norms.append(f"{name or '(the model)'} ({type(m).__name__})")
            elif m.training and isinstance(m, _RANDOM) and getattr(m, "p", 0.0) > 0:
                drops.append(f"{name or '(the model)'} ({type(m).__name__})")
    if not norms and not drops:
        return ()
    parts = []
    if norms:
        parts.append(f"BatchNorm layers {_listed(norms)} normalize with the statistics of the batch, so each "
                     "example's attribution depends on the other examples in the batch (and on the path points or "
                     "perturbed copies the method batches with it)")
    if drops:
        parts.append(f"dropout in training mode in layers {_listed(drops)} drops random units, so attributions "
                     "are random")
    warnings.warn(f"the model is in training mode (call model.eval() before attributing): {'; '.join(parts)}",
                  UserWarning, stacklevel=_outside_stacklevel())
    return (("batch_norm",) if norms else ()) + (("dropout",) if drops else ())


def _listed(names: list[str], limit: int = 6) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _outside_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside intellego."""
    level, frame = 2, sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("intellego."):
        frame, level = frame.f_back, level + 1
    return level
