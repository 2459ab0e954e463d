"""Interpretable linear models for Lime, fitted with torch (no scikit-learn needed), batched over problems.

``LinearRegression``, ``Ridge`` and ``Lasso`` minimise scikit-learn's objectives with sample weights
(``Lasso``: ``sum(w * r**2) / (2 * sum(w)) + alpha * |coef|_1``; ``Ridge``: ``sum(w * r**2) + alpha * |coef|**2``),
with an unpenalised intercept. :meth:`solve` fits many problems that share one design matrix at once
(one per example of a batch); ``fit(X, y, sample_weight)`` / ``coef_`` / ``intercept_`` and
``fit(dataloader)`` / ``representation()`` / ``bias()`` give the scikit-learn and Captum interfaces.
Captum's wrapper names (``SkLearnLasso``, ``SkLearnRidge``, ``SkLearnLinearRegression``,
``SkLearnLinearModel``, from ``captum._utils.models.linear_model``) are here too, on the same torch solvers,
so ported Lime code only changes its import to ``from intellego.attr import SkLearnLasso``
(:mod:`intellego.attr.sklearn_models`).

Example:
    >>> import torch
    >>> from intellego.attr import LinearRegression
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> LinearRegression().fit(X, X @ torch.tensor([2.0, -1.0]) + 0.5).coef_.tolist()
    [2.0, -1.0]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require

__all__ = ["InterpretableLinearModel", "LinearRegression", "Ridge", "Lasso", "fit_linear"]


class InterpretableLinearModel:
    """Base class: weighted least squares with an intercept, solved for many right-hand sides."""

    def __init__(self, fit_intercept: bool = True) -> None:
        self.fit_intercept = fit_intercept
        self.coef_: Tensor | None = None
        self.intercept_: Tensor | None = None

    def solve(self, X: Tensor, Y: Tensor, W: Tensor) -> tuple[Tensor, Tensor]:
        """Coefficients ``(M, F)`` and intercepts ``(M,)`` for design ``X (n, F)``, targets and weights ``(n, M)``."""
        X, Y, W = X.double(), Y.double(), W.double()
        total = W.sum(0).clamp_min(torch.finfo(torch.float64).tiny)
        v = W / total
        if self.fit_intercept:
            xbar, ybar = v.T @ X, (v * Y).sum(0)
        else:
            xbar, ybar = X.new_zeros(Y.shape[1], X.shape[1]), Y.new_zeros(Y.shape[1])
        corr = (v * Y).T @ X - xbar * ybar[:, None]
        coef = self._coefficients(Moments(X, v, xbar), corr, total)
        return coef, ybar - (coef * xbar).sum(1)

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> InterpretableLinearModel:
        """Fit one problem, set ``coef_`` (F,) and ``intercept_`` (scalar tensor).

        scikit-learn style ``fit(X, y, sample_weight)``, or Captum style ``fit(train_data)`` with an iterable
        (a ``DataLoader``) of ``(x, y)`` or ``(x, y, weight)`` batches.
        """
        if y is None:
            X, y, sample_weight = _from_batches(X)
        X = torch.as_tensor(X)
        y = torch.as_tensor(y).reshape(-1, 1)
        w = torch.ones_like(y, dtype=torch.float64) if sample_weight is None else torch.as_tensor(
            sample_weight).reshape(-1, 1)
        coef, intercept = self.solve(X, y, w)
        self.coef_, self.intercept_ = coef[0], intercept[0]
        return self

    def representation(self) -> Tensor:
        """Captum style: the coefficients as a ``(1, F)`` tensor."""
        coef = self.coef_
        if coef is None:
            raise IntellegoError(f"{type(self).__name__} is not fitted yet: call fit first")
        return coef.reshape(1, -1)

    def bias(self) -> Tensor:
        """Captum style: the intercept as a ``(1,)`` tensor."""
        if self.intercept_ is None:
            raise IntellegoError(f"{type(self).__name__} is not fitted yet: call fit first")
        return self.intercept_.reshape(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Moments:
    """Weighted, centred second moments of a shared design ``X (n, F)``, one problem per column of ``v (n, M)``,
    formed only for the problems asked for (a lasso whose zero solution is optimal never needs its gram)."""

    def __init__(self, X: Tensor, v: Tensor, xbar: Tensor) -> None:
        self.X, self.v, self.xbar = X, v, xbar

    def gram(self, rows: Tensor | None = None) -> Tensor:
        """``(m, F, F)``: ``X^T diag(v_m) X - xbar_m xbar_m^T`` for the problems ``rows`` (default: all).

        The result is a view of an ``(F, F, m)`` buffer (what coordinate descent reads column by column);
        the matrices are symmetric, so either index order reads the same numbers.
        """
        v, xbar = (self.v, self.xbar) if rows is None else (self.v[:, rows], self.xbar[rows])
        n, f = self.X.shape
        m = v.shape[1]
        upper = torch.triu_indices(f, f, device=self.X.device)
        if n * upper.shape[1] <= max(4 * m * f * f, 1 << 20):
            # one (pairs, n) @ (n, m) product over the distinct entries, then copied to both triangles
            pairs = (self.X[:, upper[0]] * self.X[:, upper[1]]).T
            where = torch.empty(f, f, dtype=torch.long, device=self.X.device)
            where[upper[0], upper[1]] = where[upper[1], upper[0]] = torch.arange(upper.shape[1], device=where.device)
            g = (pairs @ v)[where.reshape(-1)].reshape(f, f, m)
        else:  # too many pairs to hold: one (F, n) @ (n, m * F) product
            g = (self.X.T @ (v.T[:, :, None] * self.X[None]).transpose(0, 1).reshape(n, -1)).reshape(f, m, f)
            g = g.permute(0, 2, 1)
        xt = xbar.T.contiguous()
        g -= xt[:, None, :] * xt[None, :, :]
        return g.permute(2, 0, 1)


def _from_batches(data: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    require(hasattr(data, "__iter__") and not isinstance(data, Tensor),
            f"fit takes (X, y, sample_weight) or an iterable of (x, y[, weight]) batches, got {describe(data)}")
    xs, ys, ws = [], [], []
    for batch in data:
        require(isinstance(batch, (tuple, list)) and len(batch) in (2, 3),
                f"each batch must be (x, y) or (x, y, weight), got {describe(batch)}")
        xs.append(torch.as_tensor(batch[0]).reshape(len(batch[0]), -1))
        ys.append(torch.as_tensor(batch[1]).reshape(-1))
        if len(batch) == 3:
            ws.append(torch.as_tensor(batch[2]).reshape(-1))
    require(len(xs) > 0, "fit got no batches")
    return torch.cat(xs), torch.cat(ys), torch.cat(ws) if ws else None


@fill_docs
class LinearRegression(InterpretableLinearModel):
    """Weighted least squares; the minimum-norm solution when the samples do not determine it.

    Args:
        {FIT_INTERCEPT}

    Example:
        >>> X = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
        >>> model = LinearRegression().fit(X, X @ torch.tensor([2.0, -1.0]) + 0.5)
        >>> model.coef_.tolist(), round(float(model.intercept_), 6)
        ([2.0, -1.0], 0.5)
    """

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        return _solve_or_pinv(moments.gram(), corr)


@fill_docs
class Ridge(InterpretableLinearModel):
    """Weighted ridge regression: ``sum(w * r**2) + alpha * |coef|**2``.

    Args:
        alpha: Weight of the squared-norm penalty (0: least squares).
        {FIT_INTERCEPT}

    Example:
        >>> X = torch.tensor([[1.0], [-1.0]])
        >>> Ridge(alpha=2.0, fit_intercept=False).fit(X, 2 * X[:, 0]).coef_.tolist()  # 4 / (2 + alpha)
        [1.0]
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True) -> None:
        super().__init__(fit_intercept)
        require(alpha >= 0, f"alpha must be non-negative, got {alpha!r}")
        self.alpha = alpha

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        gram = moments.gram()
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        scaled = gram * total[:, None, None] + self.alpha * eye
        return _solve_or_pinv(scaled, corr * total[:, None])


