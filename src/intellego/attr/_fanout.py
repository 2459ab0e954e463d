"""Several read-outs in one call: the batch stacked once per read-out, results split to ``(K, N, ...)``.

This is the one batched read-out mechanism. A list of neuron selectors and the keyword-only ``targets=``
of the layer and gradient methods both become ``K`` index rows per example (:func:`stack_targets`); the
inputs, per-example baselines and batched extra arguments are stacked ``K`` times copy-major, the method
runs once on the ``K * N`` rows with those rows as its (per-example) target, and every tensor of the
result is split back into ``(K, N, ...)``. ``result[k]`` equals the call with the ``k``-th read-out alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from ..core.grad import ForwardSpec
from ..core.inputs import pack, pack_args, pack_baselines, unpack
from ..core.targets import Readout, stack_targets
from ..errors import IntellegoError, require

__all__ = ["Fanout", "fan_out", "fan_out_targets"]

Call = Callable[[Any, Any, Any, Any], Any]


class Fanout:
    """``K`` read-outs of a batch of ``batch`` examples, as ``(K * batch, d)`` index rows (copy-major)."""

    def __init__(self, rows: Tensor, batch: int) -> None:
        require(batch > 0, "inputs must hold at least one example")
        self.rows, self.batch, self.count = rows, batch, rows.shape[0] // batch

    @classmethod
    def of(cls, targets: Any, batch: int, name: str = "targets") -> Fanout:
        return cls(stack_targets(targets, batch, name), batch)

    def tile(self, values: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Per-example tensors stacked ``K`` times, one copy after another."""
        return tuple(v.repeat(self.count, *[1] * (v.dim() - 1)) for v in values)

    def tile_args(self, args: Any) -> tuple[Any, ...]:
        """Extra forward arguments for the stacked batch (batched tensors follow their examples)."""
        return ForwardSpec(_no_forward, pack_args(args), _NO_READOUT, self.batch).tiled(self.count).args

    def split(self, result: Any) -> Any:
        """Every tensor of a (nested tuple / list) result reshaped from ``(K * M, ...)`` to ``(K, M, ...)``."""
        if isinstance(result, Tensor):
            return result.reshape(self.count, result.shape[0] // self.count, *result.shape[1:]) \
                if result.dim() > 0 else result
        if isinstance(result, (tuple, list)):
            return type(result)(self.split(r) for r in result)
        return result


def fan_out(fan: Fanout, call: Call, inputs: Any, baselines: Any, args: Any, *,
            per_example_baselines: bool = True) -> Any:
    """``call(inputs, baselines, target, additional_forward_args)`` once on the stacked batch, split per read-out.

    Per-example ``baselines`` are stacked with the inputs; ``None`` and numbers broadcast as they are, and a
    baseline *distribution* (``per_example_baselines=False``) is shared by all copies.
    """
    xs, was_tuple = pack(inputs)
    if per_example_baselines and baselines is not None and not isinstance(baselines, (int, float)):
        baselines = unpack(fan.tile(pack_baselines(baselines, xs)), was_tuple)
    return fan.split(call(unpack(fan.tile(xs), was_tuple), baselines, fan.rows, fan.tile_args(args)))


def fan_out_targets(targets: Any, target: Any, call: Call, inputs: Any, baselines: Any, args: Any, *,
                    per_example_baselines: bool = True) -> Any:
    """The keyword-only ``targets=`` of a method: one batched call for ``len(targets)`` targets."""
    if target is not None:
        raise IntellegoError("pass either target= (one target, Captum's argument) or targets= (several targets "
                             "in one batched call), not both")
    xs, _ = pack(inputs)
    fan = Fanout.of(targets, xs[0].shape[0])
    return fan_out(fan, call, inputs, baselines, args, per_example_baselines=per_example_baselines)


def _no_forward(*_args: Any) -> Any:
    raise IntellegoError("internal: this spec only tiles arguments")


def _no_readout(_output: Any) -> Tensor:
    raise IntellegoError("internal: this spec has no read-out")


_NO_READOUT = Readout(None, None, _no_readout)
