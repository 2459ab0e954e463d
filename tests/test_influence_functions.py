"""Naive / Arnoldi influence functions: closed forms, leave-one-out, solvers, Captum parity, errors, hygiene."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.influence import ArnoldiInfluenceFunction, EKFACInfluence, NaiveInfluenceFunction
from intellego.influence._core import influence_function as core_if

BCE = nn.BCEWithLogitsLoss(reduction="none")
LAM = 0.1


def _logistic_data(n=60, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X @ w_true)).double()
    return X, y


def _fit_logistic(X, y, lam=LAM, w0=None):
    """Newton's method on sum_i BCE_i + lam/2 |w|^2 (convex): the exact optimum."""
    w = torch.zeros(X.shape[1], dtype=torch.float64) if w0 is None else w0.clone()
    for _ in range(50):
        p = torch.sigmoid(X @ w)
        grad = X.T @ (p - y) + lam * w
        H = X.T @ (X * (p * (1 - p)).unsqueeze(1)) + lam * torch.eye(X.shape[1], dtype=torch.float64)
        step = torch.linalg.solve(H, grad)
        w = w - step
        if float(step.norm()) < 1e-14:
            break
    return w


def _logistic_model(w):
    model = nn.Linear(w.shape[0], 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w.unsqueeze(0))
    return model


def _closed_form(X, y, w, Xt, yt, lam=LAM):
    p = torch.sigmoid(X @ w)
    H = X.T @ (X * (p * (1 - p)).unsqueeze(1)) + lam * torch.eye(X.shape[1], dtype=torch.float64)
    G = (p - y).unsqueeze(1) * X
    Gt = (torch.sigmoid(Xt @ w) - yt).unsqueeze(1) * Xt
    return Gt @ torch.linalg.solve(H, G.T)


@pytest.mark.parametrize("curvature", ["hessian", "gauss_newton"])
@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_logistic_regression_closed_form(curvature, solver):
    X, y = _logistic_data()
    w = _fit_logistic(X, y)
    Xt, yt = X[:4] + 0.3, 1 - y[:4]
    inf = NaiveInfluenceFunction(_logistic_model(w), TensorDataset(X, y.unsqueeze(1)), None, loss_fn=BCE,
                                 batch_size=25, hessian_reg=LAM, curvature=curvature, solver=solver, cg_tol=1e-12)
    got = inf.influence((Xt, yt.unsqueeze(1)))
    want = _closed_form(X, y, w, Xt, yt)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
    if solver == "exact" and curvature == "hessian":
        li = NaiveInfluenceFunction(_logistic_model(w), TensorDataset(X, y.unsqueeze(1)), None, loss_fn=BCE,
                                    batch_size=60, hessian_reg=LAM, curvature=curvature, solver="lissa",
                                    lissa_depth=400, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(li.influence((Xt, yt.unsqueeze(1))), want, rtol=1e-4, atol=1e-6)
    # self influence: g_i^T H^-1 g_i
    self_want = torch.diagonal(_closed_form(X, y, w, X, y))
    torch.testing.assert_close(inf.self_influence(), self_want, rtol=1e-6, atol=1e-9)


def test_leave_one_out_correlation_on_convex_problem():
    X, y = _logistic_data(n=40, seed=1)
    w = _fit_logistic(X, y)
    Xt, yt = _logistic_data(n=3, seed=7)

    def test_loss(wv):
        return nn.functional.binary_cross_entropy_with_logits(Xt @ wv, yt, reduction="sum")

    actual = []
    for i in range(len(X)):
        keep = torch.arange(len(X)) != i
        actual.append(float(test_loss(_fit_logistic(X[keep], y[keep], w0=w)) - test_loss(w)))
    inf = NaiveInfluenceFunction(_logistic_model(w), TensorDataset(X, y.unsqueeze(1)), None, loss_fn=BCE,
                                 batch_size=40, hessian_reg=LAM)
    predicted = inf.influence((Xt, yt.unsqueeze(1))).sum(0)
    r = torch.corrcoef(torch.stack([predicted, torch.tensor(actual, dtype=torch.float64)]))[0, 1]
    assert r >= 0.9, r


def _mlp(seed=0, hidden=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3)).double()


def _mlp_data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


CE = nn.CrossEntropyLoss(reduction="none")


