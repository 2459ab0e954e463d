"""Guided Backprop and Deconvolution on the autograd graph (``intellego.engines.graph_rules``) against the
function-mode engine running the same rules (``rule_gradients`` with ``GUIDED`` / ``DECONV``, itself pinned by
hand-computed values and Captum in ``tests/test_rules.py``), the fallback where the graph hides a ReLU, and the
graph of a tensor made before the call left as it was."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import zoo
from _rule_models import Functional, ResNet, Reused, seeded
from intellego.attr import Deconvolution, GuidedBackprop
from intellego.attr.guided import DECONV, DECONV_NODES, GUIDED, GUIDED_NODES
from intellego.core.grad import ForwardSpec
from intellego.engines.graph_rules import graph_gradients
from intellego.engines.rules import rule_gradients

D = torch.float64
METHODS = {"GuidedBackprop": (GuidedBackprop, GUIDED, GUIDED_NODES),
           "Deconvolution": (Deconvolution, DECONV, DECONV_NODES)}


def _by_mode(model, x, rules, target):
    return rule_gradients(ForwardSpec.build(model, target, None, x.shape[0]), (x,), rules).grads[0]


MODELS = {
    "reused": (lambda: seeded(Reused), (4, 5)),
    "reused-inplace": (lambda: seeded(lambda: Reused(inplace=True)), (4, 5)),
    **{f"functional-{s}": (lambda s=s: seeded(lambda: Functional(s)), (4, 5))
       for s in ("torch", "F", "method", "inplace")},
    "resnet-blocks": (lambda: seeded(ResNet), (2, 2, 8, 8)),
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", list(MODELS))
def test_graph_rules_equal_the_function_mode_engine(method, name):
    cls, rules, nodes = METHODS[method]
    make, shape = MODELS[name]
    model, x = make(), torch.randn(*shape, dtype=D)
    assert graph_gradients(ForwardSpec.build(model, 1, None, x.shape[0]), (x,), nodes) is not None
    torch.testing.assert_close(cls(model).attribute(x, target=1), _by_mode(model, x, rules, 1), atol=1e-14, rtol=0)


@pytest.mark.parametrize("method", list(METHODS))
def test_graph_rules_on_a_zoo_resnet(method):
    cls, rules, _ = METHODS[method]
    model, x = zoo.build("resnet", dtype=D)
    ours = cls(model).attribute(x, target=1)
    torch.testing.assert_close(ours, _by_mode(model, x, rules, 1), atol=1e-12, rtol=0)
    assert not torch.allclose(ours, torch.autograd.grad(model(x.requires_grad_())[:, 1].sum(), x)[0])


class ReluOnAView(nn.Module):
    """``relu_`` on a slice: autograd hides the ReLU's node inside a ``CopySlices`` node."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = self.a(x)
        h[:, :3].relu_()
        return self.b(torch.relu(h))


@pytest.mark.parametrize("method", list(METHODS))
def test_a_relu_hidden_in_the_graph_falls_back_to_the_function_mode(method):
    cls, rules, nodes = METHODS[method]
    model, x = seeded(ReluOnAView), torch.randn(5, 4, dtype=D)
    assert graph_gradients(ForwardSpec.build(model, 0, None, 5), (x,), nodes) is None
    torch.testing.assert_close(cls(model).attribute(x, target=0), _by_mode(model, x, rules, 0), atol=1e-14, rtol=0)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_graph_made_before_the_call_keeps_its_plain_gradient(method):
    """A forward_func that adds a tensor computed (through a ReLU) before the call: its nodes get no hook, then or
    after, so the user's own backward through it is the plain one."""
    cls = METHODS[method][0]
    w = torch.tensor([1.0, -2.0, 3.0], dtype=D, requires_grad=True)
    made_before = torch.relu(w)
    layer = seeded(lambda: nn.Linear(3, 2))
    cls(lambda x: layer(torch.relu(x) + made_before)).attribute(torch.randn(4, 3, dtype=D), target=0)
    (grad,) = torch.autograd.grad((made_before * torch.tensor([-1.0, -1.0, 2.0], dtype=D)).sum(), w)
    torch.testing.assert_close(grad, torch.tensor([-1.0, 0.0, 2.0], dtype=D))


class _UnrolledRNN(nn.Module):
    """``rnn`` (one layer, ReLU cells, batch first) written out step by step with an ``nn.ReLU`` module per step."""

    def __init__(self, rnn: nn.RNN, head: nn.Linear):
        super().__init__()
        self.rnn, self.head = rnn, head
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(8))

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.rnn.hidden_size)
        for t in range(x.shape[1]):
            h = self.relus[t](x[:, t] @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0
                              + h @ self.rnn.weight_hh_l0.T + self.rnn.bias_hh_l0)
        return self.head(h)


class _FusedRNN(nn.Module):
    def __init__(self, rnn: nn.RNN, head: nn.Linear):
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("method", list(METHODS))
def test_relu_cells_inside_a_fused_rnn_get_the_rule_like_unrolled_relu_modules(method):
    """nn.RNN(nonlinearity="relu") runs its cells' ReLUs inside one op; they still leave ReluBackward0 nodes, so the
    rule applies at every step, exactly as on the same RNN unrolled with nn.ReLU modules (where Captum applies it
    too). Captum hooks nn.ReLU modules only, so on the fused RNN it returns something else: a deliberate difference
    (docs/porting.md)."""
    torch.manual_seed(0)
    rnn, head = nn.RNN(3, 5, nonlinearity="relu", batch_first=True).double(), nn.Linear(5, 2).double()
    x = torch.randn(4, 6, 3, dtype=D)
    cls = METHODS[method][0]
    fused = cls(_FusedRNN(rnn, head)).attribute(x, target=1)
    unrolled = cls(_UnrolledRNN(rnn, head)).attribute(x, target=1)
    torch.testing.assert_close(fused, unrolled, atol=1e-12, rtol=0)
    ca = pytest.importorskip("captum.attr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum announces its hooks
        captum_unrolled = getattr(ca, method)(_UnrolledRNN(rnn, head)).attribute(x, target=1)
        captum_fused = getattr(ca, method)(_FusedRNN(rnn, head)).attribute(x, target=1)
    torch.testing.assert_close(fused, captum_unrolled, atol=1e-12, rtol=0)
    assert (captum_fused - captum_unrolled).abs().max() > 1e-3  # Captum misses the cells' ReLUs
    plain = torch.autograd.grad(_FusedRNN(rnn, head)(x.requires_grad_())[:, 1].sum(), x)[0]
    assert (fused - plain).abs().max() > 1e-3  # the rule changed the gradient: the test can tell
