"""Numbers that must agree with Captum 0.9 (float64), or with the exact value where Captum is off: Lime's
Lasso at its optimum, LayerGradientShap deltas and layer lists, LayerDeepLift on in-place MaxPool/ReLU,
InternalInfluence with baselines, and NeuronConductance's discretization (also on the Titanic tutorial's net)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")
models = pytest.importorskip("captum.testing.helpers.basic_models")
sk = pytest.importorskip("sklearn.linear_model")
pytestmark = pytest.mark.filterwarnings("ignore")
D = torch.float64


def _mlp(seed=0, width=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(width, 8), nn.Tanh(), nn.Linear(8, 3)).to(D)


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def _close(a, b, atol=1e-8):
    torch.testing.assert_close(a.to(D), b.detach().to(D), atol=atol, rtol=0)


@pytest.mark.parametrize("surrogate", ["Lasso", "LinearRegression"])
def test_lime_target_tensor_equals_one_call_per_target(surrogate):
    m, x = _mlp(), _x(3, 6)
    make = (lambda: ia.Lasso(alpha=0.01)) if surrogate == "Lasso" else ia.LinearRegression
    lime = ia.Lime(m, interpretable_model=make())
    together = lime.attribute(x, target=torch.tensor([0, 2, 1]), n_samples=60,
                              generator=torch.Generator().manual_seed(0))
    apart = torch.cat([lime.attribute(x[i:i + 1], target=t, n_samples=60, generator=torch.Generator().manual_seed(0))
                       for i, t in enumerate([0, 2, 1])])
    _close(together, apart, atol=1e-4)


@pytest.mark.parametrize("kind", ["float", "bool"])
def test_lime_lasso_reaches_the_optimum(kind):
    """The torch Lasso gives scikit-learn's solution (run to a tight tolerance) on the same samples, for float
    inputs and for boolean inputs (binary features that Lasso may set exactly to zero)."""
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 2)).to(D)
    x = _x(2, 20) if kind == "float" else torch.rand(2, 20, generator=torch.Generator().manual_seed(4)) > 0.3
    f = m if kind == "float" else (lambda t: m(t.to(D)))
    for alpha in (0.01, 1e-4):
        ours = ia.Lime(f, interpretable_model=ia.Lasso(alpha=alpha)).attribute(
            x, target=1, n_samples=300, generator=torch.Generator().manual_seed(0))
        ref = ia.Lime(f, interpretable_model=sk.Lasso(alpha=alpha, tol=1e-12, max_iter=200000)).attribute(
            x, target=1, n_samples=300, generator=torch.Generator().manual_seed(0))
        _close(ours, ref, atol=1e-4)
        assert (ours != 0).any()


def test_layer_gradient_shap_deltas_match_captum():
    """At the Tanh layer the rest of the model is linear, so the random path points do not change the result
    and Captum's draws and ours give the same attributions and the same delta per draw."""
    m, x, base = _mlp(1), _x(3, 6), _x(1, 6, seed=2)
    a, d = ia.LayerGradientShap(m, m[1]).attribute(x, base, target=1, n_samples=4, return_convergence_delta=True)
    a2, d2 = ca.LayerGradientShap(m, m[1]).attribute(x, base, target=1, n_samples=4, return_convergence_delta=True)
    _close(a, a2)
    assert d.shape == d2.shape == (12,)
    _close(d, d2)
    assert d.abs().max() < 1e-10


