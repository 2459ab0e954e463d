"""Parity with Captum 0.9 (float64, 1e-6) for every layer and neuron class on random models."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

import intellego.attr as ia


@pytest.fixture(autouse=True)
def _float64_default():
    """Random models in float64 for tight parity; restored after each test (see conftest.py)."""
    torch.set_default_dtype(torch.float64)
    yield


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Tanh(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(20, 3)).double().eval()


def _mlp(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Softplus(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _close(a, b, tol=1e-6):
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) or isinstance(b, (tuple, list)), (type(a), type(b))
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y, tol)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.fixture
def cnn_x():
    torch.manual_seed(3)
    return _cnn(), torch.randn(3, 3, 6, 6), torch.randn(3, 3, 6, 6) * 0.1


@pytest.fixture
def mlp_x():
    torch.manual_seed(4)
    return _mlp(), torch.randn(4, 5), torch.randn(4, 5) * 0.2


LAYER_CASES = [
    ("LayerActivation", {}, False),
    ("LayerGradientXActivation", {"target": 1}, False),
    ("LayerGradCam", {"target": 2}, False),
    ("LayerGradCam", {"target": 2, "relu_attributions": True, "attr_dim_summation": False}, False),
    ("InternalInfluence", {"target": 0, "n_steps": 7}, True),
    ("LayerConductance", {"target": 0, "n_steps": 7}, True),
    ("LayerConductance", {"target": [0, 1, 2], "n_steps": 6, "method": "riemann_trapezoid"}, True),
    ("LayerIntegratedGradients", {"target": 1, "n_steps": 9}, True),
    ("LayerIntegratedGradients", {"target": 1, "n_steps": 9, "method": "riemann_left"}, True),
]


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("name,kwargs,baselines", LAYER_CASES)
def test_layer_methods_match_captum_on_cnn(cnn_x, name, kwargs, baselines, to_input):
    model, x, b = cnn_x
    layer = model[2]
    kw = dict(kwargs, attribute_to_layer_input=to_input)
    if baselines:
        kw["baselines"] = b
    ours = getattr(ia, name)(model, layer).attribute(x, **kw)
    theirs = getattr(ca, name)(model, layer).attribute(x, **kw)
    _close(ours, theirs)


@pytest.mark.parametrize("name,kwargs,baselines", LAYER_CASES)
def test_layer_methods_match_captum_on_mlp(mlp_x, name, kwargs, baselines):
    model, x, b = mlp_x
    kw = dict(kwargs)
    if baselines:
        kw["baselines"] = b
    if "target" in kw and isinstance(kw["target"], list):
        kw["target"] = [0, 1, 2, 1]
    ours = getattr(ia, name)(model, model[1]).attribute(x, **kw)
    theirs = getattr(ca, name)(model, model[1]).attribute(x, **kw)
    _close(ours, theirs)


@pytest.mark.parametrize("name", ["LayerConductance", "LayerIntegratedGradients"])
def test_convergence_delta_matches_captum(mlp_x, name):
    model, x, b = mlp_x
    ours = getattr(ia, name)(model, model[3]).attribute(x, b, target=2, n_steps=12, return_convergence_delta=True)
    theirs = getattr(ca, name)(model, model[3]).attribute(x, b, target=2, n_steps=12, return_convergence_delta=True)
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)
        self.act = nn.Tanh()
        self.out = nn.Linear(4, 2)

    def forward(self, x, y, scale):
        return self.out(self.act(self.a(x) + self.b(y)) * scale)


def test_layer_ig_list_of_layers_matches_captum():
    torch.manual_seed(5)
    model = _Two().double()
    x, y, s = torch.randn(3, 3), torch.randn(3, 2), torch.rand(3, 1)
    layers = [model.a, model.b]
    kw = dict(target=1, n_steps=8, additional_forward_args=s)
    ours = ia.LayerIntegratedGradients(model, layers).attribute((x, y), **kw)
    with pytest.warns(UserWarning):
        theirs = ca.LayerIntegratedGradients(model, layers).attribute((x, y), **kw)
    assert isinstance(ours, list) and len(ours) == 2
    _close(ours, theirs)


def test_layer_ig_dependent_layers_where_captum_fails(mlp_x):
    """Captum raises (an unused tensor in autograd.grad) when one listed layer feeds another; the upstream
    layer then has no influence on the output (its effect is overwritten), so we return zeros for it."""
    model, x, b = mlp_x
    layers = [model[0], model[3]]
    with pytest.warns(UserWarning), pytest.raises(RuntimeError):
        ca.LayerIntegratedGradients(model, layers).attribute(x, b, target=1, n_steps=8)
    ours = ia.LayerIntegratedGradients(model, layers).attribute(x, b, target=1, n_steps=8)
    assert torch.equal(ours[0], torch.zeros_like(ours[0]))
    single = ia.LayerIntegratedGradients(model, model[3]).attribute(x, b, target=1, n_steps=8)
    _close(ours[1], single)


@pytest.mark.parametrize("name", ["LayerActivation", "LayerGradientXActivation"])
def test_list_of_layers_matches_captum(mlp_x, name):
    model, x, _ = mlp_x
    kw = {} if name == "LayerActivation" else {"target": 0}
    ours = getattr(ia, name)(model, [model[1], model[2]]).attribute(x, **kw)
    theirs = getattr(ca, name)(model, [model[1], model[2]]).attribute(x, **kw)
    _close(ours, theirs)


def test_layer_gradient_shap_matches_captum_when_deterministic():
    """With one baseline, no noise and a model linear after the layer, the random path point does not matter."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, refs = torch.randn(3, 4), torch.randn(1, 4)
    ours = ia.LayerGradientShap(model, model[1]).attribute(x, refs, n_samples=4, target=1,
                                                           return_convergence_delta=True)
    theirs = ca.LayerGradientShap(model, model[1]).attribute(x, refs, n_samples=4, target=1,
                                                             return_convergence_delta=True)
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


