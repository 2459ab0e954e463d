"""Parity of intellego.metrics.infidelity / sensitivity_max with captum.metrics 0.9.0 (the oracle), float64.

Both libraries are fed the same perturbations: a deterministic perturbation function, or one drawing from
torch's global generator reseeded before each call (both libraries call it in the same chunks and order).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

cm = pytest.importorskip("captum.metrics")
ca = pytest.importorskip("captum.attr")

import intellego.attr as ia  # noqa: E402
import intellego.metrics as im  # noqa: E402


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def _global_noise(inputs):
    noise = torch.randn_like(inputs) * 0.1
    return noise, inputs - noise


def _both(fn_ours, fn_theirs, seed=5):
    torch.manual_seed(seed)
    ours = fn_ours()
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fn_theirs()
    return ours, theirs


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("limit", [None, 8, 7, 100])
def test_infidelity_matches_captum(normalize, limit):
    model = _model()
    x = torch.randn(4, 5, dtype=torch.float64)
    attr = ia.Saliency(model).attribute(x, target=1, abs=False)
    target = torch.tensor([0, 1, 2, 1])
    kw = dict(target=target, n_perturb_samples=6, max_examples_per_batch=limit, normalize=normalize)
    ours, theirs = _both(lambda: im.infidelity(model, _global_noise, x, attr, **kw),
                         lambda: cm.infidelity(model, _global_noise, x, attr, **kw))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_infidelity_matches_captum_with_baselines_decorator_and_tuples():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, a, b, scale):
            return torch.tanh(self.a(a) + self.b(b)) * scale

    torch.manual_seed(1)
    model = Two().double()
    a, b = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    attrs = ia.InputXGradient(model).attribute((a, b), target=0, additional_forward_args=2.0)
    bases = (torch.zeros(3, 3, dtype=torch.float64), torch.full((3, 4), 0.5, dtype=torch.float64))

    def perturbed_only(inputs, baselines):
        return tuple(x - 0.3 * torch.rand_like(x) * (x - base) for x, base in zip(inputs, baselines))

    ours_f = im.infidelity_perturb_func_decorator(True)(perturbed_only)
    theirs_f = cm.infidelity_perturb_func_decorator(True)(perturbed_only)
    kw = dict(baselines=bases, additional_forward_args=2.0, target=0, n_perturb_samples=5, max_examples_per_batch=6)
    ours, theirs = _both(lambda: im.infidelity(model, ours_f, (a, b), attrs, **kw),
                         lambda: cm.infidelity(model, theirs_f, (a, b), attrs, **kw))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("limit", [None, 8, 5])
@pytest.mark.parametrize("norm_ord", ["fro", 1, float("inf")])
def test_sensitivity_max_matches_captum(limit, norm_ord):
    model = _model()
    x = torch.randn(4, 5, dtype=torch.float64)

    def perturb(inputs, radius):
        return inputs + torch.randn_like(inputs) * radius

    kw = dict(perturb_radius=0.1, n_perturb_samples=6, norm_ord=norm_ord, max_examples_per_batch=limit,
              target=[0, 1, 2, 1])
    ours, theirs = _both(lambda: im.sensitivity_max(ia.Saliency(model).attribute, x, perturb, **kw),
                         lambda: cm.sensitivity_max(ca.Saliency(model).attribute, x, perturb, **kw))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_sensitivity_max_matches_captum_with_baselines_and_args():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _model()

        def forward(self, x, scale):
            return self.net(x) * scale

    model = Scaled()
    x = torch.randn(3, 5, dtype=torch.float64)
    scale = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    base = torch.randn(3, 5, dtype=torch.float64)

    def perturb(inputs):
        return inputs + 0.05 * torch.randn_like(inputs)

    kw = dict(n_perturb_samples=4, max_examples_per_batch=6, target=2, baselines=base,
              additional_forward_args=scale, n_steps=8)
    ours, theirs = _both(lambda: im.sensitivity_max(ia.IntegratedGradients(model).attribute, x, perturb, **kw),
                         lambda: cm.sensitivity_max(ca.IntegratedGradients(model).attribute, x, perturb, **kw))
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_captum_default_sensitivity_perturbation_is_float32_only():
    """Captum's default perturbation draws float32 noise (``torch.FloatTensor``) and adds it to the inputs,
    whatever their dtype, and cannot be seeded except through the global RNG; ours draws in the inputs'
    dtype from the ``generator`` keyword."""
    from captum.metrics._core.sensitivity import default_perturb_func as captum_default

    x = torch.zeros(2, 3, dtype=torch.float64)
    torch.manual_seed(0)
    (theirs,) = captum_default(x, 0.5)
    assert theirs.to(torch.float32).to(torch.float64).equal(theirs)  # only float32 resolution
    (ours,) = im.default_perturb_func(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert ours.dtype == torch.float64 and not ours.to(torch.float32).to(torch.float64).equal(ours)
