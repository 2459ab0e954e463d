"""Layer/neuron perturbation methods and LayerLRP: parity with Captum (float64), closed forms, batching."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

import intellego.attr as ia

D = torch.float64


def _mlp(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _close(a, b, tol=1e-6):
    if isinstance(a, (tuple, list)):
        for x, y in zip(a, b):
            _close(x, y, tol)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_feature_ablation_matches_captum(to_input):
    model = _mlp()
    x = torch.randn(4, 5, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2, 2]])
    for kw in ({}, {"layer_baselines": 0.5}, {"layer_mask": mask if to_input else mask[:, :6]}):
        ours = ia.LayerFeatureAblation(model, model[2]).attribute(x, target=1, attribute_to_layer_input=to_input,
                                                                  **kw)
        theirs = ca.LayerFeatureAblation(model, model[2]).attribute(x, target=1, attribute_to_layer_input=to_input,
                                                                    **kw)
        _close(ours, theirs)


def test_layer_feature_permutation_matches_captum_on_two_examples():
    """With two examples the only non-identity permutation is the swap, so both libraries agree. (Captum's
    LayerFeaturePermutation fails with a ``target`` on 2-D outputs, so the score is selected in the model.)"""
    model = _mlp()

    def score(x):
        return model(x)[:, 2]

    x = torch.randn(2, 5, dtype=D)
    _close(ia.LayerFeaturePermutation(score, model[1]).attribute(x),
           ca.LayerFeaturePermutation(score, model[1]).attribute(x))
    with pytest.raises(AssertionError):
        ca.LayerFeaturePermutation(model, model[1]).attribute(x, target=2)
    assert ia.LayerFeaturePermutation(model, model[1]).attribute(x, target=2).shape == (2, 7)


@pytest.mark.parametrize("selector", [3, (slice(1, 4),)])
def test_neuron_feature_ablation_matches_captum(selector):
    model = _mlp()
    x = torch.randn(3, 5, dtype=D)
    mask = torch.tensor([[0, 0, 1, 2, 2]])
    for kw in ({}, {"baselines": 0.3}, {"feature_mask": mask}):
        _close(ia.NeuronFeatureAblation(model, model[2]).attribute(x, selector, **kw),
               ca.NeuronFeatureAblation(model, model[2]).attribute(x, selector, **kw))


def test_neuron_feature_ablation_batched_equals_loop():
    model = _mlp()
    x = torch.randn(3, 5, dtype=D)
    mask = torch.tensor([[0, 0, 1, 2, 2], [0, 1, 1, 2, 2], [0, 0, 0, 1, 1]])
    m = ia.NeuronFeatureAblation(model, model[2])
    batched = m.attribute(x, [0, 4, 5], feature_mask=mask)
    for k, n in enumerate([0, 4, 5]):
        _close(batched[k], m.attribute(x, n, feature_mask=mask))


def test_layer_lrp_matches_captum_and_conserves():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6, bias=False), nn.ReLU(), nn.Linear(6, 4, bias=False), nn.ReLU(),
                          nn.Linear(4, 2, bias=False)).double()
    x = torch.rand(3, 5, dtype=D)
    for layer in (model[0], model[2]):
        ours, d1 = ia.LayerLRP(model, layer).attribute(x, target=1, return_convergence_delta=True)
        theirs, d2 = ca.LayerLRP(model, layer).attribute(x, target=1, return_convergence_delta=True)
        _close(ours, theirs)
        assert d1.abs().max() < 1e-6  # epsilon rule stabiliser 1e-9
    both = ia.LayerLRP(model, [model[0], model[2]]).attribute(x, target=0)
    assert isinstance(both, list) and len(both) == 2
    to_in = ia.LayerLRP(model, model[0]).attribute(x, target=0, attribute_to_layer_input=True)
    _close(to_in, ia.LRP(model).attribute(x, target=0))
