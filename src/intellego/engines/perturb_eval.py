"""Batched evaluation for the perturbation engine: :class:`Evaluator` runs the model on many perturbed copies
of a batch per call, in chunks sized by memory and, on CPU, by cache (see :data:`CPU_CHUNK_BYTES`).

Example:
    >>> import torch
    >>> from intellego.core.grad import ForwardSpec
    >>> from intellego.engines.perturb import Evaluator
    >>> x = torch.ones(2, 3)
    >>> spec = ForwardSpec.build(lambda t: t.sum(1), None, None, 2)
    >>> ev = Evaluator(spec, (x,), (torch.zeros(1, 3),), target_is_none=True, perturbations_per_eval=None,
    ...                memory_budget=None)
    >>> removed = torch.tensor([[False, False, False], [True, False, False]])[:, None]  # row 1 drops element 0
    >>> ev.run(2, lambda sl: (removed[sl],)).tolist()
    [[3.0, 3.0], [2.0, 2.0]]
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int, is_self_sizing, plan_rows, saved_profile_per_row
from ..core.grad import ForwardSpec
from ..core.hooks import ModelScan
from ..errors import IntellegoError, describe, require

__all__ = ["Evaluator", "progress_bar", "CPU_CHUNK_BYTES"]


class _Progress:
    def __init__(self, total: int, desc: str) -> None:
        self.total, self.done, self.desc = total, 0, desc

    def update(self, n: int = 1) -> None:
        self.done += n
        sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total}")

    def close(self) -> None:
        sys.stderr.write("\n")


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over ``total`` model calls when ``enabled`` (a plain counter without tqdm)."""
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Progress(total, desc)
    return tqdm(total=total, desc=desc)


