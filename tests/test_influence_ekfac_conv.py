"""EK-FAC for nn.Conv2d: patch rows are the per-example gradient's factors, exact on one conv layer with a squared
error, eigenvalues are the Gauss-Newton diagonal in K-FAC's basis, the demo CNN, LDS on a small conv task."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _hygiene import assert_same, snapshot
from intellego.engines.per_sample import example_loss, per_sample_grads
from intellego.errors import IntellegoError
from intellego.influence import EKFACInfluence, NaiveInfluenceFunction
from intellego.influence.curvature.layers import layer_rows
from intellego.influence.metrics import datamodel_outputs, lds

MSE = nn.MSELoss(reduction="none")
CE = nn.CrossEntropyLoss(reduction="none")

CONVS = [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), dilation=(2, 1)),
         dict(kernel_size=3, padding="same", dilation=2), dict(kernel_size=2, padding=1, padding_mode="reflect"),
         dict(kernel_size=3, padding=1, padding_mode="circular", bias=False)]


@pytest.mark.parametrize("cfg", CONVS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_patch_rows_factor_the_per_example_weight_gradient(cfg):
    """sum_t s_t a_t^T over unfolded patches is each example's weight (and bias) gradient, as torch.func says."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, **cfg).double()
    x = torch.randn(4, 2, 7, 6, dtype=torch.float64)
    u = torch.randn_like(conv(x))
    _, ins, outs = layer_rows(conv, [conv], (x,), lambda out: (out, [u]))
    rows = torch.einsum("nto,nti->noi", outs[0][0], ins[0])
    want = per_sample_grads(conv, (x,), u, loss=example_loss(lambda o, t: (o * t).flatten(1).sum(1), "none"))
    got = rows[:, :, :-1] if conv.bias is not None else rows
    torch.testing.assert_close(got.reshape(4, -1), want[:, :conv.weight.numel()], rtol=1e-10, atol=1e-12)
    if conv.bias is not None:
        torch.testing.assert_close(rows[:, :, -1], want[:, conv.weight.numel():], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_ekfac_equals_exact_gauss_newton_on_one_conv_layer(bias):
    """A squared error makes the output Hessian 2I, so every cotangent lights one output pixel and the
    Gauss-Newton matrix is 2 (sum_t a_t a_t^T) (x) I: EK-FAC is exact for any spatial size, stride and padding."""
    torch.manual_seed(0)
    model = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=bias).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randn(30, 3, 3, 3, generator=g, dtype=torch.float64)
    ds = TensorDataset(x, y)
    ek = EKFACInfluence(model, ds, loss_fn=MSE, batch_size=16, damping=0.3)
    exact = NaiveInfluenceFunction(model, ds, None, loss_fn=MSE, batch_size=16, hessian_reg=0.3,
                                   curvature="gauss_newton", solver="exact")
    test = (x[:4] * 0.5, y[:4] + 1)
    torch.testing.assert_close(ek.influence(test), exact.influence(test), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ek.self_influence(), exact.self_influence(), rtol=1e-9, atol=1e-10)
    G = exact.objective.gauss_newton(exact.theta, list(exact.hessian_dataloader))
    lam = torch.sort(ek.factors[0].eigenvalues.flatten()).values
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(G).clamp_min(0), rtol=1e-9, atol=1e-9)


def _basis(f, o, i):
    """K-FAC's eigenvectors vec(q_a q_b^T) as columns, rows in parameter order (weight row-major, then bias)."""
    basis = torch.einsum("ra,cb->rcab", f.q_out, f.q_in).reshape(o * i, o * i)
    w = i - 1 if f.has_bias else i
    order = torch.tensor([r * w + c if c < w else o * w + r for r in range(o) for c in range(i)])
    return basis[torch.argsort(order)]


