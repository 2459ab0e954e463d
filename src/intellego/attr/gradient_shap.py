"""``GradientShap``: expected gradients over random baselines, noisy inputs and random path points."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int, chunks, plan_rows
from ..core.grad import ForwardSpec, measure_saved_bytes
from ..core.inputs import pack, pack_baseline_distribution, require_float, unpack
from ..engines.sampling import check_stdev, shap_draws, shap_points
from ._base import GradientAttribution, convergence_delta, public_call

__all__ = ["GradientShap"]


class GradientShap(GradientAttribution):
    """SHAP values approximated by expected gradients (Lundberg and Lee, 2017).

    For each example, ``n_samples`` draws pick a baseline from ``baselines``, add Gaussian noise of
    ``stdevs`` to the input, pick a point uniformly on the path between them, and average
    ``gradient * (noisy input - baseline)``.

    Example:
        >>> import torch
        >>> from intellego.attr import GradientShap
        >>> model = torch.nn.Linear(3, 1)
        >>> x, refs = torch.randn(2, 3), torch.randn(10, 3)
        >>> gen = torch.Generator().manual_seed(0)
        >>> GradientShap(model).attribute(x, refs, n_samples=20, generator=gen).shape
        torch.Size([2, 3])
    """

    def __init__(self, forward_func: Any, multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(
        self,
        inputs: Any,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        *,
        generator: torch.Generator | None = None,
        internal_batch_size: int | None = None,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Returns:
            Attributions like ``inputs``; with ``return_convergence_delta`` also one delta per draw (``batch *
            n_samples`` values, the draws of each example together).
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        check_positive_int(n_samples, "n_samples", allow_none=False)
        sds = check_stdev(stdevs, len(xs))
        refs = pack_baseline_distribution(baselines, xs)
        batch = xs[0].shape[0]
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, batch)
        rows = batch * n_samples
        starts, noisy, alphas = shap_draws(xs, refs, n_samples, sds, generator)
        expanded = spec.interleaved(n_samples)
        per_row = plan_rows(rows, limit=internal_batch_size, memory_budget=memory_budget, device=xs[0].device,
                            measure=lambda: measure_saved_bytes(spec, xs))
        samples = self._sample_attributions(expanded, starts, noisy, alphas, per_row)
        attrs = tuple(s.reshape(batch, n_samples, *s.shape[1:]).mean(1) for s in samples)
        result = unpack(attrs, was_tuple)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(expanded, samples, starts, noisy)

    def _sample_attributions(self, spec: ForwardSpec, starts: tuple[Tensor, ...], ends: tuple[Tensor, ...],
                             alphas: Tensor, per_row: int) -> tuple[Tensor, ...]:
        if per_row >= alphas.shape[0]:  # one chunk: no slices, no copies into an output buffer
            deltas = tuple(e - s for s, e in zip(starts, ends))
            grads, _ = spec.gradients(shap_points(starts, ends, alphas, deltas))
            return tuple(g * d for g, d in zip(grads, deltas)) if self._multiply_by_inputs else grads
        out = [torch.empty_like(e) for e in ends]
        for sl in chunks(alphas.shape[0], per_row):
            s, e = tuple(t[sl] for t in starts), tuple(t[sl] for t in ends)
            grads, _ = spec.rows(sl).gradients(shap_points(s, e, alphas[sl]))
            for o, g, si, ei in zip(out, grads, s, e):
                o[sl] = g * (ei - si) if self._multiply_by_inputs else g
        return tuple(out)