def test_layer_gradient_shap_list_of_layers():
    """A list of layers gives one result per layer, each equal to that layer alone on the same draws, and one
    delta tensor per layer (each layer's attributions are complete on their own). Captum 0.9 fails on a list of
    layers (TypeError: unsupported operand type(s) for -: 'tuple' and 'tuple')."""
    m, x, base = _mlp(2), _x(3, 6), _x(1, 6, seed=2)
    with pytest.raises(TypeError, match="unsupported operand"):
        ca.LayerGradientShap(m, [m[1], m[2]]).attribute(x, base, target=0, n_samples=3)
    attrs, deltas = ia.LayerGradientShap(m, [m[0], m[1]]).attribute(x, base, target=0, n_samples=3,
                                                                     return_convergence_delta=True,
                                                                     generator=torch.Generator().manual_seed(0))
    assert isinstance(attrs, list) and isinstance(deltas, list) and [d.shape for d in deltas] == [(9,), (9,)]
    for layer, a, d in zip((m[0], m[1]), attrs, deltas):
        alone, delta = ia.LayerGradientShap(m, layer).attribute(x, base, target=0, n_samples=3,
                                                               return_convergence_delta=True,
                                                               generator=torch.Generator().manual_seed(0))
        _close(a, alone, atol=1e-12)
        _close(d, delta, atol=1e-12)
    assert deltas[1].abs().max() < 1e-10  # linear after the Tanh: exact per draw
    _close(attrs[1], ca.LayerGradientShap(m, m[1]).attribute(x, base, target=0, n_samples=3))


def _cf(multipliers, inputs, baselines):
    return tuple(m * (i - b) * 2 for m, i, b in zip(multipliers, inputs, baselines))


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("mult", [True, False])
@pytest.mark.parametrize("custom", [False, True])
def test_layer_deeplift_on_max_pool_before_an_in_place_relu(inplace, mult, custom):
    """The ReLU after the pooling layer overwrites the layer's output in place; the layer's value and its
    multipliers are those of the pooling output (a negative pooled value has multiplier 0 through the ReLU)."""
    xi = torch.tensor([[0.3, -1.0, 0.6, -0.2, -0.06, -0.5], [-1.2, 0.4, 0.1, -0.3, -0.4, -2.0]], dtype=D)
    bi = torch.zeros(2, 6, dtype=D)
    kw = {"custom_attribution_func": _cf} if custom else {}
    mm = models.BasicModel_MaxPool_ReLU(inplace=inplace).to(D)
    ours, delta = ia.LayerDeepLift(mm, mm.maxpool, multiply_by_inputs=mult).attribute(
        xi, bi, return_convergence_delta=True, **kw)
    theirs, delta2 = ca.LayerDeepLift(mm, mm.maxpool, multiply_by_inputs=mult).attribute(
        xi, bi, return_convergence_delta=True, **kw)
    _close(ours, theirs, atol=1e-12)
    _close(delta, delta2, atol=1e-12)
    pooled = nn.functional.max_pool1d(xi, 3)
    gate = (pooled > 0).to(D)
    expected = 2 * gate * pooled if custom else gate * pooled if mult else gate  # the custom function decides
    _close(ours, expected, atol=1e-12)


@pytest.mark.parametrize("inplace", [False, True])
def test_layer_deeplift_at_an_in_place_relu(inplace):
    """Captum fails at the ReLU layer of this model ("cannot register a hook on a tensor that doesn't require
    gradient"); ours gives the exact rescale result, in place or not."""
    xi = _x(2, 6, seed=5)
    mm = models.BasicModel_MaxPool_ReLU(inplace=inplace).to(D)
    with pytest.raises(RuntimeError, match="cannot register a hook"):
        ca.LayerDeepLift(mm, mm.relu).attribute(xi, torch.zeros(2, 6, dtype=D))
    for mult in (True, False):
        ours = ia.LayerDeepLift(mm, mm.relu, multiply_by_inputs=mult).attribute(xi, torch.zeros(2, 6, dtype=D))
        relu = nn.functional.max_pool1d(xi, 3).clamp_min(0)
        _close(ours, relu if mult else torch.ones_like(relu), atol=1e-12)


@pytest.mark.parametrize("steps", [20, 50])
def test_internal_influence_with_baselines_matches_captum(steps):
    m, x, b = _mlp(4), _x(3, 6), _x(3, 6, seed=6)
    _close(ia.InternalInfluence(m, m[1]).attribute(x, b, target=1, n_steps=steps),
           ca.InternalInfluence(m, m[1]).attribute(x, b, target=1, n_steps=steps), atol=1e-8)


