"""Shared plumbing of the metrics: sample chunking, calling user perturbation functions, expanding
per-example arguments, and turning an attribution method into one ``explain(model, inputs, target)`` call.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..core.batching import check_positive_int, chunks, plan_rows
from ..core.inputs import pack, unpack
from ..errors import IntellegoError, describe, require

__all__ = [
    "sample_chunks",
    "accepts_generator",
    "call_with_generator",
    "interleave",
    "check_tensors",
    "Explainer",
    "as_explainer",
]


def sample_chunks(n_samples: int, batch: int, max_examples_per_batch: int | None) -> Iterator[int]:
    """Sizes of the sample chunks: ``max_examples_per_batch // batch`` samples of every example at a time.

    The limit is clamped to at least one and at most ``n_samples`` samples per chunk, so each chunk holds
    every example at least once. Without a limit all samples go through in one chunk.
    """
    check_positive_int(n_samples, "n_perturb_samples", allow_none=False)
    check_positive_int(max_examples_per_batch, "max_examples_per_batch")
    limit = None if max_examples_per_batch is None else max(max_examples_per_batch // max(batch, 1), 1)
    per_chunk = plan_rows(n_samples, limit=min(limit, n_samples) if limit is not None else None)
    for sl in chunks(n_samples, per_chunk):
        yield sl.stop - sl.start


def accepts_generator(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes a ``generator`` keyword argument."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("generator")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def positional_count(func: Callable[..., Any]) -> int:
    """How many positional parameters ``func`` has, not counting ``generator`` (``*args`` counts as many)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 1 << 10
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "generator" for p in params)


def call_with_generator(func: Callable[..., Any], args: tuple[Any, ...], generator: torch.Generator | None) -> Any:
    """``func(*args)``, with ``generator=`` added when ``func`` accepts it."""
    if generator is not None and accepts_generator(func):
        return func(*args, generator=generator)
    return func(*args)


def interleave(value: Any, k: int, batch: int) -> Any:
    """Repeat every example ``k`` times in place: tensors (or tuples of them) whose first dimension is the
    batch are expanded, anything else is passed through."""
    if k == 1:
        return value
    if isinstance(value, Tensor):
        return value.repeat_interleave(k, dim=0) if value.dim() > 0 and value.shape[0] == batch else value
    if isinstance(value, tuple):
        return tuple(interleave(v, k, batch) for v in value)
    return value


def check_tensors(values: Any, expected: tuple[Tensor, ...], what: str, source: str,
                  hint: str = "the shapes of the inputs") -> tuple[Tensor, ...]:
    """Pack ``values`` and require one tensor per expected tensor with exactly its shape."""
    try:
        packed, _ = pack(values, what)
    except IntellegoError:
        raise IntellegoError(f"{source} must return {what} as a tensor or a tuple of tensors, "
                             f"got {describe(values)}") from None
    require(len(packed) == len(expected),
            f"{source} returned {len(packed)} tensor(s) as {what} but there are {len(expected)} input tensors")
    for i, (v, e) in enumerate(zip(packed, expected)):
        require(v.shape == e.shape,
                f"{source} returned {what}[{i}] of shape {tuple(v.shape)}; expected {tuple(e.shape)} ({hint})")
    return packed


# ---------------------------------------------------------------------------------------------------------
# Methods: an Attribution object, (object, attribute kwargs), or a callable (model, inputs, target)


Explainer = Callable[[nn.Module, Any, Any], Any]


def _bind_error(name: str, what: str, err: TypeError, hint: str) -> IntellegoError:
    return IntellegoError(f"method {name!r} ({what}) cannot be called with the arguments the metrics need: "
                          f"{err}. {hint}")


def as_explainer(method: Any, model: nn.Module | None, name: str = "method") -> Explainer:
    """Turn ``method`` into ``explain(model, inputs, target) -> attributions``.

    ``method`` is an attribution object (anything with ``attribute(inputs, target=...)``), a pair
    ``(attribution_object, {extra attribute kwargs})``, or a callable ``fn(model, inputs, target)``. When the
    explainer is called with a model other than ``model`` (a randomized copy), an attribution object is
    deep-copied with ``model``'s modules mapped onto the copy's, so the method runs on the copy.
    """
    kwargs: dict[str, Any] = {}
    if isinstance(method, tuple) and len(method) == 2 and isinstance(method[1], dict):
        method, kwargs = method
    attribute = getattr(method, "attribute", None)
    if callable(attribute):
        try:
            inspect.signature(attribute).bind(None, target=None, **kwargs)
        except TypeError as err:
            raise _bind_error(name, type(method).__name__, err,
                              "Pass (method, {'argument': value, ...}) with the missing arguments, or a callable "
                              "fn(model, inputs, target)") from None
        return functools.partial(_run_attribution, method, model, kwargs)
    if kwargs:
        raise IntellegoError(f"method {name!r}: extra keyword arguments need an attribution object, "
                             f"got {describe(method)}")
    if not callable(method):
        raise IntellegoError(f"method {name!r} must be an attribution object, (object, kwargs) or a callable "
                             f"fn(model, inputs, target), got {describe(method)}")
    try:
        inspect.signature(method).bind(model, None, None)
    except TypeError as err:
        raise _bind_error(name, getattr(method, "__name__", type(method).__name__), err,
                          "A callable method must take (model, inputs, target)") from None
    except ValueError:
        pass
    return method


