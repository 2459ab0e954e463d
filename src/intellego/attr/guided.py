"""``GuidedBackprop`` and ``Deconvolution``: gradients in which ReLUs pass only positive signals.

Every ReLU counts, whether it is an ``nn.ReLU`` module (in place or not, used once or several times) or a
functional ``torch.relu`` / ``F.relu`` / ``x.relu()`` inside ``forward``.
"""

from __future__ import annotations

from typing import Any

from ..core.grad import ForwardSpec
from ..core.inputs import pack, require_float, unpack
from ..engines.rules import DECONV, GUIDED, RuleMap, rule_gradients
from ._base import GradientAttribution

__all__ = ["GuidedBackprop", "Deconvolution"]


class _ModifiedReLU(GradientAttribution):
    _rules: RuleMap

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.model = model

    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None) -> Any:
        """Modified gradients of ``target`` w.r.t. ``inputs``, same structure as ``inputs``."""
        xs, was_tuple = pack(inputs)
        require_float(xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        return unpack(rule_gradients(spec, xs, type(self)._rules).grads, was_tuple)


class GuidedBackprop(_ModifiedReLU):
    """Guided Backpropagation (Springenberg et al., 2014): at each ReLU the gradient is passed only where
    both the ReLU's input and the incoming gradient are positive.

    Example:
        >>> import torch
        >>> from intellego.attr import GuidedBackprop
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> GuidedBackprop(model).attribute(torch.randn(5, 3), target=1).shape
        torch.Size([5, 3])
    """

    _rules = staticmethod(GUIDED)


class Deconvolution(_ModifiedReLU):
    """Deconvolution (Zeiler and Fergus, 2014): at each ReLU the positive part of the incoming gradient is
    passed, whatever the ReLU's input was.

    Example:
        >>> import torch
        >>> from intellego.attr import Deconvolution
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> Deconvolution(model).attribute(torch.randn(5, 3), target=0).shape
        torch.Size([5, 3])
    """

    _rules = staticmethod(DECONV)