def test_conv_eigen_correction_is_the_gauss_newton_diagonal():
    """Conv -> tanh -> linear with cross-entropy: pixels interact, so K-FAC is not exact; in K-FAC's eigenbasis the
    corrected eigenvalues are the exact diagonal of the conv layer's Gauss-Newton block (1e-9), and EK-FAC's
    block is closer to the exact one than K-FAC's (with KFC's scaling A (x) S / rows)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.Tanh(), nn.Flatten(), nn.Linear(27, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 2, 6, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=g)
    ds = TensorDataset(x, y)
    ek = EKFACInfluence(model, ds, loss_fn=CE, batch_size=25)
    exact = NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=25, layers=["0"])
    G = exact.objective.gauss_newton(exact.theta, list(exact.hessian_dataloader))
    f = ek.factors[0]
    basis = _basis(f, 3, 19)
    torch.testing.assert_close(torch.diagonal(basis.T @ G @ basis), f.eigenvalues.reshape(-1), rtol=1e-9,
                               atol=1e-10)
    errs = [float((basis @ torch.diag(lam.reshape(-1)) @ basis.T - G.detach()).norm())
            for lam in (f.eigenvalues, f.kfac_eigenvalues)]
    assert errs[0] < errs[1] < float(G.norm()), errs


def test_ekfac_runs_on_the_demo_cnn_chunked_and_clean():
    """All four layers of the shipped ShapesCNN (three convolutions, one linear); a memory budget small enough to
    cut every batch into pieces gives the same factors; the model is left as it was."""
    from intellego.data.shapes import make_shapes
    from intellego.models import load_shapes_cnn

    model = load_shapes_cnn().double()  # float64: chunked and whole sums agree to rounding
    data = make_shapes(8, seed=0, size=16)
    ds = TensorDataset(data.images.double(), data.labels)
    model.train()
    before = snapshot(model, (data.images[:2].double(),))
    ek = EKFACInfluence(model, ds, loss_fn=CE, batch_size=4)
    small = EKFACInfluence(model, ds, loss_fn=CE, batch_size=4, memory_budget=200_000)
    assert_same(before, snapshot(model, (data.images[:2].double(),)))
    assert [type(f.module).__name__ for f in ek.factors] == ["Conv2d", "Conv2d", "Conv2d", "Linear"]
    for a, b in zip(ek.factors, small.factors):
        torch.testing.assert_close(a.eigenvalues, b.eigenvalues, rtol=1e-7, atol=1e-9)
    scores = ek.influence((data.images[:3].double(), data.labels[:3]))
    assert scores.shape == (3, 8) and torch.isfinite(scores).all()
    assert torch.all(ek.self_influence() > 0)


def test_conv_errors():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(16, 2))
    x, y = torch.randn(6, 4, 4, 4), torch.randint(0, 2, (6,))
    with pytest.raises(IntellegoError, match=r"EK-FAC supports nn.Conv2d with groups=1; layer '0' has groups=2"):
        EKFACInfluence(model, TensorDataset(x, y), loss_fn=CE, batch_size=3)


class _ConvTask:
    """Labels from a random teacher convolution on 1 x 6 x 6 images; a tiny student CNN retrained from one seed by
    full-batch gradient descent on any subset of the training set (the LDS oracle)."""

    def __init__(self, n_train=80, n_test=10):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n_train + n_test, 1, 6, 6, generator=g, dtype=torch.float64)
        teacher = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64)
        y = nn.functional.conv2d(x, teacher).amax((2, 3)).argmax(1)
        self.x, self.y, self.xt, self.yt = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    def student(self):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(64, 3)).double()

    def fit(self, mask):
        model = self.student()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        w = mask.to(torch.float64) / max(int(mask.sum()), 1)
        for _ in range(60):
            loss = (CE(model(self.x), self.y) * w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model

    def retrain(self, masks):
        return torch.stack([-CE(self.fit(m)(self.xt), self.yt).detach() for m in masks])


@pytest.mark.slow
def test_ekfac_lds_on_a_small_conv_task():
    """EK-FAC on a conv + linear student predicts retraining nearly as well as the full-rank Gauss-Newton inverse."""
    task = _ConvTask()
    model = task.fit(torch.ones(len(task.x), dtype=torch.bool))
    ds, test = TensorDataset(task.x, task.y), (task.xt, task.yt)
    masks, actual = datamodel_outputs(task.retrain, len(task.x), n_subsets=30,
                                      generator=torch.Generator().manual_seed(1))
    ek = lds(EKFACInfluence(model, ds, loss_fn=CE, batch_size=40).influence(test), masks, actual).score
    full = lds(NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=40).influence(test), masks, actual).score
    print(f"LDS EK-FAC {ek:.3f}, full rank {full:.3f}")
    assert ek > 0.4 and ek > full - 0.15, (ek, full)  # measured: 0.55 and 0.66
