"""Several targets / neurons in one batched call (``targets=``, neuron lists), ``layer_call`` for neurons of a
module that runs several times, selector checks in the main forward, and argument names in error messages."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.errors import IntellegoError

D = torch.float64


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 4)).double()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()


# (class, layer index, model, extra kwargs, baselines kind) -- every layer method that takes target=
LAYER_CASES = [
    ("LayerGradientXActivation", 1, _mlp, {}, None),
    ("LayerGradCam", 2, _cnn, {}, None),
    ("InternalInfluence", 1, _mlp, {"n_steps": 5}, "per_example"),
    ("LayerConductance", 1, _mlp, {"n_steps": 5, "return_convergence_delta": True}, "per_example"),
    ("LayerIntegratedGradients", 2, _mlp, {"n_steps": 5, "return_convergence_delta": True}, "per_example"),
    ("LayerDeepLift", 2, _mlp, {"return_convergence_delta": True}, "per_example"),
    ("LayerDeepLiftShap", 2, _mlp, {}, "distribution"),
    ("GuidedGradCam", 1, _cnn, {}, None),
    ("LayerGradCamPlusPlus", 3, _cnn, {}, None),
    ("LayerLRP", 3, _mlp, {"return_convergence_delta": True}, None),
]


def _inputs(make):
    return torch.randn(3, 5, dtype=D) if make is _mlp else torch.randn(3, 2, 6, 6, dtype=D)


def _assert_same(batched, single, k):
    if isinstance(single, (tuple, list)):
        assert type(batched) is type(single) and len(batched) == len(single)
        for b, s in zip(batched, single):
            _assert_same(b, s, k)
    else:
        torch.testing.assert_close(batched[k], single, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("name, layer, make, kw, base", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_targets_equal_the_loop(name, layer, make, kw, base):
    model = make()
    x = _inputs(make)
    args = {}
    if base == "per_example":
        args["baselines"] = x * 0.3
    elif base == "distribution":
        args["baselines"] = torch.randn(2, *x.shape[1:], dtype=D) * 0.1
    targets = [0, 2, [1, 0, 2]]  # a per-example list is one entry, too
    method = getattr(ia, name)(model, model[layer])
    batched = method.attribute(x, targets=targets, **args, **kw)
    for k, t in enumerate(targets):
        _assert_same(batched, method.attribute(x, target=t, **args, **kw), k)


def test_targets_with_layer_lists_tuple_inputs_and_batched_args():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(4, 3)

        def forward(self, x1, x2, scale):
            return self.out(torch.tanh(self.a(x1) + self.b(x2)) * scale)

    torch.manual_seed(0)
    model = Two().double()
    x1, x2, scale = torch.randn(4, 3, dtype=D), torch.randn(4, 2, dtype=D), torch.rand(4, 1, dtype=D) + 0.5
    lig = ia.LayerIntegratedGradients(model, [model.a, model.b])
    batched = lig.attribute((x1, x2), additional_forward_args=scale, n_steps=6, targets=[2, 0])
    assert isinstance(batched, list) and batched[0].shape == (2, 4, 4)
    for k, t in enumerate([2, 0]):
        _assert_same(batched, lig.attribute((x1, x2), additional_forward_args=scale, n_steps=6, target=t), k)


def test_layer_gradient_shap_targets_equal_loop_on_a_linear_model():
    """Noise is drawn per copy, so compare on a model whose layer gradient does not depend on the draw."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3)).double()
    x, refs = torch.randn(3, 4, dtype=D), torch.randn(1, 4, dtype=D)
    method = ia.LayerGradientShap(model, model[0])
    batched = method.attribute(x, refs, n_samples=3, targets=[1, 2])
    for k, t in enumerate([1, 2]):
        torch.testing.assert_close(batched[k], method.attribute(x, refs, n_samples=3, target=t))


def test_targets_bad_input_is_clear():
    model = _mlp()
    x = torch.randn(2, 5, dtype=D)
    method = ia.LayerGradientXActivation(model, model[0])
    with pytest.raises(IntellegoError, match="either target= .* or targets="):
        method.attribute(x, target=0, targets=[1, 2])
    with pytest.raises(IntellegoError, match="targets must be a non-empty list"):
        method.attribute(x, targets=(0, 1))
    with pytest.raises(IntellegoError, match="targets must be a non-empty list"):
        method.attribute(x, targets=[])
    with pytest.raises(IntellegoError, match=r"targets\[1\] must be an index"):
        method.attribute(x, targets=[0, lambda out: out[:, 0]])
    with pytest.raises(IntellegoError, match=r"target values \[9\] are out of range"):
        method.attribute(x, targets=[0, 9])


