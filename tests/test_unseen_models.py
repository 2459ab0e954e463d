"""Every applicable public method on architectures the library was not tuned on (see ``_unseen_models``).

Per (architecture, method): it runs, returns Captum's structure/shape/dtype, leaves the model as found, satisfies
an axiom where one applies, and equals Captum in float64 where Captum runs correctly. Where Captum errs or is
silently wrong on these models, a ``test_captum_*`` test pins what Captum does.

Skipped combinations and why:
- token-id models (encoder, lstm, gru): input-gradient, backward-rule and input-level neuron/CAM methods need float
  inputs; they are run at the embedding layer (layer methods) or by perturbing token ids.
- CAM methods need spatial layer outputs: only the conv nets (resnet, vgg, 1-D ts).
- LRP: no rule for LayerNorm (ViT), Softplus (scalar) and Tanh (tuple/dict) in either library (both raise).
- tuple/dict-output models: run through ``first(model)`` as Captum users write it; rule methods that need an
  ``nn.Module`` (LRP in both libraries, every rule method in Captum) are skipped there.
"""

from __future__ import annotations

import copy
import warnings

import captum.attr as ca
import pytest
import torch

import _unseen_models as U
import intellego.attr as ia
from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError

D = torch.float64
TEXT = ("encoder", "lstm", "gru")
CONV = ("resnet", "vgg", "ts")
LAYER = {"resnet": lambda m: m.layer3, "vgg": lambda m: m.features[3], "vit": lambda m: m.blocks[0],
         "encoder": lambda m: m.embedding, "lstm": lambda m: m.embedding, "gru": lambda m: m.embedding,
         "tuple": lambda m: m.body, "dict": lambda m: m.body, "scalar": lambda m: m.net[0], "ts": lambda m: m.conv2}
NEURON = {"resnet": (0, 1, 1), "vgg": (1, 1, 1), "vit": (0, 1), "encoder": (1, 2), "lstm": (1, 2), "gru": (1, 2),
          "tuple": (2,), "dict": (2,), "scalar": (3,), "ts": (1, 3)}
ARCHS = list(LAYER)


def _mask(x):
    return (torch.arange(x[0].numel()) % 4).reshape(x.shape[1:]).unsqueeze(0)


def _bl(x):
    return torch.cat([torch.zeros_like(x[:1]), x[:1] * 0.5])


