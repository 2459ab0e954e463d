"""Surrogate-model family: ``LimeBase``, ``Lime`` and ``KernelShap``.

A sample is a binary vector over the interpretable features (1: keep the input, 0: set to baseline).
``Lime`` draws samples, runs all of them through the model in batched calls, weighs them by similarity to
the input and fits an interpretable linear model per example, all examples at once. ``KernelShap`` solves
the KernelSHAP weighted least-squares problem in closed form (Lundberg and Lee, 2017), with the
efficiency constraint exact.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int, chunks
from ..core.grad import ForwardSpec
from ..core.hooks import HookScope
from ..core.inputs import pack, unpack
from ..engines.perturb import Evaluator, FeaturePlan, plan_features, progress_bar
from ..errors import IntellegoError, describe, require
from ._base import PerturbationAttribution
from .ablation import _fill_docs, prepare
from .linear_models import Lasso, LinearRegression, fit_linear

__all__ = ["LimeBase", "Lime", "KernelShap", "get_exp_kernel_similarity_function"]

KERNEL_SHAP_ESTIMATORS = ("kernelshap", "captum")
RIDGE = 1e-3


class _ExpKernel:
    """``exp(-d**2 / (2 * width**2))`` of the cosine or Euclidean distance between flattened inputs."""

    def __init__(self, distance_mode: str = "cosine", kernel_width: float = 1.0) -> None:
        require(distance_mode in ("cosine", "euclidean"),
                f"distance_mode must be 'cosine' or 'euclidean', got {distance_mode!r}")
        require(kernel_width > 0, f"kernel_width must be positive, got {kernel_width!r}")
        self.mode, self.width = distance_mode, float(kernel_width)

    def __call__(self, original: Any, perturbed: Any, _interpretable: Any = None, **kwargs: Any) -> float:
        a = torch.cat([t.reshape(-1) for t in pack(original)[0]]).double()
        b = torch.cat([t.reshape(-1) for t in pack(perturbed)[0]]).double()
        cosine = self.mode == "cosine"
        d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=0) if cosine else (a - b).norm()
        return math.exp(-float(d) ** 2 / (2 * self.width**2))

    def batched(self, sums: dict[str, Tensor], present: Tensor) -> Tensor:
        """Similarities ``(n, B)`` of samples ``present (n, F)`` from per-feature sums ``(B, F)``."""
        keep, drop = present.double(), (~present).double()
        if self.mode == "euclidean":
            d2 = drop @ sums["xmb2"].T
        else:
            dot = keep @ sums["x2"].T + drop @ sums["xb"].T
            norm2 = keep @ sums["x2"].T + drop @ sums["b2"].T
            cos = dot / (sums["x2"].sum(1)[None] * norm2).clamp_min(1e-16).sqrt()
            d2 = (1 - cos) ** 2
        return torch.exp(-d2 / (2 * self.width**2))


def get_exp_kernel_similarity_function(distance_mode: str = "cosine", kernel_width: float = 1.0) -> Callable[..., Any]:
    """Lime's similarity: an exponential kernel of the cosine or Euclidean distance (Captum's default is
    cosine with width 1). ``Lime`` evaluates it for all samples at once."""
    return _ExpKernel(distance_mode, kernel_width)


class LimeBase(PerturbationAttribution):
    """General LIME: any sampler, similarity, interpretable representation and surrogate model.

    Arguments and their call signatures are Captum's. Samples are drawn one at a time (user callables),
    model inputs of ``perturbations_per_eval`` samples (default: all) go through the model in one call.
    ``attribute`` returns the fitted model's ``representation()``.
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

    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None, n_samples: int = 50,
                  perturbations_per_eval: int | None = None, show_progress: bool = False, **kwargs: Any) -> Tensor:
        """Coefficients of the surrogate fitted on ``n_samples`` samples (``representation()``)."""
        check_positive_int(n_samples, "n_samples", allow_none=False)
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        with HookScope(), torch.no_grad():
            xs, _ = pack(inputs)
            spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
            interp, model_inputs, sims = [], [], []
            for sample in _draws(self.perturb_func, inputs, n_samples, kwargs):
                if self.perturb_interpretable_space:
                    z, model_in = sample, self.from_interp_rep_transform(sample, inputs, **kwargs)  # type: ignore[misc]
                else:
                    z, model_in = self.to_interp_rep_transform(sample, inputs, **kwargs), sample  # type: ignore[misc]
                interp.append(torch.as_tensor(z).reshape(1, -1))
                model_inputs.append(pack(model_in)[0])
                sims.append(float(torch.as_tensor(self.similarity_func(inputs, model_in, z, **kwargs))))
            outputs = self._evaluate(spec, model_inputs, perturbations_per_eval or len(model_inputs), show_progress)
            X = torch.cat(interp).double()
            W = torch.tensor(sims, dtype=torch.float64, device=X.device)
            coef = fit_linear(self.interpretable_model, X, outputs.double().reshape(-1, 1).to(X.device), W[:, None])
            return coef.reshape(1, -1).to(torch.float32 if not xs[0].is_floating_point() else xs[0].dtype)

    def _evaluate(self, spec: ForwardSpec, samples: list[tuple[Tensor, ...]], per: int, show: bool) -> Tensor:
        out = []
        bar = progress_bar(math.ceil(len(samples) / per), type(self).__name__, show)
        with torch.no_grad():
            for sl in chunks(len(samples), per):
                part = samples[sl]
                y = spec.tiled(len(part)).scores(tuple(torch.cat(t) for t in zip(*part)))
                require(y.numel() == len(part), f"the model must return one value per sample, got output of shape "
                        f"{tuple(y.shape)} for {len(part)} samples; pass target= or a scalar-valued forward_func")
                out.append(y.reshape(-1))
                bar.update()
        bar.close()
        return torch.cat(out)


