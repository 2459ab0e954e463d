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
    else:
        for case in out:
            case.note = _MLP_NOTES.get(case.name, "")
        lrp.note = _MLP_NOTES["LRP"]
    return [*out, lrp]


# Where the time goes on the MLP at batch 1024 (floor 0.4-0.7 ms, so fixed costs show); measured alone, 1 thread,
# these rows come out at 1.27x (DeepLift), 1.29x (GuidedBackprop, Deconvolution) and 1.62x (LRP) of the floor.
# Interleaved with Captum in this harness they read 1.6x, 1.7x and 2.2x: the fixed costs grow with a colder cache.
_MLP_NOTES = {
    "DeepLift": "two passes (a no-grad one over the baselines, 0.18 ms, then forward+backward over the inputs, "
                "0.38 ms: less compute than the floor's 2048-row forward+backward) plus about 0.1 ms of multiplier "
                "arithmetic per call (x - x_ref, f(x) - f(x_ref), divide, mul, copy per ReLU) and about 0.1 ms of "
                "Python (function-mode dispatch, recording and pairing the calls)",
    "GuidedBackprop": "about 0.06 ms of Python per call over the floor's 0.37 ms (function-mode dispatch, two ReLU "
                      "rule calls, two gradient hooks) plus the hooks' clamp",
    "Deconvolution": "as GuidedBackprop: about 0.06 ms of Python per call plus the hooks' clamp",
    "LRP": "one Python gradient hook per Linear scaling the gradient by |z| / (|z| + eps) (abs, mul, add, divide "
           "on each 1024x64 output): about 0.2 ms over the floor's 0.37 ms",
}


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
