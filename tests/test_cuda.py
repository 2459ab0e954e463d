"""On a machine with a GPU: every family gives the CPU's numbers on CUDA, and results stay on the input's device.

Skipped where CUDA is unavailable (this project's CI machines have no GPU); run it on a lent GPU machine with
``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import intellego.attr as ia

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).double().eval()


CALLS = {
    "Saliency": lambda m, x, g: ia.Saliency(m).attribute(x, target=1),
    "IntegratedGradients": lambda m, x, g: ia.IntegratedGradients(m).attribute(x, target=1, n_steps=16),
    "GradientShap": lambda m, x, g: ia.GradientShap(m).attribute(x, x * 0, target=1, generator=g),
    "NoiseTunnel": lambda m, x, g: ia.NoiseTunnel(ia.Saliency(m)).attribute(x, nt_samples=3, stdevs=0.0, target=1),
    "DeepLift": lambda m, x, g: ia.DeepLift(m).attribute(x, target=1),
    "GuidedBackprop": lambda m, x, g: ia.GuidedBackprop(m).attribute(x, target=1),
    "LRP": lambda m, x, g: ia.LRP(m).attribute(x, target=1),
    "Occlusion": lambda m, x, g: ia.Occlusion(m).attribute(x, (3, 4, 4), strides=(3, 2, 2), target=1),
    "FeatureAblation": lambda m, x, g: ia.FeatureAblation(m).attribute(x, target=1),
    "ShapleyValueSampling": lambda m, x, g: ia.ShapleyValueSampling(m).attribute(
        x, target=1, feature_mask=torch.arange(4, device=x.device).repeat_interleave(2).reshape(1, 1, 1, 8)
        .expand(1, 3, 8, 8), n_samples=2),
    "LayerGradCam": lambda m, x, g: ia.LayerGradCam(m, m[3]).attribute(x, target=1),
    "LayerIntegratedGradients": lambda m, x, g: ia.LayerIntegratedGradients(m, m[3]).attribute(x, target=1),
    "NeuronGradient": lambda m, x, g: ia.NeuronGradient(m, m[3]).attribute(x, (1, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_cuda_matches_cpu_and_stays_on_device(name):
    model = _cnn()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    cpu = CALLS[name](model, x, torch.Generator().manual_seed(0))
    gpu = CALLS[name](model.cuda(), x.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert gpu.device.type == "cuda"
    if name != "GradientShap":  # different generators on the two devices draw different samples
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-8)
