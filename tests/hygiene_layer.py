"""Hygiene cases for the layer, neuron, CAM and text families."""

from __future__ import annotations

import torch

import intellego.attr as ia
from _hygiene import Case, Exploding, tiny_cnn, tiny_mlp


def _mlp():
    model = tiny_mlp()
    model.train()
    x = torch.randn(3, 4, requires_grad=True)
    x.grad = torch.ones_like(x)
    return model, x


def _cnn():
    model = tiny_cnn()
    next(model.parameters()).grad = torch.zeros_like(next(model.parameters()))
    return model, torch.randn(2, 3, 8, 8)


def _inplace():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(inplace=True), torch.nn.Linear(5, 2))
    return model, torch.randn(3, 4)


def _explode_layer(cls, **kw):
    """A model that fails on its second forward, mid-attribution."""
    def bad(m, x):
        wrapped = Exploding(m)
        return cls(wrapped, m[0]).attribute(x, **kw)
    return bad


def _layer(name, make, call_kw, bad_kw=None, layer=0, bad=None):
    cls = getattr(ia, name)
    return Case(make, lambda m, x: cls(m, m[layer]).attribute(x, **call_kw),
                bad or (lambda m, x: cls(m, m[layer]).attribute(x, **(bad_kw or {}))))


CASES = {
    "LayerActivation": _layer("LayerActivation", _inplace, {}, bad=lambda m, x: ia.LayerActivation(
        m, torch.nn.Linear(2, 2)).attribute(x)),
    "LayerGradientXActivation": _layer("LayerGradientXActivation", _inplace, {"target": 1}, {"target": 5}),
    "LayerGradCam": _layer("LayerGradCam", _cnn, {"target": 1, "relu_attributions": True}, {"target": 9}, layer=3),
    "InternalInfluence": _layer("InternalInfluence", _mlp, {"target": 1, "n_steps": 4}, {"target": 1, "n_steps": 0}),
    "LayerConductance": _layer("LayerConductance", _mlp, {"target": 1, "n_steps": 4, "internal_batch_size": 3},
                               bad=_explode_layer(ia.LayerConductance, target=0, n_steps=4, internal_batch_size=3)),
    "LayerIntegratedGradients": _layer("LayerIntegratedGradients", _inplace,
                                       {"target": 1, "n_steps": 4, "return_convergence_delta": True},
                                       bad=_explode_layer(ia.LayerIntegratedGradients, target=0, n_steps=4)),
    "LayerGradientShap": _layer("LayerGradientShap", _mlp, {"baselines": torch.zeros(2, 4), "target": 0},
                                {"baselines": torch.zeros(2, 3), "target": 0}),
    "NeuronGradient": _layer("NeuronGradient", _cnn, {"neuron_selector": (1, 2, 2)},
                             {"neuron_selector": (1, 9, 2)}),
    "NeuronIntegratedGradients": _layer("NeuronIntegratedGradients", _mlp, {"neuron_selector": [1, 2], "n_steps": 4},
                                        {"neuron_selector": 6}, layer=1),
    "NeuronGradientShap": _layer("NeuronGradientShap", _mlp, {"neuron_selector": 1, "baselines": torch.zeros(2, 4)},
                                 {"neuron_selector": 1, "baselines": torch.zeros(2, 5)}),
    "NeuronConductance": _layer("NeuronConductance", _inplace, {"neuron_selector": 1, "target": 0, "n_steps": 4},
                                bad=_explode_layer(ia.NeuronConductance, neuron_selector=1, target=0, n_steps=4,
                                                   internal_batch_size=3)),
    **{name: _layer(name, _cnn, {"target": 1}, {"target": 1, "reshape_transform": lambda t: t.flatten(1)}, layer=3)
       for name in ("LayerGradCamPlusPlus", "LayerXGradCam", "LayerHiResCam", "LayerCam", "LayerScoreCam",
                    "LayerEigenCam")},
    "LayerDeepLift": _layer("LayerDeepLift", _inplace, {"target": 1, "return_convergence_delta": True},
                            {"target": 1, "baselines": torch.zeros(2, 3)}),
    "LayerDeepLiftShap": _layer("LayerDeepLiftShap", _mlp, {"baselines": torch.zeros(2, 4), "target": 0},
                                {"baselines": torch.zeros(1, 4), "target": 0}, layer=2),
    "GuidedGradCam": _layer("GuidedGradCam", _cnn, {"target": 1}, {"target": 8}, layer=3),
    "NeuronDeepLift": _layer("NeuronDeepLift", _inplace, {"neuron_selector": 1}, {"neuron_selector": 9}, layer=1),
    "NeuronDeepLiftShap": _layer("NeuronDeepLiftShap", _mlp,
                                 {"neuron_selector": [0, 2], "baselines": torch.zeros(2, 4)},
                                 {"neuron_selector": 0, "baselines": torch.zeros(1, 4)}),
    "NeuronGuidedBackprop": _layer("NeuronGuidedBackprop", _cnn, {"neuron_selector": (1, 2, 2)},
                                   {"neuron_selector": (1, 2, 2, 0, 1)}, layer=3),  # (1, 2) is valid: Captum's reading
    "NeuronDeconvolution": _layer("NeuronDeconvolution", _cnn, {"neuron_selector": (1, 2, 2)},
                                  {"neuron_selector": (1, 2, 2, 0)}, layer=3),
    "LayerFeatureAblation": _layer("LayerFeatureAblation", _inplace, {"target": 1, "perturbations_per_eval": 2},
                                   {"target": 1, "layer_mask": torch.zeros(1, 3, dtype=torch.long)}),
    "LayerFeaturePermutation": _layer("LayerFeaturePermutation", _mlp, {"target": 1}, {"target": 4}),
    "NeuronFeatureAblation": _layer("NeuronFeatureAblation", _cnn, {"neuron_selector": (1, 2, 2)},
                                    {"neuron_selector": (7, 2, 2)}, layer=3),
    "LayerLRP": _layer("LayerLRP", _mlp, {"target": 1, "return_convergence_delta": True}, {"target": 1.5}),
}
