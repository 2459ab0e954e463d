"""Saliency, InputXGradient, IntegratedGradients, GradientShap, NoiseTunnel: closed forms, axioms, invariances."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from intellego.attr import GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from intellego.errors import IntellegoError

METHODS = ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]


def linear(d_in=5, d_out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out).double()


def mlp(seed=0, d_in=5, hidden=8, d_out=3, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), act(), nn.Linear(hidden, d_out)).double()


@pytest.mark.parametrize("method", METHODS)
def test_ig_of_linear_model_is_weight_times_difference(method):
    model = linear()
    x, x0 = torch.randn(4, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
    attr, delta = IntegratedGradients(model).attribute(x, x0, target=2, n_steps=7, method=method,
                                                       return_convergence_delta=True)
    torch.testing.assert_close(attr, model.weight[2] * (x - x0), rtol=1e-12, atol=1e-12)
    assert delta.abs().max() < 1e-12


def test_ig_without_multiplying_by_inputs_is_mean_gradient():
    model = linear()
    ig = IntegratedGradients(model, multiply_by_inputs=False)
    assert not ig.multiplies_by_inputs
    out = ig.attribute(torch.randn(2, 5, dtype=torch.float64), target=0)
    torch.testing.assert_close(out, model.weight[0].expand(2, 5))


def test_saliency_and_input_x_gradient_of_linear_model():
    model = linear()
    x = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(Saliency(model).attribute(x, target=1), model.weight[1].abs().expand(3, 5))
    torch.testing.assert_close(Saliency(model).attribute(x, target=1, abs=False), model.weight[1].expand(3, 5))
    torch.testing.assert_close(InputXGradient(model).attribute(x, target=1), model.weight[1] * x)


def test_gradient_shap_of_linear_model_is_exact():
    """For a linear model every draw gives w * (x + noise - b); with no noise the mean over baselines is exact."""
    model = linear()
    x, refs = torch.randn(3, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    attr, delta = GradientShap(model).attribute(x, refs[:1], n_samples=9, target=0, generator=gen,
                                                return_convergence_delta=True)
    torch.testing.assert_close(attr, model.weight[0] * (x - refs[:1]))
    assert delta.shape == (27,) and delta.abs().max() < 1e-12


def test_gradient_shap_converges_to_expected_gradients():
    model = mlp()
    x, refs = torch.randn(2, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    exact = sum(IntegratedGradients(model).attribute(x, r[None].expand(2, 5), target=1, n_steps=64) for r in refs) / 4
    gen = torch.Generator().manual_seed(0)
    errors = [(GradientShap(model).attribute(x, refs, n_samples=n, target=1, generator=gen) - exact).abs().mean()
              for n in (4, 4000)]
    assert errors[1] < errors[0] / 5 and errors[1] < 2e-3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), hidden=st.integers(2, 12))
def test_ig_completeness_gap_shrinks_with_steps(seed, hidden):
    model = mlp(seed, hidden=hidden, act=nn.Softplus)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, dtype=torch.float64, generator=g)
    ig = IntegratedGradients(model)
    gaps = [ig.attribute(x, target=0, n_steps=n, method="riemann_trapezoid",
                         return_convergence_delta=True)[1].abs().max().item() for n in (4, 64)]
    assert gaps[1] <= gaps[0] + 1e-12
    assert gaps[1] < 1e-3
    assert ig.attribute(x, target=0, n_steps=32, return_convergence_delta=True)[1].abs().max() < 1e-8


def test_trapezoid_weights_sum_to_one_unlike_captum():
    """Captum halves the end steps of 1/n instead of 1/(n-1): its weights sum to (n-1)/n, so its
    riemann_trapezoid IG of a linear model is (n-1)/n of the exact value. Ours is exact."""
    captum_attr = pytest.importorskip("captum.attr")
    model = linear()
    x = torch.randn(2, 5, dtype=torch.float64)
    exact = model.weight[0] * x
    ours = IntegratedGradients(model).attribute(x, target=0, method="riemann_trapezoid", n_steps=50)
    theirs = captum_attr.IntegratedGradients(model).attribute(x, target=0, method="riemann_trapezoid", n_steps=50)
    torch.testing.assert_close(ours, exact)
    torch.testing.assert_close(theirs, exact * 49 / 50, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("chunk", [1, 3, 7, 500])
def test_ig_independent_of_chunk_size(chunk):
    model = mlp()
    x = torch.randn(5, 5, dtype=torch.float64)
    ref = IntegratedGradients(model).attribute(x, target=[0, 1, 2, 0, 1], n_steps=9)
    out = IntegratedGradients(model).attribute(x, target=[0, 1, 2, 0, 1], n_steps=9, internal_batch_size=chunk)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)


def test_memory_budget_splits_work_without_changing_results():
    model = mlp()
    x = torch.randn(64, 5, dtype=torch.float64)
    calls = []
    counted = nn.Sequential(model)
    counted.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    ref = IntegratedGradients(model).attribute(x, target=1, n_steps=20)
    out = IntegratedGradients(counted).attribute(x, target=1, n_steps=20, memory_budget=200_000)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    assert max(calls[2:]) < 64 * 20, "a small budget must split the 1280 rows"
    assert sum(calls[2:]) == 64 * 20


def test_batched_equals_per_example_and_tuple_equals_tensor():
    model = mlp()
    x = torch.randn(4, 5, dtype=torch.float64)
    for method in (IntegratedGradients(model), Saliency(model), InputXGradient(model)):
        batched = method.attribute(x, target=[0, 1, 2, 1])
        single = torch.cat([method.attribute(x[i:i + 1], target=t) for i, t in enumerate([0, 1, 2, 1])])
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-13)
        as_tuple = method.attribute((x,), target=[0, 1, 2, 1])
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
        torch.testing.assert_close(as_tuple[0], batched, rtol=0, atol=0)


def test_seeded_generator_reproduces_stochastic_methods():
    model = mlp()
    x, refs = torch.randn(3, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    runs = [GradientShap(model).attribute(x, refs, stdevs=0.3, target=0, generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert torch.equal(*runs)
    runs = [NoiseTunnel(Saliency(model)).attribute(x, nt_samples=4, target=0,
                                                   generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*runs)


def test_noise_tunnel_with_zero_noise_equals_the_method():
    model = mlp()
    x = torch.randn(3, 5, dtype=torch.float64)
    ig = IntegratedGradients(model)
    plain = ig.attribute(x, target=1, n_steps=8)
    for nt_type, expected in [("smoothgrad", plain), ("smoothgrad_sq", plain**2), ("vargrad", plain * 0)]:
        out = NoiseTunnel(ig).attribute(x, nt_type=nt_type, nt_samples=3, stdevs=0.0, target=1, n_steps=8)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)


def test_noise_tunnel_sample_batches_do_not_change_results():
    model = mlp()
    x = torch.randn(3, 5, dtype=torch.float64)
    nt = NoiseTunnel(Saliency(model))
    a = nt.attribute(x, nt_samples=6, target=[0, 1, 2], generator=torch.Generator().manual_seed(0))
    b = nt.attribute(x, nt_samples=6, nt_samples_batch_size=6, target=[0, 1, 2],
                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noise_tunnel_passes_deltas_through():
    model = mlp()
    x = torch.randn(3, 5, dtype=torch.float64)
    attr, delta = NoiseTunnel(IntegratedGradients(model)).attribute(
        x, nt_samples=4, nt_samples_batch_size=3, target=0, return_convergence_delta=True, n_steps=40)
    assert attr.shape == x.shape and delta.shape == (12,) and delta.abs().max() < 1e-3
    with pytest.raises(IntellegoError, match="Saliency has no convergence delta"):
        NoiseTunnel(Saliency(model)).attribute(x, target=0, return_convergence_delta=True)


def test_additional_forward_args_follow_their_examples():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3).double()

    def f(x, scale, offset):
        return lin(x) * scale[:, None] + offset

    x, scale = torch.randn(4, 5, dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    expected = lin.weight[1] * x * scale[:, None]
    out = IntegratedGradients(f).attribute(x, target=1, additional_forward_args=(scale, 5.0), n_steps=6,
                                           internal_batch_size=5)
    torch.testing.assert_close(out, expected)
    nt = NoiseTunnel(InputXGradient(f)).attribute(x, stdevs=0.0, nt_samples=3, target=1,
                                                  additional_forward_args=(scale, 5.0))
    torch.testing.assert_close(nt, expected)


def test_tuple_inputs_and_baselines():
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2).double(), nn.Linear(4, 2).double()

    def f(x1, x2):
        return a(x1) + b(x2)

    x1, x2 = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out = IntegratedGradients(f).attribute((x1, x2), baselines=(0.5, None), target=0)
    torch.testing.assert_close(out[0], a.weight[0] * (x1 - 0.5))
    torch.testing.assert_close(out[1], b.weight[0] * x2)


def test_unused_input_gets_zero_attribution():
    lin = nn.Linear(3, 1).double()
    out = Saliency(lambda x, unused: lin(x)).attribute((torch.randn(2, 3).double(), torch.randn(2, 2).double()))
    assert torch.equal(out[1], torch.zeros(2, 2, dtype=torch.float64))


def test_dtype_and_device_are_kept():
    model = mlp().float()
    out = IntegratedGradients(model).attribute(torch.randn(2, 5), target=0, n_steps=4)
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x: IntegratedGradients(m).attribute(x, torch.zeros(3, 5), target=0), r"baselines of shape \(3, 5\)"),
        (lambda m, x: IntegratedGradients(m).attribute(x, target=3), "target 3 is out of range"),
        (lambda m, x: IntegratedGradients(m).attribute(x, target=[0, 1]), "target list has 2 entries"),
        (lambda m, x: IntegratedGradients(m).attribute(x, target=0, n_steps=0), "n_steps must be a positive int"),
        (lambda m, x: IntegratedGradients(m).attribute(x, target=0, method="simpson"), "method must be one of"),
        (lambda m, x: IntegratedGradients(m).attribute(x, target=0, method="riemann_trapezoid", n_steps=1),
         "at least 2"),
        (lambda m, x: Saliency(m).attribute(x), r"target is None but the model output has shape \(4, 3\)"),
        (lambda m, x: Saliency(m).attribute(x.long(), target=0), "dtype torch.int64"),
        (lambda m, x: GradientShap(m).attribute(x, torch.zeros(2, 4), target=0), "per-example shape"),
        (lambda m, x: GradientShap(m).attribute(x, torch.zeros(2, 5), n_samples=0, target=0), "n_samples"),
        (lambda m, x: NoiseTunnel(Saliency(m)).attribute(x, nt_type="smooth", target=0), "nt_type"),
        (lambda m, x: NoiseTunnel(Saliency(m)).attribute(x, stdevs=-1.0, target=0), "stdevs"),
        (lambda m, x: Saliency(lambda t: (t, t)).attribute(x, target=0), "must return a tensor"),
    ],
)
def test_bad_input_is_named_before_work(call, message):
    model = mlp().float()
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    with pytest.raises(IntellegoError, match=message):
        call(model, torch.randn(4, 5))
    assert len(calls) <= 2, "an error must come at the first model call, before any backward pass"


def test_error_is_also_assertion_error_for_ported_code():
    with pytest.raises(AssertionError):
        IntegratedGradients(mlp()).attribute(torch.randn(2, 5).double(), target=9)
