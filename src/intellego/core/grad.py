"""One forward call bundle (model, extra args, target) and gradients of its read-out.

``ForwardSpec`` knows how to slice itself to some examples and to expand itself for ``k`` stacked copies of
the batch, so every engine builds internal batches the same way, with additional arguments and targets
following their examples.

Example:
    >>> import torch
    >>> from intellego.core.grad import ForwardSpec
    >>> model = torch.nn.Linear(3, 2)
    >>> spec = ForwardSpec.build(model, target=1, additional_forward_args=None, batch_size=4)
    >>> grads, scores = spec.gradients((torch.randn(4, 3),))
    >>> torch.allclose(grads[0], model.weight[1].expand(4, 3))
    True
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from .batching import chunks, plan_rows, saved_bytes_per_row
from .inputs import pack_args
from .targets import Readout, make_readout

__all__ = ["ForwardSpec", "grads_of", "autograd_grad", "grad_kwargs_scope", "use_grad_kwargs", "chunked_gradients",
           "measure_saved_bytes"]

# Captum's ``grad_kwargs``: extra keyword arguments for ``torch.autograd.grad``, set by one ``attribute`` call for
# the gradients it takes. Every ``attribute`` opens a fresh scope (attr/_base.py), so nothing leaks between calls.
_GRAD_KWARGS: ContextVar[dict[str, Any] | None] = ContextVar("intellego_grad_kwargs", default=None)
GRAD_KWARGS_KEYS = ("retain_graph", "create_graph", "allow_unused", "materialize_grads")


class grad_kwargs_scope:  # noqa: N801 - used as a function: ``with grad_kwargs_scope():``
    """A scope in which :func:`use_grad_kwargs` may set options; they are dropped on exit (a plain class, not
    a generator: it wraps every ``attribute`` call)."""

    __slots__ = ("token",)

    def __enter__(self) -> None:
        self.token = _GRAD_KWARGS.set(None)

    def __exit__(self, *_exc: Any) -> None:
        _GRAD_KWARGS.reset(self.token)


def use_grad_kwargs(grad_kwargs: Any, who: str) -> None:
    """Check Captum's ``grad_kwargs`` and pass them to every ``torch.autograd.grad`` of the current scope.

    ``materialize_grads=True`` (zeros for layers that do not reach the output) is what intellego does anyway;
    ``retain_graph`` and ``create_graph`` are passed on. The outputs and inputs are the method's own.
    """
    if grad_kwargs is None:
        return
    require(isinstance(grad_kwargs, dict) and all(isinstance(k, str) for k in grad_kwargs),
            f"{who}: grad_kwargs must be a dict of torch.autograd.grad keyword arguments, got {describe(grad_kwargs)}")
    bad = sorted(k for k in grad_kwargs if k not in GRAD_KWARGS_KEYS)
    require(not bad, f"{who}: grad_kwargs {bad} cannot be passed to torch.autograd.grad here (the method sets the "
                     f"outputs, inputs and grad_outputs itself); supported keys: {', '.join(GRAD_KWARGS_KEYS)}")
    _GRAD_KWARGS.set(dict(grad_kwargs))


def autograd_grad(outputs: Any, inputs: Any, **fixed: Any) -> tuple[Tensor | None, ...]:
    """``torch.autograd.grad(outputs, inputs, **fixed)`` with the current call's ``grad_kwargs`` on top."""
    extra = _GRAD_KWARGS.get()
    return torch.autograd.grad(outputs, inputs, **({**fixed, **extra} if extra else fixed))


def _rows(arg: Any, batch: int, sl: slice) -> Any:
    return arg[sl] if is_batched(arg, batch) else arg


def is_batched(arg: Any, batch: int) -> bool:
    return isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == batch


