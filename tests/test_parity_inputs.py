"""Inputs and baselines as ported programs pass them: boolean baselines, integer inputs with float baselines,
FeaturePermutation masks across tensors, sparse inputs, empty inputs and NoiseTunnel around FeatureAblation;
each case checked against Captum 0.9 (float64 where the model allows)."""

from __future__ import annotations

import pytest
import torch

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")
models = pytest.importorskip("captum.testing.helpers.basic_models")
pytestmark = pytest.mark.filterwarnings("ignore")
D = torch.float64
EXACT = {"FeatureAblation": {}, "Occlusion": {"sliding_window_shapes": (1,)}, "ShapleyValues": {}}


def _lin(out=3, inp=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(inp, out).to(D)


def _close(a, b, atol=1e-6):
    torch.testing.assert_close(a.to(D), b.to(D), atol=atol, rtol=0)


@pytest.mark.parametrize("cls", list(EXACT))
def test_boolean_baselines(cls):
    m = _lin()
    f = lambda t: m(t.to(D))  # noqa: E731
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) > 0.5
    for base in (torch.zeros(1, 4, dtype=torch.bool), True, torch.tensor([[True, False, True, False]])):
        _close(getattr(ia, cls)(f).attribute(x, baselines=base, target=0, **EXACT[cls]),
               getattr(ca, cls)(f).attribute(x, baselines=base, target=0, **EXACT[cls]))
    # a float input with a boolean baseline reads it as 0/1
    xf = torch.randn(3, 4, dtype=D)
    ours = getattr(ia, cls)(m).attribute(xf, baselines=torch.ones(1, 4, dtype=torch.bool), target=0, **EXACT[cls])
    _close(ours, getattr(ia, cls)(m).attribute(xf, baselines=1.0, target=0, **EXACT[cls]), atol=1e-12)
    if cls != "ShapleyValues":  # Captum's ShapleyValues feeds the bool baseline to the model: dtype error
        _close(ours, getattr(ca, cls)(m).attribute(xf, baselines=torch.ones(1, 4, dtype=torch.bool), target=0,
                                                   **EXACT[cls]))


@pytest.mark.parametrize("cls", list(EXACT))
def test_integer_inputs_with_float_baselines(cls):
    """The removed features take the float baseline (the perturbed input is float), as Captum's FeatureAblation
    and Occlusion do; the baseline is not truncated to the input's integer dtype."""
    m = _lin()
    f = lambda t: m(t.to(D))  # noqa: E731
    x = torch.randint(0, 5, (3, 4), generator=torch.Generator().manual_seed(2))
    base = torch.full((1, 4), 0.5, dtype=D)
    ours = getattr(ia, cls)(f).attribute(x, baselines=base, target=0, **EXACT[cls])
    _close(ours, getattr(ca, cls)(f).attribute(x, baselines=base, target=0, **EXACT[cls]))
    _close(ours, m.weight[0] * (x - 0.5), atol=1e-12)
    _close(getattr(ia, cls)(f).attribute(x, baselines=0.5, target=0, **EXACT[cls]), ours, atol=1e-12)


def test_captum_shapley_truncates_a_number_baseline_of_integer_inputs():
    """Captum's ShapleyValues reads ``baselines=0.5`` of an integer input as 0 (its tensor form as 0.5, and its
    FeatureAblation reads both as 0.5); ours reads 0.5 in every form."""
    m = _lin()
    f = lambda t: m(t.to(D))  # noqa: E731
    x = torch.randint(1, 5, (3, 4), generator=torch.Generator().manual_seed(2))
    _close(ca.ShapleyValues(f).attribute(x, baselines=0.5, target=0), m.weight[0] * x)
    _close(ia.ShapleyValues(f).attribute(x, baselines=0.5, target=0), m.weight[0] * (x - 0.5))


