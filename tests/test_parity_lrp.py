"""LRP rules set on modules the Captum way (``model.fc.rule = GammaRule()``), Captum's default rules, custom
modules and unsupported layers; each case checked against Captum 0.9 in float64."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.attr import lrp as il
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
cr = pytest.importorskip("captum.attr._utils.lrp_rules")
cm = pytest.importorskip("captum.attr._utils.custom_modules")
pytestmark = pytest.mark.filterwarnings("ignore")
D = torch.float64


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


class _Res(nn.Module):
    """A skip connection through an addition module, as Captum's LRP needs it written."""

    def __init__(self, add: type[nn.Module], act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(4, 6), act(), nn.Linear(6, 6)
        self.add, self.out = add(), nn.Linear(6, 3)

    def forward(self, x):
        h = self.act(self.a(x))
        return self.out(self.add(h, self.b(h)))


def _pair(add_ours=il.Addition_Module, add_theirs=None, act=nn.ReLU, seed=0):
    """The same weights twice: one model for intellego, one for Captum (which writes on its modules)."""
    torch.manual_seed(seed)
    ours = _Res(add_ours, act).to(D)
    theirs = _Res(add_theirs or cm.Addition_Module, act).to(D)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _close(a, b):
    torch.testing.assert_close(a, b.detach(), atol=1e-8, rtol=1e-6)


def test_rules_set_on_modules_are_honoured_and_left_in_place():
    ours, theirs = _pair()
    ours.b.rule, ours.out.rule = il.GammaRule(0.3), il.EpsilonRule(0.1)
    ours.add.rule = il.EpsilonRule(0.05)
    theirs.b.rule, theirs.out.rule = cr.GammaRule(0.3), cr.EpsilonRule(0.1)
    theirs.add.rule = cr.EpsilonRule(0.05)
    x = _x(3, 4)
    a, d = ia.LRP(ours).attribute(x, target=1, return_convergence_delta=True)
    a2, d2 = ca.LRP(theirs).attribute(x, target=1, return_convergence_delta=True)
    _close(a, a2)
    _close(d, d2)
    rules = (ours.b.rule, ours.out.rule, ours.add.rule)
    # Captum deletes the user's attributes after the call; we leave them as they were
    assert not hasattr(theirs.b, "rule") and not hasattr(theirs.add, "rule")
    assert (ours.b.rule, ours.out.rule, ours.add.rule) == rules
    _close(ia.LRP(ours).attribute(x, target=1), a)  # a second call reads the same rules


def test_layer_lrp_honours_rules_set_on_modules():
    ours, theirs = _pair(seed=1)
    ours.a.rule, theirs.a.rule = il.GammaRule(0.5), cr.GammaRule(0.5)
    ours.b.rule, theirs.b.rule = il.Alpha1_Beta0_Rule(), cr.Alpha1_Beta0_Rule()  # its inputs are >= 0 (ReLU)
    x = _x(2, 4)
    for layer in ("a", "b", "add"):
        for to_input in (False, True):
            if layer == "add" and to_input:
                continue  # Captum: one relevance per input of the addition; both take the first one
            theirs.a.rule, theirs.b.rule = cr.GammaRule(0.5), cr.Alpha1_Beta0_Rule()  # Captum deleted them
            r, d = ia.LayerLRP(ours, getattr(ours, layer)).attribute(
                x, target=2, return_convergence_delta=True, attribute_to_layer_input=to_input)
            r2, d2 = ca.LayerLRP(theirs, getattr(theirs, layer)).attribute(
                x, target=2, return_convergence_delta=True, attribute_to_layer_input=to_input)
            _close(r, r2)
            _close(d, d2)
    assert isinstance(ours.a.rule, il.GammaRule) and isinstance(ours.b.rule, il.Alpha1_Beta0_Rule)


def test_rules_map_and_module_attributes_together():
    """``rules=`` by name or type wins over a module's ``rule``; other modules keep their attribute's rule."""
    ours, theirs = _pair(seed=2)
    ours.b.rule = il.EpsilonRule(5.0)  # overridden by the map below
    ours.out.rule = il.GammaRule(0.2)
    theirs.b.rule, theirs.out.rule = cr.GammaRule(0.4), cr.GammaRule(0.2)
    x = _x(3, 4)
    _close(ia.LRP(ours, rules={"b": il.GammaRule(0.4)}).attribute(x, target=0), ca.LRP(theirs).attribute(x, target=0))
    theirs.a.rule, theirs.b.rule, theirs.out.rule = cr.GammaRule(0.4), cr.GammaRule(0.4), cr.GammaRule(0.4)
    _close(ia.LRP(ours, rules={nn.Linear: il.GammaRule(0.4)}).attribute(x, target=0),
           ca.LRP(theirs).attribute(x, target=0))
    assert ours.b.rule.epsilon == 5.0


def test_rule_none_means_the_default_rule():
    """Captum's own check accepts ``module.rule = None`` but its LRP then fails with AttributeError ('NoneType'
    object has no attribute 'relevance_input'); ours reads None as "no rule set": the layer's default rule."""
    ours, theirs = _pair(seed=3)
    x = _x(2, 4)
    expected = ia.LRP(ours).attribute(x, target=0)
    ours.b.rule = ours.act.rule = None
    _close(ia.LRP(ours).attribute(x, target=0), expected)
    _close(ca.LRP(theirs).attribute(x, target=0), expected)  # Captum without the attributes: the same defaults
    assert ours.b.rule is None and ours.act.rule is None
    theirs.b.rule = None
    with pytest.raises(AttributeError, match="relevance_input"):
        ca.LRP(theirs).attribute(x, target=0)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh, nn.Dropout])
