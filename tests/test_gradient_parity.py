"""Parity with Captum 0.9 (the oracle) on random models in float64, for every option of the gradient family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")

TARGETS = [0, (2,), torch.tensor(1), [0, 1, 2, 1], torch.tensor([2, 0, 1, 1])]


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(5, 7), nn.Tanh())
        self.b = nn.Linear(3, 7)
        self.head = nn.Sequential(nn.Softplus(), nn.Linear(7, 3))

    def forward(self, x1, x2, scale, bias=0.0):
        return self.head(self.a(x1) * scale[:, None] + self.b(x2)) + bias


def setup(seed=0):
    torch.manual_seed(seed)
    model = TwoInputs().double()
    x1, x2 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    scale = torch.rand(4, dtype=torch.float64) + 0.5
    return model, (x1, x2), (scale, 0.25)


def close(a, b, tol=1e-6):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("name", ["Saliency", "InputXGradient"])
def test_plain_gradients_match_captum(name, target):
    model, xs, args = setup()
    close(getattr(ia, name)(model).attribute(xs, target=target, additional_forward_args=args),
          getattr(ca, name)(model).attribute(xs, target=target, additional_forward_args=args))


def test_saliency_signed_matches_captum():
    model, xs, args = setup(1)
    close(ia.Saliency(model).attribute(xs, target=1, abs=False, additional_forward_args=args),
          ca.Saliency(model).attribute(xs, target=1, abs=False, additional_forward_args=args))


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"])
@pytest.mark.parametrize("multiply", [True, False])
@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_integrated_gradients_match_captum(method, multiply, target):
    model, xs, args = setup(2)
    baselines = (torch.randn(1, 5, dtype=torch.float64), 0.1)
    kw = dict(baselines=baselines, target=target, additional_forward_args=args, n_steps=12, method=method,
              return_convergence_delta=True)
    ours, d1 = ia.IntegratedGradients(model, multiply_by_inputs=multiply).attribute(xs, **kw)
    theirs, d2 = ca.IntegratedGradients(model, multiply_by_inputs=multiply).attribute(xs, **kw, internal_batch_size=9)
    close(ours, theirs)
    close(d1, d2)


def test_integrated_gradients_single_tensor_and_per_example_baselines():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 5), nn.ELU(), nn.Linear(5, 2)).double()
    x, b = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    close(ia.IntegratedGradients(model).attribute(x, b, target=1),
          ca.IntegratedGradients(model).attribute(x, b, target=1))


def test_scalar_output_model_without_target():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    close(ia.IntegratedGradients(model).attribute(x), ca.IntegratedGradients(model).attribute(x))
    close(ia.Saliency(model).attribute(x), ca.Saliency(model).attribute(x))


def test_multi_dimensional_output_with_tuple_targets():
    torch.manual_seed(5)
    lin = nn.Linear(4, 6).double()

    def f(x):
        return torch.tanh(lin(x)).reshape(-1, 2, 3)

    x = torch.randn(3, 4, dtype=torch.float64)
    for target in [(1, 2), [(0, 1), (1, 2), (0, 0)]]:
        close(ia.IntegratedGradients(f).attribute(x, target=target, n_steps=10),
              ca.IntegratedGradients(f).attribute(x, target=target, n_steps=10))


def test_compute_convergence_delta_matches_captum():
    model, xs, args = setup(6)
    attrs = ia.IntegratedGradients(model).attribute(xs, target=2, additional_forward_args=args)
    close(ia.IntegratedGradients(model).compute_convergence_delta(attrs, 0.0, xs, 2, args),
          ca.IntegratedGradients(model).compute_convergence_delta(attrs, (0.0, 0.0), xs, 2, args))


def test_gradient_shap_matches_captum_where_sampling_cannot_matter():
    """Linear model, one baseline and no noise: every draw gives the same value, so both must agree exactly."""
    torch.manual_seed(7)
    lin = nn.Linear(5, 3).double()
    x, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
    ours, d1 = ia.GradientShap(lin).attribute(x, b, n_samples=6, target=[0, 1, 2, 0], return_convergence_delta=True)
    theirs, d2 = ca.GradientShap(lin).attribute(x, b, n_samples=6, target=[0, 1, 2, 0], return_convergence_delta=True)
    close(ours, theirs)
    assert d1.shape == d2.shape


def test_gradient_shap_agrees_with_captum_in_expectation():
    model, xs, args = setup(8)
    refs = (torch.randn(5, 5, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64))
    torch.manual_seed(0)
    ours = ia.GradientShap(model).attribute(xs, refs, n_samples=3000, stdevs=0.05, target=1,
                                            additional_forward_args=args, generator=torch.Generator().manual_seed(1))
    theirs = ca.GradientShap(model).attribute(xs, refs, n_samples=3000, stdevs=0.05, target=1,
                                              additional_forward_args=args)
    for o, t in zip(ours, theirs):
        assert (o - t).abs().max() < 0.05 * t.abs().max() + 1e-3


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_matches_captum_without_noise(nt_type):
    model, xs, args = setup(9)
    kw = dict(nt_type=nt_type, nt_samples=4, stdevs=0.0, target=[2, 1, 0, 1], additional_forward_args=args)
    close(ia.NoiseTunnel(ia.IntegratedGradients(model)).attribute(xs, **kw, n_steps=8),
          ca.NoiseTunnel(ca.IntegratedGradients(model)).attribute(xs, **kw, n_steps=8), tol=1e-8)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq"])
def test_noise_tunnel_agrees_with_captum_in_expectation(nt_type):
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    ours = ia.NoiseTunnel(ia.Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=4000, stdevs=0.3, target=1,
                                                        generator=torch.Generator().manual_seed(0))
    theirs = ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=4000, stdevs=0.3, target=1)
    assert (ours - theirs).abs().max() < 0.03 * theirs.abs().max()


def test_noise_tunnel_draws_baselines_like_captum():
    torch.manual_seed(11)
    lin = nn.Linear(5, 2).double()
    x, refs = torch.randn(3, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64).repeat(4, 1)
    kw = dict(nt_samples=5, stdevs=0.0, draw_baseline_from_distrib=True, baselines=refs, target=0)
    close(ia.NoiseTunnel(ia.IntegratedGradients(lin)).attribute(x, **kw),
          ca.NoiseTunnel(ca.IntegratedGradients(lin)).attribute(x, **kw))


def test_base_class_flags_match_captum():
    model = nn.Linear(2, 2)
    for name in ["Saliency", "InputXGradient", "IntegratedGradients", "GradientShap"]:
        ours, theirs = getattr(ia, name)(model), getattr(ca, name)(model)
        assert ours.has_convergence_delta() == theirs.has_convergence_delta(), name
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs, name
    assert ia.NoiseTunnel(ia.IntegratedGradients(model)).multiplies_by_inputs
