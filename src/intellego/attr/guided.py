"""``GuidedBackprop`` and ``Deconvolution``: gradients in which ReLUs pass only positive signals; their neuron
variants ``NeuronGuidedBackprop`` and ``NeuronDeconvolution`` (the method on the model cut at the layer).

Every ReLU counts, whether it is an ``nn.ReLU`` module (in place or not, used once or several times) or a
functional ``torch.relu`` / ``F.relu`` / ``x.relu()`` inside ``forward``. The rules are applied on the autograd
graph the forward pass leaves (:mod:`intellego.engines.graph_rules`: the forward pass runs at full speed); where
that graph hides a ReLU (an in-place operation on a view), the function-mode engine runs the same rules
(:data:`GUIDED`, :data:`DECONV`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..core.grad import ForwardSpec
from ..core.inputs import pack, require_float, unpack
from ..engines.graph_rules import NodeRule, graph_gradients
from ..engines.rules import Call, Fast, Rule, RuleMap, WithFast, rule_gradients
from ._base import GradientAttribution, public_call
from ._neuron_engine import NeuronMethod, NeuronPlan


def _positive(grad: Tensor) -> Tensor:
    return grad.clamp(min=0)


def _guided(call: Call, grad: Tensor) -> tuple[Tensor]:
    return (grad.clamp(min=0) * (call.x > 0).to(grad.dtype),)


def _deconv(call: Call, grad: Tensor) -> tuple[Tensor]:
    return (grad.clamp(min=0),)


def _guided_direct(call: Call, x: Tensor, hook: Any) -> Tensor:
    """The ReLU as it is (its backward is the guided mask), its output's gradient clamped by a hook."""
    y = call.run(x)
    hook(y, _positive)
    return y


def _deconv_direct(call: Call, x: Tensor, hook: Any) -> Tensor:
    """A copy of ``x`` (identity backward, nothing saved) rectified in place outside autograd, its gradient
    clamped by a hook: two kernels forward, one backward."""
    y = x.clone()
    y.detach().relu_()
    hook(y, _positive)
    return y


# the ReLU's own derivative is the guided mask; deconvolution replaces it with 1
_GUIDED = WithFast(_guided, Fast(output=lambda call: _positive), direct=_guided_direct)
_DECONV = WithFast(_deconv, Fast(multiplier=lambda call: 1.0, output=lambda call: _positive), direct=_deconv_direct)


def _positive_in(grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (grads[0].clamp(min=0),)


def _positive_through(_grad_inputs: tuple[Tensor, ...], grad_outputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (grad_outputs[0].clamp(min=0),)


# the same rules on the graph: a ReLU node's own backward is the guided mask; deconvolution replaces its result
GUIDED_NODES = {"ReluBackward0": NodeRule(pre=_positive_in)}
DECONV_NODES = {"ReluBackward0": NodeRule(post=_positive_through)}


def GUIDED(kind: str, modules: list[nn.Module]) -> Rule | None:  # noqa: N802
    """Guided Backprop: ReLUs pass only positive gradients where their input was positive."""
    return _GUIDED if kind == "relu" else None


def DECONV(kind: str, modules: list[nn.Module]) -> Rule | None:  # noqa: N802
    """Deconvolution: ReLUs pass the positive part of the incoming gradient, whatever their input."""
    return _DECONV if kind == "relu" else None

__all__ = ["GuidedBackprop", "Deconvolution", "NeuronGuidedBackprop", "NeuronDeconvolution"]


class _ModifiedReLU(GradientAttribution):
    _rules: RuleMap
    _nodes: dict[str, NodeRule]

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.model = model

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None) -> Any:
        """Compute the attributions.

        Returns:
            Modified gradients of ``target`` w.r.t. ``inputs``, same structure as ``inputs``.
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        grads = graph_gradients(spec, xs, type(self)._nodes)
        if grads is None:  # the graph hides a node: the function-mode engine sees every call as it runs
            grads = rule_gradients(spec, xs, type(self)._rules).grads
        return unpack(grads, was_tuple)


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
    _nodes = GUIDED_NODES


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
    _nodes = DECONV_NODES


class NeuronGuidedBackprop(NeuronMethod, GradientAttribution):
    """Guided Backprop of one neuron with respect to the inputs.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronGuidedBackprop
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4),
        ...                             torch.nn.ReLU())
        >>> NeuronGuidedBackprop(model, model[3]).attribute(torch.randn(2, 3), 1).shape
        torch.Size([2, 3])
    """

    _primary: type[GuidedBackprop] | type[Deconvolution] = GuidedBackprop

    def __init__(self, model: Any, layer: Any, device_ids: list[int] | None = None, *, layer_call: int = 0) -> None:
        super().__init__(model, layer, device_ids, layer_call=layer_call)
        self.model = model

    @public_call
    def attribute(self, inputs: Any, neuron_selector: Any, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False) -> Any:
        """Compute the attributions.

        Returns:
            The neuron's modified gradients, shaped like ``inputs``.
        """
        plan = NeuronPlan(neuron_selector)
        method = self._primary(self._cut(attribute_to_neuron_input, plan))
        return self._run(inputs, plan, None, additional_forward_args,
                         lambda x, _b, t, a: method.attribute(x, target=t, additional_forward_args=a))


class NeuronDeconvolution(NeuronGuidedBackprop):
    """Deconvolution of one neuron with respect to the inputs.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronDeconvolution
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
        >>> NeuronDeconvolution(model, model[2]).attribute(torch.randn(2, 3), 1).shape
        torch.Size([2, 3])
    """

    _primary = Deconvolution