def test_neuron_lists_with_baselines_equal_the_loop():
    model = _mlp()
    x = torch.randn(3, 5, dtype=D)
    neurons = [1, 4, 0]
    for method, kw in ((ia.NeuronIntegratedGradients(model, model[2]), {"baselines": x * 0.5, "n_steps": 4}),
                       (ia.NeuronDeepLift(model, model[3]), {"baselines": x * 0.5})):
        batched = method.attribute(x, neurons, **kw)
        assert batched.shape == (3, 3, 5)
        for k, n in enumerate(neurons):
            torch.testing.assert_close(batched[k], method.attribute(x, n, **kw))


# -- callables must return one score per example ------------------------------------------------------------


def test_callable_target_and_selector_must_return_one_score_per_example():
    model = _mlp()
    x = torch.randn(2, 5, dtype=D)
    with pytest.raises(IntellegoError, match=r"callable neuron_selector must return .* shape \(2,\).*\(2, 7\)"):
        ia.NeuronGradient(model, model[0]).attribute(x, lambda v: v)
    with pytest.raises(IntellegoError, match=r"callable target must return .* shape \(2,\).*\(2, 4\)"):
        ia.LayerGradientXActivation(model, model[0]).attribute(x, target=lambda out: out)
    with pytest.raises(IntellegoError, match="callable target must return"):
        ia.LayerIntegratedGradients(model, model[0]).attribute(x, target=lambda out: out.sum())
    good = ia.NeuronGradient(model, model[0]).attribute(x, lambda v: v[:, 1])
    torch.testing.assert_close(good, ia.NeuronGradient(model, model[0]).attribute(x, 1))


# -- neuron selectors are checked inside the method's own forward pass --------------------------------------


