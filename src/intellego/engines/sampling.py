"""Monte-Carlo draws and reducers shared by NoiseTunnel, GradientShap, DeepLiftShap and the metrics.

Randomness comes from an explicit ``torch.Generator`` when one is given (reproducible), else from torch's
global generator; never from NumPy's global state.

Example:
    >>> import torch
    >>> from intellego.engines.sampling import gaussian_like
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.zeros(2, 3)
    >>> torch.equal(gaussian_like(x, 1.0, g), gaussian_like(x, 1.0, torch.Generator().manual_seed(0)))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require

__all__ = ["gaussian_like", "uniform", "randint", "noisy_copies", "shap_draws", "shap_points", "reduce_moments",
           "NT_TYPES", "check_stdev"]

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def gaussian_like(x: Tensor, stdev: float, generator: torch.Generator | None) -> Tensor:
    """Gaussian noise with the shape, dtype and device of ``x`` (zeros when ``stdev`` is 0)."""
    if stdev == 0:
        return torch.zeros_like(x)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=_device(generator, x.device))
    return noise.to(x.device) * stdev


def uniform(n: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` draws from U(0, 1) in ``like``'s dtype and device."""
    u = torch.rand(n, generator=generator, dtype=like.dtype, device=_device(generator, like.device))
    return u.to(like.device)


def randint(high: int, n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """``n`` integers in ``[0, high)``."""
    r = torch.randint(high, (n,), generator=generator, device=_device(generator, device))
    return r.to(device)


def noisy_copies(xs: tuple[Tensor, ...], k: int, stdevs: tuple[float, ...],
                 generator: torch.Generator | None) -> tuple[Tensor, ...]:
    """Every example repeated ``k`` times in place, plus Gaussian noise of its tensor's standard deviation."""
    return tuple(v if s == 0 else v + gaussian_like(v, s, generator) for v, s in  # no noise: the copies as they are
                 zip((x.repeat_interleave(k, 0) for x in xs), stdevs))


def shap_draws(xs: tuple[Tensor, ...], refs: tuple[Tensor, ...], n_samples: int, stdevs: tuple[float, ...],
               generator: torch.Generator | None) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor]:
    """GradientSHAP's draws for ``n_samples`` per example (the draws of an example together): a reference
    picked from ``refs``, the noisy input, and a point ``alpha ~ U(0, 1)`` on the path between them.

    Returns ``(starts, ends, alphas)``; the drawing order is fixed, so a seeded generator reproduces it.
    """
    rows = xs[0].shape[0] * n_samples
    pick = randint(refs[0].shape[0], rows, xs[0].device, generator)
    ends = noisy_copies(xs, n_samples, stdevs, generator)
    alphas = uniform(rows, xs[0], generator)
    return tuple(r[pick] for r in refs), ends, alphas


def shap_points(starts: tuple[Tensor, ...], ends: tuple[Tensor, ...], alphas: Tensor,
                deltas: tuple[Tensor, ...] | None = None) -> tuple[Tensor, ...]:
    """GradientSHAP's draw points ``start + alpha * (end - start)``, one alpha per row (from :func:`shap_draws`);
    ``deltas``: the differences ``end - start`` when the caller has them already.

    Example:
        >>> shap_points((torch.zeros(2, 3),), (torch.ones(2, 3),), torch.tensor([0.25, 1.0]))[0][:, 0]
        tensor([0.2500, 1.0000])
    """
    deltas = tuple(e - s for s, e in zip(starts, ends)) if deltas is None else deltas
    return tuple(s + alphas.reshape(-1, *[1] * (s.dim() - 1)) * d for s, d in zip(starts, deltas))


def check_stdev(stdevs: object, count: int, name: str = "stdevs") -> tuple[float, ...]:
    """Per-input non-negative standard deviations from a number or a tuple of numbers."""
    values = stdevs if isinstance(stdevs, (tuple, list)) else (stdevs,) * count
    require(len(values) == count, f"{name} has {len(values)} entries but there are {count} input tensors")
    out = []
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise IntellegoError(f"{name} must be non-negative numbers, got {describe(stdevs)}")
        out.append(float(v))
    return tuple(out)


def reduce_moments(total: Tensor, total_sq: Tensor, n: int, nt_type: str) -> Tensor:
    """Combine running sums of samples and of squared samples into the NoiseTunnel statistic."""
    mean = total / n
    if nt_type == "smoothgrad":
        return mean
    if nt_type == "smoothgrad_sq":
        return total_sq / n
    if nt_type == "vargrad":
        return total_sq / n - mean * mean
    raise IntellegoError(f"nt_type must be one of {NT_TYPES}, got {nt_type!r}")
