"""Forward functions that return Python numbers, 0-d tensors, one value per batch or outputs unrelated to the
batch: attribution shapes and values as in Captum 0.9 (float64), and the one place we differ."""

from __future__ import annotations

import pytest
import torch

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore")
D = torch.float64


def _lin(out=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, out).to(D)


def _x(n=3, seed=1):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=D)


EXACT = {"FeatureAblation": {}, "Occlusion": {"sliding_window_shapes": (1,)}, "ShapleyValues": {}}
OUTPUTS = {
    "python float": lambda m: lambda x: float(m(x)[:, 0].sum()),
    "0-d tensor": lambda m: lambda x: m(x)[:, 0].sum(),
    "(1,)": lambda m: lambda x: m(x)[:, 0].sum().reshape(1),
    "(1, 1)": lambda m: lambda x: m(x)[:, :1].sum(0, keepdim=True),
}


@pytest.mark.parametrize("kind", list(OUTPUTS))
@pytest.mark.parametrize("cls", list(EXACT))
def test_one_value_per_batch_matches_captum(cls, kind):
    f, x = OUTPUTS[kind](_lin()), _x()
    ours = getattr(ia, cls)(f).attribute(x, **EXACT[cls])
    theirs = getattr(ca, cls)(f).attribute(x, **EXACT[cls])
    if cls == "ShapleyValues" and kind == "(1, 1)":
        theirs = theirs.reshape(1, 4)  # Captum's Shapley classes keep the output's (1, 1): (1, 1, 4); see below
    assert ours.shape == theirs.shape == (1, 4)
    torch.testing.assert_close(ours, theirs.to(D), atol=1e-6, rtol=0)


def test_shapley_one_value_per_batch_of_shape_1_1_has_no_extra_dimension():
    """A model that returns ``(1, 1)`` for the whole batch: Captum's FeatureAblation, Occlusion, Lime and
    KernelShap give ``(1, *input)``, its ShapleyValues and ShapleyValueSampling ``(1, 1, *input)``; ours give
    ``(1, *input)`` everywhere."""
    f, x = OUTPUTS["(1, 1)"](_lin()), _x()
    assert ca.ShapleyValues(f).attribute(x).shape == (1, 1, 4)
    assert ca.FeatureAblation(f).attribute(x).shape == (1, 4)
    assert ia.ShapleyValues(f).attribute(x).shape == (1, 4)
    assert ia.ShapleyValueSampling(f).attribute(x, n_samples=2).shape == (1, 4)


@pytest.mark.parametrize("kind", list(OUTPUTS))
@pytest.mark.parametrize("cls", ["Lime", "KernelShap", "ShapleyValueSampling", "FeaturePermutation"])
def test_one_value_per_batch_sampled_methods(cls, kind):
    """Sampled methods: Captum's shape, and on a linear model the exact attribution (Lime with least squares
    and KernelShap recover ``w * sum over the batch of (x - baseline)``)."""
    m = _lin()
    f, x = OUTPUTS[kind](m), _x()
    kwargs: dict = {"n_samples": 40} if cls in ("Lime", "KernelShap") else {}
    if cls == "ShapleyValueSampling":
        kwargs["n_samples"] = 3
    theirs = getattr(ca, cls)(f).attribute(x, **kwargs)
    lib = getattr(ia, cls)(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(f)
    if cls in ("Lime", "KernelShap", "ShapleyValueSampling"):
        kwargs["generator"] = torch.Generator().manual_seed(0)
    ours = lib.attribute(x, **kwargs)
    assert ours.shape == (1, 4)
    if not (cls == "ShapleyValueSampling" and kind == "(1, 1)"):
        assert theirs.shape == ours.shape
    if cls != "FeaturePermutation":
        expected = m.weight[0] * x.sum(0)
        torch.testing.assert_close(ours, expected[None], atol=1e-8, rtol=1e-6)


UNRELATED = {
    "as many values as examples": lambda m: lambda x: m(x).sum(0),  # (3,) for a batch of 3
    "fewer values than examples": lambda m: lambda x: m(x).sum(0)[:2],
    "more values than examples": lambda m: lambda x: torch.cat([m(x).sum(0), m(x).amax(0)]),
}


@pytest.mark.parametrize("kind", list(UNRELATED))
@pytest.mark.parametrize("cls", list(EXACT) + ["FeaturePermutation"])
def test_outputs_unrelated_to_the_batch_match_captum(cls, kind):
    """An output that does not follow the examples gives one attribution row per output value, as in Captum,
    also where its length happens to equal the batch size (Captum reads that per example, which gives the same
    numbers since every example is perturbed alike)."""
    f, x = UNRELATED[kind](_lin()), _x()
    if cls == "FeaturePermutation":
        torch.manual_seed(5)
        ours = ia.FeaturePermutation(f).attribute(x)
        assert ours.shape == ca.FeaturePermutation(f).attribute(x).shape
        return
    ours = getattr(ia, cls)(f).attribute(x, **EXACT[cls])
    theirs = getattr(ca, cls)(f).attribute(x, **EXACT[cls])
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs.to(D), atol=1e-6, rtol=0)
    ours_one = getattr(ia, cls)(f).attribute(x, perturbations_per_eval=1, **EXACT[cls])
    torch.testing.assert_close(ours_one, ours, atol=1e-12, rtol=0)  # the chunking does not matter


