"""Interpretable inputs: what the model consumes (text, token ids, an image) versus the features we perturb.

An :class:`InterpretableInput` turns a presence vector ``z`` (``1`` = feature kept, ``0`` = replaced by its
baseline) into a model input: ``to_tensor()`` is the all-present vector ``(1, n_itp_features)``,
``to_model_input(z)`` the input with the absent features replaced, ``format_attr`` maps per-feature
attributions back onto the raw elements when several share one feature. ``LLMAttribution`` perturbs these.

Example:
    >>> import torch
    >>> from intellego.attr import TextTemplateInput
    >>> inp = TextTemplateInput("{} feels {} today", values=["Ann", "sad"], baselines=["Bob", "fine"])
    >>> inp.to_tensor().tolist(), inp.to_model_input(torch.tensor([[0.0, 1.0]]))
    ([[1.0, 1.0]], 'Bob feels sad today')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require

__all__ = ["InterpretableInput", "TextTemplateInput", "TextTokenInput", "ImageMaskInput", "ProductBaselines"]


class InterpretableInput(ABC):
    """A model input seen as ``n_itp_features`` features that can each be present or absent.

    Subclasses set ``n_itp_features`` and ``values`` (one label per raw feature, used for plots) and
    implement ``to_tensor`` and ``to_model_input``; :class:`TextTemplateInput`, :class:`TextTokenInput` and
    :class:`ImageMaskInput` are the ones intellego ships.

    Example:
        >>> import torch
        >>> class Words(InterpretableInput):  # a sentence whose words can be dropped
        ...     def __init__(self, text):
        ...         self.values = text.split()
        ...         self.n_itp_features = len(self.values)
        ...     def to_tensor(self):
        ...         return torch.ones(1, self.n_itp_features)
        ...     def to_model_input(self, perturbed_tensor=None):
        ...         keep = self.to_tensor() if perturbed_tensor is None else perturbed_tensor
        ...         return " ".join(w for w, k in zip(self.values, keep[0].tolist()) if k)
        >>> Words("a very good film").to_model_input(torch.tensor([[1, 0, 1, 1]]))
        'a good film'
    """

    n_itp_features: int
    values: list[str]

    @abstractmethod
    def to_tensor(self) -> Tensor:
        """The all-present interpretable vector, shape ``(1, n_itp_features)``."""

    @abstractmethod
    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        """The model input for the presence vector ``perturbed_tensor`` (the original input for None)."""

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """Per-feature attributions ``(..., n_itp_features)`` mapped onto the raw features (identity here)."""
        return itp_attr


def _presence_row(perturbed: Tensor, n: int, who: str) -> list[bool]:
    """The one row of a presence tensor ``(1, n)`` or ``(n,)`` as booleans."""
    if not (isinstance(perturbed, Tensor) and perturbed.shape[-1:] == (n,) and perturbed.numel() == n):
        raise IntellegoError(f"{who}.to_model_input takes a presence tensor of shape (1, {n}), "
                             f"got {describe(perturbed)}")  # built on failure only: this runs once per prompt
    return [bool(v) for v in perturbed.reshape(n).tolist()]


def _group_ids(mask: list[Any], n: int) -> tuple[list[int], int]:
    """Dense ids ``0..k-1`` (in sorted order of the given ids) for a grouping mask of ``n`` entries."""
    require(isinstance(mask, list) and len(mask) == n and all(isinstance(m, int) for m in mask),
            f"mask must give one int per value ({n}), got {describe(mask)}")
    order = {mid: i for i, mid in enumerate(sorted(set(mask)))}
    return [order[m] for m in mask], len(order)


class TextTemplateInput(InterpretableInput):
    """Text built from a template whose slots are the features (words, phrases, whole sentences).

    Args:
        template: a ``str.format`` template (positional ``{}`` for list values, ``{name}`` for dict values)
            or a callable taking the slot values and returning the text.
        values: the slot values, a list of strings or a dict of named strings.
        baselines: what an absent slot becomes: a list (or dict) like ``values``, or a callable returning
            one (called for every perturbed text, e.g. :class:`ProductBaselines`). Default: empty strings.
        mask: one int per value grouping slots into features (same int = removed together).

    Example:
        >>> import torch
        >>> inp = TextTemplateInput("{a} and {b} or {c}", values={"a": "x", "b": "y", "c": "z"},
        ...                         mask={"a": 0, "b": 1, "c": 0})
        >>> inp.n_itp_features, inp.to_model_input(torch.tensor([[0, 1]]))
        (2, ' and y or ')
        >>> inp.format_attr(torch.tensor([[1.0, 2.0]])).tolist()
        [[1.0, 2.0, 1.0]]
    """

    def __init__(self, template: str | Callable[..., str], values: list[str] | dict[str, str],
                 baselines: Any = None, mask: list[int] | dict[str, int] | None = None) -> None:
        if isinstance(values, dict):
            self.dict_keys = list(values)
            values = [values[k] for k in self.dict_keys]
        else:
            require(isinstance(values, list), f"values must be a list or a dict of strings, got {describe(values)}")
            self.dict_keys = []
        self.values = list(values)
        self.n_features = len(self.values)
        require(self.n_features > 0, "values must hold at least one slot value")
        if baselines is None:
            baselines = [""] * self.n_features
        elif not callable(baselines):
            baselines = self._as_list(baselines, "baselines")
        self.baselines = baselines
        self.mask = mask
        if mask is None:
            self.n_itp_features = self.n_features
        else:
            self.formatted_mask, self.n_itp_features = _group_ids(self._as_list(mask, "mask"), self.n_features)
        require(isinstance(template, str) or callable(template),
                f"template must be a format string or a callable, got {describe(template)}")
        self.template = template
        self.format_fn: Callable[..., str] = template.format if isinstance(template, str) else template
        if isinstance(template, str):
            self._check_slots(template)

    def _check_slots(self, template: str) -> None:
        """A format-string template must take the values as given (a slot without a value, or a value named
        by no slot, would fail or vanish at the first perturbed prompt)."""
        try:
            self.to_model_input()
        except (IndexError, KeyError) as err:
            given = f"keys {self.dict_keys}" if self.dict_keys else f"{self.n_features} value(s)"
            raise IntellegoError(f"template {template!r} has a slot that values does not fill ({given}): "
                                 f"{type(err).__name__} {err}; give one value per '{{}}' slot") from None

    def _as_list(self, value: Any, name: str) -> list[Any]:
        """``value`` in the layout of ``values`` (a dict for dict values), as a list in slot order."""
        if self.dict_keys:
            if not isinstance(value, dict) or any(k not in value for k in self.dict_keys):
                raise IntellegoError(f"values is a dict with keys {self.dict_keys}, so {name} must be a dict "
                                     f"with those keys, got {describe(value)}")
            value = [value[k] for k in self.dict_keys]
        elif not isinstance(value, list):
            raise IntellegoError(f"values is a list, so {name} must be a list, got {describe(value)}")
        require(len(value) == self.n_features,
                f"{name} must have one entry per value ({self.n_features}), got {len(value)}")
        return value

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> str:
        """The completed text; absent slots take their baselines."""
        values = list(self.values)
        if perturbed_tensor is not None:
            present = _presence_row(perturbed_tensor, self.n_itp_features, "TextTemplateInput")
            base = self._as_list(self.baselines(), "baselines()") if callable(self.baselines) else self.baselines
            for i in range(self.n_features):
                if not present[self.formatted_mask[i] if self.mask is not None else i]:
                    values[i] = base[i]
        if self.dict_keys:
            return self.format_fn(**dict(zip(self.dict_keys, values)))
        return self.format_fn(*values)

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """Attributions per slot: each slot gets its group's value."""
        if self.mask is None:
            return itp_attr
        return itp_attr[..., torch.tensor(self.formatted_mask, device=itp_attr.device)]


