"""Captum's Lime tutorials on intellego (issue 24): perturbations of different shapes and scalar baselines.

Each case is written from Captum's documented behaviour and checked against Captum 0.9 in float64.
"""

from __future__ import annotations

import pytest
import torch

import intellego.attr as ia
from intellego.attr.lime import default_from_interp_rep_transform
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
lime_mod = pytest.importorskip("captum.attr._core.lime")
D = torch.float64


def _text_model(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    return torch.nn.EmbeddingBag(30, 5, mode="mean").to(D), torch.nn.Linear(5, 3).to(D)


def _fixed_samples(n: int, length: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        z = (torch.rand(1, length, generator=g) < 0.5).long()
        if z.sum() > 0:  # the tutorial's model needs at least one token
            out.append(z)
    return out


def _lime_base(lib, fwd, samples, model):
    """Captum's text tutorial: drop the absent tokens (inputs of different lengths), cosine of embeddings."""
    def perturb(text, **kwargs):  # a generator function: both libraries draw samples from it in order
        yield from samples

    def interp_to_input(z, original, **kwargs):
        return original[z.bool()].view(original.size(0), -1)

    def similarity(original, perturbed, z, **kwargs):
        a, b = model[0](original), model[0](perturbed)
        return torch.exp(-((1 - torch.nn.functional.cosine_similarity(a, b, dim=1)) ** 2) / 2)

    if lib is ia:
        interp = ia.LinearRegression()
    else:
        interp = pytest.importorskip("captum._utils.models.linear_model").SkLearnLinearRegression()
    return lib.LimeBase(fwd, interp, similarity, perturb, True, interp_to_input, None)


@pytest.mark.parametrize("per", [None, 1, 2, 3, 5, 7, 40])
def test_lime_base_variable_length_perturbations_every_chunk_size(per):
    emb, lin = _text_model()
    model = (emb, lin)
    text = torch.randint(0, 30, (1, 8))
    samples = _fixed_samples(40, 8)

    def fwd(t):  # one or several perturbed texts of one length
        return lin(emb(t))

    ours = _lime_base(ia, fwd, samples, model).attribute(text, target=1, n_samples=40, perturbations_per_eval=per)
    theirs = _lime_base(ca, fwd, samples, model).attribute(text, target=1, n_samples=40)  # Captum: one per call
    torch.testing.assert_close(ours.double(), theirs.double(), atol=1e-5, rtol=0)


def test_lime_base_tutorial_forward_for_one_sample_runs_at_default_chunking():
    """The tutorial's forward squeezes the batch away (``EmbeddingBag`` with offsets takes one 1-d text): at the
    default chunking, perturbations of different lengths are evaluated one per call, as Captum does."""
    emb, lin = _text_model(1)
    text, offsets = torch.randint(0, 30, (1, 10)), torch.tensor([0])
    samples = _fixed_samples(25, 10, seed=3)

    def fwd(t, off):
        return lin(emb(t.squeeze(0), off))

    ours = _lime_base(ia, fwd, samples, (emb, lin)).attribute(text, target=torch.tensor([2]),
                                                               additional_forward_args=(offsets,), n_samples=25)
    theirs = _lime_base(ca, fwd, samples, (emb, lin)).attribute(text, target=torch.tensor([2]),
                                                                 additional_forward_args=(offsets,), n_samples=25)
    torch.testing.assert_close(ours.double(), theirs.double(), atol=1e-5, rtol=0)


def test_lime_base_same_shapes_still_batched():
    """Perturbations of one shape still go through the model together at the default chunking."""
    calls = []
    lin = torch.nn.Linear(4, 1).to(D)

    def fwd(x):
        calls.append(x.shape[0])
        return lin(x)

    lime = ia.LimeBase(fwd, ia.LinearRegression(), lambda *a, **k: 1.0,
                       lambda x, **k: torch.bernoulli(torch.full((1, 4), 0.5)), True,
                       lambda z, x, **k: x * z, None)
    lime.attribute(torch.randn(1, 4, dtype=D), target=0, n_samples=12)
    assert calls == [12]


def test_default_from_interp_rep_transform_scalar_baselines():
    x = torch.randn(1, 6, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    z = torch.tensor([[1, 0, 1]])
    for base in (0, 0.5, torch.full((1, 6), -1.0, dtype=D)):
        ours = default_from_interp_rep_transform(z, x, feature_mask=mask, baselines=base)
        theirs = lime_mod.default_from_interp_rep_transform(z, x, feature_mask=mask, baselines=base)
        torch.testing.assert_close(ours, theirs)
    xs = (x, torch.randn(1, 2, dtype=D))
    masks = (mask, torch.tensor([[2, 0]]))
    ours = default_from_interp_rep_transform(z, xs, feature_mask=masks, baselines=(0, 1.5))
    theirs = lime_mod.default_from_interp_rep_transform(z, xs, feature_mask=masks, baselines=(0, 1.5))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    # Lime's own transform is the same function
    lime = ia.Lime(torch.nn.Linear(6, 1))
    torch.testing.assert_close(lime.from_interp_rep_transform(z, x, feature_mask=mask, baselines=0),
                               lime_mod.default_from_interp_rep_transform(z, x, feature_mask=mask, baselines=0))


def test_default_from_interp_rep_transform_errors_name_the_argument():
    x = torch.randn(1, 3)
    with pytest.raises(IntellegoError, match="feature_mask must be a torch.Tensor or a tuple of tensors, got None"):
        default_from_interp_rep_transform(torch.ones(1, 3), x, baselines=0)
    with pytest.raises(IntellegoError, match=r"baselines of shape \(2,\) cannot be broadcast"):
        default_from_interp_rep_transform(torch.ones(1, 3), x, feature_mask=torch.arange(3)[None],
                                          baselines=torch.zeros(2))


@pytest.mark.parametrize("cls", ["Lime", "KernelShap", "FeatureAblation", "ShapleyValues",
                                 "Occlusion", "IntegratedGradients", "DeepLift"])
def test_scalar_baselines_where_captum_accepts_them(cls):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).to(D)
    x = torch.randn(3, 4, dtype=D)
    kwargs: dict = {"target": 1}
    if cls == "Occlusion":
        kwargs["sliding_window_shapes"] = (1,)
    if cls in ("Lime", "KernelShap"):
        kwargs.update(n_samples=30)
        # sampled: compare with the tensor-baseline run on the same draws
        full = torch.full_like(x, 0.25)
        g = torch.Generator().manual_seed(2)
        ours = getattr(ia, cls)(model).attribute(x, baselines=0.25, generator=g, **kwargs)
        g = torch.Generator().manual_seed(2)
        ref = getattr(ia, cls)(model).attribute(x, baselines=full, generator=g, **kwargs)
        torch.testing.assert_close(ours, ref)
        return
    ours = getattr(ia, cls)(model).attribute(x, baselines=0.25, **kwargs)
    theirs = getattr(ca, cls)(model).attribute(x, baselines=0.25, **kwargs)
    torch.testing.assert_close(ours, theirs.to(D), atol=1e-6, rtol=0)  # Captum's Shapley/Occlusion: float32
