"""Influence functions (Koh & Liang): ``influence(test, train) = g_test^T (C + damping I)^{-1} g_train``.

``C`` is the curvature of the summed training loss over ``hessian_dataset`` for the chosen parameters; the score
is (to first order) how much the test loss would rise if the training example were left out, so positive
scores mark proponents. Two classes with Captum's names and arguments:

* By default both compute the *full-rank* damped inverse of the Gauss-Newton curvature (never indefinite) with
  damping ``damping_ratio`` (default 3) times the curvature's mean eigenvalue, by one Cholesky factorisation where
  ``P x P`` fits (``solver="exact"``), else by batched conjugate gradients on Gauss-Newton-vector products
  (``solver="cg"``) or LiSSA (``solver="lissa"``). ``curvature="hessian"`` uses the exact Hessian instead (a
  named error if it is not positive definite after damping); ``hessian_reg=`` gives an absolute damping.
* ``captum_parity=True`` reproduces Captum 0.9 (Hessian, top ``projection_dim`` eigenpairs, absolute
  ``hessian_reg``, Arnoldi's Krylov basis for ``ArnoldiInfluenceFunction``), to 1e-5.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from intellego.influence import NaiveInfluenceFunction
    >>> model = nn.Linear(3, 2)
    >>> x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    >>> train = torch.utils.data.TensorDataset(x, y)
    >>> inf = NaiveInfluenceFunction(model, train, None, loss_fn=nn.CrossEntropyLoss(reduction="none"),
    ...                              batch_size=10)
    >>> inf.influence((x[:2], y[:2])).shape
    torch.Size([2, 20])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..engines.per_sample import per_sample_grads
from ..errors import describe, require
from .curvature.ekfac import MAX_EXACT_OUTPUTS, output_cotangents
from .curvature.functional import FlatObjective, per_example_loss
from .curvature.lowrank import arnoldi_root, top_eigen_root
from .curvature.solvers import (
    conjugate_gradient,
    damped_eigh,
    hutchinson_trace,
    lissa,
    relative_damping,
)
from .influence_function_base import IFBase

__all__ = ["NaiveInfluenceFunction", "ArnoldiInfluenceFunction"]

_EXACT_MAX_PARAMS = 6000  # P x P matrix (288 MB in float64) and its Cholesky factor: seconds on one CPU core


def _dot_output(out: Tensor, cotangent: Tensor) -> Tensor:
    return (out * cotangent).sum()


def damped_cholesky(C: Tensor, damping: float, *, what: str) -> Tensor:
    """The Cholesky factor ``L`` of ``C + damping I`` (in ``C``'s dtype, float64 when that fails); for a matrix
    that is not positive definite, the eigendecomposition's named error."""
    M = (C + C.T) / 2
    M.diagonal().add_(damping)
    for dtype in dict.fromkeys((C.dtype, torch.float64)):
        L, info = torch.linalg.cholesky_ex(M.to(dtype))
        if int(info) == 0:
            return L
    damped_eigh(C, damping, what=what)  # raises, naming the smallest eigenvalue and the damping that would do
    raise AssertionError("unreachable")  # pragma: no cover


class _InverseCurvatureInfluence(IFBase):
    """Shared by Naive and Arnoldi: build the curvature operator, then the chosen inverse."""

    _captum_reg: float = 1e-6
    _captum_tol: float = 1e-5

    def _setup(self, projection_dim: int | None, seed: int, hessian_reg: float | None, hessian_inverse_tol: float,
               show_progress: bool, captum_parity: bool, curvature: str, solver: str, damping_ratio: float,
               memory_budget: int | None, generator: torch.Generator | None, cg_tol: float, cg_max_iter: int | None,
               lissa_depth: int, lissa_repeats: int) -> None:
        require(curvature in ("gauss_newton", "hessian"),
                f"curvature must be 'gauss_newton' or 'hessian', got {describe(curvature)}")
        require(solver in ("auto", "exact", "cg", "lissa"),
                f"solver must be 'auto', 'exact', 'cg' or 'lissa', got {describe(solver)}")
        if projection_dim is not None:
            require(isinstance(projection_dim, int) and not isinstance(projection_dim, bool) and projection_dim >= 1,
                    f"projection_dim must be a positive int or None, got {describe(projection_dim)}")
            require(projection_dim <= self.param_count,
                    f"projection_dim={projection_dim} exceeds the number of parameters ({self.param_count}) of the "
                    "chosen layers")
        require(hessian_reg is None or (isinstance(hessian_reg, (int, float)) and hessian_reg >= 0),
                f"hessian_reg must be a non-negative number or None, got {describe(hessian_reg)}")
        require(isinstance(damping_ratio, (int, float)) and damping_ratio > 0,
                f"damping_ratio must be a positive number, got {describe(damping_ratio)}")
        self.memory_budget = memory_budget
        self.captum_parity = captum_parity
        self.curvature = "hessian" if captum_parity else curvature
        self.projection_dim = (50 if projection_dim is None else projection_dim) if captum_parity else projection_dim
        self.seed = seed
        self.hessian_inverse_tol = hessian_inverse_tol
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self.cg_tol, self.cg_max_iter = cg_tol, cg_max_iter
        self.lissa_depth, self.lissa_repeats = lissa_depth, lissa_repeats
        loss = per_example_loss(self.loss_fn, self.reduction_type)
        self.objective = FlatObjective(self.work, self.names, loss)
        self.theta = self.objective.theta()
        self.hessian_batches = list(self.hessian_dataloader)
        if solver == "auto":
            solver = "exact" if self.param_count <= _EXACT_MAX_PARAMS else "cg"
        self.solver = "lowrank" if (captum_parity or projection_dim is not None) else solver
        self.R: Tensor | None = None
        self.chol: Tensor | None = None
        self.hessian_reg: float
        with torch.enable_grad():
            if self.solver == "lowrank":
                self.hessian_reg = self._captum_reg if hessian_reg is None else float(hessian_reg)
                self.R = self._lowrank_root(show_progress)
            elif self.solver == "exact":
                C = self._matrix(show_progress)
                self.hessian_reg = (relative_damping(float(torch.trace(C)), C.shape[0], damping_ratio)
                                    if hessian_reg is None else float(hessian_reg))
                self.chol = damped_cholesky(C, self.hessian_reg, what=self._what())
            else:
                trace = hutchinson_trace(self._matvec, self.param_count, generator=self.generator,
                                         dtype=self.theta.dtype)
                self.hessian_reg = (relative_damping(trace, self.param_count, damping_ratio)
                                    if hessian_reg is None else float(hessian_reg))
                if self.solver == "lissa":
                    self.lissa_scale = 1.2 * (self._top_eigenvalue() + self.hessian_reg)

    def _what(self) -> str:
        return "Hessian" if self.curvature == "hessian" else "Gauss-Newton matrix"

    def _matvec(self, V: Tensor, batches: list[Any] | None = None) -> Tensor:
        batches = self.hessian_batches if batches is None else batches
        with torch.enable_grad():
            if self.curvature == "hessian":
                return self.objective.hvp(self.theta, batches, V)
            return self.objective.gnvp(self.theta, batches, V)

    def _matrix(self, show_progress: bool) -> Tensor:
        from ..engines.perturb_eval import progress_bar

        bar = progress_bar(len(self.hessian_batches), f"{self.get_name()}: {self._what()}", show_progress)
        C = torch.zeros(self.param_count, self.param_count, dtype=self.theta.dtype)
        for batch in self.hessian_batches:
            if self.curvature == "hessian":
                C += self.objective.hessian(self.theta, [batch])
            else:
                C += self._gauss_newton(batch)
            bar.update(1)
        bar.close()
        return C

    def _gauss_newton(self, batch: Any) -> Tensor:
        """``sum_n J_n^T H_n J_n`` of one batch as ``U^T U``: ``U`` holds each example's gradients of
        ``<output, L_n e_k>`` (``L_n L_n^T = H_n``), from the per-sample-gradient engine."""
        features, labels = tuple(batch[:-1]), batch[-1]
        with torch.no_grad():
            out = self.work(*features)
        if not isinstance(out, Tensor) or out[0].numel() > MAX_EXACT_OUTPUTS:
            return self.objective.gauss_newton(self.theta, [batch])
        U = output_cotangents(out, labels, self.objective.loss, "exact", None)  # (r, n, *out)
        r, n = U.shape[0], U.shape[1]
        rows = tuple(torch.cat([f] * r) if isinstance(f, Tensor) and f.dim() > 0 and f.shape[0] == n else f
                     for f in features)  # every example once per cotangent, in one engine call
        with torch.enable_grad():
            G = per_sample_grads(self.work, rows, U.reshape(r * n, *U.shape[2:]), loss=_dot_output,
                                 names=self.names, memory_budget=self.memory_budget)
        return G.T @ G

    def _top_eigenvalue(self, steps: int = 30) -> float:
        v = torch.randn(self.param_count, 1, generator=self.generator, dtype=self.theta.dtype)
        lam = 0.0
        for _ in range(steps):
            w = self._matvec(v / v.norm())
            lam, v = float(w.norm()), w
        return lam

    def _lowrank_root(self, show_progress: bool) -> Tensor:
        C = self._matrix(show_progress)
        return top_eigen_root(C, self.projection_dim, self.hessian_reg, self.hessian_inverse_tol, general=True)

    def _solve(self, G: Tensor) -> Tensor:
        """``(C + damping I)^{-1} G^T`` as rows: ``(n, P)``."""
        B = G.T.to(self.theta.dtype)
        if self.chol is not None:
            return torch.cholesky_solve(B.to(self.chol.dtype), self.chol).T.to(G.dtype)
        if self.solver == "cg":
            X = conjugate_gradient(self._matvec, B, damping=self.hessian_reg, tol=self.cg_tol,
                                   max_iter=self.cg_max_iter)
        else:
            def sample(V: Tensor, gen: torch.Generator | None) -> Tensor:
                i = int(torch.randint(len(self.hessian_batches), (1,), generator=gen))
                return self._matvec(V, [self.hessian_batches[i]]) * len(self.hessian_batches)

            X = lissa(sample, B, damping=self.hessian_reg, scale=self.lissa_scale, depth=self.lissa_depth,
                      repeats=self.lissa_repeats, generator=self.generator)
        return X.T.to(G.dtype)

    def _quantities(self, grads: Tensor, test: bool) -> Tensor:
        if self.R is not None:
            return grads @ self.R.to(grads.dtype)
        return self._solve(grads) if test else grads

    def _shared_quantities(self, grads: Tensor, test: bool) -> Tensor:
        """``L^-1 g`` with ``L L^T = C + damping I`` (exact solver): dot products ``g^T (C + damping I)^-1 g'``
        on both sides, where ``influence`` itself solves only the test side."""
        if self.chol is None:
            return self._quantities(grads, test)
        factor = torch.linalg.solve_triangular(self.chol, grads.T.to(self.chol.dtype), upper=False)
        return factor.T.to(grads.dtype)

    def _self_scores(self, grads: Tensor) -> Tensor:
        if self.R is not None:
            return super()._self_scores(grads)
        return (self._solve(grads) * grads).sum(1)

    def inverse_apply(self, vectors: Tensor) -> Tensor:
        """``(C + damping I)^{-1} v`` for each row ``v`` of ``vectors`` ``(n, P)`` (full-rank solvers only)."""
        require(self.solver != "lowrank", "inverse_apply needs a full-rank solver (not captum_parity or a "
                                          "projection_dim)")
        return self._solve(vectors)


class NaiveInfluenceFunction(_InverseCurvatureInfluence):
    """Influence functions from the full curvature matrix (Captum's ``NaiveInfluenceFunction``).

    Captum's arguments keep their meaning; ``projection_dim=None`` (default) and ``hessian_reg=None`` (default)
    select our full-rank inverse with relative damping. Keyword-only extras: ``captum_parity`` (Captum's exact
    numbers), ``curvature`` ("gauss_newton" or "hessian"), ``solver`` ("auto", "exact", "cg", "lissa"),
    ``damping_ratio``, ``memory_budget``, ``generator`` (LiSSA and trace probes), ``cg_tol``, ``cg_max_iter``,
    ``lissa_depth``, ``lissa_repeats``. ``checkpoint`` may be None (use the model as it is); a checkpoint is
    loaded into a private copy of the model, never into the model itself.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> naive = NaiveInfluenceFunction(model, train, None, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
        ...                                batch_size=4)
        >>> naive.influence(test).shape
        torch.Size([2, 8])
    """

    _captum_reg = 1e-6

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoint: Any,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1,
                 hessian_dataset: Any = None, test_loss_fn: Any = None, sample_wise_grads_per_batch: bool = False,
                 projection_dim: int | None = None, seed: int = 42, hessian_reg: float | None = None,
                 hessian_inverse_tol: float = 1e-5, projection_on_cpu: bool = True, show_progress: bool = False,
                 *, captum_parity: bool = False, curvature: str = "gauss_newton", solver: str = "auto",
                 damping_ratio: float = 3.0, memory_budget: int | None = None,
                 generator: torch.Generator | None = None, cg_tol: float = 1e-6, cg_max_iter: int | None = None,
                 lissa_depth: int = 1000, lissa_repeats: int = 1) -> None:
        super().__init__(model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn, batch_size,
                         hessian_dataset, test_loss_fn, sample_wise_grads_per_batch)
        self.projection_on_cpu = projection_on_cpu
        self._setup(projection_dim, seed, hessian_reg, hessian_inverse_tol, show_progress, captum_parity,
                    curvature, solver, damping_ratio, memory_budget, generator, cg_tol, cg_max_iter, lissa_depth,
                    lissa_repeats)