class TextTokenInput(InterpretableInput):
    """Text whose features are its tokens under ``tokenizer``; an absent token becomes the baseline token.

    Args:
        text: the text.
        tokenizer: a Hugging Face style tokenizer (``encode``, ``convert_ids_to_tokens``,
            ``convert_tokens_to_ids``).
        baselines: the replacement token, as an id or a token string. Default 0.
        skip_tokens: tokens (ids or strings) that are never features, e.g. ``["<s>"]``: they stay in the
            model input and get no attribution.

    Example:
        >>> import torch
        >>> from intellego.models.tiny_lm import WordTokenizer
        >>> tok = WordTokenizer("a b c".split())
        >>> inp = TextTokenInput("a b c", tok, skip_tokens=["<s>"])
        >>> inp.values, inp.to_model_input(torch.tensor([[1, 0, 1]])).tolist()
        (['a', 'b', 'c'], [[1, 3, 0, 5]])
    """

    def __init__(self, text: str, tokenizer: Any, baselines: int | str = 0,
                 skip_tokens: list[int] | list[str] | None = None) -> None:
        require(isinstance(text, str), f"text must be a string, got {describe(text)}")
        ids = tokenizer.encode(text, return_tensors="pt")
        require(isinstance(ids, Tensor) and ids.dim() == 2 and ids.shape[0] == 1,
                f"tokenizer.encode(text, return_tensors='pt') must give a (1, n) tensor, got {describe(ids)}")
        self.inp_tensor = self.itp_tensor = ids
        self.itp_mask: Tensor | None = None
        if skip_tokens:
            if isinstance(skip_tokens[0], str):
                skip_tokens = list(tokenizer.convert_tokens_to_ids(list(skip_tokens)))
            skip = torch.tensor(list(skip_tokens), dtype=ids.dtype)
            self.itp_mask = ~torch.isin(ids, skip)
            self.itp_tensor = ids[self.itp_mask].unsqueeze(0)
        self.skip_tokens = skip_tokens
        self.tokenizer = tokenizer
        self.values = list(tokenizer.convert_ids_to_tokens(self.itp_tensor[0].tolist()))
        self.n_itp_features = len(self.values)
        if isinstance(baselines, str):
            baselines = tokenizer.convert_tokens_to_ids([baselines])[0]
        require(isinstance(baselines, int) and not isinstance(baselines, bool),
                f"baselines must be a token id (int) or a token string, got {describe(baselines)}")
        self.baselines: int = cast(int, baselines)

    def to_tensor(self) -> Tensor:
        return torch.ones_like(self.itp_tensor)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Tensor:
        """Token ids ``(batch, n_tokens)`` for presence rows ``(batch, n_itp_features)`` (any value other
        than 1 counts as absent)."""
        if perturbed_tensor is None:
            return self.inp_tensor
        require(isinstance(perturbed_tensor, Tensor) and perturbed_tensor.dim() == 2
                and perturbed_tensor.shape[1] == self.n_itp_features,
                f"TextTokenInput.to_model_input takes presence rows of shape (batch, {self.n_itp_features}), "
                f"got {describe(perturbed_tensor)}")
        device, rows = perturbed_tensor.device, perturbed_tensor.shape[0]
        itp = self.itp_tensor.to(device).expand(rows, -1)
        itp = torch.where(perturbed_tensor != 1, torch.full_like(itp, self.baselines), itp)
        if self.itp_mask is None:
            return itp
        out = self.inp_tensor.to(device).expand(rows, -1).clone()
        out[self.itp_mask.to(device).expand(rows, -1)] = itp.reshape(-1)
        return out


