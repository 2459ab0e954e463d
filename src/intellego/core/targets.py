"""Captum's target formats turned into one read-out: ``Readout(output) -> one score per example``.

Accepted targets: ``None`` (the model returns one value per example), an ``int``, a ``tuple`` of ints
(an index into each example's output), a list of ints or tuples (one per example), a tensor (a scalar, or one
index per example), or a callable ``output -> (N,) scores`` for anything else (its result is checked to
hold one score per example).

Several targets at once (beyond Captum): :func:`stack_targets` turns a list of targets into one index row per
example of ``K`` stacked copies of the batch, so ``K`` read-outs cost one batched model call.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, ShapeError, describe, require

__all__ = ["Readout", "make_readout", "stack_targets", "CALLER_BATCH"]

# The batch size of the outermost ``attribute`` call of this thread (set by attr/_guard.py): target errors show
# the output shape the caller would see, also from methods built on others (NoiseTunnel, fan-outs of targets).
CALLER_BATCH: ContextVar[int | None] = ContextVar("intellego_caller_batch", default=None)


@dataclass(frozen=True)
class Readout:
    """Selects one scalar per example from a model output.

    Attributes:
        index: a fixed index into each example's output (``()`` selects the whole per-example value).
        per_example: ``(N, d)`` long tensor of indices, one row per example, or None.
        func: a user callable mapping the output to scores, or None.
        name: the argument the read-out came from, for error messages.
        batch: the caller's batch size, so errors show the output shape the caller would see rather than
            that of an internal batch of path points, samples or perturbed copies (None: as it is).
    """

    index: tuple[int, ...] | None = ()
    per_example: Tensor | None = None
    func: Callable[[Tensor], Tensor] | None = None
    name: str = "target"
    batch: int | None = None

    def rows(self, sl: slice) -> Readout:
        """The read-out for a slice of the examples."""
        if self.per_example is None:
            return self
        return Readout(None, self.per_example[sl], None, self.name, self.batch)

    def tiled(self, k: int) -> Readout:
        """The read-out for ``k`` stacked copies of the batch (copy-major)."""
        if self.per_example is None or k == 1:
            return self
        return Readout(None, self.per_example.repeat(k, 1), None, self.name, self.batch)

    def interleaved(self, k: int) -> Readout:
        """The read-out for a batch where each example is repeated ``k`` times in place."""
        if self.per_example is None or k == 1:
            return self
        return Readout(None, self.per_example.repeat_interleave(k, dim=0), None, self.name, self.batch)

    def _shown(self, output: Tensor) -> tuple[int, ...]:
        """``output``'s shape with the caller's batch size in front (internal batches are expanded)."""
        if self.batch is None or output.dim() == 0:
            return tuple(output.shape)
        return (self.batch, *output.shape[1:])

    def __call__(self, output: Any) -> Tensor:
        if self.func is not None:
            scores = self.func(output)
            if not _one_per_example(scores, output):
                self._bad_scores(output, scores)
            return scores
        if isinstance(output, (int, float)) and not isinstance(output, bool) and self.index == () and \
                self.per_example is None and not torch.is_grad_enabled():  # a Python number: one value per batch
            # (read without gradients only: a gradient method gets the clearer error below)
            output = torch.tensor(output, dtype=torch.float64 if isinstance(output, float) else torch.int64)
        if not isinstance(output, Tensor):
            raise IntellegoError(f"the model must return a tensor to select a target, got {describe(output)}; "
                                 "pass a forward_func that returns one, e.g. lambda x: model(x)[0] "
                                 "or lambda x: model(x)['logits']")
        if self.per_example is not None:
            return self._select_per_example(output)
        return self._select_index(output)

    def _bad_scores(self, output: Any, scores: Any) -> None:
        ref = _first_tensor(output)
        want = "(N,)" if ref is None else str(tuple(ref.shape[:1]))
        shown = f"shape {tuple(scores.shape)}" if isinstance(scores, Tensor) else describe(scores)
        raise IntellegoError(f"callable {self.name} must return one score per example, a tensor of shape {want}, "
                             f"but it returned {shown} for {describe(output)}")

    def _select_index(self, output: Tensor) -> Tensor:
        index = self.index or ()
        if len(index) == 1 and output.dim() == 2 and -output.shape[1] <= index[0] < output.shape[1]:
            return output[:, index[0]]  # the usual case: a class index into (N, classes) logits
        if output.dim() == 0:
            if index != ():
                raise IntellegoError(f"target {index} cannot index a scalar model output")
            return output
        per_example = output.shape[1:]
        if index == ():
            if output[0].numel() == 1:
                return output.reshape(output.shape[0])
            raise ShapeError(
                f"target is None but the model output has shape {self._shown(output)}: with more than one value "
                "per example, pass target= (an int, a tuple, a list or a tensor of indices)"
            )
        if len(index) > len(per_example):
            raise ShapeError(f"target {_show(index)} has {len(index)} indices but each example's output has "
                             f"shape {tuple(per_example)}")
        for i, (j, size) in enumerate(zip(index, per_example)):
            if not -size <= j < size:
                raise IntellegoError(f"target {_show(index)} is out of range for model output of shape "
                                     f"{self._shown(output)} (dimension {i + 1} has size {size})")
        key: tuple[Any, ...] = (slice(None),) + tuple(index)
        selected = output[key]
        if selected.dim() > 1 and selected[0].numel() != 1:
            raise ShapeError(f"target {_show(index)} selects {tuple(selected.shape[1:])} values per example "
                             f"from output of shape {self._shown(output)}; it must select one")
        return selected.reshape(output.shape[0])

    def _select_per_example(self, output: Tensor) -> Tensor:
        idx = self.per_example if self.per_example is not None else torch.zeros(0, 0, dtype=torch.long)
        n, d = idx.shape
        if output.dim() < 1 or output.shape[0] != n:
            raise ShapeError(f"target holds {n} indices but the model output has shape {tuple(output.shape)}")
        if output.dim() - 1 != d:
            raise ShapeError(f"target indices have {d} component(s) per example but each example's output has "
                             f"shape {tuple(output.shape[1:])}; give one index per output dimension")
        idx = idx.to(output.device)
        for j in range(d):
            size = output.shape[j + 1]
            col = idx[:, j]
            if n and (int(col.max()) >= size or int(col.min()) < 0):  # checked here: no extra pass per call
                _require_nonnegative(int(col.min()) < 0, self.name, col)
                bad = sorted({v for v in col.tolist() if not -size <= v < size})
                raise IntellegoError(
                    f"target values {bad[:8]} are out of range for model output of shape "
                    f"{self._shown(output)} (dimension {j + 1} has size {size})"
                )
        key: tuple[Any, ...] = (torch.arange(n, device=output.device),) + tuple(idx.unbind(1))
        return output[key]


def _first_tensor(value: Any) -> Tensor | None:
    """The first tensor of a value, a (nested) tuple or list, or a dict; None when there is none."""
    while not isinstance(value, Tensor):
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        elif isinstance(value, dict) and value:
            value = next(iter(value.values()))
        else:
            return None
    return value


def _one_per_example(scores: Any, output: Any) -> bool:
    """Whether ``scores`` is ``(N,)`` for an output of ``N`` rows (a scalar for a scalar output)."""
    if not isinstance(scores, Tensor):
        return False
    ref = _first_tensor(output)
    if ref is None:
        return scores.dim() == 1
    return scores.dim() == 0 if ref.dim() == 0 else scores.shape == ref.shape[:1]


def _show(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def make_readout(target: Any, batch_size: int, name: str = "target") -> Readout:
    """Validate a Captum-style target against the batch size and return its :class:`Readout`."""
    shown = CALLER_BATCH.get() or batch_size
    if target is None:
        return Readout((), name=name, batch=shown)
    if isinstance(target, Readout):
        return target
    if callable(target) and not isinstance(target, Tensor):
        return Readout(None, None, target, name)
    if isinstance(target, bool):
        raise IntellegoError(f"{name} must be an int, a tuple, a list or a tensor, got {describe(target)}")
    if isinstance(target, int):
        _require_nonnegative(target < 0, name, target)
        return Readout((target,), batch=shown)
    if isinstance(target, tuple):
        require(all(isinstance(t, int) for t in target), f"{name} tuple must hold ints, got {target!r}")
        _require_nonnegative(any(t < 0 for t in target), name, target)
        return Readout(tuple(target), batch=shown)
    if isinstance(target, Tensor):
        require(not target.is_floating_point(), f"{name} tensor must hold integer indices, got dtype {target.dtype}")
        if target.numel() == 1:
            _require_nonnegative(int(target.item()) < 0, name, target)
            return Readout((int(target.item()),), batch=shown)
        require(
            target.dim() in (1, 2) and target.shape[0] == batch_size,
            f"{name} tensor of shape {tuple(target.shape)} must be a scalar or hold one index per example "
            f"(batch size {batch_size})",
        )
        return Readout(None, target.reshape(batch_size, -1).long(), batch=shown)
    if isinstance(target, list):
        require(
            len(target) == batch_size,
            f"{name} list has {len(target)} entries but the batch has {batch_size} examples",
        )
        if batch_size == 0:
            return Readout(())
        if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            _require_nonnegative(min(target) < 0, name, target)
            return Readout(None, torch.tensor(target, dtype=torch.long).reshape(batch_size, 1), batch=shown)
        if all(isinstance(t, tuple) for t in target):
            lengths = {len(t) for t in target}
            require(len(lengths) == 1, f"{name} list holds tuples of different lengths {sorted(lengths)}")
            _require_nonnegative(any(i < 0 for t in target for i in t), name, target)
            return Readout(None, torch.tensor(target, dtype=torch.long).reshape(batch_size, -1), batch=shown)
        raise IntellegoError(f"{name} list must hold only ints or only tuples of ints, got {target[:4]!r}...")
    raise IntellegoError(
        f"{name} must be None, an int, a tuple, a list, a tensor or a callable, got {describe(target)}")


def _require_nonnegative(negative: bool, name: str, target: Any) -> None:
    """Targets index the model's outputs from 0: a negative index (torch would count it from the end, so -1 is the
    last class) is nearly always a placeholder label such as -1 or -100 that reached the call by mistake."""
    if not negative:
        return
    if isinstance(target, Tensor):
        shown = f"tensor holding {sorted({int(v) for v in target.reshape(-1).tolist() if v < 0})[:8]}"
    elif isinstance(target, list):
        flat = [v for t in target for v in (t if isinstance(t, tuple) else (t,))]
        shown = f"list holding {sorted({v for v in flat if v < 0})[:8]}"
    else:
        shown = repr(target)
    raise IntellegoError(f"{name} must index the model's outputs from 0, got the negative {shown}: a negative "
                         "target is usually a placeholder label (-1, -100) rather than a class; for the last "
                         "class, pass its index (number of classes - 1)")


def expand_target(target: Any, k: int, batch_size: int, *, interleave: bool = True) -> Any:
    """A Captum-style target for a batch where each example appears ``k`` times (in place or stacked)."""
    if k == 1 or target is None or isinstance(target, (int, tuple)) or callable(target) and not isinstance(
            target, Tensor):
        return target
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return target
        return target.repeat_interleave(k, dim=0) if interleave else target.repeat(k, *([1] * (target.dim() - 1)))
    if isinstance(target, list):
        require(len(target) == batch_size,
                f"target list has {len(target)} entries but the batch has {batch_size} examples")
        return [t for t in target for _ in range(k)] if interleave else target * k
    return target


def stack_targets(targets: Any, batch: int, name: str = "targets") -> Tensor:
    """Index rows for ``K = len(targets)`` copies of the batch stacked copy-major, copy ``k`` reading ``targets[k]``.

    Each entry is one target in any index form :func:`make_readout` accepts (an int, a tuple of ints, or one
    index per example as a list or tensor); a ``(K,)`` or ``(K, d)`` integer tensor is ``K`` fixed indices.
    Returns a ``(K * batch, d)`` long tensor, a valid ``target`` for the stacked batch.

    Example:
        >>> stack_targets([0, 2], batch=2).flatten().tolist()
        [0, 0, 2, 2]
    """
    if isinstance(targets, Tensor) and not targets.is_floating_point() and targets.dim() in (1, 2):
        targets = [tuple(int(i) for i in row.reshape(-1)) for row in targets]
    if not isinstance(targets, list) or not targets:
        raise IntellegoError(f"{name} must be a non-empty list of targets (one entry per read-out; a tuple is a "
                             f"single multi-dimensional index), got {describe(targets)}")
    rows = []
    for k, entry in enumerate(targets):
        readout = make_readout(entry, batch, f"{name}[{k}]")
        if readout.per_example is not None:
            rows.append(readout.per_example)
        elif readout.func is None and readout.index:
            rows.append(torch.tensor(readout.index, dtype=torch.long).expand(batch, len(readout.index)))
        else:
            raise IntellegoError(f"{name}[{k}] must be an index (an int, a tuple of ints, or one index per "
                                 f"example), got {describe(entry)}")
    widths = {r.shape[1] for r in rows}
    if len(widths) > 1:
        raise IntellegoError(f"{name} mixes indices with different numbers of components {sorted(widths)}; "
                             "every entry must index the same number of output dimensions")
    return torch.cat(rows)
