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


# Where the time goes on the MLP at batch 1024 (floor 0.37-0.4 ms, so fixed costs show). Measured alone, 1 thread, gc
# disabled, interleaved medians of 300 rounds (noisy shared 2-core machine): floor 368-398 us, rule_gradients with an
# empty rule map 404-411 us, GuidedBackprop 449 / Deconvolution 432 us (rule_gradients) and 482 / 468 us (attribute),
# LRP 519-551 / 565-611 us, DeepLift 768-1068 us against a 2048-row floor of 713 us. In this harness they read
# DeepLift 1.38-1.57x, GuidedBackprop 1.42-1.46x, Deconvolution 1.41-1.61x, LRP 1.80-1.85x: the fixed Python costs
# grow with the colder caches after each Captum run.
_COMMON = ("the TorchFunctionMode itself plus call setup: an attribution with an empty rule map costs 404-411 us "
           "against the floor's 368-384 us (every forward op goes through Python)")
_MLP_NOTES = {
    "DeepLift": "two passes: the no-grad one over the baselines with the recording mode (184 us against 160 us "
                "without it) and forward+backward over the inputs (537-567 us against 371-377 us plain): about "
                "80 us per ReLU on 1024x64, of which 8 kernels (relu, x - x_ref, y - y_ref, divide, |dx| in place, "
                "amin for the eps check, the multiply + copy that put the multiplier into the graph) are about "
                "40 us and the call record, reference pairing and multiplier code the rest; plus " + _COMMON,
    "GuidedBackprop": "each ReLU's direct form (no call record): relu plus a gradient hook that clamps, about 5 us "
                      "of Python and 4 us of clamp per ReLU; the rest is " + _COMMON,
    "Deconvolution": "as GuidedBackprop (clone + relu_ outside autograd, then the clamping hook; its backward has no "
                     "threshold kernel, so alone it is 10-15 us cheaper than GuidedBackprop: where this table shows "
                     "it slower, that is noise); the rest is " + _COMMON,
    "LRP": "target missed. Over an empty rule map (404-411 us) LRP's rule_gradients (519-551 us) adds: the three "
           "Linear call records, 27 us (kept: a BatchNorm after a layer may take its scaling over); the epsilon "
           "scaling grad * |z| / (|z| + eps) as one Python gradient hook per Linear, 80-110 us (abs, add_, "
           "addcdiv: about 19 us of kernels per 1024x64 output; registration, Python call in backward and removal "
           "about 6 us per hook, a grad_fn pre-hook instead saves about 1 us; the rest of that span is noise); "
           "then the rule map (build + check about 10 us) and relevance = x * grad. "
           "Measured and rejected: a per-Linear autograd Function doing the scaling and the matmul in one Python "
           "backward (532 vs 538 us, no gain); the scaling built into the graph natively (factor in forward, "
           "multiply + copy: 556 vs 519 us, worse); skipping the scaling where it rounds to the identity "
           "(eps <= min|z| * u / 4) never applies, as min|z| over 65k activations is about 1e-5. "
           "ReLU already gets no node under LRP (its own gradient passes relevance). The rest is " + _COMMON,
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
