"""Every public attribution class on every model of the zoo (``tests/zoo.py``: real ``transformers`` architectures,
tiny, seeded): it runs, returns finite attributions of the right shape and leaves the model as it found it.

Small inputs and few steps keep the matrix fast; perturbation methods get four feature groups. Methods that need a
spatial layer (the CAM family) run on the CNNs only. The default run takes one method per engine on every model;
the whole matrix runs with ``-m slow``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import intellego.attr as ia
import zoo
from _hygiene import assert_same, snapshot

D = torch.float64
T = 1  # target class / token


def _mask(x: torch.Tensor) -> torch.Tensor:
    """Four feature groups: image quadrants, or token positions modulo 4."""
    if x.dim() == 4:
        h, w = x.shape[2:]
        rows = (torch.arange(h) >= h // 2).long()[:, None]
        cols = (torch.arange(w) >= w // 2).long()[None, :]
        return (2 * rows + cols).expand(h, w)[None, None].expand(1, x.shape[1], h, w)
    return (torch.arange(x.shape[1]) % 4)[None, :, None].expand(1, *x.shape[1:])


def _bl(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(x[:1]), 0.5 * x[:1]])


def _window(x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[1], x.shape[2] // 2, x.shape[3] // 2) if x.dim() == 4 else (x.shape[1] // 2, x.shape[2])


G = torch.Generator
Call = Callable[[Any, Any, torch.Tensor, Any], Any]  # (model, layer, x, neuron) -> result
# name -> (call, "any" | "cam", output kind: "input" | "layer" | "cam")
METHODS: dict[str, tuple[Call, str, str]] = {
    "Saliency": (lambda m, ly, x, n: ia.Saliency(m).attribute(x, target=T), "any", "input"),
    "InputXGradient": (lambda m, ly, x, n: ia.InputXGradient(m).attribute(x, target=T), "any", "input"),
    "IntegratedGradients": (lambda m, ly, x, n: ia.IntegratedGradients(m).attribute(x, target=T, n_steps=4),
                            "any", "input"),
    "GradientShap": (lambda m, ly, x, n: ia.GradientShap(m).attribute(x, _bl(x), target=T, n_samples=2,
                                                                      generator=G().manual_seed(0)), "any", "input"),
    "NoiseTunnel": (lambda m, ly, x, n: ia.NoiseTunnel(ia.Saliency(m)).attribute(
        x, target=T, nt_samples=2, generator=G().manual_seed(0)), "any", "input"),
    "Occlusion": (lambda m, ly, x, n: ia.Occlusion(m).attribute(x, _window(x), _window(x), target=T), "any",
                  "input"),
    "FeatureAblation": (lambda m, ly, x, n: ia.FeatureAblation(m).attribute(x, target=T, feature_mask=_mask(x)),
                        "any", "input"),
    "FeaturePermutation": (lambda m, ly, x, n: ia.FeaturePermutation(m).attribute(
        x, target=T, feature_mask=_mask(x)), "any", "input"),
    "ShapleyValueSampling": (lambda m, ly, x, n: ia.ShapleyValueSampling(m).attribute(
        x, target=T, feature_mask=_mask(x), n_samples=2), "any", "input"),
    "ShapleyValues": (lambda m, ly, x, n: ia.ShapleyValues(m).attribute(x, target=T, feature_mask=_mask(x)),
                      "any", "input"),
    "PartitionShapley": (lambda m, ly, x, n: ia.PartitionShapley(m).attribute(x, target=T, feature_mask=_mask(x)),
                         "any", "input"),
    "KernelShap": (lambda m, ly, x, n: ia.KernelShap(m).attribute(x, target=T, feature_mask=_mask(x), n_samples=8),
                   "any", "input"),
    "Lime": (lambda m, ly, x, n: ia.Lime(m).attribute(x, target=T, feature_mask=_mask(x), n_samples=8), "any",
             "input"),
    "DeepLift": (lambda m, ly, x, n: ia.DeepLift(m).attribute(x, target=T), "any", "input"),
    "DeepLiftShap": (lambda m, ly, x, n: ia.DeepLiftShap(m).attribute(x, _bl(x), target=T), "any", "input"),
    "GuidedBackprop": (lambda m, ly, x, n: ia.GuidedBackprop(m).attribute(x, target=T), "any", "input"),
    "Deconvolution": (lambda m, ly, x, n: ia.Deconvolution(m).attribute(x, target=T), "any", "input"),
    "LRP": (lambda m, ly, x, n: ia.LRP(m).attribute(x, target=T), "any", "input"),
    "LayerActivation": (lambda m, ly, x, n: ia.LayerActivation(m, ly).attribute(x), "any", "layer"),
    "LayerGradientXActivation": (lambda m, ly, x, n: ia.LayerGradientXActivation(m, ly).attribute(x, target=T),
                                 "any", "layer"),
    "InternalInfluence": (lambda m, ly, x, n: ia.InternalInfluence(m, ly).attribute(x, target=T, n_steps=4), "any",
                          "layer"),
    "LayerConductance": (lambda m, ly, x, n: ia.LayerConductance(m, ly).attribute(x, target=T, n_steps=4), "any",
                         "layer"),
    "LayerIntegratedGradients": (lambda m, ly, x, n: ia.LayerIntegratedGradients(m, ly).attribute(
        x, target=T, n_steps=4), "any", "layer"),
    "LayerGradientShap": (lambda m, ly, x, n: ia.LayerGradientShap(m, ly).attribute(x, _bl(x), target=T,
                                                                                    n_samples=2), "any", "layer"),
    "LayerDeepLift": (lambda m, ly, x, n: ia.LayerDeepLift(m, ly).attribute(x, target=T), "any", "layer"),
    "LayerDeepLiftShap": (lambda m, ly, x, n: ia.LayerDeepLiftShap(m, ly).attribute(x, _bl(x), target=T), "any",
                          "layer"),
    "LayerFeatureAblation": (lambda m, ly, x, n: ia.LayerFeatureAblation(m, ly).attribute(x, target=T), "any",
                             "layer"),
    "LayerFeaturePermutation": (lambda m, ly, x, n: ia.LayerFeaturePermutation(m, ly).attribute(x, target=T),
                                "any", "layer"),
    "LayerLRP": (lambda m, ly, x, n: ia.LayerLRP(m, ly).attribute(x, target=T), "any", "layer"),
    "NeuronGradient": (lambda m, ly, x, n: ia.NeuronGradient(m, ly).attribute(x, n), "any", "input"),
    "NeuronIntegratedGradients": (lambda m, ly, x, n: ia.NeuronIntegratedGradients(m, ly).attribute(
        x, n, n_steps=4), "any", "input"),
    "NeuronGradientShap": (lambda m, ly, x, n: ia.NeuronGradientShap(m, ly).attribute(x, n, _bl(x), n_samples=2),
                           "any", "input"),
    "NeuronConductance": (lambda m, ly, x, n: ia.NeuronConductance(m, ly).attribute(x, n, target=T, n_steps=4),
                          "any", "input"),
    "NeuronDeepLift": (lambda m, ly, x, n: ia.NeuronDeepLift(m, ly).attribute(x, n), "any", "input"),
    "NeuronDeepLiftShap": (lambda m, ly, x, n: ia.NeuronDeepLiftShap(m, ly).attribute(x, n, _bl(x)), "any",
                           "input"),
    "NeuronGuidedBackprop": (lambda m, ly, x, n: ia.NeuronGuidedBackprop(m, ly).attribute(x, n), "any", "input"),
    "NeuronDeconvolution": (lambda m, ly, x, n: ia.NeuronDeconvolution(m, ly).attribute(x, n), "any", "input"),
    "NeuronFeatureAblation": (lambda m, ly, x, n: ia.NeuronFeatureAblation(m, ly).attribute(
        x, n, feature_mask=_mask(x)), "any", "input"),
    "LayerGradCam": (lambda m, ly, x, n: ia.LayerGradCam(m, ly).attribute(x, target=T), "cam", "cam"),
    "LayerGradCamPlusPlus": (lambda m, ly, x, n: ia.LayerGradCamPlusPlus(m, ly).attribute(x, target=T), "cam",
                             "cam"),
    "LayerXGradCam": (lambda m, ly, x, n: ia.LayerXGradCam(m, ly).attribute(x, target=T), "cam", "cam"),
    "LayerHiResCam": (lambda m, ly, x, n: ia.LayerHiResCam(m, ly).attribute(x, target=T), "cam", "cam"),
    "LayerCam": (lambda m, ly, x, n: ia.LayerCam(m, ly).attribute(x, target=T), "cam", "cam"),
    "LayerScoreCam": (lambda m, ly, x, n: ia.LayerScoreCam(m, ly).attribute(x, target=T), "cam", "cam"),
    "LayerEigenCam": (lambda m, ly, x, n: ia.LayerEigenCam(m, ly).attribute(x), "cam", "cam"),
    "GuidedGradCam": (lambda m, ly, x, n: ia.GuidedGradCam(m, ly).attribute(x, target=T), "cam", "input"),
}
# the classes of intellego.attr that attribute a tensor model and are not run above, and why
NOT_HERE = {
    "LimeBase": "the base of Lime (run above) with user-supplied similarity and sampling functions",
    "DataLoaderAttribution": "a data-loader driver over FeatureAblation; tests/test_dataloader_attr.py",
    "LLMAttribution": "text generation through a tokenizer; tests/test_llm.py",
    "LLMGradientAttribution": "text generation through a tokenizer; tests/test_llm.py",
    "RemoteLLMAttribution": "a remote text-generation service; tests/test_llm.py",
}
# the default run: one method per engine (gradients, path, rules, perturbation, layer, neuron, CAM); the rest
# of the matrix is marked slow
DEFAULT = {"Saliency", "IntegratedGradients", "DeepLift", "GuidedBackprop", "LRP", "FeatureAblation",
           "LayerConductance", "NeuronDeepLift", "LayerGradCam"}
PAIRS = [pytest.param(m, n, id=f"{m}-{n}", marks=() if n in DEFAULT else pytest.mark.slow)
         for m in zoo.ZOO for n, (_, needs, _) in METHODS.items() if needs == "any" or m in zoo.CONV]


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    return {}


def _get(models: dict, name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    if name not in models:
        models[name] = zoo.build(name, dtype=D)
    return models[name]


def test_every_attribution_class_is_covered():
    classes = {n for n in ia.__all__ if isinstance(getattr(ia, n), type) and issubclass(getattr(ia, n), ia.Attribution)
               and n not in ("Attribution", "GradientAttribution", "PerturbationAttribution", "InternalAttribution",
                             "LayerAttribution", "NeuronAttribution")}
    assert classes - set(METHODS) - set(NOT_HERE) == set()


@pytest.mark.parametrize(("model_name", "method"), PAIRS)
def test_method_runs_clean_on_zoo_model(models, model_name, method):
    model, x = _get(models, model_name)
    ly = zoo.layer(model, model_name)
    call, _, kind = METHODS[method]
    before = snapshot(model, (x,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = call(model, ly, x, zoo.neuron(model_name))
    assert_same(before, snapshot(model, (x,)))
    out = out[0] if isinstance(out, tuple) else out
    assert isinstance(out, torch.Tensor) and out.dtype == D
    assert torch.isfinite(out).all()
    if kind == "input":
        assert out.shape == x.shape
    elif kind == "cam":
        assert out.shape[:2] == (x.shape[0], 1)
    else:
        assert out.shape[0] == x.shape[0]