def test_neuron_conductance_discretization_differs_from_captum_on_purpose():
    """Captum's riemann_trapezoid (NeuronConductance's default) gives the end points 1/(2n) instead of
    1/(2(n-1)), so its weights sum to (n-1)/n: at 50 steps its result is 49/50 of ours (2% low). Ours
    integrates with weights summing to one and is ~60x closer to the converged value."""
    m, x, b = _mlp(5), _x(3, 6), _x(3, 6, seed=7)
    ours = ia.NeuronConductance(m, m[1]).attribute(x, (3,), b, target=1, n_steps=50)
    theirs = ca.NeuronConductance(m, m[1]).attribute(x, (3,), b, target=1, n_steps=50)
    _close(ours * 49 / 50, theirs, atol=1e-8)
    converged = ia.NeuronConductance(m, m[1]).attribute(x, (3,), b, target=1, n_steps=64, method="gausslegendre")
    assert (ours - converged).abs().max() * 20 < (theirs - converged).abs().max()


def _titanic_net():
    """The Titanic tutorial's architecture (12 -> sigmoid 12 -> sigmoid 8 -> softmax 2), random weights scaled
    up to a trained net's size (the shipped one has weights up to ~3)."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(12, 12), nn.Sigmoid(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 2),
                        nn.Softmax(dim=1)).to(D)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4)
    return net


def _titanic_rows(n=6):
    """Unscaled passenger rows as the tutorial feeds them: age, sibsp, parch, fare, then one-hot columns."""
    g = torch.Generator().manual_seed(4)
    num = torch.stack([torch.rand(n, generator=g, dtype=D) * 80, torch.randint(0, 6, (n,), generator=g).to(D),
                       torch.randint(0, 5, (n,), generator=g).to(D), torch.rand(n, generator=g, dtype=D) * 60], 1)
    hot = [nn.functional.one_hot(torch.randint(0, k, (n,), generator=g), k).to(D) for k in (2, 3, 3)]
    return torch.cat([num, *hot], 1)


def _conductance_oracle(net, x, neuron, target, steps=3000):
    """Midpoint rule in float64 with plain autograd (no hooks): mean over alphas of dF/dn * dn/dx, times x."""
    alphas = (torch.arange(steps, dtype=D) + 0.5) / steps
    path = (alphas[:, None, None] * x).reshape(-1, x.shape[1]).requires_grad_(True)
    hidden = net[1](net[0](path))
    cut = hidden.detach().requires_grad_(True)
    score = net[2:](cut)[:, target].sum()
    d_out = torch.autograd.grad(score, cut)[0][:, neuron]
    d_in = torch.autograd.grad(hidden[:, neuron].sum(), path)[0]
    return (d_out[:, None] * d_in).reshape(steps, *x.shape).mean(0) * x


def test_neuron_conductance_titanic_converges_where_captum_is_off_by_one_over_n():
    """The Titanic tutorial's NeuronConductance (default riemann_trapezoid, zero baseline, unscaled inputs):
    Captum's result is exactly (n-1)/n of ours on the same points (its end weights 1/(2n)), so it stays off
    the integral by |value|/n (O(1/n_steps): 4x smaller at 4x the steps) while ours converges to a fine
    midpoint oracle (row "Trapezoid rule" of docs/porting.md)."""
    net, x = _titanic_net(), _titanic_rows()
    for neuron in (4, 10):
        exact = _conductance_oracle(net, x, neuron, 1)
        assert exact.abs().max() > 0.05  # a neuron that matters, so the 1/n gap is visible
        gaps = []
        for steps in (500, 2000):
            ours = ia.NeuronConductance(net, net[1]).attribute(x, neuron_selector=neuron, target=1, n_steps=steps)
            theirs = ca.NeuronConductance(net, net[1]).attribute(x, neuron_selector=neuron, target=1, n_steps=steps)
            # same points (Captum's alphas are float32 values, hence 1e-7), weights scaled by (n-1)/n
            _close(theirs, ours * (steps - 1) / steps, atol=exact.abs().max().item() * 1e-7)
            _close(ours, exact, atol=exact.abs().max().item() * 1e-4)
            _close(exact - theirs, exact / steps, atol=exact.abs().max().item() * 1e-4)
            gaps.append((theirs - exact).abs().max().item())
        assert 3.5 < gaps[0] / gaps[1] < 4.5
