"""Neuron attribution (Captum's ``Neuron*`` names): how the inputs drive one unit of a layer.

Each class is the primary method run with a neuron as the read-out: the model is cut at the layer (the
forward stops there) and ``neuron_selector`` becomes the target. ``neuron_selector`` is an int, a tuple of
ints (one per dimension of an example's layer value), a tuple with slices (the block is summed), or a
callable ``layer_value -> (N,)``. Beyond Captum, a *list* of ints / int tuples attributes all those
neurons in one batched call and returns ``(len(list), *input_shape)`` tensors; ``result[k]`` equals the call
with ``neuron_selector=list[k]``. If the layer runs several times in one forward, its first call is used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope
from ..core.inputs import pack, pack_baselines, require_float, unpack
from ..engines.path import integrate, quadrature
from ..errors import require
from ._base import GradientAttribution, NeuronAttribution
from ._layer_engine import no_grad_kwargs, rows_for
from ._neuron_engine import NeuronModel, plan_neurons
from ._site import Site, _tensors, check_layers
from .gradient import Saliency
from .gradient_shap import GradientShap
from .integrated_gradients import IntegratedGradients

__all__ = ["NeuronGradient", "NeuronIntegratedGradients", "NeuronGradientShap", "NeuronConductance", "NeuronMethod"]


class NeuronMethod(NeuronAttribution):
    """A neuron attribution on one layer, checked against the model at construction."""

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None) -> None:
        super().__init__(forward_func, layer, device_ids)
        require(not isinstance(layer, (list, tuple)), "neuron methods take one layer, not a list")
        check_layers(forward_func, layer)

    def _cut(self, to_input: bool, stop: bool = True) -> NeuronModel:
        return NeuronModel(self.forward_func, Site(self.layer, to_input), stop=stop)

    def _run(self, primary: Any, inputs: Any, neuron_selector: Any, baselines: Any, args: Any,
             call: Any, *, stack_baselines: bool = True) -> Any:
        """Run ``call(inputs, baselines, target, args)`` of ``primary`` with the neuron read-out(s).

        Per-example ``baselines`` are stacked with the inputs for several neurons; a baseline
        *distribution* (``stack_baselines=False``) is shared by all copies.
        """
        plan = plan_neurons(primary.forward_func, neuron_selector, inputs, args)
        xs, was_tuple = pack(inputs)
        batch = xs[0].shape[0]
        if plan.many and stack_baselines and isinstance(baselines, (Tensor, tuple, int, float)):
            baselines = plan.stack(pack_baselines(baselines, xs))
        stacked = unpack(plan.stack(xs), was_tuple)
        result = call(stacked, baselines, plan.target(batch), plan.stack_args(args, batch))
        return plan.unstack(result, batch)


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

    def attribute(self, inputs: Any, neuron_selector: Any, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """``d neuron / d inputs``, shaped like ``inputs``."""
        sal = Saliency(self._cut(attribute_to_neuron_input))
        return self._run(sal, inputs, neuron_selector, None, additional_forward_args,
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
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  attribute_to_neuron_input: bool = False, *, memory_budget: int | None = None) -> Any:
        """IG of the neuron along ``baselines -> inputs``, shaped like ``inputs``."""
        ig = IntegratedGradients(self._cut(attribute_to_neuron_input), self._multiply_by_inputs)
        return self._run(ig, inputs, neuron_selector, baselines, additional_forward_args,
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
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any, n_samples: int = 5,
                  stdevs: float | tuple[float, ...] = 0.0, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, generator: torch.Generator | None = None,
                  internal_batch_size: int | None = None, memory_budget: int | None = None) -> Any:
        """The neuron's GradientSHAP values, shaped like ``inputs``."""
        gs = GradientShap(self._cut(attribute_to_neuron_input), self._multiply_by_inputs)
        return self._run(gs, inputs, neuron_selector, baselines, additional_forward_args,
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
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, target: Any = None,
                  additional_forward_args: Any = None, n_steps: int = 50, method: str = "riemann_trapezoid",
                  internal_batch_size: int | None = None, attribute_to_neuron_input: bool = False,
                  grad_kwargs: dict[str, Any] | None = None, *, memory_budget: int | None = None) -> Any:
        """Conductance of the inputs through the neuron, shaped like ``inputs``."""
        no_grad_kwargs(grad_kwargs)
        cut = self._cut(attribute_to_neuron_input)
        xs, was_tuple = pack(inputs)
        require_float(xs)
        bs = pack_baselines(baselines, xs)
        quadrature(method, n_steps)
        plan = plan_neurons(cut, neuron_selector, inputs, additional_forward_args)
        batch = xs[0].shape[0]
        k = plan.count if plan.many else 1
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, batch).tiled(k)
        neuron = ForwardSpec.build(cut, plan.target(batch), None, batch * k).readout
        xs_k, bs_k = plan.stack(xs), plan.stack(bs)
        site = Site(self.layer, attribute_to_neuron_input)
        rows = rows_for(spec, xs_k, batch * k * n_steps, internal_batch_size, memory_budget)

        def grad_fn(points: tuple[Tensor, ...], ex: slice, steps: int) -> tuple[Tensor, ...]:
            return _conductance_grads(spec.rows(ex).tiled(steps), neuron.rows(ex).tiled(steps), site, points)

        grads = integrate(grad_fn, bs_k, xs_k, n_steps, method, rows)
        attrs = [g * (x - b) for g, x, b in zip(grads, xs_k, bs_k)] if self._multiply_by_inputs else list(grads)
        return plan.unstack(unpack(attrs, was_tuple), batch)


def _conductance_grads(spec: ForwardSpec, neuron: Any, site: Site, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``dF/dn * dn/dx`` at ``points``: one forward, two backward passes."""
    box: list[Any] = []
    with HookScope() as scope, torch.enable_grad():
        def grab(call: int, value: Any) -> Any:
            if call == 0:
                ts = tuple(t.clone() for t in _tensors(site, call, value))
                box.append(ts)
                return unpack(list(ts), isinstance(value, tuple))
            return None
        site.hook(scope, grab)
        leaves = tuple(p.detach().requires_grad_(True) for p in points)
        scores = spec.scores(leaves)
        require(len(box) > 0, f"{site.name} did not run in the forward pass: no neuron to attribute")
        value = box[0] if len(box[0]) > 1 else box[0][0]
        grads_value = torch.autograd.grad(scores.sum(), box[0], retain_graph=True, allow_unused=True)
        grads_value = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads_value, box[0]))
        mid = neuron(grads_value if len(grads_value) > 1 else grads_value[0])
        input_grads = grads_of(neuron(value), leaves)
    return tuple(g * mid.reshape(-1, *[1] * (g.dim() - 1)) for g in input_grads)