class ImageMaskInput(InterpretableInput):
    """An image whose features are pixel segments; an absent segment is painted with ``baseline``.

    Args:
        image: a PIL image, or an ``(height, width, channels)`` array or tensor (no Pillow needed then).
        mask: ``(height, width)`` integer segment ids; None makes the whole image one feature.
        mask_list: boolean ``(height, width)`` masks, one feature each (may overlap); overrides ``mask``.
        baseline: the colour of absent pixels. Default white.
        processor_fn: turns the (perturbed) image into the model input. Default: the image itself.

    Example:
        >>> import numpy as np, torch
        >>> img = np.zeros((2, 2, 3), dtype=np.uint8)
        >>> inp = ImageMaskInput(img, mask=torch.tensor([[0, 1], [0, 1]]))
        >>> inp.to_model_input(torch.tensor([[1, 0]]))[:, :, 0].tolist()
        [[0, 255], [0, 255]]
    """

    def __init__(self, image: Any, mask: Tensor | None = None, mask_list: list[Tensor] | None = None,
                 baseline: tuple[int, int, int] = (255, 255, 255),
                 processor_fn: Callable[[Any], Any] = lambda x: x) -> None:
        self.image, self.baseline, self.processor_fn = image, baseline, processor_fn
        array = self._array()
        require(array.ndim in (2, 3), f"image must be (height, width[, channels]), got shape {array.shape}")
        shape = tuple(array.shape[:2])
        if mask_list is not None:
            for i, m in enumerate(mask_list):
                require(isinstance(m, Tensor) and tuple(m.shape) == shape,
                        f"mask_list[{i}] must be a tensor of the image's shape {shape}, got {describe(m)}")
            ids: list[int] = list(range(len(mask_list)))
            mask = torch.empty(0)
        else:
            mask = torch.zeros(shape, dtype=torch.int32) if mask is None else mask
            require(isinstance(mask, Tensor) and tuple(mask.shape) == shape,
                    f"mask must be a tensor of the image's shape {shape}, got {describe(mask)}")
            ids = [int(v) for v in torch.unique(mask).tolist()]
            mask_list = []
        self.mask, self.mask_list = mask, mask_list
        self.mask_id_to_idx = {mid: i for i, mid in enumerate(ids)}
        self.n_itp_features = len(ids)
        self.values = [f"image_feature_{mid}" for mid in ids]
        self.original_model_inputs = processor_fn(image)

    def _array(self) -> np.ndarray:
        if isinstance(self.image, Tensor):
            return self.image.detach().cpu().numpy()
        if isinstance(self.image, np.ndarray) or type(self.image).__module__.startswith("PIL"):
            return np.array(self.image)
        raise IntellegoError(f"image must be a PIL image, a numpy array or a tensor, got {describe(self.image)}")

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features)

    def get_mask_list(self) -> list[Tensor]:
        """One boolean ``(height, width)`` mask per feature."""
        return self.mask_list or [self.mask == mid for mid in self.mask_id_to_idx]

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        """``processor_fn`` of the image with absent segments painted (same type as the given image)."""
        if perturbed_tensor is None:
            return self.original_model_inputs
        present = _presence_row(perturbed_tensor, self.n_itp_features, "ImageMaskInput")
        array = self._array().copy()
        for keep, m in zip(present, self.get_mask_list()):
            if not keep:
                array[m.bool().cpu().numpy()] = self.baseline
        if isinstance(self.image, Tensor):
            image: Any = torch.as_tensor(array, device=self.image.device)
        elif isinstance(self.image, np.ndarray):
            image = array
        else:
            from PIL import Image  # the caller gave a PIL image, so Pillow is installed

            image = Image.fromarray(array.astype("uint8"))
        return self.processor_fn(image)

    def format_pixel_attr(self, itp_attr: Tensor) -> Tensor:
        """Per-pixel attributions ``(..., height, width)``: the sum over the features covering a pixel."""
        masks = torch.stack([m.bool() for m in self.get_mask_list()]).to(itp_attr.device, itp_attr.dtype)
        return torch.einsum("...f,fhw->...hw", itp_attr, masks)

    def plot_mask_overlay(self, show: bool = False, border_width: int = 0, show_legends: bool = True) -> Any:
        """The image with each segment tinted in its own colour and labelled with its id."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.imshow(self._array())
        colors = np.random.default_rng(0).random((self.n_itp_features, 3))
        for m, color, mid in zip(self.get_mask_list(), colors, self.mask_id_to_idx):
            mk = m.bool().cpu().numpy()
            ax.imshow(mk[..., None] * np.array([*color, 0.6]))
            if border_width > 0:
                ax.contour(mk, levels=[0.5], colors=[color], linewidths=border_width)
            if show_legends and mk.any():
                ys, xs = np.nonzero(mk)
                ax.text(xs.mean(), ys.mean(), str(mid), ha="center", va="center")
        ax.axis("off")
        if show:
            plt.show()
            return None
        return fig, ax


class ProductBaselines:
    """Baselines drawn from the Cartesian product of per-feature choices (a callable for
    ``TextTemplateInput(baselines=...)``).

    Args:
        baseline_values: a list of choice lists (one per feature), or a dict from feature name (or a tuple
            of names whose values are drawn together, as tuples) to choices.
        generator: keyword-only; the ``torch.Generator`` for the draws (Python's global RNG is not used).

    Example:
        >>> import torch
        >>> pb = ProductBaselines({"name": ["Al", "Bo"], ("city", "land"): [("Rome", "Italy")]},
        ...                       generator=torch.Generator().manual_seed(0))
        >>> sorted(pb())
        ['city', 'land', 'name']
    """

    def __init__(self, baseline_values: list[list[Any]] | dict[Any, list[Any]], *,
                 generator: torch.Generator | None = None) -> None:
        if isinstance(baseline_values, dict):
            self.dict_keys: list[Any] = list(baseline_values)
            baseline_values = [baseline_values[k] for k in self.dict_keys]
        else:
            require(isinstance(baseline_values, list), f"baseline_values must be a list of lists or a dict of "
                    f"lists, got {describe(baseline_values)}")
            self.dict_keys = []
        for i, choices in enumerate(baseline_values):
            require(isinstance(choices, (list, tuple)) and len(choices) > 0,
                    f"baseline_values[{i}] must be a non-empty list of choices, got {describe(choices)}")
        self.baseline_values = baseline_values
        self.generator = generator

    def sample(self) -> list[Any] | dict[Any, Any]:
        picks = [c[int(torch.randint(len(c), (), generator=self.generator))] for c in self.baseline_values]
        if not self.dict_keys:
            return picks
        out: dict[Any, Any] = {}
        for key, val in zip(self.dict_keys, picks):
            keys, vals = (key, val) if isinstance(key, tuple) else ((key,), (val,))
            require(len(keys) == len(vals), f"the choices for {key} must be tuples of {len(keys)} values")
            out.update(zip(keys, vals))
        return out

    def __call__(self) -> list[Any] | dict[Any, Any]:
        return self.sample()
