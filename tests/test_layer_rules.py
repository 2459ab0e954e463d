"""Rule-based layer and neuron methods (DeepLift family, Guided Backprop, Deconvolution, Guided Grad-CAM):
parity with Captum (float64, 1e-6), the neuron-as-read-out identity, completeness, batched neurons."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

import intellego.attr as ia

D = torch.float64


def _cnn(seed=0, pool=True):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2) if pool else nn.AvgPool2d(2),
                         nn.Conv2d(4, 5, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).double().eval()


def _mlp(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.Sigmoid(), nn.Linear(6, 3)).double()


def _close(a, b, tol=1e-6):
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            _close(x, y, tol)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_layer_deeplift_matches_captum(which, to_input):
    torch.manual_seed(2)
    if which == "mlp":
        model, layer, x, b = _mlp(), None, torch.randn(4, 5, dtype=D), torch.randn(4, 5, dtype=D) * 0.1
        layer = model[2]
    else:
        model, x, b = _cnn(), torch.randn(2, 3, 6, 6, dtype=D), torch.randn(2, 3, 6, 6, dtype=D) * 0.1
        layer = model[3]
    ours, d1 = ia.LayerDeepLift(model, layer).attribute(x, b, target=1, attribute_to_layer_input=to_input,
                                                        return_convergence_delta=True)
    theirs, d2 = ca.LayerDeepLift(model, layer).attribute(x, b, target=1, attribute_to_layer_input=to_input,
                                                          return_convergence_delta=True)
    _close(ours, theirs)
    _close(d1, d2)
    assert d1.abs().max() < 1e-8


def test_layer_deeplift_shap_matches_captum():
    model = _mlp()
    torch.manual_seed(3)
    x, refs = torch.randn(3, 5, dtype=D), torch.randn(4, 5, dtype=D)
    ours, d1 = ia.LayerDeepLiftShap(model, model[1]).attribute(x, refs, target=2, return_convergence_delta=True)
    theirs, d2 = ca.LayerDeepLiftShap(model, model[1]).attribute(x, refs, target=2, return_convergence_delta=True)
    _close(ours, theirs)
    _close(d1, d2)
    chunked = ia.LayerDeepLiftShap(model, model[1]).attribute(x, refs, target=2, internal_batch_size=5)
    _close(chunked, ours)


def test_guided_gradcam_matches_captum():
    model = _cnn()
    x = torch.randn(2, 3, 6, 6, dtype=D)
    for layer in (model[1], model[4]):
        _close(ia.GuidedGradCam(model, layer).attribute(x, target=0),
               ca.GuidedGradCam(model, layer).attribute(x, target=0))
    ours = ia.GuidedGradCam(model, model[4]).attribute(x, target=2, interpolate_mode="bilinear")
    theirs = ca.GuidedGradCam(model, model[4]).attribute(x, target=2, interpolate_mode="bilinear")
    _close(ours, theirs)


NEURONS = [("NeuronDeepLift", True), ("NeuronDeepLiftShap", True), ("NeuronGuidedBackprop", False),
           ("NeuronDeconvolution", False)]


@pytest.mark.parametrize("name,base", NEURONS)
@pytest.mark.parametrize("selector", [(2, 1, 1), (1, slice(0, 2), 2)])
def test_neuron_rule_methods_match_captum(name, base, selector):
    model = _cnn(pool="DeepLift" not in name)  # Captum's DeepLift max-pool rule is not complete (see below)
    torch.manual_seed(4)
    x = torch.randn(2, 3, 6, 6, dtype=D)
    args = {}
    if name == "NeuronDeepLift":
        args["baselines"] = torch.randn(2, 3, 6, 6, dtype=D) * 0.1
    elif name == "NeuronDeepLiftShap":
        args["baselines"] = torch.randn(3, 3, 6, 6, dtype=D) * 0.1
    ours = getattr(ia, name)(model, model[3]).attribute(x, selector, **args)
    theirs = getattr(ca, name)(model, model[3]).attribute(x, selector, **args)
    _close(ours, theirs)


def test_neuron_rule_methods_equal_primary_with_neuron_readout():
    model = _cnn()
    cut = model[:5]
    x, b = torch.randn(2, 3, 6, 6, dtype=D), torch.randn(2, 3, 6, 6, dtype=D) * 0.1
    _close(ia.NeuronDeepLift(model, model[4]).attribute(x, (1, 2, 0), b),
           ia.DeepLift(cut).attribute(x, b, target=(1, 2, 0)))
    _close(ia.NeuronGuidedBackprop(model, model[4]).attribute(x, (3, 1, 1)),
           ia.GuidedBackprop(cut).attribute(x, target=(3, 1, 1)))


@pytest.mark.parametrize("name,base", NEURONS)
def test_rule_neurons_batched_equal_loop(name, base):
    model = _cnn()
    x = torch.randn(2, 3, 6, 6, dtype=D)
    args = {}
    if name == "NeuronDeepLift":
        args["baselines"] = torch.randn(2, 3, 6, 6, dtype=D) * 0.1
    elif name == "NeuronDeepLiftShap":
        args["baselines"] = torch.randn(3, 3, 6, 6, dtype=D) * 0.1
    method = getattr(ia, name)(model, model[3])
    neurons = [(0, 1, 1), (4, 2, 0)]
    batched = method.attribute(x, neurons, **args)
    for k, n in enumerate(neurons):
        _close(batched[k], method.attribute(x, n, **args))


def test_neuron_deeplift_complete_through_max_pool_where_captum_is_not():
    """Captum's DeepLift back-propagates max pooling with a rule whose attributions do not sum to the
    neuron's change; ours (the rule engine's max-pool multiplier) are complete."""
    model = _cnn()
    torch.manual_seed(4)
    x, b = torch.randn(2, 3, 6, 6, dtype=D), torch.randn(2, 3, 6, 6, dtype=D) * 0.1
    with torch.no_grad():
        gap = model[:4](x)[:, 2, 1, 1] - model[:4](b)[:, 2, 1, 1]
    ours = ia.NeuronDeepLift(model, model[3]).attribute(x, (2, 1, 1), b)
    theirs = ca.NeuronDeepLift(model, model[3]).attribute(x, (2, 1, 1), b)
    torch.testing.assert_close(ours.sum((1, 2, 3)), gap)
    assert (theirs.sum((1, 2, 3)) - gap).abs().max() > 1e-3


class _Residual(nn.Module):
    """In-place ReLU and max pooling before the layer, a functional ReLU and a residual after it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.a, self.layer, self.b = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.relu(self.a(x))
        h = torch.nn.functional.max_pool1d(h.unsqueeze(1), 1).squeeze(1)
        return self.b(torch.relu(self.layer(h)) + h)


def test_layer_deeplift_rules_from_layer_equal_rules_everywhere():
    """Applying the rules only after the layer returns (LayerDeepLift's shortcut) changes nothing: the gradient
    w.r.t. the layer's output never runs through the earlier operations."""
    from intellego.attr.deep_lift import deeplift_rules
    from intellego.core.grad import ForwardSpec
    from intellego.engines.rules import rule_gradients

    model = _Residual().double()
    x, b = torch.randn(5, 4, dtype=D), torch.randn(5, 4, dtype=D)
    spec = ForwardSpec.build(model, 1, None, 5)
    runs = [rule_gradients(spec, (x,), deeplift_rules(), baselines=(b,), layer=model.layer, from_layer=f)
            for f in (False, True)]
    for field in ("grads", "layer", "layer_reference"):
        _close(getattr(runs[0], field), getattr(runs[1], field), 1e-12)
    _close(runs[0].reference_scores, runs[1].reference_scores, 1e-12)
    attr = ia.LayerDeepLift(model, model.layer).attribute(x, b, target=1)
    _close(attr, (runs[0].layer[0] - runs[0].layer_reference[0]) * runs[0].grads[0], 1e-12)
