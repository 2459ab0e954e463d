"""LRP: a slow Jacobian reference per rule, conservation, parity with Captum, Captum's failures, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from _rule_models import seeded
from intellego.attr import LRP
from intellego.attr.lrp import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule, ZPlusRule
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
cr = pytest.importorskip("captum.attr._utils.lrp_rules")
warnings.filterwarnings("ignore")
D = torch.float64


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def _net(bias=True):
    return seeded(lambda: nn.Sequential(nn.Linear(5, 7, bias=bias), nn.ReLU(), nn.Linear(7, 6, bias=bias), nn.ReLU(),
                                        nn.Linear(6, 3, bias=bias)))


def _modified(layer: nn.Linear, rule, x):
    """The rule's modified forward of one linear layer, written out directly."""
    w, b = layer.weight, layer.bias if layer.bias is not None else torch.zeros(layer.out_features, dtype=D)
    if isinstance(rule, GammaRule):
        return x @ (w + rule.gamma * w.clamp(min=0)).T + b
    if isinstance(rule, Alpha1_Beta0_Rule):
        b = torch.zeros_like(b) if rule.set_bias_to_zero else b
        return x.clamp(min=0) @ w.clamp(min=0).T + x.clamp(max=0) @ w.clamp(max=0).T + b
    return x @ w.T + b


def _reference(model: nn.Sequential, rule, x, target):
    """Slow LRP: per example, per layer, ``R_in = x * J'^T (R_out / (z' + eps sign z'))`` with the modified
    layer's Jacobian ``J'`` from ``torch.autograd.functional.jacobian``; ReLUs pass relevance unchanged."""
    eps = rule.epsilon
    out = []
    for row in x:
        acts = [row]
        for m in model:
            acts.append(m(acts[-1]))
        relevance = torch.zeros(3, dtype=D)
        relevance[target] = acts[-1][target]
        for i in reversed(range(len(model))):
            layer, a = model[i], acts[i]
            if isinstance(layer, nn.ReLU):
                continue
            z = _modified(layer, rule, a)
            jac = torch.autograd.functional.jacobian(lambda v, la=layer: _modified(la, rule, v), a)
            den = z + eps * torch.where(z >= 0, 1.0, -1.0)
            relevance = a * (jac.T @ (relevance / den))
        out.append(relevance)
    return torch.stack(out)


RULES = {"epsilon": EpsilonRule(0.01), "epsilon0": EpsilonRule(1e-9), "gamma": GammaRule(0.3),
         "alpha1beta0": Alpha1_Beta0_Rule(), "zplus": ZPlusRule()}


@pytest.mark.parametrize("name", sorted(RULES))
def test_matches_slow_jacobian_reference(name):
    model, rule = _net(), RULES[name]
    x = _x(4, 5)
    ours = LRP(model, rules={nn.Linear: rule}).attribute(x, target=2)
    torch.testing.assert_close(ours, _reference(model, rule, x, 2), atol=1e-8, rtol=1e-7)


def test_rules_by_module_name_and_per_layer_mix():
    model = _net()
    x = _x(3, 5)
    ours = LRP(model, rules={"0": GammaRule(0.5), "2": EpsilonRule(0.1)}).attribute(x, target=0)
    # the same split applied by hand: gamma for layer 0, epsilon 0.1 for layer 2, epsilon 1e-9 for layer 4
    mixed = nn.Sequential(*model)
    ref_last = LRP(mixed, rules={"0": GammaRule(0.5), "2": EpsilonRule(0.1), "4": EpsilonRule(1e-9)})
    torch.testing.assert_close(ours, ref_last.attribute(x, target=0), atol=0, rtol=0)
    assert not torch.allclose(ours, LRP(model).attribute(x, target=0))


def test_lrp0_conserves_relevance_on_bias_free_networks():
    model = _net(bias=False)
    x = _x(5, 5)
    attr, delta = LRP(model, rules={nn.Linear: EpsilonRule(0.0)}).attribute(x, target=1,
                                                                            return_convergence_delta=True)
    torch.testing.assert_close(attr.sum(1), model(x)[:, 1], atol=1e-12, rtol=0)
    assert delta.abs().max() < 1e-12


def test_identity_rule_passes_relevance():
    model = seeded(lambda: nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)))
    x = _x(3, 4).abs()
    attr = LRP(model, rules={"0": IdentityRule(), "2": EpsilonRule(0.0)}).attribute(x, target=0)
    hidden = torch.relu(model[0](x))
    upper = hidden * model[2].weight[0]  # LRP-0 relevance of the hidden units
    torch.testing.assert_close(attr, upper, atol=1e-12, rtol=0)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                               nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.c = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))

    def forward(self, x):
        return self.c(self.f(x).flatten(1))


