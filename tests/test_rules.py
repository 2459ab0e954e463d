"""The backward-rule engine, GuidedBackprop and Deconvolution: hand-computed gradients, Captum's gaps."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from _rule_models import Functional, seeded
from intellego.attr import Deconvolution, DeepLift, GuidedBackprop
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
warnings.filterwarnings("ignore")
D = torch.float64


def _tiny():
    """y = w2 . relu(W1 x) with W1 = [[1, -1], [2, 1], [-1, 1]], w2 = [1, -2, 3]."""
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[1.0, -2.0, 3.0]]))
    return model


def test_guided_backprop_by_hand():
    # x = (1, 2): pre-activations (-1, 4, 1); ReLU passes units 2 and 3; positive gradient only on unit 3 (w=3)
    # -> W1^T (0, 0, 3) = (-3, 3)
    x = torch.tensor([[1.0, 2.0]], dtype=D)
    torch.testing.assert_close(GuidedBackprop(_tiny()).attribute(x), torch.tensor([[-3.0, 3.0]], dtype=D))


def test_deconvolution_by_hand():
    # positive part of the gradient at the ReLU, whatever the input: (1, 0, 3) -> W1^T (1, 0, 3) = (-2, 2)
    x = torch.tensor([[1.0, 2.0]], dtype=D)
    torch.testing.assert_close(Deconvolution(_tiny()).attribute(x), torch.tensor([[-2.0, 2.0]], dtype=D))


@pytest.mark.parametrize("method", ["GuidedBackprop", "Deconvolution"])
def test_parity_with_captum_on_modules(method):
    model = seeded(lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(27, 3)))
    x = torch.randn(3, 2, 8, 8, dtype=D)
    ours = getattr(__import__("intellego.attr", fromlist=[method]), method)(model).attribute(x, target=1)
    theirs = getattr(ca, method)(model).attribute(x, target=1)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("style", ["torch", "F", "method", "inplace"])
def test_functional_relu_captum_silently_plain_gradient(style):
    """Captum 0.9.0's GuidedBackprop only hooks ``nn.ReLU`` modules: with ``torch.relu`` / ``F.relu`` /
    ``x.relu()`` in forward it silently returns the plain gradient. Ours equals the same net built with
    ``nn.ReLU`` modules."""
    functional = seeded(lambda: Functional(style))
    modules = nn.Sequential(functional.l1, nn.ReLU(), functional.l2, nn.ReLU(), functional.l3)
    x = torch.randn(4, 5, dtype=D)
    expected = GuidedBackprop(modules).attribute(x, target=0)
    torch.testing.assert_close(GuidedBackprop(functional).attribute(x, target=0), expected, atol=1e-14, rtol=0)
    if style != "inplace":
        theirs = ca.GuidedBackprop(functional).attribute(x, target=0).detach()
        plain = ca.Saliency(functional).attribute(x, target=0, abs=False)
        torch.testing.assert_close(theirs, plain)
        assert not torch.allclose(theirs, expected)


def test_no_function_mode_or_hook_left_after_an_error():
    class Fails(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            torch.relu(self.a(x))
            raise RuntimeError("boom")

    model = seeded(Fails)
    with pytest.raises(RuntimeError, match="boom"):
        DeepLift(model).attribute(torch.randn(2, 3, dtype=D))
    assert torch.overrides._get_current_function_mode_stack() == []
    assert not model.a._forward_hooks and not model.a._forward_pre_hooks


def test_in_place_change_of_a_saved_value_is_an_error_not_a_wrong_answer():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 1)

        def forward(self, x):
            h = torch.sigmoid(self.a(x))
            out = self.b(h)
            h.mul_(2.0)  # changes the sigmoid's saved output after the fact
            return out

    with pytest.raises(IntellegoError, match="modified in place"):
        DeepLift(seeded(Sneaky)).attribute(torch.randn(2, 3, dtype=D))


def test_in_place_relu_keeps_forward_semantics():
    class Alias(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            h = self.a(x)
            torch.relu_(h)  # result used through the alias
            return h.sum(1, keepdim=True)

    model = seeded(Alias)
    x = torch.randn(4, 3, dtype=D)
    attr, delta = DeepLift(model).attribute(x, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    torch.testing.assert_close(attr.sum(1), model(x)[:, 0] - model(torch.zeros_like(x))[:, 0])


@pytest.mark.parametrize("method", ["LRP", "DeepLift", "GuidedBackprop"])
def test_max_pool_with_indices_is_a_clear_error(method):
    """``return_indices=True`` gives a (values, indices) pair that no rule can route a gradient through."""
    import intellego.attr as ia

    class WithIndices(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(2 * 2 * 2, 2)

        def forward(self, x):
            y, _ = torch.nn.functional.max_pool2d(self.conv(x), 2, return_indices=True)
            return self.fc(y.flatten(1))

    model, x = seeded(WithIndices), torch.randn(2, 1, 4, 4, dtype=D)
    args = (x, torch.zeros_like(x)) if method == "DeepLift" else (x,)
    if method == "GuidedBackprop":  # no rule for max pooling: the model runs as it is
        assert getattr(ia, method)(model).attribute(*args, target=0).shape == x.shape
        return
    with pytest.raises(IntellegoError, match="return_indices"):
        getattr(ia, method)(model).attribute(*args, target=0)


def test_every_dimension_of_layers_and_pooling_has_its_kind():
    """The table is built in loops over 1-, 2- and 3-d functions: each must be there (a misplaced line once left
    conv1d/conv2d out, so LRP's rules for convolutions silently stopped applying)."""
    from intellego.engines.ops import kind_of

    F = torch.nn.functional
    for d in (1, 2, 3):
        assert kind_of(getattr(F, f"conv{d}d")) == "conv"
        assert kind_of(getattr(F, f"avg_pool{d}d")) == kind_of(getattr(F, f"adaptive_avg_pool{d}d")) == "avg_pool"
        assert kind_of(getattr(F, f"max_pool{d}d")) == f"max_pool{d}d"
        assert kind_of(getattr(F, f"adaptive_max_pool{d}d")) == "adaptive_max_pool"
    assert kind_of(torch.amax) == kind_of(torch.Tensor.amax) == "amax"
