"""LRP's propagation rules as data: epsilon, gamma, alpha1-beta0, z+ and identity, and the BatchNorm canonizer.

Each rule maps one intercepted call (a linear, convolution, pooling or addition) and the gradient at its output
to the gradient at its input, so that relevance ``R = activation * gradient`` follows
``R_in = x * W'^T (R_out / (z' + eps * sign(z')))`` for the rule's modified forward ``z'``.
:class:`~intellego.attr.lrp.LRP` chooses a rule per module from its rule map.

Example:
    >>> from intellego.attr.lrp_rules import EpsilonRule, GammaRule
    >>> GammaRule(gamma=0.25).gamma, EpsilonRule().epsilon
    (0.25, 1e-09)
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor
from torch.nn import grad as nn_grad

from ..engines.rules import Call, Fast, WithFast, check_versions, local_vjp, safe_divide
from ..errors import require

__all__ = ["PropagationRule", "EpsilonRule", "GammaRule", "Alpha1_Beta0_Rule", "ZPlusRule", "IdentityRule"]

_PARAM = ("linear", "conv", "batch_norm")
LAYER_OPS = (*_PARAM, "avg_pool", "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool", "amax", "add")
# activations that map 0 to 0, so relevance can pass them unchanged (f(x) / x is finite)
PASS_OPS = ("relu", "leaky_relu", "elu", "tanh", "gelu", "silu", "relu6", "hardtanh", "hardswish", "mish", "selu",
            "celu", "softsign", "tanhshrink", "prelu", "clamp", "pow")


class PropagationRule:
    """A relevance rule for linear-like operations: ``z' = layer(x; modify(w), modify(b))``."""

    epsilon: float = 1e-9

    def weights(self, w: Tensor) -> Tensor:
        return w

    def bias(self, b: Tensor) -> Tensor:
        return b

    def modified(self, call: Call, x: Tensor) -> Tensor:
        """The layer's modified forward at ``x``."""
        if call.kind not in _PARAM:
            return call.run(x) if call.kind != "add" else call.run(x, call.inputs[1])
        w, b = _params(call)
        return _run(call, x, self.weights(w), None if b is None else self.bias(b))

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor, ...]:
        relevance = grad * call.out  # type: ignore[operator]
        if call.kind == "add":
            return (safe_divide(relevance, call.out, self.epsilon),) * 2  # type: ignore[arg-type]
        terms = self._terms(call)
        if terms is not None:  # a linear map per term: its transpose gives the gradient directly
            back = _transpose(call)
            z = sum(_run(call, x, w, b) for x, w, b, _ in terms)
            s = safe_divide(relevance, z, self.epsilon)  # type: ignore[arg-type]
            grads = [back(w, s) if mask is None else back(w, s) * mask for _, w, _, mask in terms]
            return (grads[0] if len(grads) == 1 else grads[0] + grads[1],)
        with torch.enable_grad():
            x = call.x.detach().requires_grad_(True)
            z = self.modified(call, x)
            (g,) = torch.autograd.grad(z, x, safe_divide(relevance, z.detach(), self.epsilon))
        return (g,)

    def _terms(self, call: Call) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]] | None:
        """``z' = sum of layer(x_i, w_i, b_i)`` with ``x_i = x`` masked by ``mask_i`` (None: all of x), for
        linear and convolution layers whose gradient can be taken directly; None otherwise."""
        if call.kind not in ("linear", "conv") or type(self).modified is not PropagationRule.modified \
                or _transpose(call) is None:
            return None
        w, b = _params(call)
        return [(call.x, self.weights(w), None if b is None else self.bias(b), None)]

    def fast(self, call: Call) -> Fast | None:
        """Plain epsilon (the layer as it is) is the layer's own backward with the gradient at its output
        scaled by ``z / (z + eps * sign(z))``, in a hook (cheaper than building it into the graph, and a
        BatchNorm folded into a linear/conv layer can take the scaling over, see ``BatchNormCanonizer``)."""
        if not _plain(self):
            return None
        call.notes["lrp_epsilon"] = self.epsilon
        return _EPSILON

    @property
    def direct(self) -> Any:
        """Plain epsilon on a single-operand layer (see ``WithFast``): the layer as it is, a bare record (a
        BatchNorm after it may take the scaling over) and the epsilon hook on its output; None otherwise."""
        return self._epsilon_direct if _plain(self) else None

    def _epsilon_direct(self, call: Call, x: Tensor, hook: Any) -> Tensor:
        y = call.run(x)
        call.out = y.detach()
        call.notes["lrp_epsilon"] = self.epsilon
        hook(y, _lazy_epsilon(call))
        return y

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _plain(rule: PropagationRule) -> bool:
    """Whether ``rule`` propagates through the layer as it is (LRP-epsilon); decided once per class."""
    return _plain_class(type(rule))  # type: ignore[arg-type]


