"""DeepLift and DeepLiftShap: completeness, parity with Captum, the cases where Captum fails, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from _rule_models import Functional, ResBlock, ResNet, Reused, seeded
from intellego.attr import DeepLift, DeepLiftShap
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
D = torch.float64


def _x(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D)


RELU_MODELS = {
    "mlp": lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
    "inplace": lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, 3)),
    "reused": lambda: Reused(),
    "reused_inplace": lambda: Reused(inplace=True),
    "torch.relu": lambda: Functional("torch"),
    "F.relu": lambda: Functional("F"),
    "x.relu()": lambda: Functional("method"),
    "x.relu_()": lambda: Functional("inplace"),
}


@pytest.mark.parametrize("name", sorted(RELU_MODELS))
def test_completeness_is_exact_on_relu_networks(name):
    model = seeded(RELU_MODELS[name])
    x, b = _x(6, 5), _x(6, 5, seed=2)
    attr, delta = DeepLift(model).attribute(x, b, target=2, return_convergence_delta=True)
    gap = model(x)[:, 2] - model(b)[:, 2]
    torch.testing.assert_close(attr.sum(1), gap, atol=1e-12, rtol=0)
    assert delta.abs().max() < 1e-12


@pytest.mark.parametrize("make", [ResBlock, ResNet], ids=["block", "resnet"])
def test_completeness_is_exact_on_residual_networks(make):
    model = seeded(make)
    c = 3 if make is ResBlock else 2
    x, b = _x(3, c, 8, 8), _x(3, c, 8, 8, seed=3)
    out = (lambda t: model(t).flatten(1).sum(1)) if make is ResBlock else (lambda t: model(t)[:, 0])
    target = None if make is ResBlock else 0
    fn = (lambda t: model(t).flatten(1).sum(1, keepdim=True)) if make is ResBlock else model
    attr = DeepLift(fn).attribute(x, b, target=0 if make is ResBlock else target)
    torch.testing.assert_close(attr.flatten(1).sum(1), out(x) - out(b), atol=1e-11, rtol=0)


def test_batched_equals_per_example_and_tuple_matches_tensor():
    model = seeded(RELU_MODELS["mlp"])
    x, b = _x(4, 5), _x(4, 5, seed=2)
    whole = DeepLift(model).attribute(x, b, target=1)
    rows = torch.cat([DeepLift(model).attribute(x[i:i + 1], b[i:i + 1], target=1) for i in range(4)])
    torch.testing.assert_close(whole, rows, atol=1e-13, rtol=0)
    (as_tuple,) = DeepLift(model).attribute((x,), (b,), target=1)
    torch.testing.assert_close(as_tuple, whole, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------- parity with Captum
ACTS = [nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
@pytest.mark.parametrize("multiply", [True, False])
def test_parity_with_captum_on_activations(act, multiply):
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 6), act(), nn.Linear(6, 3)))
    x, b = _x(4, 5), _x(4, 5, seed=2)
    ours, d1 = DeepLift(model, multiply).attribute(x, b, target=[0, 1, 2, 0], return_convergence_delta=True)
    theirs, d2 = ca.DeepLift(model, multiply).attribute(x, b, target=[0, 1, 2, 0], return_convergence_delta=True)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(d1, d2.detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parity_with_captum_on_max_pooling(dim):
    conv, pool = getattr(nn, f"Conv{dim}d"), getattr(nn, f"MaxPool{dim}d")
    size = {1: (12,), 2: (8, 8), 3: (4, 4, 4)}[dim]
    flat = 3 * (size[0] // 2) ** dim
    model = seeded(lambda: nn.Sequential(conv(2, 3, 3, padding=1), pool(2), nn.Flatten(), nn.Linear(flat, 2)))
    x, b = _x(3, 2, *size), _x(3, 2, *size, seed=2)
    ours = DeepLift(model).attribute(x, b, target=1)
    theirs = ca.DeepLift(model).attribute(x, b, target=1)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)


def test_parity_with_captum_on_softmax_for_one_example():
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1)))
    x, b = _x(1, 5), _x(1, 5, seed=2)
    ours = DeepLift(model).attribute(x, b, target=1)
    theirs = ca.DeepLift(model).attribute(x, b, target=1)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)


def test_parity_with_captum_tuple_inputs_args_and_custom_function():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(4, 2)
            self.relu = nn.ReLU()

        def forward(self, x, y, scale):
            return self.c(self.relu(self.a(x) + self.b(y))) * scale

    model = seeded(Two)
    x, y = _x(3, 3), _x(3, 2, seed=4)
    refs = (_x(1, 3, seed=5), 0.5)
    scale = torch.tensor([[1.0], [2.0], [3.0]], dtype=D)

    def custom(mult, inputs, baselines):
        return tuple(m * (i - bl) ** 2 for m, i, bl in zip(mult, inputs, baselines))

    for fn in (None, custom):
        ours = DeepLift(model).attribute((x, y), refs, target=1, additional_forward_args=(scale,),
                                         custom_attribution_func=fn)
        theirs = ca.DeepLift(model).attribute((x, y), refs, target=1, additional_forward_args=(scale,),
                                              custom_attribution_func=fn)
        for o, t in zip(ours, theirs):
            torch.testing.assert_close(o, t.detach(), atol=1e-6, rtol=0)


def test_deeplift_shap_parity_with_captum():
    model = seeded(lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)))
    x, refs = _x(3, 2, 6, 6), _x(4, 2, 6, 6, seed=2)
    ours, d1 = DeepLiftShap(model).attribute(x, refs, target=2, return_convergence_delta=True)
    theirs, d2 = ca.DeepLiftShap(model).attribute(x, refs, target=2, return_convergence_delta=True)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(d1, d2.detach(), atol=1e-6, rtol=0)
    chunked = DeepLiftShap(model).attribute(x, refs, target=2, internal_batch_size=5)
    torch.testing.assert_close(chunked, ours, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------- where Captum errs
def test_reused_relu_module_captum_raises():
    """Captum 0.9.0 raises RuntimeError ("A Module ReLU() was detected that does not contain some of the
    input/output attributes...") when one ReLU module runs twice; ours is exact."""
    model = seeded(Reused)
    x, b = _x(4, 5), _x(4, 5, seed=2)
    with pytest.raises(RuntimeError, match="used more than once"):
        ca.DeepLift(model).attribute(x, b, target=0)
    _, delta = DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12


def test_torchvision_style_block_captum_raises():
    """Captum 0.9.0 raises RuntimeError on a residual block whose in-place ReLU module runs twice (the
    torchvision BasicBlock pattern); ours is exact."""
    model = seeded(ResNet)
    x, b = _x(2, 2, 8, 8), _x(2, 2, 8, 8, seed=2)
    with pytest.raises(RuntimeError):
        ca.DeepLift(model).attribute(x, b, target=0)
    _, delta = DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-11


def test_functional_relu_captum_silently_wrong():
    """Captum 0.9.0 does not see ``torch.relu`` in forward and uses its plain gradient: its attributions
    miss completeness by a large margin without any warning; ours are exact."""
    model = seeded(lambda: Functional("torch"))
    x, b = _x(6, 5), _x(6, 5, seed=2)
    _, theirs = ca.DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
    _, ours = DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
    assert theirs.abs().max() > 1e-2
    assert ours.abs().max() < 1e-12


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_before_max_pool_captum_silently_wrong(inplace):
    """Captum 0.9.0 gives wrong multipliers when a ReLU module feeds a MaxPool module directly (its hooks on
    the two adjacent modules interfere): completeness fails by ~0.3; ours is exact."""
    model = seeded(lambda: nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
                                         nn.Flatten(), nn.Linear(12, 2)))
    x, b = _x(3, 3, 4, 4), _x(3, 3, 4, 4, seed=2)
    _, theirs = ca.DeepLift(model).attribute(x, b, target=1, return_convergence_delta=True)
    _, ours = DeepLift(model).attribute(x, b, target=1, return_convergence_delta=True)
    assert theirs.abs().max() > 1e-2
    assert ours.abs().max() < 1e-12


