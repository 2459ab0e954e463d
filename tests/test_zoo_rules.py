"""Rule-based methods on the zoo (``tests/zoo.py``) in float64: exact completeness and conservation.

- DeepLift is complete on every model: products of activations (squeeze-excitation, SwiGLU, attention), LayerNorm,
  RMSNorm and attention have exact DeepLift forms (``intellego.engines.blocks``).
- LRP conserves relevance on every model once its biases are removed (biases absorb relevance by design): the
  gates, LayerNorm, attention and product rules are conservative; LayerLRP conserves it at the blocks too.
- Integrated Gradients' gap is reported (a quadrature, not exact) and checked against its own convergence delta.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import intellego.attr as ia
import zoo

D = torch.float64
T = 1
# modules that every path from the input to the output crosses (whole transformer blocks, CNN stages)
CUTS = {"vit": "model.vit.layers.0", "swin": "model.swin.layernorm", "llama": "model.model.layers.0"}


def _score(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)[:, T]


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_deeplift_is_complete(name):
    model, x = zoo.build(name, dtype=D)
    base = 0.25 * x  # RMSNorm at an all-zero baseline divides by sqrt(eps): a degenerate reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no operation passes the plain gradient
        attr, delta = ia.DeepLift(model).attribute(x, base, target=T, return_convergence_delta=True)
    gap = _score(model, x) - _score(model, base)
    torch.testing.assert_close(attr.flatten(1).sum(1), gap, atol=1e-6 * (1 + gap.abs().max().item()), rtol=0)
    assert delta.abs().max() < 1e-6 * (1 + gap.abs().max().item())


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_lrp_conserves_relevance_without_biases(name):
    model, x = zoo.build(name, dtype=D)
    model = zoo.bias_free(model)
    out = _score(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relevance = ia.LRP(model).attribute(x, target=T)
    torch.testing.assert_close(relevance.flatten(1).sum(1), out, atol=1e-5 * (1 + out.abs().max().item()), rtol=0)
    cut = model.get_submodule(CUTS[name]) if name in CUTS else zoo.layer(model, name)
    layer = ia.LayerLRP(model, cut).attribute(x, target=T)
    torch.testing.assert_close(layer.flatten(1).sum(1), out, atol=1e-5 * (1 + out.abs().max().item()), rtol=0)


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_integrated_gradients_gap_is_its_delta(name):
    model, x = zoo.build(name, dtype=D)
    attr, delta = ia.IntegratedGradients(model).attribute(x, target=T, n_steps=16, return_convergence_delta=True)
    gap = _score(model, x) - _score(model, torch.zeros_like(x))
    torch.testing.assert_close(attr.flatten(1).sum(1) - gap, delta, atol=1e-9, rtol=0)


def test_lrp_block_rules_conserve_on_functional_calls():
    """A gate's product, attention, a product of two activations and LayerNorm written as functional calls in one
    bias-free module: relevance is conserved (up to the epsilon stabiliser, 1e-9)."""
    torch.manual_seed(0)

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.norm = nn.Linear(4, 6, bias=False), nn.Linear(4, 6, bias=False), nn.LayerNorm(6)

        def forward(self, x):
            h = self.a(x) * torch.sigmoid(self.b(x))  # a gate: relevance all to a(x)
            q = h.reshape(-1, 2, 3)
            att = nn.functional.scaled_dot_product_attention(q[:, None], q[:, None], q[:, None])[:, 0]
            return self.norm(att.reshape(-1, 6) * h)  # a product of two activations

    model = Blocks().double()
    with torch.no_grad():
        model.norm.bias.zero_()
    x = torch.randn(3, 4, dtype=D)
    rel = ia.LRP(model).attribute(x, target=2)
    torch.testing.assert_close(rel.sum(1), model(x)[:, 2].detach(), atol=1e-7, rtol=0)
