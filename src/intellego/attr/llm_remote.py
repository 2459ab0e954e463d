"""LLM attribution against a model behind an API that reports token log-probabilities (e.g. a vLLM server).

``RemoteLLMAttribution`` runs a perturbation method locally and asks a :class:`RemoteLLMProvider` for the
log-probabilities of the target after every perturbed prompt. ``VLLMProvider`` talks to a vLLM server
through the ``openai`` client package; without that package it raises an error naming it. Any object with
``generate(prompt, **gen_args) -> str`` and ``get_logprobs(input_prompt, target_str, tokenizer) -> list``
works as a provider (a local one is handy for tests).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.batching import self_sizing
from ..errors import IntellegoError, describe, require
from .interpretable_input import InterpretableInput
from .llm import DEFAULT_GEN_ARGS, LLMAttribution

__all__ = ["RemoteLLMProvider", "VLLMProvider", "RemoteLLMAttribution", "MissingDependencyError"]


class MissingDependencyError(IntellegoError, ImportError):
    """An optional package is not installed (also an ``ImportError``, as Captum raises)."""


class RemoteLLMProvider(ABC):
    """A language model served remotely: text generation and log-probabilities of a continuation.

    Example:
        >>> class Keyword(RemoteLLMProvider):  # a stand-in server: the target is likely only after "red"
        ...     def generate(self, prompt, **gen_args):
        ...         return "and bob"
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer=None):
        ...         return [0.0 if "red" in input_prompt else -1.0] * len(target_str.split())
        >>> Keyword().get_logprobs("ann likes red apples", "and bob"), Keyword().generate("ann likes")
        ([0.0, 0.0], 'and bob')

        :class:`RemoteLLMAttribution`'s example attributes with such a provider.
    """

    api_url: str

    @abstractmethod
    def generate(self, prompt: str, **gen_args: Any) -> str:
        """The model's continuation of ``prompt``.

        Args:
            prompt: The prompt text.
            **gen_args: Generation options (e.g. ``max_new_tokens``), as the provider understands them.

        Returns:
            The generated text.
        """

    @abstractmethod
    def get_logprobs(self, input_prompt: str, target_str: str, tokenizer: Any = None) -> list[float]:
        """Log-probabilities of the tokens of ``target_str`` following ``input_prompt``, one per token.

        Args:
            input_prompt: The (perturbed) prompt text.
            target_str: The continuation whose tokens are scored.
            tokenizer: The model's tokenizer, to split ``target_str`` into the tokens the model scores.

        Returns:
            One log-probability per token of ``target_str``, in order.
        """


class VLLMProvider(RemoteLLMProvider):
    """A vLLM server's OpenAI-compatible completions API (needs the ``openai`` package and the server).

    Args:
        api_url: the server's base URL.
        model_name: the served model; None takes the first model the server lists.

    Example:
        >>> import sys
        >>> from types import SimpleNamespace as NS
        >>> from unittest import mock
        >>> from intellego.models.tiny_lm import WordTokenizer
        >>> class FakeOpenAI:  # stands in for the openai client and a vLLM server with one model
        ...     def __init__(self, base_url, api_key):
        ...         self.models = NS(list=lambda: NS(data=[NS(id="tiny-model")]))
        ...         self.completions = NS(create=self.create)
        ...     def create(self, model, prompt, **kwargs):  # each word after the first has log-probability -0.5
        ...         words = [None] + [{0: {"logprob": -0.5}}] * (len(prompt.split()) - 1)
        ...         return NS(choices=[NS(text=" and bob", prompt_logprobs=words)])
        >>> with mock.patch.dict(sys.modules, {"openai": NS(OpenAI=FakeOpenAI)}):
        ...     provider = VLLMProvider("http://localhost:8000/v1")
        >>> provider.model_name, provider.generate("ann likes red apples", max_new_tokens=2)
        ('tiny-model', ' and bob')
        >>> provider.get_logprobs("ann likes", " red apples", WordTokenizer("ann likes red apples".split()))
        [-0.5, -0.5]
    """

    def __init__(self, api_url: str, model_name: str | None = None) -> None:
        try:
            from openai import OpenAI
        except ImportError as err:
            raise MissingDependencyError("VLLMProvider needs the 'openai' package (pip install openai) and a "
                                         "running vLLM server at api_url") from err
        require(isinstance(api_url, str) and api_url.strip() != "", f"api_url must be a URL, got {describe(api_url)}")
        self.api_url = api_url
        self.client = OpenAI(base_url=api_url, api_key=os.getenv("OPENAI_API_KEY", "EMPTY"))
        if model_name is None:
            models = self.client.models.list().data
            require(len(models) > 0, f"the vLLM server at {api_url} lists no models")
            model_name = models[0].id
        self.model_name = model_name

    def generate(self, prompt: str, **gen_args: Any) -> str:
        args = {k: v for k, v in gen_args.items() if k not in ("do_sample", "max_new_tokens")}
        args.setdefault("max_tokens", gen_args.get("max_new_tokens", 25))
        reply = self.client.completions.create(model=self.model_name, prompt=prompt, **args)
        require(bool(getattr(reply, "choices", None)), "the vLLM reply has no choices")
        return str(reply.choices[0].text)

    def get_logprobs(self, input_prompt: str, target_str: str, tokenizer: Any = None) -> list[float]:
        require(tokenizer is not None, "VLLMProvider.get_logprobs needs the tokenizer to count target tokens")
        require(bool(target_str), "target_str must not be empty")
        n = len(tokenizer.encode(target_str, add_special_tokens=False))
        reply = self.client.completions.create(model=self.model_name, prompt=input_prompt + target_str,
                                               temperature=0.0, max_tokens=1, extra_body={"prompt_logprobs": 0})
        entries: Any = reply.choices[0].prompt_logprobs if getattr(reply, "choices", None) else None
        require(bool(entries), "the vLLM reply has no prompt_logprobs")
        out = [float(next(iter(e.values()))["logprob"]) for e in entries[-n:] if e]
        require(len(out) == n, f"the vLLM reply gave {len(out)} target log-probabilities, expected {n}")
        return out


class _PlaceholderModel:
    """Stands in for the model when building the perturbation method of a remote attribution."""

    device = torch.device("cpu")

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return 0


class RemoteLLMAttribution(LLMAttribution):
    """:class:`LLMAttribution` with the target's log-probabilities from a remote provider.

    Build the perturbation method on :attr:`placeholder_model` (it is never called).

    Args:
        attr_method: a perturbation method as for :class:`LLMAttribution`.
        tokenizer: the remote model's tokenizer (to split the target into tokens).
        provider: a :class:`RemoteLLMProvider` (or any object with ``generate`` and ``get_logprobs``).
        attr_target: ``"log_prob"`` or ``"prob"``.

    Example:
        >>> from intellego.attr import FeatureAblation, RemoteLLMProvider, TextTemplateInput
        >>> from intellego.models.tiny_lm import WordTokenizer
        >>> class Keyword(RemoteLLMProvider):  # a stand-in server: the target is likely only after "red"
        ...     def generate(self, prompt, **gen_args):
        ...         return "and bob"
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer=None):
        ...         return [0.0 if "red" in input_prompt else -1.0] * len(target_str.split())
        >>> tok = WordTokenizer("ann likes red apples and bob".split())
        >>> llm = RemoteLLMAttribution(FeatureAblation(RemoteLLMAttribution.placeholder_model), tok, Keyword())
        >>> res = llm.attribute(TextTemplateInput("{} likes {} apples", values=["ann", "red"]), target="and bob")
        >>> res.seq_attr_dict, res.token_attr.tolist()
        ({'ann': 0.0, 'red': 2.0}, [[0.0, 1.0], [0.0, 1.0]])
    """

    placeholder_model = _PlaceholderModel()

    def __init__(self, attr_method: Any, tokenizer: Any, provider: Any, attr_target: str = "log_prob") -> None:
        require(attr_target in ("log_prob", "prob"),
                f"RemoteLLMAttribution's attr_target must be 'log_prob' or 'prob', got {attr_target!r}")
        super().__init__(attr_method, tokenizer, attr_target)
        require(callable(getattr(provider, "get_logprobs", None)),
                f"provider must have a get_logprobs(input_prompt, target_str, tokenizer) method, "
                f"got {describe(provider)}")
        self.provider = provider

    def _get_target_tokens(self, inp: InterpretableInput, target: str | Tensor | None = None,
                           gen_args: dict[str, Any] | None = None) -> Tensor:
        self._check_input(inp)
        if target is not None:
            return super()._get_target_tokens(inp, target, gen_args)
        require(callable(getattr(self.provider, "generate", None)),
                "the provider cannot generate text: pass target= (a string or token ids)")
        text = self.provider.generate(self._prompt(inp.to_model_input()), **dict(gen_args or DEFAULT_GEN_ARGS))
        return super()._get_target_tokens(inp, text, None)

    def _prompt(self, model_input: Any) -> str:
        return self.tokenizer.decode(model_input.reshape(-1)) if isinstance(model_input, Tensor) else model_input

    def _make_forward(self, inp: InterpretableInput, target_tokens: Tensor, use_cache: bool,
                      inspect: Callable[..., None] | None) -> Callable[[Tensor | None], Tensor]:
        # one request per prompt: nothing to size, and a measurement would send extra requests
        return self_sizing(lambda z: self._forward_func(z, inp, target_tokens, use_cache, inspect))

    def _forward_func(self, perturbed_tensor: Tensor | None, inp: InterpretableInput, target_tokens: Tensor,
                      use_cached_outputs: bool = False, _inspect_forward: Callable[..., None] | None = None,
                      forward_in_tokens: bool = False) -> Tensor:
        rows = [None] if perturbed_tensor is None else list(perturbed_tensor.reshape(-1, inp.n_itp_features))
        target_str = self.tokenizer.decode(target_tokens)
        scores = []
        for r in rows:
            prompt = self._prompt(inp.to_model_input(None if r is None else r[None]))
            lp = self.provider.get_logprobs(input_prompt=prompt, target_str=target_str, tokenizer=self.tokenizer)
            if len(lp) != target_tokens.shape[0]:
                raise IntellegoError(f"the provider gave {len(lp)} log-probabilities for a target of "
                                     f"{target_tokens.shape[0]} tokens")
            lp_t = torch.as_tensor([float(v) for v in lp], dtype=torch.float64)
            row = torch.cat([lp_t.sum().reshape(1), lp_t]) if self.include_per_token_attr else lp_t.sum()
            row = row if self.attr_target == "log_prob" else row.exp()
            if _inspect_forward is not None:
                probs = row.exp() if self.attr_target == "log_prob" else row
                _inspect_forward(prompt, target_str, probs.reshape(-1).tolist())
            scores.append(row)
        return torch.stack(scores)