def test_softmax_does_not_mix_examples_unlike_captum():
    """Captum 0.9.0 normalises softmax multipliers by their mean over the whole batch (inputs and
    baselines together), so one example's attribution changes when another example changes; ours
    normalises per example, so a batched call equals per-example calls."""
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1)))
    x, b = _x(2, 5), _x(2, 5, seed=2)
    x2 = x.clone()
    x2[1] += 3.0
    theirs = [ca.DeepLift(model).attribute(v, b, target=1)[0].detach() for v in (x, x2)]
    assert (theirs[0] - theirs[1]).abs().max() > 1e-6
    ours = [DeepLift(model).attribute(v, b, target=1)[0] for v in (x, x2)]
    torch.testing.assert_close(ours[0], ours[1], atol=1e-14, rtol=0)
    single = DeepLift(model).attribute(x[:1], b[:1], target=1)[0]
    torch.testing.assert_close(ours[0], single, atol=1e-14, rtol=0)


# ------------------------------------------------------------------------------------------- bad input
def test_baselines_of_wrong_shape_are_named():
    model = seeded(RELU_MODELS["mlp"])
    with pytest.raises(IntellegoError, match=r"baselines of shape \(2, 4\)"):
        DeepLift(model).attribute(_x(3, 5), torch.zeros(2, 4, dtype=D), target=0)


