"""Shared plumbing of the layer methods: chunked layer gradients and evaluations, paths in input space.

Every function works on the flat tuple of layer tensors described by a :class:`~intellego.engines.layers.Layout`
(one entry per tensor, per call, per layer) so the public classes only combine tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.batching import chunks, plan_rows
from ..core.grad import ForwardSpec, measure_saved_bytes
from ..engines.layers import Layout, Site, check_layers, layer_eval, layer_gradients, sites_of
from ..engines.path import walk
from ..errors import IntellegoError
from ._base import LayerAttribution

__all__ = ["LayerMethod", "rows_for", "grads_at", "evals_at", "path_layer_grads"]


class LayerMethod(LayerAttribution):
    """A layer attribution whose layers are checked against the model once, at construction."""

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None) -> None:
        super().__init__(forward_func, layer, device_ids)
        if layer is not None:  # None: set later (TCAV's layer_attr_method)
            check_layers(forward_func, layer)

    @property
    def _many(self) -> bool:
        return isinstance(self.layer, (list, tuple))

    def _sites(self, to_input: bool) -> list[Site]:
        return sites_of(self.layer, to_input)


def rows_for(spec: ForwardSpec, xs: tuple[Tensor, ...], total: int, limit: int | None,
             memory_budget: int | None) -> int:
    """Rows per model call for ``total`` rows of inputs like ``xs`` (the one chunking rule)."""
    return plan_rows(total, limit=limit, memory_budget=memory_budget, device=xs[0].device,
                     measure=lambda: measure_saved_bytes(spec, xs))


def _cat(parts: Sequence[tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    return parts[0] if len(parts) == 1 else tuple(torch.cat(ts) for ts in zip(*parts))


def grads_at(spec: ForwardSpec, sites: Sequence[Site], xs: tuple[Tensor, ...], rows: int) -> tuple[
        tuple[Tensor, ...], tuple[Tensor, ...], Layout]:
    """Layer gradients and activations at ``xs``, computed ``rows`` examples at a time."""
    batch = xs[0].shape[0]
    grads, acts, layout = [], [], None
    for sl in chunks(batch, rows):
        g, a, layout = layer_gradients(spec.rows(sl), sites, tuple(x[sl] for x in xs))
        grads.append(g)
        acts.append(a)
    if layout is None:
        raise IntellegoError("inputs must hold at least one example")
    return _cat(grads), _cat(acts), layout


def evals_at(spec: ForwardSpec, sites: Sequence[Site], xs: tuple[Tensor, ...], rows: int,
             known: Layout | None = None) -> tuple[tuple[Tensor, ...], Layout]:
    """Layer activations at ``xs``, ``rows`` examples per forward (stopping early with a ``known`` layout)."""
    batch = xs[0].shape[0]
    parts, layout = [], None
    for sl in chunks(batch, rows):
        a, layout = layer_eval(spec.rows(sl), sites, tuple(x[sl] for x in xs), known)
        parts.append(a)
    if layout is None:
        raise IntellegoError("inputs must hold at least one example")
    return _cat(parts), layout


def path_layer_grads(spec: ForwardSpec, sites: Sequence[Site], xs: tuple[Tensor, ...], bs: tuple[Tensor, ...],
                     alphas: Sequence[float], rows: int,
                     each: Callable[[int, tuple[Tensor, ...], tuple[Tensor, ...]], None]) -> Layout:
    """Layer gradients and activations at the input-space path points, several steps per model call (the
    path engine's step loop, :func:`intellego.engines.path.walk`, over whole batches).

    ``each(step, grads, acts)`` receives one step's ``(N, ...)`` tensors, in order of the steps.
    """
    batch = xs[0].shape[0]
    seen: list[Layout] = []

    def visit(points: tuple[Tensor, ...], _ex: slice, st: slice) -> None:
        k = st.stop - st.start
        g, a, layout = layer_gradients(spec.tiled(k), sites, points)
        seen.append(layout)
        for j in range(k):
            rows_j = slice(j * batch, (j + 1) * batch)
            each(st.start + j, tuple(t[rows_j] for t in g), tuple(t[rows_j] for t in a))

    walk(visit, bs, xs, alphas, rows, split_examples=False)
    if not seen:
        raise IntellegoError("inputs must hold at least one example")
    return seen[-1]
