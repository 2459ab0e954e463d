"""A tiny causal language model and word tokenizer with Hugging Face's calling conventions.

They exist so that :class:`intellego.attr.LLMAttribution` and friends can be tried, tested and demonstrated
without downloading a model: the model exposes ``get_input_embeddings()`` (an ``nn.Embedding`` named
``embed_tokens``), a forward ``model(input_ids, attention_mask=None, ...)`` returning an object with
``.logits`` of shape ``(batch, length, vocab)`` and a greedy ``generate(input_ids, max_new_tokens=...)``; the
tokenizer has ``encode``, ``decode``, ``convert_ids_to_tokens``, ``convert_tokens_to_ids`` and a
``__call__`` returning ``input_ids`` (and ``offset_mapping`` on request). The weights are random (seeded):
the model is a test and demo fixture, not a language model that knows anything.

Example:
    >>> from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer
    >>> tok = WordTokenizer("the cat sat on a mat .".split())
    >>> model = TinyCausalLM(len(tok), seed=0)
    >>> ids = tok.encode("the cat sat", return_tensors="pt")
    >>> ids.tolist(), tuple(model(ids).logits.shape)
    ([[1, 3, 4, 5]], (1, 4, 10))
    >>> model.generate(ids, max_new_tokens=2).shape
    torch.Size([1, 6])
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import IntellegoError, describe, require

__all__ = ["CausalLMOutput", "TinyCausalLM", "WordTokenizer", "train_tiny_lm"]

_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class CausalLMOutput:
    """What the model returns: next-token logits for every position, ``(batch, length, vocab)``."""

    logits: Tensor


class WordTokenizer:
    """Splits text into words and punctuation marks; ids ``0 = <unk>``, ``1 = <s>`` (begin), ``2 = </s>``.

    Args:
        words: the vocabulary after the three special tokens (duplicates are ignored).
        add_bos: whether ``encode`` and ``__call__`` prepend ``<s>`` when ``add_special_tokens`` is true.

    Example:
        >>> tok = WordTokenizer(["hello", "world", "!"])
        >>> tok.encode("hello world!")
        [1, 3, 4, 5]
        >>> tok.decode([3, 4, 5]), tok.convert_ids_to_tokens([1, 3])
        ('hello world!', ['<s>', 'hello'])
    """

    unk_token, bos_token, eos_token = "<unk>", "<s>", "</s>"
    unk_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self, words: Iterable[str], add_bos: bool = True) -> None:
        vocab = [self.unk_token, self.bos_token, self.eos_token]
        for w in words:
            require(isinstance(w, str) and _WORD.fullmatch(w) is not None,
                    f"words must be single words or punctuation marks, got {describe(w)}")
            if w not in vocab:
                vocab.append(w)
        self.vocab = vocab
        self.ids = {w: i for i, w in enumerate(vocab)}
        self.add_bos = add_bos

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def all_special_ids(self) -> list[int]:
        return [0, 1, 2]

    def _spans(self, text: str) -> list[tuple[str, int, int]]:
        require(isinstance(text, str), f"text must be a string, got {describe(text)}")
        return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 return_tensors: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """``{"input_ids", "attention_mask"}`` (+ ``"offset_mapping"``), lists or ``(1, n)`` tensors."""
        spans = self._spans(text)
        ids = [self.ids.get(w, self.unk_token_id) for w, _, _ in spans]
        offsets = [(s, e) for _, s, e in spans]
        if add_special_tokens and self.add_bos:
            ids, offsets = [self.bos_token_id, *ids], [(0, 0), *offsets]
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": [1] * len(ids)}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        if return_tensors == "pt":
            out = {k: torch.tensor([v]) for k, v in out.items()}
        return out

    def encode(self, text: str, add_special_tokens: bool = True, return_tensors: str | None = None,
               **kwargs: Any) -> Any:
        """Token ids: a list, or a ``(1, n)`` long tensor with ``return_tensors="pt"``."""
        return self(text, add_special_tokens=add_special_tokens, return_tensors=return_tensors)["input_ids"]

    def decode(self, ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        """Words joined by spaces, no space before punctuation."""
        flat = _id_list(ids)
        words = [self.vocab[i] for i in flat if not (skip_special_tokens and i in self.all_special_ids)]
        text = ""
        for w in words:
            text += w if not text or not w[0].isalnum() else " " + w
        return text

    def convert_ids_to_tokens(self, ids: Any) -> Any:
        if isinstance(ids, int):
            return self.vocab[ids]
        return [self.vocab[i] for i in _id_list(ids)]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if isinstance(tokens, str):
            return self.ids.get(tokens, self.unk_token_id)
        return [self.ids.get(t, self.unk_token_id) for t in tokens]


def _id_list(ids: Any) -> list[int]:
    if isinstance(ids, Tensor):
        return [int(v) for v in ids.reshape(-1).tolist()]
    if isinstance(ids, int):
        return [ids]
    return [int(v) for v in ids]


class TinyCausalLM(nn.Module):
    """One causal self-attention block with learned positions; random weights from ``seed``.

    Args:
        vocab_size: number of token ids.
        dim: embedding width.
        max_len: longest sequence (positions).
        seed: weights are drawn from ``torch.Generator().manual_seed(seed)`` (the global RNG is untouched).
    """

    def __init__(self, vocab_size: int, dim: int = 16, max_len: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, dim)
        self.embed_positions = nn.Embedding(max_len, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Tanh(), nn.Linear(2 * dim, dim))
        self.lm_head = nn.Linear(dim, vocab_size)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.dim() > 1 else 0.1))
        self.max_len = max_len

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs: Any) -> CausalLMOutput:
        """Logits ``(batch, length, vocab)``; ``attention_mask`` (1 = keep) hides padded key positions."""
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
            raise IntellegoError(f"input_ids must be a (batch, length) tensor, got {describe(input_ids)}")
        n = input_ids.shape[1]
        require(n <= self.max_len, f"input_ids of length {n} exceed max_len={self.max_len}")
        h = self.embed_tokens(input_ids) + self.embed_positions.weight[:n]
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / h.shape[-1] ** 0.5
        hide = torch.ones(n, n, dtype=torch.bool, device=h.device).triu(1)
        if attention_mask is not None:
            hide = hide | (attention_mask[:, None, :] == 0)
        h = h + scores.masked_fill(hide, float("-inf")).softmax(-1) @ v
        h = h + self.mlp(h)
        return CausalLMOutput(self.lm_head(h))

    @torch.no_grad()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 25,
                 do_sample: bool = False, **kwargs: Any) -> Tensor:
        """Greedy decoding: ``input_ids`` followed by ``max_new_tokens`` argmax tokens."""
        require(not do_sample, "TinyCausalLM.generate decodes greedily only; pass do_sample=False")
        require(isinstance(max_new_tokens, int) and max_new_tokens >= 0,
                f"max_new_tokens must be a non-negative int, got {describe(max_new_tokens)}")
        ids = input_ids
        for _ in range(max_new_tokens):
            mask = None if attention_mask is None else torch.cat(
                [attention_mask, attention_mask.new_ones(ids.shape[0], ids.shape[1] - attention_mask.shape[1])], 1)
            nxt = self(ids, mask).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
        return ids


def train_tiny_lm(sentences: Sequence[str], steps: int = 200, dim: int = 16, seed: int = 0,
                  lr: float = 0.03) -> tuple[TinyCausalLM, WordTokenizer]:
    """A :class:`TinyCausalLM` fitted to ``sentences`` (equal numbers of words) by ``steps`` full-batch Adam
    steps on next-word cross-entropy; deterministic for a ``seed`` (the global RNG is untouched).

    Args:
        sentences: The training text, one sentence per item, each with the same number of words.
        steps: Adam steps.
        dim: Embedding width.
        seed: Seed of the initial weights.
        lr: Adam's learning rate.

    Returns:
        ``(model, tokenizer)``: the model in eval mode and a :class:`WordTokenizer` over the sentences' words.

    Example:
        >>> lm, tok = train_tiny_lm(["ann likes red apples", "bob likes green pears"], steps=100)
        >>> tok.decode(lm.generate(tok.encode("ann likes", return_tensors="pt"), max_new_tokens=2)[0, -2:])
        'red apples'
    """
    words = [s.split() for s in sentences]
    require(len(words) > 0 and len({len(w) for w in words}) == 1,
            f"sentences must be a non-empty list with the same number of words each, got {describe(sentences)}")
    tok = WordTokenizer([w for ws in words for w in ws])
    ids = torch.tensor([tok.encode(s) for s in sentences])
    lm = TinyCausalLM(len(tok), dim=dim, max_len=max(16, ids.shape[1]), seed=seed)
    opt = torch.optim.Adam(lm.parameters(), lr=lr)
    for _ in range(steps):
        logits = lm(ids).logits
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, len(tok)), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lm.eval(), tok
