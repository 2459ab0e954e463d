"""TRAK: projection dimension = parameters equals the unprojected kernel, ensembles, LM, errors, hygiene."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.influence.influence_function_trak import TRAKInfluence


def _job(seed=0, n=60):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, TensorDataset(x, y), (x[:5] + 0.1, y[:5])


def test_full_dimension_projection_equals_unprojected_kernel():
    """A square random projection P: P (P^T M P)^-1 P^T = M^-1, so scores equal the unprojected ones (no damping;
    a regression output, whose gradients span every direction, keeps M invertible)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g, dtype=torch.float64)
    y = torch.randn(60, 1, generator=g, dtype=torch.float64)
    ds, test = TensorDataset(x, y), (x[:5] + 0.1, y[:5])
    p = sum(q.numel() for q in model.parameters())
    common = dict(batch_size=20, damping=0.0, output="loss", loss_fn=nn.MSELoss(reduction="none"))
    plain = TRAKInfluence(model, ds, None, projection_dim=None, **common)
    for kind in ("rademacher", "gaussian"):
        proj = TRAKInfluence(model, ds, None, projection_dim=p, projection=kind, **common)
        torch.testing.assert_close(proj.influence(test), plain.influence(test), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(proj.self_influence(), plain.self_influence(), rtol=1e-5, atol=1e-7)


def test_unprojected_trak_is_the_closed_form():
    model, ds, test = _job(1)
    x, y = ds.tensors
    trak = TRAKInfluence(model, ds, [model.state_dict()], batch_size=60, projection_dim=None, damping=0.01)

    def margin(i_x, i_y):
        out = model(i_x.unsqueeze(0))[0]
        others = torch.cat([out[:i_y], out[i_y + 1:]])
        return out[i_y] - torch.logsumexp(others, 0)

    def grad(i_x, i_y):
        return torch.cat([t.reshape(-1) for t in torch.autograd.grad(margin(i_x, i_y), list(model.parameters()))])

    G = torch.stack([grad(a, b) for a, b in zip(x, y)])
    Gt = torch.stack([grad(a, b) for a, b in zip(*test)])
    Q = 1 - torch.softmax(model(x), 1).gather(1, y.unsqueeze(1)).squeeze(1)
    K = G.T @ G + 0.01 * torch.eye(G.shape[1], dtype=torch.float64)
    want = Gt @ torch.linalg.solve(K, G.T) * Q.detach()
    torch.testing.assert_close(trak.influence(test), want.detach(), rtol=1e-8, atol=1e-10)


def test_ensemble_is_the_mean_over_checkpoints():
    model, ds, test = _job(2)
    other, _, _ = _job(3)
    ck = [model.state_dict(), other.state_dict()]
    both = TRAKInfluence(model, ds, ck, batch_size=30, projection_dim=10, damping=0.1, seed=5)
    one = TRAKInfluence(model, ds, ck[:1], batch_size=30, projection_dim=10, damping=0.1, seed=5)
    two = TRAKInfluence(model, ds, ck[1:], batch_size=30, projection_dim=10, damping=0.1, seed=6)
    q = (one.q + two.q) / 2
    want = (one.influence(test) / one.q + two.influence(test) / two.q) / 2 * q
    torch.testing.assert_close(both.influence(test), want, rtol=1e-8, atol=1e-10)
    top = both.influence(test, k=3)
    torch.testing.assert_close(top.influence_scores, torch.sort(both.influence(test), 1, descending=True).values[:, :3])


def test_trak_on_tiny_lm():
    from intellego.models.tiny_lm import TinyCausalLM

    lm = TinyCausalLM(12, dim=8, max_len=8, seed=0)
    ids = torch.randint(3, 12, (12, 6), generator=torch.Generator().manual_seed(0))

    def lm_loss(out, labels):
        return nn.functional.cross_entropy(out.logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none").sum(1)

    trak = TRAKInfluence(lm, TensorDataset(ids, ids), None, loss_fn=lm_loss, batch_size=6, output="loss",
                         projection_dim=8, layers=["lm_head"])
    query = lm.generate(ids[:1, :3], max_new_tokens=3)
    scores = trak.influence((query, query))
    assert scores.shape == (1, 12) and torch.isfinite(scores).all()


def test_trak_errors_and_hygiene():
    model, ds, test = _job(4)
    with pytest.raises(IntellegoError, match=r"projection_dim=100 exceeds the number of parameters \(27\)"):
        TRAKInfluence(model, ds, None, batch_size=20, projection_dim=100)
    bad = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    with pytest.raises(IntellegoError, match="checkpoint 1 does not match the model"):
        TRAKInfluence(model, ds, [model.state_dict(), bad.state_dict()], batch_size=20, projection_dim=5)
    small = TensorDataset(*(t[:10] for t in ds.tensors))
    with pytest.raises(IntellegoError, match="TRAK kernel .* is singular"):
        TRAKInfluence(model, small, None, batch_size=10, projection_dim=20, damping=0.0)
    with pytest.raises(IntellegoError, match="output must be"):
        TRAKInfluence(model, ds, None, output="logit")
    model.train()
    x, y = ds.tensors
    before = snapshot(model, (x, y))
    TRAKInfluence(model, ds, [model.state_dict()], batch_size=20, projection_dim=5).influence(test)
    assert_same(before, snapshot(model, (x, y)))
