"""Layer and neuron methods: closed forms, axioms, the neuron-as-read-out identity, batching, shared modules."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.errors import IntellegoError

D = torch.float64


def _mlp(seed=0, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), act(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _linear2(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3)).double()


def test_conductance_summed_over_layer_is_ig_completeness():
    model = _mlp()
    x, b = torch.randn(3, 5, dtype=D), torch.randn(3, 5, dtype=D) * 0.1
    cond = ia.LayerConductance(model, model[1]).attribute(x, b, target=1, n_steps=400, method="riemann_trapezoid")
    with torch.no_grad():
        gap = model(x)[:, 1] - model(b)[:, 1]
    torch.testing.assert_close(cond.sum(1), gap, atol=1e-4, rtol=0)
    ig = ia.IntegratedGradients(model).attribute(x, b, target=1, n_steps=64)
    torch.testing.assert_close(cond.sum(1), ig.sum(1), atol=1e-4, rtol=0)


def test_internal_influence_closed_form_on_linear_layers():
    model = _linear2()
    x, b = torch.randn(2, 4, dtype=D), torch.randn(2, 4, dtype=D)
    attr = ia.InternalInfluence(model, model[0]).attribute(x, b, target=2, n_steps=5)
    torch.testing.assert_close(attr, model[1].weight[2].expand(2, 5))


def test_layer_ig_closed_form_on_linear_layers():
    model = _linear2()
    x, b = torch.randn(2, 4, dtype=D), torch.randn(2, 4, dtype=D)
    attr, delta = ia.LayerIntegratedGradients(model, model[0]).attribute(x, b, target=0, n_steps=3,
                                                                          return_convergence_delta=True)
    with torch.no_grad():
        expected = model[1].weight[0] * (model[0](x) - model[0](b))
    torch.testing.assert_close(attr, expected)
    assert delta.abs().max() < 1e-10
    to_in = ia.LayerIntegratedGradients(model, model[1]).attribute(x, b, target=0, attribute_to_layer_input=True)
    torch.testing.assert_close(to_in, expected)


def test_layer_activation_equals_captured_activation_also_in_place():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(inplace=True), nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True)).double()
    x = torch.randn(2, 2, 5, 5, dtype=D)
    with torch.no_grad():
        pre = model[0](x)
        post = torch.relu(pre)
    acts = ia.LayerActivation(model, model[0]).attribute(x)
    assert (pre < 0).any()
    torch.testing.assert_close(acts, pre)  # not overwritten by the in-place ReLU that follows
    torch.testing.assert_close(ia.LayerActivation(model, model[1]).attribute(x), post)
    torch.testing.assert_close(ia.LayerActivation(model, model[2]).attribute(x, attribute_to_layer_input=True), post)
    both = ia.LayerActivation(model, [model[0], model[1]]).attribute(x)
    torch.testing.assert_close(both[0], pre)
    torch.testing.assert_close(both[1], post)


def test_layer_gradient_before_in_place_relu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 1)).double()
    x = torch.randn(5, 3, dtype=D)
    attr = ia.LayerGradientXActivation(model, model[0], multiply_by_inputs=False).attribute(x)
    with torch.no_grad():
        expected = (model[0](x) > 0).double() * model[2].weight
    torch.testing.assert_close(attr, expected)


def test_gradcam_equals_hand_computation():
    conv = nn.Conv2d(1, 2, 2, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]]))
    head = nn.Linear(8, 2, bias=False).double()
    with torch.no_grad():
        head.weight.copy_(torch.arange(16, dtype=D).reshape(2, 8) / 10 - 0.7)
    model = nn.Sequential(conv, nn.Flatten(), head)
    x = torch.arange(9, dtype=D).reshape(1, 1, 3, 3) / 4 - 1
    a = conv(x).detach()                                  # (1, 2, 2, 2)
    g = head.weight[1].reshape(1, 2, 2, 2)                # d out[1] / d a
    w = g.mean((2, 3), keepdim=True)
    expected = (w * a).sum(1, keepdim=True)
    cam = ia.LayerGradCam(model, conv).attribute(x, target=1)
    torch.testing.assert_close(cam, expected.detach())
    relu = ia.LayerGradCam(model, conv).attribute(x, target=1, relu_attributions=True)
    torch.testing.assert_close(relu, expected.clamp(min=0).detach())
    up = ia.LayerAttribution.interpolate(cam, (3, 3))
    assert up.shape == (1, 1, 3, 3)


def test_neuron_methods_equal_primary_method_with_neuron_readout():
    model = _mlp()
    cut = model[:3]  # the model up to the layer
    x, b = torch.randn(4, 5, dtype=D), torch.randn(4, 5, dtype=D) * 0.3
    torch.testing.assert_close(ia.NeuronGradient(model, model[2]).attribute(x, 4),
                               ia.Saliency(cut).attribute(x, target=4, abs=False))
    torch.testing.assert_close(ia.NeuronIntegratedGradients(model, model[2]).attribute(x, 4, b, n_steps=9),
                               ia.IntegratedGradients(cut).attribute(x, b, target=4, n_steps=9))
    refs = torch.randn(6, 5, dtype=D)
    ours = ia.NeuronGradientShap(model, model[2]).attribute(x, 4, refs, n_samples=7, stdevs=0.1,
                                                            generator=torch.Generator().manual_seed(1))
    prim = ia.GradientShap(cut).attribute(x, refs, n_samples=7, stdevs=0.1, target=4,
                                          generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours, prim)


def test_neuron_conductance_sums_to_layer_conductance():
    model = _mlp()
    x, b = torch.randn(3, 5, dtype=D), torch.randn(3, 5, dtype=D) * 0.2
    layer = ia.LayerConductance(model, model[3]).attribute(x, b, target=2, n_steps=300, method="riemann_trapezoid")
    for j in (0, 4):
        neuron = ia.NeuronConductance(model, model[3]).attribute(x, j, b, target=2, n_steps=300)
        torch.testing.assert_close(neuron.sum(1), layer[:, j], atol=2e-3, rtol=0)


@pytest.mark.parametrize("name,kwargs", [
    ("NeuronGradient", {}),
    ("NeuronIntegratedGradients", {"n_steps": 6, "baselines": 0.5}),
    ("NeuronConductance", {"n_steps": 6, "target": 1}),
])
def test_multi_neuron_call_equals_loop(name, kwargs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(27, 2)).double()
    x = torch.randn(4, 2, 5, 5, dtype=D)
    neurons = [(0, 1, 1), (2, 0, 2), (1, 2, 0)]
    method = getattr(ia, name)(model, model[1])
    batched = method.attribute(x, neurons, **kwargs)
    assert batched.shape == (3, 4, 2, 5, 5)
    for k, n in enumerate(neurons):
        torch.testing.assert_close(batched[k], method.attribute(x, n, **kwargs))


def test_multi_neuron_with_tuple_inputs_and_batched_args():
    torch.manual_seed(0)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.act = nn.Linear(3, 4), nn.Tanh()

        def forward(self, x, y, s):
            return self.act(self.l1(x) * s + y.sum(1, keepdim=True))

    model = M().double()
    x, y, s = torch.randn(3, 3, dtype=D), torch.randn(3, 2, dtype=D), torch.rand(3, 1, dtype=D)
    m = ia.NeuronIntegratedGradients(model, model.act)
    batched = m.attribute((x, y), [0, 3], additional_forward_args=s, n_steps=5)
    for k, n in enumerate([0, 3]):
        single = m.attribute((x, y), n, additional_forward_args=s, n_steps=5)
        torch.testing.assert_close(batched[0][k], single[0])
        torch.testing.assert_close(batched[1][k], single[1])


class Siamese(nn.Module):
    """One encoder applied to two inputs (a shared module that runs twice per forward)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
        self.head = nn.Linear(6, 2)

    def forward(self, x1, x2):
        return self.head(torch.cat([self.enc(x1), self.enc(x2) ** 2], 1))