def _draws(perturb_func: Callable[..., Any], inputs: Any, n: int, kwargs: dict[str, Any]) -> list[Any]:
    if inspect.isgeneratorfunction(perturb_func):
        gen = perturb_func(inputs, **kwargs)
        draws = [s for _, s in zip(range(n), gen)]
    else:
        draws = [perturb_func(inputs, **kwargs) for _ in range(n)]
    require(len(draws) > 0, "perturb_func produced no samples")
    return draws


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
        super().__init__(forward_func, model, sim, perturb_func or _bernoulli, True, _from_interp, None)
        self._default_perturb = perturb_func is None

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
        """Surrogate coefficients spread over the inputs' shapes, or ``(batch, n_features)`` (one row for a
        model that returns one value per batch) with ``return_input_shape=False``.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ARGS}
            {FEATURE_MASK}
            n_samples: model evaluations per example.
            {PERTURBATIONS_PER_EVAL}
            return_input_shape: spread coefficients over the inputs (True) or return them per feature.
            {SHOW_PROGRESS}
            {GENERATOR}
            {MEMORY}
        """
        check_positive_int(n_samples, "n_samples", allow_none=False)
        with HookScope(), torch.no_grad():
            xs, was_tuple, ev, plan = _setup(self, inputs, baselines, target, additional_forward_args, feature_mask,
                                             perturbations_per_eval, memory_budget, show_progress)
            ev.reference()
            plan = _replan(ev, plan, xs, feature_mask)
            present = self._samples(inputs, ev, plan, n_samples, generator)
            values = ev.run(present.shape[0], lambda sl: plan.removed(~present[sl]))
            weights = self._weights(inputs, ev, plan, present)
            coef = _fit(self.interpretable_model, present, values, weights, ev)
            return _format(coef, plan, ev, return_input_shape, was_tuple)

    def _samples(self, inputs: Any, ev: Evaluator, plan: FeaturePlan, n: int,
                 generator: torch.Generator | None) -> Tensor:
        device = ev.inputs[0].device
        if self._default_perturb:
            gdev = generator.device if generator is not None else device
            return (torch.rand(n, plan.n_features, generator=generator, device=gdev) < 0.5).to(device)
        kwargs = _captum_kwargs(ev, plan)
        draws = _draws(self.perturb_func, inputs, n, kwargs)
        z = torch.cat([torch.as_tensor(d).reshape(1, -1) for d in draws]).to(device)
        require(z.shape[1] == plan.n_features,
                f"perturb_func returned samples of length {z.shape[1]} but there are {plan.n_features} features")
        return z.bool()

    def _weights(self, inputs: Any, ev: Evaluator, plan: FeaturePlan, present: Tensor) -> Tensor:
        """Similarity of every sample to every example: ``(n, batch)``, or ``(n, 1)`` in aggregate mode."""
        if isinstance(self.similarity_func, _ExpKernel):
            return self.similarity_func.batched(_feature_sums(ev, plan), present)
        kwargs = _captum_kwargs(ev, plan)
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


