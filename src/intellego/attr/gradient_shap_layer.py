"""The GradientSHAP family at a layer or a neuron: ``LayerGradientShap``, ``NeuronGradientShap`` (the primary
method is in :mod:`intellego.attr.gradient_shap`).

The layer variant draws its points with the primary method's draw (:func:`~intellego.engines.sampling.shap_draws`
and :func:`~intellego.engines.sampling.shap_points`) and reads the gradient at the layer; the neuron variant is
``GradientShap`` on the model cut at the layer, with the neuron as the target. The conventions every layer and
neuron method shares are described on :class:`~intellego.attr.LayerAttribution` and
:class:`~intellego.attr.NeuronAttribution`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.batching import check_positive_int
from ..core.grad import ForwardSpec
from ..core.inputs import pack, pack_baseline_distribution, require_float
from ..engines.layers import require_batch_first, restructure
from ..engines.sampling import check_stdev, shap_draws, shap_points
from ._base import GradientAttribution, convergence_delta, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod, evals_at, grads_at, rows_for
from ._neuron_engine import NeuronMethod, NeuronPlan
from .gradient_shap import GradientShap

__all__ = ["LayerGradientShap", "NeuronGradientShap"]


class LayerGradientShap(LayerMethod, GradientAttribution):
    """GradientSHAP at a layer: gradients at random input-path points times the layer's input-baseline gap.

    Each of ``n_samples`` draws per example picks a baseline, adds noise of ``stdevs`` to the input, picks
    ``a ~ U(0, 1)``, and takes ``dF/dL(b + a (x' - b)) * (L(x') - L(b))``; the draws are averaged.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerGradientShap
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> gen = torch.Generator().manual_seed(0)
        >>> LayerGradientShap(model, model[1]).attribute(torch.randn(2, 3), torch.zeros(5, 3), generator=gen).shape
        torch.Size([2, 4])
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None,
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, baselines: Any, n_samples: int = 5, stdevs: float | tuple[float, ...] = 0.0,
                  target: Any = None, additional_forward_args: Any = None, return_convergence_delta: bool = False,
                  attribute_to_layer_input: bool = False, *, targets: list[Any] | None = None,
                  generator: torch.Generator | None = None, internal_batch_size: int | None = None,
                  memory_budget: int | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Attributions shaped like the layer's value; with ``return_convergence_delta`` one delta per draw (for a
            list of layers, a list with one delta tensor per layer).
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, n_samples, stdevs, t, a, return_convergence_delta, attribute_to_layer_input,
                generator=generator, internal_batch_size=internal_batch_size, memory_budget=memory_budget),
                inputs, baselines, additional_forward_args, per_example_baselines=False)
        xs, _ = pack(inputs)
        require_float(xs)
        check_positive_int(n_samples, "n_samples", allow_none=False)
        sds = check_stdev(stdevs, len(xs))
        refs = pack_baseline_distribution(baselines, xs)
        batch = xs[0].shape[0]
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, batch)
        total = batch * n_samples
        starts, noisy, alphas = shap_draws(xs, refs, n_samples, sds, generator)
        expanded = spec.interleaved(n_samples)
        rows = rows_for(spec, xs, 2 * total, internal_batch_size, memory_budget)
        sites = self._sites(attribute_to_layer_input)
        grads, _, layout = grads_at(expanded, sites, shap_points(starts, noisy, alphas), rows)
        samples = grads
        if self._multiply_by_inputs:
            # inputs and baselines at most as many rows per call as the gradient pass: on CPU a forward pass
            # over twice the rows ran ~1.5x slower per row (cache), measured on the benchmark ResNet
            both, _ = evals_at(expanded.tiled(2), sites, tuple(torch.cat([e, s]) for e, s in zip(noisy, starts)),
                               min(rows, total), known=layout)
            samples = tuple(g * (t[:total] - t[total:]) for g, t in zip(grads, both))
        require_batch_first(samples, total, "LayerGradientShap")
        attrs = tuple(s.reshape(batch, n_samples, *s.shape[1:]).mean(1) for s in samples)
        result = restructure(layout, attrs, self._many)
        if not return_convergence_delta:
            return result
        if self._many:  # each layer's attributions are complete on their own: one delta per layer
            return result, [convergence_delta(expanded, tuple(part) if isinstance(part, (tuple, list)) else (part,),
                                              starts, noisy) for part in layout.split(samples)]
        return result, convergence_delta(expanded, samples, starts, noisy)


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
