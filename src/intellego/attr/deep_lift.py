"""``DeepLift`` (rescale rule) and ``DeepLiftShap``: gradients under the DeepLIFT rule map.

Every non-linearity (``ReLU``, ``ELU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softplus``, ``GELU``, ``SiLU``,
``Softmax``, max pooling (also adaptive, and ``amax``), and beyond Captum's list ``ReLU6``, ``Hardtanh``,
``Hardswish``, ``Hardsigmoid``, ``Mish``, ``SELU``, ``CELU``, ``PReLU``, ``LogSigmoid``, ``Softsign``,
``Tanhshrink`` and ``clamp`` with number bounds) back-propagates the multiplier
``(f(x) - f(x_ref)) / (x - x_ref)`` instead of its derivative, where ``x_ref`` is the same operation's input in a
pass over the baselines. Modules and functional calls (``torch.relu``, ``F.softmax``, ``x.clamp(min=0)``),
in-place activations and modules used several times are all handled; non-linear operations without a rule
(LayerNorm, products of activations...) are named in a warning.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from ..core.batching import check_positive_int, chunks, plan_rows
from ..core.grad import ForwardSpec, measure_saved_bytes
from ..core.inputs import pack, pack_baseline_distribution, pack_baselines, require_float, unpack
from ..engines.blocks import DEEPLIFT_BLOCKS
from ..engines.rules import ACTIVATIONS, Call, Fast, Rule, local_vjp, rule_gradients, warn_unruled
from ..errors import IntellegoError, describe, require
from ._base import GradientAttribution, public_call

__all__ = ["DeepLift", "DeepLiftShap", "deeplift_rules", "warn_unruled"]


def _rescale(call: Call, grad: Tensor, eps: float) -> tuple[Tensor]:
    ref = call.ref
    require(ref is not None and call.out is not None and ref.out is not None, "DeepLift rule without reference")
    dx = call.x - ref.x  # type: ignore[union-attr]
    g = grad * (call.out - ref.out) / dx  # type: ignore[operator, union-attr]
    eps = _eps_for(dx, eps)
    if _any_small(dx, eps):
        g = torch.where(dx.abs() < eps, _plain_gradient(call, grad), g)
    return (g,)


def _plain_gradient(call: Call, grad: Tensor) -> Tensor:
    """The operation's ordinary gradient: written out for softmax (``y * (g - sum(g * y))`` along its dimension,
    where attention logits of a token the input does not change hit ``x == x_ref`` on every call), by autograd
    otherwise."""
    dim = call.kwargs.get("dim", call.args[0] if call.args else None)
    if call.kind == "softmax" and isinstance(dim, int) and call.kwargs.get("dtype") is None \
            and not any(isinstance(a, torch.dtype) for a in call.args) and call.out is not None:
        y = call.out
        return y * (grad - (grad * y).sum(dim, keepdim=True))
    return local_vjp(call, grad)[0]


class _Rescale:
    """The rescale rule for an elementwise activation: its multiplier is known in the forward pass, so it
    runs as a native multiplication (:class:`~intellego.engines.rules.Fast`); ``__call__`` is the same rule
    in the general form."""

    def __init__(self, eps: float) -> None:
        self.eps = eps
        self._fast = Fast(multiplier=partial(_rescale_multiplier, eps=eps))  # not a bound method: no cycle

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor]:
        return _rescale(call, grad, self.eps)

    def fast(self, call: Call) -> Fast:
        return self._fast


def _rescale_multiplier(call: Call, eps: float) -> Tensor:
    ref = call.ref
    require(ref is not None and call.out is not None and ref.out is not None, "DeepLift rule without reference")
    dx = call.x - ref.x  # type: ignore[union-attr]
    m = (call.out - ref.out).div_(dx)  # type: ignore[operator, union-attr]
    eps = _eps_for(dx, eps)
    size = dx.abs_()  # dx is not needed any more: its magnitude in place saves a buffer
    if size.numel() > 0 and not bool(size.amin() >= eps):  # also when NaN: the mask keeps other examples finite
        small = size < eps
        deriv = (call.x > 0).to(m.dtype) if call.kind == "relu" else local_vjp(call, torch.ones_like(m))[0]
        m = torch.where(small, deriv, m)
    return m


def _eps_for(dx: Tensor, eps: float) -> float:
    """``eps`` raised to the smallest normal number of a half-precision ``dx``: compared with a float16 tensor,
    1e-10 rounds to 0, so ``x == x_ref`` (0 / 0) would escape the ordinary-derivative branch and give NaN."""
    if dx.dtype in (torch.float16, torch.bfloat16):
        return max(eps, torch.finfo(dx.dtype).tiny)
    return eps


def _any_small(dx: Tensor, eps: float) -> bool:
    """Whether some ``|dx| < eps``: a float reduction, several times faster on a CPU than a boolean mask and
    ``any`` (comparisons producing booleans are slow kernels), so the mask is built only where it is needed."""
    return dx.numel() > 0 and not bool(dx.abs().amin() >= eps)  # NaN counts as small: see _rescale_multiplier


def _softmax(call: Call, grad: Tensor, eps: float) -> tuple[Tensor]:
    (g,) = _rescale(call, grad, eps)
    dims = tuple(range(1, g.dim())) if g.dim() > 1 else (0,)
    return (g - g.mean(dim=dims, keepdim=True),)


def _max_pool(call: Call, grad: Tensor, eps: float) -> tuple[Tensor]:
    ref = call.ref
    require(ref is not None and call.out is not None and ref.out is not None, "DeepLift rule without reference")
    y, y_ref = call.out, ref.out  # type: ignore[union-attr]
    top = torch.maximum(y, y_ref)  # type: ignore[arg-type]
    moved = local_vjp(call, grad * (top - y_ref))[0] + local_vjp(call, grad * (y - top), at=ref.inputs)[0]  # type: ignore
    dx = call.x - ref.x  # type: ignore[union-attr]
    g = moved / dx
    eps = _eps_for(dx, eps)
    if _any_small(dx, eps):
        g = torch.where(dx.abs() < eps, local_vjp(call, grad)[0], g)
    return (g,)


def deeplift_rules(eps: float = 1e-10) -> Callable[[str, Any], Rule | None]:
    """The DeepLIFT rescale rule map: multipliers for activations, softmax and max pooling.

    Where ``|x - x_ref| < eps`` the ordinary derivative is used instead of the multiplier.
    """
    rescale = _Rescale(eps)
    table: dict[str, Rule] = dict.fromkeys(ACTIVATIONS, rescale)
    table["softmax"] = partial(_softmax, eps=eps)
    for kind in ("max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool", "amax"):
        table[kind] = partial(_max_pool, eps=eps)
    table.update(DEEPLIFT_BLOCKS)  # products, quotients and LayerNorm, exactly
    return lambda kind, modules: table.get(kind)


def custom_attributions(func: Callable[..., Any], grads: tuple[Tensor, ...], xs: tuple[Tensor, ...],
            refs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    n = len(inspect.signature(func).parameters)
    require(n in (1, 2, 3), f"custom_attribution_func must take 1 to 3 arguments (multipliers, inputs, baselines), "
            f"got one taking {n}")
    out = func(*(grads, xs, refs)[:n])
    out = out if isinstance(out, tuple) else (out,)
    require(len(out) == len(xs) and all(isinstance(o, Tensor) for o in out),
            f"custom_attribution_func must return a tuple of {len(xs)} tensors, got {describe(out)}")
    return out


class DeepLift(GradientAttribution):
    """DeepLIFT with the rescale rule (Shrikumar et al., 2017), in the form of Ancona et al. (2018).

    Attributions are ``(inputs - baselines) * multipliers``, where multipliers are gradients in which each
    non-linearity passes ``(f(x) - f(x_ref)) / (x - x_ref)``; they sum to ``f(inputs) - f(baselines)``
    on networks whose non-linearities are all covered.

    Args:
        model: the model or any callable ``model(*inputs, *additional_forward_args)``.
        multiply_by_inputs: return ``(inputs - baselines) * multipliers`` (True) or the multipliers.
        eps: below this ``|x - x_ref|`` a non-linearity uses its ordinary derivative.

    Example:
        >>> import torch
        >>> from intellego.attr import DeepLift
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(inplace=True), torch.nn.Linear(4, 1))
        >>> x = torch.randn(2, 3)
        >>> attr, delta = DeepLift(model).attribute(x, return_convergence_delta=True)
        >>> bool(delta.abs().max() < 1e-5)
        True
    """

    def __init__(self, model: Any, multiply_by_inputs: bool = True, eps: float = 1e-10) -> None:
        super().__init__(model)
        self.model = model
        self.eps = eps
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
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> Any:
        """Compute the attributions.

        Returns:
            Attributions like ``inputs``; with ``return_convergence_delta`` also ``sum(attributions) - (f(inputs) -
            f(baselines))`` per example.
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        refs = pack_baselines(baselines, xs)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        attrs, delta = self._attribute(spec, xs, refs, custom_attribution_func, return_convergence_delta)
        result = unpack(attrs, was_tuple)
        return (result, delta) if return_convergence_delta else result

    def _attribute(self, spec: ForwardSpec, xs: tuple[Tensor, ...], refs: tuple[Tensor, ...],
                   custom: Callable[..., Any] | None, delta: bool = True) -> tuple[tuple[Tensor, ...], Tensor | None]:
        if custom is not None and not callable(custom):
            raise IntellegoError(f"custom_attribution_func must be callable, got {describe(custom)}")
        res = rule_gradients(spec, xs, deeplift_rules(self.eps), baselines=refs)
        warn_unruled(type(self).__name__, res.unruled)
        if custom is not None:
            attrs = custom_attributions(custom, res.grads, xs, refs)
        elif self._multiply_by_inputs:
            attrs = tuple((x - r) * g for x, r, g in zip(xs, refs, res.grads))
        else:
            attrs = res.grads
        if not delta:
            return attrs, None
        n = xs[0].shape[0]
        total = torch.stack([a.reshape(n, -1).sum(1) for a in attrs]).sum(0)
        gap = res.scores - res.reference_scores  # type: ignore[operator]
        return attrs, (total - gap.to(total.dtype)).detach()  # type: ignore[union-attr]


