"""Layer sites: read, differentiate and substitute a layer's activations inside a model's forward pass.

A *site* (:class:`~intellego.core.sites.Site`) is a module plus whether we look at its input or its output, and
which call. Everything a layer or neuron method needs is one of four operations on sites, each a
:class:`~intellego.core.sites.Tap` registered with ``HookScope.at``:

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
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope
from ..core.inputs import unpack
from ..core.sites import Site, Stop, Tap, copies
from ..errors import IntellegoError, require

__all__ = ["Site", "Layout", "sites_of", "check_layers", "layer_eval", "layer_gradients", "layer_spec",
           "neuron_forward", "pick_call", "restructure", "LayerAsInput"]


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


def _finish(taps: Sequence[Tap]) -> tuple[tuple[Tensor, ...], Layout]:
    """The taps' kept tensors, flat (per site, per call), and their layout."""
    for tap in taps:
        if not tap.values:
            raise IntellegoError(f"{tap.site.name} did not run in the forward pass: no activations to attribute "
                                 "(check that the layer is used by the model's forward for these inputs)")
    flat = tuple(t for tap in taps for call in tap.values for t in call)
    return flat, Layout(tuple(tuple(tap.kinds) for tap in taps))


def layer_eval(spec: ForwardSpec, sites: Sequence[Site], inputs: tuple[Tensor, ...],
               known: Layout | None = None) -> tuple[tuple[Tensor, ...], Layout]:
    """The sites' activations for ``inputs`` (no gradients), cloned at each call.

    With the ``known`` layout of an earlier pass over the same model, the forward pass stops as soon as every
    site has run as often as it did then (the rest of the model cannot change the activations).
    """
    left = [len(calls) for calls in known.calls] if known is not None else []

    def stop(i: int) -> Callable[[], bool]:
        def done() -> bool:  # every site has run as often as in the known pass
            left[i] -= 1
            return not any(n > 0 for n in left)
        return done

    taps = [Tap(site, keep=torch.clone, stop=None if known is None else stop(i)) for i, site in enumerate(sites)]
    with HookScope() as scope, torch.no_grad():
        for tap in taps:
            scope.at(tap.site, tap)
        with contextlib.suppress(Stop):
            spec.output(inputs)
    return _finish(taps)


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
    taps = [Tap(site, keep=_node, feed=copies) for site in sites]
    with HookScope() as scope, torch.no_grad():
        for tap in taps:
            scope.at(tap.site, tap)
        scores = spec.scores(tuple(x.detach() for x in inputs))
    leaves, layout = _finish(taps)
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        grads = grads_of(scores, leaves)
    return grads, tuple(t.detach() for t in leaves), layout


def _node(t: Tensor) -> Tensor:
    """A copy of ``t`` that requires grad: connected to ``t``'s graph when it has one, else a new leaf (the part
    of the forward pass before the first site call runs without recording a graph; from here on it does)."""
    torch.set_grad_enabled(True)
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
                scope.at(site, Tap(site, feed=_replay(site, starts, acts), record=False))
            return self.forward_func(*rest)


def _replay(site: Site, starts: list[tuple[int, int]], acts: tuple[Any, ...]) -> Callable[..., list[Tensor]]:
    """A ``feed``: call ``i`` of the site gets (copies of) the ``i``-th recorded tensors from ``acts``."""
    def feed(call: int, _kept: tuple[Tensor, ...]) -> list[Tensor]:
        if call >= len(starts):
            raise IntellegoError(f"{site.name} ran {call + 1} times in this forward pass but "
                                 f"{len(starts)} time(s) when its activations were recorded")
        a, n = starts[call]
        return [t.clone() for t in acts[a:a + n]]
    return feed


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
        self.forward_func, self.layer_call, self.check = forward_func, layer_call, check
        self.site = replace(site, call=layer_call)

    def __call__(self, *args: Any) -> Any:
        want = self.layer_call
        tap = Tap(self.site, keep=None if want >= 0 else torch.clone, stop=lambda: want >= 0, check=self.check)
        with HookScope() as scope:
            scope.at(self.site, tap)
            try:
                self.forward_func(*args)
            except Stop:
                return tap.value(0)
        return self._pick([tap.value(i) for i in range(len(tap.values))])

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
