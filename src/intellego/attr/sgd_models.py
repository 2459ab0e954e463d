"""Captum's SGD-trained surrogates (``SGDLasso``, ``SGDRidge``, ``SGDLinearRegression``, ``SGDLinearModel``) on
exact torch solvers: the minimiser that Captum's stochastic gradient descent approaches, found directly.

Captum's objective is ``sum(w * r**2) / (2 * sum(w))`` plus ``alpha`` times the L1 norm of the coefficients
(``SGDLasso``), their unsquared L2 norm (``SGDRidge``) or nothing (``SGDLinearRegression``); ``alpha`` is given to
``fit`` (default 1.0, as in Captum). SGD's own knobs (``max_epoch``, ``initial_lr``, ``patience``...) are accepted
and unused. Captum's SGD stops near the minimiser, so its coefficients differ from these by its tolerance.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> model = SGDLinearRegression()
    >>> _ = model.fit(DataLoader(TensorDataset(X, X @ torch.tensor([2.0, -1.0]) + 0.5), batch_size=4))
    >>> [round(v, 6) for v in model.representation().reshape(-1).tolist()]
    [2.0, -1.0]
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from ..errors import require
from .linear_models import InterpretableLinearModel, Lasso, LinearRegression, Moments

__all__ = ["SGDLinearModel", "SGDLasso", "SGDRidge", "SGDLinearRegression"]

# Captum's model-construction arguments: the shapes come from the data here; only bias and norm_type matter.
_CONSTRUCT = {"in_features", "out_features", "bias", "norm_type", "affine_norm", "weight_values", "bias_value",
              "classes"}
# Captum's SGD training options: they steer the descent only, the exact minimiser does not depend on them.
_SGD_ONLY = {"max_epoch", "reduce_lr", "initial_lr", "patience", "threshold", "running_loss_window", "device",
             "init_scheme", "debug"}


class SGDLinearModel(InterpretableLinearModel):
    """Base of Captum's SGD surrogates; ``SGDLinearModel(**kwargs)`` itself is unregularised, like Captum's
    ``SGDLinearRegression``. Constructor keywords are Captum's (``bias=False`` fits no intercept; feature
    normalisation, ``norm_type``, is not supported)."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _CONSTRUCT)
        require(not unknown, f"{type(self).__name__}: unknown argument(s) {unknown}; Captum's are "
                             f"{sorted(_CONSTRUCT)}")
        require(kwargs.get("norm_type") is None, f"{type(self).__name__}: norm_type={kwargs.get('norm_type')!r} is not "
                                                 "supported (normalise the features before fitting)")
        super().__init__(fit_intercept=bool(kwargs.get("bias", True)))
        self.alpha = 1.0
        self.construct_kwargs = kwargs

    def fit(self, train_data: Any, y: Any = None, sample_weight: Any = None,  # type: ignore[override]
            **kwargs: Any) -> dict[str, float]:
        """Fit on a ``DataLoader`` of ``(x, y[, weight])`` batches (or ``X, y, sample_weight``); ``alpha`` is the
        penalty (default 1.0). Returns Captum's training record ``{"train_time": seconds}``."""
        unknown = sorted(set(kwargs) - _SGD_ONLY - {"alpha"})
        require(not unknown, f"{type(self).__name__}.fit: option(s) {unknown} are not supported (the loss and "
                             f"penalty are fixed by the class); accepted: alpha and {sorted(_SGD_ONLY)}")
        alpha = kwargs.get("alpha", 1.0)
        require(isinstance(alpha, (int, float)) and alpha >= 0,
                f"{type(self).__name__}.fit: alpha must be a non-negative number, got {alpha!r}")
        self.alpha = float(alpha)
        start = time.perf_counter()
        super().fit(train_data, y, sample_weight)
        return {"train_time": time.perf_counter() - start}

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        return LinearRegression._coefficients(self, moments, corr, total)  # type: ignore[arg-type]


class SGDLinearRegression(SGDLinearModel):
    """Captum's ``SGDLinearRegression``: weighted least squares, no penalty."""


class SGDLasso(SGDLinearModel):
    """Captum's ``SGDLasso``: ``sum(w * r**2) / (2 * sum(w)) + alpha * |coef|_1`` (our :class:`Lasso`'s objective)."""

    max_iter, tol = 1000, 1e-10

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        return Lasso._coefficients(self, moments, corr, total)  # type: ignore[arg-type]

    _descend = Lasso._descend
    _newton_steps = Lasso._newton_steps
    _solve_every = Lasso._solve_every


class SGDRidge(SGDLinearModel):
    """Captum's ``SGDRidge``: ``sum(w * r**2) / (2 * sum(w)) + alpha * |coef|_2`` with the L2 norm unsquared.

    The minimiser is zero when ``|c| <= alpha`` (``c`` the weighted correlations); otherwise it is
    ``(G + alpha / r) ** -1 c`` for the radius ``r = |coef|`` that solves this fixed point, found by bisection in
    the eigenbasis of the weighted Gram matrix ``G``.
    """

    def _coefficients(self, moments: Moments, corr: Tensor, total: Tensor) -> Tensor:
        gram = moments.gram()
        evals, evecs = torch.linalg.eigh(gram)
        evals = evals.clamp_min(0)
        b = (evecs.transpose(1, 2) @ corr[:, :, None])[:, :, 0]
        alpha = self.alpha
        active = corr.norm(dim=1) > alpha

        def radius_gap(r: Tensor) -> Tensor:
            return ((b / (evals + alpha / r[:, None])) ** 2).sum(1).sqrt() - r

        lo = torch.zeros_like(total)
        hi = torch.ones_like(total)
        for _ in range(200):  # grow the bracket until the gap turns negative
            grow = active & (radius_gap(hi) > 0)
            if not bool(grow.any()):
                break
            hi = torch.where(grow, hi * 4, hi)
        require(not bool((active & (radius_gap(hi) > 0)).any()),
                "SGDRidge: the objective is unbounded below (a direction the features do not determine "
                f"correlates with the target by more than alpha={alpha}); raise alpha")
        for _ in range(200):
            mid = (lo + hi) / 2
            up = radius_gap(mid) > 0
            lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
        r = ((lo + hi) / 2).clamp_min(torch.finfo(gram.dtype).tiny)
        coef = (evecs @ (b / (evals + alpha / r[:, None]))[:, :, None])[:, :, 0]
        return torch.where(active[:, None], coef, torch.zeros_like(coef))