class Evaluator:
    """Runs the model on perturbed copies of a batch, many copies per call.

    ``fills`` are the values removed elements take, per input ``(1 or batch, *shape)``. ``run(n, removed)``
    returns the outputs of ``n`` rows, shape ``(n, *O)``: ``O = (batch, *K)`` when the model returns values
    per example, anything else for one output per batch (aggregate mode, one copy per call). The first model
    call fixes the mode, so methods put their reference rows (the unperturbed input, the all-baseline input)
    into ``run`` as rows with nothing or everything removed instead of paying an extra call;
    ``reference()`` evaluates one batch on its own.
    """

    def __init__(self, spec: ForwardSpec, inputs: tuple[Tensor, ...], fills: tuple[Tensor, ...], *,
                 target_is_none: bool, perturbations_per_eval: int | None, memory_budget: int | None,
                 show_progress: bool = False, desc: str = "attribution") -> None:
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        self.spec, self.inputs, self.fills = spec, inputs, fills
        self.target_is_none, self.ppe, self.budget = target_is_none, perturbations_per_eval, memory_budget
        self.show_progress, self.desc = show_progress, desc
        self.batch = inputs[0].shape[0]
        self.out_shape: tuple[int, ...] = ()
        self.aggregate = False
        self._cost: tuple[int, int] | None = None

    def _select(self, spec: ForwardSpec, inputs: tuple[Tensor, ...]) -> Tensor:
        out = spec.output(inputs)
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            out = torch.tensor(out, dtype=torch.float64 if isinstance(out, float) else torch.int64)
        if not self.target_is_none:
            return spec.readout(out)
        require(isinstance(out, Tensor), f"the model must return a tensor or a number, got {describe(out)}")
        n = spec.batch_size
        if out.dim() > 1 and out.shape[0] == n and out[0].numel() == 1:
            return out.reshape(n)
        return out

    def reference(self, inputs: tuple[Tensor, ...] | None = None) -> Tensor:
        """Outputs on ``inputs`` (default: the unperturbed batch); the first call fixes the output mode."""
        with torch.no_grad():
            y = self._select(self.spec, self.inputs if inputs is None else inputs)
        if not self.out_shape:
            self._settle_one(y)
        return y.reshape(self.out_shape)

    def rows_per_call(self, n: int) -> int:
        """How many perturbed copies of the batch go into one model call (see :data:`CPU_CHUNK_BYTES`).

        Without ``perturbations_per_eval`` the chunk fits the memory budget. On CPU, a job of more than
        ``_SMALL_JOB_ROWS`` rows also keeps the largest activation of a call within :data:`CPU_CHUNK_BYTES`,
        also under an explicit ``perturbations_per_eval``, which is then an upper limit (as in Captum, "at
        most"): a forward over one big stack runs slower there than over cache-sized pieces, and the results
        do not depend on the chunk. ``run`` then makes the chunks about equal in size. A forward marked
        :func:`~intellego.core.batching.self_sizing` sizes its own calls: it gets every row (or at most
        ``perturbations_per_eval``) and nothing is measured.
        """
        if self.aggregate:
            return 1
        if is_self_sizing(self.spec.forward_func):
            return n if self.ppe is None else self.ppe
        total = n * self.batch
        small = total <= _SMALL_JOB_ROWS or (self.ppe is not None and min(self.ppe, n) * self.batch <= _SMALL_JOB_ROWS)
        if small or self.inputs[0].device.type != "cpu":
            if self.ppe is not None:
                return self.ppe
            return max(1, plan_rows(total, memory_budget=self.budget, device=self.inputs[0].device,
                                    measure=lambda: self._measure()[0]) // self.batch)
        if self.ppe is not None:
            return max(1, min(self.ppe, self._cache_rows() // self.batch))
        rows = plan_rows(total, memory_budget=self.budget, device=self.inputs[0].device,
                         measure=lambda: self._measure()[0])
        return max(1, min(rows, self._cache_rows()) // self.batch)

    def _cache_rows(self) -> int:
        """Rows whose largest activation fits :data:`CPU_CHUNK_BYTES` (at least one)."""
        return max(1, CPU_CHUNK_BYTES // self._measure()[1])

    def _measure(self) -> tuple[int, int]:
        """Bytes per row: all saved activations plus twice the input, and the largest activation (looked up
        or measured once per evaluator)."""
        if self._cost is None:
            try:
                self._cost = self._lookup_or_measure()
            except Exception as err:  # the probe runs 2 and 4 rows
                self._one_copy_instead(err)
                self._cost = (_UNMEASURABLE, _UNMEASURABLE)  # one result per batch: one copy per call
        return self._cost

    def _lookup_or_measure(self) -> tuple[int, int]:
        key = _cache_key(self.spec, self.inputs)
        cached = _cached_cost(self.spec, key)
        if cached is not None:
            return cached
        one = self.spec.rows(slice(0, 1))
        # an input that does not follow the batch (a list of sparse ids, for a model with one output per batch)
        # goes in as it is
        rowed = tuple(x.dim() > 0 and x.shape[0] == self.batch for x in self.inputs)
        first = tuple(x[:1] if r else x for x, r in zip(self.inputs, rowed))

        def run(n: int) -> Tensor:
            out = one.tiled(n).output(tuple(x.expand(n, *x.shape[1:]).clone() if r else x
                                            for x, r in zip(first, rowed)))
            return out if isinstance(out, Tensor) else torch.zeros(())

        input_bytes = sum(x[:1].numel() * x.element_size() for x in self.inputs)
        total, largest = saved_profile_per_row(run)
        measured = (total + 2 * input_bytes, largest)
        _remember_cost(self.spec, key, measured)
        return measured

    def run(self, n: int, removed: Callable[[slice], tuple[Tensor | None, ...]],
            fills: Callable[[slice], tuple[Tensor, ...]] | None = None) -> Tensor:
        """Outputs ``(n, *O)`` of rows ``0 .. n-1``; ``removed(rows)`` gives their boolean masks per input
        (``(p, 1 or batch, *shape)``, None for an untouched input) and ``fills(rows)`` optional per-row fill
        values ``(p, batch, *shape)``. Without a fixed output mode, the first chunk fixes it. Masks of a
        small job are built once for all rows and sliced per call (fewer small operations per chunk)."""
        per_call = self.rows_per_call(n)
        if n <= per_call and not self.show_progress:  # one call: no chunk loop, no progress bar
            y = self._call(self.spec.tiled(n), self._build(n, removed(slice(0, n)),
                                                           self.fills if fills is None else fills(slice(0, n))), n)
            if y is not None and self.out_shape:
                return self._check(y, n)
            if y is not None and self._settle(y, n):  # settled on this output: one row per stacked example
                return self._check(y, n) if self.aggregate else y.reshape(n, *self.out_shape)
            per_call = 1  # one result per batch: one copy per call
        balanced = self.ppe is None or per_call < self.ppe
        masks = _sliceable(removed, n) if n > per_call and n * self._row_elements() <= _MASKS_AT_ONCE else removed
        bar = progress_bar(math.ceil(n / per_call), self.desc, self.show_progress)
        parts: list[Tensor] = []
        specs: dict[int, ForwardSpec] = {}
        try:
            with torch.no_grad():
                start = 0
                while start < n:
                    p = _next_chunk(n - start, per_call, balanced)
                    sl = slice(start, start + p)
                    spec = specs.get(p) or specs.setdefault(p, self.spec.tiled(p))
                    batch = self._build(p, masks(sl), self.fills if fills is None else fills(sl))
                    y = self._call(spec, batch, p)
                    if y is None or (not self.out_shape and not self._settle(y, p)):
                        per_call = 1  # one result per batch: start again, one copy per call
                        continue
                    parts.append(self._check(y, p))
                    bar.update()
                    start += p
        finally:
            bar.close()
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _call(self, spec: ForwardSpec, batch: tuple[Tensor, ...], p: int) -> Tensor | None:
        """The output on ``p`` stacked copies; None where the call failed before the output mode was known and
        the batch alone gives one result per batch (see :meth:`_one_copy_instead`): go on one copy per call."""
        try:
            with torch.no_grad():
                return self._select(spec, batch)
        except Exception as err:
            if self.out_shape or p == 1:
                raise
            self._one_copy_instead(err)
            return None

    def _one_copy_instead(self, err: Exception) -> None:
        """A call on other rows than the batch's failed before the output mode was known. A forward tied to its
        batch (a loss against the batch's labels, Captum's FeaturePermutation example) runs on the batch alone,
        as Captum calls it: settle the mode on it; one result per batch goes on one copy per call, anything else
        raises ``err``."""
        if self.out_shape:
            raise err
        try:
            self.reference()
        except Exception:
            raise err from None
        if not self.aggregate:
            raise err

    def _row_elements(self) -> int:
        """Elements of one row's masks at most (every input, the whole batch)."""
        return sum(x.numel() for x in self.inputs)

    def _settle(self, y: Tensor, p: int) -> bool:
        """Fix the output mode from the first call (``p`` copies); False when it must be redone per copy."""
        rows = p * self.batch
        if y.dim() >= 1 and y.shape[0] == rows and not (rows > 1 and y.numel() == 1):
            self.out_shape = (self.batch, *y.shape[1:])
            return True
        if p == 1:
            self._settle_one(y)
            return True
        # decide on the batch alone: an output that does not grow with the stacked copies is one result per
        # batch even where its first dimension happens to equal the batch size (a sum over the batch of a
        # model with as many outputs as examples, (1, 1) for a batch of one)
        with torch.no_grad():
            ref = self._select(self.spec, self.inputs)
        self._settle_one(ref, unrelated=ref.numel() == y.numel())  # raises for perturbations_per_eval > 1
        require(self.aggregate, f"the model returned output of shape {tuple(y.shape)} for {p} perturbed copies "
                f"of a batch of {self.batch} (expected first dimension {rows}); if it returns one value per "
                "batch, pass perturbations_per_eval=1")
        return False

    def _settle_one(self, y: Tensor, unrelated: bool = False) -> None:
        """Fix the output mode from the output ``y`` of one unstacked batch (``unrelated``: known not to follow
        the batch). One result per batch, of any shape, is flattened: one attribution row per output element,
        as in Captum."""
        self.aggregate = unrelated or y.dim() == 0 or y.shape[0] != self.batch or (self.batch > 1 and y.numel() == 1)
        self.out_shape = (y.numel(),) if self.aggregate else tuple(y.shape)
        require(not self.aggregate or self.ppe in (None, 1),
                f"the model returns output of shape {tuple(y.shape)} for a batch of {self.batch}, i.e. one "
                f"result per batch; perturbations_per_eval must then be 1, got {self.ppe}")

    def _build(self, p: int, masks: tuple[Tensor | None, ...], fills: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        out = []
        for x, m, f in zip(self.inputs, masks, fills):
            v = x.unsqueeze(0).expand(p, *x.shape) if m is None else torch.where(m, f, x)
            out.append(v.reshape(p * x.shape[0], *x.shape[1:]))
        return tuple(out)

    def _check(self, y: Tensor, p: int) -> Tensor:
        if self.aggregate:
            require(y.numel() == math.prod(self.out_shape),
                    f"the model returned output of shape {tuple(y.shape)} for perturbed inputs but "
                    f"{self.out_shape} for the original batch")
            return y.reshape(1, *self.out_shape)
        if not (y.dim() >= 1 and y.shape[0] == p * self.batch and y.numel() == p * math.prod(self.out_shape)):
            raise IntellegoError(
                f"the model returned output of shape {tuple(y.shape)} for {p} perturbed copies of a batch of "
                f"{self.batch} (expected first dimension {p * self.batch}); if it returns one value per batch, "
                "pass perturbations_per_eval=1")
        return y.reshape(p, *self.out_shape)


def _next_chunk(left: int, per_call: int, balanced: bool) -> int:
    """Rows of the next chunk: ``per_call``, or with ``balanced`` the share of ``left`` split into as few
    chunks of at most ``per_call`` as possible, as equal as possible (no small tail call)."""
    if not balanced or left <= per_call:
        return min(left, per_call)
    return math.ceil(left / math.ceil(left / per_call))


CPU_CHUNK_BYTES = 1536 << 10
"""On CPU, the bytes of the largest activation of one model call: a throughput cap, not a memory limit (a
forward over one big stack runs slower than over cache-sized pieces). Chosen by sweeping rows per call on one
thread (median of 11 interleaved rounds, time relative to the fastest size): the benchmark ResNet (64 KiB
largest activation per row) ran 1.46x at 12 rows, 1.09x at 24, 1.00x at 32, 1.20x at 48, 2.95x at 512; the
benchmark MLP (256 B per row) 1.34x at 1024 rows, 1.02x at 3072, 1.00x at 4096, 1.17x at 8192, 2.29x at
65536. 1.5 MiB (24 ResNet rows, 6144 MLP rows) is within about 10% of the fastest size on both; the old
768 KiB (12 and 3072 rows) lost 46% on the ResNet."""

_UNMEASURABLE = 1 << 62  # the cost of a row of a forward that runs on its own batch only: one copy per call
_SMALL_JOB_ROWS = 32  # below this many rows in all, one call without measuring the model
_MASKS_AT_ONCE = 1 << 22  # mask elements (bytes) a job may build at once rather than per chunk


def _sliceable(removed: Callable[[slice], tuple[Tensor | None, ...]],
               n: int) -> Callable[[slice], tuple[Tensor | None, ...]]:
    """``removed`` evaluated once for rows ``0 .. n-1``, then sliced (same masks, built in one pass)."""
    whole = removed(slice(0, n))
    return lambda sl: tuple(None if m is None else m[sl] for m in whole)
_MEASURED: dict[tuple[Any, ...], tuple[weakref.ref[Any], tuple[int, int]]] = {}
_MEASURED_MAX = 64


def _cache_key(spec: ForwardSpec, inputs: tuple[Tensor, ...]) -> tuple[Any, ...]:
    """Key of a model's per-row cost: the model object, its argument layout, the per-example shapes and the
    model's structure. Only chunk sizes come from it: results never depend on the chunk."""
    ff = spec.forward_func
    func = None if isinstance(ff, torch.nn.Module) else getattr(ff, "__func__", None)
    owner = _owner(ff)
    layout = tuple([(x.shape[1:], x.dtype, x.device) for x in inputs])
    args = tuple([(type(a), a.shape[1:] if isinstance(a, Tensor) else None) for a in spec.args]) if spec.args else ()
    return (id(owner), id(func), layout, args, _structure(ff))


def _owner(forward_func: Any) -> Any:
    """The object a bound method belongs to, else ``forward_func`` itself (a module is its own owner: asking
    a module for a missing ``__self__`` goes through ``nn.Module.__getattr__``, which builds an error message)."""
    if isinstance(forward_func, torch.nn.Module):
        return forward_func
    return getattr(forward_func, "__self__", forward_func)


def _structure(forward_func: Any) -> tuple[Any, ...]:
    """What the per-row cost depends on in the model: each module, its mode and its parameters (a replaced
    layer or parameter, a frozen parameter or a switch to training mode is a new key, so a new measurement):
    the signature of the call's one walk over the model (:class:`~intellego.core.hooks.ModelScan`)."""
    return ModelScan.of(forward_func).signature


def _cached_cost(spec: ForwardSpec, key: tuple[Any, ...]) -> tuple[int, int] | None:
    entry = _MEASURED.get(key)
    owner = _owner(spec.forward_func)
    return entry[1] if entry is not None and entry[0]() is owner else None


def _remember_cost(spec: ForwardSpec, key: tuple[Any, ...], cost: tuple[int, int]) -> None:
    """Remember while the model lives (weakly referenced; not cached for objects without weak references)."""
    try:
        ref = weakref.ref(_owner(spec.forward_func))
    except TypeError:
        return
    if len(_MEASURED) >= _MEASURED_MAX:
        _MEASURED.clear()
    _MEASURED[key] = (ref, cost)