def _solve_or_pinv(system: Tensor, rhs: Tensor) -> Tensor:
    """Solutions of symmetric positive semi-definite systems ``(m, F, F)``: Cholesky where the system is well
    determined, the pseudo-inverse (minimum-norm solution) where it is not (one LAPACK call per matrix
    either way, but a Cholesky solve is several times cheaper than an eigendecomposition)."""
    system = system.contiguous()
    x, good = _spd_solve(system, rhs)
    bad = (~good).nonzero()[:, 0]
    if len(bad):
        x[bad] = (torch.linalg.pinv(system[bad], hermitian=True) @ rhs[bad][:, :, None])[:, :, 0]
    return x


@fill_docs
class Lasso(InterpretableLinearModel):
    """Weighted lasso ``sum(w * r**2) / (2 * sum(w)) + alpha * |coef|_1``, all problems of a batch at once.

    Problems whose zero solution is optimal (no feature correlates with the target beyond ``alpha``, common
    for Lime surrogates) are settled from their correlations alone. The others run coordinate descent sweeps
    together (one Python step per feature and sweep); after the first sweep and then every 15th, the support
    and signs found are solved exactly (batched Cholesky solves, as small as the largest support), followed by
    active-set steps, and accepted where they satisfy the optimality (KKT) conditions; solved problems leave
    the batch. The result is the exact minimiser, usually after one sweep (or tens on ill-conditioned,
    nearly dense problems).

    Args:
        alpha: Weight of the L1 penalty (0: least squares).
        {FIT_INTERCEPT}
        max_iter: At most this many coordinate descent sweeps.
        tol: Stop when no coefficient changed by more than this in a sweep.

    Example:
        >>> X = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> y = X @ torch.tensor([3.0, 0.1])
        >>> [round(c, 6) for c in Lasso(alpha=0.1).fit(X, y).coef_.tolist()]  # shrunk by 2 * alpha; 0.1 to zero
        [2.8, 0.0]
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True, max_iter: int = 1000,
                 tol: float = 1e-10) -> None:
        super().__init__(fit_intercept)
        require(alpha >= 0, f"alpha must be non-negative, got {alpha!r}")
        self.alpha, self.max_iter, self.tol = alpha, max_iter, tol

    _newton_steps = 3  # active-set steps after each exact solve, while they solve a quarter of those they try
    _solve_every = 15  # sweeps between exact solves after the first (a batch of solves costs about ten sweeps)

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        alpha = float(self.alpha)
        scale = alpha + float(corr.abs().amax())
        slack = 1e-9 * scale
        coef = torch.zeros_like(corr)
        # zero is the minimiser where no correlation exceeds alpha: those problems need no gram and no solve
        todo = (~(corr.abs() <= alpha + slack).all(1)).nonzero()[:, 0]
        if len(todo):
            coef[todo] = self._descend(moments.gram(todo), corr[todo], alpha, slack, scale)
        return coef

    def _descend(self, gram: Tensor, corr: Tensor, alpha: float, slack: float, scale: float) -> Tensor:
        """Coordinate descent sweeps; after the first and then every ``_solve_every``-th, an exact solve on the
        support found and active-set (semismooth Newton) steps from it; solved problems leave the batch. The
        sweeps guarantee progress; the solves finish what the sweeps would take tens more of. A batch of
        Cholesky solves costs about ten sweeps, and on ill-conditioned, nearly dense problems (Lime with large
        targets) an attempt after every sweep mostly failed, so later attempts are spaced out, and a problem
        whose signs did not change since its last failed attempt is not solved again."""
        result = torch.zeros_like(corr)
        live = torch.arange(corr.shape[0], device=corr.device)
        G = gram.permute(1, 2, 0).contiguous()  # G[j]: row (= column) j of every gram, (F, m); no copy
        gram = gram.contiguous()  # and one matrix after another, for the solves
        c = corr.T.contiguous()
        d = torch.diagonal(gram, dim1=1, dim2=2).T.contiguous()
        inv = torch.where(d > 1e-300, 1 / d.clamp_min(1e-300), torch.zeros_like(d))
        coef, fitted = torch.zeros_like(c), torch.zeros_like(c)  # fitted = gram @ coef
        tried = torch.zeros_like(corr)  # the signs each problem's last exact solve started from
        for sweep in range(self.max_iter):
            biggest = torch.zeros_like(c[0])
            for j in range(c.shape[0]):
                old = coef[j]
                new = torch.nn.functional.softshrink(c[j] - fitted[j] + d[j] * old, alpha) * inv[j]
                step = new - old
                fitted.addcmul_(G[j], step)
                coef[j] = new
                biggest = torch.maximum(biggest, step.abs())
            converged = float(biggest.max()) <= self.tol * scale
            ok = torch.zeros(len(live), dtype=torch.bool, device=corr.device)
            if sweep == 0 or (sweep + 1) % self._solve_every == 0 or converged or sweep + 1 == self.max_iter:
                # an exact solve from the signs of the last one that failed would fail again: skip those
                signs = coef.T.sign()
                fresh = (signs != tried).any(1).nonzero()[:, 0]
                tried = signs
                if len(fresh) == len(live):  # (no copies)
                    exact, ok = _refined(gram, corr, signs, alpha, slack, self._newton_steps)
                    result[live[ok]] = exact[ok]
                elif len(fresh):
                    exact, ok[fresh] = _refined(gram[fresh], corr[fresh], signs[fresh], alpha, slack,
                                                self._newton_steps)
                    result[live[fresh[ok[fresh]]]] = exact[ok[fresh]]
            keep = (~ok).nonzero()[:, 0]
            if len(keep) == 0:
                return result
            if len(keep) < len(live):
                live, gram, corr, G, c, d, inv = (live[keep], gram[keep], corr[keep], G[:, :, keep], c[:, keep],
                                                   d[:, keep], inv[:, keep])
                coef, fitted, tried = coef[:, keep], fitted[:, keep], tried[keep]
            if converged:
                break
        result[live] = coef.T  # not solved exactly: the descent's coefficients
        return result


def _refined(gram: Tensor, corr: Tensor, coef: Tensor, alpha: float, slack: float, steps: int
             ) -> tuple[Tensor, Tensor]:
    """:func:`_kkt_solve` on the support of ``coef``, then up to ``steps`` active-set steps for the problems
    not yet optimal: the next support and signs are those of ``d * x + (corr - gram @ x)`` beyond ``alpha``
    (where one coordinate-descent step from the exact ``x`` would land). The steps stop early once the last
    solve settled under a quarter of the problems it tried (ill-conditioned, nearly dense problems, where
    the steps mostly fail and more coordinate descent sweeps are cheaper)."""
    x, ok, residual = _kkt_solve(gram, corr, coef, alpha, slack)
    d = torch.diagonal(gram, dim1=1, dim2=2)
    tried, solved = len(ok), int(ok.sum())
    for _ in range(steps):
        bad = (~ok).nonzero()[:, 0]
        if len(bad) == 0 or 4 * solved < tried:  # stop where the steps no longer pay for themselves
            break
        z = d[bad] * x[bad] + residual[bad]
        guess = torch.where(z.abs() > alpha, z.sign(), torch.zeros((), dtype=z.dtype))
        x[bad], ok[bad], residual[bad] = _kkt_solve(gram[bad], corr[bad], guess, alpha, slack)
        tried, solved = len(bad), int(ok[bad].sum())
    return x, ok



def _kkt_solve(gram: Tensor, corr: Tensor, coef: Tensor, alpha: float, slack: float
               ) -> tuple[Tensor, Tensor, Tensor]:
    """Solve each lasso problem exactly on the support and signs of ``coef`` (M, F); also whether the
    solution is optimal: same signs on the support, ``|corr - gram @ x| <= alpha`` off it; and that residual.

    Each problem's active features are gathered first, so the systems are only as large as the largest
    support (lasso supports are often a few features: the solve is then nearly free)."""
    m = coef.shape[0]
    active = coef != 0
    sign = coef.sign()
    count = active.sum(1)
    s = int(count.max()) if m else 0
    if 2 * s > coef.shape[1]:  # large supports: solve on the whole gram, inactive rows set to the identity
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        system = torch.where(active[:, :, None] & active[:, None, :], gram, eye)
        x, good = _spd_solve(system, torch.where(active, corr - alpha * sign, torch.zeros_like(corr)))
        x = torch.where(active, x, torch.zeros_like(x))
        residual = corr - (gram @ x[:, :, None])[:, :, 0]
        return x, _optimal(x, good, active, sign, residual, alpha + slack), residual
    order = torch.argsort((~active).to(torch.uint8), dim=1, stable=True)[:, :s]  # active features first
    valid = torch.arange(s, device=coef.device)[None] < count[:, None]
    rows = torch.arange(m, device=coef.device)[:, None]
    cols = gram[rows, :, order]  # (m, s, F): the gram's rows of the active features
    both = valid[:, :, None] & valid[:, None, :]
    system = torch.where(both, cols.gather(2, order[:, None, :].expand(m, s, s)),
                         torch.eye(s, dtype=gram.dtype, device=gram.device))
    rhs = torch.where(valid, (corr - alpha * sign).gather(1, order), torch.zeros((), dtype=corr.dtype))
    xs, good = _spd_solve(system, rhs)
    xs = torch.where(valid, xs, torch.zeros((), dtype=xs.dtype))
    x = torch.zeros_like(corr).scatter_(1, order, xs)
    residual = corr - (cols * xs[:, :, None]).sum(1)
    return x, _optimal(x, good, active, sign, residual, alpha + slack), residual


def _spd_solve(system: Tensor, rhs: Tensor, rtol: float = 1e-9) -> tuple[Tensor, Tensor]:
    """Cholesky solves of positive semi-definite systems ``(m, s, s)``; also which were well determined: every
    pivot at least ``rtol`` of its diagonal entry (a support with (nearly) collinear features has many exact
    solutions, and the one a solver returns is rounding noise)."""
    factor, info = torch.linalg.cholesky_ex(system)
    x = torch.cholesky_solve(rhs[:, :, None], factor)[:, :, 0]
    pivots = torch.diagonal(factor, dim1=1, dim2=2) ** 2
    return x, (info == 0) & (pivots >= rtol * torch.diagonal(system, dim1=1, dim2=2)).all(1)


def _optimal(x: Tensor, good: Tensor, active: Tensor, sign: Tensor, residual: Tensor, bound: float) -> Tensor:
    ok = good & torch.isfinite(x).all(1)
    return ok & torch.where(active, x * sign > 0, residual.abs() <= bound).all(1)


def fit_linear(model: Any, X: Tensor, Y: Tensor, W: Tensor) -> Tensor:
    """Coefficients ``(M, F)`` of ``model`` fitted on each column of ``Y`` with weights ``W``.

    Our models solve all columns at once; a Captum-style model (``fit(dataloader)``, ``representation()``)
    or a scikit-learn-style one (``fit(X, y, sample_weight=...)``, ``coef_``) is fitted once per column.
    """
    if isinstance(model, InterpretableLinearModel):
        coef, _ = model.solve(X, Y, W)
        return coef
    require(hasattr(model, "fit"), f"interpretable_model must have a fit method, got {describe(model)}")
    out = []
    for j in range(Y.shape[1]):
        if hasattr(model, "representation"):
            from torch.utils.data import DataLoader, TensorDataset

            data = TensorDataset(X.float(), Y[:, j].float(), W[:, j].float())
            model.fit(DataLoader(data, batch_size=X.shape[0]))
            coef = torch.as_tensor(model.representation())
        else:
            model.fit(X.cpu().numpy(), Y[:, j].cpu().numpy(), sample_weight=W[:, j].cpu().numpy())
            coef = torch.as_tensor(model.coef_)
        out.append(coef.reshape(-1).to(device=X.device, dtype=torch.float64))
    return torch.stack(out)
