"""Gradient family: Saliency, InputXGradient, IntegratedGradients, GradientShap, NoiseTunnel."""

from __future__ import annotations

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward
from .models import mlp, resnet


def _pair(section, name, setting, make, call, floor, note=""):
    ours, theirs = make(ia), make(ca)
    return Case(section, name, setting, lambda: call(ours), lambda: call(theirs), floor, note=note)


def cases(quick: bool = False) -> list[Case]:
    torch.manual_seed(0)
    out: list[Case] = []
    r = resnet()
    x = torch.randn(4, 3, 32, 32)
    steps = 10 if quick else 50
    xs = x.repeat(steps, 1, 1, 1)
    sec = "Gradient methods: small ResNet, 3x32x32, batch 4"
    out.append(_pair(sec, "Saliency", "batch 4", lambda m: m.Saliency(r),
                     lambda a: a.attribute(x, target=0), floor_backward(r, x)))
    out.append(_pair(sec, "InputXGradient", "batch 4", lambda m: m.InputXGradient(r),
                     lambda a: a.attribute(x, target=0), floor_backward(r, x)))
    out.append(_pair(sec, "IntegratedGradients", f"n_steps={steps}", lambda m: m.IntegratedGradients(r),
                     lambda a: a.attribute(x, target=0, n_steps=steps), floor_backward(r, xs)))
    refs = torch.randn(8, 3, 32, 32)
    out.append(_pair(sec, "GradientShap", "n_samples=20", lambda m: m.GradientShap(r),
                     lambda a: a.attribute(x, refs, target=0, n_samples=20), floor_backward(r, x.repeat(20, 1, 1, 1))))
    out.append(_pair(sec, "NoiseTunnel(Saliency)", "nt_samples=10", lambda m: m.NoiseTunnel(m.Saliency(r)),
                     lambda a: a.attribute(x, target=0, nt_samples=10, stdevs=0.1),
                     floor_backward(r, x.repeat(10, 1, 1, 1))))
    m = mlp()
    batch = 128 if quick else 1024
    t = torch.randn(batch, 32)
    sec = f"Gradient methods: tabular MLP, 32 features, batch {batch}"
    out.append(_pair(sec, "Saliency", f"batch {batch}", lambda mod: mod.Saliency(m),
                     lambda a: a.attribute(t, target=1), floor_backward(m, t, 1)))
    out.append(_pair(sec, "IntegratedGradients", f"n_steps={steps}", lambda mod: mod.IntegratedGradients(m),
                     lambda a: a.attribute(t, target=1, n_steps=steps), floor_backward(m, t.repeat(steps, 1), 1)))
    mrefs = torch.randn(16, 32)
    out.append(_pair(sec, "GradientShap", "n_samples=50", lambda mod: mod.GradientShap(m),
                     lambda a: a.attribute(t, mrefs, target=1, n_samples=50), floor_backward(m, t.repeat(50, 1), 1)))
    out.append(_pair(sec, "NoiseTunnel(IG)", f"nt_samples=5, n_steps={steps}",
                     lambda mod: mod.NoiseTunnel(mod.IntegratedGradients(m)),
                     lambda a: a.attribute(t, target=1, nt_samples=5, stdevs=0.1, n_steps=steps),
                     floor_backward(m, t.repeat(5 * steps, 1), 1)))
    return out
