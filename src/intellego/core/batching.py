"""The one chunking helper: how many rows go through the model at once.

Every public batch knob (``internal_batch_size``, ``perturbations_per_eval``, ``nt_samples_batch_size``,
``max_examples_per_batch``) and the keyword-only ``memory_budget`` map onto :func:`plan_rows`. When the caller
gives no limit, the chunk size comes from a memory budget and a measurement of how many bytes the model's
autograd graph saves per row, so a large batch is processed in pieces instead of running out of memory.

Example:
    >>> from intellego.core.batching import chunks
    >>> [(s.start, s.stop) for s in chunks(10, 4)]
    [(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

from ..errors import IntellegoError, describe

__all__ = ["known_length", "chunks", "plan_rows", "saved_bytes_per_row", "saved_profile_per_row", "default_budget",
           "check_positive_int", "DEFAULT_BUDGET", "self_sizing", "is_self_sizing"]

# bytes of autograd state per chunk on CPU: large enough to amortise per-call overhead, small enough that a
# chunk's activations stay cache-friendly. Single-threaded on the small benchmark ResNet, IG over 400 rows took
# 500 ms in one 1 GiB chunk, 328 ms in 128 MiB chunks and 218 ms in 64 MiB chunks (16-64 MiB all about equal).
DEFAULT_BUDGET = 64 << 20
_PROBE_THRESHOLD_ROWS = 256  # below this many rows the whole job is one chunk without measuring
_SELF_SIZING = "_intellego_self_sizing"
_F = TypeVar("_F", bound=Callable[..., Any])


def self_sizing(func: _F) -> _F:
    """Mark a forward function that splits the rows it is given into model calls under the memory budget
    itself (the LLM target scorer): an engine then hands it all rows at once, or at most an explicit limit, and
    measures nothing (a measurement would cost model calls and could only say what the function does anyway).

    Example:
        >>> f = self_sizing(lambda x: x.sum(1))
        >>> is_self_sizing(f), is_self_sizing(lambda x: x)
        (True, False)
    """
    setattr(func, _SELF_SIZING, True)
    return func



def known_length(data: Any) -> int | None:
    """``len(data)``, or None where it cannot be known without iterating: no ``__len__``, or one that raises
    TypeError (a DataLoader over an IterableDataset).

    Example:
        >>> known_length([1, 2]), known_length(iter([1, 2]))
        (2, None)
    """
    try:
        return len(data)
    except TypeError:
        return None

def is_self_sizing(func: Any) -> bool:
    """Whether ``func`` was marked by :func:`self_sizing` (a module is asked through its ``__dict__`` and class:
    ``getattr`` on a module without the mark goes through ``nn.Module.__getattr__``, which builds an error)."""
    if isinstance(func, torch.nn.Module):
        return func.__dict__.get(_SELF_SIZING, getattr(type(func), _SELF_SIZING, False)) is True
    return getattr(func, _SELF_SIZING, False) is True


def check_positive_int(value: Any, name: str, *, allow_none: bool = True) -> None:
    """Raise a clear error unless ``value`` is a positive int (or None where allowed)."""
    if value is None and allow_none:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):  # message built on failure only
        raise IntellegoError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {describe(value)}")


def chunks(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(total)``."""
    size = max(1, int(size))
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def default_budget(device: torch.device) -> int:
    """Bytes one chunk may use: a fixed budget on CPU, half the free memory on an accelerator."""
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return max(free // 2, 64 << 20)
    return DEFAULT_BUDGET


def saved_bytes_per_row(run: Callable[[int], Tensor]) -> int:
    """Bytes autograd saves per row, measured by running ``run(rows)`` on two and on four rows.

    ``run(n)`` must build the graph for ``n`` rows and return a tensor; storages are counted once.
    """
    return saved_profile_per_row(run)[0]


def saved_profile_per_row(run: Callable[[int], Tensor]) -> tuple[int, int]:
    """Per row: bytes autograd saves in all (as :func:`saved_bytes_per_row`), and the bytes of the largest
    saved activation (a tensor whose first dimension is the rows; a proxy for one layer's working set).
    Two and four rows, not one and two: a model in training mode with a BatchNorm layer refuses one row."""
    sizes, largest = [], 1
    for n in (2, 4):
        seen: dict[int, int] = {}

        def pack(t: Tensor, seen: dict[int, int] = seen, n: int = n) -> Tensor:
            nonlocal largest
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            if n == 4 and t.dim() > 0 and t.shape[0] == 4:
                largest = max(largest, t.numel() * t.element_size() // 4)
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run(n)
        sizes.append(sum(seen.values()))
    return max((sizes[1] - sizes[0]) // 2, 1), largest


def plan_rows(
    total_rows: int,
    *,
    limit: int | None = None,
    memory_budget: int | None = None,
    device: torch.device | None = None,
    measure: Callable[[], int] | None = None,
) -> int:
    """Rows per model call for a job of ``total_rows``.

    ``limit`` (a user's ``internal_batch_size`` and the like) wins. Otherwise, when the job is large, the
    per-row cost from ``measure()`` (bytes saved for backward, doubled for gradients) is fitted into the
    budget.
    """
    if limit is None and memory_budget is None and (measure is None or total_rows <= _PROBE_THRESHOLD_ROWS):
        return max(total_rows, 1)  # the common small job: nothing to check or measure
    check_positive_int(limit, "internal_batch_size")
    check_positive_int(memory_budget, "memory_budget")
    if limit is not None:
        return limit
    if measure is None or (memory_budget is None and total_rows <= _PROBE_THRESHOLD_ROWS):
        return max(total_rows, 1)
    budget = memory_budget or default_budget(device or torch.device("cpu"))
    per_row = 2 * measure()
    return int(min(max(budget // per_row, 1), total_rows))
