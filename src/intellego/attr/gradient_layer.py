"""The gradient family at a layer or a neuron: ``LayerActivation``, ``LayerGradientXActivation``,
``NeuronGradient`` (the primary methods, ``Saliency`` and ``InputXGradient``, are in
:mod:`intellego.attr.gradient`).

``LayerActivation`` is the layer's value itself, the factor ``LayerGradientXActivation`` multiplies the
layer's gradient by; ``NeuronGradient`` is ``Saliency`` on the model cut at the layer, with the neuron as the
target. The conventions every layer and neuron method shares (tuple and list layers, modules that run several
times, ``targets``, ``neuron_selector``, ``layer_call``) are described on
:class:`~intellego.attr.LayerAttribution` and :class:`~intellego.attr.NeuronAttribution`.
"""

from __future__ import annotations

from typing import Any

from ..core.grad import ForwardSpec, use_grad_kwargs
from ..core.inputs import pack
from ..engines.layers import layer_eval, restructure
from ._base import GradientAttribution, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod, grads_at, rows_for
from ._neuron_engine import NeuronMethod, NeuronPlan
from .gradient import Saliency

__all__ = ["LayerActivation", "LayerGradientXActivation", "NeuronGradient"]


class LayerActivation(LayerMethod):
    """The layer's activations themselves (cloned when the layer runs, so later in-place ops do not leak).

    Example:
        >>> import torch
        >>> from intellego.attr import LayerActivation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(inplace=True))
        >>> x = torch.randn(2, 3)
        >>> acts = LayerActivation(model, model[0]).attribute(x)
        >>> torch.allclose(acts, model[0](x))
        True
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False) -> Any:
        """Compute the attributions.

        Returns:
            The activations: a tensor, a tuple for tuple layers, a list for a list of layers.
        """
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, None, additional_forward_args, xs[0].shape[0])
        acts, layout = layer_eval(spec, self._sites(attribute_to_layer_input), xs)
        return restructure(layout, acts, self._many)


class LayerGradientXActivation(LayerMethod, GradientAttribution):
    """The layer's activations times the gradient of the target with respect to them.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerGradientXActivation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        >>> x = torch.randn(2, 3)
        >>> attr = LayerGradientXActivation(model, model[0]).attribute(x)
        >>> torch.allclose(attr, model[0](x) * model[1].weight)
        True
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True, memory_efficient: bool = False) -> None:
        """``memory_efficient`` is accepted for Captum compatibility and changes nothing: activations and
        gradients are already taken in one pass without extra copies."""
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs
        self.memory_efficient = memory_efficient

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  attribute_to_layer_input: bool = False, grad_kwargs: dict[str, Any] | None = None, *,
                  targets: list[Any] | None = None, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            ``activation * gradient`` (or the gradient alone without ``multiply_by_inputs``) per layer.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, attribute_to_layer_input, grad_kwargs, internal_batch_size=internal_batch_size,
                memory_budget=memory_budget), inputs, None, additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        rows = rows_for(spec, xs, xs[0].shape[0], internal_batch_size, memory_budget)
        grads, acts, layout = grads_at(spec, self._sites(attribute_to_layer_input), xs, rows)
        out = [g * a for g, a in zip(grads, acts)] if self._multiply_by_inputs else list(grads)
        return restructure(layout, out, self._many)


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
