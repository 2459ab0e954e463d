"""TRAK's pieces: seeded random projections of per-example gradients and the after-kernel inverse.

:func:`projection` draws a dense ``(P, k)`` Rademacher (or Gaussian) matrix scaled by ``1/sqrt(k)`` from its own
seed, in row blocks, so a checkpoint's projection is reproducible and never touches the global RNG.
:func:`factored_projections` draws, per ``nn.Linear`` / ``nn.Conv2d`` layer, a Gaussian pair ``(P_in, P_out)``:
the layer's per-example gradient ``sum_t s_t a_t^T`` projected by ``P_in (x) P_out`` is
``sum_t (P_out^T s_t)(P_in^T a_t)^T`` (:func:`factored_features`), computed from the layer's rows without ever
forming the gradient (the Kronecker-structured projection of LoGra, Choe et al. 2024). :func:`kernel_inverse`
returns the Cholesky factor of ``Phi^T Phi + damping I`` for the projected training gradients ``Phi``.

Example:
    >>> import torch
    >>> P = projection(10, 4, seed=0)
    >>> P.shape, bool(torch.equal(P, projection(10, 4, seed=0)))
    (torch.Size([10, 4]), True)
    >>> split_dims([(11, 133), (134, 3)], 512)  # (k_in, k_out) per layer: 6 x 67 + 70 x 2 dimensions
    [(6, 67), (70, 2)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import require

__all__ = ["projection", "split_dims", "factored_projections", "factored_features", "kernel_inverse",
           "margin_output"]

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


def split_dims(shapes: Sequence[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    """``(k_in, k_out)`` per layer of ``(d_in, d_out)`` rows: a layer gets about ``k`` times its share of the
    parameters, split between its sides in proportion to their sizes (its full ``(d_in, d_out)`` when ``k`` is
    the parameter count, which makes the projection invertible)."""
    total = sum(a * g for a, g in shapes)
    out = []
    for a, g in shapes:
        kl = max(1, round(k * a * g / total))
        ka = min(a, max(1, round(math.sqrt(kl * a / g))))
        out.append((ka, min(g, max(1, round(kl / ka)))))
    return out


def factored_projections(shapes: Sequence[tuple[int, int]], dims: Sequence[tuple[int, int]], *, seed: int,
                         dtype: torch.dtype = torch.float32) -> list[tuple[Tensor, Tensor]]:
    """Gaussian ``(P_in (d_in, k_in), P_out (d_out, k_out))`` per layer with entries ``N(0, 1/k)``, from one
    generator seeded with ``seed``: the entries of ``P_in (x) P_out`` have variance ``1 / (k_in k_out)``."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(a, ka, generator=gen, dtype=dtype) / ka ** 0.5,
             torch.randn(g, kg, generator=gen, dtype=dtype) / kg ** 0.5) for (a, g), (ka, kg) in zip(shapes, dims)]


def factored_features(ins: Sequence[Tensor], outs: Sequence[Tensor], projs: Sequence[tuple[Tensor, Tensor]]
                      ) -> Tensor:
    """Projected per-example gradients ``(n, sum k_in k_out)`` from input rows ``(n, T, d_in)`` and output-gradient
    rows ``(n, T, d_out)``: per layer ``vec(sum_t (s_t P_out)^T (a_t P_in))``, output index first."""
    parts = [((s @ pg).transpose(1, 2) @ (a @ pa)).reshape(a.shape[0], -1)
             for a, s, (pa, pg) in zip(ins, outs, projs)]
    return torch.cat(parts, 1)


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
