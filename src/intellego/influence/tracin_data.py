"""What the TracIn family shares: checkpoints, batches of a dataset, loss checks, running top-k.

Checkpoints may be file paths (or a directory of them), state dicts or modules. Each is loaded once per
TracIn object through ``checkpoints_load_func(model, checkpoint) -> learning rate`` (Captum's contract) into the
user's model, its parameters and buffers are copied out, and the model is put back as it was: the methods
evaluate checkpoints with ``functional_call`` and never leave the model changed.

Example:
    >>> import torch
    >>> from intellego.influence.tracin_data import load_checkpoint_states
    >>> model = torch.nn.Linear(2, 1)
    >>> ckpt = {**{k: torch.zeros_like(v) for k, v in model.state_dict().items()}, "learning_rate": 0.1}
    >>> states = load_checkpoint_states(model, [ckpt])
    >>> states[0].learning_rate, float(states[0].params["weight"].abs().sum()), bool(model.weight.abs().sum() > 0)
    (0.1, 0.0, True)
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..core.batching import DEFAULT_BUDGET, known_length
from ..errors import IntellegoError, describe, require

__all__ = ["CheckpointState", "resolve_checkpoints", "load_flexible_state_dict", "load_checkpoint_states",
           "check_loss_fn", "Batches", "as_batches", "TopK", "check_k"]


@dataclass
class CheckpointState:
    """One checkpoint: the model's parameters and buffers at it (detached copies) and its learning rate."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    learning_rate: float


