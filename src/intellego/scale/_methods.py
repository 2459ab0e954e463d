"""Per-example adapters for LLM attribution and TCAV, through those classes' public methods only.

Example:
    >>> import torch
    >>> s = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    >>> scores = tcav_scores(s, [("0-1", "fc", 0), ("0-1", "fc", 1)])
    >>> scores["0-1"]["fc"]["sign_count"].tolist(), scores["0-1"]["fc"]["magnitude"].tolist()
    ([1.0, 0.0], [1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import describe, require
from ._adapters import PerExample, is_labelled

__all__ = ["llm_attribution", "tcav", "tcav_scores"]

Column = tuple[str, str, int]


def llm_attribution(method: Any, make_input: Callable[[Any], Any] | None = None, **kwargs: Any) -> PerExample:
    """``method.attribute(inp, target=...)`` (``LLMAttribution`` / ``LLMGradientAttribution``) per item.

    An item is ``(prompt, target)`` or a prompt alone (the target is then generated). ``make_input(prompt)``
    builds the interpretable input (default: ``TextTokenInput(prompt, method.tokenizer)``; a prompt that is
    already an interpretable input is used as it is). Outputs: ``seq_attr`` (one tensor per example) and
    ``token_attr`` (dropped for methods without it); each example's ``input_tokens`` and ``output_tokens`` go to
    the shard's extras.

    Args:
        method: An ``LLMAttribution`` or ``LLMGradientAttribution``.
        make_input: ``make_input(prompt)`` -> the interpretable input, or None for the default.
        **kwargs: Further keyword arguments of ``method.attribute``.

    Returns:
        A :class:`PerExample` adapter for :func:`attribute_dataset`.

    Example:
        >>> from intellego.attr import FeatureAblation, LLMAttribution
        >>> from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer
        >>> tok = WordTokenizer("ann likes red apples and bob".split())
        >>> llm = LLMAttribution(FeatureAblation(TinyCausalLM(len(tok))), tok)
        >>> out = llm_attribution(llm)([("ann likes apples", "and bob"), ("red apples", "bob")], None)
        >>> [tuple(t.shape) for t in out.values[0]], out.extras[1]
        ([(4,), (3,)], {'input_tokens': ['<s>', 'red', 'apples'], 'output_tokens': ['bob']})
    """
    require(callable(getattr(method, "attribute", None)) and hasattr(method, "tokenizer"),
            f"method must be an LLMAttribution or LLMGradientAttribution, got {describe(method)}")
    require("target" not in kwargs, "the targets come from the items: (prompt, target)")

    def build(prompt: Any) -> Any:
        if make_input is not None:
            return make_input(prompt)
        if isinstance(prompt, str):
            from ..attr import TextTokenInput

            return TextTokenInput(prompt, method.tokenizer)
        return prompt

    def one(item: Any) -> tuple[list[Tensor | None], dict[str, Any]]:
        prompt, target = (item[0], item[1]) if isinstance(item, (tuple, list)) and len(item) == 2 else (item, None)
        result = method.attribute(build(prompt), target=target, **kwargs)
        return ([result.seq_attr, result.token_attr],
                {"input_tokens": list(result.input_tokens), "output_tokens": list(result.output_tokens)})

    return PerExample(one, f"{type(method).__name__}.attribute", ragged=True)


def _one_row(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.unsqueeze(0)
    if isinstance(x, dict):
        return {k: _one_row(v) for k, v in x.items()}
    require(isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x),
            f"TCAV items must be inputs (a tensor, tuple or dict of tensors) or (inputs, label), got {describe(x)}")
    return tuple(t.unsqueeze(0) for t in x)


def tcav(method: Any, experimental_sets: Sequence[Sequence[Any]], target: Any = "label",
         **kwargs: Any) -> PerExample:
    """Every example's directional derivative along each CAV: ``method.interpret`` on that example alone.

    One column per (experimental set, layer, concept), listed in the adapter's ``info["columns"]`` (also
    written to the manifest); :func:`tcav_scores` turns the stored rows into TCAV's
    scores over the whole dataset. Items are inputs or ``(inputs, label)``; ``target="label"`` uses the label.
    Train the CAVs once before a multi-rank job (``method.compute_cavs`` with a ``save_path``) so that every
    rank loads the same ones.

    Args:
        method: A :class:`~intellego.concept.TCAV` instance.
        experimental_sets: Lists of concepts, as for ``TCAV.interpret``.
        target: The target of every example; ``"label"`` uses the items' labels.
        **kwargs: Further keyword arguments of ``method.interpret``.

    Returns:
        A :class:`PerExample` adapter for :func:`attribute_dataset`, one row of derivatives per example.

    Example:
        >>> import torch
        >>> from intellego.concept import TCAV, Concept
        >>> g = torch.Generator().manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> sets = [[Concept(0, "up", [torch.randn(16, 4, generator=g) + 2]),
        ...          Concept(1, "random", [torch.randn(16, 4, generator=g)])]]
        >>> adapter = tcav(TCAV(model, ["0"]), sets)
        >>> adapter([(torch.ones(4), 1), (torch.zeros(4), 0)], None).values[0].shape, adapter.info["columns"]
        (torch.Size([2, 2]), [['0-1', '0', 0], ['0-1', '0', 1]])
    """
    require(callable(getattr(method, "interpret", None)) and hasattr(method, "layers"),
            f"method must be a TCAV instance, got {describe(method)}")
    require("magnitude" not in kwargs, "the adapter reads the derivatives (magnitude='mean' on one example)")
    sets = [list(s) for s in experimental_sets]
    keys = ["-".join(str(c.id) for c in s) for s in sets]
    columns: list[Column] = [(key, layer, c.id) for key, s in zip(keys, sets) for layer in method.layers for c in s]

    def one(item: Any) -> tuple[list[Tensor | None], None]:
        x, label = (item[0], int(item[1])) if is_labelled(item) else (item, None)
        t = label if target == "label" else target
        scores = method.interpret(_one_row(x), sets, target=t, magnitude="mean", **kwargs)
        row = torch.cat([scores[key][layer]["magnitude"].reshape(-1) for key in keys for layer in method.layers])
        return [row], None

    return PerExample(one, f"{type(method).__name__}.interpret", is_tuple=False,
                      info={"columns": [list(c) for c in columns]})


def tcav_scores(derivatives: Tensor, columns: Sequence[Column], magnitude: str = "ratio") -> dict[str, Any]:
    """TCAV's ``{set: {layer: {"sign_count", "magnitude"}}}`` over all rows of ``derivatives`` (n x columns).

    ``sign_count`` is the share of examples with a positive derivative; ``magnitude="ratio"`` is
    ``sum(max(s, 0)) / sum(|s|)`` (0 when every ``s`` is 0), ``"mean"`` the mean of ``s``: TCAV's definitions.

    Args:
        derivatives: ``(n, len(columns))`` directional derivatives, as stored by the :func:`tcav` adapter.
        columns: ``(set key, layer, concept id)`` of every column (the adapter's ``info["columns"]``).
        magnitude: ``"ratio"`` or ``"mean"``.

    Returns:
        ``{set key: {layer: {"sign_count": tensor, "magnitude": tensor}}}``, one value per concept of the set.

    Example:
        >>> import torch
        >>> s = torch.tensor([[2.0], [-1.0]])
        >>> r = tcav_scores(s, [("0-1", "fc", 0)], magnitude="mean")["0-1"]["fc"]
        >>> r["sign_count"].tolist(), r["magnitude"].tolist()
        ([0.5], [0.5])
    """
    require(derivatives.dim() == 2 and derivatives.shape[1] == len(columns),
            f"derivatives must be n x {len(columns)} (one column per entry of columns), got {describe(derivatives)}")
    require(magnitude in ("ratio", "mean"), f"magnitude must be 'ratio' or 'mean', got {magnitude!r}")
    s = derivatives
    total = s.abs().sum(0)
    ratio = torch.where(total > 0, s.clamp_min(0).sum(0) / total.clamp_min(torch.finfo(s.dtype).tiny), 0 * total)
    mags, signs = ratio if magnitude == "ratio" else s.mean(0), (s > 0).to(s.dtype).mean(0)
    out: dict[str, Any] = {}
    for j, (key, layer, _) in enumerate(columns):
        slot = out.setdefault(key, {}).setdefault(layer, {"sign_count": [], "magnitude": []})
        slot["sign_count"].append(signs[j])
        slot["magnitude"].append(mags[j])
    return {k: {lay: {n: torch.stack(v) for n, v in d.items()} for lay, d in per.items()} for k, per in out.items()}
