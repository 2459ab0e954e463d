"""The DeepLift family at a layer or a neuron: ``LayerDeepLift``, ``LayerDeepLiftShap``, ``NeuronDeepLift``,
``NeuronDeepLiftShap`` (the primary methods are in :mod:`intellego.attr.deep_lift`).

The layer variants take the rule engine's gradients with respect to the layer (``rule_gradients(...,
layer=)``); the neuron variants run the primary method on the model cut at the layer with the neuron as the
target (see :class:`~intellego.attr.NeuronAttribution`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec, use_grad_kwargs
from ..core.inputs import pack, pack_baselines, require_float, unpack
from ..engines.rules import rule_gradients
from ..errors import IntellegoError, describe, require
from ._base import GradientAttribution, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod
from ._neuron_engine import NeuronMethod, NeuronPlan
from .deep_lift import BaselinePairs, DeepLift, DeepLiftShap, custom_attributions, deeplift_rules, warn_unruled

__all__ = ["LayerDeepLift", "LayerDeepLiftShap", "NeuronDeepLift", "NeuronDeepLiftShap"]


def _single(layer: Any, name: str) -> None:
    require(not isinstance(layer, (list, tuple)), f"{name} takes one layer, not a list")


class LayerDeepLift(LayerMethod, GradientAttribution):
    """DeepLIFT (rescale rule) at a layer: ``(L(x) - L(baseline)) * multipliers at the layer``.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerDeepLift
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> attr, delta = LayerDeepLift(model, model[0]).attribute(torch.randn(2, 3), return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-5)
        (torch.Size([2, 4]), True)
    """

    def __init__(self, model: Any, layer: Any, multiply_by_inputs: bool = True, *, eps: float = 1e-10) -> None:
        _single(layer, type(self).__name__)
        super().__init__(model, layer)
        self.model, self.eps, self._multiply_by_inputs = model, eps, multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
                  custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
                  grad_kwargs: dict[str, Any] | None = None, *, targets: list[Any] | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value; ``(attributions, delta)`` when asked. ``targets``: several
            targets in one batched call (see :class:`~intellego.attr.LayerAttribution`).
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, return_convergence_delta, attribute_to_layer_input, custom_attribution_func, grad_kwargs),
                inputs, baselines, additional_forward_args)
        use_grad_kwargs(grad_kwargs, type(self).__name__)
        xs, _ = pack(inputs)
        require_float(xs)
        refs = pack_baselines(baselines, xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        attrs, delta, was_tuple = self._rows(spec, xs, refs, attribute_to_layer_input, custom_attribution_func)
        result = unpack(attrs, was_tuple)
        return (result, delta) if return_convergence_delta else result

    def _rows(self, spec: ForwardSpec, xs: tuple[Tensor, ...], refs: tuple[Tensor, ...], to_input: bool,
              custom: Callable[..., Any] | None) -> tuple[tuple[Tensor, ...], Tensor, bool]:
        if custom is not None and not callable(custom):
            raise IntellegoError(f"custom_attribution_func must be callable, got {describe(custom)}")
        res = rule_gradients(spec, xs, deeplift_rules(self.eps), baselines=refs, layer=self.layer,
                             layer_input=to_input, from_layer=True)
        warn_unruled(type(self).__name__, res.unruled)
        values, ref_values = res.layer or (), res.layer_reference or ()
        if custom is not None:
            attrs = custom_attributions(custom, res.grads, values, ref_values)
        elif self._multiply_by_inputs:
            attrs = tuple((v - r) * g for v, r, g in zip(values, ref_values, res.grads))
        else:
            attrs = res.grads
        n = xs[0].shape[0]
        total = torch.stack([a.reshape(n, -1).sum(1) for a in attrs]).sum(0)
        if res.reference_scores is None:
            raise IntellegoError("internal: the rule engine returned no reference scores")
        gap = res.scores - res.reference_scores
        return attrs, (total - gap.to(total.dtype)).detach(), len(values) > 1


class LayerDeepLiftShap(LayerDeepLift):
    """LayerDeepLift averaged over a distribution of baselines (at least two).

    Example:
        >>> import torch
        >>> from intellego.attr import LayerDeepLiftShap
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> LayerDeepLiftShap(model, model[1]).attribute(torch.randn(2, 3), torch.randn(5, 3)).shape
        torch.Size([2, 4])
    """

    @public_call
    def attribute(self, inputs: Any, baselines: Any, target: Any = None,  # type: ignore[override]
                  additional_forward_args: Any = None, return_convergence_delta: bool = False,
                  attribute_to_layer_input: bool = False,
                  custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None, *,
                  targets: list[Any] | None = None, internal_batch_size: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value; deltas per (example, baseline) pair when asked.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, return_convergence_delta, attribute_to_layer_input, custom_attribution_func,
                internal_batch_size=internal_batch_size), inputs, baselines, additional_forward_args,
                per_example_baselines=False)
        xs, _ = pack(inputs)
        require_float(xs)
        pairs = BaselinePairs.build(self.forward_func, xs, baselines, target, additional_forward_args,
                                    internal_batch_size)
        parts = [self._rows(spec, x, r, attribute_to_layer_input, custom_attribution_func)
                 for spec, x, r in pairs.chunks()]
        attrs = tuple(torch.cat(a) for a in zip(*(p[0] for p in parts)))
        delta = torch.cat([p[1] for p in parts])
        result = unpack(pairs.mean(attrs), parts[0][2])
        return (result, delta) if return_convergence_delta else result


class NeuronDeepLift(NeuronMethod, GradientAttribution):
    """DeepLIFT of one neuron with respect to the inputs (the model cut at the layer).

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronDeepLift
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> NeuronDeepLift(model, model[1]).attribute(torch.randn(2, 3), 2).shape
        torch.Size([2, 3])
    """

    _primary: type[DeepLift] = DeepLift
    _stack_baselines = True

    def __init__(self, model: Any, layer: Any, multiply_by_inputs: bool = True, *, layer_call: int = 0) -> None:
        super().__init__(model, layer, layer_call=layer_call)
        self.model, self._multiply_by_inputs = model, multiply_by_inputs

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False,
                  custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None) -> Any:
        """Compute the attributions.

        Returns:
            The neuron's DeepLIFT attributions, shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        dl = self._primary(self._cut(attribute_to_neuron_input, plan), self._multiply_by_inputs)
        return self._run(inputs, plan, baselines, additional_forward_args,
                         lambda x, b, t, a: dl.attribute(x, b, target=t, additional_forward_args=a,
                                                         custom_attribution_func=custom_attribution_func),
                         stack_baselines=self._stack_baselines)


class NeuronDeepLiftShap(NeuronDeepLift):
    """DeepLiftShap of one neuron: DeepLIFT averaged over a distribution of baselines.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronDeepLiftShap
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> NeuronDeepLiftShap(model, model[1]).attribute(torch.randn(2, 3), 2, torch.randn(4, 3)).shape
        torch.Size([2, 3])
    """

    _primary = DeepLiftShap
    _stack_baselines = False

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any,  # type: ignore[override]
                  additional_forward_args: Any = None, attribute_to_neuron_input: bool = False,
                  custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None) -> Any:
        """Compute the attributions.

        Returns:
            The neuron's DeepLiftShap attributions over the baseline distribution, shaped like ``inputs``.
        """
        return super().attribute(inputs, neuron_selector, baselines, additional_forward_args,
                                 attribute_to_neuron_input, custom_attribution_func)
