"""Max-sensitivity (Yeh et al., 2019): the largest relative change of an explanation under small input
perturbations.

For each example, ``n_perturb_samples`` perturbed copies are explained and the score is
``max ||explanation(x') - explanation(x)|| / ||explanation(x)||``; lower is more stable.

Example:
    >>> import torch
    >>> from intellego.attr import Saliency
    >>> from intellego.metrics import sensitivity_max
    >>> model = torch.nn.Linear(4, 2)
    >>> x = torch.randn(3, 4)
    >>> g = torch.Generator().manual_seed(0)
    >>> sensitivity_max(Saliency(model).attribute, x, target=1, generator=g).tolist()  # constant gradient
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.inputs import pack, pack_args
from ..core.targets import expand_target
from ..engines.sampling import uniform
from ..errors import IntellegoError, describe, require
from ._common import call_with_generator, check_tensors, interleave, positional_count, sample_chunks

__all__ = ["sensitivity_max", "default_perturb_func"]

_HINT = "the inputs with every example repeated once per perturbation sample of the chunk"


def default_perturb_func(inputs: Any, perturb_radius: float = 0.02, *,
                         generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
    """``inputs`` plus noise drawn uniformly from the L-infinity ball of radius ``perturb_radius``.

    Args:
        inputs: A tensor or a tuple of tensors.
        perturb_radius: Half the side of the box the noise is drawn from.
        generator: ``torch.Generator`` for reproducible noise.

    Returns:
        A tuple of perturbed tensors (also for a tensor input), in the inputs' dtype and device.

    Example:
        >>> x = torch.zeros(2, 3)
        >>> (noisy,) = default_perturb_func(x, 0.1, generator=torch.Generator().manual_seed(0))
        >>> bool(noisy.abs().max() <= 0.1)
        True
    """
    xs, _ = pack(inputs)
    out = []
    for x in xs:
        u = uniform(x.numel(), x, generator).reshape(x.shape)
        out.append(x + (2 * u - 1) * perturb_radius)
    return tuple(out)


def _norm(values: Tensor, norm_ord: Any) -> Tensor:
    """Row norms of a 2-D tensor; ``"fro"`` is the Euclidean norm."""
    return torch.linalg.vector_norm(values, ord=2 if norm_ord == "fro" else norm_ord, dim=1)


def _check_norm(norm_ord: Any) -> None:
    ok = norm_ord == "fro" or (isinstance(norm_ord, (int, float)) and not isinstance(norm_ord, bool))
    require(ok, f"norm_ord must be 'fro' or a number (1, 2, float('inf'), ...), got {describe(norm_ord)}")


def _expand_kwargs(kwargs: dict[str, Any], k: int, batch: int, xs: tuple[Tensor, ...]) -> dict[str, Any]:
    """The explanation function's keyword arguments for the inputs repeated ``k`` times in place."""
    out = dict(kwargs)
    if "target" in kwargs:
        out["target"] = expand_target(kwargs["target"], k, batch)
    if kwargs.get("additional_forward_args") is not None:
        args = kwargs["additional_forward_args"]
        expanded = interleave(pack_args(args), k, batch)
        out["additional_forward_args"] = expanded if isinstance(args, tuple) else expanded[0]
    if "baselines" in kwargs:
        base = kwargs["baselines"]
        first = base[0] if isinstance(base, tuple) and base else base
        if isinstance(first, Tensor) and first.shape == xs[0].shape:
            out["baselines"] = interleave(base, k, batch)
    return out


def _explain(explanation_func: Callable[..., Any], inputs: Any, kwargs: dict[str, Any],
             expected: tuple[Tensor, ...]) -> Tensor:
    """Call the explanation function and flatten its result to ``(rows, features)``."""
    result = explanation_func(inputs, **kwargs)
    expl = check_tensors(result, expected, "explanations", "explanation_func")
    return torch.cat([e.reshape(e.shape[0], -1) for e in expl], dim=1)


