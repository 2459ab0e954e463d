"""Shared pieces of the surrogate-model family (``Lime``, ``KernelShap``): the similarity kernel, Captum-style
sampler and transform, per-feature sums for batched similarities, and fitting/formatting of coefficients.

Example:
    >>> import torch
    >>> from intellego.attr import get_exp_kernel_similarity_function
    >>> sim = get_exp_kernel_similarity_function("euclidean", kernel_width=1.0)
    >>> round(sim(torch.zeros(1, 2), torch.ones(1, 2)), 4)  # exp(-2 / 2)
    0.3679
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.inputs import pack, pack_baselines, unpack
from ..engines.perturb import Evaluator, FeaturePlan
from ..errors import require
from ._perturbation import prepare, settled_plan
from .linear_models import fit_linear

__all__ = ["get_exp_kernel_similarity_function"]


class ExpKernel:
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
        """Similarities ``(n, B)`` of samples ``present (n, F)`` from per-feature sums ``(B, F)``
        (:func:`feature_sums` of :attr:`sums_needed`)."""
        drop = (~present).double()
        if self.mode == "euclidean":
            d2 = drop @ sums["xmb2"].T
        else:
            kept = present.double() @ sums["x2"].T
            dot = kept + drop @ sums["xb"].T
            norm2 = kept + drop @ sums["b2"].T
            cos = dot / (sums["x2"].sum(1)[None] * norm2).clamp_min(1e-16).sqrt()
            d2 = (1 - cos) ** 2
        return torch.exp(-d2 / (2 * self.width**2))

    @property
    def sums_needed(self) -> tuple[str, ...]:
        """The per-feature sums :meth:`batched` reads in this distance mode."""
        return ("xmb2",) if self.mode == "euclidean" else ("x2", "xb", "b2")


def get_exp_kernel_similarity_function(distance_mode: str = "cosine", kernel_width: float = 1.0) -> Callable[..., Any]:
    """Lime's similarity: an exponential kernel ``exp(-d**2 / (2 * kernel_width**2))`` of the distance ``d``
    between the flattened original and perturbed inputs (Captum's default is cosine with width 1). ``Lime``
    evaluates it for all samples at once.

    Args:
        distance_mode: ``"cosine"`` (one minus the cosine similarity) or ``"euclidean"``.
        kernel_width: The kernel's width (positive): larger widths weight distant samples more.

    Returns:
        ``f(original_input, perturbed_input, interpretable_sample=None, **kwargs) -> float``, for
        ``similarity_func=``.

    Example:
        >>> import torch
        >>> kernel = get_exp_kernel_similarity_function("euclidean", kernel_width=1.0)
        >>> round(kernel(torch.zeros(1, 2), torch.tensor([[0.0, 2.0]])), 4)  # exp(-4 / 2)
        0.1353
    """
    return ExpKernel(distance_mode, kernel_width)


def draw_samples(perturb_func: Callable[..., Any], inputs: Any, n: int, kwargs: dict[str, Any]) -> list[Any]:
    """``n`` samples from a user ``perturb_func`` (a function called ``n`` times, or a generator)."""
    if inspect.isgeneratorfunction(perturb_func):
        gen = perturb_func(inputs, **kwargs)
        draws = [s for _, s in zip(range(n), gen)]
    else:
        draws = [perturb_func(inputs, **kwargs) for _ in range(n)]
    require(len(draws) > 0, "perturb_func produced no samples")
    return draws


def setup(method: Any, inputs: Any, baselines: Any, target: Any, args: Any, feature_mask: Any, ppe: Any,
           budget: Any, show: bool) -> tuple[tuple[Tensor, ...], bool, Evaluator, FeaturePlan]:
    """Packed inputs, whether they were a tuple, the evaluator and the settled feature plan."""
    xs, was_tuple, ev = prepare(method, inputs, baselines, target, args, ppe, budget, show)
    return xs, was_tuple, ev, settled_plan(ev, xs, feature_mask)


def captum_kwargs(ev: Evaluator, plan: FeaturePlan) -> dict[str, Any]:
    """The keyword arguments Captum passes to user sampling/transform functions (copies of the plan's masks:
    plans are cached, and user code must not be able to change one)."""
    single = len(ev.inputs) == 1
    masks = tuple(m.clone() for m in plan.masks or ())
    return {"baselines": ev.fills[0] if single else ev.fills,
            "feature_mask": masks[0] if single else masks, "num_interp_features": plan.n_features}


def bernoulli_sample(original: Any, **kwargs: Any) -> Tensor:
    """Captum's default sampler: each feature kept with probability 1/2 (used only through LimeBase)."""
    return torch.bernoulli(torch.full((1, int(kwargs["num_interp_features"])), 0.5)).long()


def from_interp(sample: Tensor, original: Any, **kwargs: Any) -> Any:
    xs, was_tuple = pack(original, "original_inputs")
    fills = pack_baselines(kwargs.get("baselines"), xs, promote=True)
    masks, _ = pack(kwargs.get("feature_mask"), "feature_mask")
    keep = sample.reshape(-1).bool()
    return unpack(tuple(torch.where(keep[m], x, f) for x, f, m in zip(xs, fills, masks)), was_tuple)


_SUMS = {"x2": lambda x, f: x * x, "xb": lambda x, f: x * f, "b2": lambda x, f: f * f,
         "xmb2": lambda x, f: (x - f) ** 2}


def feature_sums(ev: Evaluator, plan: FeaturePlan, which: tuple[str, ...] = tuple(_SUMS)) -> dict[str, Tensor]:
    """Per example and feature: the sums ``which`` of ``x**2`` (``"x2"``), ``x*b``, ``b**2``, ``(x-b)**2``
    (one row, over all of every input, when aggregate: inputs then need not share a batch size, e.g. a list
    of sparse indices); all of them in one ``scatter_add_`` per input."""
    rows = 1 if ev.aggregate else ev.batch
    sums = torch.zeros(len(which), rows, plan.n_features, dtype=torch.float64, device=ev.inputs[0].device)
    for x, f, m in zip(ev.inputs, ev.fills, plan.masks or ()):
        shape = x.shape
        x, f = x.double().reshape(rows, -1), f.double().expand(shape).reshape(rows, -1)
        idx = m.expand(shape).reshape(1, rows, -1).expand(len(which), rows, -1)
        sums.scatter_add_(2, idx, torch.stack([_SUMS[k](x, f) for k in which]))
    return dict(zip(which, sums.unbind(0)))


def fit_surrogates(model: Any, present: Tensor, values: Tensor, weights: Tensor, ev: Evaluator) -> Tensor:
    """Coefficients ``(*O, F)``: one surrogate per output value, each example with its own weights."""
    n = present.shape[0]
    Y = values.double().reshape(n, -1)
    W = weights.double()
    if W.shape[1] != Y.shape[1]:
        W = W.reshape(n, W.shape[1], 1).expand(n, W.shape[1], Y.shape[1] // W.shape[1]).reshape(n, -1)
    coef = fit_linear(model, present.double(), Y, W)
    return coef.reshape(*ev.out_shape, present.shape[1])


def no_features(plan: FeaturePlan, ev: Evaluator, return_input_shape: bool, was_tuple: bool) -> Any:
    """Inputs without elements have no features: empty coefficients (one model call fixes the output's shape)."""
    ev.reference()
    coef = torch.zeros(*ev.out_shape, 0, dtype=torch.float64)
    return format_coefficients(coef, plan, ev, return_input_shape, was_tuple)


def format_coefficients(coef: Tensor, plan: FeaturePlan, ev: Evaluator, return_input_shape: bool,
                        was_tuple: bool) -> Any:
    """Coefficients in the input dtype: per feature, or spread onto the inputs with ``return_input_shape``."""
    dtype = ev.inputs[0].dtype if ev.inputs[0].is_floating_point() else torch.float32
    coef = coef.to(dtype)
    if not return_input_shape:
        return coef
    per_feature = coef.movedim(-1, 0)
    return unpack(plan.combine(per_feature, per_example=not ev.aggregate), was_tuple)