@pytest.mark.slow
@pytest.mark.parametrize("curvature", ["hessian", "gauss_newton"])
def test_cg_and_lissa_converge_to_full_rank(curvature):
    model = _mlp(1)
    x, y = _mlp_data()
    common = dict(loss_fn=CE, batch_size=32, curvature=curvature, hessian_reg=20.0 if curvature == "hessian" else 2.0)
    exact = NaiveInfluenceFunction(model, TensorDataset(x, y), None, solver="exact", **common)
    cg = NaiveInfluenceFunction(model, TensorDataset(x, y), None, solver="cg", cg_tol=1e-9, **common)
    li = NaiveInfluenceFunction(model, TensorDataset(x, y), None, solver="lissa", lissa_depth=80,
                                generator=torch.Generator().manual_seed(0), **common)
    test = (x[:3] + 0.1, y[:3])
    ref = exact.influence(test)
    torch.testing.assert_close(cg.influence(test), ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(cg.self_influence(), exact.self_influence(), rtol=1e-6, atol=1e-8)
    err = float((li.influence(test) - ref).norm() / ref.norm())
    assert err < 1e-2, err  # one Hessian batch: LiSSA's series with exact products


def test_relative_damping_from_trace_estimate():
    model = _mlp(1)
    x, y = _mlp_data()
    exact = NaiveInfluenceFunction(model, TensorDataset(x, y), None, loss_fn=CE, batch_size=32, solver="exact")
    cg = NaiveInfluenceFunction(model, TensorDataset(x, y), None, loss_fn=CE, batch_size=32, solver="cg")
    assert exact.hessian_reg == pytest.approx(cg.hessian_reg, rel=0.5)  # Hutchinson's trace vs the exact trace


def test_relative_damping_is_scale_free():
    """The same data repeated: the summed curvature doubles, so does its damping; scores halve exactly."""
    model = _mlp(2)
    x, y = _mlp_data()
    one = NaiveInfluenceFunction(model, TensorDataset(x, y), None, loss_fn=CE, batch_size=32)
    two = NaiveInfluenceFunction(model, TensorDataset(x, y), None, loss_fn=CE, batch_size=32,
                                 hessian_dataset=TensorDataset(torch.cat([x, x]), torch.cat([y, y])))
    assert two.hessian_reg == pytest.approx(2 * one.hessian_reg)
    torch.testing.assert_close(two.influence((x[:2], y[:2])), one.influence((x[:2], y[:2])) / 2)


def _captum_pair(tmp_path, cls_ours, cls_captum, **kw):
    model = _mlp(3)
    x, y = _mlp_data(24, seed=3)
    path = str(tmp_path / "ck.pt")
    torch.save(model.state_dict(), path)
    ds = TensorDataset(x, y)
    theirs = cls_captum(model, ds, path, loss_fn=CE, batch_size=8, **kw)
    ours = cls_ours(model, ds, path, loss_fn=CE, batch_size=8, captum_parity=True, **kw)
    return ours, theirs, (x[:5] * 1.5, y[:5])


@pytest.mark.parametrize("kw", [{}, {"projection_dim": 10, "hessian_reg": 1e-2}])
def test_naive_parity_with_captum(tmp_path, kw):
    captum_if = pytest.importorskip("captum.influence")
    ours, theirs, test = _captum_pair(tmp_path, NaiveInfluenceFunction, captum_if.NaiveInfluenceFunction, **kw)
    torch.testing.assert_close(ours.influence(test), theirs.influence(test), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), rtol=1e-5, atol=1e-7)
    a, b = ours.influence(test, k=3), theirs.influence(test, k=3)
    assert torch.equal(a.indices, b.indices)
    torch.testing.assert_close(ours.compute_intermediate_quantities(test), theirs.compute_intermediate_quantities(test),
                               rtol=1e-5, atol=1e-7)


def test_arnoldi_parity_with_captum(tmp_path):
    captum_arnoldi = pytest.importorskip("captum.influence._core.arnoldi_influence_function")
    ours, theirs, test = _captum_pair(tmp_path, ArnoldiInfluenceFunction, captum_arnoldi.ArnoldiInfluenceFunction,
                                      arnoldi_dim=25, projection_dim=8)
    torch.testing.assert_close(ours.influence(test), theirs.influence(test), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), rtol=1e-5, atol=1e-7)


def test_captum_low_rank_misses_the_inverse(tmp_path):
    """Captum's default keeps the top eigenpairs; on this MLP its scores barely track the full-rank inverse of the
    same Hessian and damping (pinned difference)."""
    model = _mlp(4, hidden=10)
    x, y = _mlp_data(64, seed=4)
    ds = TensorDataset(x, y)
    full = NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=64, curvature="gauss_newton")
    low = NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=64, curvature="gauss_newton",
                                 projection_dim=5, hessian_reg=full.hessian_reg)
    test = (x[:4] + 0.2, y[:4])
    a, b = full.influence(test).flatten(), low.influence(test).flatten()
    r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert r < 0.9, r


def test_arnoldi_default_equals_naive_default():
    model = _mlp(5)
    x, y = _mlp_data()
    ds = TensorDataset(x, y)
    a = ArnoldiInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=16).influence((x[:2], y[:2]))
    b = NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=16).influence((x[:2], y[:2]))
    torch.testing.assert_close(a, b)