class Untied(nn.Module):
    def __init__(self, s: Siamese):
        super().__init__()
        self.enc1, self.enc2, self.head = s.enc, copy.deepcopy(s.enc), s.head

    def forward(self, x1, x2):
        return self.head(torch.cat([self.enc1(x1), self.enc2(x2) ** 2], 1))


def test_shared_module_gets_one_result_per_call():
    torch.manual_seed(0)
    model = Siamese().double()
    untied = Untied(model)
    x1, x2 = torch.randn(3, 4, dtype=D), torch.randn(3, 4, dtype=D)
    acts = ia.LayerActivation(model, model.enc).attribute((x1, x2))
    assert isinstance(acts, tuple) and len(acts) == 2
    ours, delta = ia.LayerIntegratedGradients(model, model.enc).attribute((x1, x2), target=1, n_steps=20,
                                                                           return_convergence_delta=True)
    ref = ia.LayerIntegratedGradients(untied, [untied.enc1, untied.enc2]).attribute((x1, x2), target=1, n_steps=20)
    torch.testing.assert_close(ours[0], ref[0])
    torch.testing.assert_close(ours[1], ref[1])
    assert delta.abs().max() < 1e-6
    gxa = ia.LayerGradientXActivation(model, model.enc).attribute((x1, x2), target=0)
    ref = ia.LayerGradientXActivation(untied, [untied.enc1, untied.enc2]).attribute((x1, x2), target=0)
    torch.testing.assert_close(gxa[0], ref[0])
    torch.testing.assert_close(gxa[1], ref[1])
    cond = ia.LayerConductance(model, model.enc).attribute((x1, x2), target=0, n_steps=10)
    ref = [ia.LayerConductance(untied, m).attribute((x1, x2), target=0, n_steps=10) for m in (untied.enc1, untied.enc2)]
    torch.testing.assert_close(cond[0], ref[0])
    torch.testing.assert_close(cond[1], ref[1])


