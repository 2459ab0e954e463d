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


def _regression(conv):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if conv:
        model = nn.Sequential(nn.Conv2d(1, 2, 2, padding=1, stride=2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 1))
        x = torch.randn(60, 1, 3, 3, generator=g, dtype=torch.float64)
    else:
        model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
        x = torch.randn(60, 4, generator=g, dtype=torch.float64)
    return model.double(), x, torch.randn(60, 1, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv"])
def test_full_dimension_projection_equals_unprojected_kernel(conv):
    """A square random projection P: P (P^T M P)^-1 P^T = M^-1, so scores equal the unprojected ones (no damping;
    a regression output, whose gradients span every direction, keeps M invertible). For the Kronecker projection
    projection_dim = parameters gives every layer its full (d_in, d_out), so P_in (x) P_out is square too; its
    features come from hooks, the unprojected ones from torch.func: two independent paths."""
    model, x, y = _regression(conv)
    ds, test = TensorDataset(x, y), (x[:5] + 0.1, y[:5])
    p = sum(q.numel() for q in model.parameters())
    common = dict(batch_size=20, damping=0.0, output="loss", loss_fn=nn.MSELoss(reduction="none"))
    plain = TRAKInfluence(model, ds, None, projection_dim=None, **common)
    for kind in ("rademacher", "gaussian", "kronecker"):
        proj = TRAKInfluence(model, ds, None, projection_dim=p, projection=kind, **common)
        assert proj.kind == kind and proj.feature_dim == p
        torch.testing.assert_close(proj.influence(test), plain.influence(test), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(proj.self_influence(), plain.self_influence(), rtol=1e-5, atol=1e-7)


def _kron_expected(G, projs, modules):
    """Per layer vec((P_out^T W_grad P_in)), W_grad (out, in [+ bias column]) from the flat per-example gradient."""
    parts, col = [], 0
    for m, (pa, pg) in zip(modules, projs):
        o, i = m.weight.shape[0], m.weight[0].numel()
        W = G[:, col:col + o * i].reshape(-1, o, i)
        col += o * i
        if m.bias is not None:
            W = torch.cat([W, G[:, col:col + o].unsqueeze(2)], 2)
            col += o
        parts.append(torch.einsum("noc,oj,ci->nji", W, pg, pa).reshape(G.shape[0], -1))
    return torch.cat(parts, 1)


def test_kronecker_features_are_projected_per_example_gradients():
    """Below full dimension too: the factored features equal the per-example gradients (torch.func) projected by
    P_in (x) P_out, for a convolution (patch rows) and for a language model's head (token rows)."""
    from intellego.engines.per_sample import example_loss, per_sample_grads
    from intellego.influence.curvature.trak import margin_output
    from intellego.models.tiny_lm import TinyCausalLM

    model, ds, _ = _job(0)
    conv = nn.Sequential(nn.Conv2d(1, 3, 2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(48, 3)).double()
    x = torch.randn(20, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(1))
    trak = TRAKInfluence(conv, TensorDataset(x, y), None, batch_size=7, projection_dim=30, damping=0.1)
    G = per_sample_grads(conv, (x,), y, loss=example_loss(margin_output))
    want = _kron_expected(G, trak.projections[0], [conv[0], conv[3]])
    torch.testing.assert_close(trak.train_features[0], want, rtol=1e-9, atol=1e-11)

    lm = TinyCausalLM(12, dim=8, max_len=8, seed=0).double()
    ids = torch.randint(3, 12, (10, 6), generator=torch.Generator().manual_seed(0))

    def lm_loss(out, labels):
        return nn.functional.cross_entropy(out.logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none").sum(1)

    trak = TRAKInfluence(lm, TensorDataset(ids, ids), None, loss_fn=lm_loss, batch_size=5, output="loss",
                         projection_dim=20, layers=["lm_head"], damping=0.1)
    G = per_sample_grads(lm, (ids,), ids, loss=example_loss(lm_loss, "none"), names=["lm_head.weight", "lm_head.bias"])
    want = _kron_expected(G, trak.projections[0], [lm.lm_head])
    torch.testing.assert_close(trak.train_features[0], want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["kronecker", "gaussian"])
def test_projections_are_deterministic_per_seed(kind):
    model, ds, test = _job(5)
    runs = [TRAKInfluence(model, ds, [model.state_dict()] * 2, batch_size=30, projection_dim=12, projection=kind,
                          seed=s).influence(test) for s in (3, 3, 4)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.allclose(runs[0], runs[2])


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
    with pytest.raises(IntellegoError, match="projection must be 'auto', 'kronecker'"):
        TRAKInfluence(model, ds, None, projection="sparse")
    normed = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 3)).double()
    with pytest.raises(IntellegoError, match="projection='kronecker' needs every chosen parameter"):
        TRAKInfluence(normed, ds, None, batch_size=20, projection_dim=5, projection="kronecker")
    assert TRAKInfluence(normed, ds, None, batch_size=20, projection_dim=5).kind == "gaussian"  # auto falls back

    class Twice(nn.Module):  # one Linear applied twice: no single row set per example
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(4, 4)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(torch.tanh(self.inner(torch.tanh(self.inner(x)))))

    twice = Twice().double()
    assert TRAKInfluence(twice, ds, None, batch_size=20, projection_dim=5).kind == "gaussian"
    with pytest.raises(IntellegoError, match="each chosen layer must run once per forward pass"):
        TRAKInfluence(twice, ds, None, batch_size=20, projection_dim=5, projection="kronecker")
    model.train()
    x, y = ds.tensors
    before = snapshot(model, (x, y))
    TRAKInfluence(model, ds, [model.state_dict()], batch_size=20, projection_dim=5).influence(test)
    assert_same(before, snapshot(model, (x, y)))