@pytest.mark.parametrize("cls", ["Lime", "KernelShap"])
def test_integer_inputs_with_float_baselines_surrogates(cls):
    m = _lin()
    f = lambda t: m(t.to(D))  # noqa: E731
    x = torch.randint(0, 5, (2, 4), generator=torch.Generator().manual_seed(3))
    method = ia.Lime(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else ia.KernelShap(f)
    ours = method.attribute(x, baselines=0.5, target=1, n_samples=60, generator=torch.Generator().manual_seed(0))
    _close(ours, m.weight[1] * (x - 0.5), atol=1e-6)  # float32: the input is not floating point


def test_feature_permutation_mask_across_tensors_batch_of_two():
    """A feature spanning two tensors; with two examples the only permutation is the swap, so the values are
    Captum's exactly."""
    m = _lin(2, 5)
    g = lambda a, b: m(torch.cat([a, b], 1))  # noqa: E731
    a, b = torch.randn(2, 3, dtype=D), torch.randn(2, 2, dtype=D)
    masks = (torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2]]))
    for ours, theirs in zip(ia.FeaturePermutation(g).attribute((a, b), target=1, feature_mask=masks),
                            ca.FeaturePermutation(g).attribute((a, b), target=1, feature_mask=masks)):
        _close(ours, theirs, atol=1e-12)


def test_feature_permutation_shuffles_a_feature_across_tensors_together():
    """A feature that spans two tensors keeps its values together: one permutation of the batch for all its
    elements. Captum draws one permutation per tensor, which pulls the feature apart: here a model that reads
    the difference of the feature's two copies (zero on every example) gets an importance from Captum."""
    x = torch.randn(8, 1, dtype=D)
    f = lambda a, b: (a - b).abs().sum(1) + a.sum(1)  # noqa: E731
    masks = (torch.tensor([[0]]), torch.tensor([[0]]))
    ours = ia.FeaturePermutation(f).attribute((x, x.clone()), feature_mask=masks,
                                              generator=torch.Generator().manual_seed(0))
    mixed = [ca.FeaturePermutation(f).attribute((x, x.clone()), feature_mask=masks) for _ in range(3)]
    expected = x[:, 0] - ours[0][:, 0]  # f(x) - f(permuted) = x - x[perm]: the shuffle kept a == b
    assert torch.isfinite(expected).all()
    assert any((t[0] - ours[0]).abs().max() > 1e-6 for t in mixed)
    perm_values = x[:, 0] - ours[0][:, 0]
    assert sorted(perm_values.tolist()) == pytest.approx(sorted(x[:, 0].tolist()))  # a permutation of x


SPARSE_METHODS = ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "KernelShap", "Lime"]


