"""Backward-rule family: DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution, LRP."""

from __future__ import annotations

import warnings

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward
from .models import mlp, resnet

warnings.filterwarnings("ignore", message="Setting forward, backward hooks")


def _pair(section, name, setting, make, call, floor, note=""):
    ours, theirs = make(ia), make(ca)
    return Case(section, name, setting, lambda: call(ours), lambda: call(theirs), floor, note=note)


def _rows(model, x, refs, target, sec, label, m_shap):
    both = torch.cat([x, refs[: x.shape[0]]])
    shap_rows = torch.cat([x.repeat_interleave(m_shap, 0), refs[:m_shap].repeat(x.shape[0], *[1] * (x.dim() - 1))])
    base = refs[: x.shape[0]]
    out = [
        _pair(sec, "DeepLift", label, lambda mod: mod.DeepLift(model), lambda a: a.attribute(x, base, target=target),
              floor_backward(model, both, target)),
        _pair(sec, "DeepLiftShap", f"{m_shap} baselines", lambda mod: mod.DeepLiftShap(model),
              lambda a: a.attribute(x, refs[:m_shap], target=target), floor_backward(model, shap_rows, target)),
        _pair(sec, "GuidedBackprop", label, lambda mod: mod.GuidedBackprop(model),
              lambda a: a.attribute(x, target=target), floor_backward(model, x, target)),
        _pair(sec, "Deconvolution", label, lambda mod: mod.Deconvolution(model),
              lambda a: a.attribute(x, target=target), floor_backward(model, x, target)),
    ]
    lrp = _pair(sec, "LRP", label, lambda mod: mod.LRP(model), lambda a: a.attribute(x, target=target),
                floor_backward(model, x, target))
    if "ResNet" in sec:
        lrp.captum = None
        lrp.note = "Captum's LRP raises TypeError on this model (no rule for the empty shortcut Sequential)"
    return [*out, lrp]


def cases(quick: bool = False) -> list[Case]:
    torch.manual_seed(0)
    r = resnet()
    batch = 4 if quick else 16
    x, refs = torch.randn(batch, 3, 32, 32), torch.randn(max(batch, 8), 3, 32, 32)
    out = _rows(r, x, refs, 0, f"Backward rules: small ResNet, 3x32x32, batch {batch}", f"batch {batch}", 4)
    m = mlp()
    n = 128 if quick else 1024
    t, trefs = torch.randn(n, 32), torch.randn(n, 32)
    out += _rows(m, t, trefs, 1, f"Backward rules: tabular MLP, 32 features, batch {n}", f"batch {n}", 16)
    return out
