"""The Integrated Gradients family at a layer or a neuron: ``LayerIntegratedGradients``, ``InternalInfluence``,
``LayerConductance``, ``NeuronIntegratedGradients``, ``NeuronConductance`` (the primary method is in
:mod:`intellego.attr.integrated_gradients`).

Each integrates gradients along the input path ``baseline -> input`` with the quadrature rule ``method``
(:func:`intellego.engines.path.integrate`): Layer IG with the layer's values as the path's ends (the primary
method on :func:`~intellego.engines.layers.layer_spec`), internal influence and conductance with the path in
input space read at the layer, the neuron variants with the neuron as the read-out. The conventions every
layer and neuron method shares are described on :class:`~intellego.attr.LayerAttribution` and
:class:`~intellego.attr.NeuronAttribution`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec, autograd_grad, grads_of, use_grad_kwargs
from ..core.hooks import HookScope
from ..core.inputs import pack, pack_baselines, require_float, unpack
from ..core.sites import Tap
from ..core.targets import Readout, make_readout
from ..engines.layers import Site, layer_eval, layer_gradients, layer_spec, pick_call, require_batch_first, restructure
from ..engines.path import integrate, quadrature
from ._base import GradientAttribution, convergence_delta, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod, path_layer_grads, rows_for
from ._neuron_engine import NeuronMethod, NeuronPlan
from .integrated_gradients import IntegratedGradients, path_attributions

__all__ = ["LayerIntegratedGradients", "InternalInfluence", "LayerConductance", "NeuronIntegratedGradients",
           "NeuronConductance"]


class LayerIntegratedGradients(LayerMethod, GradientAttribution):
    """Integrated Gradients with the layer's activations as the input (one layer or a list of layers).

    The layer's values for ``inputs`` and ``baselines`` are the path's ends; the model runs from the real
    inputs with the layer's value replaced by each path point. Works with integer token inputs when the
    layer is an embedding. With a list of layers, all are interpolated together.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerIntegratedGradients
        >>> emb = torch.nn.Embedding(10, 4)
        >>> model = torch.nn.Sequential(emb, torch.nn.Flatten(), torch.nn.Linear(12, 1))
        >>> tokens = torch.tensor([[1, 2, 3]])
        >>> attr, delta = LayerIntegratedGradients(model, emb).attribute(tokens, return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-5)
        (torch.Size([1, 3, 4]), True)
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
                  grad_kwargs: dict[str, Any] | None = None, *, targets: list[Any] | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value(s); ``(attributions, delta)`` when asked.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, n_steps, method, internal_batch_size, return_convergence_delta, attribute_to_layer_input,
                grad_kwargs, memory_budget=memory_budget), inputs, baselines, additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        bs = pack_baselines(baselines, xs)
        quadrature(method, n_steps)
        n = xs[0].shape[0]
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, n)
        sites = self._sites(attribute_to_layer_input)
        both, layout = layer_eval(spec.tiled(2), sites, tuple(torch.cat([x, b]) for x, b in zip(xs, bs)))
        require_batch_first(both, 2 * n, "LayerIntegratedGradients")
        ends, starts = tuple(t[:n] for t in both), tuple(t[n:] for t in both)
        lspec = layer_spec(spec, sites, layout, xs)
        grads = path_attributions(lspec, ends, starts, n_steps, method, internal_batch_size, memory_budget)
        attrs = tuple(g * (e - s) for g, e, s in zip(grads, ends, starts)) if self._multiply_by_inputs else grads
        result = restructure(layout, attrs, self._many)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(spec, attrs, bs, xs)