def _natural_key(text: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def resolve_checkpoints(checkpoints: Any) -> list[Any]:
    """A list of checkpoints from a directory (its files, in natural order), a path, a state dict, a module or
    any iterable of them."""
    if isinstance(checkpoints, (str, os.PathLike)):
        path = os.fspath(checkpoints)
        found = sorted(glob.glob(os.path.join(path, "*")), key=_natural_key) if os.path.isdir(path) else [path]
        require(len(found) > 0, f"checkpoints: the directory {path!r} holds no files")
        return found
    if isinstance(checkpoints, (Mapping, nn.Module)):
        return [checkpoints]
    require(isinstance(checkpoints, Iterable),
            f"checkpoints must be a directory, a list of paths, state dicts or modules, got {describe(checkpoints)}")
    out = list(checkpoints)
    require(len(out) > 0, "checkpoints is empty: TracIn needs at least one checkpoint")
    if all(isinstance(c, str) for c in out):
        out = sorted(out, key=_natural_key)  # Captum sorts path lists the same way
    return out


def load_flexible_state_dict(model: nn.Module, checkpoint: Any) -> float:
    """The default ``checkpoints_load_func``: load a path, state dict or module into ``model`` and return the
    checkpoint's ``"learning_rate"`` entry (1.0 without one). ``"module."`` prefixes (DataParallel) are removed.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if isinstance(checkpoint, nn.Module):
        checkpoint = checkpoint.state_dict()
    require(isinstance(checkpoint, Mapping), f"a checkpoint must hold a state dict, got {describe(checkpoint)}")
    state = dict(checkpoint)
    lr = state.pop("learning_rate", 1.0)
    if isinstance(model, nn.DataParallel):
        model = model.module
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state)
    return float(lr)


def load_checkpoint_states(model: nn.Module, checkpoints: list[Any],
                           load: Callable[[nn.Module, Any], Any] = load_flexible_state_dict) -> list[CheckpointState]:
    """Load every checkpoint through ``load`` and copy out its state; the model is restored afterwards (also on
    error). A checkpoint that does not load is a named error."""
    saved_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    saved_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    states = []
    try:
        for i, ckpt in enumerate(checkpoints):
            require(ckpt is not None, f"checkpoint {i} is None: nothing to load")
            try:
                lr = load(model, ckpt)
            except IntellegoError:
                raise
            except Exception as err:
                raise IntellegoError(f"checkpoint {i} ({_name(ckpt)}) does not load into the model: "
                                     f"{type(err).__name__}: {str(err).strip()[:600]}") from err
            if lr is None:
                lr = 1.0
            require(isinstance(lr, (int, float, Tensor)) and not isinstance(lr, bool),
                    f"checkpoints_load_func must return the checkpoint's learning rate (a number), got "
                    f"{describe(lr)} for checkpoint {i}")
            states.append(CheckpointState({n: p.detach().clone() for n, p in model.named_parameters()},
                                          {n: b.detach().clone() for n, b in model.named_buffers()}, float(lr)))
    finally:
        with torch.no_grad():
            current = dict(model.named_parameters())
            for n, v in saved_params.items():
                if n in current:
                    current[n].copy_(v)
            buffers = dict(model.named_buffers())
            for n, v in saved_buffers.items():
                if n in buffers:
                    buffers[n].copy_(v)
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode
    return states


def _name(ckpt: Any) -> str:
    if isinstance(ckpt, (str, os.PathLike)):
        return repr(os.fspath(ckpt))
    if isinstance(ckpt, Mapping):
        return f"a state dict of {len(ckpt)} entries"
    return describe(ckpt)


def check_loss_fn(loss_fn: Any, name: str, sample_wise: bool, *, fast: bool = False) -> str:
    """Captum's reduction contract: with per-example gradients computed from a batch (``sample_wise``, and the
    fast methods) the loss must reduce by "sum" or "mean"; otherwise it must keep one loss per example
    ("none"). Returns the reduction; a loss without a ``reduction`` attribute is assumed to follow the contract.
    """
    if loss_fn is None:
        require(not fast, f"`{name}` is required by the fast TracIn methods (the gradient of the loss with respect "
                          "to the model's output is what they use)")
        return "sum"
    require(callable(loss_fn), f"`{name}` must be a loss module or callable, got {describe(loss_fn)}")
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        return "sum" if (sample_wise or fast) else "none"
    if sample_wise or fast:
        who = "the fast TracIn methods" if fast else "TracInCP with sample_wise_grads_per_batch=True"
        require(reduction in ("sum", "mean"),
                f"`{name}` has reduction={reduction!r}, but {who} needs a loss that reduces the batch by 'sum' "
                "or 'mean'")
    else:
        require(reduction == "none",
                f"`{name}` has reduction={reduction!r}, but TracInCP with sample_wise_grads_per_batch=False (the "
                "default) needs one loss per example: pass reduction='none' (or set sample_wise_grads_per_batch=True)")
    return str(reduction)


def check_per_example_loss(loss_fn: Any, name: str, out: Tensor, target: Any) -> None:
    """A per-example loss (no ``reduction`` attribute, "none" contract) must return one value per example."""
    if loss_fn is None or hasattr(loss_fn, "reduction") or out.shape[0] < 2:
        return
    with torch.no_grad():
        value = loss_fn(out[:2], target[:2]) if target is not None else loss_fn(out[:2])
    require(isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == 2,
            f"`{name}` returned {describe(value)} for a batch of 2 examples: it reduces over the batch, but "
            "sample_wise_grads_per_batch=False needs one loss per example (or set sample_wise_grads_per_batch=True)")


class Batches:
    """Re-iterable ``(*inputs, target)`` batches of a DataLoader, a Dataset or one tuple; ``len`` where known.

    A ``TensorDataset`` is sliced directly (no per-example collation); other datasets go through a DataLoader.
    """

    def __init__(self, data: Any, batch_size: int | None, *, what: str) -> None:
        if isinstance(data, list) and data and isinstance(data[0], (Tensor, tuple, list)):
            data = tuple(data)  # one batch as a DataLoader yields it (default collation gives lists)
        self.data, self.batch_size, self.what = data, batch_size, what
        if isinstance(data, tuple):
            require(len(data) >= 1, f"{what} must be a non-empty tuple (*inputs, targets), got an empty tuple")
            self.kind = "tuple"
        elif isinstance(data, DataLoader):
            self.kind = "loader"
        elif isinstance(data, TensorDataset):
            self.kind = "tensors"
        elif isinstance(data, Dataset):
            self.kind = "dataset"
        else:
            raise IntellegoError(f"{what} must be a Dataset, a DataLoader or one batch (*inputs, targets) as a "
                                 f"tuple or a list of tensors, got {describe(data)}")

    def rows(self) -> int | None:
        """Number of examples when it can be known without a pass."""
        if self.kind == "tuple":
            return int(self.data[0].shape[0]) if isinstance(self.data[0], Tensor) and self.data[0].dim() else None
        if self.kind == "loader":
            return known_length(self.data.dataset)
        return len(self.data)

    def __len__(self) -> int:
        if self.kind == "tuple":
            return 1
        if self.kind == "loader":
            return len(self.data)
        size = self.batch_size or len(self.data)
        return -(-len(self.data) // max(size, 1))

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self.kind == "tuple":
            yield self.data
        elif self.kind == "loader":
            for batch in self.data:
                yield tuple(batch) if isinstance(batch, list) else batch
        elif self.kind == "tensors":
            n = len(self.data)
            size = self.batch_size or n
            for start in range(0, n, size):
                yield tuple(t[start:start + size] for t in self.data.tensors)
        else:
            for batch in DataLoader(self.data, batch_size=self.batch_size or 256, shuffle=False):
                yield tuple(batch) if isinstance(batch, list) else batch


def as_batches(data: Any, batch_size: int | None = None, *, what: str = "inputs") -> Batches:
    return data if isinstance(data, Batches) else Batches(data, batch_size, what=what)


def default_rows(p: int, itemsize: int, n: int | None = None) -> int:
    """Rows of a training batch when the user gives no batch size: about half the memory budget holds the
    batch's gradients (at least 64 rows, at most 8192); with ``n`` rows in all, the batches are made even."""
    rows = int(min(8192, max(64, DEFAULT_BUDGET // max(2 * p * itemsize, 1))))
    if n:
        rows = -(-n // -(-n // rows))
    return rows


def check_k(k: Any) -> None:
    """``k`` is a positive int; one larger than the data set gives all its examples, ranked (as Captum does)."""
    require(isinstance(k, int) and not isinstance(k, bool) and k >= 1, f"k must be a positive int, got {describe(k)}")


class TopK:
    """Exact running top-k over chunks of columns: ``add(scores (n, b))`` then ``result()``."""

    def __init__(self, k: int, largest: bool = True, what: str = "the training set") -> None:
        self.k, self.largest, self.what = k, largest, what
        self.values: Tensor | None = None
        self.indices: Tensor | None = None
        self.seen = 0

    def add(self, scores: Tensor) -> None:
        idx = torch.arange(self.seen, self.seen + scores.shape[1], device=scores.device).expand_as(scores)
        self.seen += scores.shape[1]
        if self.values is not None and self.indices is not None:
            scores = torch.cat([self.values, scores], 1)
            idx = torch.cat([self.indices, idx], 1)
        values, pos = torch.topk(scores, min(self.k, scores.shape[1]), dim=1, largest=self.largest)
        self.values, self.indices = values, idx.gather(1, pos)

    def result(self) -> tuple[Tensor, Tensor]:
        if self.seen < self.k:
            warnings.warn(f"k={self.k} is larger than {self.what} ({self.seen} examples): all {self.seen} are "
                          "returned, ranked", UserWarning, stacklevel=3)
        return cast(Tensor, self.indices), cast(Tensor, self.values)


def warn_unused(name: str, value: Any, default: Any) -> None:
    if value != default:
        warnings.warn(f"`{name}` has no effect in intellego (given {value!r})", stacklevel=3)
