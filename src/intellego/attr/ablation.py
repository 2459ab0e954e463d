"""Ablation family: ``FeatureAblation``, ``Occlusion`` and ``FeaturePermutation`` on the perturbation engine.

Each feature is removed once (set to its baseline, a sliding window set to the baseline, or its values
shuffled across the batch); the attribution of a feature is ``f(inputs) - f(inputs without the feature)``.
All removals of a chunk go through the model in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from ..core.inputs import unpack
from ..engines.perturb import PRIMARY_NAMES, ArgNames, FeaturePlan, plan_features
from ..errors import IntellegoError, require
from ._base import PerturbationAttribution, public_call
from ._perturbation import ablate, prepare, settled_plan

__all__ = ["FeatureAblation", "Occlusion", "FeaturePermutation"]


class FeatureAblation(PerturbationAttribution):
    """Feature ablation: replace each feature (group) by its baseline and record the change of the output.

    Example:
        >>> import torch
        >>> from intellego.attr import FeatureAblation
        >>> model = torch.nn.Linear(4, 1)
        >>> x = torch.randn(2, 4)
        >>> attr = FeatureAblation(model).attribute(x, target=0)
        >>> torch.allclose(attr, model.weight * x, atol=1e-6)
        True
    """

    _supports_future = True  # attribute_future, as in Captum (FeaturePermutation inherits it)

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
        **kwargs: Any,
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
            **kwargs: Accepted and unused, as in Captum (which keeps them for its subclasses' internals); a
                warning names them.

        Returns:
            Attributions shaped like ``inputs`` when the model returns one value per example; with outputs of shape
            ``O`` in general (several values per example, or one per batch), shape ``(*O, *input.shape[1:])``.
        """
        self._warn_unused_kwargs(kwargs)
        return self._ablation(inputs, baselines, target, additional_forward_args, feature_mask,
                              perturbations_per_eval, show_progress, memory_budget, PRIMARY_NAMES)

    def _ablation(self, inputs: Any, baselines: Any, target: Any, additional_forward_args: Any, feature_mask: Any,
                  perturbations_per_eval: int | None, show_progress: bool, memory_budget: int | None,
                  names: ArgNames) -> Any:
        """:meth:`attribute` for a caller whose users name the arguments as ``names`` says (layer methods)."""
        with torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, baselines, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress, names)
            # ids with gaps are fine here, as in Captum: each element's result is its own feature's ablation
            return unpack(ablate(ev, settled_plan(ev, xs, feature_mask, names=names, gaps=True)), was_tuple)