def test_deeplift_shap_needs_a_distribution():
    model = seeded(RELU_MODELS["mlp"])
    with pytest.raises(IntellegoError, match="at least 2"):
        DeepLiftShap(model).attribute(_x(3, 5), torch.zeros(1, 5, dtype=D), target=0)


def test_custom_attribution_func_arity():
    model = seeded(RELU_MODELS["mlp"])
    with pytest.raises(IntellegoError, match="1 to 3 arguments"):
        DeepLift(model).attribute(_x(3, 5), target=0, custom_attribution_func=lambda a, b, c, d: a)


def test_input_dependent_control_flow_is_an_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(5, 3)

        def forward(self, x):
            y = self.l(x)
            return torch.relu(y) if x.sum() > 0 else y

    model = seeded(Branchy)
    x = torch.ones(2, 5, dtype=D)
    with pytest.raises(IntellegoError, match="baselines"):
        DeepLift(model).attribute(x, target=0)


def test_deeplift_warns_on_nonlinear_ops_without_rule():
    """Ours names the operations that passed the plain gradient (here a GroupNorm and an ``addmm`` of two
    activations); Captum falls back to the plain gradient silently. Products, LayerNorm and attention have exact
    rules (tests/test_zoo_rules.py)."""
    import _unseen_models as U

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.norm = torch.nn.Linear(4, 4), torch.nn.GroupNorm(2, 4)

        def forward(self, x):
            h = self.norm(self.fc(x))
            return torch.addmm(h, h, h.t())[:, :2]

    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="DeepLift has no rule for group_norm, matmul of two activations"):
        DeepLift(Odd().double()).attribute(torch.rand(4, 4, dtype=torch.float64), target=0)
    res, xr = U.build("resnet"), U.inputs("resnet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepLift(res).attribute(xr, target=1)


@pytest.mark.parametrize("softmax", [lambda x: torch.softmax(x, -1), lambda x: torch.nn.functional.softmax(x, dim=1),
                                     lambda x: x.softmax(0), lambda x: torch.softmax(x, 1, dtype=torch.float64)])
def test_softmax_where_input_and_baseline_agree_uses_its_plain_gradient(softmax):
    """Where a softmax input equals its baseline value (attention logits of a token the input does not change)
    the rule falls back to the ordinary gradient; the written-out softmax gradient must equal autograd's."""
    from intellego.attr.deep_lift import _plain_gradient
    from intellego.engines.calls import local_vjp
    from intellego.engines.rules import RuleMode

    x = torch.randn(3, 5, dtype=D)
    mode = RuleMode(lambda kind, modules: (lambda call, grad: (grad,)) if kind == "softmax" else None, record=True)
    with torch.no_grad(), mode:
        softmax(x)
    (call,) = mode.calls
    grad = torch.randn(3, 5, dtype=D)
    torch.testing.assert_close(_plain_gradient(call, grad), local_vjp(call, grad)[0], atol=1e-12, rtol=1e-12)


def test_attention_with_a_token_shared_by_input_and_baseline_same_as_autograd_fallback(monkeypatch):
    """A learned token prepended to every sequence makes some attention logits identical in both passes, so the
    softmax rule takes its plain-gradient fallback there: the written-out gradient gives what autograd gives."""
    import intellego.attr.deep_lift as dl
    from intellego.engines.calls import local_vjp

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.randn(1, 1, 4))
            self.q, self.k, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.cat([self.token.expand(x.shape[0], 1, 4), x], 1)
            a = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2), -1)
            return self.out((a @ h)[:, 0])

    model = seeded(Attn)
    x, base = torch.randn(2, 3, 4, dtype=D), torch.zeros(2, 3, 4, dtype=D)
    used = []
    written_out = dl._plain_gradient
    monkeypatch.setattr(dl, "_plain_gradient", lambda call, grad: used.append(call.kind) or written_out(call, grad))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = DeepLift(model).attribute(x, base, target=1)
        monkeypatch.setattr(dl, "_plain_gradient", lambda call, grad: local_vjp(call, grad)[0])
        reference = DeepLift(model).attribute(x, base, target=1)
    assert used == ["softmax"]
    torch.testing.assert_close(ours, reference, atol=1e-12, rtol=1e-10)


