"""Plain gradient methods: ``Saliency`` and ``InputXGradient``.

Beyond Captum, the keyword-only ``targets`` (a list of targets) attributes all of them in one batched call
and returns ``(len(targets), *input_shape)`` tensors; see :mod:`intellego.attr._fanout`.
"""

from __future__ import annotations

from typing import Any

from ..core.grad import ForwardSpec, chunked_gradients
from ..core.inputs import pack, require_float, unpack
from ._base import GradientAttribution, public_call
from ._fanout import fan_out_targets

__all__ = ["Saliency", "InputXGradient"]


class Saliency(GradientAttribution):
    """The gradient of the target output with respect to each input (absolute value by default).

    Example:
        >>> import torch
        >>> from intellego.attr import Saliency
        >>> model = torch.nn.Linear(3, 2)
        >>> Saliency(model).attribute(torch.randn(4, 3), target=0).shape
        torch.Size([4, 3])
    """

    @public_call
    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        *,
        targets: list[Any] | None = None,
        internal_batch_size: int | None = None,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Returns:
            Gradients of ``target`` w.r.t. ``inputs``; ``abs`` returns their absolute values.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, abs, a, internal_batch_size=internal_batch_size, memory_budget=memory_budget),
                inputs, None, additional_forward_args)
        xs, was_tuple = pack(inputs)
        require_float(xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        grads, _ = chunked_gradients(spec, xs, limit=internal_batch_size, memory_budget=memory_budget)
        return unpack([g.abs() if abs else g for g in grads], was_tuple)


class InputXGradient(GradientAttribution):
    """Input times the gradient of the target output with respect to it.

    Example:
        >>> import torch
        >>> from intellego.attr import InputXGradient
        >>> model = torch.nn.Linear(3, 1, bias=False)
        >>> x = torch.randn(2, 3)
        >>> torch.allclose(InputXGradient(model).attribute(x), x * model.weight)
        True
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    @public_call
    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        *,
        targets: list[Any] | None = None,
        internal_batch_size: int | None = None,
        memory_budget: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Returns:
            ``inputs * d target / d inputs``, same structure as ``inputs``.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, internal_batch_size=internal_batch_size, memory_budget=memory_budget),
                inputs, None, additional_forward_args)
        xs, was_tuple = pack(inputs)
        require_float(xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        grads, _ = chunked_gradients(spec, xs, limit=internal_batch_size, memory_budget=memory_budget)
        return unpack([g * x for g, x in zip(grads, xs)], was_tuple)