def _cnn():
    model = seeded(_Net)
    model.f[4].running_mean.normal_()
    model.f[4].running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize("case", ["default", "gamma+alpha", "epsilon+bn"])
def test_parity_with_captum(case):
    model = _cnn()
    ours, theirs = {
        "default": ({}, {}),
        "gamma+alpha": ({"f.3": GammaRule(), "c.0": Alpha1_Beta0_Rule()},
                        {model.f[3]: cr.GammaRule(), model.c[0]: cr.Alpha1_Beta0_Rule()}),
        "epsilon+bn": ({"f.0": EpsilonRule(0.1), nn.BatchNorm2d: GammaRule(0.5)},
                       {model.f[0]: cr.EpsilonRule(0.1), model.f[4]: cr.GammaRule(0.5)}),
    }[case]
    x = _x(3, 2, 10, 10)
    a, d = LRP(model, rules=ours, canonize=False).attribute(x, target=1, return_convergence_delta=True)
    for module, rule in theirs.items():
        module.rule = rule
    a2, d2 = ca.LRP(model).attribute(x, target=1, return_convergence_delta=True)
    torch.testing.assert_close(a, a2.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(d, d2.detach(), atol=1e-6, rtol=0)


def test_batchnorm_canonizer_equals_the_merged_layer():
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
    torch.manual_seed(3)
    bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2), bn.weight.data.normal_(), bn.bias.data.normal_()
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2)).double().eval()
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    merged = nn.Conv2d(2, 3, 3).double()
    merged.weight.data = conv.weight * scale.reshape(-1, 1, 1, 1)
    merged.bias.data = (conv.bias - bn.running_mean) * scale + bn.bias
    folded = nn.Sequential(merged, nn.ReLU(), nn.Flatten(), model[4]).eval()
    x = _x(2, 2, 6, 6)
    rule = {nn.Conv2d: GammaRule(0.25)}
    with torch.no_grad():
        torch.testing.assert_close(model(x), folded(x))
    torch.testing.assert_close(LRP(model, rules=rule).attribute(x, target=1),
                               LRP(folded, rules=rule).attribute(x, target=1), atol=1e-10, rtol=0)