@pytest.mark.parametrize("cls", SPARSE_METHODS)
def test_sparse_input_of_another_length(cls):
    """A list of sparse ids whose length is not the batch size, for a model that returns one value per batch:
    each tensor is one feature group of its own, as in Captum."""
    model = models.BasicModelWithSparseInputs()
    inp1 = torch.tensor([[1.0, -2.0, 3.0], [2.0, -1.0, 3.0]])
    inp2 = torch.tensor([1, 7, 2, 4, 5, 3, 6])
    kwargs: dict = {"n_samples": 40} if cls in ("Lime", "KernelShap") else {}
    if cls == "ShapleyValueSampling":
        kwargs["n_samples"] = 3
    method = ia.Lime(model, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(model)
    ours = method.attribute((inp1, inp2), **kwargs)
    theirs = getattr(ca, cls)(model).attribute((inp1, inp2), **kwargs)
    assert [t.shape for t in ours] == [t.shape for t in theirs] == [(1, 3), (1,)]
    _close(ours[0], torch.tensor([[9.0, -3.0, 12.0]]), atol=1e-4)
    _close(ours[1], torch.tensor([2.0]), atol=1e-4)
    if cls != "Lime":  # Captum's Lime: Lasso
        _close(theirs[0], ours[0], atol=1e-4)


def test_feature_permutation_sparse_input():
    """Each tensor is shuffled along its own first dimension; on average the sparse list's importance is
    ``2 * (1 - E[new first id]) = -6`` (Captum's own test) and the linear part's is 0."""
    model = models.BasicModelWithSparseInputs()
    inp1 = torch.tensor([[1.0, -2.0, 3.0], [2.0, -1.0, 3.0]])
    inp2 = torch.tensor([1, 7, 2, 4, 5, 3, 6])
    g = torch.Generator().manual_seed(0)
    runs = [ia.FeaturePermutation(model).attribute((inp1, inp2), generator=g) for _ in range(400)]
    a1 = torch.stack([r[0] for r in runs]).mean(0)
    a2 = torch.stack([r[1] for r in runs]).mean(0)
    assert a2.shape == (1,) and a1.shape == (1, 3)
    _close(a1, torch.zeros(1, 3), atol=1e-5)
    assert abs(float(a2) + 6.0) < 0.5
    theirs = ca.FeaturePermutation(model).attribute((inp1, inp2))
    assert [t.shape for t in theirs] == [(1, 3), (1,)]


@pytest.mark.parametrize("cls", ["Lime", "KernelShap", "FeatureAblation", "ShapleyValues", "ShapleyValueSampling"])
def test_empty_input_tensor(cls):
    """A tensor with no elements beside others has no features (its attribution is empty); the other tensors'
    attributions are unchanged. Inputs with no elements at all give empty attributions (Captum's FeatureAblation
    does the same; its Lime, KernelShap and Shapley classes fail inside)."""
    m = _lin(1, 3)
    f = lambda a, b: m(a)[:, 0] + b.sum(1)  # noqa: E731
    a = torch.randn(2, 3, dtype=D)
    kwargs: dict = {"n_samples": 30} if cls in ("Lime", "KernelShap", "ShapleyValueSampling") else {}
    if cls in ("Lime", "KernelShap", "ShapleyValueSampling"):
        kwargs["generator"] = torch.Generator().manual_seed(0)
    method = ia.Lime(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(f)
    ours = method.attribute((a, torch.zeros(2, 0, dtype=D)), **kwargs)
    assert ours[1].shape == (2, 0)
    _close(ours[0], m.weight[0] * a, atol=1e-8)
    kwargs.pop("generator", None)
    theirs = getattr(ca, cls)(f).attribute((a, torch.zeros(2, 0, dtype=D)), **kwargs)
    assert [t.shape for t in theirs] == [t.shape for t in ours]
    empty = getattr(ia, cls)(lambda t: t.sum(1)).attribute(torch.zeros(2, 0, dtype=D))
    assert empty.shape == (2, 0)
    assert ca.FeatureAblation(lambda t: t.sum(1)).attribute(torch.zeros(2, 0, dtype=D)).shape == (2, 0)


def test_noise_tunnel_around_feature_ablation_with_a_mask_per_example():
    """The per-example mask of the caller's batch follows its examples into the noisy copies (Captum repeats it
    the same way)."""
    m = _lin(2)
    x = torch.randn(3, 4, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0]])
    ours = ia.NoiseTunnel(ia.FeatureAblation(m)).attribute(x, nt_samples=4, stdevs=0.0, target=0, feature_mask=mask)
    theirs = ca.NoiseTunnel(ca.FeatureAblation(m)).attribute(x, nt_samples=4, stdevs=0.0, target=0,
                                                             feature_mask=mask)
    _close(ours, theirs, atol=1e-12)
    _close(ours, ia.FeatureAblation(m).attribute(x, target=0, feature_mask=mask), atol=1e-12)
    noisy = ia.NoiseTunnel(ia.FeatureAblation(m)).attribute(x, nt_samples=3, nt_samples_batch_size=2, stdevs=0.1,
                                                            target=0, feature_mask=mask,
                                                            generator=torch.Generator().manual_seed(0))
    assert noisy.shape == x.shape
    # features of one example share one value: the mask was applied per example
    assert torch.allclose(noisy[0, 0], noisy[0, 1]) and torch.allclose(noisy[2, 2], noisy[2, 3])


