"""Architectures the library was not tuned on (tests/_unseen_models.py): ResNet18-style, ViT, LSTM text, 1-D conv.

A section per architecture; each method against Captum (``None`` where Captum fails on the model) and the floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward, floor_forward

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import _unseen_models as U  # noqa: E402


def _pair(section, name, setting, make, call, floor, captum=True, note=""):
    ours = make(ia)
    theirs = make(ca) if captum else None
    return Case(section, name, setting, lambda: call(ours), (lambda: call(theirs)) if captum else None, floor,
                note=note)


def _image(arch: str, quick: bool) -> list[Case]:
    m = U.build(arch, torch.float32)
    batch, steps = (8, 10) if quick else (32, 50)
    x = U.inputs(arch, batch=batch, dtype=torch.float32)
    sec = f"Unseen {arch}: 3x{x.shape[-1]}x{x.shape[-1]}, batch {batch}"
    layer = m.layer3 if arch == "resnet" else m.blocks[0]
    out = [
        _pair(sec, "Saliency", "", lambda L: L.Saliency(m), lambda a: a.attribute(x, target=1),
              floor_backward(m, x, 1)),
        _pair(sec, "IntegratedGradients", f"n_steps={steps}", lambda L: L.IntegratedGradients(m),
              lambda a: a.attribute(x, target=1, n_steps=steps), floor_backward(m, x.repeat(steps, 1, 1, 1), 1)),
        _pair(sec, "DeepLift", "", lambda L: L.DeepLift(m), lambda a: a.attribute(x, target=1),
              floor_backward(m, x, 1), captum=arch != "resnet",
              note="Captum raises on the reused in-place ReLU" if arch == "resnet" else ""),
        _pair(sec, "GuidedBackprop", "", lambda L: L.GuidedBackprop(m), lambda a: a.attribute(x, target=1),
              floor_backward(m, x, 1)),
        _pair(sec, "LayerConductance", f"n_steps={steps}", lambda L: L.LayerConductance(m, layer),
              lambda a: a.attribute(x, target=1, n_steps=steps), floor_backward(m, x.repeat(steps, 1, 1, 1), 1)),
        _pair(sec, "Occlusion", "window 3x4x4", lambda L: L.Occlusion(m),
              lambda a: a.attribute(x, (3, 4, 4), strides=(3, 4, 4), target=1),
              floor_forward(m, x.repeat(x[0].numel() // 48, 1, 1, 1))),
    ]
    if arch == "resnet":
        out.append(_pair(sec, "LayerGradCam", "layer3", lambda L: L.LayerGradCam(m, layer),
                         lambda a: a.attribute(x, target=1), floor_backward(m, x, 1)))
    return out


def _text(arch: str, quick: bool) -> list[Case]:
    m = U.build(arch, torch.float32)
    batch, steps = (8, 10) if quick else (64, 50)
    x = U.inputs(arch, batch=batch)
    sec = f"Unseen {arch}: 5 tokens, batch {batch}"
    emb = m.embedding

    def floor_emb(k: int):
        """One forward+backward over k copies, gradient taken at the embedding output (substituted leaf)."""
        e = emb(x).detach().repeat(k, 1, 1)
        def run():
            leaf = e.requires_grad_(True)
            h = emb.register_forward_hook(lambda *_: leaf)
            try:
                out = m(x.repeat(k, 1))[:, 1]
            finally:
                h.remove()
            return torch.autograd.grad(out.sum(), leaf)
        return run

    return [
        _pair(sec, "LayerIntegratedGradients", f"embedding, n_steps={steps}",
              lambda L: L.LayerIntegratedGradients(m, emb), lambda a: a.attribute(x, target=1, n_steps=steps),
              floor_emb(steps)),
        _pair(sec, "LayerGradientXActivation", "embedding", lambda L: L.LayerGradientXActivation(m, emb),
              lambda a: a.attribute(x, target=1), floor_emb(1)),
        _pair(sec, "FeatureAblation", "per token", lambda L: L.FeatureAblation(m),
              lambda a: a.attribute(x, target=1), floor_forward(m, x.repeat(x.shape[1], 1))),
        _pair(sec, "ShapleyValueSampling", "n_samples=5", lambda L: L.ShapleyValueSampling(m),
              lambda a: a.attribute(x, target=1, n_samples=5), floor_forward(m, x.repeat(5 * x.shape[1], 1))),
    ]


def _series(quick: bool) -> list[Case]:
    m = U.build("ts", torch.float32)
    batch, steps = (16, 10) if quick else (128, 50)
    x = U.inputs("ts", batch=batch, dtype=torch.float32)
    sec = f"Unseen 1-D conv time series: 2x16, batch {batch}"
    return [
        _pair(sec, "IntegratedGradients", f"n_steps={steps}", lambda L: L.IntegratedGradients(m),
              lambda a: a.attribute(x, target=1, n_steps=steps), floor_backward(m, x.repeat(steps, 1, 1), 1)),
        _pair(sec, "DeepLift", "", lambda L: L.DeepLift(m), lambda a: a.attribute(x, target=1),
              floor_backward(m, x, 1)),
        _pair(sec, "Occlusion", "window 1x4", lambda L: L.Occlusion(m),
              lambda a: a.attribute(x, (1, 4), strides=(1, 4), target=1), floor_forward(m, x.repeat(8, 1, 1))),
        _pair(sec, "LayerGradCam", "conv2", lambda L: L.LayerGradCam(m, m.conv2),
              lambda a: a.attribute(x, target=1), floor_backward(m, x, 1)),
    ]


def cases(quick: bool = False) -> list[Case]:
    torch.manual_seed(0)
    return [*_image("resnet", quick), *_image("vit", quick), *_text("lstm", quick), *_text("encoder", quick),
            *_series(quick)]
