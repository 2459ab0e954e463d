"""Interpretable linear models against scikit-learn on random weighted data (objectives and coefficients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intellego.attr import Lasso, LinearRegression, Ridge

sklearn = pytest.importorskip("sklearn.linear_model")


def data(seed, n=40, f=6, binary=False):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=g, dtype=torch.float64)
    X = (X > 0).double() if binary else X
    y = X @ torch.randn(f, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.05
    return X, y, w


def lasso_objective(X, y, w, coef, intercept, alpha):
    r = y - X @ coef - intercept
    return float((w * r**2).sum() / (2 * w.sum()) + alpha * coef.abs().sum())


@pytest.mark.parametrize("seed", range(4))
def test_linear_regression_and_ridge_match_sklearn(seed):
    X, y, w = data(seed)
    for ours, theirs in [(LinearRegression(), sklearn.LinearRegression()),
                         (Ridge(alpha=0.7), sklearn.Ridge(alpha=0.7))]:
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X.numpy(), y.numpy(), sample_weight=w.numpy())
        np.testing.assert_allclose(ours.coef_.numpy(), theirs.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(float(ours.intercept_), theirs.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed,alpha,binary", [(0, 0.01, False), (1, 0.1, False), (2, 0.5, False), (3, 0.01, True),
                                               (4, 0.05, True), (5, 2.0, False)])
def test_lasso_matches_sklearn_objective_and_coefficients(seed, alpha, binary):
    X, y, w = data(seed, binary=binary)
    ours = Lasso(alpha=alpha).fit(X, y, sample_weight=w)
    theirs = sklearn.Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(X.numpy(), y.numpy(), sample_weight=w.numpy())
    coef, ref = ours.coef_, torch.from_numpy(theirs.coef_)
    mine = lasso_objective(X, y, w, coef, ours.intercept_, alpha)
    best = lasso_objective(X, y, w, ref, theirs.intercept_, alpha)
    assert mine <= best + 1e-12 * max(1.0, abs(best))
    np.testing.assert_allclose(coef.numpy(), theirs.coef_, atol=1e-7)
    np.testing.assert_allclose(float(ours.intercept_), theirs.intercept_, atol=1e-7)
    assert torch.equal(coef == 0, ref == 0)  # the same support


def test_lasso_batched_solve_equals_one_problem_at_a_time_and_more_features_than_samples():
    X, _, _ = data(7, n=12, f=20, binary=True)
    g = torch.Generator().manual_seed(1)
    Y = torch.randn(12, 5, generator=g, dtype=torch.float64)
    W = torch.rand(12, 5, generator=g, dtype=torch.float64) + 0.1
    coef, intercept = Lasso(alpha=0.05).solve(X, Y, W)
    for k in range(5):
        one = Lasso(alpha=0.05).fit(X, Y[:, k], sample_weight=W[:, k])
        torch.testing.assert_close(coef[k], one.coef_)
        theirs = sklearn.Lasso(alpha=0.05, tol=1e-12, max_iter=100_000).fit(
            X.numpy(), Y[:, k].numpy(), sample_weight=W[:, k].numpy())
        mine = lasso_objective(X, Y[:, k], W[:, k], coef[k], intercept[k], 0.05)
        best = lasso_objective(X, Y[:, k], W[:, k], torch.from_numpy(theirs.coef_), theirs.intercept_, 0.05)
        assert mine <= best + 1e-10 * max(1.0, abs(best))


def test_captum_named_wrappers_fit_like_sklearn_and_dispatch():
    from torch.utils.data import DataLoader, TensorDataset

    from intellego.attr import SkLearnLasso, SkLearnLinearModel, SkLearnLinearRegression, SkLearnRidge
    from intellego.errors import IntellegoError

    X, y, w = data(11, binary=True)
    for ours, theirs in [(SkLearnLasso(alpha=0.05), sklearn.Lasso(alpha=0.05, tol=1e-12, max_iter=100_000)),
                         (SkLearnRidge(alpha=0.3), sklearn.Ridge(alpha=0.3)),
                         (SkLearnLinearRegression(), sklearn.LinearRegression())]:
        theirs.fit(X.numpy(), y.numpy(), sample_weight=w.numpy())
        ours.fit(DataLoader(TensorDataset(X, y, w), batch_size=7))  # Captum's fit(train_data) interface
        np.testing.assert_allclose(ours.representation()[0].numpy(), theirs.coef_, atol=1e-7)
        np.testing.assert_allclose(ours.bias().numpy(), [theirs.intercept_], atol=1e-7)
    lasso = SkLearnLinearModel("linear_model.Lasso", alpha=0.2, selection="random")
    assert isinstance(lasso, SkLearnLasso) and isinstance(lasso, SkLearnLinearModel) and lasso.alpha == 0.2
    assert SkLearnLasso().alpha == 1.0  # scikit-learn's default
    with pytest.raises(IntellegoError, match="sklearn_module must be one of"):
        SkLearnLinearModel("linear_model.ElasticNet")
    with pytest.raises(IntellegoError, match="positive"):
        SkLearnLasso(alpha=0.1, positive=True)


def test_lime_with_ported_sklearn_lasso_equals_default_lime():
    from intellego.attr import Lime, SkLearnLasso

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    default = Lime(model).attribute(x, target=1, n_samples=40, generator=torch.Generator().manual_seed(1))
    ported = Lime(model, interpretable_model=SkLearnLasso(alpha=0.01)).attribute(
        x, target=1, n_samples=40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ported, default)


def test_lasso_nearly_dense_ill_conditioned_batch_matches_sklearn():
    """Lime-like problems with large targets (most coefficients non-zero): many need tens of sweeps, so the
    spaced-out exact solves (and the skipping of sign patterns already tried) are exercised."""
    g = torch.Generator().manual_seed(3)
    n, f, m = 50, 16, 24
    X = (torch.rand(n, f, generator=g) > 0.5).double()
    hidden = torch.randn(f, 8, generator=g, dtype=torch.float64)
    Y = 100 * torch.tanh(X @ hidden @ torch.randn(8, m, generator=g, dtype=torch.float64) / 4)
    W = torch.exp(-((1 - X).sum(1, keepdim=True) / f) ** 2 / 0.0625 * torch.rand(1, m, generator=g) * 3)
    coef, intercept = Lasso(alpha=0.01).solve(X, Y, W)
    assert (coef != 0).double().mean() > 0.8
    for k in range(0, m, 6):
        theirs = sklearn.Lasso(alpha=0.01, tol=1e-14, max_iter=1_000_000).fit(
            X.numpy(), Y[:, k].numpy(), sample_weight=W[:, k].numpy())
        mine = lasso_objective(X, Y[:, k], W[:, k], coef[k], intercept[k], 0.01)
        best = lasso_objective(X, Y[:, k], W[:, k], torch.from_numpy(theirs.coef_), theirs.intercept_, 0.01)
        assert mine <= best + 1e-10 * max(1.0, abs(best))
        one = Lasso(alpha=0.01).fit(X, Y[:, k], sample_weight=W[:, k])
        torch.testing.assert_close(coef[k], one.coef_, rtol=0, atol=1e-10)
