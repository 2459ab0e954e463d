"""``LLMAttributionResult``: what the LLM attribution classes return, with its plots (matplotlib imported
lazily), and the readable token strings of generated ids."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from textwrap import shorten
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from .interpretable_input import ImageMaskInput, InterpretableInput

__all__ = ["LLMAttributionResult", "pretty_tokens", "word_groups"]

WordGroups = list[int] | Callable[[], list[int] | None] | None


def _tensor(value: Any, name: str) -> Tensor:
    try:
        return value if isinstance(value, Tensor) else torch.tensor(value)
    except (TypeError, ValueError) as err:
        raise IntellegoError(f"{name} must be a tensor or array-like, got {describe(value)}") from err


class LLMAttributionResult:
    """Attributions of a generated (or given) target text to the features of the prompt.

    The constructor's keyword arguments are kept as attributes of the same names.

    Args:
        input_tokens: labels of the input features (``inp.values``).
        output_tokens: the target tokens as readable strings.
        seq_attr: ``(n_input,)`` attribution to the whole target (its total log-probability).
        token_attr: ``(n_output, n_input)`` attribution to each target token, or None (Lime, KernelShap).
        output_probs: optional ``(n_output,)`` probabilities of the target tokens.
        inp: the interpretable input (used by :meth:`plot_image_heatmap`).
        input_words: optional word index of each input token (tokens of one word share an index, in order),
            used by :meth:`aggregate_words`, or a function giving them on first use; the LLM classes give
            functions reading the tokenizer's offsets.
        output_words: the same for the output tokens.

    Example:
        >>> r = LLMAttributionResult(input_tokens=["a", "b"], output_tokens=["c"], seq_attr=[0.5, -1.0],
        ...                          token_attr=[[0.5, -1.0]])
        >>> r.seq_attr_dict
        {'a': 0.5, 'b': -1.0}
    """

    def __init__(self, *, input_tokens: list[str], output_tokens: list[str], seq_attr: Any,
                 token_attr: Any = None, output_probs: Any = None, inp: InterpretableInput | None = None,
                 input_words: WordGroups = None, output_words: WordGroups = None) -> None:
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        self._words: dict[str, Any] = {"input_words": input_words, "output_words": output_words}
        for name, groups in self._words.items():
            if not callable(groups):
                self._check_words(name, groups)
        self.seq_attr = seq_attr
        self.token_attr = token_attr
        self.output_probs = output_probs
        self.inp = inp

    @property
    def seq_attr(self) -> Tensor:
        return self._seq_attr

    @seq_attr.setter
    def seq_attr(self, value: Any) -> None:
        t = _tensor(value, "seq_attr")
        require(t.dim() == 1 and t.shape[0] == len(self.input_tokens),
                f"seq_attr must be 1-D with one value per input token ({len(self.input_tokens)}), got {describe(t)}")
        self._seq_attr = t

    @property
    def token_attr(self) -> Tensor | None:
        return self._token_attr

    @token_attr.setter
    def token_attr(self, value: Any) -> None:
        t = None if value is None else _tensor(value, "token_attr")
        shape = (len(self.output_tokens), len(self.input_tokens))
        require(t is None or tuple(t.shape) == shape,
                f"token_attr must have shape (n_output_tokens, n_input_tokens) = {shape}, got {describe(t)}")
        self._token_attr = t

    @property
    def output_probs(self) -> Tensor | None:
        return self._output_probs

    @output_probs.setter
    def output_probs(self, value: Any) -> None:
        t = None if value is None else _tensor(value, "output_probs")
        require(t is None or (t.dim() == 1 and t.shape[0] == len(self.output_tokens)),
                f"output_probs must be 1-D with one value per output token ({len(self.output_tokens)}), "
                f"got {describe(t)}")
        self._output_probs = t

    @property
    def seq_attr_dict(self) -> dict[str, float]:
        """``{input token: sequence attribution}`` (a repeated token keeps its last value)."""
        return dict(zip(self.input_tokens, self.seq_attr.cpu().tolist()))

    def _check_words(self, name: str, groups: Any) -> None:
        n = len(self.input_tokens if name == "input_words" else self.output_tokens)
        require(groups is None or (len(groups) == n and list(groups) == sorted(groups)),
                f"{name} must give a non-decreasing word index per token ({n}), got {describe(groups)}")

    def _groups(self, name: str) -> list[int] | None:
        groups = self._words[name]
        if callable(groups):
            groups = groups()
            self._check_words(name, groups)
            self._words[name] = groups
        return groups

    @property
    def input_words(self) -> list[int] | None:
        """Word index of each input token, or None when unknown."""
        return self._groups("input_words")

    @property
    def output_words(self) -> list[int] | None:
        """Word index of each output token, or None when unknown."""
        return self._groups("output_words")

    def aggregate_words(self, input_words: list[int] | None = None,
                        output_words: list[int] | None = None) -> LLMAttributionResult:
        """The result over words instead of sub-word tokens: attributions of a word's tokens summed (inputs in
        ``seq_attr`` and ``token_attr``'s columns, outputs in ``token_attr``'s rows), labels joined. Groups
        default to the ones the LLM classes recorded (each token its own word when none were).

        Example:
            >>> r = LLMAttributionResult(input_tokens=["un", "like", "ly", "cat"], output_tokens=["x"],
            ...                          seq_attr=[1.0, 2.0, 3.0, 4.0], input_words=[0, 0, 0, 1])
            >>> w = r.aggregate_words()
            >>> w.input_tokens, w.seq_attr.tolist()
            (['unlikely', 'cat'], [6.0, 4.0])
        """
        ins = input_words or self.input_words or list(range(len(self.input_tokens)))
        outs = output_words or self.output_words or list(range(len(self.output_tokens)))
        return LLMAttributionResult(
            input_tokens=_join(self.input_tokens, ins), output_tokens=_join(self.output_tokens, outs),
            seq_attr=_sum_groups(self.seq_attr, ins, 0),
            token_attr=None if self.token_attr is None else _sum_groups(_sum_groups(self.token_attr, ins, 1),
                                                                        outs, 0), inp=self.inp)

    def __repr__(self) -> str:
        return (f"LLMAttributionResult({len(self.input_tokens)} input tokens, {len(self.output_tokens)} output "
                f"tokens, token_attr={'None' if self.token_attr is None else tuple(self.token_attr.shape)})")

    @staticmethod
    def _cmap() -> Any:
        import matplotlib.colors as mcolors

        return mcolors.LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"])

    def _labels(self, tokens: list[str]) -> list[str]:
        return [shorten(repr(t)[1:-1], width=50, placeholder="...") for t in tokens]

    def plot_token_attr(self, show: bool = False, by_words: bool = False) -> Any:
        """Heat map of ``token_attr`` (outputs as rows, inputs as columns), values written in the cells;
        ``by_words=True`` plots :meth:`aggregate_words`.

        Returns ``(figure, axes)``, or None after ``plt.show()`` with ``show=True``.
        """
        if by_words:
            return self.aggregate_words().plot_token_attr(show)
        if self.token_attr is None:
            raise IntellegoError("token_attr is None (this method gives sequence attributions only); "
                                 "use plot_seq_attr")
        import matplotlib.pyplot as plt

        data = self.token_attr.detach().cpu().double().numpy()
        vmax = float(np.abs(data).max()) or 1.0
        fig, ax = plt.subplots(figsize=(max(data.shape[1] * 1.3, 6.4), max(data.shape[0] / 2.5, 4.8)))
        im = ax.imshow(data, vmin=-vmax, vmax=vmax, cmap=self._cmap(), aspect="auto")
        fig.colorbar(im, ax=ax).ax.set_ylabel("Token Attribution", rotation=-90, va="bottom")
        ax.set_xticks(np.arange(data.shape[1]), labels=self._labels(self.input_tokens))
        ax.set_yticks(np.arange(data.shape[0]), labels=[repr(t)[1:-1] for t in self.output_tokens])
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        plt.setp(ax.get_xticklabels(), rotation=-30, ha="right", rotation_mode="anchor")
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                shade = float(im.norm(data[i, j]))  # type: ignore[arg-type]
                color = "black" if 0.2 < shade < 0.8 else "white"
                ax.text(j, i, f"{data[i, j]:.4f}", ha="center", va="center", color=color)
        return _finish(plt, fig, ax, show)

    def plot_seq_attr(self, show: bool = False, by_words: bool = False) -> Any:
        """Bar chart of ``seq_attr`` per input token (positive blue, negative red); ``by_words=True`` plots
        :meth:`aggregate_words`."""
        if by_words:
            return self.aggregate_words().plot_seq_attr(show)
        import matplotlib.pyplot as plt

        data = self.seq_attr.detach().cpu().double().numpy()
        fig, ax = plt.subplots(figsize=(max(data.shape[0] / 2, 6.4), max(data.shape[0] / 4, 4.8)))
        pos = range(data.shape[0])
        ax.set_xticks(pos, labels=self._labels(self.input_tokens))
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        plt.setp(ax.get_xticklabels(), rotation=-30, ha="right", rotation_mode="anchor")
        ax.bar(pos, np.maximum(data, 0), align="center", color="#4772b3")
        ax.bar(pos, np.minimum(data, 0), align="center", color="#d0365b")
        ax.set_ylabel("Sequence Attribution", rotation=90, va="bottom")
        return _finish(plt, fig, ax, show)

    def plot_image_heatmap(self, show: bool = False, target_token_pos: int | tuple[int, int] | None = None,
                           border_width: int = 2, show_legends: bool = True) -> Any:
        """The input image (grey) under a heat map of the segment attributions (``ImageMaskInput`` only).

        ``target_token_pos``: None for ``seq_attr``, an int for one output token, ``(m, n)`` for the sum
        over output tokens ``m .. n-1``.
        """
        inp = self.inp
        if not isinstance(inp, ImageMaskInput):
            raise IntellegoError(f"plot_image_heatmap needs a result of an ImageMaskInput, got inp={describe(inp)}")
        if target_token_pos is None:
            attr = self.seq_attr
        elif self.token_attr is None:
            raise IntellegoError("token_attr is None; use target_token_pos=None for the sequence attribution")
        elif isinstance(target_token_pos, int):
            attr = self.token_attr[target_token_pos]
        else:
            attr = self.token_attr[target_token_pos[0]:target_token_pos[1]].sum(0)
        import matplotlib.pyplot as plt

        pixels = inp.format_pixel_attr(attr.double()).cpu().numpy()
        image = inp._array()
        fig, ax = plt.subplots()
        ax.imshow(image.mean(axis=2) if image.ndim == 3 else image, cmap="gray")
        vmax = float(np.abs(pixels).max()) or 1.0
        heat = ax.imshow(pixels, vmin=-vmax, vmax=vmax, cmap=self._cmap(), alpha=0.8)
        fig.colorbar(heat, ax=ax).ax.set_ylabel("Attribution", rotation=-90, va="bottom")
        for mid, m in zip(inp.mask_id_to_idx, inp.get_mask_list()):
            mk = m.bool().cpu().numpy()
            if border_width > 0 and mk.any():
                ax.contour(mk, levels=[0.5], colors=["black"], linewidths=border_width)
            if show_legends and mk.any():
                ys, xs = np.nonzero(mk)
                ax.text(xs.mean(), ys.mean(), str(mid), ha="center", va="center")
        ax.axis("off")
        return _finish(plt, fig, ax, show)


def _finish(plt: Any, fig: Any, ax: Any, show: bool) -> Any:
    fig.set_facecolor("white")
    if show:
        plt.show()
        return None
    return fig, ax


def _clean(token: str) -> str:
    return token.replace("\n", "\\n").strip()


def pretty_tokens(ids: Tensor, tokenizer: Any) -> list[str]:
    """Readable strings for token ids: the spans of the decoded text (from the tokenizer's offset mapping
    when re-encoding the text gives the same ids), otherwise each id decoded on its own."""
    id_list = [int(v) for v in ids.reshape(-1).tolist()]
    text = tokenizer.decode(ids)
    try:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        again, offsets = [int(v) for v in enc["input_ids"]], [tuple(o) for o in enc["offset_mapping"]]
    except (TypeError, KeyError, NotImplementedError):
        again, offsets = [], []
    if again == id_list and len(offsets) == len(id_list):
        out, end_prev = [], -1
        for i, (start, end) in enumerate(offsets):
            if start == end:  # no span given: reach to the next token's start
                end = offsets[i + 1][0] if i + 1 < len(offsets) else len(text)
            out.append(_clean(text[start:end]) + (" [OVERLAP]" if end_prev > start else ""))
            end_prev = end
        return out
    if offsets:
        warnings.warn("re-encoding the decoded target gives other token ids; decoding each token on its own",
                      stacklevel=3)
    return _decode_each(id_list, tokenizer)


def _decode_each(ids: list[int], tokenizer: Any) -> list[str]:
    """Each id decoded on its own; of two adjacent ids that each decode to a lone replacement character (bytes of
    one character split over two tokens), the second is marked ``[OVERLAP]``, as Captum's labels do.

    Example:
        >>> class Bytes:  # ids are bytes; 0xC3 0xA9 is "é"
        ...     def decode(self, ids): return bytes(ids).decode("utf-8", errors="replace")
        ...     def encode(self, text, add_special_tokens=False): return list(text.encode())
        >>> _decode_each([0x61, 0xC3, 0xA9], Bytes())
        ['a', '�', '� [OVERLAP]']
    """
    texts = [tokenizer.decode([i]) for i in ids]

    def fragment(k: int) -> bool:
        return texts[k].strip() == "\ufffd" and list(tokenizer.encode(texts[k], add_special_tokens=False)) != [ids[k]]

    out, k = [], 0
    while k < len(ids):
        if fragment(k) and k + 1 < len(ids):
            out += [_clean(texts[k]), _clean(texts[k + 1]) + (" [OVERLAP]" if fragment(k + 1) else "")]
            k += 2
        else:
            out.append(_clean(texts[k]))
            k += 1
    return out


def _join(tokens: list[str], groups: list[int]) -> list[str]:
    """Labels of the tokens of each word joined (byte-level and sentencepiece space marks dropped)."""
    out: dict[int, str] = {}
    for tok, g in zip(tokens, groups):
        out[g] = out.get(g, "") + tok
    return [w.replace("\u0120", " ").replace("\u2581", " ").strip() or w for w in out.values()]


def _sum_groups(values: Tensor, groups: list[int], dim: int) -> Tensor:
    """``values`` summed over runs of equal group index along ``dim``."""
    require(len(groups) == values.shape[dim], f"word groups give {len(groups)} entries for dimension {dim} of "
            f"size {values.shape[dim]}")
    index = torch.tensor(groups, device=values.device)
    index = index - index[0] if len(groups) else index
    _, index = torch.unique_consecutive(index, return_inverse=True)
    shape = list(values.shape)
    shape[dim] = int(index.max()) + 1 if len(groups) else 0
    return values.new_zeros(shape).index_add_(dim, index, values)


def _continues(piece: str, prev: str, text: str, start: int) -> bool:
    """Whether a token's text continues the previous token's word: no space before it, both alphanumeric."""
    if not piece or piece[0].isspace() or (start > 0 and text[start - 1].isspace()):
        return False
    return any(c.isalnum() for c in piece) and any(c.isalnum() for c in prev)


def word_groups(ids: Tensor, tokenizer: Any) -> list[int] | None:
    """The word index of each token id from the tokenizer's offsets: a token continues the previous word when
    no space separates them and neither is punctuation; a lone space token joins the word after it. None when
    the tokenizer gives no offsets or re-encoding the text gives other ids.

    Example:
        >>> from intellego.models.tiny_lm import WordTokenizer
        >>> tok = WordTokenizer("the cat sat .".split())
        >>> word_groups(torch.tensor(tok.encode("the cat sat.", add_special_tokens=False)), tok)
        [0, 1, 2, 3]
    """
    id_list = [int(v) for v in ids.reshape(-1).tolist()]
    if not id_list:
        return None
    text = tokenizer.decode(ids.reshape(-1))
    try:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        again, offsets = [int(v) for v in enc["input_ids"]], [tuple(o) for o in enc["offset_mapping"]]
    except (TypeError, KeyError, NotImplementedError):
        return None
    if again != id_list:
        return None
    groups: list[int] = []
    prev = ""
    for start, end in offsets:
        piece = text[start:end]
        if not groups:
            groups.append(0)
        elif prev.strip() == "" or _continues(piece, prev, text, start):
            groups.append(groups[-1])
        else:
            groups.append(groups[-1] + 1)
        prev = piece
    return groups
