"""Surrogate-model family, LIME: ``LimeBase`` (any sampler, similarity and surrogate) and ``Lime``.

A sample is a binary vector over the interpretable features (1: keep the input, 0: set to baseline).
``Lime`` draws samples, runs all of them through the model in batched calls, weighs them by similarity to
the input and fits an interpretable linear model per example, all examples at once. ``KernelShap`` (the
Shapley-kernel special case) lives in :mod:`intellego.attr.kernel_shap`; the shared pieces in
:mod:`intellego.attr._surrogate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int
from ..core.grad import ForwardSpec
from ..core.inputs import pack, unpack
from ..engines.perturb import Evaluator, FeaturePlan, progress_bar
from ..errors import describe, require
from ._base import PerturbationAttribution, public_call
from ._surrogate import (
    ExpKernel,
    bernoulli_sample,
    captum_kwargs,
    draw_samples,
    feature_sums,
    fit_surrogates,
    format_coefficients,
    from_interp,
    get_exp_kernel_similarity_function,
    no_features,
    setup,
)
from .linear_models import Lasso, fit_linear

__all__ = ["LimeBase", "Lime", "get_exp_kernel_similarity_function"]

default_from_interp_rep_transform = from_interp
"""Captum's default transform from a binary sample to model inputs: ``(sample, original_inputs, *,
feature_mask, baselines)``; baselines may be numbers, tensors or a tuple of those."""
default_perturb_func = bernoulli_sample
"""Captum's default LimeBase sampler: each of ``num_interp_features`` kept with probability 1/2."""


