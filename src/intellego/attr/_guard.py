"""The checks around every public ``attribute`` call (applied by the ``public_call`` decorator in ``_base.py``).

Before any model work: named errors for meta tensors, empty batches, and inputs whose dtype or device does not
match the model's parameters; one warning when inputs hold NaN or Inf; one warning naming the BatchNorm and
dropout layers of a model left in training mode. After: examples whose model output is NaN get NaN
attributions. When the call fails, the failure is explained where a common mistake caused it (chained to the
original error): integer inputs to a float model, and inputs without their batch dimension (found by running
the model once on ``inputs.unsqueeze(0)``, only on this error path). Only the outermost call of a thread
checks: methods built on other methods (NoiseTunnel, fan-outs of several targets) check once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor

from ..core.hooks import ACTIVE_SCAN, ModelScan
from ..core.inputs import TRAINING_WARNED, InputCheck, check_inputs, pack_args, warn_training_layers
from ..core.targets import CALLER_BATCH
from ..errors import IntellegoError, ShapeError

__all__ = ["guarded"]

_IN_CALL: ContextVar[bool] = ContextVar("intellego_checked_call", default=False)


def guarded(method: Callable[..., Any], obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
            scan: ModelScan | None = None) -> Any:
    """``method(obj, *args, **kwargs)`` with the input checks of the outermost call; ``scan`` is the call's walk
    over the model (made here when not given)."""
    if _IN_CALL.get():
        return method(obj, *args, **kwargs)
    forward_func = getattr(obj, "forward_func", None)
    scan = ModelScan(forward_func) if scan is None else scan
    # stacklevel 5: _warn_nonfinite <- check_inputs <- guarded <- the attribute wrapper <- the caller
    check = check_inputs(args[0] if args else kwargs.get("inputs"), forward_func, warn_stacklevel=5,
                         first_param=scan.first_param)
    warned = warn_training_layers(scan.models) if scan.training else ()
    noted = TRAINING_WARNED.set(warned) if warned else None  # the rule engine's own warning leaves those out
    if check is None:
        try:
            return method(obj, *args, **kwargs)
        finally:
            if noted is not None:
                TRAINING_WARNED.reset(noted)
    first = check.tensors[0]
    token = _IN_CALL.set(True)
    batch = CALLER_BATCH.set(first.shape[0] if first.dim() > 0 else None)
    active = ACTIVE_SCAN.set(scan)
    try:
        result = method(obj, *args, **kwargs)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        check.explain(exc)
        _explain_missing_batch(check, forward_func, lambda: _extra_args(method, obj, args, kwargs), exc)
        raise
    finally:
        ACTIVE_SCAN.reset(active)
        CALLER_BATCH.reset(batch)
        if noted is not None:
            TRAINING_WARNED.reset(noted)
        _IN_CALL.reset(token)
    if check.nonfinite and callable(forward_func):
        result = check.nan_where_output_is_nan(result, forward_func, _extra_args(method, obj, args, kwargs))
    return result


def _extra_args(method: Callable[..., Any], obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[
        Any, ...]:
    """The call's ``additional_forward_args`` (also through ``**kwargs``, as NoiseTunnel passes them)."""
    try:
        bound = inspect.signature(method).bind(obj, *args, **kwargs).arguments
    except TypeError:
        return ()
    extra = bound.get("additional_forward_args")
    if extra is None and isinstance(bound.get("kwargs"), dict):
        extra = bound["kwargs"].get("additional_forward_args")
    return pack_args(extra)


_FAILED = object()


def _first_dim(value: Any) -> int | None:
    """Dimension 0 of the first tensor in a model output (a tensor, tuple/list, dict or ``.logits`` object)."""
    while not isinstance(value, Tensor):
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        elif isinstance(value, dict) and value:
            value = next(iter(value.values()))
        elif hasattr(value, "logits"):
            value = value.logits
        else:
            return None
    return int(value.shape[0]) if value.dim() > 0 else None


def _probe(forward_func: Callable[..., Any], xs: tuple[Tensor, ...], extra: tuple[Any, ...]) -> Any:
    """The model's output on ``xs`` without gradients, in eval mode (no running statistics updated, no dropout),
    with every module's training flag restored; ``_FAILED`` when it raises."""
    flags = [(m, m.training) for m in ModelScan(forward_func).modules]
    try:
        for m, _ in flags:
            m.training = False
        with torch.no_grad():
            return forward_func(*xs, *extra)
    except Exception:  # noqa: BLE001 - a probe on the error path: any failure means "no explanation"
        return _FAILED
    finally:
        for m, training in flags:
            m.training = training


def _explain_missing_batch(check: InputCheck, forward_func: Any, extra: Callable[[], tuple[Any, ...]],
                           exc: BaseException) -> None:
    """Raise a named error, from ``exc``, when the inputs look like one example without its batch dimension: the
    model runs on ``inputs.unsqueeze(0)`` (one output row) but fails on the inputs as given, or does not return
    one row per example for them. Only for torch's own failures and :class:`ShapeError` (an argument whose shape
    does not fit the inputs or the output), the errors a missing batch dimension causes."""
    xs = check.tensors
    if not callable(forward_func) or any(x.dim() == 0 for x in xs):
        return
    if isinstance(exc, IntellegoError) and not isinstance(exc, ShapeError):
        return  # a named error about something else (a value out of range, a bad type): no model run to explain it
    args = extra()
    given = _probe(forward_func, xs, args)
    if given is not _FAILED and _first_dim(given) == xs[0].shape[0]:
        return  # the model keeps dimension 0 as the batch: the inputs are a batch, the failure is something else
    if _first_dim(_probe(forward_func, tuple(x.unsqueeze(0) for x in xs), args)) != 1:
        return
    if len(xs) == 1:
        label, shape, it = check.labels[0], tuple(xs[0].shape), "it"
        what, fix = f"{label} has shape {shape}", f"{label}.unsqueeze(0) (shape {(1, *shape)})"
    else:
        name, it = check.labels[0].split("[")[0], "them"
        what = f"{name} have shapes {[tuple(x.shape) for x in xs]}"
        fix = f"tuple(x.unsqueeze(0) for x in {name})"
    how = (f"the model fails on {it}" if given is _FAILED else f"the model does not return one row per example "
           f"for {it} (its output's dimension 0 has size {_first_dim(given)})")
    raise IntellegoError(
        f"{what}, which looks like one example without its batch dimension: {how}, but runs on {it} with a batch "
        f"dimension of size 1 added. Attribution methods treat dimension 0 as the batch: pass {fix}. "
        f"(The call failed with: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from exc