@dataclass(frozen=True)
class BaselinePairs:
    """DeepLiftShap's rows: every example paired with every baseline of a distribution (the ``m`` pairs of an
    example together), cut into chunks by :func:`~intellego.core.batching.plan_rows`."""

    spec: ForwardSpec
    inputs: tuple[Tensor, ...]
    refs: tuple[Tensor, ...]
    n: int
    m: int
    rows: int

    @classmethod
    def build(cls, forward_func: Any, xs: tuple[Tensor, ...], baselines: Any, target: Any,
              additional_forward_args: Any, internal_batch_size: int | None) -> BaselinePairs:
        check_positive_int(internal_batch_size, "internal_batch_size")
        dist = pack_baseline_distribution(baselines, xs, min_count=2)
        n, m = xs[0].shape[0], dist[0].shape[0]
        spec = ForwardSpec.build(forward_func, target, additional_forward_args, n).interleaved(m)
        big_x = tuple(x.repeat_interleave(m, 0) for x in xs)
        big_r = tuple(r.repeat(n, *([1] * (r.dim() - 1))) for r in dist)
        rows = plan_rows(n * m, limit=internal_batch_size, device=xs[0].device,
                         measure=lambda: measure_saved_bytes(spec, big_x))
        return cls(spec, big_x, big_r, n, m, rows)

    def chunks(self) -> list[tuple[ForwardSpec, tuple[Tensor, ...], tuple[Tensor, ...]]]:
        """``(spec, inputs, baselines)`` of each chunk of pairs."""
        total = self.n * self.m
        if self.rows >= total:
            return [(self.spec, self.inputs, self.refs)]
        return [(self.spec.rows(sl), tuple(x[sl] for x in self.inputs), tuple(r[sl] for r in self.refs))
                for sl in chunks(total, self.rows)]

    def mean(self, attrs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Per-pair attributions averaged over each example's baselines."""
        return tuple(a.reshape(self.n, self.m, *a.shape[1:]).mean(1) for a in attrs)


class DeepLiftShap(DeepLift):
    """DeepLIFT averaged over a distribution of baselines: an approximation of SHAP values.

    Each example is explained against every baseline in ``baselines`` (at least two) and the
    attributions are averaged.

    Example:
        >>> import torch
        >>> from intellego.attr import DeepLiftShap
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> DeepLiftShap(model).attribute(torch.randn(2, 3), torch.randn(5, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: Any, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, multiply_by_inputs)

    @public_call
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        baselines: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
        *,
        internal_batch_size: int | None = None,
    ) -> Any:
        """Compute the attributions.

        Returns:
            Attributions like ``inputs``; with ``return_convergence_delta`` also one delta per (example, baseline)
            pair, the pairs of each example together.
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        pairs = BaselinePairs.build(self.forward_func, xs, baselines, target, additional_forward_args,
                                    internal_batch_size)
        parts = [self._attribute(spec, x, r, custom_attribution_func, return_convergence_delta)
                 for spec, x, r in pairs.chunks()]
        attrs = parts[0][0] if len(parts) == 1 else tuple(torch.cat(a) for a in zip(*(p[0] for p in parts)))
        result = unpack(pairs.mean(attrs), was_tuple)
        if not return_convergence_delta:
            return result
        return result, torch.cat([p[1] for p in parts])  # type: ignore[misc]
