"""CAM variants against their papers' formulas, written out with explicit loops on tiny nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.attr.cam import vit_reshape_transform
from intellego.errors import IntellegoError

D = torch.float64


def _net(seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(3, 3, 1), nn.Flatten(), nn.Linear(3 * 16, 4)).double()


def _acts_grads(model, layer, x, target):
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    out = model(x)
    h.remove()
    g = torch.autograd.grad(out[:, target].sum(), store["a"])[0]
    return store["a"].detach(), g


@pytest.fixture
def setup():
    model = _net()
    x = torch.randn(2, 2, 4, 4, dtype=D)
    a, g = _acts_grads(model, model[1], x, 3)
    return model, x, a, g


def _loop_map(a, weight_fn):
    n, c, h, w = a.shape
    cam = torch.zeros(n, 1, h, w, dtype=a.dtype)
    for i in range(n):
        for k in range(c):
            cam[i, 0] += weight_fn(i, k) * a[i, k]
    return cam


def test_gradcam_plus_plus_formula(setup):
    model, x, a, g = setup

    def weight(i, k):
        total = 0.0
        s = a[i, k].sum()
        for p in range(4):
            for q in range(4):
                gij = g[i, k, p, q]
                if gij != 0:
                    alpha = gij ** 2 / (2 * gij ** 2 + s * gij ** 3 + 1e-6)
                    total = total + alpha * max(gij, 0)
        return total

    expected = _loop_map(a, weight).clamp(min=0)
    torch.testing.assert_close(ia.LayerGradCamPlusPlus(model, model[1]).attribute(x, target=3), expected)


def test_xgradcam_formula(setup):
    model, x, a, g = setup
    expected = _loop_map(a, lambda i, k: (g[i, k] * a[i, k]).sum() / (a[i, k].sum() + 1e-7))
    ours = ia.LayerXGradCam(model, model[1]).attribute(x, target=3, relu_attributions=False)
    torch.testing.assert_close(ours, expected)


def test_hirescam_and_layercam_formulas(setup):
    model, x, a, g = setup
    torch.testing.assert_close(ia.LayerHiResCam(model, model[1]).attribute(x, target=3, relu_attributions=False),
                               (g * a).sum(1, keepdim=True))
    torch.testing.assert_close(ia.LayerCam(model, model[1]).attribute(x, target=3),
                               (g.clamp(min=0) * a).sum(1, keepdim=True).clamp(min=0))


def test_gradcam_family_reduces_to_gradcam_when_gradients_are_constant():
    """With a linear head and one spatial position's gradient per channel constant, HiResCAM equals Grad-CAM
    times the number of positions (the paper's remark on global average pooling)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(3, 2)).double()
    x = torch.randn(2, 2, 5, 5, dtype=D)
    grad = ia.LayerGradCam(model, model[1]).attribute(x, target=1)
    hires = ia.LayerHiResCam(model, model[1]).attribute(x, target=1, relu_attributions=False)
    torch.testing.assert_close(hires, grad)


def test_scorecam_formula(setup):
    model, x, a, _ = setup
    n, c = a.shape[:2]
    scores = torch.zeros(n, c, dtype=D)
    up = torch.nn.functional.interpolate(a, size=(4, 4), mode="bilinear", align_corners=True)
    with torch.no_grad():
        for i in range(n):
            for k in range(c):
                m = up[i, k]
                m = (m - m.min()) / (m.max() - m.min() + 1e-8)
                scores[i, k] = model((x[i] * m).unsqueeze(0))[0, 3]
    w = torch.softmax(scores, 1)
    expected = _loop_map(a, lambda i, k: w[i, k]).clamp(min=0)
    for chunk in (None, 1, 4):
        ours = ia.LayerScoreCam(model, model[1]).attribute(x, target=3, internal_batch_size=chunk)
        torch.testing.assert_close(ours, expected)


def test_eigencam_is_first_principal_component(setup):
    model, x, a, _ = setup
    ours = ia.LayerEigenCam(model, model[1]).attribute(x, relu_attributions=False)
    for i in range(a.shape[0]):
        rows = a[i].reshape(3, -1).T
        rows = rows - rows.mean(0)
        _, _, vh = torch.linalg.svd(rows)
        proj = (rows @ vh[0]).reshape(4, 4)
        got = ours[i, 0]
        assert torch.allclose(got, proj) or torch.allclose(got, -proj)
        assert got.flatten()[got.abs().argmax()] > 0


def test_reshape_transform_for_token_grids():
    """A ViT-like model: tokens (N, 1 + H*W, D). The CAM on the token layer equals the CAM of the same
    network written with a (N, D, H, W) feature map."""
    torch.manual_seed(0)

    class TokenNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(2, 5)
            self.block = nn.Tanh()
            self.head = nn.Linear(5, 3)

        def forward(self, x):                                    # x: (N, 2, 3, 4)
            tokens = self.embed(x.flatten(2).transpose(1, 2))    # (N, 12, 5)
            cls = tokens.mean(1, keepdim=True)
            tokens = self.block(torch.cat([cls, tokens], 1))     # (N, 13, 5)
            return self.head(tokens[:, 1:].mean(1))

    model = TokenNet().double()
    x = torch.randn(2, 2, 3, 4, dtype=D)
    transform = vit_reshape_transform(3, 4)
    for cls in (ia.LayerGradCamPlusPlus, ia.LayerHiResCam, ia.LayerCam, ia.LayerXGradCam, ia.LayerEigenCam):
        cam = cls(model, model.block).attribute(x, target=1, reshape_transform=transform)
        assert cam.shape == (2, 1, 3, 4)
    store = {}
    h = model.block.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    out = model(x)
    h.remove()
    g = torch.autograd.grad(out[:, 1].sum(), store["a"])[0]
    a_grid, g_grid = transform(store["a"].detach()), transform(g)
    torch.testing.assert_close(ia.LayerHiResCam(model, model.block).attribute(
        x, target=1, reshape_transform=transform, relu_attributions=False), (a_grid * g_grid).sum(1, keepdim=True))
    with pytest.raises(IntellegoError, match="reshape_transform"):
        ia.LayerCam(model, model.head).attribute(x, target=1)
    with pytest.raises(IntellegoError, match="expects"):
        ia.LayerCam(model, model.block).attribute(x, target=1, reshape_transform=vit_reshape_transform(4, 4))
