"""What a backward rule works with: the record of one intercepted call, its local vector-Jacobian product,
the native "fast form" a rule may offer, and safe division.

A rule (see :mod:`intellego.engines.rules`) is ``rule(call, grad) -> gradients of the call's operands``; the
:class:`Call` it receives holds the operands, the output and, for DeepLift, the same call in the reference
pass.

Example:
    >>> import torch
    >>> from intellego.engines.calls import safe_divide
    >>> safe_divide(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0]), 0.0).tolist()
    [0.0, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import IntellegoError

__all__ = ["Call", "Fast", "WithFast", "Rule", "local_vjp", "safe_divide", "versions", "check_versions"]

Rule = Callable[["Call", Tensor], tuple[Tensor | None, ...]]

class Call:
    """One operation call seen in a forward pass.

    A plain class with slots (no dataclass machinery): one is built per intercepted call, so its
    construction is on the hot path of every backward-rule method.

    Attributes:
        kind: the rule kind (see :func:`kind_of`).
        func: the out-of-place function; ``args``/``kwargs`` the call's other arguments.
        inputs: the operands that receive gradients (detached values as they were before the call).
        out: the output (detached); ``ref`` the same call in the reference pass (DeepLift), or None.
        module: the innermost tracked module running when the call happened, or None.
        index: the call's position among the pass's rule-bearing calls; ``rule`` the rule it got.
        source: the previous call, when its output is this call's input (else None).
        versions: version counters at record time (see :func:`versions`).
        notes: a rule's scratch data for this call.
    """

    __slots__ = ("kind", "func", "args", "kwargs", "inputs", "out", "ref", "module", "index", "rule", "source",
                 "versions", "notes")

    def __init__(self, kind: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 inputs: tuple[Tensor, ...] = (), out: Tensor | None = None, ref: Call | None = None,
                 module: nn.Module | None = None, index: int = 0, rule: Rule | None = None,
                 source: Call | None = None) -> None:
        self.kind, self.func, self.args, self.kwargs = kind, func, args, kwargs
        self.inputs, self.out, self.ref, self.module = inputs, out, ref, module
        self.index, self.rule, self.source = index, rule, source
        self.versions: tuple[int, ...] = ()
        self.notes: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Call({self.kind!r}, #{self.index}, inputs={[tuple(t.shape) for t in self.inputs]})"

    @property
    def x(self) -> Tensor:
        return self.inputs[0]

    def run(self, *inputs: Tensor, **overrides: Any) -> Tensor:
        """Recompute the operation on ``inputs``; ``overrides`` replace keyword arguments, or the i-th
        non-operand positional argument when named ``arg<i>``."""
        if not overrides:
            return self.func(*inputs, *self.args, **self.kwargs)
        args = list(self.args)
        kwargs = dict(self.kwargs)
        for key, value in overrides.items():
            if key.startswith("arg") and key[3:].isdigit():
                args[int(key[3:])] = value
            else:
                kwargs[key] = value
        return self.func(*inputs, *args, **kwargs)


def local_vjp(call: Call, grad: Tensor, at: tuple[Tensor, ...] | None = None,
              fn: Callable[..., Tensor] | None = None) -> tuple[Tensor, ...]:
    """The ordinary chain-rule gradient of ``fn`` (default: the call itself) at ``at`` (default: its inputs)."""
    points = call.inputs if at is None else at
    with torch.enable_grad():
        leaves = tuple(p.detach().requires_grad_(True) for p in points)
        out = (fn or call.run)(*leaves)
        grads = torch.autograd.grad(out, leaves, grad, allow_unused=True)
    return tuple(torch.zeros_like(p) if g is None else g for g, p in zip(grads, points))


@dataclass(frozen=True)
class Fast:
    """A rule's fast form, used instead of an autograd node with a Python backward where it applies.

    A rule (any callable ``(call, grad) -> grads``) may also have a method ``fast(call) -> Fast | None``,
    asked when the operation is seen (``call.inputs``, ``ref``, ``source`` and ``module`` are set, ``out`` is
    not yet); None means the general path. Both fields get the call once ``call.out`` is set:

    * ``multiplier(call)``: the operand's gradient is ``grad * multiplier`` (a tensor shaped like the output,
      or a number) instead of the operation's own derivative (elementwise operations with one operand);
    * ``output(call)``: what happens to the gradient arriving at the output before the operation's own
      backward (or the multiplier) runs: None (nothing), a tensor (multiply by it) or a function
      ``grad -> grad`` (a hook, run in backward).

    Both are built into the graph from native operations, so backward runs no Python unless ``output``
    returns a function.
    """

    multiplier: Callable[[Call], Tensor | float] | None = None
    output: Callable[[Call], Tensor | Callable[[Tensor], Tensor | None] | None] | None = None


def scaled(y: Tensor, factor: Tensor | float, value: Tensor | None = None) -> Tensor:
    """``value`` (default ``y``) with a graph whose gradient w.r.t. ``y`` is ``grad * factor``: a native
    multiplication whose result is then overwritten in place outside autograd (it saves neither tensor)."""
    z = y.clone() if isinstance(factor, float) and factor == 1.0 else y.mul(factor)  # clone: no backward kernel
    z.detach().copy_(y if value is None else value)
    return z


def safe_divide(num: Tensor, den: Tensor, eps: float) -> Tensor:
    """``num / (den + eps * sign(den))`` with ``sign(0) = 1``; 0 where that denominator is 0 (``eps = 0``)."""
    sign = torch.where(den >= 0, 1.0, -1.0).to(den.dtype)
    stable = den + eps * sign
    zero = stable == 0
    return torch.where(zero, 0.0, num / torch.where(zero, 1.0, stable).to(stable.dtype)).to(num.dtype)


def versions(call: Call) -> tuple[int, ...]:
    """The version counters of the call's saved inputs and output (recorded to detect later in-place changes)."""
    return tuple(t._version for t in (*call.inputs, call.out) if t is not None)