class _Counting(nn.Module):
    """``inner`` with a counter of forward calls of its first module and of backward passes through it."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.forwards, self.backwards = inner, 0, 0

    def forward(self, x):
        self.forwards += 1
        if x.requires_grad:
            x.register_hook(self._seen)
        return self.inner(x)

    def _seen(self, grad):
        self.backwards += 1


def test_selector_checked_in_the_main_forward_before_any_backward():
    model = _Counting(_mlp())
    x = torch.randn(2, 5, dtype=D)
    ia.NeuronGradient(model, model.inner[2]).attribute(x, 3)
    assert (model.forwards, model.backwards) == (1, 1)  # no extra forward to check the selector
    model.forwards = model.backwards = 0
    with pytest.raises(IntellegoError, match=r"neuron_selector \(9,\) is out of range"):
        ia.NeuronIntegratedGradients(model, model.inner[2]).attribute(x, 9, n_steps=4)
    assert (model.forwards, model.backwards) == (1, 0)
    model.forwards = 0
    with pytest.raises(IntellegoError, match=r"neuron_selector \(6,\) is out of range"):
        ia.NeuronConductance(model, model.inner[2]).attribute(x, [0, 6], target=0, n_steps=4)
    assert (model.forwards, model.backwards) == (1, 0)


# -- layer_call: which call of a module that runs several times ---------------------------------------------


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.out = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.relu(self.lin(torch.tanh(self.lin(x)))))


class _Unshared(nn.Module):
    def __init__(self, shared):
        super().__init__()
        self.lin1, self.lin2, self.out = copy.deepcopy(shared.lin), copy.deepcopy(shared.lin), shared.out

    def forward(self, x):
        return self.out(torch.relu(self.lin2(torch.tanh(self.lin1(x)))))


NEURON_CASES = [
    ("NeuronGradient", {}),
    ("NeuronIntegratedGradients", {"n_steps": 5}),
    ("NeuronConductance", {"n_steps": 5, "target": 1}),
    ("NeuronDeepLift", {}),
    ("NeuronGuidedBackprop", {}),
    ("NeuronDeconvolution", {}),
    ("NeuronFeatureAblation", {}),
]


@pytest.mark.parametrize("name, kw", NEURON_CASES, ids=[c[0] for c in NEURON_CASES])
def test_layer_call_picks_the_call_of_a_shared_module(name, kw):
    torch.manual_seed(0)
    shared = _Shared().double()
    untied = _Unshared(shared)
    x = torch.randn(3, 4, dtype=D)
    cls = getattr(ia, name)
    first = cls(shared, shared.lin).attribute(x, 2, **kw)
    torch.testing.assert_close(first, cls(untied, untied.lin1).attribute(x, 2, **kw))
    second = cls(untied, untied.lin2).attribute(x, 2, **kw)
    torch.testing.assert_close(cls(shared, shared.lin, layer_call=1).attribute(x, 2, **kw), second)
    torch.testing.assert_close(cls(shared, shared.lin, layer_call=-1).attribute(x, 2, **kw), second)
    torch.testing.assert_close(cls(shared, shared.lin, layer_call=-2).attribute(x, 2, **kw), first)


@pytest.mark.parametrize("name", ["NeuronGradient", "NeuronIntegratedGradients", "NeuronGuidedBackprop",
                                  "NeuronFeatureAblation"])
def test_layer_call_last_matches_captum_on_a_shared_module(name):
    """Captum keeps the last call of a shared module; ``layer_call=-1`` gives the same numbers."""
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    shared = _Shared().double()
    x = torch.randn(3, 4, dtype=D)
    ours = getattr(ia, name)(shared, shared.lin, layer_call=-1).attribute(x, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns about inputs without requires_grad
        theirs = getattr(captum_attr, name)(shared, shared.lin).attribute(x, 1)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    first = getattr(ia, name)(shared, shared.lin).attribute(x, 1)
    assert (first - theirs).abs().max() > 1e-3  # the default (first call) is a different neuron


def test_layer_call_errors_name_how_often_the_layer_ran():
    shared = _Shared().double()
    x = torch.randn(2, 4, dtype=D)
    with pytest.raises(IntellegoError, match="ran fewer than 3 time"):
        ia.NeuronGradient(shared, shared.lin, layer_call=2).attribute(x, 0)
    with pytest.raises(IntellegoError, match="ran 2 time.*layer_call=-3"):
        ia.NeuronIntegratedGradients(shared, shared.lin, layer_call=-3).attribute(x, 0, n_steps=3)
    with pytest.raises(IntellegoError, match="ran 2 time.*layer_call=-3"):
        ia.NeuronConductance(shared, shared.lin, layer_call=-3).attribute(x, 0, target=0, n_steps=3)
    with pytest.raises(IntellegoError, match="layer_call must be an int"):
        ia.NeuronGradient(shared, shared.lin, layer_call="last")


# -- layer perturbation errors name the layer arguments -----------------------------------------------------


def test_layer_ablation_errors_name_layer_mask_and_layer_baselines():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    x = torch.randn(2, 3)
    with pytest.raises(IntellegoError, match=r"^layer_mask of shape \(2, 5\) .* layer's value"):
        ia.LayerFeatureAblation(model, model[0]).attribute(x, layer_mask=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(IntellegoError, match=r"^layer_baselines of shape \(3, 7\)"):
        ia.LayerFeatureAblation(model, model[0]).attribute(x, layer_baselines=torch.zeros(3, 7))
    with pytest.raises(IntellegoError, match="^layer_mask must hold integer"):
        ia.LayerFeaturePermutation(model, model[0]).attribute(x, layer_mask=torch.full((1, 4), 0.5))
    with pytest.raises(IntellegoError, match="^feature_mask"):  # the neuron method's argument is feature_mask
        ia.NeuronFeatureAblation(model, model[0]).attribute(x, 0, feature_mask=torch.zeros(1, 4, dtype=torch.long))


# -- the same targets= on the primary gradient methods ------------------------------------------------------


@pytest.mark.parametrize("name, kw", [("Saliency", {"abs": False}), ("InputXGradient", {}),
                                      ("IntegratedGradients", {"n_steps": 6, "return_convergence_delta": True})])
def test_primary_gradient_methods_take_targets(name, kw):
    model = _mlp()
    x1 = torch.randn(3, 5, dtype=D)
    method = getattr(ia, name)(model)
    batched = method.attribute(x1, targets=[3, 0], **kw)
    for k, t in enumerate([3, 0]):
        _assert_same(batched, method.attribute(x1, target=t, **kw), k)
    chunked = method.attribute(x1, targets=[3, 0], internal_batch_size=2, **kw)
    _assert_same(chunked, method.attribute(x1, target=0, **kw), 1)


def test_layer_ablation_messages_never_name_the_primary_arguments():
    """The names come from the caller (ArgNames), not from rewriting words: no stray primary names remain."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    x = torch.randn(2, 3)
    bad = [(ia.LayerFeatureAblation(model, model[0]).attribute, {"layer_mask": torch.zeros(2, 5, dtype=torch.long)}),
           (ia.LayerFeatureAblation(model, model[0]).attribute, {"layer_baselines": torch.zeros(3, 7)}),
           (ia.LayerFeatureAblation(model, model[0]).attribute, {"layer_baselines": (0.0, 0.0)}),
           (ia.LayerFeatureAblation(model, model[0]).attribute,
            {"layer_mask": (torch.zeros(1, 4, dtype=torch.long),) * 2}),
           (ia.LayerFeatureAblation(model, model[0]).attribute, {"layer_mask": torch.tensor([[0, -1, 1, 1]])}),
           (ia.LayerFeaturePermutation(model, model[0]).attribute, {"layer_mask": torch.tensor([[0, 2, 2, 2]])}),
           (ia.LayerFeaturePermutation(model, model[0]).attribute, {"layer_mask": torch.zeros(1, 1, 4).long()})]
    for call, kw in bad:
        with pytest.raises(IntellegoError) as err:
            call(x, **kw)
        message = str(err.value)
        assert "layer_" in message, message
        assert not re.search(r"(?<!layer_)\b(feature_mask|baselines|inputs|the input)\b", message), message


