"""One row per public attribution method, all on one small CNN: the table the reliability tests run.

``METHODS[name] = Method(build, kwargs, family)``: ``build(model)`` returns the attribution object (layer and neuron
methods use ``model[3]``, the second convolution), ``kwargs`` are the ``attribute`` arguments besides the inputs.
A new public method is covered by adding one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import intellego.attr as ia


def cnn(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Conv-ReLU-pool-Conv-ReLU-pool-Linear on ``(N, 3, 8, 8)`` images, 3 classes, in eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return model.to(dtype).eval()


def images(n: int = 2, seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)).to(dtype)


@dataclass(frozen=True)
class Method:
    build: Callable[[nn.Module], Any]
    kwargs: Callable[[torch.Tensor], dict[str, Any]]
    family: str  # "primary", "layer", "neuron", "rules" (backward-rule primary methods), "perturbation"


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _zeros(x: torch.Tensor, n: int = 2) -> torch.Tensor:
    return torch.zeros(n, *x.shape[1:], dtype=x.dtype, device=x.device)


def _mask(x: torch.Tensor) -> torch.Tensor:
    """Four 4x4 quadrants shared by the channels: a small feature mask for the sampling methods."""
    q = torch.arange(4, device=x.device).reshape(2, 2).repeat_interleave(4, 0).repeat_interleave(4, 1)
    return q.reshape(1, 1, 8, 8).expand(1, 3, 8, 8)


def _layer(cls: str) -> Callable[[nn.Module], Any]:
    return lambda m: getattr(ia, cls)(m, m[3])


def _plain(cls: str) -> Callable[[nn.Module], Any]:
    return lambda m: getattr(ia, cls)(m)


T = {"target": 1}
NEURON = (1, 2, 2)

METHODS: dict[str, Method] = {
    # primary gradient methods
    "Saliency": Method(_plain("Saliency"), lambda x: T, "primary"),
    "InputXGradient": Method(_plain("InputXGradient"), lambda x: T, "primary"),
    "IntegratedGradients": Method(_plain("IntegratedGradients"), lambda x: {**T, "n_steps": 4}, "primary"),
    "GradientShap": Method(_plain("GradientShap"), lambda x: {**T, "baselines": _zeros(x), "generator": _gen()},
                           "primary"),
    "NoiseTunnel": Method(lambda m: ia.NoiseTunnel(ia.Saliency(m)),
                          lambda x: {**T, "nt_samples": 3, "stdevs": 0.1, "generator": _gen()}, "primary"),
    # backward-rule methods
    "DeepLift": Method(_plain("DeepLift"), lambda x: T, "rules"),
    "DeepLiftShap": Method(_plain("DeepLiftShap"), lambda x: {**T, "baselines": _zeros(x)}, "rules"),
    "GuidedBackprop": Method(_plain("GuidedBackprop"), lambda x: T, "rules"),
    "Deconvolution": Method(_plain("Deconvolution"), lambda x: T, "rules"),
    "LRP": Method(_plain("LRP"), lambda x: T, "rules"),
    # perturbation methods
    "FeatureAblation": Method(_plain("FeatureAblation"), lambda x: {**T, "feature_mask": _mask(x)}, "perturbation"),
    "Occlusion": Method(_plain("Occlusion"), lambda x: {**T, "sliding_window_shapes": (3, 4, 4),
                                                        "strides": (3, 4, 4)}, "perturbation"),
    "FeaturePermutation": Method(_plain("FeaturePermutation"),
                                 lambda x: {**T, "feature_mask": _mask(x), "generator": _gen()}, "perturbation"),
    "ShapleyValueSampling": Method(_plain("ShapleyValueSampling"), lambda x: {
        **T, "feature_mask": _mask(x), "n_samples": 2, "generator": _gen()}, "perturbation"),
    "ShapleyValues": Method(_plain("ShapleyValues"), lambda x: {**T, "feature_mask": _mask(x)}, "perturbation"),
    "KernelShap": Method(_plain("KernelShap"), lambda x: {**T, "feature_mask": _mask(x), "n_samples": 8,
                                                          "generator": _gen()}, "perturbation"),
    "Lime": Method(_plain("Lime"), lambda x: {**T, "feature_mask": _mask(x), "n_samples": 8, "generator": _gen()},
                   "perturbation"),
    # layer methods
    "LayerActivation": Method(_layer("LayerActivation"), lambda x: {}, "layer"),
    "LayerGradientXActivation": Method(_layer("LayerGradientXActivation"), lambda x: T, "layer"),
    "LayerGradCam": Method(_layer("LayerGradCam"), lambda x: T, "layer"),
    "LayerGradCamPlusPlus": Method(_layer("LayerGradCamPlusPlus"), lambda x: T, "layer"),
    "LayerXGradCam": Method(_layer("LayerXGradCam"), lambda x: T, "layer"),
    "LayerHiResCam": Method(_layer("LayerHiResCam"), lambda x: T, "layer"),
    "LayerCam": Method(_layer("LayerCam"), lambda x: T, "layer"),
    "LayerScoreCam": Method(_layer("LayerScoreCam"), lambda x: T, "layer"),
    "LayerEigenCam": Method(_layer("LayerEigenCam"), lambda x: T, "layer"),
    "GuidedGradCam": Method(_layer("GuidedGradCam"), lambda x: T, "layer"),
    "InternalInfluence": Method(_layer("InternalInfluence"), lambda x: {**T, "n_steps": 4}, "layer"),
    "LayerConductance": Method(_layer("LayerConductance"), lambda x: {**T, "n_steps": 4}, "layer"),
    "LayerIntegratedGradients": Method(_layer("LayerIntegratedGradients"), lambda x: {**T, "n_steps": 4}, "layer"),
    "LayerGradientShap": Method(_layer("LayerGradientShap"),
                                lambda x: {**T, "baselines": _zeros(x), "generator": _gen()}, "layer"),
    "LayerDeepLift": Method(_layer("LayerDeepLift"), lambda x: T, "layer"),
    "LayerDeepLiftShap": Method(_layer("LayerDeepLiftShap"), lambda x: {**T, "baselines": _zeros(x)}, "layer"),
    "LayerLRP": Method(_layer("LayerLRP"), lambda x: T, "layer"),
    "LayerFeatureAblation": Method(_layer("LayerFeatureAblation"), lambda x: T, "layer"),
    "LayerFeaturePermutation": Method(_layer("LayerFeaturePermutation"), lambda x: {**T, "generator": _gen()},
                                      "layer"),
    # neuron methods
    "NeuronGradient": Method(_layer("NeuronGradient"), lambda x: {"neuron_selector": NEURON}, "neuron"),
    "NeuronIntegratedGradients": Method(_layer("NeuronIntegratedGradients"),
                                        lambda x: {"neuron_selector": NEURON, "n_steps": 4}, "neuron"),
    "NeuronConductance": Method(_layer("NeuronConductance"),
                                lambda x: {"neuron_selector": NEURON, "n_steps": 4, **T}, "neuron"),
    "NeuronGradientShap": Method(_layer("NeuronGradientShap"), lambda x: {
        "neuron_selector": NEURON, "baselines": _zeros(x), "generator": _gen()}, "neuron"),
    "NeuronDeepLift": Method(_layer("NeuronDeepLift"), lambda x: {"neuron_selector": NEURON}, "neuron"),
    "NeuronDeepLiftShap": Method(_layer("NeuronDeepLiftShap"),
                                 lambda x: {"neuron_selector": NEURON, "baselines": _zeros(x)}, "neuron"),
    "NeuronGuidedBackprop": Method(_layer("NeuronGuidedBackprop"), lambda x: {"neuron_selector": NEURON}, "neuron"),
    "NeuronDeconvolution": Method(_layer("NeuronDeconvolution"), lambda x: {"neuron_selector": NEURON}, "neuron"),
    "NeuronFeatureAblation": Method(_layer("NeuronFeatureAblation"),
                                    lambda x: {"neuron_selector": NEURON, "feature_mask": _mask(x)}, "neuron"),
}


def run(name: str, model: nn.Module, x: torch.Tensor) -> Any:
    """``METHODS[name]`` on ``model`` and ``x``."""
    method = METHODS[name]
    return method.build(model).attribute(x, **method.kwargs(x))