class InternalInfluence(LayerMethod, GradientAttribution):
    """Internal influence (Leino et al., 2018): layer gradients averaged along the input path ``b -> x``.

    Example:
        >>> import torch
        >>> from intellego.attr import InternalInfluence
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        >>> attr = InternalInfluence(model, model[0]).attribute(torch.randn(2, 3), n_steps=8)
        >>> torch.allclose(attr, model[1].weight.expand(2, 4))
        True
    """

    @public_call
    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  attribute_to_layer_input: bool = False, grad_kwargs: dict[str, Any] | None = None, *,
                  targets: list[Any] | None = None, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Path-averaged gradients at the layer, shaped like the layer's value.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, n_steps, method, internal_batch_size, attribute_to_layer_input, grad_kwargs,
                memory_budget=memory_budget), inputs, baselines, additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        require_float(xs)
        bs = pack_baselines(baselines, xs)
        quadrature(method, n_steps)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        rows = rows_for(spec, xs, xs[0].shape[0] * n_steps, internal_batch_size, memory_budget)
        sites, seen = self._sites(attribute_to_layer_input), []

        def grad_fn(points: tuple[Tensor, ...], ex: slice, k: int) -> tuple[Tensor, ...]:
            g, _, layout = layer_gradients(spec.rows(ex).tiled(k), sites, points)
            seen.append(layout)
            return g

        totals = integrate(grad_fn, bs, xs, n_steps, method, rows)
        return restructure(seen[-1], totals, self._many)


class LayerConductance(LayerMethod, GradientAttribution):
    """Layer conductance (Dhamdhere et al., 2018): the flow of IG through each unit of the layer.

    Sums ``dF/dL(x_k) * (L(x_{k+1}) - L(x_k))`` over ``n_steps + 1`` points of the rule ``method`` on the
    input path, as Captum does; summed over the layer it approximates ``F(x) - F(baseline)``.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerConductance
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        >>> x = torch.randn(2, 3)
        >>> attr, delta = LayerConductance(model, model[1]).attribute(x, n_steps=200, method="riemann_trapezoid",
        ...                                                           return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-3)
        (torch.Size([2, 4]), True)
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
                  grad_kwargs: dict[str, Any] | None = None, *, targets: list[Any] | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Conductance of every unit of the layer; ``(attributions, delta)`` when asked.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, n_steps, method, internal_batch_size, return_convergence_delta, attribute_to_layer_input,
                grad_kwargs, memory_budget=memory_budget), inputs, baselines, additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        require_float(xs)
        bs = pack_baselines(baselines, xs)
        quadrature(method, n_steps)  # n_steps and method checked as given (n_steps=0 is not 1 point)
        alphas, _ = quadrature(method, n_steps + 1)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        rows = rows_for(spec, xs, xs[0].shape[0] * (n_steps + 1), internal_batch_size, memory_budget)
        state: dict[str, Any] = {}

        def each(step: int, grads: tuple[Tensor, ...], acts: tuple[Tensor, ...]) -> None:
            if step == 0:
                state["total"] = [torch.zeros_like(a) for a in acts]
            else:
                for t, g, a, a0 in zip(state["total"], state["grads"], acts, state["acts"]):
                    t += g * (a - a0)
            state["grads"], state["acts"] = grads, acts

        layout = path_layer_grads(spec, self._sites(attribute_to_layer_input), xs, bs, alphas, rows, each)
        attrs = tuple(state["total"])
        result = restructure(layout, attrs, self._many)
        if not return_convergence_delta:
            return result
        require_batch_first(attrs, xs[0].shape[0], "convergence delta")
        return result, convergence_delta(spec, attrs, bs, xs)


class NeuronIntegratedGradients(NeuronMethod, GradientAttribution):
    """Integrated Gradients of one neuron with respect to the inputs.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronIntegratedGradients
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> NeuronIntegratedGradients(model, model[1]).attribute(torch.randn(2, 3), 0, n_steps=10).shape
        torch.Size([2, 3])
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True, *, layer_call: int = 0) -> None:
        super().__init__(forward_func, layer, device_ids, layer_call=layer_call)
        self._multiply_by_inputs = multiply_by_inputs

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  attribute_to_neuron_input: bool = False, *, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            IG of the neuron along ``baselines -> inputs``, shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        ig = IntegratedGradients(self._cut(attribute_to_neuron_input, plan), self._multiply_by_inputs)
        return self._run(inputs, plan, baselines, additional_forward_args,
                         lambda x, b, t, a: ig.attribute(x, b, target=t, additional_forward_args=a, n_steps=n_steps,
                                                         method=method, internal_batch_size=internal_batch_size,
                                                         memory_budget=memory_budget))


