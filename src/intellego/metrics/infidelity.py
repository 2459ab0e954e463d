"""Infidelity (Yeh et al., 2019): how well ``attributions . I`` predicts ``f(x) - f(x - I)`` for random
perturbations ``I``.

For each example the score is the mean over ``n_perturb_samples`` draws of
``(sum(attributions * I) - (f(x) - f(x - I)))**2``; lower is better. With ``normalize=True`` the
attributions are first rescaled by the least-squares factor ``beta`` per example, so the score no longer
depends on the attributions' overall scale.

Example:
    >>> import torch
    >>> from intellego.metrics import infidelity, noise_perturbation
    >>> model = torch.nn.Linear(4, 1, bias=False)
    >>> x = torch.randn(3, 4)
    >>> exact = x * 0 + model.weight  # the gradient of a linear model
    >>> g = torch.Generator().manual_seed(0)
    >>> infidelity(model, noise_perturbation(0.1), x, exact, generator=g).abs().max().item() < 1e-10
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.grad import ForwardSpec
from ..core.inputs import pack, unpack
from ..engines.sampling import gaussian_like
from ..errors import IntellegoError, describe, require
from ._common import call_with_generator, check_tensors, interleave, sample_chunks

__all__ = ["infidelity", "infidelity_perturb_func_decorator", "noise_perturbation"]

_PERTURB_HINT = "the inputs with every example repeated once per perturbation sample of the chunk"


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with 1 as the denominator where ``den`` is 0."""
    return num / torch.where(den == 0, torch.ones_like(den), den)


def infidelity_perturb_func_decorator(multiply_by_inputs: bool = True) -> Callable[[Callable[..., Any]], Callable]:
    """Turn a function returning only perturbed inputs into one returning ``(perturbations, perturbed)``.

    The perturbation is ``inputs - perturbed``, divided by ``inputs - baselines`` (or by ``inputs`` without
    baselines; entries where that is 0 are left undivided) when ``multiply_by_inputs`` is True, matching
    attributions that are already multiplied by the inputs. A ``generator`` keyword is passed through to
    the wrapped function when it accepts one.

    Args:
        multiply_by_inputs: Divide the perturbation by ``inputs - baselines`` (for attributions multiplied by
            the inputs, such as Integrated Gradients).

    Returns:
        A decorator for ``perturb_func(inputs[, baselines]) -> perturbed inputs``.

    Example:
        >>> import torch
        >>> @infidelity_perturb_func_decorator(False)
        ... def halve(inputs):
        ...     return inputs / 2
        >>> pert, perturbed = halve(torch.full((1, 2), 4.0))
        >>> pert[0].tolist(), perturbed[0].tolist()
        ([[2.0, 2.0]], [[2.0, 2.0]])
    """

    def decorate(perturb_func: Callable[..., Any]) -> Callable[..., tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]:
        @functools.wraps(perturb_func)
        def perturb(inputs: Any, baselines: Any = None, *, generator: torch.Generator | None = None
                    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            args = (inputs,) if baselines is None else (inputs, baselines)
            xs, _ = pack(inputs)
            perturbed = check_tensors(call_with_generator(perturb_func, args, generator), xs, "perturbed inputs",
                                      "perturb_func")
            if baselines is None:
                bases: tuple[Any, ...] = (None,) * len(xs)
            else:
                bases = tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,)
            out = []
            for x, xp, b in zip(xs, perturbed, bases):
                diff = x - xp
                if multiply_by_inputs:
                    diff = _safe_ratio(diff, x if b is None else x - b)
                out.append(diff)
            return tuple(out), perturbed

        return perturb

    return decorate


def noise_perturbation(stdev: float = 0.1) -> Callable[..., tuple[Tensor, ...]]:
    """A perturbation function for :func:`infidelity`: Gaussian noise ``I`` with ``stdev``, perturbed
    input ``x - I``; reproducible through the metric's ``generator``.

    Args:
        stdev: Standard deviation of the noise.

    Returns:
        ``perturb(inputs, *, generator=None) -> (noise, perturbed)``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> noise, perturbed = noise_perturbation(0.5)(torch.zeros(2, 3), generator=g)
        >>> torch.equal(perturbed, -noise)
        True
    """
    require(isinstance(stdev, (int, float)) and not isinstance(stdev, bool) and stdev >= 0,
            f"stdev must be a non-negative number, got {describe(stdev)}")

    def perturb(inputs: Any, *, generator: torch.Generator | None = None) -> Any:
        xs, was_tuple = pack(inputs)
        noise = [gaussian_like(x, float(stdev), generator) for x in xs]
        return unpack(noise, was_tuple), unpack([x - n for x, n in zip(xs, noise)], was_tuple)

    return perturb


def _expand_baselines(baselines: Any, batch: int, k: int) -> Any:
    if baselines is None:
        return None
    return interleave(baselines, k, batch) if batch > 1 else baselines