def sensitivity_max(
    explanation_func: Callable[..., Any],
    inputs: Any,
    perturb_func: Callable[..., Any] = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: Any = "fro",
    max_examples_per_batch: int | None = None,
    *,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> Tensor:
    """Max-sensitivity of ``explanation_func`` at ``inputs``, one score per example.

    Args:
        explanation_func: ``explanation_func(inputs, **kwargs)`` returning explanations shaped like the inputs,
            e.g. ``Saliency(model).attribute``.
        inputs: A tensor or a tuple of tensors, batch first.
        perturb_func: ``perturb_func(inputs[, perturb_radius]) -> perturbed inputs`` (a tensor or a tuple, the
            shape of the inputs with every example repeated once per sample of a chunk); the radius is passed
            when the function takes a second positional argument, ``generator=`` when it takes that keyword.
        perturb_radius: Radius of the default perturbation's L-infinity ball.
        n_perturb_samples: Perturbed copies per example.
        norm_ord: ``"fro"`` (Euclidean) or a number, the norm over all explanation values of an example.
        max_examples_per_batch: At most this many perturbed rows per explanation call (at least one sample of
            every example per call); None explains all samples at once.
        generator: For reproducible perturbations (passed to ``perturb_func`` when it takes it).
        **kwargs: Passed to ``explanation_func``; ``target``, ``additional_forward_args`` and per-example
            ``baselines`` follow their examples when inputs are repeated.

    Returns:
        A tensor of shape ``(N,)``.

    Example:
        >>> from intellego.attr import Saliency
        >>> model = torch.nn.Linear(3, 2)
        >>> sens = sensitivity_max(Saliency(model).attribute, torch.randn(4, 3), target=0,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> sens.tolist()  # a linear model's gradient does not change with the input
        [0.0, 0.0, 0.0, 0.0]
    """
    xs, _ = pack(inputs)
    _check_norm(norm_ord)
    require(isinstance(perturb_radius, (int, float)) and not isinstance(perturb_radius, bool)
            and perturb_radius >= 0, f"perturb_radius must be a non-negative number, got {describe(perturb_radius)}")
    for name, func in (("explanation_func", explanation_func), ("perturb_func", perturb_func)):
        if not callable(func):
            raise IntellegoError(f"{name} must be callable, got {describe(func)}")
    batch = xs[0].shape[0]
    takes_radius = positional_count(perturb_func) > 1
    with torch.no_grad():
        reference = _explain(explanation_func, inputs, kwargs, xs)
        ref_norm = _norm(reference, norm_ord)
        ref_norm = torch.where(ref_norm == 0, torch.ones_like(ref_norm), ref_norm)
        best: Tensor | None = None
        expanded_for, kw = 0, kwargs
        for k in sample_chunks(n_perturb_samples, batch, max_examples_per_batch):
            expanded = tuple(x.repeat_interleave(k, dim=0) for x in xs)
            arg = expanded[0] if len(xs) == 1 else expanded
            perturbed = call_with_generator(perturb_func, (arg, perturb_radius) if takes_radius else (arg,),
                                            generator)
            perturbed = check_tensors(perturbed, expanded, "perturbed inputs", "perturb_func", _HINT)
            if k != expanded_for:
                expanded_for, kw = k, _expand_kwargs(kwargs, k, batch, xs)
            explained = _explain(explanation_func, perturbed[0] if len(xs) == 1 else perturbed, kw, expanded)
            change = explained.reshape(batch, k, -1) - reference.reshape(batch, 1, -1)
            ratio = _norm(change.reshape(batch * k, -1), norm_ord).reshape(batch, k) / ref_norm.reshape(batch, 1)
            chunk_max = ratio.max(dim=1).values
            best = chunk_max if best is None else torch.maximum(best, chunk_max)
    if best is None:
        raise IntellegoError("n_perturb_samples must be at least 1")
    return best
