"""Shapley family: ``ShapleyValueSampling`` (random permutations) and ``ShapleyValues`` (exact).

A coalition's value is the model output with the features outside it set to their baselines.
``ShapleyValueSampling`` averages marginal gains along random feature orders; every prefix of every
order in a chunk goes through the model in one call. ``ShapleyValues`` evaluates each of the ``2**n``
coalitions once (Captum walks all ``n!`` orders, ``n * n!`` evaluations) and weighs them exactly.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int
from ..core.inputs import unpack
from ..engines.perturb import plan_features
from ..errors import IntellegoError
from ._base import PerturbationAttribution, public_call
from ._perturbation import prepare, settled_plan

__all__ = ["ShapleyValueSampling", "ShapleyValues", "MAX_EXACT_FEATURES"]

MAX_EXACT_FEATURES = 20


def _float(t: Tensor) -> Tensor:
    return t if t.is_floating_point() else t.double()


class ShapleyValueSampling(PerturbationAttribution):
    """Shapley values estimated from random feature permutations (Castro et al., 2009).

    The estimate is unbiased and its attributions always sum to ``f(inputs) - f(baselines)`` (efficiency).
    All examples of the batch share the permutations, as in Captum.

    Example:
        >>> import torch
        >>> from intellego.attr import ShapleyValueSampling
        >>> model = torch.nn.Linear(3, 1)
        >>> x = torch.randn(2, 3)
        >>> g = torch.Generator().manual_seed(0)
        >>> attr = ShapleyValueSampling(model).attribute(x, target=0, n_samples=4, generator=g)
        >>> torch.allclose(attr, model.weight * x, atol=1e-5)  # additive model: exact
        True
    """

    _supports_future = True  # attribute_future, as in Captum

    @public_call
    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        n_samples: int = 25,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        antithetic: bool = False,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {FEATURE_MASK}
            n_samples: number of random permutations; the model runs ``n_samples * n_features + 1`` times
                per example.
            {PERTURBATIONS_PER_EVAL}
            {SHOW_PROGRESS}
            {GENERATOR}
            antithetic: keyword-only; pair every permutation with its reverse (lower variance for
                near-additive models). ``n_samples`` counts both members of a pair.
            {MEMORY_BUDGET}

        Returns:
            Attributions shaped like ``inputs`` (``(*O, *input.shape[1:])`` for other output shapes ``O``).
        """
        check_positive_int(n_samples, "n_samples", allow_none=False)
        with torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, baselines, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress)
            plan = settled_plan(ev, xs, feature_mask)
            n_feat = plan.n_features
            if n_feat == 0:  # inputs without elements: empty attributions (one call fixes the output's shape)
                ev.reference()
                dtype = xs[0].dtype if xs[0].is_floating_point() else torch.get_default_dtype()
                empty = torch.zeros(0, *ev.out_shape, dtype=dtype, device=xs[0].device)
                return unpack(plan.combine(empty, per_example=not ev.aggregate), was_tuple)
            perms = _permutations(n_samples, n_feat, xs[0].device, generator, antithetic)
            ranks = perms.argsort(1)
            steps = torch.arange(n_feat, device=xs[0].device)

            def removed(sl: slice) -> tuple[Tensor, ...]:
                # row 0 is the empty coalition (everything removed); row 1 + i*n + k the prefix of length k + 1
                if sl.start == 0 and sl.stop == n_samples * n_feat + 1:  # all rows: one comparison, no indexing
                    prefixes = (ranks[:, None, :] > steps[:, None]).reshape(n_samples * n_feat, n_feat)
                    return plan.removed(torch.cat([prefixes.new_ones(1, n_feat), prefixes]))
                rows = torch.arange(sl.start - 1, sl.stop - 1, device=xs[0].device)
                at = rows.clamp_min(0)
                return plan.removed((ranks[at // n_feat] > steps[at % n_feat, None]) | (rows < 0)[:, None])

            out = _float(ev.run(n_samples * n_feat + 1, removed))
            empty, values = out[0], out[1:].reshape(n_samples, n_feat, *ev.out_shape)
            before = torch.cat([empty.expand(n_samples, 1, *ev.out_shape), values[:, :-1]], 1)
            gains = (values - before).reshape(n_samples * n_feat, *ev.out_shape)
            phi = torch.zeros(n_feat, *ev.out_shape, dtype=gains.dtype, device=gains.device)
            phi.index_add_(0, perms.reshape(-1), gains)
            return unpack(plan.combine(phi / n_samples, per_example=not ev.aggregate), was_tuple)


def _permutations(n: int, k: int, device: torch.device, generator: torch.Generator | None,
                  antithetic: bool) -> Tensor:
    gdev = generator.device if generator is not None else device
    perms = torch.rand(n, k, generator=generator, device=gdev).argsort(1).to(device)
    if antithetic:
        perms[1::2] = perms[0::2][: perms[1::2].shape[0]].flip(1)
    return perms


class ShapleyValues(PerturbationAttribution):
    """Exact Shapley values by enumerating all ``2**n`` coalitions of the ``n`` features.

    Captum's class of this name averages over all ``n!`` feature orders; the values are the same, at
    ``2**n`` model evaluations instead of ``n * n!``. Group features with ``feature_mask``: more than
    ``MAX_EXACT_FEATURES`` features are refused (use ``ShapleyValueSampling`` or ``KernelShap``).

    Example:
        >>> import torch
        >>> from intellego.attr import ShapleyValues
        >>> f = lambda x: x[:, 0] * x[:, 1]  # an interaction splits equally
        >>> ShapleyValues(f).attribute(torch.tensor([[2.0, 3.0]])).tolist()
        [[3.0, 3.0]]
    """

    _supports_future = True  # attribute_future, as in Captum

    @public_call
    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {FEATURE_MASK}
            {PERTURBATIONS_PER_EVAL}
            {SHOW_PROGRESS}
            {MEMORY_BUDGET}

        Returns:
            Attributions shaped like ``inputs`` (``(*O, *input.shape[1:])`` for other output shapes ``O``).
        """
        with torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, baselines, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress)
            plan = plan_features(xs, feature_mask)
            n_feat = plan.n_features
            if n_feat > MAX_EXACT_FEATURES:  # the message is built on failure only
                raise IntellegoError(f"ShapleyValues enumerates 2**n coalitions and accepts at most "
                                     f"{MAX_EXACT_FEATURES} features, got {n_feat}; group features with "
                                     "feature_mask or use ShapleyValueSampling / KernelShap")
            plan = settled_plan(ev, xs, feature_mask, plan)
            absent = _absent(n_feat, xs[0].device)  # row = coalition code (bit i: feature i kept)

            def removed(sl: slice) -> tuple[Tensor, ...]:
                return plan.removed_kept(absent, sl) if n_feat <= _KEPT_FEATURES else plan.removed(absent[sl])

            values = _float(ev.run(2**n_feat, removed))
            return unpack(plan.combine(_exact_shapley(values, n_feat), per_example=not ev.aggregate), was_tuple)

    def attribute_future(self, inputs: Any, baselines: Any = None, target: Any = None,  # type: ignore[override]
                         additional_forward_args: Any = None, feature_mask: Any = None, n_samples: int = 25,
                         perturbations_per_eval: int | None = None, show_progress: bool = False,
                         **kwargs: Any) -> torch.Future[Any]:
        """Captum's ShapleyValues.attribute_future takes ``n_samples`` (from ShapleyValueSampling) and ignores it:
        the values are exact. The other arguments are those of :meth:`attribute`."""
        return super().attribute_future(inputs, baselines, target, additional_forward_args, feature_mask,
                                        perturbations_per_eval, show_progress, **kwargs)


def _exact_shapley(values: Tensor, n: int) -> Tensor:
    """Shapley values ``(n, *O)`` from the values ``(2**n, *O)`` of all coalitions (bit ``i`` = feature ``i``).

    One matrix product: coalition ``S`` enters ``phi_i`` with ``+w(|S| - 1)`` when ``i`` is in ``S`` and with
    ``-w(|S|)`` otherwise, ``w(s) = s! (n - 1 - s)! / n!``.
    """
    return (_shapley_weights(n, values.dtype, values.device) @ values.reshape(2**n, -1)).reshape(n, *values.shape[1:])


_KEPT_FEATURES = 12  # up to 2**12 coalitions: the shape-only tables below are kept (at most 4096 x 12)


def _absent_table(n: int, device: torch.device) -> Tensor:
    """Boolean ``(2**n, n)``: row ``code`` marks the features absent from coalition ``code``."""
    codes = torch.arange(2**n, device=device)
    return codes[:, None] & (1 << torch.arange(n, device=device)) == 0


def _weight_table(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(n, 2**n)``: the weight of each coalition in each feature's Shapley value (see :func:`_exact_shapley`)."""
    member = ~_absent(n, device)
    sizes = member.sum(1)
    weight = torch.tensor([math.factorial(s) * math.factorial(n - 1 - s) / math.factorial(n) for s in range(n)]
                          + [0.0], dtype=dtype, device=device)
    return torch.where(member, weight[(sizes - 1).clamp_min(0)][:, None], -weight[sizes][:, None]).T.contiguous()


# Built once per size (dtype, device) for up to _KEPT_FEATURES features: internal, only read.
_kept_absent = functools.lru_cache(maxsize=16)(_absent_table)
_kept_weights = functools.lru_cache(maxsize=16)(_weight_table)


def _absent(n: int, device: torch.device) -> Tensor:
    return (_kept_absent if n <= _KEPT_FEATURES else _absent_table)(n, device)


def _shapley_weights(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return (_kept_weights if n <= _KEPT_FEATURES else _weight_table)(n, dtype, device)
