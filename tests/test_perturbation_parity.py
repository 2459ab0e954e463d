"""Parity with Captum 0.9 on random models in float64, and pins of where Captum differs."""

from __future__ import annotations

import warnings

import pytest
import torch

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")
D = torch.float64


def cnn(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 5 * 5, 4)).to(D)


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(D)


def close(a, b):
    torch.testing.assert_close(a.to(D), b.to(D), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_feature_ablation_parity(seed):
    m, x = cnn(seed), torch.randn(3, 2, 5, 5, dtype=D)
    close(ia.FeatureAblation(m).attribute(x, target=1), ca.FeatureAblation(m).attribute(x, target=1))
    mask = (torch.arange(25).reshape(1, 1, 5, 5) // 3).expand(1, 2, 5, 5)
    base = torch.randn(1, 2, 5, 5, dtype=D)
    close(ia.FeatureAblation(m).attribute(x, base, target=[0, 3, 2], feature_mask=mask),
          ca.FeatureAblation(m).attribute(x, base, target=[0, 3, 2], feature_mask=mask))
    t = (x, torch.randn(3, 6, dtype=D))
    f = lambda a, b: m(a)[:, 0] + mlp(seed)(b)[:, 1]  # noqa: E731
    masks = (torch.zeros(1, 2, 5, 5, dtype=torch.long), torch.tensor([[0, 1, 1, 2, 3, 0]]))
    for ours, theirs in zip(ia.FeatureAblation(f).attribute(t, feature_mask=masks),
                            ca.FeatureAblation(f).attribute(t, feature_mask=masks)):
        close(ours, theirs)


@pytest.mark.parametrize("window,strides", [((2, 2, 2), 1), ((1, 3, 3), (1, 2, 2)), ((2, 4, 3), (1, 3, 2))])
def test_occlusion_parity(window, strides):
    m, x = cnn(), torch.randn(2, 2, 5, 5, dtype=D)
    close(ia.Occlusion(m).attribute(x, window, strides, baselines=0.25, target=2),
          ca.Occlusion(m).attribute(x, window, strides, baselines=0.25, target=2))


@pytest.mark.parametrize("seed", [0, 1])
def test_shapley_values_parity(seed):
    m, x = mlp(seed), torch.randn(2, 6, dtype=D)
    mask = torch.tensor([[0, 1, 1, 2, 3, 4]])
    close(ia.ShapleyValues(m).attribute(x, target=1, feature_mask=mask),
          ca.ShapleyValues(m).attribute(x, target=1, feature_mask=mask))
    total = lambda x: m(x)[:, 0].sum()  # noqa: E731
    close(ia.ShapleyValues(total).attribute(x, feature_mask=mask),
          ca.ShapleyValues(total).attribute(x, feature_mask=mask))


def test_captum_casts_occlusion_and_shapley_to_float32():
    """Captum returns float32 from Occlusion and the Shapley classes even for float64 models; we keep float64."""
    m, x = mlp(), torch.randn(2, 6, dtype=D)
    assert ca.ShapleyValues(m).attribute(x, target=0, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]])).dtype == \
        torch.float32
    assert ca.Occlusion(m).attribute(x, (2,), target=0).dtype == torch.float32
    assert ia.ShapleyValues(m).attribute(x, target=0, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]])).dtype == D
    assert ia.Occlusion(m).attribute(x, (2,), target=0).dtype == D


def test_kernel_shap_captum_estimator_reproduces_captum_under_the_same_seed():
    pytest.importorskip("sklearn")
    m, x = mlp(), torch.randn(1, 6, dtype=D)
    torch.manual_seed(5)
    ours = ia.KernelShap(m).attribute(x, target=1, n_samples=20, estimator="captum")
    torch.manual_seed(5)
    theirs = ca.KernelShap(m).attribute(x, target=1, n_samples=20)
    torch.testing.assert_close(ours, theirs.to(D), atol=1e-5, rtol=0)


def _assert_lime_equal_with_the_same_samples(m, x):
    """Ours and Captum's Lime fed the same 16 interpretable samples by a perturb_func give the same numbers."""
    rows = [[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 1], [1, 1, 0, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 0, 0, 1, 1],
            [1, 1, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0], [1, 1, 1, 1, 0, 1]] * 2

    def samples(original, **kwargs):
        for r in rows:
            yield torch.tensor([r])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ca.Lime(m, perturb_func=samples).attribute(x, target=1, n_samples=len(rows))
    ours = ia.Lime(m, perturb_func=samples).attribute(x, target=1, n_samples=len(rows))
    torch.testing.assert_close(ours, theirs.to(D), atol=5e-5, rtol=0)


def test_lime_parity_with_the_same_samples():
    pytest.importorskip("sklearn")
    m, x = mlp(), torch.randn(1, 6, dtype=D)
    _assert_lime_equal_with_the_same_samples(m, x)


