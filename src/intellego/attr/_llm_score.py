"""Scoring a target text after many prompts: the one engine behind ``LLMAttribution``'s forward.

Every prompt of a chunk is scored teacher-forced: ``prompt + target[:-1]`` goes through the model once and the
next-token distributions at the target positions are read off, which for a causal model is exactly what
generating the target token by token computes. Prompts of any lengths share one right-padded call (a causal
model never looks at later positions, so the padding needs no mask), their common leading tokens run once and
their key/value cache is reused by every row (Hugging Face models that take a cache), and only the logits of
the target positions are kept when the model accepts ``logits_to_keep``. Encoder-decoder models
(``config.is_encoder_decoder``) get the prompt in the encoder (padded, masked) and the target in the decoder.
A model that is not causal (probed once per model) is scored one target token at a time instead, on each prompt
alone, as generation scores it.
Model inputs with extra entries (``pixel_values``, ...) are batched when their shapes agree.

Example:
    >>> import torch
    >>> from intellego.models.tiny_lm import TinyCausalLM
    >>> from intellego.attr._llm_score import TargetScorer
    >>> model = TinyCausalLM(10, seed=0).double()
    >>> scorer = TargetScorer(model, torch.tensor([4, 5]))
    >>> prompts = [{"input_ids": torch.tensor([[1, 3]])}, {"input_ids": torch.tensor([[1, 3, 6]])}]
    >>> lp = scorer.score(prompts)
    >>> one = model(torch.tensor([[1, 3, 4]])).logits.log_softmax(-1)[0, [1, 2], [4, 5]]
    >>> lp.shape, torch.allclose(lp[0], one)
    (torch.Size([2, 2]), True)
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import weakref
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.batching import chunks, default_budget
from ..errors import describe, require

__all__ = ["STEP_SCORES", "TargetScorer", "forward_params", "logits_of"]

STEP_SCORES = ("log_prob", "prob", "entropy", "kl")
MIN_SHARED_PREFIX = 8  # shorter shared prefixes are cheaper to recompute than to cache and expand
_CAUSAL: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()  # model -> probed causality


def logits_of(outputs: Any) -> Tensor:
    """The ``.logits`` of a model output (or the output itself), ``(batch, length, vocab)``."""
    logits = outputs.logits if hasattr(outputs, "logits") else outputs
    require(isinstance(logits, Tensor), f"the model must return an object with .logits, got {describe(outputs)}")
    return logits[:, 0] if logits.dim() == 4 else logits  # (batch, 1, length, vocab) from some models


def forward_params(model: Any) -> set[str]:
    """Names of the model's forward parameters (empty when they cannot be read)."""
    try:
        params = inspect.signature(model.forward if hasattr(model, "forward") else model).parameters
    except (TypeError, ValueError):
        return set()
    return set(params)


