"""Backward-rule engine: gradients in which chosen operations back-propagate by a rule instead of the chain rule.

A *rule* maps one operation's call (its inputs, its output and, for DeepLift, the same call in a reference
pass) and the incoming gradient to the gradients of its inputs: ``rule(call, grad) -> tuple of grads``.
A *rule map* ``(kind, modules) -> rule or None`` (``modules``: the tracked modules running, outermost first)
says which rule an operation gets; Guided Backprop, Deconvolution, DeepLift and LRP are each a rule map.

Operations are seen with a :class:`torch.overrides.TorchFunctionMode`, not with module hooks, so ``nn.ReLU``,
``nn.ReLU(inplace=True)``, a module run twice and ``torch.relu`` / ``x.sigmoid()`` in ``forward`` are handled
alike. Each call is first *classified* (its rule, or None: it runs as it is) and then *routed* (a direct form, a
fast form or its own autograd node holding its inputs); nothing is stored on modules. An in-place operation
is computed out of place by the rule node and copied back into its input tensor.

Example:
    >>> import torch
    >>> from intellego.core.grad import ForwardSpec
    >>> from intellego.attr.guided import GUIDED
    >>> from intellego.engines.rules import rule_gradients
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> spec = ForwardSpec.build(model, None, None, 2)
    >>> result = rule_gradients(spec, (torch.randn(2, 3),), GUIDED)
    >>> result.grads[0].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope
from ..core.sites import Site, Tap, copies
from ..errors import IntellegoError
from .calls import (
    Call,
    Fast,
    Rule,
    RuleFunction,
    WithFast,
    check_versions,
    local_vjp,
    protect_saved,
    safe_divide,
    scaled,
    versions,
)
from .ops import (
    ACTIVATIONS,
    GATES,
    KINDS,
    PRODUCTS,
    UNRULED,
    OpKind,
    kind_of,
    operands_fit,
    out_of_place,
    unruled_nonlinearity,
    warn_unruled,
)

__all__ = ["Call", "Fast", "Rule", "RuleMap", "RuleResult", "rule_gradients", "kind_of", "ACTIVATIONS", "GATES",
           "PRODUCTS", "WithFast", "check_versions", "local_vjp", "safe_divide", "versions", "warn_unruled"]

RuleMap = Callable[[str, "list[nn.Module]"], "Rule | None"]

_UNSEEN: Any = object()


class RuleMode(TorchFunctionMode):
    """Routes every call of a known operation through the rule its rule map assigns.

    With ``record=True`` (a reference pass under ``no_grad``) calls only run and are recorded; with
    ``references`` set (the recorded list) the i-th call is paired with the i-th recorded call.
    """

    def __init__(self, rules: RuleMap, *, record: bool = False, references: list[Call] | None = None,
                 hook: Callable[[Tensor, Callable[[Tensor], Tensor | None]], None] | None = None,
                 note_unruled: bool | None = None) -> None:
        super().__init__()
        self.hook = hook
        self.rules = rules
        self.record = record
        self.references = references
        self.calls: list[Call] = []
        self.modules: list[nn.Module] = []
        self.active = True  # False: every call runs unchanged and unrecorded (see ``rule_gradients(layer=)``)
        self._last: tuple[Tensor, Call] | None = None
        self._by_kind: dict[str, Rule | None] = {}  # rules asked with no tracked module running
        self.gates: dict[int, Tensor] = {}  # outputs of calls whose rule is a gate (``rule.gate``), by id
        # names of non-linear operations without a rule that passed the plain gradient (by default with references)
        note = references is not None if note_unruled is None else note_unruled
        self.unruled: set[str] | None = set() if note else None

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        spec = KINDS.get(func)
        if spec is None or not self.active:  # most operations: run as they are, as cheaply as possible
            if self.unruled is not None and func in UNRULED and self.active:
                self._note(func, args, kwargs)
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        rule = self._classify(func, spec, args, kwargs)
        if rule is None:
            return func(*args, **kwargs)
        return self._route(func, spec, rule, args, kwargs)

    # ------------------------------------------------------------------------------------ classification
    def _classify(self, func: Any, spec: OpKind, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Rule | None:
        """The rule this call gets, or None where it runs as it is (an operation outside the rule's reach: a
        number operand, a Parameter factor, or no rule in the map, which is noted where it is non-linear)."""
        n = spec.operands
        if not operands_fit(spec, args[:n]):
            return None
        if spec.numbers_only and any(isinstance(a, Tensor) for a in (*args[n:], *kwargs.values())):
            if self.unruled is not None:
                self.unruled.add(f"{spec.kind} with tensor arguments")
            return None
        if self.modules:
            rule = self.rules(spec.kind, self.modules)
        else:  # no tracked module running: the rule depends on the kind alone
            rule = self._by_kind.get(spec.kind, _UNSEEN)
            if rule is _UNSEEN:
                rule = self._by_kind[spec.kind] = self.rules(spec.kind, self.modules)
        if rule is None:
            self._plain(func, spec, args, kwargs)
        return rule

    def _plain(self, func: Any, spec: OpKind, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Book-keeping for a call that runs as it is: note a non-linearity, protect records it overwrites."""
        if self.unruled is not None:
            if spec.kind == "batch_norm" and args[0].requires_grad \
                    and (kwargs.get("training") or len(args) > 5 and args[5]):
                self.unruled.add("batch_norm in training mode")
            elif func in UNRULED:
                self._note(func, args, kwargs)
        if self.calls and (spec.inplace or spec.inplace_arg is not None) and out_of_place(spec, args, kwargs)[2]:
            protect_saved(self.calls, args[0])

    def _note(self, func: Any, args: tuple[Any, ...], kwargs: Any) -> None:
        name = unruled_nonlinearity(func, args, kwargs)
        if name is not None:
            self.unruled.add(name)  # type: ignore[union-attr]

    # ------------------------------------------------------------------------------------------- routing
    def _route(self, func: Any, spec: OpKind, rule: Rule, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the call so that its gradient goes through ``rule``: a direct form, a record (reference pass),
        a fast form or the general autograd node."""
        rest, kw, inplace = out_of_place(spec, args, kwargs)
        at = spec.indices_arg
        if spec.indices or at is not None and (kw.get("return_indices") or len(rest) > at and rest[at]):
            raise IntellegoError(f"{func.__name__} returning indices (return_indices=True) is not supported by "
                                 "backward rules; use max pooling without indices in the model")
        n = spec.operands
        operands = args[:n]
        call = Call(spec.kind, spec.plain, rest, kw, module=self.modules[-1] if self.modules else None,
                    index=len(self.calls), rule=rule)
        direct = getattr(rule, "direct", None)
        if direct is not None and n == 1 and self.references is None and not self.record:
            return self._direct(direct, call, operands[0], inplace)
        if inplace:
            saved = tuple(t.detach().clone() for t in operands)
            protect_saved(self.calls, operands[0])
        else:
            saved = (operands[0].detach(),) if n == 1 else tuple(t.detach() for t in operands)
        if self.record:
            out = func(*args, **kwargs)
            call.inputs, call.out = saved, (out.detach().clone() if inplace else out.detach())
            call.versions = versions(call)
            self.calls.append(call)
            return out
        if self.references is not None:
            call.ref = self._reference(call, saved)
        call.inputs = saved
        if spec.free:  # which operands carry gradient, and which are gates (see ``GATES``): products need both
            call.notes["live"] = tuple(t.requires_grad for t in operands)
            call.notes["gated"] = tuple(id(t) in self.gates for t in operands)
        return self._apply(call, rule, operands, inplace)

    def _apply(self, call: Call, rule: Rule, operands: tuple[Tensor, ...], inplace: bool) -> Tensor:
        last = self._last
        if last is not None and last[0] is operands[0]:
            call.source = last[1]
        fast = getattr(rule, "fast", None)
        how = fast(call) if fast is not None else None
        out = RuleFunction.apply(call, *operands) if how is None else self._fast(call, how, operands)
        self.calls.append(call)
        result = operands[0].copy_(out) if inplace else out
        self._last = (result, call)
        if getattr(rule, "gate", False):
            self.gates[id(result)] = result
        return result

    def _direct(self, direct: Callable[..., Tensor], call: Call, x: Tensor, inplace: bool) -> Tensor:
        """A rule's direct form (see :class:`~intellego.engines.calls.WithFast`): the record is kept only if
        the form set its output (a later rule may look at it as ``call.source``)."""
        if inplace and self.calls:
            protect_saved(self.calls, x)
        self._last = None
        if not (x.requires_grad and torch.is_grad_enabled()):
            return x.copy_(call.run(x)) if inplace else call.run(x)
        if self.hook is None:
            raise IntellegoError("a rule with a direct form needs RuleMode(hook=...)")
        out = direct(call, x, self.hook)
        result = x.copy_(out) if inplace else out
        if call.out is not None:
            self.calls.append(call)
            self._last = (result, call)
        return result

    def _fast(self, call: Call, how: Fast, operands: tuple[Tensor, ...]) -> Tensor:
        """The call's value with a native graph: the multiplier replaces the operation's derivative, the
        output transform acts on the gradient arriving at the output."""
        if how.multiplier is not None:
            call.out = y = call.run(*call.inputs).detach()  # a single operand, detached: no graph
            if operands[0].requires_grad and torch.is_grad_enabled():
                y = scaled(operands[0], how.multiplier(call), call.out)
        else:
            y = call.run(*operands)
            call.out = y.detach()
        post = how.output(call) if how.output is not None else None
        if isinstance(post, Tensor):
            return scaled(y, post) if y.requires_grad else y
        if post is not None and y.requires_grad:
            if self.hook is None:
                raise IntellegoError("a rule with a gradient hook needs RuleMode(hook=...)")
            self.hook(y, post)
        return y

    def _reference(self, call: Call, saved: tuple[Tensor, ...]) -> Call | None:
        if self.references is None:
            return None
        i = len(self.calls)
        ref = self.references[i] if i < len(self.references) else None
        ok = ref is not None and ref.kind == call.kind and ref.x.shape == saved[0].shape
        if not ok:
            seen = "nothing" if ref is None else f"{ref.kind} on shape {tuple(ref.x.shape)}"
            raise IntellegoError(
                f"the forward pass for the inputs and the one for the baselines differ at operation #{i}: "
                f"{call.kind} on shape {tuple(saved[0].shape)} for the inputs, {seen} for the baselines; "
                "rule-based attribution needs the same sequence of operations for inputs and baselines")
        check_versions(ref)  # type: ignore[arg-type]
        return ref

    def finish(self) -> None:
        """Check that the inputs' pass used every reference call, then let go of the records: what backward
        needs, the graph and the hooks hold themselves, so activations are freed as soon as autograd is done
        with them rather than when the attribution returns."""
        if self.references is not None and len(self.calls) != len(self.references):
            raise IntellegoError(
                f"the forward pass for the inputs made {len(self.calls)} rule-bearing calls but the one for the "
                f"baselines made {len(self.references)}; the model's control flow depends on its input")
        self.calls, self.references, self._last, self.gates = [], None, None, {}


# ---------------------------------------------------------------------------------------------------- engine
@dataclass
class RuleResult:
    """Output of :func:`rule_gradients`: ``grads`` w.r.t. the inputs (or the layer's output / input), ``scores``
    the read-out and ``reference_scores`` the baselines' (detached), ``layer`` / ``layer_reference`` the layer's
    values in the inputs' and the baselines' passes (None without a layer or baselines)."""

    grads: tuple[Tensor, ...]
    scores: Tensor
    layer: tuple[Tensor, ...] | None = None
    layer_reference: tuple[Tensor, ...] | None = None
    reference_scores: Tensor | None = None
    unruled: tuple[str, ...] = ()  # with baselines: non-linear operations without a rule (plain gradient)


def rule_gradients(
    spec: ForwardSpec,
    inputs: tuple[Tensor, ...],
    rules: RuleMap,
    *,
    baselines: tuple[Tensor, ...] | None = None,
    layer: nn.Module | None = None,
    layer_input: bool = False,
    track: tuple[nn.Module, ...] = (),
    from_layer: bool = False,
    note_unruled: bool = False,
) -> RuleResult:
    """Gradients of ``spec``'s read-out under the rule map ``rules``: the engine of every backward-rule method.

    Args:
        spec: the model call and target read-out for ``inputs``' batch.
        inputs: the input tensors (row-aligned with ``baselines``).
        rules: ``(kind, modules) -> rule or None``; operations whose rule is None use the chain rule.
        baselines: when given, a reference pass on them runs first under ``no_grad`` and every rule call of
            the inputs' pass is paired with the same call of that pass (``call.ref``), as DeepLift needs.
            The two passes must make the same sequence of rule-bearing calls (checked; a clear error if not).
        layer: when given, gradients are taken w.r.t. this module's output (its inputs if ``layer_input``)
            instead of ``inputs``, and its values in both passes are returned: layer variants
            (``LayerDeepLift``, ``LayerLRP``...) are ``(layer - layer_reference) * grads`` and the like.
            The module must run once per forward.
        track: modules whose calls are tracked, so ``rules`` receives those running, outermost first (LRP).
        from_layer: with a layer (its output), apply rules only to operations called after the layer returns,
            in both passes: the gradient w.r.t. the layer's output cannot run through earlier ones, so this
            only saves their rule work. Not for rule maps whose rules look at ``call.source`` (LRP's
            BatchNorm folding), which then would not see the operation before the first one after the layer.
        note_unruled: list non-linear operations without a rule in ``RuleResult.unruled`` (always with baselines).

    Returns:
        A :class:`RuleResult`. Every hook and the function mode are removed on return or error.
    """
    with HookScope() as scope:
        stack = _track(scope, track)
        seen = _capture(scope, layer, layer_input)
        late = from_layer and layer is not None and not layer_input
        modes: list[RuleMode] = []
        if late:  # the gradient w.r.t. the layer's output runs only through operations called after it returns:
            # earlier ones run as they are, in both passes alike, so the pairing of calls is unchanged
            def start(_module: nn.Module, _args: Any, _out: Any) -> None:
                modes[-1].active = True

            scope.forward_hook(layer, start)  # type: ignore[arg-type]
        references, layer_ref, ref_scores = None, None, None
        if baselines is not None:
            modes.append(RuleMode(rules, record=True))
            references, ref_scores = _pass(modes[-1], stack, late, spec, baselines)
            if seen is not None:
                layer_ref = seen.only()
                seen.clear()
        modes.append(RuleMode(rules, references=references, hook=scope.tensor_hook,
                              note_unruled=note_unruled or baselines is not None))
        with _grad_enabled():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            scores, unruled = _pass(modes[-1], stack, late, spec, leaves)
            values = None if seen is None else seen.only()
            grads = grads_of(scores, leaves if values is None else values)
        return RuleResult(grads, scores.detach(), None if values is None else tuple(v.detach() for v in values),
                          layer_ref, ref_scores, unruled)


def _track(scope: HookScope, track: tuple[nn.Module, ...]) -> list[nn.Module]:
    """The stack of tracked modules running (outermost first), kept by hooks on ``track``."""
    stack: list[nn.Module] = []

    def enter(module: nn.Module, _args: Any) -> None:
        stack.append(module)

    def leave(_module: nn.Module, _args: Any, _out: Any) -> None:
        stack.pop()

    for m in track:
        scope.forward_pre_hook(m, enter)
        scope.forward_hook(m, leave)
    return stack


def _capture(scope: HookScope, layer: nn.Module | None, layer_input: bool) -> Any:
    """The layer's values in each pass (None without a layer). The model continues with a copy at the layer's
    output, and at its input when the layer itself works in place (``nn.ReLU(inplace=True)``): an in-place
    operation then changes the copy, not the captured value."""
    if layer is None:
        return None
    site = Site(layer, layer_input)
    feed = copies if not layer_input or getattr(layer, "inplace", False) else None
    return scope.at(site, Tap(site, feed=feed))


def _pass(mode: RuleMode, stack: list[nn.Module], late: bool, spec: ForwardSpec, xs: tuple[Tensor, ...]) -> Any:
    """One forward pass under ``mode``. A recording mode (the baselines' pass, under ``no_grad``) returns its
    calls and the read-out; the inputs' pass returns the read-out and the non-linearities without a rule."""
    mode.modules, mode.active = stack, not late
    if mode.record:
        with torch.no_grad():
            with mode:
                out = spec.output(xs)
            scores = spec.readout(out)
        calls, mode.calls = mode.calls, []
        return calls, scores
    with mode:
        out = spec.output(xs)
    mode.finish()
    return spec.readout(out), tuple(sorted(mode.unruled)) if mode.unruled else ()


def _grad_enabled() -> Any:
    """``torch.enable_grad()``, or nothing to do when gradients are on already (the usual case)."""
    return contextlib.nullcontext() if torch.is_grad_enabled() else torch.enable_grad()
