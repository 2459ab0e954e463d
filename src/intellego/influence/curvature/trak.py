"""TRAK's pieces: seeded random projections of per-example gradients and the after-kernel inverse.

:func:`projection` draws a ``(P, k)`` Rademacher (or Gaussian) matrix scaled by ``1/sqrt(k)`` from its own seed, in
row blocks, so a checkpoint's projection is reproducible and never touches the global RNG. :func:`kernel_inverse`
returns the Cholesky factor of ``Phi^T Phi + damping I`` for the projected training gradients ``Phi``.

Example:
    >>> import torch
    >>> P = projection(10, 4, seed=0)
    >>> P.shape, bool(torch.equal(P, projection(10, 4, seed=0)))
    (torch.Size([10, 4]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import require

__all__ = ["projection", "kernel_inverse", "margin_output"]

_BLOCK = 4096


def projection(p: int, k: int, *, seed: int, kind: str = "gaussian", dtype: torch.dtype = torch.float32
               ) -> Tensor:
    """A ``(p, k)`` random projection with entries ``+-1/sqrt(k)`` (Rademacher) or ``N(0, 1/k)``."""
    require(kind in ("rademacher", "gaussian"), f"projection kind must be 'rademacher' or 'gaussian', got {kind!r}")
    blocks = []
    for b, start in enumerate(range(0, p, _BLOCK)):
        rows = min(_BLOCK, p - start)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
        if kind == "rademacher":
            block = torch.empty(rows, k, dtype=dtype).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)
        else:
            block = torch.randn(rows, k, generator=gen, dtype=dtype)
        blocks.append(block)
    return torch.cat(blocks) / k ** 0.5


def kernel_inverse(phi: Tensor, damping: float) -> Tensor:
    """The Cholesky factor (float64) of ``phi^T phi + damping I``, with a named error when the kernel is
    singular; apply its inverse with ``torch.cholesky_solve``."""
    K = (phi.T @ phi).double()
    K.diagonal().add_(damping)
    L, info = torch.linalg.cholesky_ex(K)
    require(int(info) == 0, f"the TRAK kernel Phi^T Phi ({K.shape[0]} x {K.shape[0]}) is singular after damping "
                            f"{damping:.3g}: use fewer projection dimensions than training examples or raise "
                            "damping_ratio")
    return L


def margin_output(out: Tensor, target: Tensor) -> Tensor:
    """TRAK's model output for classification: ``log p_y / (1 - p_y)`` summed over the rows of ``out``."""
    logits = out.reshape(-1, out.shape[-1])
    y = target.reshape(-1)
    correct = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, y.unsqueeze(1), float("-inf"))
    return (correct - torch.logsumexp(others, 1)).sum()
