"""Low-rank inverse square roots of a curvature matrix: Captum's top-eigenpair rule and the Arnoldi iteration.

These reproduce what Captum's ``NaiveInfluenceFunction`` and ``ArnoldiInfluenceFunction`` compute (they are used
under ``captum_parity=True`` or when a ``projection_dim`` is asked for): keep the eigenpairs of ``C + reg I``
above ``tol``, the ``k`` largest of them, and return ``R = V diag(l)^{-1/2}`` so that ``g_test^T R R^T g_train``
approximates ``g_test^T C^{-1} g_train``. Keeping only the largest eigenpairs discards exactly the directions
that dominate an inverse, which is why it is not the default.

Example:
    >>> import torch
    >>> C = torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64))
    >>> R = top_eigen_root(C, k=2, reg=0.0, tol=1e-9)
    >>> torch.diag(R @ R.T).tolist()
    [0.25, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import require

__all__ = ["top_eigen", "top_eigen_root", "arnoldi", "arnoldi_root"]


def top_eigen(C: Tensor, k: int | None, reg: float, tol: float, *, general: bool = True) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of ``C + reg I`` above ``tol``, the ``k`` largest, each vector's
    sign chosen so that its entries sum to a positive number. ``general=True`` uses the general (non-symmetric)
    eigensolver, as Captum does (it matters for the Hessenberg matrix of the Arnoldi iteration)."""
    M = C + reg * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    if general:
        ls, vs = torch.linalg.eig(M)
        ls, vs = ls.real, vs.real
        order = torch.argsort(ls)
        ls, vs = ls[order], vs[:, order]
    else:
        ls, vs = torch.linalg.eigh(M)
    keep = ls > tol
    ls, vs = ls[keep], vs[:, keep]
    if k is not None:
        ls, vs = ls[-k:], vs[:, -k:]
    sign = (vs.sum(0) > 0).to(vs.dtype) * 2 - 1
    return ls, vs * sign


def top_eigen_root(C: Tensor, k: int | None, reg: float, tol: float, *, general: bool = True) -> Tensor:
    """``R = V diag(l)^{-1/2}`` from :func:`top_eigen`; a named error when no eigenvalue is above ``tol``."""
    ls, vs = top_eigen(C, k, reg, tol, general=general)
    require(ls.numel() > 0, f"the Hessian has no eigenvalue above hessian_inverse_tol={tol} after adding "
                            f"hessian_reg={reg}: raise hessian_reg")
    return vs * ls.rsqrt()


def arnoldi(matvec: Callable[[Tensor], Tensor], b: Tensor, n: int, tol: float) -> tuple[Tensor, Tensor]:
    """``n`` steps of the Arnoldi iteration from ``b``: the Krylov basis ``Q`` (columns) and the square
    Hessenberg matrix, both with the last (incomplete) vector dropped, as Captum's ``_parameter_distill`` does.
    Stops early when a new direction's norm falls below ``tol``."""
    p = b.shape[0]
    Hm = torch.zeros(n + 1, n, dtype=b.dtype)
    qs = [b / b.norm()]
    k = 0
    for k in range(1, n + 1):
        v = matvec(qs[k - 1].unsqueeze(1)).squeeze(1)
        for i in range(k):
            Hm[i, k - 1] = qs[i] @ v
            v = v - Hm[i, k - 1] * qs[i]
        Hm[k, k - 1] = v.norm()
        if Hm[k, k - 1] < tol:
            break
        qs.append(v / Hm[k, k - 1])
    Q = torch.stack(qs[:k], 1) if k > 0 else torch.zeros(p, 0, dtype=b.dtype)
    Hk = Hm[:k, :k - 1]
    return Q[:, :-1], Hk[:-1]


def arnoldi_root(matvec: Callable[[Tensor], Tensor], b: Tensor, n: int, tol: float, k: int | None, reg: float,
                 inverse_tol: float) -> Tensor:
    """Captum's Arnoldi influence projection: top eigenpairs of the Krylov-restricted curvature, mapped back."""
    Q, Hm = arnoldi(matvec, b, n, tol)
    require(Q.shape[1] > 0, "the Arnoldi basis is empty: raise arnoldi_dim or lower arnoldi_tol")
    return Q @ top_eigen_root(Hm, k, reg, inverse_tol, general=True)
