"""Backward rules for the blocks of modern networks: products of activations, gates, LayerNorm and attention.

Each block has a DeepLift form (exact: the attributions of the block's inputs sum to the change of its output
between the inputs' and the baselines' pass) and an LRP form (conservative: ``sum(x * grad_in)`` equals
``sum(y * grad_out)`` up to bias terms, in the manner of CP-LRP / AttnLRP):

* a product ``a * b`` or ``a @ b`` of two activations: DeepLift takes the gradient at the midpoints
  ``((a + a_ref) / 2, (b + b_ref) / 2)``, which splits ``a b - a_ref b_ref`` exactly between the two factors
  (their Shapley values); LRP splits relevance equally between the factors (AttnLRP's uniform rule), except
  that a *gate* (the output of a sigmoid, hard sigmoid, softmax or (inverse) square root, see ``GATES``) or a factor
  without gradient is a constant weight and the other factor takes all relevance (CP-LRP, and the
  signal-take-all rule for gates);
* a quotient ``a / b``: DeepLift exactly (``1 / b`` changes by ``-(b - b_ref) / (b b_ref)``); LRP treats the
  denominator as a constant normaliser;
* ``layer_norm``: DeepLift exactly through centring (linear), the variance (a square), ``1 / sqrt`` (rescale)
  and the product; LRP linearises it with the standard deviation held constant (epsilon rule);
* ``scaled_dot_product_attention``: DeepLift exactly (both products at midpoints, the softmax as ``e / sum(e)``
  by the quotient rule); LRP holds the attention weights constant, so relevance flows to the values (CP-LRP).

Example:
    >>> import torch
    >>> from intellego.engines.blocks import unbroadcast
    >>> unbroadcast(torch.ones(2, 3, 4), torch.Size([3, 1])).tolist()
    [[8.0], [8.0], [8.0]]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import IntellegoError
from .calls import Call, local_vjp, safe_divide

__all__ = ["unbroadcast", "DEEPLIFT_BLOCKS", "lrp_blocks", "GateRule", "innermost_module"]


def unbroadcast(grad: Tensor, shape: torch.Size) -> Tensor:
    """``grad`` summed over the dimensions that broadcasting added or expanded, back to ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.dim() - len(shape)
    grad = grad.sum(tuple(range(lead))) if lead > 0 else grad
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def _arg(call: Call, i: int, name: str, default: Any = None) -> Any:
    return call.kwargs.get(name, call.args[i] if len(call.args) > i else default)


def _ln_parts(call: Call, x: Tensor) -> tuple[tuple[int, ...], Tensor, Tensor, Tensor | None]:
    """Normalised dimensions, centred input, ``var + eps`` and the weight of a ``layer_norm`` call at ``x``."""
    dims = tuple(range(-len(_arg(call, 0, "normalized_shape")), 0))
    c = x - x.mean(dims, keepdim=True)
    return dims, c, c.pow(2).mean(dims, keepdim=True) + _arg(call, 3, "eps", 1e-5), _arg(call, 1, "weight")


# ------------------------------------------------------------------------------------------------ DeepLift
def _dl_product(call: Call, grad: Tensor) -> tuple[Tensor, ...]:
    ref = call.ref
    if ref is None:
        raise IntellegoError("DeepLift product rule without a reference call")
    return local_vjp(call, grad, at=tuple((x + r) / 2 for x, r in zip(call.inputs, ref.inputs)))


def _dl_div(call: Call, grad: Tensor) -> tuple[Tensor, ...]:
    ref = call.ref
    if ref is None:
        raise IntellegoError("DeepLift quotient rule without a reference call")
    (a, b), (a0, b0) = call.inputs, ref.inputs
    ga = grad * (1 / b + 1 / b0) / 2
    gb = -grad * (a + a0) / (2 * b * b0)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _dl_layer_norm(call: Call, grad: Tensor, eps: float = 1e-10) -> tuple[Tensor]:
    """``y = w * c * r + bias`` with ``c = x - mean(x)``, ``v = mean(c^2) + eps``, ``r = v^(-1/2)``: the product
    splits at midpoints, ``v`` changes by ``mean((c + c_ref) * dc)`` and ``r`` by ``k * dv`` (rescale)."""
    ref = call.ref
    if ref is None:
        raise IntellegoError("DeepLift layer_norm rule without a reference call")
    dims, c, v, w = _ln_parts(call, call.x)
    _, c0, v0, _ = _ln_parts(call, ref.x)
    r, r0 = v.rsqrt(), v0.rsqrt()
    dv = v - v0
    small = dv.abs() < eps
    k = torch.where(small, -0.5 * v.pow(-1.5), (r - r0) / torch.where(small, 1.0, dv).to(dv.dtype))
    h = grad * w if w is not None else grad
    n = math.prod(c.shape[d] for d in dims)
    total = (h * (c + c0)).sum(dims, keepdim=True) / 2
    m = h * (r + r0) / 2 + (k * total / n) * (c + c0)
    return (m - m.mean(dims, keepdim=True),)


def _scores(call: Call, q: Tensor, k: Tensor) -> tuple[Tensor, float]:
    """The attention logits of a ``scaled_dot_product_attention`` call (its mask, causal flag and scale)."""
    mask, causal, scale = _arg(call, 0, "attn_mask"), _arg(call, 2, "is_causal", False), _arg(call, 3, "scale")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril(), -math.inf)
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else s + mask
    return s, scale


