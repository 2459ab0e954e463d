"""A neuron is a read-out of a layer: the model cut at the layer plus a selector turned into a target.

``NeuronX`` runs the primary method ``X`` on :class:`NeuronModel` (the model stopped at the layer, returning
its value) with the selector as the target. A *list* of int / int-tuple selectors (beyond Captum) is run in
one batched call: the batch is stacked once per neuron and each copy reads its own neuron.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..core.grad import ForwardSpec
from ..core.inputs import pack, pack_args, unpack
from ..core.targets import Readout
from ..errors import IntellegoError, describe, require
from ._site import Site, neuron_forward

__all__ = ["NeuronModel", "NeuronPlan", "plan_neurons"]


class NeuronModel(nn.Module):
    """``model`` cut at ``site``: returns the site's value at its first call (the model is a child, unchanged)."""

    def __init__(self, forward_func: Callable[..., Any], site: Site, *, stop: bool = True) -> None:
        super().__init__()
        self.model = forward_func if isinstance(forward_func, nn.Module) else None
        self._run = neuron_forward(forward_func, site, stop=stop)

    def forward(self, *args: Any) -> Any:
        return self._run(*args)


class _SliceSum:
    """A selector with slices: the selected block of each example, summed (as Captum does)."""

    def __init__(self, selector: tuple[Any, ...]) -> None:
        self.selector = selector

    def __call__(self, value: Tensor) -> Tensor:
        picked = value[(slice(None), *self.selector)]
        return picked.reshape(picked.shape[0], -1).sum(1)


def _check_index(sel: tuple[Any, ...], value: Any, name: str) -> None:
    require(isinstance(value, Tensor), f"{name} {sel!r} cannot index a layer that returns {describe(value)}; "
            "pass a callable neuron_selector that picks the neuron from the tuple")
    shape = tuple(value.shape[1:])
    has_slice = any(isinstance(s, slice) for s in sel)
    for s in sel:
        require(isinstance(s, slice) or (isinstance(s, int) and not isinstance(s, bool)),
                f"{name} entries must be ints or slices, got {sel!r}")
    require(len(sel) == len(shape) or (has_slice and len(sel) <= len(shape)),
            f"{name} {sel!r} has {len(sel)} indices but each example's layer value has shape {shape}")
    for i, (s, size) in enumerate(zip(sel, shape)):
        if isinstance(s, int):
            require(-size <= s < size, f"{name} {sel!r} is out of range for the layer's per-example shape "
                    f"{shape} (dimension {i} has size {size})")


class NeuronPlan:
    """Validated neuron selector(s): the target to pass to a primary method, and how to tile for several."""

    def __init__(self, selector: Any, value: Any) -> None:
        self.many = isinstance(selector, list)
        sels = selector if self.many else [selector]
        require(len(sels) > 0, "neuron_selector list must hold at least one neuron")
        self.count = len(sels)
        targets: list[Any] = []
        for sel in sels:
            if callable(sel) and not isinstance(sel, Tensor):
                require(not self.many, "a list of neuron selectors must hold ints or tuples of ints, not callables")
                targets.append(sel)
                continue
            if isinstance(sel, int) and not isinstance(sel, bool):
                sel = (sel,)
            if not isinstance(sel, tuple):
                raise IntellegoError(f"neuron_selector must be an int, a tuple of ints/slices, a callable or a "
                                     f"list of ints/tuples, got {describe(sel)}")
            _check_index(sel, value, "neuron_selector")
            if any(isinstance(s, slice) for s in sel):
                require(not self.many, "a list of neuron selectors cannot hold slices; pass one selector at a time")
                targets.append(_SliceSum(sel))
            else:
                targets.append(sel)
        self.targets = targets

    def target(self, batch: int) -> Any:
        """One target for the (stacked) batch: the selector, or one index row per stacked example."""
        if not self.many:
            return self.targets[0]
        rows = [t for t in self.targets for _ in range(batch)]
        return torch.tensor(rows, dtype=torch.long)

    def stack(self, values: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Inputs (or per-example baselines) stacked once per neuron."""
        k = self.count if self.many else 1
        return values if k == 1 else tuple(v.repeat(k, *[1] * (v.dim() - 1)) for v in values)

    def stack_args(self, args: Any, batch: int) -> Any:
        if not self.many:
            return args
        spec = ForwardSpec(lambda *a: None, pack_args(args), _NO_READOUT, batch)
        return spec.tiled(self.count).args

    def unstack(self, result: Any, batch: int) -> Any:
        """Results for the stacked batch as ``(neurons, batch, ...)`` tensors."""
        if not self.many:
            return result
        parts, was_tuple = pack(result, "attributions")
        return unpack([p.reshape(self.count, batch, *p.shape[1:]) for p in parts], was_tuple)


def plan_neurons(model: NeuronModel, selector: Any, inputs: Any, additional_forward_args: Any) -> NeuronPlan:
    """Validate ``selector`` against the layer's value on the first example (a cheap, early-stopped forward)."""
    xs, _ = pack(inputs)
    require(xs[0].shape[0] > 0, "inputs must hold at least one example")
    spec = ForwardSpec.build(model, None, additional_forward_args, xs[0].shape[0]).rows(slice(0, 1))
    with torch.no_grad():
        value = spec.output(tuple(x[:1] for x in xs))
    return NeuronPlan(selector, value)


def _no_readout(output: Any) -> Tensor:
    raise IntellegoError("internal: this spec has no read-out")


_NO_READOUT = Readout(None, None, _no_readout)