class KernelShap(Lime):
    """KernelSHAP (Lundberg and Lee, 2017): Shapley values as the solution of a weighted least-squares
    problem over feature coalitions, solved in closed form with the efficiency constraint
    (attributions sum to ``f(inputs) - f(baselines)``) exact.

    With ``n_samples >= 2**n_features`` every coalition is enumerated with its exact Shapley-kernel weight
    and the result is the exact Shapley value. Otherwise coalitions are drawn by size from the Shapley
    kernel, in complementary pairs. ``n_samples`` counts all model evaluations per example, including the
    full input and the baseline.

    ``estimator="captum"`` reproduces Captum's estimator instead (unpaired draws, the two end points
    weighted 1e6, an unconstrained linear regression with intercept); with ``generator=None`` it draws from
    torch's global RNG in Captum's order, so a batch of one gives Captum's numbers under the same seed.

    Example:
        >>> import torch
        >>> from intellego.attr import KernelShap
        >>> f = lambda x: x[:, 0] * x[:, 1] + x[:, 2]
        >>> KernelShap(f).attribute(torch.tensor([[2.0, 3.0, 1.0]])).tolist()  # 8 coalitions: exact
        [[3.0, 3.0, 1.0]]
    """

    def __init__(self, forward_func: Any) -> None:
        super().__init__(forward_func, interpretable_model=LinearRegression())
        self.inf_weight = 1e6

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
        estimator: str = "kernelshap",
        memory_budget: int | None = None,
    ) -> Any:
        """Attributions like :meth:`Lime.attribute`.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ARGS}
            {FEATURE_MASK}
            n_samples: model evaluations per example (at least 2 with more than one feature).
            {PERTURBATIONS_PER_EVAL}
            return_input_shape: spread attributions over the inputs (True) or return them per feature.
            {SHOW_PROGRESS}
            {GENERATOR}
            estimator: keyword-only; ``"kernelshap"`` (default) or ``"captum"`` (Captum's estimator).
            {MEMORY}
        """
        check_positive_int(n_samples, "n_samples", allow_none=False)
        require(estimator in KERNEL_SHAP_ESTIMATORS, f"estimator must be one of {KERNEL_SHAP_ESTIMATORS}, "
                f"got {estimator!r}")
        with HookScope(), torch.no_grad():
            xs, was_tuple, ev, plan = _setup(self, inputs, baselines, target, additional_forward_args, feature_mask,
                                             perturbations_per_eval, memory_budget, show_progress)
            n_feat = plan.n_features
            require(n_feat == 1 or n_samples >= 2, f"KernelShap needs n_samples >= 2 with {n_feat} features "
                    "(the full input and the baseline), got {n_samples}")
            empty = ev.reference(ev.fills)
            plan = _replan(ev, plan, xs, feature_mask)
            full = ev.reference()
            if estimator == "captum":
                present = _captum_samples(n_feat, n_samples, generator, xs[0].device)
                weights = torch.ones(present.shape[0], 1, dtype=torch.float64, device=xs[0].device)
                weights[:2] = self.inf_weight
                values = ev.run(present.shape[0], lambda sl: plan.removed(~present[sl]))
                coef = _fit(LinearRegression(), present, values, weights, ev)
            else:
                present, weights, exact = _kernel_samples(n_feat, n_samples - 2, generator, xs[0].device)
                values = ev.run(present.shape[0], lambda sl: plan.removed(~present[sl])) if len(present) else None
                coef = _constrained(present, weights, values, empty, full, ev, 0.0 if exact else RIDGE)
            return _format(coef, plan, ev, return_input_shape, was_tuple)