@dataclass(frozen=True)
class ForwardSpec:
    """A model call: ``forward_func(*inputs, *args)`` and the target read-out, for ``batch_size`` examples.

    Additional-argument tensors whose first dimension is the batch size follow their examples when the spec
    is sliced or expanded; other arguments are passed through unchanged.
    """

    forward_func: Callable[..., Any]
    args: tuple[Any, ...]
    readout: Readout
    batch_size: int

    @classmethod
    def build(cls, forward_func: Callable[..., Any], target: Any, additional_forward_args: Any,
              batch_size: int) -> ForwardSpec:
        if not callable(forward_func):  # not require(): describe() of a model is its repr, too slow per call
            raise IntellegoError(f"forward_func must be callable, got {describe(forward_func)}")
        return cls(forward_func, pack_args(additional_forward_args), make_readout(target, batch_size), batch_size)

    def rows(self, sl: slice) -> ForwardSpec:
        """The spec for examples ``sl`` of the batch (itself for the whole batch)."""
        n = len(range(*sl.indices(self.batch_size)))
        if n == self.batch_size and sl.step in (None, 1):
            return self
        return ForwardSpec(self.forward_func, tuple(_rows(a, self.batch_size, sl) for a in self.args),
                           self.readout.rows(sl), n)

    def tiled(self, k: int) -> ForwardSpec:
        """The spec for ``k`` copies of the batch stacked one after another."""
        if k == 1:
            return self
        args = tuple(a.repeat(k, *([1] * (a.dim() - 1))) if is_batched(a, self.batch_size) else a
                     for a in self.args) if self.args else ()
        return ForwardSpec(self.forward_func, args, self.readout.tiled(k), self.batch_size * k)

    def interleaved(self, k: int) -> ForwardSpec:
        """The spec for a batch in which every example is repeated ``k`` times in place."""
        if k == 1:
            return self
        args = tuple(a.repeat_interleave(k, dim=0) if is_batched(a, self.batch_size) else a
                     for a in self.args) if self.args else ()
        return ForwardSpec(self.forward_func, args, self.readout.interleaved(k), self.batch_size * k)

    def output(self, inputs: tuple[Tensor, ...]) -> Any:
        """The raw model output."""
        return self.forward_func(*inputs, *self.args)

    def scores(self, inputs: tuple[Tensor, ...]) -> Tensor:
        """One selected score per example (or one scalar for a whole-batch output)."""
        return self.readout(self.output(inputs))

    def gradients(self, inputs: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], Tensor]:
        """Gradients of the summed scores with respect to ``inputs``, and the scores (detached)."""
        with torch.enable_grad():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            scores = self.scores(leaves)
            grads = grads_of(scores, leaves)
        return grads, scores.detach()


def grads_of(scores: Tensor, wrt: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``d sum(scores) / d wrt`` with zeros for tensors the scores do not depend on."""
    require(scores.requires_grad,
            "the selected model output does not depend on the attributed tensors (no gradient flows); "
            "check that the model uses its inputs and that gradients are not disabled inside it")
    grads = autograd_grad(scores.sum(), wrt, allow_unused=True)
    return tuple(torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt))


_MEASURED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], int]] = weakref.WeakKeyDictionary()


def _shape_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((tuple(v.shape[1:]), v.dtype, v.device.type) if isinstance(v, Tensor) else type(v).__name__
                 for v in values)


def measure_saved_bytes(spec: ForwardSpec, inputs: tuple[Tensor, ...]) -> int:
    """Bytes the autograd graph saves per row of ``inputs`` (used to size chunks).

    The measurement (two one- and two-row forward passes) is remembered per forward function and per-example
    input shapes, outside the user's objects, so repeated calls on the same model do not pay for it again.
    """
    key = (_shape_key(inputs), _shape_key(spec.args))
    try:
        known = _MEASURED.setdefault(spec.forward_func, {})
    except TypeError:  # not weak-referenceable: measure every time
        known = {}
    if key not in known:
        one = spec.rows(slice(0, 1))

        def run(n: int) -> Tensor:
            leaves = tuple(torch.cat([x[:1]] * n).detach().requires_grad_(True) for x in inputs)
            return one.tiled(n).scores(leaves)

        known[key] = saved_bytes_per_row(run)
    return known[key]


def chunked_gradients(
    spec: ForwardSpec,
    inputs: tuple[Tensor, ...],
    *,
    limit: int | None = None,
    memory_budget: int | None = None,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """:meth:`ForwardSpec.gradients` over the batch in chunks sized by :func:`plan_rows`."""
    batch = inputs[0].shape[0]
    rows = plan_rows(batch, limit=limit, memory_budget=memory_budget, device=inputs[0].device,
                     measure=lambda: measure_saved_bytes(spec, inputs))
    if rows >= batch:
        return spec.gradients(inputs)
    parts = [spec.rows(sl).gradients(tuple(x[sl] for x in inputs)) for sl in chunks(batch, rows)]
    grads = tuple(torch.cat(g) for g in zip(*(p[0] for p in parts)))
    return grads, torch.cat([p[1] for p in parts])