class NeuronConductance(NeuronMethod, GradientAttribution):
    """Neuron conductance (Dhamdhere et al., 2018): the part of the target's IG that flows through a neuron.

    Along the input path, ``dF/dn * dn/dx`` is integrated with the rule ``method`` and multiplied by
    ``x - baseline``; summed over the inputs it is the neuron's layer conductance.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronConductance
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> NeuronConductance(model, model[1]).attribute(torch.randn(2, 3), 2, target=0, n_steps=10).shape
        torch.Size([2, 3])
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True, *, layer_call: int = 0) -> None:
        super().__init__(forward_func, layer, device_ids, layer_call=layer_call)
        self._multiply_by_inputs = multiply_by_inputs

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, target: Any = None,
                  additional_forward_args: Any = None, n_steps: int = 50, method: str = "riemann_trapezoid",
                  internal_batch_size: int | None = None, attribute_to_neuron_input: bool = False,
                  grad_kwargs: dict[str, Any] | None = None, *, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Conductance of the inputs through the neuron, shaped like ``inputs``.
        """
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, was_tuple = pack(inputs)
        require_float(xs)
        bs = pack_baselines(baselines, xs)
        quadrature(method, n_steps)
        plan = NeuronPlan(neuron_selector)
        batch = xs[0].shape[0]
        fan = plan.fanout(batch) if plan.many else None
        k = 1 if fan is None else fan.count
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, batch).tiled(k)
        neuron = make_readout(plan.target if fan is None else fan.rows, batch * k, "neuron_selector")
        xs_k, bs_k = (xs, bs) if fan is None else (fan.tile(xs), fan.tile(bs))
        cut = _CutPoint(Site(self.layer, attribute_to_neuron_input), self.layer_call, plan.check, plan.view)
        rows = rows_for(spec, xs_k, batch * k * n_steps, internal_batch_size, memory_budget)

        def grad_fn(points: tuple[Tensor, ...], ex: slice, steps: int) -> tuple[Tensor, ...]:
            return cut.conductance_grads(spec.rows(ex).tiled(steps), neuron.rows(ex).tiled(steps), points)

        grads = integrate(grad_fn, bs_k, xs_k, n_steps, method, rows)
        attrs = [g * (x - b) for g, x, b in zip(grads, xs_k, bs_k)] if self._multiply_by_inputs else list(grads)
        result = unpack(attrs, was_tuple)
        return result if fan is None else fan.split(result)


class _CutPoint:
    """The chosen call of a site, substituted by a copy whose gradient is taken (for neuron conductance)."""

    def __init__(self, site: Site, layer_call: int, check: Any, view: Any) -> None:
        self.site, self.layer_call, self.check, self.view = site, layer_call, check, view

    def conductance_grads(self, spec: ForwardSpec, neuron: Readout, points: tuple[Tensor, ...]) -> tuple[
            Tensor, ...]:
        """``dF/dn * dn/dx`` at ``points``: one forward, two backward passes."""
        site = replace(self.site, call=self.layer_call)
        tap = Tap(site, keep=torch.clone, feed=lambda _call, kept: kept, check=self.check)
        with HookScope() as scope, torch.enable_grad():
            scope.at(site, tap)
            leaves = tuple(p.detach().requires_grad_(True) for p in points)
            scores = spec.scores(leaves)
            chosen = pick_call(tap.values, self.layer_call, site)
            value = chosen if len(chosen) > 1 else chosen[0]
            grads_value = autograd_grad(scores.sum(), chosen, retain_graph=True, allow_unused=True)
            grads_value = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads_value, chosen))
            mid = neuron(self.view(grads_value if len(grads_value) > 1 else grads_value[0]))
            input_grads = grads_of(neuron(self.view(value)), leaves)
        return tuple(g * mid.reshape(-1, *[1] * (g.dim() - 1)) for g in input_grads)
