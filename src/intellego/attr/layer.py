"""Layer attribution (Captum's ``Layer*`` names and ``InternalInfluence``): what a layer contributes.

Each class is a primary method run at a layer: gradients at the layer's activations, a path in input space
read at the layer (conductance, internal influence, GradientSHAP), or Integrated Gradients with the layer's
activations substituted as the input. ``attribute_to_layer_input=True`` uses the layer's inputs instead of
its output. A layer that returns a tuple gives a tuple; a list of layers gives a list; a module that runs
several times in one forward gives a tuple with one result per call (Captum silently keeps one call).

Several targets in one call (beyond Captum): every method that takes ``target`` also takes a keyword-only
``targets``, a list of targets (each one in any form ``target`` accepts, except a callable). The batch is
stacked once per target and run as one batch, and every tensor of the result gets a leading dimension of
size ``len(targets)``: ``result[k]`` equals the call with ``target=targets[k]`` (a convergence delta gets
the same leading dimension, e.g. ``(K, N)``). It is a separate keyword so it cannot be confused with
Captum's per-example ``target`` list; pass one or the other. Sampling methods draw their noise
independently for each copy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int
from ..core.grad import ForwardSpec, use_grad_kwargs
from ..core.inputs import pack, pack_baseline_distribution, pack_baselines, require_float
from ..engines.layers import layer_eval, layer_gradients, layer_spec, require_batch_first, restructure
from ..engines.path import integrate, quadrature
from ..engines.sampling import check_stdev, shap_draws, shap_points
from ._base import GradientAttribution, convergence_delta, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod, evals_at, grads_at, path_layer_grads, rows_for
from .integrated_gradients import path_attributions

__all__ = ["LayerActivation", "LayerGradientXActivation", "InternalInfluence",
           "LayerConductance", "LayerIntegratedGradients", "LayerGradientShap"]


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


