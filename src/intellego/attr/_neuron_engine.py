"""A neuron is a read-out of a layer: the model cut at the layer plus a selector turned into a target.

``NeuronX`` runs the primary method ``X`` on :class:`NeuronModel` (the model run up to the chosen call of
the layer, returning its value) with the selector as the target. A *list* of selectors (beyond Captum) is
run in one batched call through :mod:`intellego.attr._fanout`: the batch is stacked once per neuron and each
copy reads its own neuron. Entries with slices (each a sum over its block) go the same way: the cut model then
returns, per row, the ``K`` read-outs of all selectors (:meth:`NeuronPlan.view`, an index set per selector, summed)
and copy ``k``'s target is column ``k``. The selector is parsed up front and checked against the layer's value
inside the method's own first forward pass (no extra forward), before any backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..core.inputs import pack
from ..core.targets import Readout
from ..engines.layers import Site, check_layers, neuron_forward
from ..errors import IntellegoError, ShapeError, describe, require
from ._base import NeuronAttribution
from ._fanout import Fanout, fan_out

__all__ = ["NeuronMethod", "NeuronModel", "NeuronPlan"]

_NAME = "neuron_selector"


class NeuronModel(nn.Module):
    """``model`` cut at ``site``: returns the site's value at call ``layer_call`` (the model is a child, unchanged).

    ``check(value)`` (if given) sees that value before it is returned, so a selector is validated in the first
    forward pass of the method.
    """

    def __init__(self, forward_func: Callable[..., Any], site: Site, *, layer_call: int = 0,
                 check: Callable[[Any], None] | None = None, view: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.model = forward_func if isinstance(forward_func, nn.Module) else None
        self._run = neuron_forward(forward_func, site, layer_call=layer_call, check=check)
        self._view = view

    def forward(self, *args: Any) -> Any:
        value = self._run(*args)
        return value if self._view is None else self._view(value)


class _SliceSum:
    """A selector with slices, or with fewer indices than the layer has dimensions (the trailing dimensions
    taken whole): the selected block of each example, summed (as Captum does for slices)."""

    def __init__(self, selector: tuple[Any, ...]) -> None:
        self.key = (slice(None), *selector)

    def __call__(self, value: Tensor) -> Tensor:
        picked = value[self.key]
        return picked.reshape(picked.shape[0], -1).sum(1)


def _parse(sel: Any, many: bool) -> tuple[Any, ...] | None:
    """An int or int/slice tuple as a tuple; None for a callable (only allowed alone)."""
    if callable(sel) and not isinstance(sel, Tensor):
        if many:
            raise IntellegoError("a list of neuron selectors must hold ints or tuples of ints/slices, not callables")
        return None
    if isinstance(sel, int) and not isinstance(sel, bool):
        return (sel,)
    if isinstance(sel, tuple) and all(isinstance(s, slice) or (isinstance(s, int) and not isinstance(s, bool))
                                      for s in sel):
        return sel
    if isinstance(sel, tuple):
        raise IntellegoError(f"{_NAME} entries must be ints or slices, got {sel!r}")
    raise IntellegoError(f"{_NAME} must be an int, a tuple of ints/slices, a callable or a list of ints/tuples, "
                         f"got {describe(sel)}")


class _CallableSelector(Readout):
    """A callable neuron selector read as Captum reads it: one score per example ``(N,)`` or ``(N, 1)``, or one
    value for the whole batch (a scalar: gradient methods differentiate it as it is; perturbation methods give
    one attribution row, as for a model that returns one value per batch)."""

    def __call__(self, output: Any) -> Tensor:
        scores = self.func(output)  # type: ignore[misc]
        ref = output if isinstance(output, Tensor) else next((t for t in output if isinstance(t, Tensor)), None) \
            if isinstance(output, (tuple, list)) else None
        if isinstance(scores, Tensor) and ref is not None and ref.dim() > 0:
            n = ref.shape[0]
            if scores.shape == (n,):
                return scores
            if scores.shape == (n, 1):
                return scores[:, 0]
            if scores.numel() == 1:
                return scores.reshape(())
        shown = f"shape {tuple(scores.shape)}" if isinstance(scores, Tensor) else describe(scores)
        n_text = "N" if ref is None or ref.dim() == 0 else str(ref.shape[0])
        raise IntellegoError(f"callable {_NAME} must return one score per example, a tensor of shape ({n_text},) or "
                             f"({n_text}, 1), or one value for the whole batch (a scalar), but it returned {shown} "
                             f"for {describe(output)}")


def _check_index(sel: tuple[Any, ...], value: Any, many: bool = False) -> None:
    """``sel`` indexes one example's layer value (messages are built only when raising); a single selector may
    give fewer indices than the layer has dimensions (the rest taken whole and summed), a list may not."""
    if not isinstance(value, Tensor):
        raise IntellegoError(f"{_NAME} {sel!r} cannot index a layer that returns {describe(value)}; pass a "
                             "callable neuron_selector that picks the neuron from the tuple")
    shape = value.shape[1:]
    has_slice = False
    for s in sel:
        has_slice = has_slice or isinstance(s, slice)
    if not (len(sel) == len(shape) or ((has_slice or not many) and len(sel) <= len(shape))):
        more = "" if len(sel) > len(shape) else " (in a list, give every index or a slice)"
        raise ShapeError(f"{_NAME} {sel!r} has {len(sel)} indices but each example's layer value has shape "
                         f"{tuple(shape)}{more}")
    for i, (s, size) in enumerate(zip(sel, shape)):
        if isinstance(s, int) and not -size <= s < size:
            raise IntellegoError(f"{_NAME} {sel!r} is out of range for the layer's per-example shape "
                                 f"{tuple(shape)} (dimension {i} has size {size})")


class NeuronPlan:
    """A parsed neuron selector (or list of them): the target to pass on, and its check against the layer."""

    def __init__(self, selector: Any) -> None:
        self.many = isinstance(selector, list)
        sels = selector if self.many else [selector]
        require(len(sels) > 0, "neuron_selector list must hold at least one neuron")
        parsed = [_parse(s, self.many) for s in sels]
        self.indices = [p for p in parsed if p is not None]
        self.count = len(sels)
        self._checked = False
        self.summed = self.many and any(isinstance(s, slice) for sel in self.indices for s in sel)
        self._sums = [_SliceSum(sel) for sel in self.indices] if self.summed else []
        first = parsed[0]
        self.target: Any
        if first is None:
            self.target = _CallableSelector(None, None, selector, _NAME)
        elif any(isinstance(s, slice) for s in first) or not self.many:
            self.target = _SliceSum(first)  # also reads a tuple with fewer indices than the layer's dimensions
        else:
            self.target = first

    def check(self, value: Any) -> None:
        """Validate every selector against the layer's value (once per plan)."""
        if self._checked:
            return
        for sel in self.indices:
            _check_index(sel, value, self.many)
        self._checked = True

    def view(self, value: Any) -> Any:
        """What the read-out indexes: the layer's value, or for a list with slices ``(rows, K)``, column ``k``
        the sum of selector ``k``'s block (each row holds all ``K`` sums; its copy's target picks one)."""
        if not self.summed:
            return value
        return torch.stack([s(value) for s in self._sums], 1)

    def fanout(self, batch: int) -> Fanout:
        """The stacked read-out of a list of selectors for a batch of ``batch`` examples (copy ``k`` reads
        selector ``k``, or column ``k`` of :meth:`view` for a list with slices)."""
        return Fanout.of(list(range(self.count)) if self.summed else self.indices, batch, _NAME)


