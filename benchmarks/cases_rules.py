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


# Where the time goes on the MLP at batch 1024 (floor 0.37-0.4 ms, so fixed costs show); measured alone, 1 thread,
# thread time, lower quartile: DeepLift ~1.3-1.5x, GuidedBackprop ~1.3x, Deconvolution ~1.27x, LRP ~1.7x the floor.
# Interleaved with Captum in this harness they read 1.55x, 1.5-1.6x, 1.35-1.4x and 1.9-2.2x (noisy shared machine):
# the fixed Python costs grow with the colder caches after each Captum run.
_COMMON = ("the TorchFunctionMode itself (every forward op goes through Python: about 30 us over the floor even with "
           "an empty mode) plus about 10 us of call setup")
_MLP_NOTES = {
    "DeepLift": "two passes (a no-grad one over the baselines, 0.17 ms, then forward+backward over the inputs, "
                "0.37 ms: less compute than the floor's 2048-row forward+backward) plus 8 kernels per ReLU on "
                "1024x64 (relu, x - x_ref, y - y_ref, divide, |dx| in place, amin for the eps check, and the "
                "multiply + copy that put the multiplier into the graph), about 40 us each; and " + _COMMON,
    "GuidedBackprop": "each ReLU's direct form (no call record): relu plus a gradient hook that clamps, about 5 us "
                      "of Python and 4 us of clamp per ReLU; the rest is " + _COMMON,
    "Deconvolution": "as GuidedBackprop (clone + relu_ outside autograd, then the clamping hook); the rest is "
                     + _COMMON,
    "LRP": "one Python gradient hook per Linear scaling the gradient by |z| / (|z| + eps) (abs, add, addcdiv with "
           "its division: about 20-40 us per 1024x64 output, a division kernel is slow on a CPU) and a call record "
           "per Linear (kept: a BatchNorm after it may take the scaling over); the rest is " + _COMMON,
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