def test_captums_non_linear_layers_pass_relevance(act):
    ours, theirs = _pair(act=act, seed=4)
    ours.eval(), theirs.eval()
    x = _x(3, 4)
    _close(ia.LRP(ours).attribute(x, target=2), ca.LRP(theirs).attribute(x, target=2))
    # a rule set on them is ignored, as Captum ignores it
    ours.act.rule, theirs.act.rule = il.EpsilonRule(0.5), cr.EpsilonRule(0.5)
    _close(ia.LRP(ours).attribute(x, target=2), ca.LRP(theirs).attribute(x, target=2))


@pytest.mark.parametrize("act", [nn.Softplus, nn.LogSoftmax])
def test_unsupported_layer_is_a_type_error_as_in_captum(act):
    ours, theirs = _pair(act=act, seed=5)
    x = _x(2, 4)
    with pytest.raises(TypeError, match="has no rule defined"):
        ca.LRP(theirs).attribute(x, target=0)
    with pytest.raises(TypeError, match=rf"LRP has no rule for module 'act' of type {act.__name__}; pass one") as e:
        ia.LRP(ours).attribute(x, target=0)
    assert isinstance(e.value, IntellegoError)
    with pytest.raises(TypeError, match=f"of type {act.__name__}"):
        ia.LayerLRP(ours, ours.b).attribute(x, target=0)


@pytest.mark.parametrize("rule", ["EpsilonRule", "IdentityRule", "GammaRule"])
def test_rule_set_on_an_unsupported_activation_applies_to_it(rule):
    """Captum applies a rule set on a Sigmoid to it: ``R_in = x * sigmoid'(x) * R_out / sigmoid(x)`` (epsilon)."""
    ours, theirs = _pair(act=nn.Sigmoid, seed=6)
    ours.act.rule, theirs.act.rule = getattr(il, rule)(), getattr(cr, rule)()
    x = _x(3, 4)
    _close(ia.LRP(ours).attribute(x, target=1), ca.LRP(theirs).attribute(x, target=1))


def test_sigmoid_used_as_an_activation_is_a_type_error():
    """A sigmoid is a gate for LRP (squeeze-excitation, see ``intellego.engines.blocks``): used as an activation,
    its output feeding a layer, relevance would reach it and LRP has no rule for that: a TypeError naming the
    module, raised in backward. Captum refuses the module up front; LayerLRP above the sigmoid runs in ours."""
    ours, theirs = _pair(act=nn.Sigmoid, seed=5)
    x = _x(2, 4)
    with pytest.raises(TypeError, match="has no rule defined"):
        ca.LRP(theirs).attribute(x, target=0)
    with pytest.raises(TypeError, match="LRP has no rule for module 'act' of type Sigmoid; pass one") as e:
        ia.LRP(ours).attribute(x, target=0)
    assert isinstance(e.value, IntellegoError)
    assert ia.LayerLRP(ours, ours.b).attribute(x, target=0).shape[0] == 2


def test_users_own_addition_module():
    """A custom module without a rule is a TypeError in Captum; ours judges it by its operations (an addition:
    the epsilon rule, Captum's result with ``EpsilonRule()`` set on it). A rule set on it is applied in both."""

    class MyAdd(nn.Module):
        def forward(self, a, b):
            return a + b

    ours, theirs = _pair(MyAdd, MyAdd, seed=7)
    x = _x(3, 4)
    with pytest.raises(TypeError, match="has no rule defined"):
        ca.LRP(theirs).attribute(x, target=0)
    assert theirs.act.rule is None  # Captum's failed call left an attribute on the user's ReLU ...
    del theirs.act.rule  # ... which makes its next call fail with AttributeError
    theirs.add.rule = cr.EpsilonRule()
    _close(ia.LRP(ours).attribute(x, target=0), ca.LRP(theirs).attribute(x, target=0))
    assert not hasattr(ours.act, "rule") and not hasattr(ours.add, "rule")
    ours.add.rule, theirs.add.rule = il.EpsilonRule(0.2), cr.EpsilonRule(0.2)
    _close(ia.LRP(ours).attribute(x, target=0), ca.LRP(theirs).attribute(x, target=0))