class _Act(nn.Module):
    """Linear -> activation (a module, or a function of the hidden tensor) -> Linear."""

    def __init__(self, act):
        super().__init__()
        self.a, self.b = nn.Linear(5, 8), nn.Linear(8, 3)
        self.act = act

    def forward(self, x):
        return self.b(self.act(self.a(x) * 3))  # * 3: reach the saturating parts of ReLU6, Hardtanh, Hardswish


MORE_ACTIVATIONS = {
    "ReLU6": lambda: nn.ReLU6(), "ReLU6(inplace)": lambda: nn.ReLU6(inplace=True), "Hardtanh": lambda: nn.Hardtanh(),
    "Hardswish": lambda: nn.Hardswish(), "Hardswish(inplace)": lambda: nn.Hardswish(inplace=True),
    "Hardsigmoid": lambda: nn.Hardsigmoid(), "Mish": lambda: nn.Mish(), "SELU": lambda: nn.SELU(),
    "CELU": lambda: nn.CELU(0.5), "LogSigmoid": lambda: nn.LogSigmoid(), "Softsign": lambda: nn.Softsign(),
    "Tanhshrink": lambda: nn.Tanhshrink(), "PReLU": lambda: nn.PReLU(8, 0.1),
    "F.relu6": lambda: torch.nn.functional.relu6, "F.hardtanh_": lambda: lambda h: torch.nn.functional.hardtanh_(h),
    "torch.selu_": lambda: torch.selu_, "x.clamp(min=0)": lambda: lambda h: h.clamp(min=0),
    "torch.clamp(x, -1, 2)": lambda: lambda h: torch.clamp(h, -1, 2),
    "x.clamp_(0, 1)": lambda: lambda h: h.clamp_(0, 1),
}


