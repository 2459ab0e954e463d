"""Captum's ``ModelInputWrapper``: a model whose inputs each pass through their own identity layer.

Layer methods can then attribute to a model input like to any layer (``wrapped.input_maps["x"]``), for example
to mix an embedding layer of text tokens with a raw image input in one multimodal attribution.

Example:
    >>> import torch
    >>> from intellego.attr import LayerIntegratedGradients
    >>> class TwoInputs(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = torch.nn.Linear(3, 1), torch.nn.Linear(2, 1)
    ...     def forward(self, x, y):
    ...         return self.a(x) + self.b(y)
    >>> wrapped = ModelInputWrapper(TwoInputs())
    >>> sorted(wrapped.input_maps)
    ['x', 'y']
    >>> x, y = torch.randn(4, 3), torch.randn(4, 2)
    >>> attr = LayerIntegratedGradients(wrapped, [wrapped.input_maps["x"], wrapped.input_maps["y"]]).attribute(
    ...     (x, y), target=0)
    >>> [tuple(a.shape) for a in attr]
    [(4, 3), (4, 2)]
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..errors import describe, require

__all__ = ["InputIdentity", "ModelInputWrapper"]


class InputIdentity(nn.Module):
    """The identity, as a layer standing for the model input ``input_name``."""

    def __init__(self, input_name: str) -> None:
        super().__init__()
        self.input_name = input_name

    def forward(self, x: Any) -> Any:
        return x

    def extra_repr(self) -> str:
        return f"input_name={self.input_name!r}"


class ModelInputWrapper(nn.Module):
    """``module_to_wrap`` with one :class:`InputIdentity` per named argument of its ``forward``, in
    ``input_maps``; it is called like the wrapped module and returns the same output.

    Arguments that ``forward`` only takes through ``*args`` or ``**kwargs`` pass through unwrapped (Captum
    raises a KeyError for such keywords).
    """

    def __init__(self, module_to_wrap: nn.Module) -> None:
        require(isinstance(module_to_wrap, nn.Module),
                f"module_to_wrap must be a torch.nn.Module, got {describe(module_to_wrap)}")
        super().__init__()
        self.module = module_to_wrap
        params = inspect.signature(module_to_wrap.forward).parameters.values()
        self.arg_name_list = [p.name for p in params
                              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        self._positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.input_maps = nn.ModuleDict({name: InputIdentity(name) for name in self.arg_name_list})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        mapped = [self.input_maps[name](a) for name, a in zip(self._positional, args)]
        mapped += list(args[len(mapped):])
        named = {k: self.input_maps[k](v) if k in self.input_maps else v for k, v in kwargs.items()}
        return self.module(*mapped, **named)
