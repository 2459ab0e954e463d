"""Small jobs: every method on 1 and 8 rows of the tabular MLP, where the fixed cost of a call shows.

The floor is one batched forward (perturbation methods) or forward+backward (gradient and rule methods) over
the same samples the method evaluates; the target is ours within 2x of it. Captum runs beside each row. Each
figure is the fastest of the interleaved rounds (``best_of_rounds``): these calls take tens to hundreds of
microseconds, and on the shared machine other processes only ever add to that.
"""

from __future__ import annotations

import warnings

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward, floor_forward, quiet
from .models import mlp

warnings.filterwarnings("ignore", module="captum")


def _perturbation(m, x, base):
    """(name, setting, make, kwargs, rows evaluated) for the perturbation methods on 32 features."""
    groups = torch.arange(32).reshape(1, 32) // 8
    return [
        ("FeatureAblation", "32 features", lambda lib: lib.FeatureAblation(m), {"target": 1}, 33),
        ("Occlusion", "window 4, stride 2", lambda lib: lib.Occlusion(m),
         {"sliding_window_shapes": (4,), "strides": 2, "target": 1}, 16),
        ("FeaturePermutation", "32 features", lambda lib: lib.FeaturePermutation(m), {"target": 1}, 33),
        ("ShapleyValueSampling", "32 features, n_samples=5", lambda lib: lib.ShapleyValueSampling(m),
         {"target": 1, "n_samples": 5}, 161),
        ("ShapleyValues", "4 groups", lambda lib: lib.ShapleyValues(m), {"target": 1, "feature_mask": groups}, 16),
        ("KernelShap", "4 groups, n_samples=50", lambda lib: lib.KernelShap(m),
         {"target": 1, "feature_mask": groups, "n_samples": 50}, 50),
        ("Lime", "4 groups, n_samples=50", lambda lib: lib.Lime(m),
         {"target": 1, "feature_mask": groups, "n_samples": 50}, 51),
    ]


def _gradient(m, x, base, refs):
    """(name, setting, make, kwargs, floor rows) for the gradient and rule methods."""
    n = x.shape[0]
    return [
        ("Saliency", "", lambda lib: lib.Saliency(m), {"target": 1}, x),
        ("InputXGradient", "", lambda lib: lib.InputXGradient(m), {"target": 1}, x),
        ("IntegratedGradients", "n_steps=50", lambda lib: lib.IntegratedGradients(m),
         {"target": 1, "n_steps": 50}, x.repeat(50, 1)),
        ("GradientShap", "n_samples=20", lambda lib: lib.GradientShap(m),
         {"baselines": refs, "target": 1, "n_samples": 20}, x.repeat(20, 1)),
        ("DeepLift", "baseline rows", lambda lib: lib.DeepLift(m), {"baselines": base, "target": 1},
         torch.cat([x, base])),
        ("DeepLiftShap", "8 baselines", lambda lib: lib.DeepLiftShap(m), {"baselines": refs, "target": 1},
         torch.cat([x.repeat_interleave(8, 0), refs.repeat(n, 1)])),
        ("GuidedBackprop", "", lambda lib: lib.GuidedBackprop(m), {"target": 1}, x),
        ("Deconvolution", "", lambda lib: lib.Deconvolution(m), {"target": 1}, x),
        ("LRP", "epsilon rule", lambda lib: lib.LRP(m), {"target": 1}, x),
    ]


# Where the time goes when a row misses 2x (shares from timers around each phase, 150 calls, same machine).
_COMMON = ("the fixed cost of a call: the input guard (device and dtype checks, a NaN/Inf scan, a training-mode "
           "scan, a snapshot of training buffers), packing, the hook scope and the result assembly, each a few "
           "microseconds, beside a model call of a few tens of microseconds")
NOTES = {
    "FeatureAblation": "model 34-63% of the call; the rest is " + _COMMON + ", the evaluator (the 33 masked copies "
                       "built with one torch.where, the chunk rule's cached lookup) and spreading 32 values back",
    "Occlusion": "model about 20% of the call: window masks (per window and dimension) and averaging each element "
                 "over its windows (a cached table product) cost as much as the 16-copy model call; plus " + _COMMON,
    "FeaturePermutation": "as FeatureAblation, plus drawing 32 permutations of the batch",
    "ShapleyValueSampling": "model 20-40%: the masks of 161 coalitions (rank comparisons of 5 permutations) and the "
                            "marginal-gain reduction, plus " + _COMMON,
    "ShapleyValues": "model about 25%: enumerating the 16 coalitions and their exact weights, plus " + _COMMON,
    "KernelShap": "model about 15%: drawing 50 coalitions, their kernel weights and one weighted least-squares "
                  "solve per example are most of the call (the floor counts only the model)",
    "Lime": "model about 12%: the Lasso surrogates (coordinate descent per example, 55% at batch 8) and the "
            "similarity kernel are most of the call (the floor counts only the model)",
    "IntegratedGradients": "the quadrature, the stacked path and the chunk rule beside one 50-step forward+backward",
    "GradientShap": "drawing baselines and noise for 20 samples per example beside one forward+backward",
    "DeepLift": "two passes and the rule engine's TorchFunctionMode (every operation goes through Python) beside "
                "one forward+backward over inputs and baselines",
    "DeepLiftShap": "as DeepLift over 8 baselines per example",
    "GuidedBackprop": "the rule engine's TorchFunctionMode around a tiny forward+backward",
    "Deconvolution": "the rule engine's TorchFunctionMode around a tiny forward+backward",
    "LRP": "the rule engine's TorchFunctionMode and the relevance rules around a tiny forward+backward",
}


def cases(quick: bool = False) -> list[Case]:
    out: list[Case] = []
    m = mlp()
    for batch in (1, 8):
        torch.manual_seed(0)
        x, refs = torch.randn(batch, 32), torch.randn(8, 32)
        base = refs[:batch]
        sec = f"Small jobs: tabular MLP, 32 features, batch {batch}"
        for name, setting, make, kw, rows in _perturbation(m, x, base):
            if name == "FeaturePermutation" and batch < 2:
                continue  # needs two examples to shuffle
            ours, theirs = make(ia), make(ca)
            slow = name in ("KernelShap", "Lime")  # Captum fits per example: see the batch-8 table above
            out.append(Case(sec, name, setting, quiet(lambda o=ours, k=kw, i=x: o.attribute(i, **k)),
                            None if slow else quiet(lambda c=theirs, k=kw, i=x: c.attribute(i, **k)),
                            floor_forward(m, x.repeat(rows, 1)), best_of_rounds=True,
                            note=NOTES.get(name, "") if batch == 1 else ""))
        for name, setting, make, kw, rows in _gradient(m, x, base, refs):
            ours, theirs = make(ia), make(ca)
            out.append(Case(sec, name, setting or f"batch {batch}",
                            quiet(lambda o=ours, k=kw, i=x: o.attribute(i, **k)),
                            quiet(lambda c=theirs, k=kw, i=x: c.attribute(i, **k)), floor_backward(m, rows, 1),
                            best_of_rounds=True, note=NOTES.get(name, "") if batch == 1 else ""))
    return out