def _run_attribution(method: Any, original: nn.Module | None, kwargs: dict[str, Any], model: nn.Module,
                     inputs: Any, target: Any) -> Any:
    if model is not original and original is not None:
        method = rebind(method, original, model)
    return method.attribute(inputs, target=target, **kwargs)


def rebind(method: Any, original: nn.Module, copy_of_model: nn.Module) -> Any:
    """A deep copy of ``method`` that uses ``copy_of_model`` wherever it used ``original`` (and its modules,
    parameters and buffers)."""
    memo: dict[int, Any] = {}
    new_modules = dict(copy_of_model.named_modules(remove_duplicate=False))
    for mod_name, mod in original.named_modules(remove_duplicate=False):
        if mod_name in new_modules:
            memo[id(mod)] = new_modules[mod_name]
    new_tensors: dict[str, Tensor] = dict(copy_of_model.named_parameters(remove_duplicate=False))
    new_tensors.update(copy_of_model.named_buffers(remove_duplicate=False))
    for tname, t in [*original.named_parameters(remove_duplicate=False), *original.named_buffers()]:
        if tname in new_tensors:
            memo[id(t)] = new_tensors[tname]
    rebound = copy.deepcopy(method, memo)
    require(not _reaches(rebound, original),
            f"{type(method).__name__} reaches the model through a function (a lambda or closure) that cannot be "
            "redirected to a randomized copy; pass the model itself as forward_func, or a callable "
            "fn(model, inputs, target) -> attributions")
    require(_reaches(rebound, copy_of_model),
            f"{type(method).__name__} does not use the model passed to the metric, so randomizing that model "
            "cannot change it; pass a callable fn(model, inputs, target) -> attributions")
    return rebound


def _reaches(obj: Any, target: nn.Module, depth: int = 6) -> bool:
    """Whether ``target`` is reachable from ``obj`` through attributes, containers, bound methods,
    partials and closures (a shallow search: models are not walked into)."""
    seen: set[int] = set()

    def walk(o: Any, d: int) -> bool:
        if o is target:
            return True
        if d == 0 or id(o) in seen or isinstance(o, (Tensor, str, bytes, int, float, bool, type(None))):
            return False
        seen.add(id(o))
        if isinstance(o, nn.Module):
            return any(m is target for m in o.modules())
        children: list[Any] = []
        if isinstance(o, (list, tuple, set, frozenset)):
            children = list(o)
        elif isinstance(o, dict):
            children = list(o.values())
        elif inspect.ismethod(o):
            children = [o.__self__, o.__func__]
        elif isinstance(o, functools.partial):
            children = [o.func, *o.args, *o.keywords.values()]
        elif inspect.isfunction(o):
            children = [c.cell_contents for c in (o.__closure__ or ()) if _cell_ok(c)]
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            children = list(vars(o).values())
        return any(walk(c, d - 1) for c in children)

    return walk(obj, depth)


def _cell_ok(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def explain_batch(explain: Explainer, model: nn.Module, inputs: Any, target: Any, name: str) -> tuple[Tensor, ...]:
    """Run ``explain`` and require attributions shaped like ``inputs``."""
    xs, _ = pack(inputs)
    attrs = explain(model, inputs, target)
    if isinstance(attrs, tuple) and len(attrs) == 2 and isinstance(attrs[1], Tensor) and len(xs) == 1 \
            and isinstance(attrs[0], Tensor) and attrs[0].shape == xs[0].shape:
        attrs = attrs[0]  # (attributions, delta)
    return check_tensors(attrs, xs, "attributions", f"method {name!r}")


def unpack_like(values: tuple[Tensor, ...], inputs: Any) -> Any:
    """Give ``values`` the structure of ``inputs`` (tensor or tuple)."""
    return unpack(values, isinstance(inputs, (tuple, list)))