NEURON_CASES = [
    ("NeuronGradient", {}),
    ("NeuronIntegratedGradients", {"n_steps": 9}),
    ("NeuronConductance", {"n_steps": 9, "target": 1}),
    ("NeuronConductance", {"n_steps": 5, "target": 2, "method": "gausslegendre"}),
]


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("selector", [(2, 1, 1), (1, slice(0, 2), 2), "callable"])
@pytest.mark.parametrize("name,kwargs", NEURON_CASES)
def test_neuron_methods_match_captum_on_cnn(cnn_x, name, kwargs, selector, to_input):
    model, x, b = cnn_x
    if selector == "callable":
        def selector(v):
            return v[:, 1].sum((1, 2))
    kw = dict(kwargs, attribute_to_neuron_input=to_input)
    if name != "NeuronGradient":
        kw["baselines"] = b
    ours = getattr(ia, name)(model, model[2]).attribute(x, neuron_selector=selector, **kw)
    theirs = getattr(ca, name)(model, model[2]).attribute(x, neuron_selector=selector, **kw)
    _close(_captum_trapezoid(ours, kw), theirs)


@pytest.mark.parametrize("name,kwargs", NEURON_CASES)
def test_neuron_methods_match_captum_on_mlp(mlp_x, name, kwargs):
    model, x, b = mlp_x
    kw = dict(kwargs)
    if name != "NeuronGradient":
        kw["baselines"] = b
    ours = getattr(ia, name)(model, model[1]).attribute(x, 4, **kw)
    theirs = getattr(ca, name)(model, model[1]).attribute(x, 4, **kw)
    _close(_captum_trapezoid(ours, kw), theirs)


def _captum_trapezoid(ours, kw):
    """Captum's riemann_trapezoid weights sum to (n-1)/n (NeuronConductance's default rule); ours to one."""
    if "n_steps" in kw and kw.get("method", "riemann_trapezoid") == "riemann_trapezoid" and "target" in kw:
        return ours * (kw["n_steps"] - 1) / kw["n_steps"]
    return ours


def test_neuron_gradient_shap_matches_captum_when_deterministic():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, refs = torch.randn(3, 4), torch.randn(1, 4)
    # the neuron is linear in the input, so the random path point does not matter
    ours = ia.NeuronGradientShap(model, model[0]).attribute(x, 2, refs, n_samples=3)
    theirs = ca.NeuronGradientShap(model, model[0]).attribute(x, 2, refs, n_samples=3)
    _close(ours, theirs)


def test_tuple_inputs_and_additional_args_match_captum():
    torch.manual_seed(5)
    model = _Two().double()
    x, y, s = torch.randn(3, 3), torch.randn(3, 2), torch.rand(3, 1)
    for name, kw in [("LayerConductance", {"n_steps": 5}), ("LayerIntegratedGradients", {"n_steps": 5}),
                     ("InternalInfluence", {"n_steps": 5}), ("LayerGradientXActivation", {})]:
        ours = getattr(ia, name)(model, model.act).attribute((x, y), target=1, additional_forward_args=(s,), **kw)
        theirs = getattr(ca, name)(model, model.act).attribute((x, y), target=1, additional_forward_args=(s,), **kw)
        _close(ours, theirs)
    ours = ia.NeuronIntegratedGradients(model, model.act).attribute((x, y), 1, additional_forward_args=(s,), n_steps=5)
    theirs = ca.NeuronIntegratedGradients(model, model.act).attribute((x, y), 1, additional_forward_args=(s,),
                                                                      n_steps=5)
    _close(ours, theirs)
