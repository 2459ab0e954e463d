"""EK-FAC: exact on one linear layer, eigen-correction beats K-FAC, sequences, errors, hygiene."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.influence import EKFACInfluence, NaiveInfluenceFunction

MSE = nn.MSELoss(reduction="none")
CE = nn.CrossEntropyLoss(reduction="none")


def _data(n=40, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("bias", [False, True])
def test_ekfac_equals_exact_gauss_newton_on_one_linear_layer(bias):
    torch.manual_seed(0)
    model = nn.Linear(5, 3, bias=bias).double()
    x, y = _data()
    ds = TensorDataset(x, y)
    ek = EKFACInfluence(model, ds, loss_fn=MSE, batch_size=16, damping=0.3)
    exact = NaiveInfluenceFunction(model, ds, None, loss_fn=MSE, batch_size=16, hessian_reg=0.3,
                                   curvature="gauss_newton", solver="exact")
    test = (x[:4] * 0.5, y[:4] + 1)
    torch.testing.assert_close(ek.influence(test), exact.influence(test), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ek.self_influence(), exact.self_influence(), rtol=1e-9, atol=1e-10)
    # the corrected eigenvalues are the exact Gauss-Newton spectrum
    G = exact.objective.gauss_newton(exact.theta, list(exact.hessian_dataloader))
    lam = torch.sort(ek.factors[0].eigenvalues.flatten()).values
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(G).clamp_min(0), rtol=1e-9, atol=1e-9)


def test_eigen_correction_fits_the_gauss_newton_block_better_than_kfac():
    """Two layers with cross-entropy: neither is exact; in K-FAC's eigenbasis the corrected eigenvalues are the
    Frobenius-optimal diagonal, so EK-FAC's block is closer to the exact Gauss-Newton block than K-FAC's."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (80,), generator=g)
    ds = TensorDataset(x, y)
    ek = EKFACInfluence(model, ds, loss_fn=CE, batch_size=40)
    exact = NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=40, layers=["2"])
    G = exact.objective.gauss_newton(exact.theta, list(exact.hessian_dataloader))
    f = ek.factors[1]
    o, i = 3, 7
    basis = torch.einsum("ra,cb->rcab", f.q_out, f.q_in).reshape(o * i, o * i)  # columns: vec(q_a q_b^T)
    order = torch.tensor([r * 6 + c if c < 6 else 18 + r for r in range(o) for c in range(i)])
    basis = basis[torch.argsort(order)]  # rows in parameter order (weight row-major, then bias)
    errs = []
    for lam in (f.eigenvalues, f.kfac_eigenvalues):
        approx = basis @ torch.diag(lam.reshape(-1)) @ basis.T
        errs.append(float((approx - G).norm()))
    assert errs[0] < errs[1], errs
    rot = basis.T @ G @ basis
    torch.testing.assert_close(torch.diagonal(rot), f.eigenvalues.reshape(-1), rtol=1e-9, atol=1e-10)


def test_ekfac_on_tiny_lm_sequences():
    from intellego.models.tiny_lm import TinyCausalLM

    lm = TinyCausalLM(12, dim=8, max_len=8, seed=0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 12, (10, 6), generator=g)

    def lm_loss(out, labels):
        return nn.functional.cross_entropy(out.logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none").sum(1)

    ek = EKFACInfluence(lm, TensorDataset(ids, ids), loss_fn=lm_loss, batch_size=5, layers=["mlp.0", "lm_head"],
                        fisher="sampled", generator=torch.Generator().manual_seed(0))
    query = lm.generate(ids[:1, :3], max_new_tokens=3)
    scores = ek.influence((query, query))
    assert scores.shape == (1, 10) and torch.isfinite(scores).all()
    assert torch.all(ek.self_influence() > 0)


def test_ekfac_errors_and_hygiene():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    x, y = torch.randn(8, 1, 6), torch.randint(0, 2, (8,))
    with pytest.raises(IntellegoError, match=r"EK-FAC supports nn.Linear and nn.Conv2d layers; layer '0' is a Conv1d"):
        EKFACInfluence(model, TensorDataset(x, y), loss_fn=CE, batch_size=4, layers=["0"])
    with pytest.raises(IntellegoError, match="fisher='exact' needs at most 64 outputs"):
        EKFACInfluence(nn.Linear(6, 70), TensorDataset(x[:, 0], y), loss_fn=CE, batch_size=4)
    with pytest.raises(IntellegoError, match="fisher must be"):
        EKFACInfluence(model, TensorDataset(x, y), loss_fn=CE, batch_size=4, fisher="empirical")
    model.train()
    before = snapshot(model, (x, y))
    ek = EKFACInfluence(model, TensorDataset(x, y), loss_fn=CE, batch_size=4)
    ek.influence((x[:2], y[:2]))
    assert_same(before, snapshot(model, (x, y)))