def _dl_attention(call: Call, grad: Tensor, eps: float = 1e-10) -> tuple[Tensor, ...]:
    """``softmax(s) v`` with ``s = q k^T * scale + mask``, exactly: both products split at midpoints and the
    softmax ``e / sum(e)`` (``e = exp(s - c)``, one shift ``c`` for both passes) by the quotient rule, with the
    elementwise rescale of ``exp``."""
    ref = call.ref
    if ref is None:
        raise IntellegoError("DeepLift attention rule without a reference call")
    (q, k, v), (q0, k0, v0) = call.inputs[:3], ref.inputs[:3]
    groups = q.shape[-3] // k.shape[-3]  # grouped-query attention (enable_gqa): keys and values shared
    if groups > 1:
        k, v, k0, v0 = (t.repeat_interleave(groups, -3) for t in (k, v, k0, v0))
    (s, scale), (s0, _) = _scores(call, q, k), _scores(call, q0, k0)
    c = torch.maximum(s.amax(-1, keepdim=True), s0.amax(-1, keepdim=True))
    e, e0 = (s - c).exp(), (s0 - c).exp()
    z, z0 = e.sum(-1, keepdim=True), e0.sum(-1, keepdim=True)
    g_v = ((e / z + e0 / z0) / 2).transpose(-2, -1) @ grad
    g_p = grad @ ((v + v0) / 2).transpose(-2, -1)
    a = g_p * (1 / z + 1 / z0) / 2 - (g_p * (e + e0)).sum(-1, keepdim=True) / (2 * z * z0)
    ds = s - s0
    small = ~(ds.abs() >= eps)  # also masked logits (-inf - -inf): their e is 0
    rho = torch.where(small, e, (e - e0) / torch.where(small, 1.0, ds).to(ds.dtype))
    g_s = a * rho * scale
    g_q, g_k = g_s @ ((k + k0) / 2), g_s.transpose(-2, -1) @ ((q + q0) / 2)
    if groups > 1:
        g_k, g_v = (g.unflatten(-3, (-1, groups)).sum(-3) for g in (g_k, g_v))
    return g_q, g_k, g_v


DEEPLIFT_BLOCKS = {"mul": _dl_product, "matmul": _dl_product, "div": _dl_div, "layer_norm": _dl_layer_norm,
                   "attention": _dl_attention}


# ----------------------------------------------------------------------------------------------------- LRP
def _lrp_product(call: Call, grad: Tensor) -> tuple[Tensor | None, ...]:
    live = call.notes.get("live", (True,) * len(call.inputs))
    gated = call.notes.get("gated", (False,) * len(call.inputs))
    carriers = [bool(lv and not g) for lv, g in zip(live, gated)] if any(
        lv and not g for lv, g in zip(live, gated)) else list(live)
    share = sum(carriers)
    grads = local_vjp(call, grad)
    return tuple(g / share if c else None for g, c in zip(grads, carriers))


def _lrp_div(call: Call, grad: Tensor) -> tuple[Tensor | None, ...]:
    a, b = call.inputs
    return unbroadcast(grad / b, a.shape), None


class _LayerNorm:
    """LayerNorm linearised with its standard deviation held constant; the epsilon rule on that linear map."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor]:
        dims, _, v, w = _ln_parts(call, call.x)
        s = safe_divide(grad * call.out, call.out, self.epsilon)  # type: ignore[arg-type, operator]
        t = s * w if w is not None else s
        return ((t - t.mean(dims, keepdim=True)) * v.rsqrt(),)


def _lrp_attention(call: Call, grad: Tensor) -> tuple[Tensor | None, ...]:
    q, k, v = call.inputs[:3]
    (gv,) = local_vjp(call, grad, at=(v,), fn=lambda values: call.run(q, k, values))
    return None, None, gv


class GateRule:
    """LRP for a gate (``GATES``): its output weighs another activation, so it passes no relevance; a gradient
    reaching it means it was used otherwise, and LRP has no rule for that (raised in backward, naming it)."""

    gate = True

    def __init__(self, error: type[Exception], names: Callable[[], dict[nn.Module, str]]) -> None:
        self.error, self.names = error, names

    def fast(self, call: Call) -> None:
        call.notes["where"] = innermost_module()
        return None

    def __call__(self, call: Call, grad: Tensor) -> tuple[None]:
        if bool(grad.ne(0).any()):
            m = call.notes.get("where")
            name = None if m is None else self.names().get(m)
            what = f"the operation {call.kind!r}" if name is None else f"module {name!r} of type {type(m).__name__}"
            raise self.error(
                f"LRP has no rule for {what}; pass one with LRP(model, rules=...) if a rule is right for it "
                f"({call.kind!r} passes relevance only as a gate: a factor of a product or a normaliser)")
        return (None,)


def innermost_module(names: dict[nn.Module, str] | None = None, skip: int = 2) -> nn.Module | None:
    """The innermost module (of ``names``, if given) whose ``forward`` is running, read from the Python stack."""
    frame = sys._getframe(skip)
    while frame is not None:
        m = frame.f_locals.get("self")
        if isinstance(m, nn.Module) and (names is None or m in names):
            return m
        frame = frame.f_back  # type: ignore[assignment]
    return None


def lrp_blocks(error: type[Exception], names: Callable[[], dict[nn.Module, str]],
               epsilon: float = 1e-9) -> dict[str, Any]:
    """The LRP rules by kind for products, gates, LayerNorm and attention."""
    gate = GateRule(error, names)
    table: dict[str, Any] = {"mul": _lrp_product, "matmul": _lrp_product, "div": _lrp_div,
                             "layer_norm": _LayerNorm(epsilon), "attention": _lrp_attention}
    table.update(dict.fromkeys(("sigmoid", "hardsigmoid", "softmax", "sqrt", "rsqrt"), gate))
    return table