class Occlusion(FeatureAblation):
    """Occlusion (Zeiler and Fergus, 2014): slide a window of baseline values over the input; each element's
    attribution is the mean output change over the windows that cover it.

    Example:
        >>> import torch
        >>> from intellego.attr import Occlusion
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x = torch.randn(3, 1, 4, 4)
        >>> Occlusion(model).attribute(x, sliding_window_shapes=(1, 2, 2), strides=2, target=1).shape
        torch.Size([3, 1, 4, 4])
    """

    _supports_future = False  # Captum's Occlusion refuses attribute_future

    @public_call
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        sliding_window_shapes: Any,
        strides: Any = None,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            sliding_window_shapes: the window, one int per non-batch dimension (a tuple of such tuples for
                tuple inputs). Windows at the far border are clipped so every element is covered.
            strides: window steps: an int, one int per dimension, or a tuple of those per input. Default 1.
            {BASELINES}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {PERTURBATIONS_PER_EVAL}
            {SHOW_PROGRESS}
            {MEMORY_BUDGET}

        Returns:
            Attributions shaped like ``inputs`` (see :meth:`FeatureAblation.attribute` for other outputs).
        """
        with torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, baselines, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress)
            plan = plan_features(xs, sliding_window_shapes=sliding_window_shapes, strides=strides)
            return unpack(ablate(ev, plan), was_tuple)


class FeaturePermutation(FeatureAblation):
    """Permutation feature importance: shuffle each feature across the batch and record the output change.

    Each feature gets its own random permutation of the batch (never the identity), shared by all input
    tensors the feature spans. ``perm_func(x, mask) -> x with the masked elements permuted`` replaces the
    default shuffle (called once per feature and tensor, as in Captum).

    Example:
        >>> import torch
        >>> from intellego.attr import FeaturePermutation
        >>> model = torch.nn.Linear(3, 1)
        >>> x = torch.randn(8, 3)
        >>> g = torch.Generator().manual_seed(0)
        >>> FeaturePermutation(model).attribute(x, target=0, generator=g).shape
        torch.Size([8, 3])
    """

    def __init__(self, forward_func: Any, perm_func: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        super().__init__(forward_func)
        require(perm_func is None or callable(perm_func), "perm_func must be a callable (x, mask) -> tensor")
        self.perm_func = perm_func

    @public_call
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        memory_budget: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {FEATURE_MASK}
            {PERTURBATIONS_PER_EVAL}
            {SHOW_PROGRESS}
            {GENERATOR}
            {MEMORY_BUDGET}
            **kwargs: Accepted and unused, as in Captum (``baselines=`` included: permuted values replace the
                features); a warning names them.

        Returns:
            Attributions like :meth:`FeatureAblation.attribute`; the batch must hold at least 2 examples.
        """
        self._warn_unused_kwargs(kwargs)
        return self._permutation(inputs, target, additional_forward_args, feature_mask, perturbations_per_eval,
                                 show_progress, generator, memory_budget, PRIMARY_NAMES)

    def _permutation(self, inputs: Any, target: Any, additional_forward_args: Any, feature_mask: Any,
                     perturbations_per_eval: int | None, show_progress: bool, generator: torch.Generator | None,
                     memory_budget: int | None, names: ArgNames) -> Any:
        """:meth:`attribute` for a caller whose users name the arguments as ``names`` says (layer methods)."""
        with torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, None, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress, names)
            batch = xs[0].shape[0]
            if batch < 2:  # the message is built on failure only
                raise IntellegoError(f"FeaturePermutation shuffles features across the batch and needs at least 2 "
                                     f"examples, got {names.inputs} of shape {tuple(xs[0].shape)}")
            plan = settled_plan(ev, xs, feature_mask, names=names)
            if self.perm_func is not None:
                fills = self._custom_fills(xs, plan)
            else:
                # each tensor is shuffled along its own first dimension: a list of sparse ids of another length
                # than the batch (for a model that returns one value per batch) gets permutations of its length
                n_perm = max(plan.n_features, 1)  # row -1 (the unperturbed input) reads permutation 0
                perms = {n: _permutations(n_perm, n, xs[0].device, generator) if n >= 2 else
                         torch.arange(n, device=xs[0].device).expand(n_perm, n)
                         for n in dict.fromkeys(x.shape[0] if x.dim() > 0 else 1 for x in xs)}
                fills = lambda ids: tuple(x[perms[x.shape[0]][ids.clamp_min(0)]] if x.dim() > 0 else  # noqa: E731
                                          x.expand(ids.shape[0]) for x in xs)
            return unpack(ablate(ev, plan, fills), was_tuple)

    def _custom_fills(self, xs: tuple[Tensor, ...], plan: FeaturePlan) -> Callable[[Tensor], tuple[Tensor, ...]]:
        perm_func = cast(Callable[[Tensor, Tensor], Tensor], self.perm_func)

        def fills(ids: Tensor) -> tuple[Tensor, ...]:
            masks = plan.single(ids)
            keep = ids.tolist()  # perm_func is user Python code, called once per feature (none for row -1)
            return tuple(torch.stack([perm_func(x, m[j]) if keep[j] >= 0 else x for j in range(m.shape[0])])
                         for x, m in zip(xs, masks))

        return fills


_RANDPERM_FROM = 64


def _permutations(n: int, batch: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """``n`` random permutations of ``range(batch)``, none of them the identity."""
    gdev = generator.device if generator is not None else device
    if batch >= _RANDPERM_FROM:  # sorting n x batch random keys costs more than n calls of randperm
        perms = torch.stack([torch.randperm(batch, generator=generator, device=gdev) for _ in range(n)])
    else:
        perms = torch.rand(n, batch, generator=generator, device=gdev).argsort(1)
    ident = torch.arange(batch, device=gdev)
    while True:
        bad = (perms == ident).all(1)
        if not bool(bad.any()):
            return perms.to(device)
        perms[bad] = torch.rand(int(bad.sum()), batch, generator=generator, device=gdev).argsort(1)
