"""Solving ``(C + damping I) x = b`` for a curvature matrix ``C``: exact, conjugate gradients, LiSSA.

* :func:`damped_eigh` / :func:`apply_inverse`: the full-rank damped inverse from one eigendecomposition; it
  refuses a matrix that is not positive definite after damping and says how much damping would do.
* :func:`conjugate_gradient`: block CG on many right-hand sides at once, from matrix-vector products only.
* :func:`lissa`: the stochastic Neumann series of Agarwal et al. (LiSSA), with a ``torch.Generator``.
* :func:`relative_damping`: damping as a fraction of the curvature's mean eigenvalue (``trace / p``), so one
  setting means the same thing for a summed or a mean loss, 100 or 100,000 training examples.

Example:
    >>> import torch
    >>> C = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> b = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    >>> x = conjugate_gradient(lambda v: C @ v, b, damping=0.0, tol=1e-12)
    >>> torch.allclose(C @ x, b)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import require

__all__ = ["damped_eigh", "apply_inverse", "conjugate_gradient", "lissa", "relative_damping",
           "hutchinson_trace"]


def relative_damping(trace: float, size: int, ratio: float) -> float:
    """``ratio`` times the mean eigenvalue ``trace / size`` (never below a tiny positive floor)."""
    return max(ratio * abs(trace) / max(size, 1), 1e-12)


def hutchinson_trace(matvec: Callable[[Tensor], Tensor], size: int, *, probes: int = 8,
                     generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
                     device: torch.device | None = None) -> float:
    """Hutchinson's estimate of ``trace(C)`` from ``probes`` Rademacher vectors (one batched product)."""
    z = torch.randint(0, 2, (size, probes), generator=generator, dtype=torch.int64).to(dtype=dtype, device=device)
    z = 2 * z - 1
    return float((z * matvec(z)).sum() / probes)


def damped_eigh(C: Tensor, damping: float, *, what: str = "Hessian",
                knob: str = "hessian_reg") -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending, damping added) and eigenvectors of ``C + damping I``.

    Raises a named error when the smallest damped eigenvalue is not positive, with the damping that would fix it.
    """
    evals, evecs = torch.linalg.eigh((C + C.T) / 2)
    evals = evals + damping
    smallest, largest = float(evals[0]), float(evals[-1])
    require(smallest > 1e-12 * max(abs(largest), 1.0),
            f"the {what} is not positive definite after damping {damping:.3g}: its smallest eigenvalue is "
            f"{smallest - damping:.3g} (largest {largest - damping:.3g}); raise {knob} above "
            f"{max(-(smallest - damping), 0.0) * 1.01 + 1e-8:.3g}, or use the Gauss-Newton curvature "
            "(curvature='gauss_newton'), which is never indefinite")
    return evals, evecs


def apply_inverse(evals: Tensor, evecs: Tensor, B: Tensor) -> Tensor:
    """``(V diag(evals) V^T)^{-1} B`` for ``B`` of shape ``(p, k)``."""
    return evecs @ ((evecs.T @ B) / evals.unsqueeze(1))


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], B: Tensor, *, damping: float, tol: float = 1e-8,
                       max_iter: int | None = None) -> Tensor:
    """Solve ``(C + damping I) X = B`` column by column with conjugate gradients, all columns in one batch.

    ``matvec(V)`` returns ``C @ V`` for ``V`` of shape ``(p, k)``. Stops when every column's residual is below
    ``tol`` times its right-hand side's norm, or after ``max_iter`` (default ``4p + 10``) iterations.
    """
    p = B.shape[0]
    max_iter = 4 * p + 10 if max_iter is None else max_iter

    def A(V: Tensor) -> Tensor:
        return matvec(V) + damping * V

    X = torch.zeros_like(B)
    R = B.clone()
    P = R.clone()
    rr = (R * R).sum(0)
    stop = (tol * B.norm(dim=0)).clamp_min(1e-300) ** 2
    for _ in range(max_iter):
        if bool((rr <= stop).all()):
            break
        AP = A(P)
        pap = (P * AP).sum(0)
        require(bool((pap > 0).all()),
                f"conjugate gradients met a direction of non-positive curvature (p^T A p = {float(pap.min()):.3g}):"
                " the damped curvature is not positive definite; raise the damping")
        alpha = torch.where(rr > stop, rr / pap, torch.zeros_like(rr))
        X = X + alpha * P
        R = R - alpha * AP
        rr_new = (R * R).sum(0)
        P = R + (rr_new / rr.clamp_min(1e-300)) * P
        rr = rr_new
    return X


def lissa(matvec_sample: Callable[[Tensor, torch.Generator | None], Tensor], B: Tensor, *, damping: float,
          scale: float, depth: int = 1000, repeats: int = 1, generator: torch.Generator | None = None,
          tol: float = 0.0) -> Tensor:
    """LiSSA: ``X ~ (C + damping I)^{-1} B`` by the recursion ``X <- B + (I - (C_s + damping I) / scale) X``.

    ``matvec_sample(V, generator)`` returns an unbiased estimate ``C_s @ V`` (a random mini-batch's curvature,
    drawn with ``generator``, or the exact product). ``scale`` must exceed the largest eigenvalue of
    ``C + damping I`` for the series to converge. The result is ``X / scale``, averaged over ``repeats``.
    """
    require(scale > 0, f"LiSSA scale must be positive, got {scale}")
    total = torch.zeros_like(B)
    for _ in range(repeats):
        X = B.clone()
        for _ in range(depth):
            X_new = B + X - (matvec_sample(X, generator) + damping * X) / scale
            converged = tol > 0 and float((X_new - X).norm()) <= tol * float(X_new.norm())
            X = X_new
            require(bool(torch.isfinite(X).all()),
                    "LiSSA diverged: its scale is below the largest eigenvalue of the damped curvature; raise scale")
            if converged:
                break
        total += X / scale
    return total / repeats
