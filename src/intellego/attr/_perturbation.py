"""Plumbing shared by the perturbation methods (ablation, Shapley, Lime, KernelShap): argument packing into an
:class:`~intellego.engines.perturb.Evaluator`, the feature plan with its output mode settled, and the one-removal
ablation pass.

Example:
    >>> import torch
    >>> from intellego.attr import FeatureAblation
    >>> from intellego.attr._perturbation import ablate, prepare, settled_plan
    >>> method = FeatureAblation(lambda x: x.sum(1))
    >>> xs, was_tuple, ev = prepare(method, torch.ones(2, 3), None, None, None, None, None, False)
    >>> ablate(ev, settled_plan(ev, xs, None))[0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec
from ..core.inputs import pack, pack_baselines
from ..engines.perturb import PRIMARY_NAMES, ArgNames, Evaluator, FeaturePlan, plan_features
from ._base import PerturbationAttribution

__all__ = ["prepare", "settled_plan", "ablate"]


def prepare(method: PerturbationAttribution, inputs: Any, baselines: Any, target: Any, additional_forward_args: Any,
            perturbations_per_eval: int | None, memory_budget: int | None, show_progress: bool,
            names: ArgNames = PRIMARY_NAMES) -> tuple[tuple[Tensor, ...], bool, Evaluator]:
    """Pack the arguments of a perturbation method and build its :class:`Evaluator` (nothing evaluated);
    errors name the arguments as ``names`` says."""
    xs, was_tuple = pack(inputs, names.inputs)
    fills = pack_baselines(baselines, xs, names.baselines, inputs_name=names.inputs, noun=names.tensor, promote=True)
    spec = ForwardSpec.build(method.forward_func, target, additional_forward_args, xs[0].shape[0])
    ev = Evaluator(spec, xs, fills, target_is_none=target is None, perturbations_per_eval=perturbations_per_eval,
                   memory_budget=memory_budget, show_progress=show_progress,
                   desc=method._progress_desc() if show_progress else "")
    return xs, was_tuple, ev


def settled_plan(ev: Evaluator, xs: tuple[Tensor, ...], feature_mask: Any,
                 plan: FeaturePlan | None = None, names: ArgNames = PRIMARY_NAMES, gaps: bool = False) -> FeaturePlan:
    """The feature plan of ``feature_mask`` (``plan`` if already built; ``gaps``: see ``plan_features``). Masks
    that differ between examples need one output per example: then the output mode is fixed up front (one extra
    call), so a model returning one value per batch is refused before the perturbed calls. Otherwise the first
    perturbed call fixes it."""
    plan = plan_features(xs, feature_mask, names=names, gaps=gaps) if plan is None else plan
    if plan.per_example:
        ev.reference()
        if ev.aggregate:
            plan_features(xs, feature_mask, aggregate=True, names=names)  # raises: masks cannot differ between examples
    return plan


def ablate(ev: Evaluator, plan: FeaturePlan,
           fills: Callable[[Tensor], tuple[Tensor, ...]] | None = None) -> tuple[Tensor, ...]:
    """``f(inputs) - f(without feature k)`` for every feature, spread onto the inputs.

    Row 0 of the one evaluation is the unperturbed input (feature id -1 removes nothing), so the reference
    output rides along in the first model call. ``fills(ids)`` gives per-row fill values for feature ids.
    """
    device = ev.inputs[0].device

    def ids(sl: slice) -> Tensor:
        return torch.arange(sl.start - 1, sl.stop - 1, device=device)

    outputs = ev.run(plan.n_features + 1, lambda sl: plan.one_removal(sl, device),
                     None if fills is None else lambda sl: fills(ids(sl)))
    return plan.combine(torch.sub(outputs[0], outputs[1:]), per_example=not ev.aggregate)