@functools.cache
def _plain_class(cls: type) -> bool:
    return (cls.weights is PropagationRule.weights and cls.bias is PropagationRule.bias  # type: ignore[attr-defined]
            and cls.modified is PropagationRule.modified  # type: ignore[attr-defined]
            and cls.__call__ is PropagationRule.__call__)


def _lazy_epsilon(call: Call) -> Any:
    # The layer's own backward needs nothing from the record, so its input is let go now: the activation can be
    # freed as soon as autograd is done with it (and backward reuses that memory instead of fresh pages).
    call.inputs = ()
    call.versions = (call.out._version,)  # type: ignore[union-attr]
    eps, notes = call.notes["lrp_epsilon"], call.notes

    def hook(grad: Tensor | None) -> Tensor | None:
        if grad is None or "folded" in notes:  # no gradient (a gate's input), or a BatchNorm after this layer
            # scales the gradient instead
            return None
        z, call.out = call.out, None  # read now: a later in-place operation may have given the record a copy
        if (z._version,) != call.versions:  # type: ignore[union-attr]
            call.out = z
            check_versions(call)  # raises, naming the operation
        if eps == 0:
            return grad * (z != 0)  # type: ignore[operator]
        # grad * |z| / (|z| + eps) as grad - eps * grad / (|z| + eps): three kernels and two buffers
        stable = z.abs().add_(eps)  # type: ignore[union-attr]
        return torch.addcdiv(grad, grad, stable, value=-eps, out=stable)
    return hook


_EPSILON = Fast(output=_lazy_epsilon)


class EpsilonRule(PropagationRule):
    """LRP-epsilon: the layer as it is, with ``epsilon`` added to the denominators (absorbs weak relevance)."""

    def __init__(self, epsilon: float = 1e-9) -> None:
        self.epsilon = epsilon


class GammaRule(PropagationRule):
    """LRP-gamma: weights ``w + gamma * max(w, 0)``, favouring positive contributions (lower layers)."""

    def __init__(self, gamma: float = 0.25, set_bias_to_zero: bool = False) -> None:
        self.gamma, self.set_bias_to_zero = gamma, set_bias_to_zero

    def weights(self, w: Tensor) -> Tensor:
        return w + self.gamma * w.clamp(min=0)

    def bias(self, b: Tensor) -> Tensor:
        return torch.zeros_like(b) if self.set_bias_to_zero else b


class Alpha1_Beta0_Rule(PropagationRule):  # noqa: N801 - Captum's name
    """LRP-alpha1-beta0: only positive contributions ``(x * w)+`` propagate (``x+ w+ + x- w-``)."""

    def __init__(self, set_bias_to_zero: bool = False) -> None:
        self.set_bias_to_zero = set_bias_to_zero

    def bias(self, b: Tensor) -> Tensor:
        return torch.zeros_like(b) if self.set_bias_to_zero else b

    def _terms(self, call: Call) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]] | None:
        if type(self).modified is not Alpha1_Beta0_Rule.modified or call.kind not in ("linear", "conv") \
                or _transpose(call) is None:
            return None
        w, b = _params(call)
        x = call.x
        return [(x.clamp(min=0), w.clamp(min=0), None if b is None else self.bias(b), (x >= 0).to(x.dtype)),
                (x.clamp(max=0), w.clamp(max=0), None, (x <= 0).to(x.dtype))]

    def modified(self, call: Call, x: Tensor) -> Tensor:
        if call.kind not in ("linear", "conv"):
            return super().modified(call, x)
        w, b = _params(call)
        pos = _run(call, x.clamp(min=0), w.clamp(min=0), None if b is None else self.bias(b))
        return pos + _run(call, x.clamp(max=0), w.clamp(max=0), None)


class ZPlusRule(Alpha1_Beta0_Rule):
    """LRP-z+: alpha1-beta0 without the bias."""

    def __init__(self) -> None:
        super().__init__(set_bias_to_zero=True)