def test_dataloader_and_k_most_influential():
    model = _mlp(6)
    x, y = _mlp_data()
    inf = NaiveInfluenceFunction(model, DataLoader(TensorDataset(x, y), batch_size=10), None, loss_fn=CE)
    scores = inf.influence((x[:3], y[:3]))
    top = inf.influence((x[:3], y[:3]), k=4, proponents=False)
    torch.testing.assert_close(top.influence_scores, torch.sort(scores, 1).values[:, :4])
    assert core_if.NaiveInfluenceFunction is NaiveInfluenceFunction
    assert core_if.ArnoldiInfluenceFunction is ArnoldiInfluenceFunction
    with pytest.warns(UserWarning, match=r"k=99 is larger than the training set \(\d+ examples\): all"):
        every = inf.influence((x[:3], y[:3]), k=99)
    torch.testing.assert_close(every.influence_scores, torch.sort(scores, 1, descending=True).values)


@pytest.mark.parametrize("cls, kw", [(NaiveInfluenceFunction, {}),
                                     (NaiveInfluenceFunction, {"curvature": "hessian", "hessian_reg": 20.0}),
                                     (NaiveInfluenceFunction, {"projection_dim": 5}),
                                     (NaiveInfluenceFunction, {"captum_parity": True}),
                                     (ArnoldiInfluenceFunction, {}), (EKFACInfluence, {})])
def test_intermediate_quantities_give_the_influence_scores_by_their_dot_products(cls, kw):
    """Captum's contract: ``Q(test) @ Q(train).T == influence(test)``. The full-rank default solved only the test
    side for both calls, so the product was ``g_test . g_train`` without the inverse."""
    model = _mlp(4)
    x, y = _mlp_data()
    ds = TensorDataset(x, y)
    inf = cls(model, ds, None, loss_fn=CE, batch_size=16, **kw)
    test = (x[:3] * 1.5, y[:3])
    train_q = inf.compute_intermediate_quantities(DataLoader(ds, batch_size=16))
    torch.testing.assert_close(inf.compute_intermediate_quantities(test) @ train_q.T, inf.influence(test))
    torch.testing.assert_close((train_q * train_q).sum(1), inf.self_influence())


def test_errors_are_named():
    model = _mlp(7)
    x, y = _mlp_data()
    ds = TensorDataset(x, y)
    with pytest.raises(IntellegoError, match=r"Hessian is not positive definite after damping 1e-08.*hessian_reg"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=32, curvature="hessian", hessian_reg=1e-8)
    with pytest.raises(IntellegoError, match=r"projection_dim=1000 exceeds the number of parameters \(51\)"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=CE, projection_dim=1000)
    with pytest.raises(IntellegoError, match="reduction must be 'none' when sample_wise_grads_per_batch=False"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(IntellegoError, match="solver must be"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=CE, solver="newton")
    with pytest.raises(IntellegoError, match="since `train_dataset` is a Dataset, batch_size must be"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=None)
    with pytest.raises(IntellegoError, match="layer 'fc9' in `layers` is not in the model"):
        NaiveInfluenceFunction(model, ds, None, loss_fn=CE, layers=["fc9"])
    for cls in (NaiveInfluenceFunction, ArnoldiInfluenceFunction, EKFACInfluence):  # no loss_fn: outputs summed
        with pytest.raises(IntellegoError, match="loss is linear in the model's outputs.*pass a loss_fn"):
            cls(model, ds, None, batch_size=32)
    wider = nn.Sequential(nn.Linear(x.shape[1], 9), nn.Tanh(), nn.Linear(9, 3)).state_dict()
    for cls in (NaiveInfluenceFunction, ArnoldiInfluenceFunction, EKFACInfluence):
        with pytest.raises(IntellegoError, match=r"checkpoint does not match the model: Error\(s\) in loading"):
            cls(model, ds, wider, loss_fn=CE, batch_size=32)


def test_model_and_tensors_unchanged(tmp_path):
    model = _mlp(8)
    other = _mlp(9)
    path = str(tmp_path / "ck.pt")
    torch.save(other.state_dict(), path)
    x, y = _mlp_data()
    model.train()
    before = snapshot(model, (x, y))
    inf = NaiveInfluenceFunction(model, TensorDataset(x, y), path, loss_fn=CE, batch_size=16)
    inf.influence((x[:2], y[:2]))
    inf.self_influence()
    assert_same(before, snapshot(model, (x, y)))
    with pytest.raises(IntellegoError):
        NaiveInfluenceFunction(model, TensorDataset(x, y), path, loss_fn=CE, batch_size=16, curvature="hessian",
                               hessian_reg=1e-9)
    assert_same(before, snapshot(model, (x, y)))


def test_training_data_from_an_iterable_dataset():
    """A DataLoader over an IterableDataset has ``__len__`` but raises from it: the progress total is unknown, not an
    error (the same data as a TensorDataset gives the same scores)."""
    from torch.utils.data import IterableDataset

    x, y = _mlp_data()

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(x, y))

    model = _mlp(2)
    streamed = NaiveInfluenceFunction(model, DataLoader(Stream(), batch_size=16), None, loss_fn=CE)
    listed = NaiveInfluenceFunction(model, DataLoader(TensorDataset(x, y), batch_size=16), None, loss_fn=CE)
    torch.testing.assert_close(streamed.influence((x[:2], y[:2]), show_progress=True),
                               listed.influence((x[:2], y[:2])))
