"""Layer sites: read, differentiate and substitute a layer's activations inside a model's forward pass.

A *site* is a module plus whether we look at its input or its output. Everything a layer or neuron method
needs is one of four operations on sites, all run inside a :class:`~intellego.core.hooks.HookScope`:

- :func:`layer_eval`: the activations (cloned, so later in-place operations cannot change them);
- :func:`layer_gradients`: activations and the gradient of the read-out with respect to them;
- :func:`layer_spec`: a :class:`~intellego.core.grad.ForwardSpec` whose *inputs are the activations*
  (the model inputs ride along as batched extra arguments), so any primary method runs "on the layer";
- :func:`neuron_forward`: the model cut at the layer, returning its activations, so a neuron is a read-out.

A module that runs several times in one forward has one set of activations per call; each call is
substituted and differentiated on its own (Captum keeps only one call). :class:`Layout` records how the
flat tuple of tensors the engines work on maps back to calls and tuple outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope, as_tuple
from ..core.inputs import unpack
from ..errors import IntellegoError, describe, require

__all__ = ["Site", "Layout", "sites_of", "check_layers", "layer_eval", "layer_gradients", "layer_spec",
           "neuron_forward", "pick_call", "restructure"]


@dataclass(frozen=True)
class Site:
    """A module's output (or, with ``to_input``, its positional inputs)."""

    module: nn.Module
    to_input: bool = False

    @property
    def name(self) -> str:
        return f"layer {type(self.module).__name__}" + (" (input)" if self.to_input else "")

    def hook(self, scope: HookScope, fn: Callable[[int, Any], Any | None]) -> None:
        """Call ``fn(call_index, value)`` at every call; a non-None result replaces the value."""
        calls = [0]

        def on_output(_m: nn.Module, _args: Any, out: Any) -> Any:
            calls[0] += 1
            return fn(calls[0] - 1, out)

        def on_input(_m: nn.Module, args: tuple[Any, ...]) -> Any:
            calls[0] += 1
            new = fn(calls[0] - 1, args if len(args) != 1 else args[0])
            return None if new is None else as_tuple(new)

        if self.to_input:
            scope.forward_pre_hook(self.module, on_input)
        else:
            scope.forward_hook(self.module, on_output)


@dataclass(frozen=True)
class Layout:
    """Per site, per call: how many tensors the value has and whether it was a tuple."""

    calls: tuple[tuple[tuple[int, bool], ...], ...]

    @property
    def count(self) -> int:
        return sum(n for site in self.calls for n, _ in site)

    def split(self, flat: Sequence[Any]) -> list[Any]:
        """Rebuild one result per site: the call's structure, or a tuple over calls when it ran several times."""
        out, i = [], 0
        for site in self.calls:
            per_call = []
            for n, was_tuple in site:
                per_call.append(unpack(list(flat[i:i + n]), was_tuple))
                i += n
            out.append(per_call[0] if len(per_call) == 1 else tuple(per_call))
        return out


def restructure(layout: Layout, flat: Sequence[Any], many: bool) -> Any:
    """A list over layers when the user passed a list of layers, else the one layer's result."""
    parts = layout.split(flat)
    return parts if many else parts[0]


def sites_of(layer: Any, to_input: bool) -> list[Site]:
    return [Site(m, to_input) for m in (layer if isinstance(layer, (list, tuple)) else [layer])]


def check_layers(forward_func: Any, layer: Any) -> None:
    """When the forward function is a module, every layer must be one of its submodules."""
    if not isinstance(forward_func, nn.Module):
        return
    owned = {id(m) for m in forward_func.modules()}
    for m in layer if isinstance(layer, (list, tuple)) else [layer]:
        require(id(m) in owned, f"layer {type(m).__name__} is not a submodule of the model "
                f"{type(forward_func).__name__}; pass a module from model.modules()")


def site_tensors(site: Site, call: int, value: Any) -> tuple[Tensor, ...]:
    values = as_tuple(value)
    for j, v in enumerate(values):
        if not isinstance(v, Tensor):
            raise IntellegoError(f"{site.name} call {call} produced {describe(v)} at position {j}; layer "
                                 "attribution needs tensors (use attribute_to_layer_input or another layer)")
    return values