# name -> (make(lib, forward, layer), call(attr, x, target, arch), applies-to, deterministic)
M = {
    "Saliency": (lambda L, f, ly: L.Saliency(f), lambda a, x, t, k: a.attribute(x, target=t), "float"),
    "InputXGradient": (lambda L, f, ly: L.InputXGradient(f), lambda a, x, t, k: a.attribute(x, target=t), "float"),
    "IntegratedGradients": (lambda L, f, ly: L.IntegratedGradients(f),
                            lambda a, x, t, k: a.attribute(x, target=t, n_steps=8), "float"),
    "DeepLift": (lambda L, f, ly: L.DeepLift(f), lambda a, x, t, k: a.attribute(x, target=t), "rule"),
    "DeepLiftShap": (lambda L, f, ly: L.DeepLiftShap(f), lambda a, x, t, k: a.attribute(x, _bl(x), target=t), "rule"),
    "GuidedBackprop": (lambda L, f, ly: L.GuidedBackprop(f), lambda a, x, t, k: a.attribute(x, target=t), "rule"),
    "Deconvolution": (lambda L, f, ly: L.Deconvolution(f), lambda a, x, t, k: a.attribute(x, target=t), "rule"),
    "LRP": (lambda L, f, ly: L.LRP(f), lambda a, x, t, k: a.attribute(x, target=t), "lrp"),
    "FeatureAblation": (lambda L, f, ly: L.FeatureAblation(f), lambda a, x, t, k: a.attribute(x, target=t), "any"),
    "Occlusion": (lambda L, f, ly: L.Occlusion(f),
                  lambda a, x, t, k: a.attribute(x, (1,) * (x.dim() - 1), target=t), "any"),
    "ShapleyValues": (lambda L, f, ly: L.ShapleyValues(f),
                      lambda a, x, t, k: a.attribute(x, target=t, feature_mask=_mask(x)), "any"),
    "LayerActivation": (lambda L, f, ly: L.LayerActivation(f, ly), lambda a, x, t, k: a.attribute(x), "any"),
    "LayerGradientXActivation": (lambda L, f, ly: L.LayerGradientXActivation(f, ly),
                                 lambda a, x, t, k: a.attribute(x, target=t), "any"),
    "LayerGradCam": (lambda L, f, ly: L.LayerGradCam(f, ly), lambda a, x, t, k: a.attribute(x, target=t), "cam"),
    "InternalInfluence": (lambda L, f, ly: L.InternalInfluence(f, ly),
                          lambda a, x, t, k: a.attribute(x, target=t, n_steps=8), "float"),
    "LayerConductance": (lambda L, f, ly: L.LayerConductance(f, ly),
                         lambda a, x, t, k: a.attribute(x, target=t, n_steps=8), "float"),
    "LayerIntegratedGradients": (lambda L, f, ly: L.LayerIntegratedGradients(f, ly),
                                 lambda a, x, t, k: a.attribute(x, target=t, n_steps=8), "any"),
    "LayerDeepLift": (lambda L, f, ly: L.LayerDeepLift(f, ly), lambda a, x, t, k: a.attribute(x, target=t), "rule"),
    "LayerFeatureAblation": (lambda L, f, ly: L.LayerFeatureAblation(f, ly),
                             lambda a, x, t, k: a.attribute(x, target=t), "any"),
    "LayerLRP": (lambda L, f, ly: L.LayerLRP(f, ly), lambda a, x, t, k: a.attribute(x, target=t), "lrp"),
    "GuidedGradCam": (lambda L, f, ly: L.GuidedGradCam(f, ly), lambda a, x, t, k: a.attribute(x, target=t), "cam"),
    "NeuronGradient": (lambda L, f, ly: L.NeuronGradient(f, ly), lambda a, x, t, k: a.attribute(x, NEURON[k]), "float"),
    "NeuronIntegratedGradients": (lambda L, f, ly: L.NeuronIntegratedGradients(f, ly),
                                  lambda a, x, t, k: a.attribute(x, NEURON[k], n_steps=8), "float"),
    "NeuronDeepLift": (lambda L, f, ly: L.NeuronDeepLift(f, ly), lambda a, x, t, k: a.attribute(x, NEURON[k]), "rule"),
    "NeuronGuidedBackprop": (lambda L, f, ly: L.NeuronGuidedBackprop(f, ly),
                             lambda a, x, t, k: a.attribute(x, NEURON[k]), "rule"),
    "NeuronDeconvolution": (lambda L, f, ly: L.NeuronDeconvolution(f, ly),
                            lambda a, x, t, k: a.attribute(x, NEURON[k]), "rule"),
    "NeuronFeatureAblation": (lambda L, f, ly: L.NeuronFeatureAblation(f, ly),
                              lambda a, x, t, k: a.attribute(x, NEURON[k]), "any"),
    # NeuronConductance is checked against a slow oracle below (Captum's step layout differs on smooth models).
}

# Where Captum fails or is wrong on these models (pinned in the test_captum_* tests below): no parity there.
CAPTUM_BROKEN = {
    ("resnet", "DeepLift"), ("resnet", "DeepLiftShap"), ("resnet", "LayerDeepLift"), ("resnet", "NeuronDeepLift"),
    ("resnet", "LayerLRP"), ("vgg", "LayerIntegratedGradients"), ("vgg", "DeepLift"), ("vgg", "DeepLiftShap"),
    ("vgg", "LayerDeepLift"), ("ts", "DeepLiftShap"), ("ts", "LRP"), ("ts", "LayerLRP"),
    ("resnet", "LRP"),  # Captum is not conservative there (test_captum_lrp_not_conservative_on_resnet)
}
# Captum returns float32 attributions for float64 inputs (its total is allocated in the default dtype).
CAPTUM_FLOAT32 = {"Occlusion", "ShapleyValues"}
# Both libraries are off on the ViT's attention/LayerNorm/GELU (see /work/briefs/rules_findings.md).
RULES_PENDING = {("vit", "DeepLift"), ("vit", "DeepLiftShap"), ("vit", "LayerDeepLift"), ("vit", "NeuronDeepLift")}


