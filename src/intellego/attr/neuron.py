"""Neuron attribution (Captum's ``Neuron*`` names): how the inputs drive one unit of a layer.

Each class is the primary method run with a neuron as the read-out: the model is cut at the layer (the
forward stops there) and ``neuron_selector`` becomes the target. ``neuron_selector`` is an int, a tuple of
ints (one per dimension of an example's layer value), a tuple with slices (the block is summed), or a
callable ``layer_value -> (N,)``. Beyond Captum, a *list* of ints / tuples of ints or slices attributes all
those neurons (blocks) in one batched call and returns ``(len(list), *input_shape)`` tensors; ``result[k]``
equals the call with ``neuron_selector=list[k]``.

A layer that runs several times in one forward pass (a shared or tied module) has one value per call, and a
neuron of each. The keyword-only constructor argument ``layer_call`` picks the call: ``0`` (the default) is
the first call, and the forward pass stops right after it, so nothing downstream of the neuron runs; ``-1``
is the last call, which is what Captum reads (it keeps only the last call's value), and costs a full forward
pass. Any other index works too; one the layer does not reach raises an error naming how often it ran. A
layer that never runs raises an error too. Without ``layer_call`` we cannot warn about a layer that runs
again after the first call, because the forward pass stops there: pass ``layer_call=-1`` to port code from
Captum unchanged on shared modules.
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
from ..engines.layers import Site, pick_call
from ..engines.path import integrate, quadrature
from ._base import GradientAttribution, public_call
from ._layer_engine import rows_for
from ._neuron_engine import NeuronMethod, NeuronPlan
from .gradient import Saliency
from .gradient_shap import GradientShap
from .integrated_gradients import IntegratedGradients

__all__ = ["NeuronGradient", "NeuronIntegratedGradients", "NeuronGradientShap", "NeuronConductance"]


class NeuronGradient(NeuronMethod, GradientAttribution):
    """The gradient of one neuron with respect to the inputs.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronGradient
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> x = torch.randn(2, 3)
        >>> g = NeuronGradient(model, model[0]).attribute(x, neuron_selector=1)
        >>> torch.allclose(g, model[0].weight[1].expand(2, 3))
        True
    """

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            ``d neuron / d inputs``, shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        sal = Saliency(self._cut(attribute_to_neuron_input, plan))
        return self._run(inputs, plan, None, additional_forward_args,
                         lambda x, _b, t, a: sal.attribute(x, target=t, abs=False, additional_forward_args=a,
                                                           internal_batch_size=internal_batch_size,
                                                           memory_budget=memory_budget))


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


class NeuronGradientShap(NeuronMethod, GradientAttribution):
    """GradientSHAP of one neuron: expected gradients over baselines drawn from a distribution.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronGradientShap
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> gen = torch.Generator().manual_seed(0)
        >>> NeuronGradientShap(model, model[0]).attribute(torch.randn(2, 3), 1, torch.zeros(4, 3),
        ...                                               generator=gen).shape
        torch.Size([2, 3])
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True, *, layer_call: int = 0) -> None:
        super().__init__(forward_func, layer, device_ids, layer_call=layer_call)
        self._multiply_by_inputs = multiply_by_inputs

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any, n_samples: int = 5,
                  stdevs: float | tuple[float, ...] = 0.0, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, generator: torch.Generator | None = None,
                  internal_batch_size: int | None = None, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            The neuron's GradientSHAP values, shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        gs = GradientShap(self._cut(attribute_to_neuron_input, plan), self._multiply_by_inputs)
        return self._run(inputs, plan, baselines, additional_forward_args,
                         lambda x, b, t, a: gs.attribute(x, b, n_samples=n_samples, stdevs=stdevs, target=t,
                                                         additional_forward_args=a, generator=generator,
                                                         internal_batch_size=internal_batch_size,
                                                         memory_budget=memory_budget), stack_baselines=False)


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