class IdentityRule(PropagationRule):
    """Relevance passes unchanged from output to input (same shapes): ``R_in = R_out``."""

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor, ...]:
        require(call.x.shape == call.out.shape,  # type: ignore[union-attr]
                f"IdentityRule needs the same input and output shape, got {tuple(call.x.shape)} -> "
                f"{tuple(call.out.shape)}")  # type: ignore[union-attr]
        return (safe_divide(grad * call.out, call.x, 1e-12),)  # type: ignore[operator]


def _pass_ratio(call: Call) -> Tensor:
    """``f(x) / x`` (the derivative where ``x = 0``): the multiplier that passes relevance unchanged."""
    out = call.out if call.out is not None else call.run(call.x)
    ratio = out / torch.where(call.x == 0, 1.0, call.x).to(call.x.dtype)
    at_zero = call.x == 0
    if bool(at_zero.any()):
        ratio = torch.where(at_zero, local_vjp(call, torch.ones_like(ratio))[0], ratio)
    return ratio


def _pass_general(call: Call, grad: Tensor) -> tuple[Tensor]:
    return (grad * _pass_ratio(call),)


# Activations: ``R_in = R_out``. For ReLU that is its own derivative, so the rule map gives it none.
pass_relevance = WithFast(_pass_general, Fast(multiplier=_pass_ratio))


class BatchNormCanonizer(PropagationRule):
    """A BatchNorm (eval mode) right after a linear/conv is folded into that layer's weights and passes
    relevance unchanged; any other BatchNorm gets ``fallback``."""

    def __init__(self, fallback: PropagationRule) -> None:
        self.fallback = fallback

    def _mergeable(self, call: Call) -> bool:
        src = call.source
        training = call.kwargs.get("training", _arg(call, 4))
        return not (src is None or src.kind not in ("linear", "conv") or training or call.args[0] is None)

    def fast(self, call: Call) -> Fast | None:
        """Folded into a plain-epsilon layer: the BatchNorm's output gets that layer's epsilon scaling and
        both run their own backward (the folded layer is linear, so that is its modified backward)."""
        if not self._mergeable(call):
            return self.fallback.fast(call)
        src = call.source
        eps = src.notes.get("lrp_epsilon") if src is not None else None
        if eps is None:
            return None
        src.notes["folded"] = True  # type: ignore[union-attr]
        call.notes["lrp_epsilon"] = eps
        return _EPSILON

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor, ...]:
        src = call.source
        if not self._mergeable(call):
            return self.fallback(call, grad)
        w, b = _params(call)
        eps = call.kwargs.get("eps", _arg(call, 6) or 1e-5)
        scale = torch.rsqrt(call.args[1] + eps) * (w if w is not None else 1.0)
        shift = (b if b is not None else 0.0) - call.args[0] * scale
        if src is not None:
            src.notes["merged"] = (scale, shift)
        return (safe_divide(grad * call.out, call.x, 1e-12),)  # type: ignore[operator]


def _params(call: Call) -> tuple[Tensor, Tensor | None]:
    if call.kind == "batch_norm":
        return call.kwargs.get("weight", _arg(call, 2)), call.kwargs.get("bias", _arg(call, 3))
    w = call.args[0] if call.args else call.kwargs["weight"]
    b = call.kwargs.get("bias", _arg(call, 1))
    merged = call.notes.get("merged")
    if merged is not None:  # the BatchNorm after this layer, folded in
        scale, shift = merged
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b = shift + scale * (b if b is not None else 0.0)
    return w, b


def _transpose(call: Call) -> Any:
    """``(w, s) -> J^T s`` for the call's linear map with weights ``w`` (linear, or convolution with numeric
    padding on a batched input), or None."""
    if call.kind == "linear":
        return lambda w, s: s.matmul(w)
    d = call.x.dim() - 2
    geometry = [call.kwargs.get(k, _arg(call, i) if _arg(call, i) is not None else default)
                for i, (k, default) in enumerate((("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)), 2)]
    if d not in (1, 2, 3) or isinstance(geometry[1], str):
        return None
    conv_input = getattr(nn_grad, f"conv{d}d_input")
    return lambda w, s: conv_input(call.x.shape, w, s, *geometry)


def _arg(call: Call, i: int) -> Any:
    return call.args[i] if len(call.args) > i else None


def _run(call: Call, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    if call.kind == "batch_norm":
        return call.run(x, weight=w, bias=b) if "weight" in call.kwargs else call.run(x, arg2=w, arg3=b)
    if len(call.args) >= 2:
        return call.run(x, arg0=w, arg1=b)
    return call.run(x, arg0=w, bias=b) if call.args else call.run(x, weight=w, bias=b)
