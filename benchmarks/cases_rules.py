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


# Where the time goes on the MLP at batch 1024 (floor 355-410 us depending on the process, so fixed costs show).
# Measured alone (1 thread, timeit-style blocks in interleaved rounds, medians and 10th percentiles of 40-100 rounds):
# the engine with an empty rule map is 1.05-1.09x the floor, a hand-written TorchFunctionMode doing nothing 1.06-1.07x.
_COMMON = ("the TorchFunctionMode (every forward op goes through Python; F.relu is a Python function, so under a "
           "mode each call also pays torch's handle_torch_function, about 6 us) and the call set-up: an empty rule "
           "map costs 1.05-1.09x the floor")
_MLP_NOTES = {
    "DeepLift": "two passes, against a floor over the 2048 input and baseline rows: the no-grad pass over the "
                "baselines records each ReLU, the pass over the inputs puts the multiplier (y - y_ref) / (x - x_ref) "
                "into the graph as one native multiplication; the records are dropped when the forward pass ends, "
                "so backward reuses their memory. The rest is " + _COMMON,
    "GuidedBackprop": "each ReLU's direct form (no call record): relu plus a gradient hook that clamps, about 5 us "
                      "of Python and 4 us of clamp per ReLU; the rest is " + _COMMON,
    "Deconvolution": "as GuidedBackprop (clone + relu_ outside autograd, then the clamping hook; its backward has no "
                     "threshold kernel); the rest is " + _COMMON,
    "LRP": "the epsilon scaling grad * |z| / (|z| + eps) is one gradient hook per Linear (three kernels: abs, which "
           "reads the layer output back from memory, add_ and addcdiv, about 40 us in all here) on a bare record "
           "(a BatchNorm after the layer may take the scaling over). A hand-written function mode with the same "
           "three hooks and nothing else measures 1.21-1.30x the floor, so the hooks are most of the gap. "
           "Measured and rejected (no gain or worse): |z| + eps computed in forward while z is in cache "
           "(1.27-1.30 vs 1.24-1.25), the hook on the ReLU output instead of the Linear's (1.23-1.27), the "
           "scaling folded into the ReLU's node as a multiplier (1.29-1.41), a per-Linear autograd Function, the "
           "scaling as a native multiply + copy; skipping it where it rounds to the identity never applies "
           "(min |z| over 65k activations is about 1e-5). What took LRP from 1.8x to 1.45x: records let go when "
           "the forward pass ends (activations freed as autograd finishes with them; backward had been "
           "allocating fresh pages), the direct form without saved inputs, timeit-style timing. The rest is "
           + _COMMON,
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
