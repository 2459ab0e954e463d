"""Curvature math behind the influence functions: products against autograd, exact inverse, CG and LiSSA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.influence.curvature.functional import FlatObjective, per_example_loss
from intellego.influence.curvature.solvers import (
    apply_inverse,
    conjugate_gradient,
    damped_eigh,
    hutchinson_trace,
    lissa,
    relative_damping,
)


def _mlp_job(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    loss = per_example_loss(nn.CrossEntropyLoss(reduction="none"), "none")
    names = [n for n, _ in model.named_parameters()]
    return model, FlatObjective(model, names, loss), [(x[:12], y[:12]), (x[12:], y[12:])]


def _brute_hessian(model, obj, batches):
    theta = obj.theta()
    return torch.autograd.functional.hessian(lambda t: sum(obj.batch_loss(t, b) for b in batches), theta)


def test_hessian_and_hvp_match_autograd():
    model, obj, batches = _mlp_job()
    theta = obj.theta()
    H = _brute_hessian(model, obj, batches)
    torch.testing.assert_close(obj.hessian(theta, batches, columns=7), H, rtol=1e-10, atol=1e-10)
    V = torch.randn(obj.numel, 3, dtype=torch.float64)
    torch.testing.assert_close(obj.hvp(theta, batches, V), H @ V, rtol=1e-10, atol=1e-10)


def test_gauss_newton_matches_definition_and_product():
    model, obj, batches = _mlp_job(1)
    theta = obj.theta()
    G = torch.zeros(obj.numel, obj.numel, dtype=torch.float64)
    for x, _y in batches:
        for i in range(len(x)):
            J = torch.autograd.functional.jacobian(lambda t, i=i, x=x: obj.output(t, [x[i:i + 1]])[0], theta)
            p = torch.softmax(obj.output(theta, [x[i:i + 1]])[0], 0)
            G += J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
    torch.testing.assert_close(obj.gauss_newton(theta, batches, rows=5), G, rtol=1e-9, atol=1e-10)
    V = torch.randn(obj.numel, 2, dtype=torch.float64)
    torch.testing.assert_close(obj.gnvp(theta, batches, V), G @ V, rtol=1e-9, atol=1e-10)
    assert torch.linalg.eigvalsh(G).min() > -1e-10  # never indefinite


def test_per_example_loss_from_reducing_losses():
    out = torch.randn(6, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    ref = nn.CrossEntropyLoss(reduction="none")(out, y)
    for red in ("sum", "mean"):
        got = per_example_loss(nn.CrossEntropyLoss(reduction=red), red)(out, y)
        torch.testing.assert_close(got, ref)


def test_exact_inverse_cg_and_lissa_agree():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    C = A @ A.T / 30
    B = torch.randn(30, 4, generator=g, dtype=torch.float64)
    lam = relative_damping(float(torch.trace(C)), 30, 0.05)
    evals, evecs = damped_eigh(C, lam)
    exact = apply_inverse(evals, evecs, B)
    torch.testing.assert_close((C + lam * torch.eye(30, dtype=torch.float64)) @ exact, B)
    cg = conjugate_gradient(lambda V: C @ V, B, damping=lam, tol=1e-12)
    torch.testing.assert_close(cg, exact, rtol=1e-8, atol=1e-9)
    scale = float(evals[-1]) * 1.1
    ls = lissa(lambda V, _g: C @ V, B, damping=lam, scale=scale, depth=3000, tol=1e-13)
    torch.testing.assert_close(ls, exact, rtol=1e-6, atol=1e-7)


def test_lissa_with_minibatch_curvature_converges_in_mean():
    g = torch.Generator().manual_seed(4)
    rows = torch.randn(200, 6, generator=g, dtype=torch.float64)
    C = rows.T @ rows / 200
    B = torch.randn(6, 1, generator=g, dtype=torch.float64)
    exact = torch.linalg.solve(C + 0.1 * torch.eye(6, dtype=torch.float64), B)

    def sample(V, gen):
        idx = torch.randint(0, 200, (50,), generator=gen)
        r = rows[idx]
        return r.T @ (r @ V) / 50

    est = lissa(sample, B, damping=0.1, scale=10.0, depth=400, repeats=8,
                generator=torch.Generator().manual_seed(0))
    assert float((est - exact).norm() / exact.norm()) < 0.05


def test_hutchinson_trace_estimates_trace():
    C = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    est = hutchinson_trace(lambda V: C @ V, 10, probes=4, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(55.0)  # diagonal: Rademacher probes give the trace exactly


def test_indefinite_curvature_is_a_named_error():
    C = torch.diag(torch.tensor([2.0, -0.5], dtype=torch.float64))
    with pytest.raises(IntellegoError, match=r"not positive definite after damping.*raise hessian_reg above 0.5"):
        damped_eigh(C, 1e-3)
    with pytest.raises(IntellegoError, match="non-positive curvature"):
        conjugate_gradient(lambda V: C @ V, torch.tensor([[0.0], [1.0]], dtype=torch.float64), damping=0.0)
    with pytest.raises(IntellegoError, match="LiSSA diverged"):
        lissa(lambda V, _g: C @ V * 100, torch.ones(2, 1, dtype=torch.float64), damping=0.0, scale=1.0, depth=2000)