class _Recorder:
    """Per-site lists of per-call tensors, plus the layout, filled in by hooks."""

    def __init__(self, sites: Sequence[Site]) -> None:
        self.sites = sites
        self.values: list[list[tuple[Tensor, ...]]] = [[] for _ in sites]
        self.kinds: list[list[tuple[int, bool]]] = [[] for _ in sites]

    def add(self, i: int, value: Any, tensors: tuple[Tensor, ...]) -> None:
        self.values[i].append(tensors)
        self.kinds[i].append((len(tensors), isinstance(value, tuple)))

    def finish(self) -> tuple[tuple[Tensor, ...], Layout]:
        for site, vals in zip(self.sites, self.values):
            if not vals:
                raise IntellegoError(f"{site.name} did not run in the forward pass: no activations to attribute "
                                     "(check that the layer is used by the model's forward for these inputs)")
        flat = tuple(t for vals in self.values for call in vals for t in call)
        return flat, Layout(tuple(tuple(k) for k in self.kinds))


class _Stop(Exception):
    """Raised from a hook to end a forward pass once the layer has run."""


def layer_eval(spec: ForwardSpec, sites: Sequence[Site], inputs: tuple[Tensor, ...],
               known: Layout | None = None) -> tuple[tuple[Tensor, ...], Layout]:
    """The sites' activations for ``inputs`` (no gradients), cloned at each call.

    With the ``known`` layout of an earlier pass over the same model, the forward pass stops as soon as every
    site has run as often as it did then (the rest of the model cannot change the activations).
    """
    rec = _Recorder(sites)
    left = [sum(1 for _ in calls) for calls in known.calls] if known is not None else None
    with HookScope() as scope, torch.no_grad():
        for i, site in enumerate(sites):
            def grab(call: int, value: Any, i: int = i, site: Site = site) -> None:
                rec.add(i, value, tuple(t.clone() for t in site_tensors(site, call, value)))
                if left is not None:
                    left[i] -= 1
                    if not any(n > 0 for n in left):
                        raise _Stop
            site.hook(scope, grab)
        with contextlib.suppress(_Stop):
            spec.output(inputs)
    return rec.finish()


def layer_gradients(spec: ForwardSpec, sites: Sequence[Site], inputs: tuple[Tensor, ...]) -> tuple[
        tuple[Tensor, ...], tuple[Tensor, ...], Layout]:
    """Gradients of the read-out w.r.t. the sites' activations, and the activations, at ``inputs``.

    Each call's value is routed through a private copy that nothing else can modify in place, so the
    gradient is exactly the one with respect to that call. Copies stay connected to the graph, so with
    several layers an upstream layer's gradient includes its effect through the downstream ones.

    Nothing before the first site call can depend on a site, so that part of the forward pass runs without
    recording a graph: gradients are switched on in the hook of the first call (the ``no_grad`` scope
    restores the caller's mode on exit).
    """
    rec = _Recorder(sites)
    with HookScope() as scope, torch.no_grad():
        for i, site in enumerate(sites):
            def swap(call: int, value: Any, i: int = i, site: Site = site) -> Any:
                torch.set_grad_enabled(True)
                nodes = tuple(_node(t) for t in site_tensors(site, call, value))
                rec.add(i, value, nodes)
                return unpack([t.clone() for t in nodes], isinstance(value, tuple))
            site.hook(scope, swap)
        scores = spec.scores(tuple(x.detach() for x in inputs))
    leaves, layout = rec.finish()
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        grads = grads_of(scores, leaves)
    return grads, tuple(t.detach() for t in leaves), layout


def _node(t: Tensor) -> Tensor:
    """A copy of ``t`` that requires grad: connected to ``t``'s graph when it has one, else a new leaf."""
    node = t.clone()
    return node if node.requires_grad else node.requires_grad_(True)


