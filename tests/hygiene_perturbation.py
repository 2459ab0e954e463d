"""Hygiene cases for the perturbation family."""

from __future__ import annotations

import torch

from _hygiene import Case, Exploding, cnn_case, mlp_case
from intellego.attr import (
    FeatureAblation,
    FeaturePermutation,
    KernelShap,
    Lime,
    LimeBase,
    Occlusion,
    PartitionShapley,
    ShapleyValues,
    ShapleyValueSampling,
)


def _mlp_inputs():
    return mlp_case()


_cnn_inputs = cnn_case


def _gen():
    return torch.Generator().manual_seed(0)


def _lime_base(m):
    def from_interp(z, x, **kw):
        return x * z.reshape(1, -1).to(x.dtype)

    return LimeBase(m, Lime(m).interpretable_model, lambda *a, **k: 1.0,
                    lambda x, **k: torch.randint(0, 2, (1, 4)), True, from_interp, None)


CASES = {
    "FeatureAblation": Case(_mlp_inputs, lambda m, x: FeatureAblation(m).attribute(x, target=1),
                            lambda m, x: FeatureAblation(Exploding(m)).attribute(
                                x, target=1, perturbations_per_eval=1)),
    "Occlusion": Case(_cnn_inputs, lambda m, x: Occlusion(m).attribute(x, ((1, 4, 4),), ((1, 4, 4),), target=0),
                      lambda m, x: Occlusion(m).attribute(x, ((1, 9, 9),), target=0)),
    "FeaturePermutation": Case(_mlp_inputs, lambda m, x: FeaturePermutation(m).attribute(
        x, target=0, generator=_gen()), lambda m, x: FeaturePermutation(Exploding(m)).attribute(
        x, target=0, perturbations_per_eval=1)),
    "ShapleyValueSampling": Case(_mlp_inputs, lambda m, x: ShapleyValueSampling(m).attribute(
        x, target=2, n_samples=3, perturbations_per_eval=2, generator=_gen()),
        lambda m, x: ShapleyValueSampling(m).attribute(x, target=2, n_samples=0)),
    "PartitionShapley": Case(_mlp_inputs, lambda m, x: PartitionShapley(m).attribute(x, target=2),
                             lambda m, x: PartitionShapley(Exploding(m)).attribute(x, target=2)),
    "ShapleyValues": Case(_mlp_inputs, lambda m, x: ShapleyValues(m).attribute(x, target=2),
                          lambda m, x: ShapleyValues(Exploding(m)).attribute(x, target=2)),
    "KernelShap": Case(_cnn_inputs, lambda m, x: KernelShap(m).attribute(
        x, target=1, feature_mask=(torch.arange(3).reshape(1, 3, 1, 1).expand(1, 3, 8, 8),), generator=_gen()),
        lambda m, x: KernelShap(m).attribute(x, target=1, feature_mask=(torch.ones(1, 3, 8, 8),))),
    "Lime": Case(_mlp_inputs, lambda m, x: Lime(m).attribute(x, target=0, n_samples=10, generator=_gen()),
                 lambda m, x: Lime(Exploding(m)).attribute(x, target=0),
                 covers=("LinearRegression", "Ridge", "Lasso", "get_exp_kernel_similarity_function",
                         "SkLearnLinearModel", "SkLearnLasso", "SkLearnRidge", "SkLearnLinearRegression")),
    "LimeBase": Case(_mlp_inputs, lambda m, x: _lime_base(m).attribute(x[:1], target=0, n_samples=6),
                     lambda m, x: _lime_base(Exploding(m, 1)).attribute(x[:1], target=0, n_samples=6)),
}