def check_versions(call: Call) -> None:
    """Raise if the call's saved input or output was changed in place after it ran."""
    if versions(call) != call.versions:
        raise IntellegoError(
            f"operation #{call.index} ({call.kind}) had its input or output modified in place later in the "
            "forward pass by an operation the rules do not handle; make that operation out of place")


class WithFast:
    """A rule ``general(call, grad)`` with a fixed fast form (see :class:`Fast`) and optionally a direct one.

    A *direct form* ``direct(call, x, hook) -> Tensor`` builds the operation's value from its single operand
    ``x`` (which requires grad) with a native graph, registering gradient hooks with ``hook(tensor, fn)``;
    ``call`` is a bare record (kind, ``call.run`` for the out-of-place operation, no saved inputs). Used when
    no reference pass is paired (Guided Backprop, Deconvolution, LRP-epsilon): the cheapest path for a rule
    that needs nothing recorded. A form that sets ``call.out`` keeps the record for later rules to see as
    their ``call.source``.
    """

    def __init__(self, general: Rule, fast: Fast, direct: Callable[..., Tensor] | None = None) -> None:
        self.general, self._fast, self.direct = general, fast, direct

    def __call__(self, call: Call, grad: Tensor) -> tuple[Tensor | None, ...]:
        return self.general(call, grad)

    def fast(self, call: Call) -> Fast:
        return self._fast


class RuleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, call: Call, *inputs: Tensor) -> Tensor:  # type: ignore[override]
        out = call.run(*inputs)
        call.out = out.detach()
        call.versions = versions(call)
        ctx.call = call
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:  # type: ignore[override]
        call: Call = ctx.call
        check_versions(call)
        return (None, *call.rule(call, grad))  # type: ignore[misc]


def protect_saved(calls: list[Call], target: Tensor) -> None:
    """Before ``target`` is overwritten in place, give earlier calls that saved it their own copy."""
    ptr, shape = target.data_ptr(), target.shape

    def keep(t: Tensor) -> Tensor:
        return t.clone() if t.data_ptr() == ptr and t.shape == shape else t

    for c in calls:
        if c.out is not None and any(t.data_ptr() == ptr for t in (*c.inputs, c.out)):
            c.inputs, c.out = tuple(keep(t) for t in c.inputs), keep(c.out)
            c.versions = versions(c)
