"""Base classes with Captum's names: ``Attribution`` and its gradient, perturbation, layer and neuron kinds."""

from __future__ import annotations

import copy
import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._docs import add_shared_args, fill_docs
from ..core.grad import ForwardSpec, grad_kwargs_scope
from ..core.hooks import ModelScan, keep_buffers
from ..core.inputs import pack, pack_baselines
from ..errors import IntellegoError, describe, require
from ._guard import guarded

__all__ = [
    "public_call",
    "Attribution",
    "GradientAttribution",
    "PerturbationAttribution",
    "InternalAttribution",
    "LayerAttribution",
    "NeuronAttribution",
]


class Attribution:
    """An attribution method over a model or any callable ``forward_func(*inputs, *args)``.

    A method subclasses it (or one of its kinds below) and defines ``attribute``, decorated with
    :func:`public_call`; the shared argument texts of its docstrings are filled in when the subclass is defined.

    Args:
        {FORWARD_FUNC}

    Example:
        >>> import torch
        >>> class Difference(Attribution):
        ...     "Output change when each input is zeroed on its own (a tiny occlusion)."
        ...     @public_call
        ...     def attribute(self, inputs):
        ...         out = self.forward_func(inputs)
        ...         return torch.stack([out - self.forward_func(inputs * (1 - torch.eye(inputs.shape[1])[i]))
        ...                             for i in range(inputs.shape[1])], 1)
        >>> model = lambda x: (x * torch.tensor([1.0, 2.0])).sum(1)
        >>> Difference(model).attribute(torch.tensor([[3.0, 1.0]]))
        tensor([[3., 2.]])
        >>> Difference.get_name()
        'Difference'
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        require(callable(forward_func), f"forward_func must be callable, got {describe(forward_func)}")
        self.forward_func = forward_func

    attribute: Callable[..., Any]

    @classmethod
    def get_name(cls) -> str:
        """The class name with a space before each capital after the first, as Captum spells it.

        Example:
            >>> from intellego.attr import IntegratedGradients
            >>> IntegratedGradients.get_name()
            'Integrated Gradients'
        """
        return "".join(c if c.islower() or i == 0 else " " + c for i, c in enumerate(cls.__name__))

    def _warn_unused_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Name the keyword arguments that Captum's ``**kwargs`` would accept and nothing here uses."""
        if kwargs:
            warnings.warn(f"{type(self).__name__}.attribute does not use the keyword argument(s) "
                          f"{', '.join(sorted(kwargs))} (Captum accepts and ignores them too); check the spelling, "
                          "or pass them where they belong (e.g. skip_tokens to TextTokenInput)", UserWarning,
                          stacklevel=_caller_level())

    def _progress_desc(self) -> str:
        """The description of this method's progress bar: Captum's text, e.g. ``Feature Ablation attribution``."""
        return f"{self.get_name()} attribution"

    # Whether ``attribute_future`` runs: Captum supports it for FeatureAblation, FeaturePermutation and the
    # Shapley value methods only, and refuses it everywhere else.
    _supports_future: bool = False

    def attribute_future(self, *args: Any, **kwargs: Any) -> torch.Future[Any]:
        """``attribute`` for a ``forward_func`` that returns a ``torch.futures.Future``; returns a Future.

        Takes the arguments of ``attribute``. Each model call's Future is awaited when the method needs its
        value, so the returned Future is complete; errors are raised at the call. Methods for which Captum has
        no ``attribute_future`` raise ``NotImplementedError``.

        Example:
            >>> import torch
            >>> from intellego.attr import FeatureAblation
            >>> model = torch.nn.Linear(3, 2)
            >>> def remote(x):
            ...     fut = torch.futures.Future()
            ...     fut.set_result(model(x))
            ...     return fut
            >>> x = torch.randn(2, 3)
            >>> fut = FeatureAblation(remote).attribute_future(x, target=1)
            >>> torch.allclose(fut.wait(), FeatureAblation(model).attribute(x, target=1))
            True
        """
        name = type(self).__name__
        if not self._supports_future:
            raise NotImplementedError(f"attribute_future is not implemented for {name}")
        awaiting = copy.copy(self)
        awaiting.forward_func = _Awaiting(self.forward_func, name)
        with keep_buffers(self.forward_func):
            result = awaiting.attribute(*args, **kwargs)
        done: torch.Future[Any] = torch.Future([])  # torch.Future, what Captum returns (not the subclass)
        done.set_result(result)
        return done

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Fill the shared argument descriptions into the subclass's docstrings (:func:`intellego._docs.fill_docs`).
        Nothing is wrapped here: the per-call contract of ``attribute`` is the explicit :func:`public_call`."""
        super().__init_subclass__(**kwargs)
        add_shared_args(fill_docs(cls))

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether attributions are scaled by ``inputs - baselines`` (global rather than local): Captum's
        ``multiply_by_inputs`` constructor switch, kept as ``_multiply_by_inputs`` by the methods that have it."""
        return bool(getattr(self, "_multiply_by_inputs", False))

    def has_convergence_delta(self) -> bool:
        """Whether ``attribute(..., return_convergence_delta=True)`` is supported."""
        return False

    def compute_convergence_delta(self, attributions: Any, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no convergence delta")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


fill_docs(Attribution)  # its own docstrings; every subclass is filled when it is defined (__init_subclass__)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside intellego, so that a warning points at the user's call."""
    level, frame = 2, sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("intellego."):
        frame, level = frame.f_back, level + 1
    return level


class _Awaiting:
    """A ``forward_func`` returning Futures, seen as one returning their values (for ``attribute_future``)."""

    def __init__(self, forward_func: Callable[..., Any], who: str) -> None:
        self.forward_func, self.who = forward_func, who

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward_func(*args, **kwargs)
        require(isinstance(out, torch.futures.Future),
                f"{self.who}.attribute_future needs a forward_func that returns a torch.futures.Future, but it "
                f"returned {describe(out)}; use {self.who}.attribute for a model that returns its output directly")
        return out.wait()


def public_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """The per-call contract of a public ``attribute``; every ``attribute`` in intellego is decorated with it
    (``tests/test_house.py`` checks): the buffers of modules in training mode are restored on exit, the scope
    of ``grad_kwargs`` is opened (see :func:`intellego.core.grad.use_grad_kwargs`), and the outermost call of
    a thread checks its inputs (:func:`intellego.attr._guard.guarded`). Nested calls (a method built on
    another) pay only the buffer snapshot and the scope.

    Example:
        >>> import torch
        >>> class Doubling(Attribution):
        ...     @public_call
        ...     def attribute(self, inputs):
        ...         return 2 * inputs
        >>> Doubling(torch.nn.Identity()).attribute(torch.ones(1, 2))
        tensor([[2., 2.]])
    """

    @functools.wraps(method)
    def attribute(self: Attribution, *args: Any, **kwargs: Any) -> Any:
        scan = ModelScan(self.forward_func)  # the one walk over the model's modules of this call
        with scan.keep_buffers(), grad_kwargs_scope():
            return guarded(method, self, args, kwargs, scan)

    attribute.public_call = True  # type: ignore[attr-defined]
    return attribute


class GradientAttribution(Attribution):
    """Methods built on gradients of the model's output (:class:`~intellego.attr.Saliency`,
    :class:`~intellego.attr.IntegratedGradients`, ...).

    Example:
        >>> import torch
        >>> from intellego.attr import IntegratedGradients
        >>> model = torch.nn.Linear(3, 1)
        >>> ig = IntegratedGradients(model)
        >>> x = torch.rand(2, 3)
        >>> delta = ig.compute_convergence_delta(ig.attribute(x), torch.zeros(2, 3), x)
        >>> isinstance(ig, GradientAttribution), bool(delta.abs().max() < 1e-5)
        (True, True)
    """

    def compute_convergence_delta(
        self,
        attributions: Any,
        start_point: Any,
        end_point: Any,
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        """Per example: sum of attributions minus ``f(end_point) - f(start_point)`` for the target.

        Args:
            attributions: Attributions of ``end_point`` relative to ``start_point``: a tensor or a tuple, shaped
                like ``end_point``.
            start_point: The reference (the baselines), in any form ``baselines`` takes.
            end_point: The inputs the attributions explain.
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}

        Returns:
            An ``(N,)`` tensor: how far each example's attributions are from adding up to the output change
            (0 for a method that is complete, such as exact Integrated Gradients on a linear model).

        Example:
            >>> import torch
            >>> from intellego.attr import InputXGradient
            >>> model = torch.nn.Linear(2, 1, bias=False)
            >>> x = torch.tensor([[1.0, 2.0]])
            >>> ixg = InputXGradient(model)
            >>> ixg.compute_convergence_delta(ixg.attribute(x), torch.zeros(1, 2), x).abs().tolist()
            [0.0]
        """
        ends, _ = pack(end_point, "end_point")
        attrs, _ = pack(attributions, "attributions")
        starts = pack_baselines(start_point, ends, "start_point")
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, ends[0].shape[0])
        return convergence_delta(spec, attrs, starts, ends)


def convergence_delta(spec: ForwardSpec, attrs: tuple[Tensor, ...], starts: tuple[Tensor, ...],
                      ends: tuple[Tensor, ...]) -> Tensor:
    """Completeness gap ``sum(attr) - (f(end) - f(start))`` per example, with one forward over both."""
    n = ends[0].shape[0]
    require(all(a.shape[0] == n for a in attrs),
            f"attributions {describe(attrs)} and end_point of batch {n} must have the same batch size")
    with torch.no_grad():
        both = tuple(torch.cat([e, s.expand_as(e)]) for e, s in zip(ends, starts))
        scores = spec.tiled(2).scores(both)
        require(scores.dim() == 1 and scores.shape[0] == 2 * n,
                "convergence delta needs one model output per example, got a single output for the whole batch")
        gap = scores[:n] - scores[n:]
        total = torch.stack([a.reshape(n, -1).sum(1) for a in attrs]).sum(0)
    return (total - gap.to(total.dtype)).detach()


class PerturbationAttribution(Attribution):
    """Methods that evaluate the model on perturbed inputs (no gradients): :class:`~intellego.attr.Occlusion`,
    :class:`~intellego.attr.FeatureAblation`, the Shapley value methods, ...

    Example:
        >>> import torch
        >>> from intellego.attr import FeatureAblation
        >>> model = lambda x: (x * torch.tensor([1.0, -2.0, 3.0])).sum(1)
        >>> ablation = FeatureAblation(model)
        >>> isinstance(ablation, PerturbationAttribution), ablation.attribute(torch.ones(1, 3))
        (True, tensor([[ 1., -2.,  3.]]))
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


class InternalAttribution(Attribution):
    """Attribution to a layer (or neuron) of a model: the base of :class:`LayerAttribution` and
    :class:`NeuronAttribution`.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerActivation
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        >>> method = LayerActivation(model, model[0])
        >>> isinstance(method, InternalAttribution), method.layer is model[0]
        (True, True)
    """

    _layer_may_be_unset = False  # layer methods: None until set, as TCAV's ``layer_attr_method`` is built

    def __init__(self, forward_func: Callable[..., Any], layer: Any, device_ids: list[int] | None = None) -> None:
        super().__init__(forward_func)
        if layer is None and self._layer_may_be_unset:
            self._layer = None
        else:
            self.layer = layer
        self.device_ids = device_ids

    @property
    def layer(self) -> Any:
        """The module (or list of modules) attributed to. A layer method may be built with ``None`` (Captum's
        ``LayerIntegratedGradients(model, None)``, the form TCAV's ``layer_attr_method`` takes; TCAV sets the
        layer); reading it before it is set raises."""
        if self._layer is None:
            raise IntellegoError(f"{type(self).__name__} was built with layer=None and has no layer yet: set "
                                 ".layer to a module of the model before attribute() (TCAV sets it for its "
                                 "layer_attr_method)")
        return self._layer

    @layer.setter
    def layer(self, layer: Any) -> None:
        for m in layer if isinstance(layer, (list, tuple)) else [layer]:
            if not isinstance(m, nn.Module):
                raise IntellegoError(f"layer must be a torch.nn.Module (or a list of them), got {describe(m)}")
        self._layer = layer


class LayerAttribution(InternalAttribution):
    """Attribution to the output (or input) of a layer: what the layer contributes.

    Each layer method is a primary method run at a layer: gradients at the layer's activations, a path in input
    space read at the layer (conductance, internal influence, GradientSHAP), or the primary method with the
    layer's activations substituted as the input. ``attribute_to_layer_input=True`` uses the layer's inputs
    instead of its output. A layer that returns a tuple gives a tuple; a list of layers gives a list; a module
    that runs several times in one forward gives a tuple with one result per call (Captum silently keeps one
    call).

    Several targets in one call (beyond Captum): every method that takes ``target`` also takes a keyword-only
    ``targets``, a list of targets (each one in any form ``target`` accepts, except a callable). The batch is
    stacked once per target and run as one batch, and every tensor of the result gets a leading dimension of
    size ``len(targets)``: ``result[k]`` equals the call with ``target=targets[k]`` (a convergence delta gets
    the same leading dimension, e.g. ``(K, N)``). It is a separate keyword so it cannot be confused with
    Captum's per-example ``target`` list; pass one or the other. Sampling methods draw their noise
    independently for each copy.

    Example:
        >>> import torch
        >>> from intellego.attr import LayerIntegratedGradients
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> lig = LayerIntegratedGradients(model, model[0])
        >>> x = torch.rand(5, 3)
        >>> lig.attribute(x, target=0).shape, lig.attribute(x, targets=[0, 1]).shape
        (torch.Size([5, 4]), torch.Size([2, 5, 4]))
    """

    _layer_may_be_unset = True

    @staticmethod
    def interpolate(layer_attribution: Tensor, interpolate_dims: int | tuple[int, ...],
                    interpolate_mode: str = "nearest") -> Tensor:
        """Resize a layer attribution (N, C, *spatial) to ``interpolate_dims`` with ``F.interpolate``."""
        return F.interpolate(layer_attribution, interpolate_dims, mode=interpolate_mode)


class NeuronAttribution(InternalAttribution):
    """Attribution of one neuron of a layer to the inputs: how the inputs drive one unit of a layer.

    Each neuron method is the primary method run with a neuron as the read-out: the model is cut at the layer
    (the forward stops there) and ``neuron_selector`` becomes the target. ``neuron_selector`` is an int, a tuple
    of ints (one per dimension of an example's layer value), a tuple with slices (the block is summed), or a
    callable ``layer_value -> (N,)``. Beyond Captum, a *list* of ints / tuples of ints or slices attributes all
    those neurons (blocks) in one batched call and returns ``(len(list), *input_shape)`` tensors; ``result[k]``
    equals the call with ``neuron_selector=list[k]``.

    A layer that runs several times in one forward pass (a shared or tied module) has one value per call, and a
    neuron of each. The keyword-only constructor argument ``layer_call`` picks the call: ``0`` (the default) is
    the first call, and the forward pass stops right after it, so nothing downstream of the neuron runs; ``-1``
    is the last call, which is what Captum reads (it keeps only the last call's value), and costs a full forward
    pass. Any other index works too; one the layer does not reach raises an error naming how often it ran. A
    layer that never runs raises an error too. Without ``layer_call`` we cannot warn about a layer that runs
    again after the first call, because the forward pass stops there: pass ``layer_call=-1`` to port code from
    Captum unchanged on shared modules.

    Example:
        >>> import torch
        >>> from intellego.attr import NeuronGradient
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.Linear(3, 1))
        >>> with torch.no_grad():
        ...     _ = model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        >>> ng = NeuronGradient(model, model[0])
        >>> ng.attribute(torch.rand(1, 2), neuron_selector=2)  # neuron 2 adds both inputs
        tensor([[1., 1.]])
        >>> ng.attribute(torch.rand(1, 2), neuron_selector=[0, 1]).tolist()  # two neurons, one call
        [[[1.0, 0.0]], [[0.0, 1.0]]]
    """
