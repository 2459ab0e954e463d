"""``IntegratedGradients``: the path integral of gradients from a baseline to the input."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..core.batching import plan_rows
from ..core.grad import ForwardSpec, measure_saved_bytes
from ..core.inputs import pack, pack_baselines, require_float, unpack
from ..engines.path import integrate, quadrature
from ._base import GradientAttribution, convergence_delta, public_call
from ._fanout import fan_out_targets

__all__ = ["IntegratedGradients", "path_attributions"]


def path_attributions(
    spec: ForwardSpec,
    xs: tuple[Tensor, ...],
    bs: tuple[Tensor, ...],
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
    memory_budget: int | None,
) -> tuple[Tensor, ...]:
    """Path-averaged gradients of ``spec`` along the straight line from ``bs`` to ``xs``."""
    quadrature(method, n_steps)  # validates before any model call
    batch = xs[0].shape[0]
    rows = plan_rows(batch * n_steps, limit=internal_batch_size, memory_budget=memory_budget,
                     device=xs[0].device, measure=lambda: measure_saved_bytes(spec, xs))

    def grad_fn(points: tuple[Tensor, ...], ex: slice, k: int) -> tuple[Tensor, ...]:
        return spec.rows(ex).tiled(k).gradients(points)[0]

    return integrate(grad_fn, bs, xs, n_steps, method, rows)


class IntegratedGradients(GradientAttribution):
    """Integrated Gradients (Sundararajan et al., 2017): ``(x - x0) * mean of gradients on the path x0 -> x``.

    Example:
        >>> import torch
        >>> from intellego.attr import IntegratedGradients
        >>> model = torch.nn.Linear(3, 1)
        >>> x = torch.randn(2, 3)
        >>> attr, delta = IntegratedGradients(model).attribute(x, return_convergence_delta=True)
        >>> torch.allclose(attr, model.weight * x, atol=1e-6), bool(delta.abs().max() < 1e-5)
        (True, True)
    """

    def __init__(self, forward_func: Any, multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        targets: list[Any] | None = None,
        memory_budget: int | None = None,
    ) -> Any:
        """Integrated Gradients of ``inputs``: ``(inputs - baselines)`` times the gradients of the target output,
        averaged along the straight path from the baselines to the inputs. They add up to
        ``f(inputs) - f(baselines)`` per example, up to the integration error that ``return_convergence_delta``
        reports.

        Returns:
            Attributions with the structure and shapes of ``inputs``; ``(attributions, delta)`` when
            ``return_convergence_delta`` is set, ``delta`` of shape ``(N,)``.

        Example:
            >>> import torch
            >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
            >>> x, extra = torch.randn(2, 3), torch.zeros(2, 2)
            >>> ig = IntegratedGradients(lambda x, shift: model(x) + shift)
            >>> attr = ig.attribute(x, baselines=0.0, target=1, additional_forward_args=(extra,))
            >>> gap = model(x)[:, 1] - model(torch.zeros(1, 3))[:, 1]
            >>> torch.allclose(attr.sum(1), gap, atol=1e-4)
            True
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, b, t, a: self.attribute(
                x, b, t, a, n_steps, method, internal_batch_size, return_convergence_delta,
                memory_budget=memory_budget), inputs, baselines, additional_forward_args)
        xs, was_tuple = pack(inputs)
        require_float(xs)
        bs = pack_baselines(baselines, xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        grads = path_attributions(spec, xs, bs, n_steps, method, internal_batch_size, memory_budget)
        attrs = tuple(g * (x - b) for g, x, b in zip(grads, xs, bs)) if self._multiply_by_inputs else grads
        result = unpack(attrs, was_tuple)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(spec, attrs, bs, xs)