def test_shared_module_where_captum_is_wrong():
    """Captum keeps one call of a shared module: its Layer IG replaces *both* calls by the path of the last
    call, so the attributions do not add up to F(x) - F(baseline)."""
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    model = Siamese().double()
    x1, x2 = torch.randn(3, 4, dtype=D), torch.randn(3, 4, dtype=D)
    theirs, their_delta = captum_attr.LayerIntegratedGradients(model, model.enc).attribute(
        (x1, x2), target=1, n_steps=20, return_convergence_delta=True)
    assert their_delta.abs().max() > 1e-3
    _, delta = ia.LayerIntegratedGradients(model, model.enc).attribute((x1, x2), target=1, n_steps=20,
                                                                        return_convergence_delta=True)
    assert delta.abs().max() < 1e-6


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_results_do_not_depend_on_chunk_size(chunk):
    model = _mlp()
    x, b = torch.randn(3, 5, dtype=D), torch.randn(3, 5, dtype=D) * 0.2
    for cls in (ia.LayerIntegratedGradients, ia.LayerConductance, ia.InternalInfluence):
        full = cls(model, model[1]).attribute(x, b, target=2, n_steps=7)
        part = cls(model, model[1]).attribute(x, b, target=2, n_steps=7, internal_batch_size=chunk)
        torch.testing.assert_close(full, part)
    full = ia.NeuronConductance(model, model[1]).attribute(x, 3, b, target=2, n_steps=7)
    part = ia.NeuronConductance(model, model[1]).attribute(x, 3, b, target=2, n_steps=7, internal_batch_size=chunk)
    torch.testing.assert_close(full, part)


def test_tuple_returning_layer():
    class Split(nn.Module):
        def forward(self, x):
            return x[:, :2] * 2, torch.tanh(x[:, 2:])

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.split, self.out = nn.Linear(3, 5), Split(), nn.Linear(5, 2)

        def forward(self, x):
            a, c = self.split(self.lin(x))
            return self.out(torch.cat([a, c], 1))

    torch.manual_seed(0)
    model = M().double()
    x = torch.randn(2, 3, dtype=D)
    acts = ia.LayerActivation(model, model.split).attribute(x)
    assert isinstance(acts, tuple) and [a.shape[1] for a in acts] == [2, 3]
    attr, delta = ia.LayerIntegratedGradients(model, model.split).attribute(x, target=0, return_convergence_delta=True)
    assert isinstance(attr, tuple) and delta.abs().max() < 1e-8
    sel = ia.NeuronGradient(model, model.split).attribute(x, lambda v: v[1][:, 0])
    assert sel.shape == x.shape


def test_bad_inputs_are_clear():
    model = _mlp()
    x = torch.randn(2, 5, dtype=D)
    other = nn.Linear(5, 5)
    with pytest.raises(IntellegoError, match="not a submodule"):
        ia.LayerConductance(model, other)
    with pytest.raises(IntellegoError, match="not a submodule"):
        ia.NeuronGradient(model, other)
    with pytest.raises(IntellegoError, match=r"out of range.*\(7,\)"):
        ia.NeuronGradient(model, model[0]).attribute(x, 7)
    with pytest.raises(IntellegoError, match="has 2 indices"):
        ia.NeuronIntegratedGradients(model, model[0]).attribute(x, (1, 2))
    with pytest.raises(IntellegoError, match="neuron_selector must be"):
        ia.NeuronGradient(model, model[0]).attribute(x, "a")

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(5, 2), nn.Linear(5, 2)

        def forward(self, x):
            return self.used(x)

    skip = Skips().double()
    for call in (lambda: ia.LayerActivation(skip, skip.unused).attribute(x),
                 lambda: ia.LayerIntegratedGradients(skip, skip.unused).attribute(x, target=0),
                 lambda: ia.LayerGradCam(skip, skip.unused).attribute(x, target=0),
                 lambda: ia.NeuronGradient(skip, skip.unused).attribute(x, 0)):
        with pytest.raises(IntellegoError, match="did not run in the forward pass"):
            call()
    with pytest.raises(IntellegoError, match=r"grad_kwargs \['inputs'\] cannot be passed"):
        ia.LayerGradCam(model, model[0]).attribute(x, target=0, grad_kwargs={"inputs": x})