def stacked_target(plan: NeuronPlan, batch: int) -> Any:
    """The target for ``batch`` examples: the single selector, or the fan-out's rows for a list."""
    return plan.fanout(batch).rows if plan.many else plan.target


class NeuronMethod(NeuronAttribution):
    """A neuron attribution on one layer (and one of its calls), checked against the model at construction."""

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None, *,
                 layer_call: int = 0) -> None:
        super().__init__(forward_func, layer, device_ids)
        require(not isinstance(layer, (list, tuple)), "neuron methods take one layer, not a list")
        if not isinstance(layer_call, int) or isinstance(layer_call, bool):
            raise IntellegoError(f"layer_call must be an int (0: the layer's first call, -1: its last), "
                                 f"got {describe(layer_call)}")
        check_layers(forward_func, layer)
        self.layer_call = layer_call

    def _cut(self, to_input: bool, plan: NeuronPlan | None = None) -> NeuronModel:
        """The model cut at the chosen call of the layer; ``plan`` checks its selector in the first forward."""
        return NeuronModel(self.forward_func, Site(self.layer, to_input), layer_call=self.layer_call,
                           check=None if plan is None else plan.check,
                           view=None if plan is None or not plan.summed else plan.view)

    def _run(self, inputs: Any, plan: NeuronPlan, baselines: Any, args: Any, call: Any, *,
             stack_baselines: bool = True) -> Any:
        """``call(inputs, baselines, target, args)`` with the neuron read-out(s): one call for a list of neurons.

        Per-example ``baselines`` are stacked with the inputs for several neurons; a baseline
        *distribution* (``stack_baselines=False``) is shared by all copies.
        """
        if not plan.many:
            return call(inputs, baselines, plan.target, args)
        xs, _ = pack(inputs)
        return fan_out(plan.fanout(xs[0].shape[0]), call, inputs, baselines, args,
                       per_example_baselines=stack_baselines)