def _setup(method: Any, inputs: Any, baselines: Any, target: Any, args: Any, feature_mask: Any, ppe: Any,
           budget: Any, show: bool) -> tuple[tuple[Tensor, ...], bool, Evaluator, FeaturePlan]:
    xs, was_tuple, ev = prepare(method, inputs, baselines, target, args, ppe, budget, show)
    return xs, was_tuple, ev, plan_features(xs, feature_mask)


def _replan(ev: Evaluator, plan: FeaturePlan, xs: tuple[Tensor, ...], feature_mask: Any) -> FeaturePlan:
    return plan_features(xs, feature_mask, aggregate=True) if ev.aggregate else plan


def _captum_kwargs(ev: Evaluator, plan: FeaturePlan) -> dict[str, Any]:
    single = len(ev.inputs) == 1
    masks = plan.masks or ()
    return {"baselines": ev.fills[0] if single else ev.fills,
            "feature_mask": masks[0] if single else masks, "num_interp_features": plan.n_features}


def _bernoulli(original: Any, **kwargs: Any) -> Tensor:
    """Captum's default sampler: each feature kept with probability 1/2 (used only through LimeBase)."""
    return torch.bernoulli(torch.full((1, int(kwargs["num_interp_features"])), 0.5)).long()


def _from_interp(sample: Tensor, original: Any, **kwargs: Any) -> Any:
    xs, was_tuple = pack(original)
    fills, _ = pack(kwargs["baselines"])
    masks, _ = pack(kwargs["feature_mask"])
    keep = sample.reshape(-1).bool()
    return unpack(tuple(torch.where(keep[m], x, f) for x, f, m in zip(xs, fills, masks)), was_tuple)


def _feature_sums(ev: Evaluator, plan: FeaturePlan) -> dict[str, Tensor]:
    """Per example and feature: sums of ``x**2``, ``x*b``, ``b**2``, ``(x-b)**2`` (batch summed when aggregate)."""
    rows = ev.batch
    sums = {k: torch.zeros(rows, plan.n_features, dtype=torch.float64, device=ev.inputs[0].device)
            for k in ("x2", "xb", "b2", "xmb2")}
    for x, f, m in zip(ev.inputs, ev.fills, plan.masks or ()):
        x, f = x.double().reshape(rows, -1), f.double().expand(ev.inputs[0].shape[0], *f.shape[1:]).reshape(rows, -1)
        idx = m.expand(rows, *m.shape[1:]).reshape(rows, -1)
        for k, v in (("x2", x * x), ("xb", x * f), ("b2", f * f), ("xmb2", (x - f) ** 2)):
            sums[k].scatter_add_(1, idx, v)
    if ev.aggregate:
        sums = {k: v.sum(0, keepdim=True) for k, v in sums.items()}
    return sums