def _applies(arch: str, kind: str) -> bool:
    if arch in TEXT:
        return kind == "any"
    if kind == "cam":
        return arch in CONV
    if kind == "lrp":
        return arch in ("resnet", "vgg", "ts")
    # rule methods on tuple/dict models: Captum needs an nn.Module; ours runs them (test_tuple_and_dict_models)
    return not (kind == "rule" and arch in ("tuple", "dict"))


def _target(arch: str):
    return None if arch == "scalar" else 1


def _forward(arch, model):
    return U.first(model) if arch in ("tuple", "dict") else model


def _compare(ours, theirs, tol=1e-7, same_dtype=True):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            _compare(o, t, tol, same_dtype)
        return
    assert isinstance(ours, torch.Tensor)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype or not same_dtype
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=tol, rtol=1e-6)


PAIRS = [(a, n) for a in ARCHS for n, (_, _, kind) in M.items() if _applies(a, kind)]


@pytest.mark.parametrize(("arch", "name"), PAIRS, ids=[f"{a}-{n}" for a, n in PAIRS])
def test_runs_clean_and_matches_captum(arch, name):
    make, call, _ = M[name]
    model, x = U.build(arch), U.inputs(arch)
    layer = LAYER[arch](model)
    before = snapshot(model, (x,))
    ours = call(make(ia, _forward(arch, model), layer), x, _target(arch), arch)
    assert_same(before, snapshot(model, (x,)))
    out = ours if isinstance(ours, torch.Tensor) else ours[0]
    assert out.dtype == (layer.weight.dtype if name == "LayerActivation" and arch in TEXT else D)
    assert torch.isfinite(out).all()
    if (arch, name) in CAPTUM_BROKEN or (arch, name) in RULES_PENDING:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = call(make(ca, _forward(arch, model), layer), x, _target(arch), arch)
    if name in CAPTUM_FLOAT32:
        assert theirs.dtype == torch.float32  # pinned: test_captum_float32_results_for_float64_inputs
        tol = 5e-6 * (1 + theirs.abs().max().item())
    else:
        tol = 1e-7 if "Integrated" in name or "Influence" in name or "Neuron" in name else 1e-9
    _compare(ours, theirs, tol=tol, same_dtype=name not in CAPTUM_FLOAT32)


# ----- axioms ---------------------------------------------------------------------------------------------------

def _score(model, x, arch, t=1):
    out = _forward(arch, model)(x)
    return out if out.dim() == 1 else out[:, t]


@pytest.mark.parametrize("arch", ["resnet", "vgg", "vit", "ts", "scalar", "tuple"])
def test_integrated_gradients_completeness(arch):
    model, x = U.build(arch), U.inputs(arch)
    attr, delta = ia.IntegratedGradients(_forward(arch, model)).attribute(
        x, target=_target(arch), n_steps=300, return_convergence_delta=True)
    gap = _score(model, x, arch) - _score(model, torch.zeros_like(x), arch)
    torch.testing.assert_close(attr.flatten(1).sum(1), gap, atol=2e-3 * (1 + gap.abs().max().item()), rtol=0)
    assert delta.abs().max() < 2e-3 * (1 + gap.abs().max().item())


@pytest.mark.parametrize("arch", TEXT)
def test_layer_integrated_gradients_completeness_on_embeddings(arch):
    model, x = U.build(arch), U.inputs(arch)
    attr, delta = ia.LayerIntegratedGradients(model, model.embedding).attribute(
        x, baselines=torch.zeros_like(x), target=1, n_steps=200, return_convergence_delta=True)
    assert attr.shape == (*x.shape, model.embedding.embedding_dim)
    assert delta.abs().max() < 1e-3


