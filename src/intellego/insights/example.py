"""The explorer on the shipped demo models and data: ``python -m intellego.insights.example``.

Four demos, picked with ``--data``: ``shapes`` (images, the default), ``tabular`` (columns), ``tokens``
(text, attributed through the embedding layer), each a few lines of Captum-style set-up, and ``llm``: LLM
attribution results of the tiny causal LM trained on six sentences (``intellego.models.train_tiny_lm``), shown as
per-target-token heat maps.

Example:
    >>> vis = build("tabular", n=32)
    >>> vis.session.config()["classes"]
    ['negative', 'positive']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import require
from . import AttributionVisualizer, Batch, explore_llm
from .feature_types import ImageFeature, TabularFeature, TextFeature

__all__ = ["build", "llm_demo", "DEMOS", "EmbeddingInput"]

DEMOS = ("shapes", "tabular", "tokens", "llm")
LLM_SENTENCES = ("ann likes red apples", "bob likes green pears", "ann eats red apples", "bob eats green pears",
                 "cat likes warm milk", "cat drinks warm milk")


def _batches(inputs: Tensor, labels: Tensor, size: int = 16, extra: Tensor | None = None) -> Iterator[Batch]:
    for start in range(0, labels.shape[0], size):
        part = slice(start, start + size)
        yield Batch(inputs[part], labels[part], None if extra is None else extra[part])


def _softmax(outputs: Tensor) -> Tensor:
    return torch.nn.functional.softmax(outputs, 1)


class EmbeddingInput(nn.Module):
    """The token classifier from its embeddings on: ``forward(embedded, tokens)``, tokens giving the padding.

    Attributing to the embeddings makes every gradient and perturbation method usable on text.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, embedded: Tensor, tokens: Tensor) -> Tensor:
        padding = tokens == 0
        padding = padding & ~padding.all(dim=1, keepdim=True)
        hidden = self.model.encoder(embedded, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(hidden.dtype)
        return self.model.head((hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0))


def llm_demo(title: str = "intellego insights · LLM demo") -> AttributionVisualizer:
    """The tiny LM trained on ``LLM_SENTENCES``; Shapley values of its completion of "ann likes", feature
    ablation of a longer prompt and Integrated Gradients over the tokens of "bob eats", in :func:`explore_llm`."""
    from ..attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        ShapleyValues,
        TextTemplateInput,
        TextTokenInput,
    )
    from ..models import train_tiny_lm

    lm, tok = train_tiny_lm(LLM_SENTENCES)
    short = TextTemplateInput("{} {}", values=["ann", "likes"], baselines=["cat", "eats"])
    long = TextTemplateInput("{} {} {} {} {}", values=["cat", "likes", "warm", "milk", "bob"],
                             baselines=["ann", "eats", "red", "apples", "cat"])
    return explore_llm({
        "ShapleyValues: ann likes ... (its own completion)":
            LLMAttribution(ShapleyValues(lm), tok).attribute(short, gen_args={"max_new_tokens": 2}),
        "FeatureAblation: cat likes warm milk bob ...":
            LLMAttribution(FeatureAblation(lm), tok).attribute(long, target="likes green pears"),
        "LayerIntegratedGradients: the tokens of bob eats ...":
            LLMGradientAttribution(LayerIntegratedGradients(lm, lm.embed_tokens), tok).attribute(
                TextTokenInput("bob eats", tok), target="green pears"),
    }, title=title)


def build(data: str = "shapes", n: int = 256, seed: int = 1234, **options: Any) -> AttributionVisualizer:
    """An :class:`AttributionVisualizer` over ``n`` fresh demo samples of kind ``data`` (see ``DEMOS``);
    ``"llm"`` is :func:`llm_demo` (``n`` and ``seed`` unused)."""
    require(data in DEMOS, f"data must be one of {list(DEMOS)}, got {data!r}")
    if data == "llm":
        require(set(options) <= {"title"}, f"the llm demo takes only a title option, got {sorted(options)}")
        return llm_demo(**options)
    from ..data import SHAPE_CLASSES, TABULAR_FEATURE_NAMES, make_shapes, make_tabular, make_tokens
    from ..models import load_shapes_cnn, load_tabular_mlp, load_token_classifier

    if data == "shapes":
        shapes = make_shapes(n, seed=seed)
        image = ImageFeature("Photo", baseline_transforms=[lambda x: x * 0, lambda x: torch.full_like(x, 0.5)],
                               input_transforms=[])
        return AttributionVisualizer([load_shapes_cnn()], list(SHAPE_CLASSES), [image],
                                     _batches(shapes.images, shapes.labels), score_func=_softmax,
                                     **{"title": "intellego insights · shapes demo", **options})
    if data == "tabular":
        table = make_tabular(n, seed=seed)
        return AttributionVisualizer([load_tabular_mlp()], ["negative", "positive"],
                                     [TabularFeature("row", list(TABULAR_FEATURE_NAMES))],
                                     _batches(table.features, table.labels), score_func=_softmax,
                                     **{"title": "intellego insights · tabular demo", **options})
    tokens = make_tokens(n, seed=seed)
    classifier = load_token_classifier()

    def embed(ids: Tensor) -> Tensor:
        with torch.no_grad():
            return classifier.embedding(ids)

    feature = TextFeature("Review", baseline_transforms=[torch.zeros_like], input_transforms=[embed],
                          visualization_transform=lambda ids: [tokens.vocab[i] for i in ids.tolist() if i != 0])
    return AttributionVisualizer([EmbeddingInput(classifier)], ["negative", "positive"], [feature],
                                 _batches(tokens.tokens, tokens.labels, extra=tokens.tokens), score_func=_softmax,
                                 **{"title": "intellego insights · tokens demo", **options})


if __name__ == "__main__":  # the package's command line (by module name: this module imports no CLI code)
    import runpy

    runpy.run_module("intellego.insights", run_name="__main__", alter_sys=True)
