"""Layer, neuron and CAM methods on the small ResNet and the text model; multi-neuron call vs Captum's loop."""

from __future__ import annotations

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward, floor_forward
from .models import resnet, text


def _pair(section, name, setting, make, call, floor, note=""):
    ours, theirs = make(ia), make(ca)
    return Case(section, name, setting, lambda: call(ours), lambda: call(theirs), floor, note=note)


def _resnet_cases(quick: bool) -> list[Case]:
    torch.manual_seed(0)
    r = resnet()
    x = torch.randn(4, 3, 32, 32)
    base = torch.zeros_like(x)
    steps = 10 if quick else 50
    xs = x.repeat(steps, 1, 1, 1)
    layer = r.layer2
    sec = "Layer and neuron methods: small ResNet, 3x32x32, batch 4, layer2"
    out = [
        _pair(sec, "LayerActivation", "batch 4", lambda m: m.LayerActivation(r, layer),
              lambda a: a.attribute(x), floor_forward(r, x)),
        _pair(sec, "LayerGradientXActivation", "batch 4", lambda m: m.LayerGradientXActivation(r, layer),
              lambda a: a.attribute(x, target=0), floor_backward(r, x)),
        _pair(sec, "LayerGradCam", "batch 4", lambda m: m.LayerGradCam(r, layer),
              lambda a: a.attribute(x, target=0), floor_backward(r, x)),
        _pair(sec, "InternalInfluence", f"n_steps={steps}", lambda m: m.InternalInfluence(r, layer),
              lambda a: a.attribute(x, base, target=0, n_steps=steps), floor_backward(r, xs)),
        _pair(sec, "LayerConductance", f"n_steps={steps}", lambda m: m.LayerConductance(r, layer),
              lambda a: a.attribute(x, base, target=0, n_steps=steps), floor_backward(r, xs)),
        _pair(sec, "LayerIntegratedGradients", f"n_steps={steps}", lambda m: m.LayerIntegratedGradients(r, layer),
              lambda a: a.attribute(x, base, target=0, n_steps=steps), floor_backward(r, xs)),
        _pair(sec, "LayerGradientShap", "n_samples=20", lambda m: m.LayerGradientShap(r, layer),
              lambda a: a.attribute(x, torch.zeros(4, 3, 32, 32), n_samples=20, target=0),
              floor_backward(r, x.repeat(20, 1, 1, 1))),
        _pair(sec, "NeuronGradient", "neuron (3, 4, 4)", lambda m: m.NeuronGradient(r, layer),
              lambda a: a.attribute(x, (3, 4, 4)), floor_backward(r, x)),
        _pair(sec, "NeuronIntegratedGradients", f"n_steps={steps}", lambda m: m.NeuronIntegratedGradients(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), base, n_steps=steps), floor_backward(r, xs)),
        _pair(sec, "NeuronConductance", f"n_steps={steps}", lambda m: m.NeuronConductance(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), base, target=0, n_steps=steps), floor_backward(r, xs)),
        _pair(sec, "NeuronGradientShap", "n_samples=20", lambda m: m.NeuronGradientShap(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), torch.zeros(4, 3, 32, 32), n_samples=20),
              floor_backward(r, x.repeat(20, 1, 1, 1))),
    ]
    out += _rule_and_perturbation_cases(sec, r, layer, x, base)
    for name in ("LayerGradCamPlusPlus", "LayerHiResCam", "LayerEigenCam"):
        cam = getattr(ia, name)(r, r.layer3)
        out.append(Case(sec, name, "batch 4, layer3 (no Captum equivalent)", lambda c=cam: c.attribute(x, target=0),
                        None, floor_backward(r, x)))
    score_cam = ia.LayerScoreCam(r, r.layer3)
    channels = 64  # layer3's output channels: ScoreCAM runs one masked forward per channel and example
    out.append(Case(sec, "LayerScoreCam", "batch 4, layer3 (no Captum equivalent)",
                    lambda: score_cam.attribute(x, target=0), None, floor_forward(r, x.repeat(channels, 1, 1, 1)),
                    note="floor: one forward over the 64 masked copies of each example"))
    return out