@pytest.mark.parametrize("arch", ["resnet", "vgg", "ts", "scalar"])
@pytest.mark.parametrize("name", ["DeepLift", "LayerDeepLift", "DeepLiftShap"])
def test_deeplift_completeness(arch, name):
    model, x = U.build(arch), U.inputs(arch)
    t = _target(arch)
    if name == "DeepLift":
        _, delta = ia.DeepLift(model).attribute(x, target=t, return_convergence_delta=True)
    elif name == "LayerDeepLift":
        _, delta = ia.LayerDeepLift(model, LAYER[arch](model)).attribute(x, target=t, return_convergence_delta=True)
    else:
        _, delta = ia.DeepLiftShap(model).attribute(x, _bl(x), target=t, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10


@pytest.mark.xfail(strict=True, reason="rule engine: DeepLift through attention products, LayerNorm and GELU is not "
                   "complete (delta ~0.2); /work/briefs/rules_findings.md")
def test_deeplift_completeness_vit():
    model, x = U.build("vit"), U.inputs("vit")
    _, delta = ia.DeepLift(model).attribute(x, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_shapley_efficiency(arch):
    model, x = U.build(arch), U.inputs(arch)
    base = torch.zeros_like(x)
    exact = ia.ShapleyValues(_forward(arch, model)).attribute(x, base, target=_target(arch), feature_mask=_mask(x))
    gap = _score(model, x, arch) - _score(model, base, arch)
    one_per_feature = torch.arange(4)  # a group's value is repeated on each of its elements; mask is i % 4
    torch.testing.assert_close(exact.flatten(1)[:, one_per_feature].sum(1).double(), gap.double(), atol=1e-9, rtol=0)
    sampled = ia.ShapleyValueSampling(_forward(arch, model)).attribute(
        x, base, target=_target(arch), n_samples=3, feature_mask=_mask(x))
    torch.testing.assert_close(sampled.flatten(1)[:, one_per_feature].sum(1).double(), gap.double(), atol=1e-9,
                               rtol=0)


@pytest.mark.parametrize("arch", ["ts", "vit"])
def test_neuron_conductance_against_oracle(arch):
    """Riemann midpoint sum of dF/dneuron * dneuron/dx along the straight path, 400 steps."""
    model, x = U.build(arch), U.inputs(arch)
    layer, neuron, n = LAYER[arch](model), NEURON[arch], 400
    total = torch.zeros_like(x)
    seen: dict[str, torch.Tensor] = {}
    for alpha in (torch.arange(n, dtype=D) + 0.5) / n:
        point = (alpha * x).requires_grad_(True)
        handle = layer.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
        out = model(point)[:, 1]
        handle.remove()
        act = seen["a"]
        d_out = torch.autograd.grad(out.sum(), act, retain_graph=True)[0][(slice(None), *neuron)]
        d_neuron = torch.autograd.grad(act[(slice(None), *neuron)].sum(), point)[0]
        total += d_out.reshape(-1, *[1] * (x.dim() - 1)) * d_neuron
    ours = ia.NeuronConductance(model, layer).attribute(x, neuron, target=1, n_steps=100)
    torch.testing.assert_close(ours, total * x / n, atol=1e-4, rtol=0)


# ----- methods without a Captum counterpart or stochastic: structure and hygiene ----------------------------------

def _stochastic(arch, model, x, layer):
    t, g = _target(arch), torch.Generator().manual_seed(0)
    f = _forward(arch, model)
    out = {
        "ShapleyValueSampling": lambda: ia.ShapleyValueSampling(f).attribute(x, target=t, n_samples=2),
        "FeaturePermutation": lambda: ia.FeaturePermutation(f).attribute(x, target=t),
        "KernelShap": lambda: ia.KernelShap(f).attribute(x, target=t, n_samples=20, feature_mask=_mask(x)),
        "Lime": lambda: ia.Lime(f).attribute(x, target=t, n_samples=20, feature_mask=_mask(x)),
        "LayerFeaturePermutation": lambda: ia.LayerFeaturePermutation(f, layer).attribute(x, target=t),
    }
    if arch not in TEXT:
        out.update({
            "GradientShap": lambda: ia.GradientShap(f).attribute(x, _bl(x), target=t, n_samples=3, generator=g),
            "NoiseTunnel": lambda: ia.NoiseTunnel(ia.Saliency(f)).attribute(x, target=t, nt_samples=3, generator=g),
            "LayerGradientShap": lambda: ia.LayerGradientShap(f, layer).attribute(x, _bl(x), target=t, n_samples=3),
            "NeuronGradientShap": lambda: ia.NeuronGradientShap(f, layer).attribute(x, NEURON[arch], _bl(x)),
        })
    if arch in CONV:
        for cam in ("LayerGradCamPlusPlus", "LayerXGradCam", "LayerHiResCam", "LayerCam", "LayerScoreCam"):
            out[cam] = (lambda c: lambda: getattr(ia, c)(model, layer).attribute(x, target=t))(cam)
        out["LayerEigenCam"] = lambda: ia.LayerEigenCam(model, layer).attribute(x)
    if arch in ("resnet", "vgg", "ts"):
        out["LayerDeepLiftShap"] = lambda: ia.LayerDeepLiftShap(model, layer).attribute(x, _bl(x), target=t)
        out["NeuronDeepLiftShap"] = lambda: ia.NeuronDeepLiftShap(model, layer).attribute(x, NEURON[arch], _bl(x))
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_other_methods_run_clean(arch):
    model, x = U.build(arch), U.inputs(arch)
    layer = LAYER[arch](model)
    before = snapshot(model, (x,))
    for name, run in _stochastic(arch, model, x, layer).items():
        out = run()
        assert isinstance(out, torch.Tensor), name
        assert torch.isfinite(out).all(), name
        if "Cam" in name:
            spatial = layer(U.build(arch).features[:3](x)).shape[2:] if arch == "vgg" else out.shape[2:]
            assert out.shape[:2] == (x.shape[0], 1) and out.shape[2:] == spatial, name
        elif name.startswith("Layer"):
            assert out.shape[0] == x.shape[0], name
        else:
            assert out.shape == x.shape, name
        assert_same(before, snapshot(model, (x,)))


# ----- settings reviewers try -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["resnet", "vgg", "ts"])
def test_train_mode_keeps_batchnorm_statistics_and_matches_captum(arch):
    model, x = U.build(arch), U.inputs(arch, batch=3)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # deterministic forward so the two libraries can be compared
    before = snapshot(model, (x,))
    for name in ("Saliency", "IntegratedGradients", "FeatureAblation", "LayerConductance", "GuidedBackprop"):
        make, call, _ = M[name]
        ours = call(make(ia, model, LAYER[arch](model)), x, 1, arch)
        assert_same(before, snapshot(model, (x,)))
        if name == "Saliency":  # Captum on a copy: it changes the running statistics
            _compare(ours, ca.Saliency(copy.deepcopy(model)).attribute(x, target=1))


def test_captum_changes_batchnorm_statistics_in_train_mode():
    """Captum runs the model's forward in train mode as is: BatchNorm running statistics absorb the call's
    inputs (for IG, every path point), so the model is changed after attribution. Ours restores them."""
    model, x = U.build("resnet"), U.inputs("resnet", batch=3)
    model.train()
    mean = model.bn1.running_mean.clone()
    ca.IntegratedGradients(model).attribute(x, target=1, n_steps=4)
    assert not torch.equal(mean, model.bn1.running_mean)
    model.bn1.running_mean.copy_(mean)
    ia.IntegratedGradients(model).attribute(x, target=1, n_steps=4)
    assert torch.equal(mean, model.bn1.running_mean)


@pytest.mark.parametrize("arch", ["resnet", "vit", "ts"])
def test_float32_and_batch_of_one(arch):
    model, x = U.build(arch, torch.float32), U.inputs(arch, batch=3, dtype=torch.float32)
    for name in ("Saliency", "IntegratedGradients", "DeepLift", "LayerGradientXActivation", "FeatureAblation"):
        make, call, _ = M[name]
        method = make(ia, model, LAYER[arch](model))
        full = call(method, x, 1, arch)
        assert full.dtype == torch.float32
        ones = torch.cat([call(method, x[i:i + 1], 1, arch) for i in range(3)])
        # float32 rounding, scaled to the map: DeepLift's exact rules for LayerNorm and attention divide by
        # input differences (float64 agrees to 1e-13)
        torch.testing.assert_close(full, ones, atol=1e-5 * (1 + full.abs().max().item()), rtol=1e-4)


@pytest.mark.slow
def test_large_batch_matches_chunks():
    model = U.build("resnet", torch.float32)
    x = U.inputs("resnet", batch=256, dtype=torch.float32)
    ig = ia.IntegratedGradients(model)
    full = ig.attribute(x, target=1, n_steps=16)
    part = torch.cat([ig.attribute(x[i:i + 64], target=1, n_steps=16) for i in range(0, 256, 64)])
    torch.testing.assert_close(full, part, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["tuple", "dict"])
def test_tuple_and_dict_models(arch):
    model, x = U.build(arch), U.inputs(arch)
    with pytest.raises(IntellegoError, match=r"model\(x\)\[0\]"):
        ia.Saliency(model).attribute(x, target=1)
    f = U.first(model)
    for name in ("DeepLift", "GuidedBackprop"):  # ours accepts a plain function for rule methods
        out = getattr(ia, name)(f).attribute(x, target=1)
        assert out.shape == x.shape
    _, delta = ia.DeepLift(f).attribute(x, target=1, return_convergence_delta=True)
    assert delta.abs().max() > 0  # Tanh is smooth: DeepLift's rescale is exact only per unit, not along a path


def test_captum_tuple_output_model_error():
    """Captum on a model returning a tuple fails deep inside with ``AttributeError: 'tuple' object has no
    attribute 'shape'``; ours raises IntellegoError naming the fix."""
    model, x = U.build("tuple"), U.inputs("tuple")
    with pytest.raises(AttributeError, match="tuple"):
        ca.Saliency(model).attribute(x, target=1)


def test_scalar_output_target_none():
    model, x = U.build("scalar"), U.inputs("scalar")
    ours = ia.IntegratedGradients(model).attribute(x, n_steps=8)
    _compare(ours, ca.IntegratedGradients(model).attribute(x, n_steps=8))
    with pytest.raises(IntellegoError, match="target 0"):
        ia.Saliency(model).attribute(x, target=0)


def test_bad_inputs_raise_clear_errors():
    model, x = U.build("resnet"), U.inputs("resnet")
    lstm, tokens = U.build("lstm"), U.inputs("lstm")
    with pytest.raises(IntellegoError, match="out of range"):
        ia.Saliency(model).attribute(x, target=99)
    with pytest.raises(IntellegoError, match="baselines"):
        ia.IntegratedGradients(model).attribute(x, torch.zeros(3, 3, 16, 16, dtype=D), target=1)
    with pytest.raises(IntellegoError, match="embedding layer"):
        ia.IntegratedGradients(lstm).attribute(tokens, target=1)
    with pytest.raises(IntellegoError, match="not a submodule"):
        ia.LayerGradCam(model, torch.nn.Conv2d(1, 1, 1)).attribute(x, target=1)
    with pytest.raises(IntellegoError, match="neuron_selector"):
        ia.NeuronGradient(model, model.layer4).attribute(x, (0, 9, 9))


# ----- where Captum errs or is silently wrong on these models -----------------------------------------------------

def test_captum_deeplift_fails_on_reused_inplace_relu():
    """torchvision's BasicBlock calls one ``nn.ReLU(inplace=True)`` twice: Captum's DeepLift (and LayerDeepLift,
    DeepLiftShap, NeuronDeepLift) raise RuntimeError "A Module ReLU(inplace=True) was detected that does not
    contain some of the input/output attributes"; ours runs and is complete (test_deeplift_completeness)."""
    model, x = U.build("resnet"), U.inputs("resnet")
    with pytest.raises(RuntimeError, match="inplace"):
        ca.DeepLift(model).attribute(x, target=1)


def test_captum_layer_ig_fails_before_inplace_relu():
    """VGG's conv is followed by ``ReLU(inplace=True)``: Captum's LayerIntegratedGradients substitutes the conv
    output with a leaf that requires grad and the in-place ReLU then raises RuntimeError ("a leaf Variable that
    requires grad is being used in an in-place operation")."""
    model, x = U.build("vgg"), U.inputs("vgg")
    with pytest.raises(RuntimeError, match="in-place"):
        ca.LayerIntegratedGradients(model, model.features[3]).attribute(x, target=1, n_steps=8)
    ours, delta = ia.LayerIntegratedGradients(model, model.features[3]).attribute(
        x, target=1, n_steps=200, return_convergence_delta=True)
    assert delta.abs().max() < 1e-3


@pytest.mark.parametrize(("arch", "name"), [("vgg", "DeepLift"), ("vgg", "LayerDeepLift"), ("ts", "DeepLiftShap")])
def test_captum_deeplift_incomplete_with_maxpool(arch, name):
    """On nets with MaxPool (VGG 2-D, time-series 1-D) Captum's DeepLift / DeepLiftShap attributions do not sum to
    f(x) - f(baseline) (off by ~3e-3 and ~8e-3); ours does to 1e-10 (test_deeplift_completeness)."""
    model, x = U.build(arch), U.inputs(arch)
    if name == "DeepLift":
        _, delta = ca.DeepLift(model).attribute(x, target=1, return_convergence_delta=True)
    elif name == "LayerDeepLift":
        _, delta = ca.LayerDeepLift(model, LAYER[arch](model)).attribute(x, target=1, return_convergence_delta=True)
    else:
        _, delta = ca.DeepLiftShap(model).attribute(x, _bl(x), target=1, return_convergence_delta=True)
    assert delta.abs().max() > 1e-3


@pytest.mark.parametrize("name", ["Occlusion", "ShapleyValues"])
def test_captum_float32_results_for_float64_inputs(name):
    """Captum's Occlusion and ShapleyValues return float32 attributions for a float64 model and input (values
    rounded to float32); ours keeps float64."""
    model, x = U.build("ts"), U.inputs("ts")
    make, call, _ = M[name]
    assert call(make(ca, model, None), x, 1, "ts").dtype == torch.float32
    assert call(make(ia, model, None), x, 1, "ts").dtype == D


def test_captum_lrp_gaps():
    """Captum's LRP has no rule for Conv1d (TypeError "has no rule defined") and its LayerLRP on a ResNet stage
    (an ``nn.Sequential``) raises AttributeError "'Sequential' object has no attribute 'rule'"; ours runs both."""
    ts, xt = U.build("ts"), U.inputs("ts")
    with pytest.raises(TypeError, match="no rule"):
        ca.LRP(ts).attribute(xt, target=1)
    assert ia.LRP(ts).attribute(xt, target=1).shape == xt.shape
    resnet, xr = U.build("resnet"), U.inputs("resnet")
    with pytest.raises(AttributeError, match="rule"):
        ca.LayerLRP(resnet, resnet.layer3).attribute(xr, target=1)


def test_captum_lrp_not_conservative_on_resnet():
    """On a bias-free ResNet (zero BN shifts and means, zero fc bias) LRP-epsilon must conserve relevance: the
    input relevances sum to the target logit. Ours does (to 1e-6); Captum's sums are off by orders of magnitude
    (-3514 and -90864 for logits -0.012 and -0.034): its rules do not see the residual ``out += identity`` and
    the in-place ReLU module called twice per block."""
    model, x = U.build("resnet"), U.inputs("resnet")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.zero_()
                m.running_mean.zero_()
        model.fc.bias.zero_()
    logit = model(x)[:, 1].detach()
    ours = ia.LRP(model).attribute(x, target=1).flatten(1).sum(1)
    torch.testing.assert_close(ours, logit, atol=1e-6, rtol=1e-4)
    theirs = ca.LRP(model).attribute(x, target=1).flatten(1).sum(1)
    assert ((theirs - logit).abs() > 1.0).all()
