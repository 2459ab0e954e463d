"""LLM attribution family: a tiny causal LM (intellego.models.tiny_lm, dim 64) on a 12-word prompt and a
4-token target, and DataLoaderAttribution over an MLP. Captum runs with ``use_cached_outputs=False`` (the tiny
model has no Hugging Face cache helpers, which Captum's default needs)."""

from __future__ import annotations

import warnings

import captum.attr as ca
import torch
from torch.utils.data import DataLoader, TensorDataset

import intellego.attr as ia
from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer

from .harness import Case, floor_forward
from .models import mlp

warnings.filterwarnings("ignore", module="captum")

PROMPT = "the big cat sat on a small red mat and the dog"
TARGET = "ran far away ."


def _llm(mod, method, model, tok, inp_fn, **kw):
    llm = mod.LLMAttribution(method(mod, model), tok)
    extra = {} if mod is ia else {"use_cached_outputs": False}
    return lambda: llm.attribute(inp_fn(mod), target=TARGET, **extra, **kw)


def cases(quick: bool = False) -> list[Case]:
    tok = WordTokenizer((PROMPT + " " + TARGET).split())
    model = TinyCausalLM(len(tok), dim=64, seed=0).eval()
    ids = tok.encode(PROMPT + " " + TARGET, return_tensors="pt")
    sec = "LLM attribution: tiny causal LM (dim 64), 13 prompt tokens, 4 target tokens"
    tokens = lambda mod: mod.TextTokenInput(PROMPT, tok, skip_tokens=["<s>"])  # noqa: E731
    words = PROMPT.split()
    template = lambda mod: mod.TextTemplateInput(" ".join(["{}"] * len(words)), values=words)  # noqa: E731
    out = [
        Case(sec, "LLMAttribution(FeatureAblation)", "TextTokenInput, token by token",
             _llm(ia, lambda m, f: m.FeatureAblation(f), model, tok, tokens),
             _llm(ca, lambda m, f: m.FeatureAblation(f), model, tok, tokens),
             floor_forward(model, ids.repeat(13, 1))),
        Case(sec, "LLMAttribution(ShapleyValueSampling)", "TextTemplateInput (12 words), n_samples=2",
             _llm(ia, lambda m, f: m.ShapleyValueSampling(f), model, tok, template, n_samples=2),
             _llm(ca, lambda m, f: m.ShapleyValueSampling(f), model, tok, template, n_samples=2),
             floor_forward(model, ids.repeat(25, 1))),
    ]
    lig = {mod: mod.LLMGradientAttribution(mod.LayerIntegratedGradients(model, model.embed_tokens), tok)
           for mod in (ia, ca)}
    out.append(Case(sec, "LLMGradientAttribution(LayerIntegratedGradients)", "n_steps=16",
                    lambda: lig[ia].attribute(tokens(ia), target=TARGET, n_steps=16),
                    lambda: lig[ca].attribute(tokens(ca), target=TARGET, n_steps=16),
                    floor_forward(model, ids.repeat(64, 1))))
    net, x = mlp(), torch.randn(512, 32)
    loader = DataLoader(TensorDataset(x), batch_size=64)
    mask = torch.arange(8).repeat_interleave(4).reshape(1, 32)
    red = lambda acc, o, i: o.sum(0) if acc is None else acc + o.sum(0)  # noqa: E731
    dla = {mod: mod.DataLoaderAttribution(mod.FeatureAblation(net)) for mod in (ia, ca)}
    out.append(Case("DataLoaderAttribution: MLP, 8 batches of 64, 8 feature groups", "DataLoaderAttribution",
                    "summed outputs", lambda: dla[ia].attribute(loader, feature_mask=mask, reduce=red),
                    lambda: dla[ca].attribute(loader, feature_mask=mask, reduce=red),
                    floor_forward(net, x.repeat(9, 1)),
                    {"captum ppp=9": lambda: dla[ca].attribute(loader, feature_mask=mask, reduce=red,
                                                               perturbations_per_pass=9)}))
    return out