class LayerAsInput:
    """``f(*activations, *model_inputs, *args)``: the model with the sites' values replaced by ``activations``."""

    def __init__(self, forward_func: Callable[..., Any], sites: Sequence[Site], layout: Layout,
                 n_inputs: int) -> None:
        self.forward_func, self.sites, self.layout, self.n_inputs = forward_func, sites, layout, n_inputs

    def __call__(self, *flat: Any) -> Any:
        count = self.layout.count
        acts, rest = flat[:count], flat[count:]
        offsets, i = [], 0
        for site_calls in self.layout.calls:
            starts = []
            for n, _ in site_calls:
                starts.append((i, n))
                i += n
            offsets.append(starts)
        with HookScope() as scope:
            for site, starts in zip(self.sites, offsets):
                def put(call: int, value: Any, site: Site = site, starts: list[tuple[int, int]] = starts) -> Any:
                    if call >= len(starts):
                        raise IntellegoError(f"{site.name} ran {call + 1} times in this forward pass but "
                                             f"{len(starts)} time(s) when its activations were recorded")
                    a, n = starts[call]
                    return unpack([t.clone() for t in acts[a:a + n]], isinstance(value, tuple))
                site.hook(scope, put)
            return self.forward_func(*rest)


def layer_spec(spec: ForwardSpec, sites: Sequence[Site], layout: Layout, inputs: tuple[Tensor, ...]) -> ForwardSpec:
    """A spec whose inputs are the sites' activations; the model inputs follow as batched extra arguments."""
    fn = LayerAsInput(spec.forward_func, sites, layout, len(inputs))
    return ForwardSpec(fn, (*inputs, *spec.args), spec.readout, spec.batch_size)


class _NeuronForward:
    """``f(*inputs, *args)``: run the model up to call ``layer_call`` of the site and return its value.

    A non-negative ``layer_call`` stops the forward pass right there (nothing after the layer runs, and no
    copy is needed); a negative one counts from the end, so the whole forward runs and each call is copied.
    """

    def __init__(self, forward_func: Callable[..., Any], site: Site, layer_call: int,
                 check: Callable[[Any], None] | None) -> None:
        self.forward_func, self.site, self.layer_call, self.check = forward_func, site, layer_call, check

    def __call__(self, *args: Any) -> Any:
        box: list[Any] = []
        want, site, check = self.layer_call, self.site, self.check
        with HookScope() as scope:
            def grab(call: int, value: Any) -> None:
                if want < 0 or call == want:
                    tensors = site_tensors(site, call, value)
                    if check is not None:
                        check(value)
                    box.append(value if want >= 0 else unpack([t.clone() for t in tensors],
                                                               isinstance(value, tuple)))
                    if want >= 0:
                        raise _Stop
            site.hook(scope, grab)
            try:
                self.forward_func(*args)
            except _Stop:
                return box[0]
        return self._pick(box)

    def _pick(self, box: list[Any]) -> Any:
        return pick_call(box, self.layer_call, self.site)


def pick_call(values: list[Any], layer_call: int, site: Site) -> Any:
    """The value of call ``layer_call`` from what a hook kept: only that call when ``layer_call >= 0``, else all."""
    if layer_call >= 0 and values:
        return values[0]
    if layer_call < 0 and len(values) >= -layer_call:
        return values[layer_call]
    if not values:
        raise IntellegoError(f"{site.name} did not run in the forward pass: no neuron to attribute"
                             if layer_call in (0, -1) else
                             f"{site.name} ran fewer than {abs(layer_call) + (layer_call >= 0)} time(s) in the "
                             f"forward pass, so layer_call={layer_call} selects no call")
    raise IntellegoError(f"{site.name} ran {len(values)} time(s) in the forward pass, so layer_call={layer_call} "
                         "selects no call")


def neuron_forward(forward_func: Callable[..., Any], site: Site, *, layer_call: int = 0,
                   check: Callable[[Any], None] | None = None) -> Callable[..., Any]:
    """The model cut at ``site``: returns the site's value at call ``layer_call`` (0: the first, -1: the last)."""
    return _NeuronForward(forward_func, site, layer_call, check)


def require_batch_first(acts: tuple[Tensor, ...], batch: int, what: str) -> None:
    for t in acts:
        if t.dim() == 0 or t.shape[0] != batch:
            raise IntellegoError(f"{what}: a layer value of shape {tuple(t.shape)} does not have the batch "
                                 f"({batch}) as its first dimension")
