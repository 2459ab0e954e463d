"""Tiny language models for the LLM attribution tests: random, additive (closed forms) and HF-cache-like."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from intellego.models.tiny_lm import CausalLMOutput, TinyCausalLM, WordTokenizer

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", ".", "big", "small", "red", "yes"]


def tokenizer() -> WordTokenizer:
    return WordTokenizer(WORDS)


def random_lm(seed: int = 0) -> TinyCausalLM:
    return TinyCausalLM(len(tokenizer()), seed=seed).double()


class AdditiveLM(nn.Module):
    """``log p(yes | prefix) = -sum_j w[j, x_j]`` over the prefix (``w[tok]`` only with ``positional=False``);
    the other tokens share the remaining probability, so log-softmax returns the logits unchanged."""

    def __init__(self, vocab: int, special: int, positional: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        w = torch.rand(64, vocab, generator=g, dtype=torch.float64) * 0.3 + 0.05
        self.w = nn.Parameter(w if positional else w[:1].repeat(64, 1))
        self.embed_tokens = nn.Embedding(vocab, 2).double()
        self.vocab, self.special = vocab, special

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> CausalLMOutput:
        b, n = input_ids.shape
        s = self.w[torch.arange(n)[None], input_ids].cumsum(1)
        rest = torch.log((1 - torch.exp(-s)) / (self.vocab - 1))
        logits = torch.where(torch.arange(self.vocab) == self.special, -s[..., None], rest[..., None])
        return CausalLMOutput(logits + 0 * self.embed_tokens(input_ids).sum(-1, keepdim=True))

    def contribution(self, ids: torch.Tensor) -> torch.Tensor:
        """``w[j, ids[j]]`` per position of a 1-D id tensor."""
        return self.w.detach()[torch.arange(ids.shape[0]), ids]


class CachedLM(TinyCausalLM):
    """TinyCausalLM with Hugging Face's two generation helpers (the 'cache' recomputes the prefix)."""

    helper_calls = 0

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, attention_mask: Any = None,
                                      cache_position: Any = None, **kwargs: Any) -> dict[str, Any]:
        CachedLM.helper_calls += 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _update_model_kwargs_for_generation(self, outputs: Any, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        kw = dict(model_kwargs)
        mask = kw["attention_mask"]
        kw["attention_mask"] = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        kw["cache_position"] = kw["cache_position"][-1:] + 1
        kw["past_key_values"] = "cache"
        return kw
