"""Captum's scikit-learn-named surrogates (``SkLearnLasso``, ``SkLearnRidge``, ``SkLearnLinearRegression``,
``SkLearnLinearModel``) on our torch solvers, so ported Lime code keeps its ``interpretable_model=`` argument.

Example:
    >>> from intellego.attr import SkLearnLasso
    >>> SkLearnLasso(alpha=0.01).alpha
    0.01
"""

from __future__ import annotations

import inspect
from typing import Any

from .._docs import fill_docs
from ..errors import require
from .linear_models import InterpretableLinearModel, Lasso, LinearRegression, Ridge

__all__ = ["SkLearnLinearModel", "SkLearnLasso", "SkLearnRidge", "SkLearnLinearRegression"]


_SKLEARN_HARMLESS = {"copy_X", "n_jobs", "precompute", "warm_start", "random_state", "selection", "solver"}


@fill_docs
class SkLearnLinearModel(InterpretableLinearModel):
    """Captum's ``SkLearnLinearModel(sklearn_module, **kwargs)``, fitted by our torch solvers (no scikit-learn).

    ``sklearn_module`` is one of ``"linear_model.Lasso"``, ``"linear_model.Ridge"`` and
    ``"linear_model.LinearRegression"``; the instance is the matching :class:`SkLearnLasso`,
    :class:`SkLearnRidge` or :class:`SkLearnLinearRegression`. Keyword arguments are scikit-learn's
    (``alpha``, ``fit_intercept``, ``max_iter``, ``tol``); options that only steer scikit-learn's solver
    (``copy_X``, ``selection``, ...) are accepted and ignored, others (``positive``) raise. The objectives are
    scikit-learn's, so ported Lime code gives the same surrogate, fitted for the whole batch at once.

    Args:
        sklearn_module: The scikit-learn class the model stands for (empty for a named subclass).
        {SKLEARN_KWARGS}

    Example:
        >>> import torch
        >>> from intellego.attr import SkLearnLinearModel
        >>> model = SkLearnLinearModel("linear_model.Ridge", alpha=0.5)
        >>> type(model).__name__, model.alpha
        ('SkLearnRidge', 0.5)
    """

    _solver: type[InterpretableLinearModel] = InterpretableLinearModel

    def __new__(cls, sklearn_module: str = "", **kwargs: Any) -> SkLearnLinearModel:
        if cls is SkLearnLinearModel:
            known = {c._module: c for c in (SkLearnLasso, SkLearnRidge, SkLearnLinearRegression)}
            require(sklearn_module in known, f"sklearn_module must be one of {sorted(known)} (intellego fits "
                    f"them with torch), got {sklearn_module!r}")
            cls = known[sklearn_module]
        return object.__new__(cls)

    _module = ""

    def __init__(self, sklearn_module: str = "", **kwargs: Any) -> None:
        module = type(self)._module
        require(sklearn_module in ("", module), f"{type(self).__name__} fits {module}, got {sklearn_module!r}")
        allowed = set(inspect.signature(self._solver.__init__).parameters) - {"self"}
        unknown = sorted(set(kwargs) - allowed - _SKLEARN_HARMLESS)
        require(not unknown, f"{type(self).__name__}: scikit-learn option(s) {unknown} are not supported by the "
                f"torch solver; supported: {sorted(allowed)}")
        self._solver.__init__(self, **{k: v for k, v in kwargs.items() if k in allowed})
        self.sklearn_module = module


@fill_docs
class SkLearnLasso(SkLearnLinearModel, Lasso):
    """Captum's ``SkLearnLasso(**kwargs)`` on our :class:`Lasso` (scikit-learn's default ``alpha=1.0``).

    Args:
        {SKLEARN_KWARGS}

    Example:
        >>> import torch
        >>> X = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> [round(c, 6) for c in SkLearnLasso(alpha=0.5).fit(X, X @ torch.tensor([3.0, 0.1])).coef_.tolist()]
        [2.0, 0.0]
    """

    _solver, _module = Lasso, "linear_model.Lasso"


@fill_docs
class SkLearnRidge(SkLearnLinearModel, Ridge):
    """Captum's ``SkLearnRidge(**kwargs)`` on our :class:`Ridge`.

    Args:
        {SKLEARN_KWARGS}

    Example:
        >>> import torch
        >>> X = torch.tensor([[1.0], [-1.0]])
        >>> SkLearnRidge(alpha=2.0).fit(X, 2 * X[:, 0]).representation().tolist()  # 4 / (2 + alpha)
        [[1.0]]
    """

    _solver, _module = Ridge, "linear_model.Ridge"


@fill_docs
class SkLearnLinearRegression(SkLearnLinearModel, LinearRegression):
    """Captum's ``SkLearnLinearRegression(**kwargs)`` on our :class:`LinearRegression`.

    Args:
        {SKLEARN_KWARGS}

    Example:
        >>> import torch
        >>> X = torch.tensor([[0.0], [1.0], [2.0]])
        >>> model = SkLearnLinearRegression().fit(X, 3 * X[:, 0] + 1)
        >>> round(float(model.representation()), 6), round(float(model.bias()), 6)
        (3.0, 1.0)
    """

    _solver, _module = LinearRegression, "linear_model.LinearRegression"
