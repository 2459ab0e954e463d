"""BERT for question answering as the SQuAD tutorials use it, offline: the notebooks load a fine-tuned bert-base
from a path; here ``BertForQuestionAnswering`` with random weights (12 layers and 12 heads as in bert-base, so the
notebooks' per-layer plots hold; width 48) and a ``BertTokenizer`` over a WordPiece vocabulary trained with
``tokenizers`` on a few sentences (the notebooks' question and text among them), with BERT's special tokens."""

from __future__ import annotations

from typing import Any

import torch

CORPUS = [
    "What is important to us?",
    "It is important to us to include, empower and support humans of all kinds.",
    "to include, empower and support humans of all kinds",
    "The cat sat on the mat and the dog ran far away.",
    "Paris is the capital of France and Berlin is the capital of Germany.",
    "Questions are answered by a span of the text: where it starts and where it ends.",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def squad_tokenizer(vocab_size: int = 300) -> Any:
    """A lower-casing WordPiece ``BertTokenizer`` trained on :data:`CORPUS`: the special tokens first (``[PAD]`` is
    id 0, as in BERT's vocabulary), then the corpus's words and the characters, the same on every run."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.train_from_iterator(CORPUS * 3, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                                                 show_progress=False))
    words = {w for text in CORPUS for w, _ in tk.pre_tokenizer.pre_tokenize_str(tk.normalizer.normalize_str(text))}
    # the trained vocabulary's whole words and characters, in sorted order: which intermediate pieces the trainer
    # keeps (between merges of equal counts) and the order of its ids vary from run to run
    pieces = sorted(p for p in set(tk.get_vocab()) - set(SPECIAL) if p in words or len(p.removeprefix("##")) == 1)
    return BertTokenizer(vocab={piece: i for i, piece in enumerate(SPECIAL + pieces)})


def squad_model(seed: int = 0, width: int = 48, **config: Any) -> Any:
    """``BertForQuestionAnswering`` with random weights (seeded): 12 layers, 12 heads, ``width`` wide."""
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(squad_tokenizer()), hidden_size=width, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=2 * width, max_position_embeddings=128, **config)
    return BertForQuestionAnswering(cfg).eval()


def layers_return_attentions(model: Any) -> Any:
    """``model`` with each encoder layer returning ``(hidden states, attention probabilities)``, as BERT's layers
    did in transformers 4, which Bert_SQUAD_Interpret2 was written for (its LayerConductance on a layer gets one
    attribution per output); transformers 5's layers return the hidden states alone. Returns ``model``."""
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions
    from transformers.models.bert.modeling_bert import BertEncoder, BertLayer

    class Layer(BertLayer):
        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            attended, probs = self.attention(hidden_states, attention_mask, **kwargs)
            return self.feed_forward_chunk(attended), probs

    class Encoder(BertEncoder):
        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("use_cache", None)
            kwargs.pop("encoder_attention_mask", None)
            for layer in self.layer:
                hidden_states = layer(hidden_states, attention_mask, **kwargs)[0]
            return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)

    model.bert.encoder.__class__ = Encoder
    for layer in model.bert.encoder.layer:
        layer.__class__ = Layer
    return model
