"""Rules applied on the autograd graph a forward pass left behind: for rules that only change how the gradient
passes one kind of node (Guided Backprop and Deconvolution at ReLUs).

The forward pass runs as it is, with no function mode (see :mod:`intellego.engines.rules`, which sees every
operation as it runs and costs a Python call per operation). Afterwards the graph is walked from the read-out to
the nodes created during the call, and each node of a kind the rule map names gets a gradient hook. Every ReLU
leaves a ``ReluBackward0`` node, whether it was an ``nn.ReLU`` (in place or not, used several times) or a
functional ``torch.relu`` / ``F.relu`` / ``x.relu()``; an in-place operation on a view hides the node it
rewrote inside a ``CopySlices`` node, so a graph holding one is refused (``None``) and the caller uses the
function-mode engine instead.

Example:
    >>> import torch
    >>> from intellego.core.grad import ForwardSpec
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> spec = ForwardSpec.build(model, None, None, 2)
    >>> clamp = NodeRule(pre=lambda grads: (grads[0].clamp(min=0),))
    >>> graph_gradients(spec, (torch.randn(2, 3),), {"ReluBackward0": clamp})[0].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope

__all__ = ["NodeRule", "graph_gradients"]

_HIDING = "torch::autograd::CopySlices"  # an in-place operation on a view: the node it rewrote is inside, out of reach


@dataclass(frozen=True)
class NodeRule:
    """What a node's gradient goes through: ``pre(grad_outputs)`` before the node runs, ``post(grad_inputs,
    grad_outputs)`` after it (either may return replacements)."""

    pre: Callable[[tuple[Tensor, ...]], Any] | None = None
    post: Callable[[tuple[Tensor, ...], tuple[Tensor, ...]], Any] | None = None


def _next_sequence_nr() -> int:
    """A sequence number no node created before this call exceeds (nodes are numbered in creation order)."""
    probe = torch.zeros((), requires_grad=True).view(())
    return int(probe.grad_fn._sequence_nr())  # type: ignore[union-attr]


def _nodes(root: Any, since: int, kinds: dict[str, NodeRule]) -> list[tuple[Any, NodeRule]] | None:
    """The nodes of ``kinds`` among those created since ``since`` and reachable from ``root``; None when one
    of them is a ``CopySlices`` (the graph hides nodes)."""
    found: list[tuple[Any, NodeRule]] = []
    seen, stack = {root}, [root]
    while stack:
        node = stack.pop()
        name = node.name()
        if name == _HIDING:
            return None
        rule = kinds.get(name)
        if rule is not None:
            found.append((node, rule))
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen and nxt._sequence_nr() >= since:
                seen.add(nxt)
                stack.append(nxt)
    return found


def graph_gradients(spec: ForwardSpec, inputs: tuple[Tensor, ...],
                    kinds: dict[str, NodeRule]) -> tuple[Tensor, ...] | None:
    """Gradients of ``spec``'s read-out w.r.t. ``inputs`` with the nodes named in ``kinds`` (by
    ``node.name()``) passing their gradient through their rule; None when the graph hides nodes (see the module
    docstring): the caller then runs the function-mode engine. Every hook is removed on return or error."""
    with HookScope() as scope, torch.enable_grad():
        leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
        since = _next_sequence_nr()
        scores = spec.readout(spec.output(leaves))
        if scores.grad_fn is not None:
            found = _nodes(scores.grad_fn, since, kinds)
            if found is None:
                return None
            for node, rule in found:
                if rule.pre is not None:
                    scope.node_hook(node, rule.pre, pre=True)
                if rule.post is not None:
                    scope.node_hook(node, rule.post, pre=False)
        return grads_of(scores, leaves)