def test_addition_module_default_rule_matches_captum():
    ours, theirs = _pair(seed=8)
    x = _x(4, 4)
    a, d = ia.LRP(ours).attribute(x, target=0, return_convergence_delta=True)
    a2, d2 = ca.LRP(theirs).attribute(x, target=0, return_convergence_delta=True)
    _close(a, a2)
    _close(d, d2)


@pytest.mark.parametrize("bad", ["gamma", "captum"])
def test_rule_attribute_that_is_not_a_rule(bad):
    ours, theirs = _pair(seed=9)
    x = _x(2, 4)
    theirs.b.rule = "gamma"
    with pytest.raises(TypeError, match="Please select propagation rules"):
        ca.LRP(theirs).attribute(x, target=0)
    ours.b.rule = "gamma" if bad == "gamma" else cr.GammaRule()
    what = "str 'gamma'" if bad == "gamma" else "an object of type GammaRule"
    with pytest.raises(TypeError, match=rf"module 'b' of type Linear has a rule attribute that is not an intellego "
                                        rf"PropagationRule \(EpsilonRule, GammaRule...\): {what}"):
        ia.LRP(ours).attribute(x, target=0)
    before = copy.copy(ours.b.__dict__)
    with pytest.raises(TypeError):
        ia.LayerLRP(ours, ours.a).attribute(x, target=0)
    assert ours.b.__dict__ == before


def test_alpha1_beta0_on_negative_inputs_differs_from_captum():
    """Captum's Alpha1_Beta0_Rule keeps the positive weights whatever the sign of the input, so negative inputs
    times positive weights (negative contributions) still propagate; ours propagates only the positive
    contributions ``x+ w+ + x- w-``, as the rule is defined. Both agree where the layer's inputs are >= 0."""
    ours, theirs = _pair(seed=10)
    x = _x(3, 4)
    assert (x < 0).any()
    ours.a.rule, theirs.a.rule = il.Alpha1_Beta0_Rule(), cr.Alpha1_Beta0_Rule()
    a, a2 = ia.LRP(ours).attribute(x, target=0), ca.LRP(theirs).attribute(x, target=0).detach()
    assert (a - a2).abs().max() > 1e-3
    theirs.a.rule = cr.Alpha1_Beta0_Rule()
    _close(ia.LRP(ours).attribute(x.abs(), target=0), ca.LRP(theirs).attribute(x.abs(), target=0))


@pytest.mark.parametrize("cls", ["LRP", "LayerLRP"])
def test_rule_attribute_that_is_not_a_rule_is_refused_when_built(cls):
    """Captum refuses ``module.rule = 1`` when LRP or LayerLRP is built; so do ours (and again at each call, for a
    rule set afterwards), naming the module; the model is left as it was."""
    ours, theirs = _pair(seed=10)
    ours.b.rule, theirs.b.rule = 1, 1
    args = (ours, ours.a) if cls == "LayerLRP" else (ours,)
    with pytest.raises(TypeError):
        getattr(ca, cls)(*((theirs, theirs.a) if cls == "LayerLRP" else (theirs,)))
    with pytest.raises(TypeError, match=r"module 'b' of type Linear has a rule attribute that is not an intellego "
                                        r"PropagationRule \(EpsilonRule, GammaRule...\): int 1"):
        getattr(ia, cls)(*args)
    assert ours.b.rule == 1


def test_inputs_added_in_forward_share_the_relevance_unlike_captum():
    """A forward that adds two of its inputs (``x + y``) before the first layer: Captum gives each summand the
    whole relevance of the sum (counted twice: the delta is off by the total relevance); ours split it in
    proportion to the summands, so the relevance is that of the single input ``x + y``."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)).to(D)
    f = lambda x, y: net(x + y)  # noqa: E731

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, y):
            return f(x, y)

    x = _x(1, 3).abs()
    y = 3 * x
    (rx, ry), delta = ia.LRP(Model()).attribute((x, y), target=0, return_convergence_delta=True)
    whole = ia.LRP(net).attribute(x + y, target=0)
    _close(rx + ry, whole)
    _close(rx, whole / 4)
    assert float(delta.abs().max()) < 1e-6  # conserved (up to the epsilon rule)
    (cx, cy), cdelta = ca.LRP(Model()).attribute((x, y), target=0, return_convergence_delta=True)
    _close(cx, whole)
    _close(cy, whole)  # each summand gets it all
    _close(cdelta, -whole.sum(1))
