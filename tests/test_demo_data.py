"""Tests for the synthetic demo data sets and the shipped demo models."""

from __future__ import annotations

from importlib import resources

import pytest
import torch

from intellego.data import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    SHAPE_CLASSES,
    TOKEN_VOCAB,
    make_shapes,
    make_tabular,
    make_tokens,
    tabular_logit,
)
from intellego.models import (
    WEIGHT_FILES,
    ShapesCNN,
    TabularMLP,
    TokenClassifier,
    load_shapes_cnn,
    load_tabular_mlp,
    load_token_classifier,
)

HELD_OUT_SEED = 4242  # never used by intellego.models.train


def _accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(inputs).argmax(dim=1) == labels).float().mean().item()


# Shapes


def test_shapes_same_seed_same_data_and_different_seed_different() -> None:
    a, b, c = make_shapes(32, seed=7), make_shapes(32, seed=7), make_shapes(32, seed=8)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.masks, c.masks)


def test_shapes_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    make_shapes(8, seed=1)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("size", [32, 24])
def test_shapes_shapes_dtypes_and_range(size: int) -> None:
    data = make_shapes(10, seed=0, size=size)
    assert data.images.shape == (10, 3, size, size) and data.images.dtype == torch.float32
    assert data.labels.shape == (10,) and data.labels.dtype == torch.int64
    assert data.masks.shape == (10, 1, size, size) and data.masks.dtype == torch.bool
    assert data.classes == SHAPE_CLASSES == ("circle", "square", "triangle", "cross")
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    image, label, mask = data[3]
    assert image.shape == (3, size, size) and label.shape == () and mask.shape == (1, size, size)
    assert len(data) == 10
    assert len(make_shapes(0)) == 0


@pytest.mark.parametrize("n", [400, 401, 402, 403])
def test_shapes_classes_are_balanced(n: int) -> None:
    counts = make_shapes(n, seed=2).labels.bincount(minlength=4)
    assert counts.max() - counts.min() <= 1


def test_shapes_masks_are_nonempty_and_cover_the_object() -> None:
    data = make_shapes(200, seed=3)
    inside = data.masks.expand_as(data.images)
    area = data.masks.flatten(1).sum(1)
    assert (area >= 10).all()
    assert (area <= 0.5 * data.masks[0].numel()).all()
    mean_in = (data.images * inside).flatten(2).sum(2) / area[:, None]
    mean_out = (data.images * ~inside).flatten(2).sum(2) / (data.masks[0].numel() - area[:, None])
    # The object is one flat colour (plus slight pixel noise) ...
    spread_in = ((data.images - mean_in[..., None, None]).abs() * inside).flatten(2).sum(2) / area[:, None]
    assert spread_in.max() < 0.06
    # ... that differs clearly from the background around it.
    assert ((mean_in - mean_out).abs().max(dim=1).values > 0.2).all()


def test_shapes_colour_does_not_give_away_the_class() -> None:
    data = make_shapes(1000, seed=4)
    inside = data.masks.expand_as(data.images)
    colour = (data.images * inside).flatten(2).sum(2) / data.masks.flatten(1).sum(1, keepdim=True)
    per_class = torch.stack([colour[data.labels == k].mean(0) for k in range(4)])
    assert (per_class.max(0).values - per_class.min(0).values).max() < 0.05


# Tabular


def test_tabular_determinism_shapes_and_labels() -> None:
    a, b, c = make_tabular(300, seed=1), make_tabular(300, seed=1), make_tabular(300, seed=2)
    assert torch.equal(a.features, b.features) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.features, c.features)
    assert a.features.shape == (300, 10) and a.features.dtype == torch.float32
    assert a.labels.dtype == torch.int64 and set(a.labels.tolist()) == {0, 1}
    assert len(a.feature_names) == 10 and len(set(a.feature_names)) == 10
    assert torch.equal(a.labels, (tabular_logit(a.features) > 0).long())
    assert 0.4 < a.labels.float().mean() < 0.6
    features, label = a[0]
    assert features.shape == (10,) and len(a) == 300


def test_tabular_importances() -> None:
    importances = make_tabular(1).importances
    assert importances.shape == (10,) and importances.dtype == torch.float32
    assert importances.sum().item() == pytest.approx(1.0)
    assert (importances[:5] > 0).all() and (importances[5:] == 0).all()
    # Changing a noise feature never changes the label; changing x0 often does.
    data = make_tabular(500, seed=3)
    for index, should_matter in [(0, True), (7, False)]:
        moved = data.features.clone()
        moved[:, index] = torch.randn(500, generator=torch.Generator().manual_seed(0))
        changed = ((tabular_logit(moved) > 0).long() != data.labels).any().item()
        assert changed == should_matter