def _fit(model: Any, present: Tensor, values: Tensor, weights: Tensor, ev: Evaluator) -> Tensor:
    """Coefficients ``(*O, F)``: one surrogate per output value, each example with its own weights."""
    n = present.shape[0]
    Y = values.double().reshape(n, -1)
    W = weights.double()
    if W.shape[1] != Y.shape[1]:
        W = W.reshape(n, W.shape[1], 1).expand(n, W.shape[1], Y.shape[1] // W.shape[1]).reshape(n, -1)
    coef = fit_linear(model, present.double(), Y, W)
    return coef.reshape(*ev.out_shape, present.shape[1])


def _format(coef: Tensor, plan: FeaturePlan, ev: Evaluator, return_input_shape: bool, was_tuple: bool) -> Any:
    dtype = ev.inputs[0].dtype if ev.inputs[0].is_floating_point() else torch.float32
    coef = coef.to(dtype)
    if not return_input_shape:
        return coef
    per_feature = coef.movedim(-1, 0)
    return unpack(plan.combine(per_feature, per_example=not ev.aggregate), was_tuple)


def _kernel_samples(n_feat: int, budget: int, generator: torch.Generator | None,
                    device: torch.device) -> tuple[Tensor, Tensor, bool]:
    """Coalitions (present features) and weights: every coalition with its exact kernel weight when
    ``2**n - 2 <= budget``, else ``budget`` draws with sizes from the Shapley kernel (weight 1), in
    complementary pairs once there are at least four draws per feature."""
    if n_feat == 1:
        return torch.zeros(0, 1, dtype=torch.bool, device=device), torch.zeros(0, dtype=torch.float64,
                                                                                device=device), True
    if n_feat <= 30 and 2**n_feat - 2 <= budget:
        codes = torch.arange(1, 2**n_feat - 1, device=device)
        present = (codes[:, None] >> torch.arange(n_feat, device=device)) & 1 == 1
        size = present.sum(1).double()
        binom = torch.tensor([math.comb(n_feat, int(s)) for s in range(n_feat + 1)], dtype=torch.float64,
                             device=device)
        return present, (n_feat - 1) / (binom[size.long()] * size * (n_feat - size)), True
    gdev = generator.device if generator is not None else device
    sizes = torch.arange(1, n_feat, dtype=torch.float64)
    probs = 1 / (sizes * (n_feat - sizes))
    # pairs carry about one equation each: pair only when there are enough draws to determine the problem
    paired = budget >= 4 * n_feat
    draws = (budget + 1) // 2 if paired else budget
    k = torch.multinomial(probs.to(gdev), draws, replacement=True, generator=generator) + 1
    ranks = torch.rand(draws, n_feat, generator=generator, device=gdev).argsort(1).argsort(1)
    first = ranks < k[:, None]
    present = torch.stack([first, ~first], 1).reshape(2 * draws, n_feat)[:budget] if paired else first
    return present.to(device), torch.ones(present.shape[0], dtype=torch.float64, device=device), False


def _constrained(present: Tensor, weights: Tensor, values: Tensor | None, empty: Tensor, full: Tensor,
                 ev: Evaluator, ridge: float = 0.0) -> Tensor:
    """Weighted least squares ``sum w (v(S) - v(0) - phi(S))**2`` subject to ``sum(phi) = v(all) - v(0)``."""
    base, total = empty.double().reshape(1, -1), (full.double() - empty.double()).reshape(1, -1)
    n_feat = present.shape[1]
    if values is None or n_feat == 1:
        return (total.expand(n_feat, -1) / n_feat).T.reshape(*ev.out_shape, n_feat)
    Z = present.double()
    # solve for the deviation from the equal split, with a small ridge: few or repeated coalitions can leave
    # directions undetermined, and those then stay at the equal split instead of blowing up
    equal = total / n_feat
    Y = values.double().reshape(Z.shape[0], -1) - base - Z.sum(1, keepdim=True) * equal
    wz = Z * weights[:, None]
    gram = wz.T @ Z
    ridge = ridge * gram.diagonal().mean().clamp_min(1e-300)
    kkt = torch.zeros(n_feat + 1, n_feat + 1, dtype=torch.float64, device=Z.device)
    kkt[:n_feat, :n_feat] = gram + ridge * torch.eye(n_feat, dtype=torch.float64, device=Z.device)
    kkt[:n_feat, n_feat] = kkt[n_feat, :n_feat] = 1
    rhs = torch.cat([wz.T @ Y, torch.zeros_like(total)])
    solution = torch.linalg.solve(kkt, rhs)[:n_feat] + equal
    return solution.T.reshape(*ev.out_shape, n_feat)


def _captum_samples(n_feat: int, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Captum's KernelShap draws: all kept, none kept, then sizes from the kernel and a random subset."""
    rows = [torch.ones(n_feat, dtype=torch.bool), torch.zeros(n_feat, dtype=torch.bool)][:n]
    counts = torch.arange(n_feat, dtype=torch.float)
    probs = torch.tensor(n_feat - 1) / (counts * (n_feat - counts))
    probs[0] = 0.0
    categorical = torch.distributions.Categorical(probs) if n_feat > 1 else None
    for _ in range(n - len(rows)):
        if categorical is None:
            raise IntellegoError("estimator='captum' needs at least two features")
        if generator is None:
            k = int(categorical.sample())
            vals = torch.randn(1, n_feat)
        else:
            k = int(torch.multinomial(probs, 1, generator=generator))
            vals = torch.randn(1, n_feat, generator=generator)
        threshold = torch.kthvalue(vals, n_feat - k).values.item()
        rows.append((vals > threshold)[0])
    return torch.stack(rows).to(device)


_fill_docs(Lime, KernelShap)
