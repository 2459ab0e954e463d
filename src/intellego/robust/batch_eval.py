"""Model outputs for many candidate inputs (an original batch and its attacked copies) in few model calls.

Candidates of the same structure are stacked along the batch dimension and run in chunks: ``per_call``
candidates per call when the caller gives it, else as many as fit the memory budget
(:func:`intellego.core.batching.plan_rows`, measured once per model and shape). Candidates that are not tensors
(raw images, strings a ``preproc_fn`` would take) run one per call.

Example:
    >>> import torch
    >>> from intellego.robust.batch_eval import outputs_for
    >>> outs = outputs_for(lambda x: x.sum(1), [torch.ones(2, 3), torch.zeros(2, 3)], (), per_call=None)
    >>> [o.tolist() for o in outs]
    [[3.0, 3.0], [0.0, 0.0]]
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.batching import chunks, plan_rows, saved_bytes_per_row
from ..core.inputs import unpack

__all__ = ["outputs_for"]


# bytes per row, remembered per forward function and per-example input shapes (outside the user's objects)
_MEASURED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], int]] = weakref.WeakKeyDictionary()


def _packed(value: Any) -> tuple[tuple[Tensor, ...], bool] | None:
    if isinstance(value, Tensor):
        return (value,), False
    if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
        return value, True
    return None


def _key(packed: tuple[tuple[Tensor, ...], bool]) -> tuple[Any, ...]:
    xs, was_tuple = packed
    return (was_tuple,) + tuple((x.shape, x.dtype, x.device) for x in xs)


def _tile(args: tuple[Any, ...], n: int, k: int) -> tuple[Any, ...]:
    return tuple(a.repeat(k, *([1] * (a.dim() - 1))) if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n
                 else a for a in args)


def outputs_for(forward: Callable[..., Any], candidates: Sequence[Any], args: tuple[Any, ...],
                per_call: int | None, memory_budget: int | None = None) -> list[Any]:
    """``forward(candidate, *args)`` for every candidate (a tuple candidate is passed as one argument, as Captum
    does), computed without gradients and stacked where the candidates allow it."""
    packs = [_packed(c) for c in candidates]
    keys = {_key(p) if p is not None else None for p in packs}
    with torch.no_grad():
        if None in keys or len(keys) != 1 or len(candidates) == 1 or packs[0] is None or packs[0][0][0].dim() == 0:
            return [forward(c, *args) for c in candidates]
        first = packs[0]
        was_tuple = first[1]
        n = first[0][0].shape[0]
        k_total = len(candidates)
        if per_call is None:

            def run(rows: int) -> Tensor:
                xs = tuple(torch.cat([x[:1]] * rows) for x in first[0])
                out = forward(unpack(xs, was_tuple), *_tile(tuple(a[:1] if isinstance(a, Tensor) and a.dim() > 0
                                                                  and a.shape[0] == n else a for a in args), 1, rows))
                return out if isinstance(out, Tensor) else torch.zeros(())

            def measure() -> int:
                key = (_key(first)[1:], tuple(type(a).__name__ for a in args))
                try:
                    known = _MEASURED.setdefault(forward, {})
                except TypeError:  # not weak-referenceable: measure every time
                    known = {}
                if key not in known:
                    with torch.enable_grad():
                        known[key] = saved_bytes_per_row(run)
                return known[key]

            rows = plan_rows(k_total * n, memory_budget=memory_budget, device=first[0][0].device, measure=measure)
            per_call = max(1, rows // max(n, 1))
        outs: list[Any] = []
        for sl in chunks(k_total, per_call):
            group = [packs[i] for i in range(sl.start, sl.stop)]
            k = len(group)
            stacked = tuple(torch.cat(parts) for parts in zip(*(g[0] for g in group if g is not None)))
            out = forward(unpack(stacked, was_tuple), *_tile(args, n, k))
            outs.extend(out[i * n:(i + 1) * n] for i in range(k))
        return outs