def test_residual_addition_gets_epsilon_and_conserves():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False), nn.Linear(4, 2, False)

        def forward(self, x):
            h = torch.relu(self.a(x))
            h = h + torch.relu(self.b(h))
            return self.out(h)

    model = seeded(Res)
    x = _x(3, 4)
    # a rule for the root module ("") covers the functional addition and the layers inside it
    attr, delta = LRP(model, rules={"": EpsilonRule(0.0)}).attribute(x, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    _, absorbed = LRP(model, rules={"": EpsilonRule(0.5)}).attribute(x, target=0, return_convergence_delta=True)
    assert absorbed.abs().max() > 1e-3


# ------------------------------------------------------------------------------------------- where Captum errs
class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.relu, self.out = nn.Linear(5, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False)

    def forward(self, x):
        return self.out(self.relu(self.lin(self.relu(self.lin(x)))))


def test_reused_module_captum_raises():
    """Captum 0.9.0 raises RuntimeError ("Module ... is being used more than once in the network, which is not
    supported by LRP") for a Linear module applied twice; ours propagates through each call and conserves."""
    model = seeded(_Twice)
    x = _x(3, 5)
    with pytest.raises(RuntimeError, match="more than once"):
        ca.LRP(model).attribute(x, target=0)
    _, delta = LRP(model, rules={"": EpsilonRule(0.0)}).attribute(x, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12


def test_captum_deletes_the_users_rule_attributes():
    """Captum 0.9.0 reads rules from ``module.rule`` and deletes that attribute after the call, so a second
    call silently falls back to the default rules; ours takes rules as an argument (and reads a Captum-style
    ``rule`` attribute without touching it), so repeated calls agree."""
    model = _net()
    x = _x(2, 5)
    model[0].rule = cr.GammaRule(0.5)
    first = ca.LRP(model).attribute(x, target=0).detach()
    assert not hasattr(model[0], "rule")
    second = ca.LRP(model).attribute(x, target=0).detach()
    assert not torch.allclose(first, second)
    lrp = LRP(model, rules={"0": GammaRule(0.5)})
    torch.testing.assert_close(lrp.attribute(x, target=0), lrp.attribute(x, target=0), atol=0, rtol=0)
    torch.testing.assert_close(lrp.attribute(x, target=0), first, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------- bad input
def test_unsupported_module_is_named():
    model = seeded(lambda: nn.Sequential(nn.Linear(4, 4), nn.Softplus(), nn.Linear(4, 2)))
    with pytest.raises(IntellegoError, match=r"module '1' of type Softplus"):
        LRP(model).attribute(_x(2, 4), target=0)


def test_functional_op_without_rule_is_an_error():
    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 2)

        def forward(self, x):
            return torch.sigmoid(self.a(x))

    with pytest.raises(IntellegoError, match="'sigmoid'"):
        LRP(seeded(Sig)).attribute(_x(2, 4), target=0)


def test_bad_rules_map():
    with pytest.raises(IntellegoError, match="neither a module type nor the name"):
        LRP(_net(), rules={"nope": EpsilonRule()}).attribute(_x(2, 5), target=0)
    with pytest.raises(IntellegoError, match="PropagationRule"):
        LRP(_net(), rules={nn.Linear: "gamma"}).attribute(_x(2, 5), target=0)


class _InPlaceTanh(nn.Module):
    """Linear -> in-place tanh -> Linear: the tanh overwrites the first layer's output after that layer ran."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.a, self.b = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x):
        z = self.a(x)
        return self.b(z.tanh_() if self.inplace else z.tanh())


def test_in_place_activation_after_a_layer_keeps_that_layers_output():
    """The epsilon scaling of the first layer needs its output as it was before ``tanh_`` overwrote it; an
    in-place and an out-of-place tanh must give the same relevance (eps large enough to matter)."""
    rules = {nn.Linear: EpsilonRule(0.5)}
    inplace = seeded(lambda: _InPlaceTanh(True))
    plain = seeded(lambda: _InPlaceTanh(False))
    x = _x(6, 5)
    torch.testing.assert_close(LRP(inplace, rules=rules).attribute(x, target=1),
                               LRP(plain, rules=rules).attribute(x, target=1), atol=1e-12, rtol=1e-10)


def test_layer_output_changed_in_place_later_is_an_error_not_a_wrong_answer():
    """The epsilon scaling reads the layer's output in backward; an untracked in-place change (``mul_``) after
    the ReLU ran (autograd itself saved only the ReLU's output, so it cannot notice) would make it read the
    wrong values, so LRP refuses instead."""

    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 4), nn.Linear(4, 2)

        def forward(self, x):
            z = self.a(x)
            out = self.b(torch.relu(z))
            z.mul_(2.0)
            return out

    with pytest.raises(IntellegoError, match="modified in place"):
        LRP(seeded(Sneaky)).attribute(_x(3, 5), target=0)


@pytest.mark.parametrize("act", [nn.ReLU6, nn.Hardswish, nn.Mish, nn.SELU, nn.Softsign, lambda: nn.PReLU(4, 0.2)],
                         ids=["ReLU6", "Hardswish", "Mish", "SELU", "Softsign", "PReLU"])
def test_lrp0_conserves_relevance_through_more_activations(act):
    """Activations that map 0 to 0 pass relevance unchanged, so LRP-0 on a bias-free network conserves it."""
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 4, bias=False), act(), nn.Linear(4, 3, bias=False)))
    x = _x(6, 5)
    relevance = LRP(model, rules={nn.Linear: EpsilonRule(0.0)}).attribute(x, target=2)
    torch.testing.assert_close(relevance.sum(1), model(x)[:, 2], atol=1e-10, rtol=1e-9)


def test_activation_that_does_not_map_zero_to_zero_is_named():
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 4), nn.Hardsigmoid(), nn.Linear(4, 3)))
    with pytest.raises(IntellegoError, match="Hardsigmoid"):
        LRP(model).attribute(_x(2, 5), target=0)


def test_operation_without_an_lrp_form_is_named_even_with_a_module_rule():
    """A rule given for an LSTM module cannot apply (its fused operation has no LRP form), so the plain gradient
    passes through it: LRP says so rather than conserve nothing silently."""

    class Rec(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.LSTM(4, 6, batch_first=True), nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    with pytest.warns(UserWarning, match="LRP has no rule for lstm"):
        LRP(seeded(Rec), rules={nn.LSTM: EpsilonRule()}).attribute(_x(3, 5, 4), target=0)