def test_primary_ablation_errors_name_feature_mask_and_baselines():
    model = nn.Linear(4, 1)
    x = torch.randn(2, 4)
    with pytest.raises(IntellegoError, match=r"^feature_mask of shape \(2, 5\) cannot be broadcast to the input"):
        ia.FeatureAblation(model).attribute(x, feature_mask=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(IntellegoError, match=r"^baselines of shape \(3, 7\) cannot be broadcast to the input"):
        ia.FeatureAblation(model).attribute(x, baselines=torch.zeros(3, 7))
    with pytest.raises(IntellegoError, match=r"^feature_mask has 2 tensor\(s\) but inputs has 1"):
        ia.FeatureAblation(model).attribute(x, feature_mask=(torch.zeros(1, 4, dtype=torch.long),) * 2)
    with pytest.raises(IntellegoError, match="^feature_mask must hold integer"):  # whole-number floats are ids
        ia.FeaturePermutation(model).attribute(x, feature_mask=torch.full((1, 4), 0.5))


# -- neuron lists with slice entries (each entry sums its block) ----------------------------------------------


@pytest.mark.parametrize("name,kwargs", [
    ("NeuronGradient", {}),
    ("NeuronIntegratedGradients", {"n_steps": 5, "baselines": 0.3}),
    ("NeuronDeepLift", {"baselines": 0.3}),
    ("NeuronConductance", {"n_steps": 5, "target": 1}),
    ("NeuronFeatureAblation", {"baselines": 0.3}),
])
def test_neuron_lists_with_slices_equal_the_loop(name, kwargs):
    model = _cnn()
    x = torch.randn(3, 2, 6, 6, dtype=D)
    neurons = [(1, slice(0, 3), 2), (0, 1, 1), (slice(None), slice(1, None, 2)), (2, -1, slice(-2, None))]
    method = getattr(ia, name)(model, model[1])
    batched = method.attribute(x, neurons, **kwargs)
    assert batched.shape == (4, 3, 2, 6, 6)
    for k, n in enumerate(neurons):
        single = method.attribute(x, n, **kwargs)
        assert single.abs().sum() > 0
        torch.testing.assert_close(batched[k], single, atol=1e-10, rtol=1e-8)


def test_neuron_list_with_slices_on_internal_batches_and_bad_entries():
    model = _mlp()
    x = torch.randn(5, 5, dtype=D)
    neurons = [(slice(0, 3),), 4, (slice(2, None),)]
    method = ia.NeuronIntegratedGradients(model, model[2])
    batched = method.attribute(x, neurons, n_steps=6, internal_batch_size=7)
    for k, n in enumerate(neurons):
        torch.testing.assert_close(batched[k], method.attribute(x, n, n_steps=6), atol=1e-10, rtol=1e-8)
    with pytest.raises(IntellegoError, match=r"neuron_selector \(9,\) is out of range"):
        method.attribute(x, [(slice(0, 2),), 9])
    with pytest.raises(IntellegoError, match="not callables"):
        method.attribute(x, [(slice(0, 2),), lambda v: v[:, 0]])
