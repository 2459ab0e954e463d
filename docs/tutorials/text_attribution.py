"""Tutorial: which words decided? Text classification and language-model attribution.

Part 1 explains the shipped token classifier (a one-layer transformer on a synthetic sentiment task whose
deciding words are known) with Layer Integrated Gradients on its embedding layer, and draws the words coloured
by their attribution. Part 2 trains the shipped tiny causal LM on a few sentences and asks which prompt words
made it continue the way it did, with ``LLMAttribution`` (feature ablation over words) and
``LLMGradientAttribution`` (integrated gradients on the embeddings). Runs in a few seconds:

    .venv/bin/python docs/tutorials/text_attribution.py      # writes docs/img/text_*.png and text_sentiment.html
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch

from intellego.attr import (
    FeatureAblation,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    TextTemplateInput,
    TextTokenInput,
)
from intellego.data import make_tokens
from intellego.models import TinyCausalLM, WordTokenizer, load_token_classifier, train_tiny_lm
from intellego.viz import VisualizationDataRecord, visualize_text

IMG = Path(__file__).resolve().parent.parent / "img"


def sentiment(out: Path) -> dict:
    """Part 1: per-word attributions of the token classifier."""
    model = load_token_classifier()
    data = make_tokens(8, seed=0)
    with torch.no_grad():
        probs = model(data.tokens).softmax(dim=1)
    pred = probs.argmax(dim=1)
    # Attribute to the embedding layer's output: a baseline of all-padding sequences (id 0).
    lig = LayerIntegratedGradients(model, model.embedding)
    attr = lig.attribute(data.tokens, baselines=torch.zeros_like(data.tokens), target=pred, n_steps=32)
    words = attr.sum(dim=-1)  # (N, L): one score per token
    records = []
    for i in range(4):
        keep = data.tokens[i] != 0
        tokens = [data.vocab[t] for t in data.tokens[i][keep].tolist()]
        scores = words[i][keep]
        records.append(VisualizationDataRecord(scores / scores.abs().max(), float(probs[i].max()), int(pred[i]),
                                               int(data.labels[i]), int(pred[i]), float(scores.sum()), tokens,
                                               None))
    visualize_text(records, display=False, path=out / "text_sentiment.html")
    # The sentiment words carry the attribution: their share of the absolute attribution per sequence.
    share = (words.abs() * data.key_mask).sum(1) / words.abs().sum(1)
    print(f"share of |attribution| on the sentiment words: {share.mean():.0%} "
          f"(they are {data.key_mask.sum() / (data.tokens != 0).sum():.0%} of the words)")
    return {"share": share, "key_fraction": float(data.key_mask.sum() / (data.tokens != 0).sum()),
            "accuracy": float((pred == data.labels).float().mean())}


def train_lm() -> tuple[TinyCausalLM, WordTokenizer]:
    sentences = ["ann likes red apples", "bob likes green pears", "ann eats red apples", "bob eats green pears",
                 "cat likes warm milk", "cat drinks warm milk"]
    return train_tiny_lm(sentences)


def language_model(out: Path) -> dict:
    """Part 2: which prompt words made the LM say "apples"?"""
    lm, tok = train_lm()
    # Perturbation: remove the words in the template's slots one at a time ("ann", "red").
    ablation = LLMAttribution(FeatureAblation(lm), tok)
    by_word = ablation.attribute(TextTemplateInput("{} likes {}", values=["ann", "red"]), target="apples")
    print("feature ablation, log-prob of 'apples' by slot:", by_word.seq_attr_dict)
    # Gradients: integrated gradients on the token embeddings, every prompt token.
    gradients = LLMGradientAttribution(LayerIntegratedGradients(lm, lm.embed_tokens), tok)
    by_token = gradients.attribute(TextTokenInput("ann likes", tok, skip_tokens=["<s>"]), target="red apples")
    fig, _ = by_token.plot_token_attr()
    fig.savefig(out / "text_llm_tokens.png", dpi=100, bbox_inches="tight")
    return {"ablation": by_word.seq_attr_dict, "tokens": by_token.input_tokens,
            "token_attr": by_token.token_attr}


def main(out: Path = IMG) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {**sentiment(out), **language_model(out)}


if __name__ == "__main__":
    main()