@pytest.mark.parametrize("name", sorted(MORE_ACTIVATIONS))
def test_completeness_is_exact_with_activations_beyond_captums_list(name):
    """MobileNet's ReLU6 and Hardswish, Mish, SELU, PReLU, ``x.clamp(min=0)``...: each gets the rescale rule.
    Captum's DeepLift has no rule for them and passes the plain gradient, so its attributions do not sum to
    the output difference on these models."""
    model = seeded(lambda: _Act(MORE_ACTIVATIONS[name]()))
    x, b = _x(6, 5), _x(6, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "has no rule" warning either
        attr = DeepLift(model).attribute(x, b, target=1)
    torch.testing.assert_close(attr.sum(1), model(x)[:, 1] - model(b)[:, 1], atol=1e-12, rtol=0)


def test_captum_misses_relu6_completeness():
    """Pinned: Captum's DeepLift on an nn.ReLU6 model (MobileNetV2's activation) is off by the saturation."""
    model = seeded(lambda: _Act(nn.ReLU6()))
    x, b = _x(6, 5), _x(6, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ca.DeepLift(model).attribute(x, b, target=1)
    gap = model(x)[:, 1] - model(b)[:, 1]
    assert (theirs.sum(1) - gap).abs().max() > 1e-3
    torch.testing.assert_close(DeepLift(model).attribute(x, b, target=1).sum(1), gap, atol=1e-12, rtol=0)


def test_clamp_with_tensor_bounds_is_named_in_the_warning():
    model = seeded(lambda: _Act(lambda h: torch.clamp(h, min=h.mean(1, keepdim=True))))
    with pytest.warns(UserWarning, match="clamp with tensor arguments"):
        DeepLift(model).attribute(_x(4, 5), _x(4, 5, seed=2), target=0)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_fused_recurrent_layers_are_named_in_the_warning(cell):
    """nn.LSTM/GRU/RNN run as one fused operation with no DeepLIFT rule: the plain gradient passes through it, which
    Captum does silently; ours says so."""

    class Rec(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = cell(4, 6, batch_first=True), nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    with pytest.warns(UserWarning, match="fused recurrent layer"):
        DeepLift(seeded(Rec)).attribute(_x(3, 5, 4), _x(3, 5, 4, seed=2), target=0)


def test_max_over_a_dimension_is_named_in_the_warning():
    """Global max pooling written as ``x.max(dim).values`` has no DeepLIFT rule (Captum's only covers MaxPool
    modules and passes the plain gradient here silently)."""

    class MaxOverTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv1d(2, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).max(2).values)

    with pytest.warns(UserWarning, match="max of an activation"):
        DeepLift(seeded(MaxOverTime)).attribute(_x(3, 2, 9), _x(3, 2, 9, seed=2), target=0)


class _InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, BN, ReLU6(inplace), depthwise 3x3, BN, ReLU6(inplace), 1x1, BN, skip."""

    def __init__(self, c: int = 4, e: int = 3):
        super().__init__()
        h = c * e
        self.conv = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
                                  nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h),
                                  nn.ReLU6(inplace=True), nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        for m in self.conv:
            if isinstance(m, nn.BatchNorm2d):  # statistics as a trained model has them
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return x + self.conv(x)


def test_mobilenet_v2_block_completeness_where_captum_is_off():
    model = seeded(lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(inplace=True), _InvertedResidual(),
                                         _InvertedResidual(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))
    x, b = _x(3, 3, 8, 8) * 3, torch.zeros(3, 3, 8, 8, dtype=D)
    _, delta = DeepLift(model).attribute(x, b, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theirs = ca.DeepLift(model).attribute(x, b, target=1, return_convergence_delta=True)
    assert theirs.abs().max() > 1e-3


@pytest.mark.parametrize("pool", ["amax", "AdaptiveMaxPool1d", "F.adaptive_max_pool1d"])
def test_completeness_through_max_over_time(pool):
    """Text CNNs take the max over time: ``x.amax(2)`` and adaptive max pooling get the max-pooling rule
    (contributions routed to each pass's maximum), so attributions sum to the output difference."""

    class MaxOverTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv1d(2, 4, 3), nn.Linear(4, 2)
            self.pool = nn.AdaptiveMaxPool1d(1)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            if pool == "amax":
                return self.fc(h.amax(2))
            if pool == "AdaptiveMaxPool1d":
                return self.fc(self.pool(h).flatten(1))
            return self.fc(torch.nn.functional.adaptive_max_pool1d(h, 1).flatten(1))

    model = seeded(MaxOverTime)
    x, b = _x(3, 2, 9), _x(3, 2, 9, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attr, delta = DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    if pool == "AdaptiveMaxPool1d":  # Captum has no rule for the module and passes the plain gradient
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, theirs = ca.DeepLift(model).attribute(x, b, target=0, return_convergence_delta=True)
        assert theirs.abs().max() > 1e-2
    with pytest.raises(IntellegoError, match="return_indices"):
        DeepLift(lambda t: model.fc(torch.nn.functional.adaptive_max_pool1d(t, 1, True)[0].flatten(1))).attribute(
            torch.randn(2, 4, 5, dtype=D), target=0)


def test_dropout_left_in_training_mode_is_named_in_the_warning():
    """The two passes would drop different units (Captum says nothing); in eval mode there is no warning."""
    model = seeded(lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)))
    x, b = _x(4, 5), _x(4, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepLift(model).attribute(x, b, target=0)
    model.train()
    with pytest.warns(UserWarning, match="dropout in training mode"):
        DeepLift(model).attribute(x, b, target=0)
