"""``NoiseTunnel``: SmoothGrad, SmoothGrad-squared and VarGrad around any attribution method."""

from __future__ import annotations

import inspect
from enum import Enum
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int, chunks
from ..core.grad import is_batched
from ..core.inputs import pack, require_float, unpack
from ..core.targets import expand_target
from ..engines.sampling import NT_TYPES, check_stdev, noisy_copies, randint, reduce_moments
from ..errors import IntellegoError, describe, require
from ._base import Attribution, public_call

__all__ = ["NoiseTunnel", "NoiseTunnelType"]


class NoiseTunnelType(Enum):
    """Captum's names (and values) of the ``nt_type`` choices; ``attribute`` takes a member or its name."""

    smoothgrad = 1
    smoothgrad_sq = 2
    vargrad = 3


class NoiseTunnel(Attribution):
    """Average (or take moments of) an attribution method over Gaussian-noised copies of the input.

    ``nt_type`` is ``smoothgrad`` (mean), ``smoothgrad_sq`` (mean of squares) or ``vargrad`` (variance).

    Args:
        attribution_method: The attribution object whose ``attribute`` runs on every noisy copy (its model is
            this method's model).

    Example:
        >>> import torch
        >>> from intellego.attr import NoiseTunnel, Saliency
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> nt = NoiseTunnel(Saliency(model))
        >>> nt.attribute(torch.randn(2, 3), nt_samples=8, stdevs=0.1, target=1,
        ...              generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3])
    """

    def __init__(self, attribution_method: Attribution) -> None:
        require(hasattr(attribution_method, "attribute"),
                f"attribution_method must be an attribution object, got {describe(attribution_method)}")
        super().__init__(attribution_method.forward_func)
        self.attribution_method = attribution_method
        self.is_delta_supported = attribution_method.has_convergence_delta()

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.attribution_method.multiplies_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.is_delta_supported

    @public_call
    def attribute(
        self,
        inputs: Any,
        nt_type: str | NoiseTunnelType = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> Any:
        """Compute the attributions.

        With ``return_convergence_delta=True`` the wrapped method's deltas for every noisy sample are
        returned too. ``draw_baseline_from_distrib`` draws one baseline per sample from ``baselines``.

        Returns:
            Noise-averaged attributions like ``inputs``; other keyword arguments go to the wrapped method.
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        if isinstance(nt_type, NoiseTunnelType):
            nt_type = nt_type.name
        require(nt_type in NT_TYPES, f"nt_type must be one of {NT_TYPES}, got {nt_type!r}")
        check_positive_int(nt_samples, "nt_samples", allow_none=False)
        check_positive_int(nt_samples_batch_size, "nt_samples_batch_size")
        sds = check_stdev(stdevs, len(xs))
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        if want_delta and not self.is_delta_supported:
            raise IntellegoError(f"{type(self.attribution_method).__name__} has no convergence delta; "
                                 "call without return_convergence_delta=True")
        if generator is not None and "generator" in inspect.signature(self.attribution_method.attribute).parameters:
            kwargs.setdefault("generator", generator)
        batch = xs[0].shape[0]
        totals: list[Tensor] = []
        squares: list[Tensor] = []
        deltas = []
        for part in chunks(nt_samples, nt_samples_batch_size or nt_samples):
            k = part.stop - part.start
            noisy = noisy_copies(xs, k, sds, generator)
            call_kwargs = _expand_kwargs(kwargs, k, batch, draw_baseline_from_distrib, generator)
            out = self.attribution_method.attribute(unpack(noisy, was_tuple), **call_kwargs)
            if want_delta:
                out, delta = out
                deltas.append(delta)
            attrs, _ = pack(out, "attributions")
            attrs = tuple(a.reshape(batch, k, *a.shape[1:]) for a in attrs)
            totals = [a.sum(1) + t for a, t in zip(attrs, totals)] if totals else [a.sum(1) for a in attrs]
            squares = [(a * a).sum(1) + q for a, q in zip(attrs, squares)] if squares else [
                (a * a).sum(1) for a in attrs]
        result = unpack([reduce_moments(t, q, nt_samples, nt_type) for t, q in zip(totals, squares)], was_tuple)
        return (result, torch.cat(deltas)) if want_delta else result


def _expand_kwargs(kwargs: dict[str, Any], k: int, batch: int, draw_baselines: bool,
                   generator: torch.Generator | None) -> dict[str, Any]:
    """Wrapped-method arguments for a batch in which every example is repeated ``k`` times in place."""
    out = dict(kwargs)
    if "target" in out:
        out["target"] = expand_target(out["target"], k, batch, interleave=True)
    if out.get("additional_forward_args") is not None:
        args = out["additional_forward_args"]
        packed = args if isinstance(args, tuple) else (args,)
        expanded = tuple(a.repeat_interleave(k, 0) if is_batched(a, batch) else a for a in packed)
        out["additional_forward_args"] = expanded if isinstance(args, tuple) else expanded[0]
    if out.get("baselines") is not None:
        out["baselines"] = _expand_baselines(out["baselines"], k, batch, draw_baselines, generator)
    if out.get("feature_mask") is not None:  # a mask per example of the caller's batch follows its examples
        mask = out["feature_mask"]
        packed = mask if isinstance(mask, tuple) else (mask,)
        expanded = tuple(m.repeat_interleave(k, 0) if isinstance(m, Tensor) and m.dim() > 0 and m.shape[0] == batch
                         and batch > 1 else m for m in packed)
        out["feature_mask"] = expanded if isinstance(mask, tuple) else expanded[0]
    return out


def _expand_baselines(baselines: Any, k: int, batch: int, draw: bool, generator: torch.Generator | None) -> Any:
    packed = baselines if isinstance(baselines, tuple) else (baselines,)
    tensors = [b for b in packed if isinstance(b, Tensor)]
    if draw:
        require(len(tensors) == len(packed) and len({b.shape[0] for b in tensors}) == 1,
                "draw_baseline_from_distrib needs baselines given as tensors with the same number of samples")
        pick = randint(tensors[0].shape[0], batch * k, tensors[0].device, generator)
        expanded = tuple(b[pick] for b in packed)
    else:
        expanded = tuple(b.repeat_interleave(k, 0) if is_batched(b, batch) and batch > 1 else b for b in packed)
    return expanded if isinstance(baselines, tuple) else expanded[0]