def test_layer_gradients_with_skip_connections_and_several_layers_equal_autograd():
    """The part of the forward before the first hooked call runs without a graph; gradients at every listed
    layer (in any order) still equal autograd's, also with a skip connection around the layer."""

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.tanh(self.a(x))
            return self.c(torch.tanh(self.b(h)) + h * x)

    torch.manual_seed(0)
    model = Skip().double()
    x = torch.randn(3, 4, dtype=D)
    both = ia.LayerGradientXActivation(model, [model.b, model.a], multiply_by_inputs=False).attribute(x, target=1)
    ha_leaf = model.a(x).detach().requires_grad_(True)
    h = torch.tanh(ha_leaf)
    hb_leaf = model.b(h)
    out = model.c(torch.tanh(hb_leaf) + h * x)[:, 1].sum()
    g_a, g_b = torch.autograd.grad(out, (ha_leaf, hb_leaf))
    torch.testing.assert_close(both[0], g_b)
    torch.testing.assert_close(both[1], g_a)
    assert torch.is_grad_enabled()
    with torch.no_grad():
        inside = ia.LayerGradientXActivation(model, model.b, multiply_by_inputs=False).attribute(x, target=1)
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(inside, g_b)


@pytest.mark.parametrize("cls", [ia.LayerConductance, ia.LayerIntegratedGradients, ia.InternalInfluence,
                                 ia.NeuronConductance])
@pytest.mark.parametrize("n_steps", [0, -2, 2.5, "8"])
def test_bad_n_steps_is_named_for_every_path_layer_method(cls, n_steps):
    # LayerConductance integrates over n_steps + 1 points: n_steps=0 used to give all-zero attributions silently
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    method = cls(model, model[0])
    extra = {"neuron_selector": 1} if cls is ia.NeuronConductance else {}
    with pytest.raises(IntellegoError, match="n_steps must be a positive int"):
        method.attribute(torch.randn(2, 3), target=0, n_steps=n_steps, **extra)


class _InplaceNet(nn.Module):
    """fc1 -> ReLU -> fc2 with the first unit's pre-activation at -30 against 0 for an all-zero baseline."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(3, 2), nn.ReLU(inplace=inplace), nn.Linear(2, 1)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[-10.0, 1.0, -11.0], [1.0, 1.0, 1.0]]))
            self.fc1.bias.zero_()
            self.fc2.weight.fill_(1.0)
            self.fc2.bias.zero_()

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


_AT_INPUT = {
    "LayerDeepLift": lambda m, x, b: ia.LayerDeepLift(m, m.relu, multiply_by_inputs=False).attribute(
        x, b, attribute_to_layer_input=True),
    "LayerDeepLiftShap": lambda m, x, b: ia.LayerDeepLiftShap(m, m.relu, multiply_by_inputs=False).attribute(
        x, torch.cat([b, b + 0.1]), attribute_to_layer_input=True),
    "LayerGradientXActivation": lambda m, x, b: ia.LayerGradientXActivation(m, m.relu).attribute(
        x, attribute_to_layer_input=True),
    "LayerIntegratedGradients": lambda m, x, b: ia.LayerIntegratedGradients(m, m.relu).attribute(
        x, b, attribute_to_layer_input=True, n_steps=8),
    "LayerLRP": lambda m, x, b: ia.LayerLRP(m, m.relu).attribute(x, attribute_to_layer_input=True),
    "NeuronDeepLift": lambda m, x, b: ia.NeuronDeepLift(m, m.relu).attribute(x, 0, b, attribute_to_neuron_input=True),
}


@pytest.mark.parametrize("name", sorted(_AT_INPUT))
def test_attribution_to_the_input_of_an_in_place_layer_is_that_of_the_same_layer_out_of_place(name):
    # LayerDeepLift read the layer input after nn.ReLU(inplace=True) had overwritten it: multiplier 1, not 0
    x, b = torch.tensor([[1.0, 2.0, 2.0]]), torch.zeros(1, 3)
    plain, inplace = (_AT_INPUT[name](_InplaceNet(flag), x, b) for flag in (False, True))
    torch.testing.assert_close(inplace, plain)
    if name == "LayerDeepLift":
        assert inplace.tolist() == [[0.0, 1.0]]  # the ReLU's rescale multipliers: unit 0 is off at -30 and at 0