class TargetScorer:
    """Per-step scores of ``target`` after each prompt: ``score(prompts) -> (rows, n_target)``.

    Args:
        model: a causal or encoder-decoder LM with Hugging Face's calling conventions.
        target: the target token ids ``(n_target,)``.
        step_score: ``"log_prob"`` of each target token (``"prob"`` is exponentiated by the caller), the
            ``"entropy"`` of each next-token distribution, or ``"kl"``: KL(reference || perturbed) per step,
            the reference being the distributions after ``reference_prompt``.
        use_cache: reuse the key/value cache of the prompts' shared leading tokens.
    """

    def __init__(self, model: Any, target: Tensor, step_score: str = "log_prob", use_cache: bool = True,
                 reference_prompt: dict[str, Any] | None = None) -> None:
        require(step_score in STEP_SCORES, f"the step score must be one of {STEP_SCORES}, got {step_score!r}")
        self.model, self.target, self.step_score = model, target.reshape(-1), step_score
        params = forward_params(model)
        self.cache_kw = next((k for k in ("cache", "past_key_values") if k in params), None) if use_cache else None
        self.keep_kw = "logits_to_keep" in params
        self.mask_kw = "attention_mask" in params or not params
        config = getattr(model, "config", None)
        self.encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        self.reference: Tensor | None = None
        self._is_causal: bool | None = None  # probed at the first call
        if step_score == "kl":
            require(reference_prompt is not None, "the 'kl' step score needs the unperturbed prompt")
            self.reference = self._run([cast(dict, reference_prompt)], lambda lp: lp)[0]

    def score(self, prompts: list[dict[str, Any]]) -> Tensor:
        """``(len(prompts), n_target)`` scores; each prompt is a dict of ``(1, ...)`` model inputs. Scores carry
        no gradient (a perturbation method never needs one)."""
        with torch.no_grad():
            return self._run(prompts, self._reduce)

    def _reduce(self, logp: Tensor) -> Tensor:
        """Per-step scores from ``(rows, n_target, vocab)`` log-probabilities."""
        if self.step_score in ("log_prob", "prob"):
            tgt = self.target.to(logp.device).view(1, -1, 1).expand(logp.shape[0], -1, 1)
            return logp.gather(2, tgt).squeeze(2)
        if self.step_score == "entropy":
            return -(logp.exp() * logp).sum(-1)
        ref = cast(Tensor, self.reference).to(logp.device)
        return (ref.exp() * (ref - logp)).sum(-1)

    def _run(self, prompts: list[dict[str, Any]], reduce: Callable[[Tensor], Tensor]) -> Tensor:
        """Groups the prompts, runs each group with ``reduce`` applied to the ``(rows, n_target, vocab)``
        log-probabilities of every call; results in prompt order."""
        if not self.causal(prompts[0]):
            return torch.cat([reduce(self._step_by_step(p)) for p in prompts])
        plain = [i for i, p in enumerate(prompts) if set(p) <= {"input_ids", "attention_mask"}
                 and _all_ones(p.get("attention_mask"))]
        groups: list[tuple[list[int], Callable[..., Tensor]]] = [(plain, self._padded)] if plain else []
        rest: dict[Any, list[int]] = {}
        taken = set(plain)
        for i, p in enumerate(prompts):
            if i not in taken:
                key = tuple((k, tuple(getattr(v, "shape", ())), type(v)) for k, v in p.items())
                rest.setdefault(key, []).append(i)
        groups += [(rows, self._stacked) for rows in rest.values()]
        parts = [(rows, runner([prompts[i] for i in rows], reduce)) for rows, runner in groups]
        out = parts[0][1].new_empty((len(prompts), *parts[0][1].shape[1:]))
        for rows, part in parts:
            out[rows] = part
        return out

    def _logits(self, prompt: dict[str, Any], tail: Tensor) -> Tensor:
        """Logits ``(length, vocab)`` of one prompt followed by the tokens ``tail``, called on its own."""
        ids = prompt["input_ids"]
        batch = dict(prompt, input_ids=torch.cat([ids, tail.to(ids.device)[None]], 1))
        mask = prompt.get("attention_mask")
        if isinstance(mask, Tensor):
            batch["attention_mask"] = torch.cat([mask, mask.new_ones(1, tail.numel())], 1)
        elif self.mask_kw:
            batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        if self.cache_kw is not None:
            batch["use_cache"] = False
        return logits_of(self.model(**batch))[0]

    def causal(self, prompt: dict[str, Any]) -> bool:
        """Whether the model is causal (positions never read later tokens), probed once per model with one
        prompt: its logits with one token more appended must not change. Teacher-forced scoring and right
        padding rely on it; a model that is not causal (a bidirectional encoder used as an LM) is scored step by
        step."""
        if self.encoder_decoder or "input_ids" not in prompt:
            return True
        if self._is_causal is None:
            with contextlib.suppress(TypeError):  # a model that cannot be weakly referenced: probed per scorer
                self._is_causal = _CAUSAL.get(self.model)
        if self._is_causal is None:
            tail = self.target[:-1]
            a = self._logits(prompt, tail)
            b = self._logits(prompt, torch.cat([tail, prompt["input_ids"].reshape(-1)[:1].to(tail.device)]))
            scale = max(float(a.abs().max()), 1.0) if a.numel() else 1.0
            tol = 64 * torch.finfo(a.dtype).eps * scale if a.is_floating_point() else 0.0  # rounding only
            self._is_causal = bool((a - b[:a.shape[0]]).abs().max() <= tol)
            with contextlib.suppress(TypeError):
                _CAUSAL[self.model] = self._is_causal
        return self._is_causal

    def _step_by_step(self, prompt: dict[str, Any]) -> Tensor:
        """``(1, n_target, vocab)`` log-probabilities of each target token after the prompt and the target
        tokens before it, one model call per step (as generating the target scores it)."""
        n = prompt["input_ids"].shape[1]
        steps = [self._logits(prompt, self.target[:j])[n - 1 + j] for j in range(self.target.numel())]
        return F.log_softmax(torch.stack(steps), -1)[None]

    def _rows_per_call(self, length: int) -> int:
        """Rows of ``length`` tokens per call under the memory budget (a working set of ~16 x width floats
        per token for one layer, the layers running one after another under no_grad)."""
        emb = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        width = getattr(emb, "embedding_dim", 256)
        device = getattr(getattr(emb, "weight", None), "device", torch.device("cpu"))
        per_token = 16 * width * 4
        return max(1, default_budget(device) // (per_token * max(length, 1)))

    def _padded(self, prompts: list[dict[str, Any]], reduce: Callable[[Tensor], Tensor]) -> Tensor:
        ids = [p["input_ids"].reshape(-1) for p in prompts]
        if self.encoder_decoder:
            return self._encoder_decoder(ids, reduce)
        tgt = self.target.to(ids[0].device)
        lengths = [x.numel() for x in ids]
        shared = _shared_prefix(ids, min(lengths) - 1) if self.cache_kw is not None else 0
        prefix_cache = None
        if self.cache_kw is not None and shared >= MIN_SHARED_PREFIX:
            out = self.model(input_ids=ids[0][None, :shared], use_cache=True)
            prefix_cache = getattr(out, self.cache_kw, None)
            prefix_cache = getattr(out, "past_key_values", None) if prefix_cache is None else prefix_cache
        start = shared if prefix_cache is not None else 0
        t = tgt.numel()
        parts = []
        for sl in chunks(len(ids), self._rows_per_call(max(lengths) + t)):
            batch = _right_padded([x[start:] for x in ids[sl]], tgt[:-1])
            width = batch.shape[1]
            kwargs: dict[str, Any] = {"input_ids": batch}
            if self.mask_kw:
                kwargs["attention_mask"] = torch.ones(batch.shape[0], start + width, dtype=torch.long,
                                                      device=batch.device)
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(batch.shape[0])
                kwargs.update({cast(str, self.cache_kw): cache, "use_cache": True})
            elif self.cache_kw is not None:
                kwargs["use_cache"] = False
            offset = 0
            if self.keep_kw:
                offset = min(lengths[sl]) - 1 - start  # the first position whose logits we need; the last: width - 1
                kwargs["logits_to_keep"] = torch.arange(offset, width, device=batch.device)
            logits = logits_of(self.model(**kwargs))
            pos = torch.tensor([n - 1 - start - offset for n in lengths[sl]], device=logits.device)
            pos = pos[:, None] + torch.arange(t, device=logits.device)
            picked = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))
            parts.append(reduce(F.log_softmax(picked, -1)))
        return torch.cat(parts)

    def _encoder_decoder(self, ids: list[Tensor], reduce: Callable[[Tensor], Tensor]) -> Tensor:
        config = self.model.config
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            start = getattr(getattr(self.model, "generation_config", None), "decoder_start_token_id", None)
        require(isinstance(start, int), "the encoder-decoder model's config has no decoder_start_token_id")
        pad = getattr(config, "pad_token_id", None)
        pad = pad if isinstance(pad, int) else 0
        tgt = self.target.to(ids[0].device)
        dec = torch.cat([tgt.new_tensor([start]), tgt[:-1]])
        parts = []
        for sl in chunks(len(ids), self._rows_per_call(max(x.numel() for x in ids) + tgt.numel())):
            rows = ids[sl]
            width = max(x.numel() for x in rows)
            enc = torch.stack([F.pad(x, (0, width - x.numel()), value=pad) for x in rows])
            mask = torch.stack([F.pad(torch.ones_like(x), (0, width - x.numel())) for x in rows])
            logits = logits_of(self.model(input_ids=enc, attention_mask=mask,
                                          decoder_input_ids=dec.expand(len(rows), -1), use_cache=False))
            parts.append(reduce(F.log_softmax(logits, -1)))
        return torch.cat(parts)

    def _stacked(self, prompts: list[dict[str, Any]], reduce: Callable[[Tensor], Tensor]) -> Tensor:
        """Prompts with extra model inputs of equal shapes: one call, the target appended to ``input_ids``."""
        batch = {k: torch.cat([p[k] for p in prompts]) if isinstance(prompts[0][k], Tensor) else prompts[0][k]
                 for k in prompts[0]}
        ids = batch["input_ids"]
        n, t = ids.shape[1], self.target.numel()
        tgt = self.target.to(ids.device)[None, :-1].expand(ids.shape[0], -1)
        batch["input_ids"] = torch.cat([ids, tgt], 1)
        if isinstance(batch.get("attention_mask"), Tensor):
            mask = batch["attention_mask"]
            batch["attention_mask"] = torch.cat([mask, mask.new_ones(mask.shape[0], t - 1)], 1)
        logits = logits_of(self.model(**batch))
        return reduce(F.log_softmax(logits[:, n - 1: n - 1 + t], -1))


def _all_ones(mask: Any) -> bool:
    return mask is None or (isinstance(mask, Tensor) and bool((mask == 1).all()))


def _right_padded(rows: list[Tensor], tail: Tensor) -> Tensor:
    """The 1-D id vectors ``rows``, each followed by ``tail``, stacked and right-padded with the row's own first
    token (a causal model never reads the padding; a real token keeps every embedding lookup valid), in a few
    whole-batch operations."""
    lengths = torch.tensor([r.numel() + tail.numel() for r in rows], device=tail.device)
    flat = torch.cat([piece for r in rows for piece in (r, tail)])
    width = int(lengths.max())
    batch = flat[lengths.cumsum(0) - lengths][:, None].expand(-1, width).clone()
    batch[torch.arange(width, device=flat.device) < lengths[:, None]] = flat
    return batch


def _shared_prefix(ids: list[Tensor], cap: int) -> int:
    """Length of the longest common leading run of all id vectors, at most ``cap``."""
    first = ids[0][:cap]
    same = torch.ones(first.numel(), dtype=torch.bool, device=first.device)
    for x in ids[1:]:
        same &= x[: first.numel()] == first
    return int(same.long().cumprod(0).sum()) if first.numel() else 0