# Tokens


def test_tokens_determinism_shapes_and_vocab() -> None:
    a, b, c = make_tokens(200, seed=1), make_tokens(200, seed=1), make_tokens(200, seed=2)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.key_mask, b.key_mask)
    assert not torch.equal(a.tokens, c.tokens)
    assert a.tokens.shape == (200, 16) and a.tokens.dtype == torch.int64
    assert a.labels.shape == (200,) and a.labels.dtype == torch.int64
    assert a.key_mask.shape == (200, 16) and a.key_mask.dtype == torch.bool
    assert a.vocab == TOKEN_VOCAB and a.vocab[0] == "<pad>" and len(set(a.vocab)) == len(a.vocab)
    assert 20 <= len(a.vocab) <= 40
    assert a.tokens.min() >= 0 and a.tokens.max() < len(a.vocab)
    assert make_tokens(5, seq_len=8).tokens.shape == (5, 8)
    assert a.labels.sum().item() == 100


def test_tokens_padding_only_at_the_end() -> None:
    data = make_tokens(300, seed=3)
    padding = data.tokens == 0
    assert torch.equal(padding, padding.cummax(dim=1).values)
    assert (~padding).sum(1).min() >= 8
    assert not (data.key_mask & padding).any()


def test_tokens_key_mask_marks_exactly_the_deciding_words() -> None:
    data = make_tokens(300, seed=4)
    positive = torch.tensor(data.key_token_ids["positive"])
    negative = torch.tensor(data.key_token_ids["negative"])
    assert [data.vocab[i] for i in positive] == list(POSITIVE_WORDS)
    assert [data.vocab[i] for i in negative] == list(NEGATIVE_WORDS)
    is_positive = torch.isin(data.tokens, positive)
    is_negative = torch.isin(data.tokens, negative)
    assert torch.equal(data.key_mask, is_positive | is_negative)
    assert (data.key_mask.sum(1) >= 1).all()
    assert torch.equal(is_positive.any(1), data.labels == 1)
    assert torch.equal(is_negative.any(1), data.labels == 0)


# Models


def test_weight_files_are_small() -> None:
    folder = resources.files("intellego.models").joinpath("weights")
    for name in WEIGHT_FILES.values():
        size = len(folder.joinpath(name).read_bytes())
        assert 0 < size < 500 * 1024, name


def test_shipped_shapes_cnn_is_accurate() -> None:
    model = load_shapes_cnn()
    assert isinstance(model, ShapesCNN) and not model.training
    data = make_shapes(400, seed=HELD_OUT_SEED)
    assert _accuracy(model, data.images, data.labels) >= 0.95


def test_shipped_tabular_mlp_is_accurate() -> None:
    model = load_tabular_mlp()
    assert isinstance(model, TabularMLP) and not model.training
    data = make_tabular(400, seed=HELD_OUT_SEED)
    assert _accuracy(model, data.features, data.labels) >= 0.9


def test_shipped_token_classifier_is_accurate() -> None:
    model = load_token_classifier()
    assert isinstance(model, TokenClassifier) and not model.training
    assert isinstance(model.embedding, torch.nn.Embedding)
    data = make_tokens(400, seed=HELD_OUT_SEED)
    assert _accuracy(model, data.tokens, data.labels) >= 0.9


def test_token_classifier_survives_all_padding_rows() -> None:
    logits = load_token_classifier()(torch.zeros(2, 16, dtype=torch.long))
    assert torch.isfinite(logits).all()


def test_models_use_relu_modules_only() -> None:
    for model in (ShapesCNN(), TabularMLP()):
        relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
        assert relus and not any(m.inplace for m in relus)


def test_captum_attributions_find_the_ground_truth() -> None:
    captum_attr = pytest.importorskip("captum.attr")
    shapes = make_shapes(8, seed=HELD_OUT_SEED)
    cnn = load_shapes_cnn()
    for method in (captum_attr.DeepLift(cnn), captum_attr.LRP(cnn)):
        attributions = method.attribute(shapes.images.clone().requires_grad_(), target=shapes.labels)
        assert torch.isfinite(attributions).all()
    tokens = make_tokens(32, seed=HELD_OUT_SEED)
    classifier = load_token_classifier()
    lig = captum_attr.LayerIntegratedGradients(classifier, classifier.embedding)
    per_token = lig.attribute(tokens.tokens, torch.zeros_like(tokens.tokens), target=tokens.labels, n_steps=8)
    top = per_token.sum(-1).argmax(dim=1)
    assert tokens.key_mask[torch.arange(32), top].float().mean() >= 0.9
