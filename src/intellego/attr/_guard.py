"""The checks around every public ``attribute`` call (applied by ``Attribution.__init_subclass__``).

Before any model work: named errors for meta tensors, empty batches, and inputs whose dtype or device does not
match the model's parameters; one warning when inputs hold NaN or Inf. After: examples whose model output is NaN
get NaN attributions. A raw dtype error of the model on integer inputs becomes a named one. Only the outermost
call of a thread checks: methods built on other methods (NoiseTunnel, fan-outs of several targets) check once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ..core.inputs import check_inputs, pack_args
from ..core.targets import CALLER_BATCH

__all__ = ["guarded"]

_IN_CALL: ContextVar[bool] = ContextVar("intellego_checked_call", default=False)


def guarded(method: Callable[..., Any], obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``method(obj, *args, **kwargs)`` with the input checks of the outermost call."""
    if _IN_CALL.get():
        return method(obj, *args, **kwargs)
    forward_func = getattr(obj, "forward_func", None)
    # stacklevel 5: _warn_nonfinite <- check_inputs <- guarded <- the attribute wrapper <- the caller
    check = check_inputs(args[0] if args else kwargs.get("inputs"), forward_func, warn_stacklevel=5)
    if check is None:
        return method(obj, *args, **kwargs)
    first = check.tensors[0]
    token = _IN_CALL.set(True)
    batch = CALLER_BATCH.set(first.shape[0] if first.dim() > 0 else None)
    try:
        result = method(obj, *args, **kwargs)
    except (RuntimeError, TypeError) as exc:
        check.explain(exc)
        raise
    finally:
        CALLER_BATCH.reset(batch)
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