@pytest.mark.parametrize("cls", SPARSE_METHODS + ["FeaturePermutation"])
def test_empty_sparse_input(cls):
    """An empty list of sparse ids (``torch.tensor([])``) beside a batch, for a model that returns one value per
    batch: it is one feature with attribution 0 (Captum's FeatureAblation and FeaturePermutation give the same;
    its Shapley, Lime and KernelShap classes fail inside with IndexError)."""
    model = models.BasicModelWithSparseInputs()
    inp1 = torch.tensor([[1.0, -2.0, 3.0], [2.0, -1.0, 3.0]])
    kwargs: dict = {"n_samples": 40, "generator": torch.Generator().manual_seed(0)} \
        if cls in ("Lime", "KernelShap", "ShapleyValueSampling") else {}
    method = ia.Lime(model, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(model)
    ours = method.attribute((inp1, torch.tensor([])), **kwargs)
    assert [t.shape for t in ours] == [(1, 3), (1,)]
    _close(ours[1], torch.zeros(1), atol=1e-6)
    _close(ours[0], torch.zeros(1, 3) if cls == "FeaturePermutation" else torch.tensor([[9.0, -3.0, 12.0]]),
           atol=1e-5)
    if cls in ("FeatureAblation", "FeaturePermutation"):
        theirs = getattr(ca, cls)(model).attribute((inp1, torch.tensor([])))
        for a, b in zip(ours, theirs):
            _close(a, b, atol=1e-6)


@pytest.mark.parametrize("cls", ["FeatureAblation", "Lime", "ShapleyValues"])
def test_empty_feature_mask_of_an_empty_input(cls):
    """An empty tensor given an empty mask (``torch.tensor([[]], dtype=torch.long)``) beside a masked one: the
    empty mask holds no ids and is accepted (it used to fail inside the negative-id check)."""
    m = _lin(1, 3)
    f = lambda a, b: m(a)[:, 0] + b.sum(1)  # noqa: E731
    a, b = torch.randn(1, 3, dtype=D), torch.zeros(1, 0, dtype=D)
    mask = (torch.tensor([[0, 1, 1]]), torch.tensor([[]], dtype=torch.long))
    method = ia.Lime(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(f)
    kwargs: dict = {"n_samples": 30, "generator": torch.Generator().manual_seed(0)} if cls == "Lime" else {}
    ours = method.attribute((a, b), feature_mask=mask, **kwargs)
    assert ours[1].shape == (1, 0)
    contrib = m.weight[0] * a[0]
    _close(ours[0][0], torch.stack([contrib[0], contrib[1:].sum(), contrib[1:].sum()]), atol=1e-8)
    if cls == "FeatureAblation":
        _close(ours[0], ca.FeatureAblation(f).attribute((a, b), feature_mask=mask)[0], atol=1e-8)


@pytest.mark.parametrize("cls", ["FeatureAblation", "FeaturePermutation", "ShapleyValues"])
def test_float_feature_mask_of_whole_numbers(cls):
    """A mask built as ``torch.zeros_like(x)`` of a float input: whole numbers are read as ids, as Captum does;
    fractional values are refused by name."""
    m = _lin(1, 4)
    x = torch.randn(4, 4, dtype=D)
    mask = torch.tensor([[0.0, 0.0, 1.0, 2.0]], dtype=D)
    torch.manual_seed(0)
    ours = getattr(ia, cls)(m).attribute(x, target=0, feature_mask=mask)
    torch.manual_seed(0)
    expected = getattr(ia, cls)(m).attribute(x, target=0, feature_mask=mask.long())
    _close(ours, expected, atol=0)
    if cls != "FeaturePermutation":
        _close(ours, getattr(ca, cls)(m).attribute(x, target=0, feature_mask=mask), atol=1e-7)
    with pytest.raises(ValueError, match=r"feature_mask must hold integer feature ids, got dtype torch.float64 "
                                         r"with fractional values"):
        getattr(ia, cls)(m).attribute(x, target=0, feature_mask=mask + 0.5)


@pytest.mark.parametrize("cls", ["FeatureAblation", "FeaturePermutation", "ShapleyValueSampling"])
@pytest.mark.parametrize("batch", [3, 40])
def test_forward_tied_to_its_batch(cls, batch):
    """A loss against the labels of the batch (Captum's FeaturePermutation example) runs on that batch only:
    stacked copies or the cost probe's rows fail inside it. Its one value per batch then goes one copy per
    call, as Captum calls it, with Captum's numbers; a forward that fails on the batch itself keeps its error."""
    m = _lin(1, 4)
    x = torch.randn(batch, 4, dtype=D)
    labels = torch.randn(batch, dtype=D)
    f = lambda t: ((m(t)[:, 0] - labels) ** 2).mean()  # noqa: E731
    kwargs: dict = {"n_samples": 2} if cls == "ShapleyValueSampling" else {}
    torch.manual_seed(0)
    ours = getattr(ia, cls)(f).attribute(x, **kwargs)
    assert ours.shape == (1, 4)
    torch.manual_seed(0)
    theirs = getattr(ca, cls)(f).attribute(x, **kwargs)
    if cls == "FeatureAblation":
        _close(ours, theirs, atol=1e-8)
    else:  # random orders or permutations: each feature's value is exact on a model additive in the features
        assert theirs.shape == ours.shape
    wrong = lambda t: m(t)[:, 0] - labels[:2]  # noqa: E731
    with pytest.raises((RuntimeError, ValueError), match="must match the size"):
        getattr(ia, cls)(wrong).attribute(x, **kwargs)
