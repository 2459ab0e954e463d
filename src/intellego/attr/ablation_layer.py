"""The ablation family at a layer or a neuron: ``LayerFeatureAblation``, ``LayerFeaturePermutation``,
``NeuronFeatureAblation`` (the primary methods are in :mod:`intellego.attr.ablation`).

A layer perturbation method is the primary perturbation method run with the layer's activations as the
input (the model inputs ride along as extra arguments and the layer's value is substituted); a neuron one
runs the primary method on the model cut at the layer, with the neuron as the target.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec
from ..core.inputs import pack, unpack
from ..engines.layers import LayerAsInput, layer_eval, restructure
from ..engines.perturb import ArgNames
from ._base import PerturbationAttribution, public_call
from ._layer_engine import LayerMethod
from ._neuron_engine import NeuronMethod, NeuronPlan
from .ablation import FeatureAblation, FeaturePermutation

__all__ = ["LayerFeatureAblation", "LayerFeaturePermutation", "NeuronFeatureAblation"]


_LAYER_NAMES = ArgNames(feature_mask="layer_mask", baselines="layer_baselines", inputs="the layer's value",
                        tensor="the layer's value")
"""The primary method's arguments as the user of a layer method knows them."""


class _LayerPerturbation(LayerMethod, PerturbationAttribution):
    def _on_layer(self, inputs: Any, additional_forward_args: Any, to_input: bool) -> tuple[
            Any, tuple[Tensor, ...], tuple[Any, ...], Any]:
        xs, _ = pack(inputs)
        spec = ForwardSpec.build(self.forward_func, None, additional_forward_args, xs[0].shape[0])
        sites = self._sites(to_input)
        acts, layout = layer_eval(spec, sites, xs)
        fn = LayerAsInput(self.forward_func, sites, layout, len(xs))
        return fn, acts, (*xs, *spec.args), layout


class LayerFeatureAblation(_LayerPerturbation):
    """Feature ablation on a layer's activations: each unit (or group from ``layer_mask``) is replaced by
    ``layer_baselines`` and the change of the target output recorded.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerFeatureAblation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        >>> x = torch.randn(2, 3)
        >>> attr = LayerFeatureAblation(model, model[0]).attribute(x, target=0)
        >>> torch.allclose(attr, model[0](x) * model[1].weight, atol=1e-6)
        True
    """

    @public_call
    def attribute(self, inputs: Any, layer_baselines: Any = None, target: Any = None,
                  additional_forward_args: Any = None, layer_mask: Any = None, attribute_to_layer_input: bool = False,
                  perturbations_per_eval: int | None = None, *, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value (``perturbations_per_eval`` None sizes batches itself).
        """
        fn, acts, args, layout = self._on_layer(inputs, additional_forward_args, attribute_to_layer_input)
        attrs, _ = pack(FeatureAblation(fn)._ablation(acts, layer_baselines, target, args, layer_mask,
                                                      perturbations_per_eval, False, memory_budget, _LAYER_NAMES))
        return restructure(layout, attrs, self._many)


class LayerFeaturePermutation(_LayerPerturbation):
    """Permutation importance of a layer's units: each unit (or ``layer_mask`` group) is shuffled across the
    batch and the change of the target output recorded.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerFeaturePermutation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        >>> g = torch.Generator().manual_seed(0)
        >>> LayerFeaturePermutation(model, model[0]).attribute(torch.randn(6, 3), target=0, generator=g).shape
        torch.Size([6, 4])
    """

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  layer_mask: Any = None, perturbations_per_eval: int | None = None, *,
                  attribute_to_layer_input: bool = False, generator: torch.Generator | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value.
        """
        fn, acts, args, layout = self._on_layer(inputs, additional_forward_args, attribute_to_layer_input)
        attrs, _ = pack(FeaturePermutation(fn)._permutation(acts, target, args, layer_mask, perturbations_per_eval,
                                                            False, generator, memory_budget, _LAYER_NAMES))
        return restructure(layout, attrs, self._many)


class NeuronFeatureAblation(NeuronMethod, PerturbationAttribution):
    """Feature ablation of one neuron: how replacing each input feature by its baseline changes the neuron.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronFeatureAblation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> x = torch.randn(2, 3)
        >>> attr = NeuronFeatureAblation(model, model[0]).attribute(x, 1)
        >>> torch.allclose(attr, model[0].weight[1] * x, atol=1e-6)
        True
    """

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
                  feature_mask: Any = None, attribute_to_neuron_input: bool = False,
                  perturbations_per_eval: int | None = None, *, memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        fa = FeatureAblation(self._cut(attribute_to_neuron_input, plan))
        xs, _ = pack(inputs)
        batch = xs[0].shape[0]

        def call(x: Any, b: Any, t: Any, a: Any) -> Any:
            k = pack(x)[0][0].shape[0] // batch
            mask = feature_mask
            if k > 1 and mask is not None:
                masks, was = pack(mask, "feature_mask")
                mask = unpack([m.repeat(k, *[1] * (m.dim() - 1)) if m.shape[0] == batch > 1 else m
                               for m in masks], was)
            return fa.attribute(x, b, t, a, mask, perturbations_per_eval, memory_budget=memory_budget)

        return self._run(inputs, plan, baselines, additional_forward_args, call)