class ArnoldiInfluenceFunction(_InverseCurvatureInfluence):
    """Influence functions with Captum's ``ArnoldiInfluenceFunction`` arguments.

    Under ``captum_parity=True`` the curvature is restricted to an ``arnoldi_dim``-step Krylov basis and its top
    ``projection_dim`` eigenpairs are kept, as in Captum. By default it computes the same full-rank damped
    inverse as :class:`NaiveInfluenceFunction` (exact where it fits, conjugate gradients otherwise); pass
    ``projection_dim`` to get Captum's low-rank Arnoldi estimate with our damping.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> arnoldi = ArnoldiInfluenceFunction(model, train, None, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
        ...                                    batch_size=4)
        >>> arnoldi.influence(test, k=2).influence_scores.shape
        torch.Size([2, 2])
    """

    _captum_reg = 1e-3
    _captum_tol = 1e-4

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoint: Any,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1,
                 hessian_dataset: Any = None, test_loss_fn: Any = None, sample_wise_grads_per_batch: bool = False,
                 projection_dim: int | None = None, seed: int = 0, arnoldi_dim: int = 200, arnoldi_tol: float = 1e-1,
                 hessian_reg: float | None = None, hessian_inverse_tol: float = 1e-4, projection_on_cpu: bool = True,
                 show_progress: bool = False, *, captum_parity: bool = False, curvature: str = "gauss_newton",
                 solver: str = "auto", damping_ratio: float = 3.0, memory_budget: int | None = None,
                 generator: torch.Generator | None = None, cg_tol: float = 1e-6, cg_max_iter: int | None = None,
                 lissa_depth: int = 1000, lissa_repeats: int = 1) -> None:
        super().__init__(model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn, batch_size,
                         hessian_dataset, test_loss_fn, sample_wise_grads_per_batch)
        require(isinstance(arnoldi_dim, int) and arnoldi_dim >= 2, f"arnoldi_dim must be an int >= 2, got "
                                                                    f"{describe(arnoldi_dim)}")
        self.arnoldi_dim, self.arnoldi_tol = arnoldi_dim, arnoldi_tol
        self.projection_on_cpu = projection_on_cpu
        self._setup(projection_dim, seed, hessian_reg, hessian_inverse_tol, show_progress, captum_parity,
                    curvature, solver, damping_ratio, memory_budget, generator, cg_tol, cg_max_iter, lissa_depth,
                    lissa_repeats)

    def _lowrank_root(self, show_progress: bool) -> Tensor:
        shapes = [p.shape for n, p in self.work.named_parameters() if n in set(self.names)]
        gen = torch.Generator().manual_seed(self.seed)
        b = torch.cat([torch.randn(s, generator=gen, dtype=self.theta.dtype).reshape(-1) for s in shapes])
        return arnoldi_root(self._matvec, b, self.arnoldi_dim, self.arnoldi_tol, self.projection_dim,
                            self.hessian_reg, self.hessian_inverse_tol)
