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
    for name in ("LayerGradCamPlusPlus", "LayerHiResCam", "LayerEigenCam", "LayerScoreCam"):
        cam = getattr(ia, name)(r, r.layer3)
        out.append(Case(sec, name, "batch 4, layer3 (no Captum equivalent)", lambda c=cam: c.attribute(x, target=0),
                        None, floor_backward(r, x)))
    return out


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
