"""Hygiene cases for the LLM attribution wrappers and DataLoaderAttribution."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from _hygiene import Case, Exploding, tiny_mlp
from _llm_models import random_lm, tokenizer
from intellego.attr import (
    DataLoaderAttribution,
    FeatureAblation,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    RemoteLLMAttribution,
    RemoteLLMProvider,
    ShapleyValues,
    TextTemplateInput,
    TextTokenInput,
)

TOK = tokenizer()


class ExplodingLM(torch.nn.Module):
    """Keyword-calling LM wrapper that raises on the n-th forward."""

    def __init__(self, inner: torch.nn.Module, fail_on: int = 2) -> None:
        super().__init__()
        self.inner, self.fail_on, self.calls = inner, fail_on, 0
        self.embed_tokens = inner.embed_tokens

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_on:
            raise RuntimeError("boom")
        return self.inner(*args, **kwargs)


def _lm():
    model = random_lm()
    model.train()
    model.embed_tokens.weight.grad = torch.zeros_like(model.embed_tokens.weight)
    return model, TOK.encode("the cat sat", return_tensors="pt")


def _template():
    return TextTemplateInput("{} cat {}", values=["the", "sat"])


def _token():
    return TextTokenInput("the cat sat", TOK, skip_tokens=["<s>"])


class _Provider(RemoteLLMProvider):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def generate(self, prompt: str, **gen_args: Any) -> str:
        return "on"

    def get_logprobs(self, input_prompt: str, target_str: str, tokenizer: Any = None) -> list[float]:
        ids = TOK.encode(input_prompt + " " + target_str, return_tensors="pt")
        return self.model(ids).logits[0, -2].log_softmax(-1)[ids[0, -1:]].tolist()


def _remote(m):
    return RemoteLLMAttribution(FeatureAblation(RemoteLLMAttribution.placeholder_model), TOK, _Provider(m))


def _lig(m):
    return LLMGradientAttribution(LayerIntegratedGradients(m, m.embed_tokens), TOK)


def _loader_case():
    model = tiny_mlp()
    model.train()
    x = torch.randn(6, 4)
    return model, x


def _loader(x):
    return DataLoader(TensorDataset(x), batch_size=3)


CASES = {
    "LLMAttribution": Case(
        _lm, lambda m, x: LLMAttribution(ShapleyValues(m), TOK).attribute(_template(), target="on a"),
        lambda m, x: LLMAttribution(FeatureAblation(ExplodingLM(m)), TOK).attribute(
            _token(), target="on", perturbations_per_eval=1)),
    "LLMGradientAttribution": Case(
        _lm, lambda m, x: _lig(m).attribute(_token(), target="on a", n_steps=4),
        lambda m, x: _lig(ExplodingLM(m)).attribute(_token(), target="on", n_steps=4)),
    "RemoteLLMAttribution": Case(
        _lm, lambda m, x: _remote(m).attribute(_template(), target="on"),
        lambda m, x: _remote(m).attribute(_template(), target="on a"),  # provider gives 1 log-prob for 2 tokens
        covers=("RemoteLLMProvider",)),
    "DataLoaderAttribution": Case(
        _loader_case, lambda m, x: DataLoaderAttribution(FeatureAblation(m)).attribute(_loader(x)),
        lambda m, x: DataLoaderAttribution(FeatureAblation(Exploding(m))).attribute(_loader(x))),
}
