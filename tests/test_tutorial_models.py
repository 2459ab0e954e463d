"""Differences from Captum found by running Captum's own tutorials (scripts/captum_tutorials.py), pinned on the
tutorials' model classes with random weights: where Captum is wrong, ours against an oracle or against Captum
itself on an equivalent model where Captum is right."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.attr import DeepLift

ca = pytest.importorskip("captum.attr")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
D = torch.float64


class CifarNet(nn.Module):
    """CIFAR_TorchVision_Interpret's Net: conv -> ReLU -> MaxPool twice, then three linear layers.
    ``gap=True`` puts a ``* 1.0`` between each ReLU and its MaxPool (the same function)."""

    def __init__(self, gap: bool = False) -> None:
        super().__init__()
        self.gap = gap
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool1, self.pool2 = nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.relu1, self.relu2, self.relu3, self.relu4 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r1 = self.relu1(self.conv1(x))
        x = self.pool1(r1 * 1.0 if self.gap else r1)
        r2 = self.relu2(self.conv2(x))
        x = self.pool2(r2 * 1.0 if self.gap else r2).view(-1, 400)
        return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x)))))


def _cifar_pair():
    torch.manual_seed(0)
    net = CifarNet().to(D).eval()
    gapped = CifarNet(gap=True).to(D).eval()
    gapped.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=D)
    return net, gapped, x


def test_deeplift_cifar_net_captum_drops_its_max_pool_rule_where_a_relu_feeds_the_pool():
    """The tutorial's DeepLift (zero baseline) differs from Captum by 0.03: when a ReLU module feeds a MaxPool
    module directly, Captum's hooks interfere and the pool's DeepLift rule is replaced by its plain gradient.
    Both results are complete, so the delta does not show it; with a ``* 1.0`` between them (the same
    function) Captum applies its rule and equals ours, and ours is the same on both models."""
    net, gapped, x = _cifar_pair()
    b, target = torch.zeros_like(x), 3
    ours = DeepLift(net).attribute(x, b, target=target)
    torch.testing.assert_close(DeepLift(gapped).attribute(x, b, target=target), ours, atol=1e-12, rtol=0)
    theirs_gapped = ca.DeepLift(gapped).attribute(x, b, target=target)
    torch.testing.assert_close(theirs_gapped, ours, atol=1e-10, rtol=0)
    theirs, delta = ca.DeepLift(net).attribute(x, b, target=target, return_convergence_delta=True)
    assert delta.abs().max() < 1e-8  # complete, yet other multipliers
    assert (theirs - ours).abs().max() > 0.05 * ours.abs().max()


def test_feature_ablation_accepts_mask_ids_with_gaps_as_captum_does():
    """Segmentation_Interpret ablates with ``feature_mask=out_max``, the predicted class of each pixel: ids with
    gaps (the classes not predicted). Each element's result is the ablation of its own group, whatever the ids,
    so ours accepts them (renumbered inside) and equals Captum, per-example masks included."""
    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 21, 1)).to(D).eval()
    x = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(2), dtype=D)
    out_max = torch.tensor([0, 6, 19, 255])[torch.randint(0, 4, (2, 1, 6, 7))]
    assert all(len(m.unique()) == 4 for m in out_max)

    def wrapper(inp):
        return seg(inp).sum(dim=(2, 3))

    for mask in (out_max[:1], out_max):
        ours = ia.FeatureAblation(wrapper).attribute(x, feature_mask=mask, perturbations_per_eval=2, target=6)
        theirs = ca.FeatureAblation(wrapper).attribute(x, feature_mask=mask, perturbations_per_eval=2, target=6)
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
        compact = torch.unique(mask, return_inverse=True)[1]
        torch.testing.assert_close(ours, ia.FeatureAblation(wrapper).attribute(x, feature_mask=compact, target=6))


def test_layer_feature_ablation_accepts_layer_mask_ids_with_gaps_as_captum_does():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).to(D)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=D)
    mask = torch.tensor([[0, 5, 5, 9, 0, 9]])
    ours = ia.LayerFeatureAblation(model, model[0]).attribute(x, target=1, layer_mask=mask)
    theirs = ca.LayerFeatureAblation(model, model[0]).attribute(x, target=1, layer_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