def test_lime_batch_shares_its_samples_unlike_captum():
    """Captum fits a batch one example at a time, each with fresh draws from the global stream; ours draw one
    set of samples for the whole batch and fit every example on it in one solve. With the same samples both
    give the same numbers; with random draws, example ``i`` of a batch equals example ``i`` attributed alone
    under the same seed (Captum's equals it only with the stream continued from the examples before)."""
    pytest.importorskip("sklearn")
    m, x = mlp(), torch.randn(3, 6, dtype=D)
    _assert_lime_equal_with_the_same_samples(m, x)
    batch = ia.Lime(m).attribute(x, target=1, n_samples=50, generator=torch.Generator().manual_seed(3))
    for i in range(3):
        alone = ia.Lime(m).attribute(x[i:i + 1], target=1, n_samples=50, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(batch[i:i + 1], alone, atol=1e-10, rtol=0)


@pytest.mark.parametrize("window", [1, 2])
def test_occlusion_of_an_integer_model_matches_captum(window):
    """Integer inputs and an integer model output: the window averages are fractions, returned in the default
    float dtype as Captum does (the averaging product used to fail on the integer values)."""
    f = lambda a, b: (a * 3 - b).sum(1)  # noqa: E731
    a = torch.tensor([[-10, 2, 5], [3, 4, 1]])
    b = torch.tensor([[-5, 1, 0], [1, 2, 2]])
    kw = {"sliding_window_shapes": ((window,), (window,))}
    ours = ia.Occlusion(f).attribute((a, b), **kw)
    theirs = ca.Occlusion(f).attribute((a, b), **kw)
    for o, t in zip(ours, theirs):
        assert o.dtype == t.dtype == torch.get_default_dtype()
        torch.testing.assert_close(o, t, atol=1e-6, rtol=0)


def test_lime_fit_draws_nothing_from_the_global_stream_unlike_captum():
    """Captum's surrogate fit draws from torch's global generator: its ``DataLoader`` iterator draws a base seed,
    and the fitted ``nn.Linear`` is initialised at random before sklearn's solution overwrites it. After a Lime
    call the stream is that much further on than the samples took, so a later call (Captum's docstring example
    calls Lime twice) gets other samples than ours. Ours fit without a draw; from the same stream state both give
    the same numbers."""
    pytest.importorskip("sklearn")
    m, x = mlp(), torch.randn(1, 6, dtype=D)
    results, states = [], []
    for lib in (ia, ca):
        torch.manual_seed(5)
        results.append(lib.Lime(m).attribute(x, target=1, n_samples=40))
        states.append(torch.get_rng_state())
    close(results[0], results[1])
    assert results[0].abs().sum() > 0
    assert not torch.equal(states[0], states[1])
    torch.set_rng_state(states[0])
    torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base seed
    torch.nn.Linear(6, 1)  # the surrogate's initial weights, overwritten by the fit
    assert torch.equal(torch.get_rng_state(), states[1])


def _in_expectation(draws, exact, spread, count):
    """The mean of ``count`` draws within five standard errors of the exact expectation."""
    gap = (torch.stack(draws).mean(0) - exact).abs()
    assert bool((gap <= 5 * spread / count ** 0.5 + 1e-9).all()), float(gap.max())


def test_feature_permutation_draws_other_permutations_than_captum_with_the_same_expectation():
    """FeaturePermutation's permutations come from other draws than Captum's (sorted random keys against
    ``torch.randperm``), both uniform over the batch orders but the identity; the expectation, over the five
    non-identity orders of a batch of three enumerated here, is the same, and both means converge to it."""
    import itertools

    m, x = mlp(), torch.randn(3, 6, dtype=D)
    with torch.no_grad():
        out = m(x)[:, 1]
        per_order = []
        for order in [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]:
            rows = []
            for j in range(6):
                moved = x.clone()
                moved[:, j] = x[list(order), j]
                rows.append(out - m(moved)[:, 1])
            per_order.append(torch.stack(rows, 1))
    exact, spread = torch.stack(per_order).mean(0), torch.stack(per_order).std(0, unbiased=False)
    for lib in (ia, ca):
        torch.manual_seed(0)
        _in_expectation([lib.FeaturePermutation(m).attribute(x, target=1) for _ in range(300)], exact, spread, 300)
    torch.manual_seed(0)
    ours = ia.FeaturePermutation(m).attribute(x, target=1)
    torch.manual_seed(0)
    assert not torch.allclose(ours, ca.FeaturePermutation(m).attribute(x, target=1))


def test_shapley_value_sampling_draws_other_orders_than_captum_with_the_same_expectation():
    """ShapleyValueSampling draws its feature orders otherwise than Captum; one order per call, both means
    converge to the Shapley values enumerated here over the six orders of three feature groups (baseline 0)."""
    import itertools

    m, x = mlp(), torch.randn(1, 6, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    with torch.no_grad():
        per_order = []
        for order in itertools.permutations(range(3)):
            on, contrib = torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=D)
            value = m(torch.zeros_like(x))[0, 1]
            for g in order:
                on[g] = True
                now = m(x * on[mask].to(D))[0, 1]
                contrib[g], value = now - value, now
            per_order.append(contrib[mask])
    exact, spread = torch.stack(per_order).mean(0), torch.stack(per_order).std(0, unbiased=False)
    for lib in (ia, ca):
        torch.manual_seed(0)
        draws = [lib.ShapleyValueSampling(m).attribute(x, target=1, feature_mask=mask, n_samples=1).to(D)
                 for _ in range(300)]
        _in_expectation(draws, exact, spread, 300)
    torch.manual_seed(0)
    ours = ia.ShapleyValueSampling(m).attribute(x, target=1, feature_mask=mask, n_samples=10)
    torch.manual_seed(0)
    assert not torch.allclose(ours, ca.ShapleyValueSampling(m).attribute(x, target=1, feature_mask=mask,
                                                                          n_samples=10).to(D))