class LimeBase(PerturbationAttribution):
    """General LIME: any sampler, similarity, interpretable representation and surrogate model.

    Arguments and their call signatures are Captum's. Samples are drawn one at a time (user callables),
    model inputs of ``perturbations_per_eval`` samples (default: all) go through the model in one call.
    ``attribute`` returns the fitted model's ``representation()``.

    Args:
        {FORWARD_FUNC}
        {INTERPRETABLE_MODEL}
        {SIMILARITY_FUNC}
        {PERTURB_FUNC}
        perturb_interpretable_space: Whether ``perturb_func`` draws samples in the interpretable space (then
            ``from_interp_rep_transform`` makes the model's input) or in the input space (then
            ``to_interp_rep_transform`` makes the surrogate's features).
        from_interp_rep_transform: ``f(interpretable_sample, original_input, **kwargs)`` -> the model's input.
        to_interp_rep_transform: ``f(input_sample, original_input, **kwargs)`` -> the surrogate's ``(1, F)``
            features.

    Example:
        >>> import torch
        >>> from intellego.attr import LinearRegression, get_exp_kernel_similarity_function
        >>> model = lambda x: (x * torch.tensor([1.0, -1.0, 2.0])).sum(1)
        >>> x = torch.tensor([[1.0, 2.0, 3.0]])
        >>> g = torch.Generator().manual_seed(0)
        >>> keep = lambda inputs, **kwargs: torch.randint(0, 2, (1, 3), generator=g).float()
        >>> lime = LimeBase(model, LinearRegression(), get_exp_kernel_similarity_function(), keep, True,
        ...                 lambda z, inputs, **kwargs: z * inputs, None)
        >>> [round(v, 4) for v in lime.attribute(x, n_samples=40)[0].tolist()]  # exactly linear in z
        [1.0, -2.0, 6.0]
    """

    def __init__(self, forward_func: Any, interpretable_model: Any, similarity_func: Callable[..., Any],
                 perturb_func: Callable[..., Any], perturb_interpretable_space: bool,
                 from_interp_rep_transform: Callable[..., Any] | None,
                 to_interp_rep_transform: Callable[..., Any] | None) -> None:
        super().__init__(forward_func)
        require(hasattr(interpretable_model, "fit"),
                f"interpretable_model must have a fit method, got {describe(interpretable_model)}")
        require(callable(similarity_func), "similarity_func must be callable")
        require(callable(perturb_func), "perturb_func must be callable")
        transform = from_interp_rep_transform if perturb_interpretable_space else to_interp_rep_transform
        require(transform is not None and callable(transform),
                "give from_interp_rep_transform when perturb_interpretable_space is True, "
                "to_interp_rep_transform otherwise")
        self.interpretable_model = interpretable_model
        self.similarity_func, self.perturb_func = similarity_func, perturb_func
        self.perturb_interpretable_space = perturb_interpretable_space
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None, n_samples: int = 50,
                  perturbations_per_eval: int | None = None, show_progress: bool = False, **kwargs: Any) -> Tensor:
        """Compute the attributions.

        Returns:
            Coefficients of the surrogate fitted on ``n_samples`` samples (``representation()``).
        """
        check_positive_int(n_samples, "n_samples", allow_none=False)
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        with torch.no_grad():
            xs, _ = pack(inputs)
            spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
            interp, model_inputs, sims = [], [], []
            for sample in draw_samples(self.perturb_func, inputs, n_samples, kwargs):
                if self.perturb_interpretable_space:
                    z, model_in = sample, self.from_interp_rep_transform(sample, inputs, **kwargs)  # type: ignore[misc]
                else:
                    z, model_in = self.to_interp_rep_transform(sample, inputs, **kwargs), sample  # type: ignore[misc]
                interp.append(torch.as_tensor(z).reshape(1, -1))
                model_inputs.append(pack(model_in)[0])
                sims.append(float(torch.as_tensor(self.similarity_func(inputs, model_in, z, **kwargs))))
            outputs = self._evaluate(spec, model_inputs, perturbations_per_eval, show_progress)
            X = torch.cat(interp).double()
            W = torch.tensor(sims, dtype=torch.float64, device=X.device)
            coef = fit_linear(self.interpretable_model, X, outputs.double().reshape(-1, 1).to(X.device), W[:, None])
            return coef.reshape(1, -1).to(torch.float32 if not xs[0].is_floating_point() else xs[0].dtype)

    def _evaluate(self, spec: ForwardSpec, samples: list[tuple[Tensor, ...]], per: int | None,
                  show: bool) -> Tensor:
        """Model outputs of all samples, in the order drawn. Samples are stacked only with samples of the same
        shapes (a transform that drops tokens gives inputs of different lengths): without
        ``perturbations_per_eval``, all samples go in one call when their shapes agree and one per call when
        they do not (a forward written for one sample, as Captum's default calls it, keeps working);
        with it, each shape group goes in chunks of that size. Results do not depend on the chunking."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(tuple((tuple(t.shape), t.dtype) for t in s), []).append(i)
        if per is None:
            per = len(samples) if len(groups) == 1 else 1
        calls = [(idx[k:k + per]) for idx in groups.values() for k in range(0, len(idx), per)]
        out = torch.empty(len(samples), dtype=torch.float64)
        bar = progress_bar(len(calls), self._progress_desc(), show)
        with torch.no_grad():
            for idx in calls:
                part = [samples[i] for i in idx]
                y = spec.tiled(len(part)).scores(tuple(torch.cat(t) for t in zip(*part)))
                require(y.numel() == len(part), f"the model must return one value per sample, got output of shape "
                        f"{tuple(y.shape)} for {len(part)} samples; pass target= or a scalar-valued forward_func")
                out[torch.tensor(idx)] = y.reshape(-1).detach().to("cpu", torch.float64)
                bar.update()
        bar.close()
        return out

class Lime(LimeBase):
    """LIME (Ribeiro et al., 2016) with binary features from ``feature_mask`` and baselines.

    By default: samples keep each feature with probability 1/2, weights are an exponential kernel of the
    cosine distance (width 1) and the surrogate is :class:`~intellego.attr.Lasso` with ``alpha=0.01``, as in
    Captum, but fitted in torch. For a batch, the samples are shared and one surrogate per example is fitted
    in one batched solve (Captum fits one example at a time with fresh samples).

    Example:
        >>> import torch
        >>> from intellego.attr import Lime, LinearRegression
        >>> model = torch.nn.Linear(4, 1)
        >>> x = torch.randn(1, 4)
        >>> lime = Lime(model, interpretable_model=LinearRegression())
        >>> attr = lime.attribute(x, target=0, n_samples=64, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(attr, model.weight * x, atol=1e-5)  # a linear model is recovered exactly
        True
    """

    def __init__(self, forward_func: Any, interpretable_model: Any = None,
                 similarity_func: Callable[..., Any] | None = None, perturb_func: Callable[..., Any] | None = None
                 ) -> None:
        model = Lasso(alpha=0.01) if interpretable_model is None else interpretable_model
        sim = get_exp_kernel_similarity_function() if similarity_func is None else similarity_func
        super().__init__(forward_func, model, sim, perturb_func or bernoulli_sample, True, from_interp, None)
        self._default_perturb = perturb_func is None

    @public_call
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        n_samples: int = 25,
        perturbations_per_eval: int | None = None,
        return_input_shape: bool = True,
        show_progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {FEATURE_MASK}
            n_samples: model evaluations per example.
            {PERTURBATIONS_PER_EVAL}
            return_input_shape: spread coefficients over the inputs (True) or return them per feature.
            {SHOW_PROGRESS}
            {GENERATOR}
            {MEMORY_BUDGET}

        Returns:
            Surrogate coefficients spread over the inputs' shapes, or ``(batch, n_features)`` (one row for a model
            that returns one value per batch) with ``return_input_shape=False``.
        """
        check_positive_int(n_samples, "n_samples", allow_none=False)
        with torch.no_grad():
            xs, was_tuple, ev, plan = setup(self, inputs, baselines, target, additional_forward_args, feature_mask,
                                             perturbations_per_eval, memory_budget, show_progress)
            if plan.n_features == 0:
                return no_features(plan, ev, return_input_shape, was_tuple)
            present = self._samples(inputs, ev, plan, n_samples, generator)
            values = ev.run(present.shape[0], lambda sl: plan.removed(~present[sl]))
            weights = self._weights(inputs, ev, plan, present)
            coef = fit_surrogates(self.interpretable_model, present, values, weights, ev)
            return format_coefficients(coef, plan, ev, return_input_shape, was_tuple)

    def _samples(self, inputs: Any, ev: Evaluator, plan: FeaturePlan, n: int,
                 generator: torch.Generator | None) -> Tensor:
        device = ev.inputs[0].device
        if self._default_perturb:
            gdev = generator.device if generator is not None else device
            return (torch.rand(n, plan.n_features, generator=generator, device=gdev) < 0.5).to(device)
        kwargs = captum_kwargs(ev, plan)
        draws = draw_samples(self.perturb_func, inputs, n, kwargs)
        z = torch.cat([torch.as_tensor(d).reshape(1, -1) for d in draws]).to(device)
        require(z.shape[1] == plan.n_features,
                f"perturb_func returned samples of length {z.shape[1]} but there are {plan.n_features} features")
        return z.bool()

    def _weights(self, inputs: Any, ev: Evaluator, plan: FeaturePlan, present: Tensor) -> Tensor:
        """Similarity of every sample to every example: ``(n, batch)``, or ``(n, 1)`` in aggregate mode."""
        if isinstance(self.similarity_func, ExpKernel):
            return self.similarity_func.batched(feature_sums(ev, plan, self.similarity_func.sums_needed), present)
        kwargs = captum_kwargs(ev, plan)
        examples = [slice(None)] if ev.aggregate else [slice(b, b + 1) for b in range(ev.batch)]
        out = torch.empty(present.shape[0], len(examples), dtype=torch.float64)
        for j in range(present.shape[0]):
            masks = plan.removed(~present[j:j + 1])
            for k, sl in enumerate(examples):
                orig = tuple(x[sl] for x in ev.inputs)
                pert = tuple(torch.where(m[0][sl] if m.shape[1] > 1 else m[0], f[sl], x[sl])
                             for m, f, x in zip(masks, ev.fills, ev.inputs))
                was_tuple = isinstance(inputs, (tuple, list))
                sim = self.similarity_func(unpack(orig, was_tuple), unpack(pert, was_tuple),
                                           present[j:j + 1].long(), **kwargs)
                out[j, k] = float(torch.as_tensor(sim))
        return out.to(present.device)