def _perturb(perturb_func: Callable[..., Any], xs: tuple[Tensor, ...], baselines: Any, k: int,
             generator: torch.Generator | None) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Call ``perturb_func`` on the inputs repeated ``k`` times in place and check what it returns."""
    batch = xs[0].shape[0]
    expanded = tuple(x.repeat_interleave(k, dim=0) for x in xs)
    arg = expanded if len(xs) > 1 else expanded[0]
    base = _expand_baselines(baselines, batch, k)
    if isinstance(base, tuple) and len(xs) == 1:
        base = base[0]
    args = (arg,) if base is None else (arg, base)
    result = call_with_generator(perturb_func, args, generator)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise IntellegoError("perturb_func must return a pair (perturbations, perturbed_inputs), got "
                             f"{describe(result)}; decorate a function that returns only perturbed inputs with "
                             "@infidelity_perturb_func_decorator()")
    perturbations = check_tensors(result[0], expanded, "perturbations", "perturb_func", _PERTURB_HINT)
    perturbed = check_tensors(result[1], expanded, "perturbed inputs", "perturb_func", _PERTURB_HINT)
    return perturbations, perturbed


def infidelity(
    forward_func: Callable[..., Tensor],
    perturb_func: Callable[..., Any],
    inputs: Any,
    attributions: Any,
    baselines: Any = None,
    additional_forward_args: Any = None,
    target: Any = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Infidelity of ``attributions`` for ``forward_func``'s ``target`` output, one score per example.

    Args:
        forward_func: The model or any callable ``forward_func(*inputs, *additional_forward_args)``.
        perturb_func: ``perturb_func(inputs[, baselines]) -> (perturbations, perturbed_inputs)``, called on
            the inputs with every example repeated once per sample of a chunk (tensors, or tuples for tuple
            inputs, of exactly that shape). It receives ``generator=`` when it takes that keyword.
        inputs: A tensor or a tuple of tensors, batch first.
        attributions: Attributions with the structure and shapes of ``inputs``.
        baselines: Passed on to ``perturb_func`` (per-example tensors repeated like the inputs); not used
            otherwise.
        additional_forward_args: Extra arguments of ``forward_func``; per-example tensors follow their example.
        target: Which output to explain (Captum's target formats).
        n_perturb_samples: Perturbations drawn per example.
        max_examples_per_batch: At most this many perturbed rows per model call (at least one sample of every
            example per call); None runs all samples at once.
        normalize: Rescale the attributions by the least-squares factor per example first.
        generator: Passed to ``perturb_func`` when it takes it, for reproducible perturbations.

    Returns:
        A tensor of shape ``(N,)``.

    Example:
        >>> from intellego.attr import Saliency
        >>> model = torch.nn.Linear(3, 1)
        >>> x = torch.randn(4, 3)
        >>> exact = model.weight * torch.ones_like(x)  # the gradient: exact for a linear model
        >>> score = infidelity(model, noise_perturbation(0.1), x, exact, normalize=False, n_perturb_samples=4,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> score.shape, bool(score.max() < 1e-10)
        (torch.Size([4]), True)
    """
    require(callable(perturb_func), f"perturb_func must be callable, got {describe(perturb_func)}")
    xs, _ = pack(inputs)
    attrs, _ = pack(attributions, "attributions")
    require(len(attrs) == len(xs),
            f"attributions has {len(attrs)} tensor(s) but inputs has {len(xs)}: they must match one to one")
    for i, (x, a) in enumerate(zip(xs, attrs)):
        require(x.shape == a.shape, f"attributions[{i}] of shape {tuple(a.shape)} must have the shape of "
                                    f"inputs[{i}] {tuple(x.shape)}")
    batch = xs[0].shape[0]
    spec = ForwardSpec.build(forward_func, target, additional_forward_args, batch)
    flat_attrs = [a.reshape(batch, 1, -1) for a in attrs]
    sums: list[Tensor] = []
    with torch.no_grad():
        clean = spec.scores(xs).reshape(batch, 1)
        for k in sample_chunks(n_perturb_samples, batch, max_examples_per_batch):
            perturbations, perturbed = _perturb(perturb_func, xs, baselines, k, generator)
            scores = spec.interleaved(k).scores(perturbed)
            require(scores.numel() == batch * k,
                    f"the model must give one score per perturbed example, got {describe(scores)}")
            diffs = clean - scores.reshape(batch, k)
            dots = functools.reduce(torch.add, [(a * p.reshape(batch, k, -1)).sum(-1)
                                                for a, p in zip(flat_attrs, perturbations)])
            if normalize:
                sums.append(torch.stack([(dots * dots).sum(1), (dots * diffs).sum(1), (diffs * diffs).sum(1)]))
            else:
                sums.append(((dots - diffs) ** 2).sum(1, keepdim=True).T)
    total = torch.stack(sums).sum(0)
    if normalize:
        aa, ad, dd = total
        beta = _safe_ratio(ad, aa)
        return (beta * beta * aa - 2 * beta * ad + dd) / n_perturb_samples
    return total[0] / n_perturb_samples