def _rule_and_perturbation_cases(sec, r, layer, x, base) -> list[Case]:
    refs = torch.randn(3, 3, 32, 32) * 0.1
    chan = torch.arange(32).reshape(1, 32, 1, 1).expand(1, 32, 16, 16)
    patches = (torch.arange(32).reshape(1, 1, 32, 1) // 8 * 4 + torch.arange(32).reshape(1, 1, 1, 32) // 8)
    patches = patches.expand(1, 3, 32, 32)

    lrp = ia.LayerLRP(r, layer)

    def score(t: torch.Tensor) -> torch.Tensor:
        return r(t)[:, 0]

    return [
        _pair(sec, "LayerDeepLift", "batch 4", lambda m: m.LayerDeepLift(r, layer),
              lambda a: a.attribute(x, base, target=0), floor_backward(r, torch.cat([x, base]))),
        _pair(sec, "LayerDeepLiftShap", "3 baselines", lambda m: m.LayerDeepLiftShap(r, layer),
              lambda a: a.attribute(x, refs, target=0), floor_backward(r, x.repeat(6, 1, 1, 1))),
        _pair(sec, "GuidedGradCam", "batch 4", lambda m: m.GuidedGradCam(r, layer),
              lambda a: a.attribute(x, target=0), floor_backward(r, x.repeat(2, 1, 1, 1))),
        _pair(sec, "NeuronDeepLift", "neuron (3, 4, 4)", lambda m: m.NeuronDeepLift(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), base), floor_backward(r, torch.cat([x, base]))),
        _pair(sec, "NeuronDeepLiftShap", "3 baselines", lambda m: m.NeuronDeepLiftShap(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), refs), floor_backward(r, x.repeat(6, 1, 1, 1))),
        _pair(sec, "NeuronGuidedBackprop", "neuron (3, 4, 4)", lambda m: m.NeuronGuidedBackprop(r, layer),
              lambda a: a.attribute(x, (3, 4, 4)), floor_backward(r, x)),
        _pair(sec, "NeuronDeconvolution", "neuron (3, 4, 4)", lambda m: m.NeuronDeconvolution(r, layer),
              lambda a: a.attribute(x, (3, 4, 4)), floor_backward(r, x)),
        _pair(sec, "LayerFeatureAblation", "32 channel groups", lambda m: m.LayerFeatureAblation(r, layer),
              lambda a: a.attribute(x, target=0, layer_mask=chan), floor_forward(r, x.repeat(32, 1, 1, 1)),
              note="Captum at its default perturbations_per_eval=1"),
        _pair(sec, "LayerFeaturePermutation", "32 channel groups", lambda m: m.LayerFeaturePermutation(score, layer),
              lambda a: a.attribute(x, layer_mask=chan), floor_forward(r, x.repeat(32, 1, 1, 1)),
              note="score selected in the model (Captum's LayerFeaturePermutation fails with target=)"),
        _pair(sec, "NeuronFeatureAblation", "16 patches of 8x8", lambda m: m.NeuronFeatureAblation(r, layer),
              lambda a: a.attribute(x, (3, 4, 4), feature_mask=patches), floor_forward(r, x.repeat(16, 1, 1, 1))),
        Case(sec, "LayerLRP", "batch 4", lambda: lrp.attribute(x, target=0), None, floor_backward(r, x),
             note="Captum's LayerLRP raises on this model (no rule for the empty shortcut Sequential)"),
    ]


def _multi_neuron_cases(quick: bool) -> list[Case]:
    torch.manual_seed(0)
    r = resnet()
    x = torch.randn(4, 3, 32, 32)
    k = 8 if quick else 32
    neurons = [(c % 32, (c * 3) % 16, (c * 5) % 16) for c in range(k)]
    sec = f"Multi-neuron: {k} neurons of ResNet layer2, batch 4"
    ours_g, theirs_g = ia.NeuronGradient(r, r.layer2), ca.NeuronGradient(r, r.layer2)
    steps = 10
    ours_i, theirs_i = ia.NeuronIntegratedGradients(r, r.layer2), ca.NeuronIntegratedGradients(r, r.layer2)
    return [
        Case(sec, "NeuronGradient", f"{k} neurons in one call vs Captum loop",
             lambda: ours_g.attribute(x, neurons), lambda: [theirs_g.attribute(x, n) for n in neurons],
             floor_backward(r, x.repeat(k, 1, 1, 1)),
             extra={"ours loop": lambda: [ours_g.attribute(x, n) for n in neurons]}),
        Case(sec, "NeuronIntegratedGradients", f"{k} neurons, n_steps={steps}, one call vs Captum loop",
             lambda: ours_i.attribute(x, neurons, n_steps=steps),
             lambda: [theirs_i.attribute(x, n, n_steps=steps) for n in neurons],
             floor_backward(r, x.repeat(k * steps, 1, 1, 1))),
    ]


def _text_cases(quick: bool) -> list[Case]:
    torch.manual_seed(0)
    m = text()
    batch, length = (8, 32) if quick else (16, 64)
    ids = torch.randint(1, 1000, (batch, length))
    ref = torch.zeros_like(ids)
    steps = 10 if quick else 50
    emb = m.embedding
    layer = m.encoder.layers[0]
    sec = f"Layer methods: text model (embedding + 2 transformer layers), {batch}x{length} tokens"

    def from_emb(e: torch.Tensor) -> torch.Tensor:
        return m.fc(m.encoder(e).mean(1))

    with torch.no_grad():
        e, e_ref = emb(ids), emb(ref)

    def floor(n: int):
        e = emb(ids).detach().repeat(n, 1, 1)

        def run():
            leaf = e.detach().requires_grad_(True)
            out = m.fc(m.encoder(leaf).mean(1))
            return torch.autograd.grad(out[:, 1].sum(), leaf)
        return run

    return [
        _pair(sec, "LayerIntegratedGradients", f"embedding, n_steps={steps}",
              lambda mod: mod.LayerIntegratedGradients(m, emb),
              lambda a: a.attribute(ids, ref, target=1, n_steps=steps), floor(steps)),
        _pair(sec, "LayerConductance", f"encoder layer 0, n_steps={steps}",
              lambda mod: mod.LayerConductance(from_emb, layer),
              lambda a: a.attribute(e, e_ref, target=1, n_steps=steps), floor(steps),
              note="model from embeddings (conductance interpolates the inputs)"),
        _pair(sec, "LayerGradientXActivation", "embedding", lambda mod: mod.LayerGradientXActivation(m, emb),
              lambda a: a.attribute(ids, target=1), floor(1)),
        _pair(sec, "LayerActivation", "encoder layer 0", lambda mod: mod.LayerActivation(m, layer),
              lambda a: a.attribute(ids), floor(1)),
    ]


def cases(quick: bool = False) -> list[Case]:
    return _resnet_cases(quick) + _multi_neuron_cases(quick) + _text_cases(quick)