@pytest.mark.parametrize("cls", ["Lime", "KernelShap"])
def test_unrelated_outputs_lime_kernel_shap_beyond_captum(cls):
    """Captum's Lime and KernelShap refuse an output unrelated to the batch ("Number of outputs is not
    appropriate" / "Invalid number of outputs"); ours fit one surrogate per output value."""
    m = _lin()
    f, x = UNRELATED["fewer values than examples"](m), _x()
    with pytest.raises(AssertionError, match="outputs"):
        getattr(ca, cls)(f).attribute(x, n_samples=20)
    lib = getattr(ia, cls)(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(f)
    ours = lib.attribute(x, n_samples=40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours, m.weight[:2] * x.sum(0), atol=1e-8, rtol=1e-6)


def test_unrelated_output_refuses_several_copies_per_call():
    f, x = UNRELATED["as many values as examples"](_lin()), _x()
    with pytest.raises(ValueError, match=r"the model returns output of shape \(3,\) for a batch of 3, i.e. one result "
                                         r"per batch; perturbations_per_eval must then be 1, got 2"):
        ia.FeatureAblation(f).attribute(x, perturbations_per_eval=2)


def _per_batch_2x3(m):
    return lambda x: m(x).sum(0).repeat(2).reshape(1, 2, 3)  # one (1, 2, 3) result per batch


@pytest.mark.parametrize("cls", list(EXACT) + ["ShapleyValueSampling"])
def test_multi_dimensional_output_per_batch_gives_one_row_per_output_element(cls):
    """A model returning one ``(1, 2, 3)`` result per batch: one attribution row per output element,
    ``(6, *input)``, as Captum's FeatureAblation and Occlusion give (its Shapley methods keep the output's shape,
    ``(1, 2, 3, *input)``: the same numbers)."""
    m = _lin()
    f, x = _per_batch_2x3(m), _x()
    kwargs = dict(EXACT.get(cls, {"n_samples": 2}))
    ours = getattr(ia, cls)(f).attribute(x, **kwargs)
    assert ours.shape == (6, 4)
    expected = (m.weight * x.sum(0)).repeat(2, 1)  # linear: every permutation gives each feature its own share
    torch.testing.assert_close(ours, expected, atol=1e-8, rtol=1e-6)
    theirs = getattr(ca, cls)(f).attribute(x, **kwargs)
    torch.testing.assert_close(ours, theirs.reshape(6, 4).to(D), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", ["Lime", "KernelShap"])
def test_multi_dimensional_output_per_batch_lime_kernel_shap(cls):
    m = _lin()
    f, x = _per_batch_2x3(m), _x()
    lib = getattr(ia, cls)(f, interpretable_model=ia.LinearRegression()) if cls == "Lime" else getattr(ia, cls)(f)
    ours = lib.attribute(x, n_samples=40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours, (m.weight * x.sum(0)).repeat(2, 1), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("number", [float, int])
def test_lime_base_with_a_python_number_output_matches_captum(number):
    """Captum's LimeBase accepts a forward returning a Python number (float or int) for one example without a
    target; ours too, with Captum's numbers on the same samples."""
    m = _lin()
    f, x = (lambda x: number(m(x)[:, 0].sum().item() * 1000)), _x(n=1)
    rows = [torch.tensor([r]) for r in ([1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0],
                                        [1, 1, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1])]

    def build(lib, interp):
        def perturb(original, **kwargs):
            yield from rows
        return lib.LimeBase(f, interp, lambda *a, **k: 1.0, perturb, True, lambda z, x, **k: x * z, None)

    sk = pytest.importorskip("captum._utils.models.linear_model").SkLearnLinearRegression()
    theirs = build(ca, sk).attribute(x, n_samples=len(rows))
    ours = build(ia, ia.LinearRegression()).attribute(x, n_samples=len(rows), perturbations_per_eval=1)
    torch.testing.assert_close(ours.double(), theirs.double(), atol=1e-4, rtol=1e-6)
