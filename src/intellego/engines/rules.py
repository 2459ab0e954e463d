"""Backward-rule engine: gradients in which chosen operations back-propagate by a rule instead of the chain rule.

A *rule* maps one operation's call (its inputs, its output and, for DeepLift, the same call in a reference
pass) and the incoming gradient to the gradients of its inputs: ``rule(call, grad) -> tuple of grads``.
A *rule map* is a callable ``(kind, modules) -> rule or None`` (``modules``: the tracked modules running,
outermost first) that says which rule an operation gets;
Guided Backprop, Deconvolution, DeepLift and LRP are each a rule map over the same engine.

Operations are seen with a :class:`torch.overrides.TorchFunctionMode`, not with module hooks, so an
activation is handled the same way whether it comes from ``nn.ReLU``, ``nn.ReLU(inplace=True)``, a module
that runs twice in one forward, or ``torch.relu`` / ``F.softmax`` / ``x.sigmoid()`` called inside
``forward``. Each call gets its own autograd node holding its own inputs, so nothing is stored on modules.
An in-place activation is computed out of place by the rule node and copied back into its input tensor,
which keeps the model's forward semantics and routes the gradient through the rule.

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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..core.grad import ForwardSpec, grads_of
from ..core.hooks import HookScope
from ..core.inputs import TRAINING_WARNED
from ..core.sites import Site, Tap, copies
from ..errors import IntellegoError
from .calls import Call, Fast, Rule, WithFast, check_versions, local_vjp, safe_divide, scaled, versions
from .ops import ACTIVATIONS, KINDS, UNRULED, kind_of, out_of_place, unruled_nonlinearity

__all__ = ["Call", "Fast", "Rule", "RuleMap", "RuleResult", "rule_gradients", "kind_of", "ACTIVATIONS",
           "WithFast", "check_versions", "local_vjp", "safe_divide", "versions", "warn_unruled"]

RuleMap = Callable[[str, "list[nn.Module]"], "Rule | None"]


class _RuleFn(torch.autograd.Function):
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


def _protect(calls: list[Call], target: Tensor) -> None:
    """Before ``target`` is overwritten in place, give earlier calls that saved it their own copy."""
    ptr, shape = target.data_ptr(), target.shape

    def keep(t: Tensor) -> Tensor:
        return t.clone() if t.data_ptr() == ptr and t.shape == shape else t

    for c in calls:
        if c.out is not None and any(t.data_ptr() == ptr for t in (*c.inputs, c.out)):
            c.inputs, c.out = tuple(keep(t) for t in c.inputs), keep(c.out)
            c.versions = versions(c)


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
        # names of non-linear operations without a rule that passed the plain gradient (by default with references)
        note = references is not None if note_unruled is None else note_unruled
        self.unruled: set[str] | None = set() if note else None

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        spec = KINDS.get(func)
        if spec is None or not self.active:  # most operations: run as they are, as cheaply as possible
            if self.unruled is not None and func in UNRULED and self.active:
                name = unruled_nonlinearity(func, args, kwargs)
                if name is not None:
                    self.unruled.add(name)
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        n = spec.operands
        operands = args[:n]
        if len(operands) < n or not isinstance(operands[0], Tensor) \
                or n == 2 and (not isinstance(operands[1], Tensor) or operands[0].shape != operands[1].shape):
            return func(*args, **kwargs)
        if spec.numbers_only and any(isinstance(a, Tensor) for a in (*args[n:], *kwargs.values())):
            if self.unruled is not None and self.active:
                self.unruled.add(f"{spec.kind} with tensor arguments")
            return func(*args, **kwargs)
        if self.modules:
            rule = self.rules(spec.kind, self.modules)
        else:  # no tracked module running: the rule depends on the kind alone
            rule = self._by_kind.get(spec.kind, _UNSEEN)
            if rule is _UNSEEN:
                rule = self._by_kind[spec.kind] = self.rules(spec.kind, self.modules)
        if rule is None:
            if self.unruled is not None and spec.kind == "batch_norm" and operands[0].requires_grad \
                    and (kwargs.get("training") or len(args) > 5 and args[5]):
                self.unruled.add("batch_norm in training mode")
            if self.calls and (spec.inplace or spec.inplace_arg is not None) and out_of_place(spec, args, kwargs)[2]:
                _protect(self.calls, operands[0])
            return func(*args, **kwargs)
        rest, kw, inplace = out_of_place(spec, args, kwargs)
        at = spec.indices_arg
        if spec.indices or at is not None and (kw.get("return_indices") or len(rest) > at and rest[at]):
            raise IntellegoError(f"{func.__name__} returning indices (return_indices=True) is not supported by "
                                 "backward rules; use max pooling without indices in the model")
        call = Call(spec.kind, spec.plain, rest, kw, module=self.modules[-1] if self.modules else None,
                    index=len(self.calls), rule=rule)
        direct = getattr(rule, "direct", None)
        if direct is not None and n == 1 and self.references is None and not self.record:
            return self._direct(direct, call, operands[0], inplace)
        if inplace:
            saved = tuple(t.detach().clone() for t in operands)
        else:
            saved = (operands[0].detach(),) if n == 1 else tuple(t.detach() for t in operands)
        if inplace:
            _protect(self.calls, operands[0])
        if self.record:
            out = func(*args, **kwargs)
            call.inputs, call.out = saved, (out.detach().clone() if inplace else out.detach())
            call.versions = versions(call)
            self.calls.append(call)
            return out
        if self.references is not None:
            call.ref = self._reference(call, saved)
        call.inputs = saved
        last = self._last
        if last is not None and last[0] is operands[0]:
            call.source = last[1]
        fast = getattr(rule, "fast", None)
        how = fast(call) if fast is not None else None
        out = _RuleFn.apply(call, *operands) if how is None else self._fast(call, how, operands)
        self.calls.append(call)
        result = operands[0].copy_(out) if inplace else out
        self._last = (result, call)
        return result

    def _direct(self, direct: Callable[..., Tensor], call: Call, x: Tensor, inplace: bool) -> Tensor:
        """A rule's direct form (see :class:`~intellego.engines.calls.WithFast`): the record is kept only if
        the form set its output (a later rule may look at it as ``call.source``)."""
        if inplace and self.calls:
            _protect(self.calls, x)
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
        self.calls, self.references, self._last = [], None, None


# ---------------------------------------------------------------------------------------------------- engine
@dataclass
class RuleResult:
    """Output of :func:`rule_gradients`.

    ``grads`` are gradients w.r.t. the inputs, or w.r.t. the layer's output (input) when a layer was given;
    ``scores`` the selected outputs and ``reference_scores`` those of the baselines (detached);
    ``layer`` / ``layer_reference`` the layer's values in the inputs' and the baselines' passes (None
    without a layer or baselines).
    """

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
        stack: list[nn.Module] = []
        if track:
            def enter(module: nn.Module, _args: Any) -> None:
                stack.append(module)

            def leave(_module: nn.Module, _args: Any, _out: Any) -> None:
                stack.pop()

            for m in track:
                scope.forward_pre_hook(m, enter)
                scope.forward_hook(m, leave)
        # at the layer's output the model continues with a copy: an in-place operation after the layer
        # (ReLU(inplace=True)) changes the copy, not the layer's value and the node its gradient is taken at
        seen = None if layer is None else scope.at(Site(layer, layer_input),
                                                   Tap(Site(layer, layer_input), feed=None if layer_input else copies))
        modes: list[RuleMode] = []
        late = from_layer and layer is not None and not layer_input
        if late:
            # The gradient w.r.t. the layer's output runs only through operations called after the layer returns:
            # earlier ones (upstream of it, or in branches that never see its output) run as they are, in both
            # passes alike, so the pairing of the inputs' and the baselines' calls is unchanged.
            def start(_module: nn.Module, _args: Any, _out: Any) -> None:
                modes[-1].active = True

            scope.forward_hook(layer, start)  # type: ignore[arg-type]
        references = None
        layer_ref = ref_scores = None
        if baselines is not None:
            recorder = RuleMode(rules, record=True)
            recorder.modules = stack
            recorder.active = not late
            modes.append(recorder)
            with torch.no_grad():
                with recorder:
                    ref_out = spec.output(baselines)
                ref_scores = spec.readout(ref_out)
            references, recorder.calls = recorder.calls, []
            if seen is not None:
                layer_ref = seen.only()
                seen.clear()
        mode = RuleMode(rules, references=references, hook=scope.tensor_hook,
                        note_unruled=note_unruled or baselines is not None)
        mode.modules = stack
        mode.active = not late
        modes.append(mode)
        with _grad_enabled():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            with mode:
                out = spec.output(leaves)
            mode.finish()
            references = None
            unruled = tuple(sorted(mode.unruled)) if mode.unruled else ()
            scores = spec.readout(out)
            if seen is None:
                return RuleResult(grads_of(scores, leaves), scores.detach(), reference_scores=ref_scores,
                                  unruled=unruled)
            values = seen.only()
            grads = grads_of(scores, values)
        return RuleResult(grads, scores.detach(), tuple(v.detach() for v in values), layer_ref, ref_scores, unruled)


def warn_unruled(method: str, names: tuple[str, ...], total: str = "f(inputs) - f(baselines)") -> None:
    """One warning naming the non-linear operations that passed the plain gradient (no rule for them); dropout and
    batch norm in training mode are left out when the call's input guard named those layers already."""
    names = tuple(n for n in names if not n.startswith(TRAINING_WARNED.get() or ("\0",)))
    if names:
        warnings.warn(f"{method} has no rule for {', '.join(names)}: these pass the plain gradient, so the "
                      f"attributions need not sum to {total}", UserWarning, stacklevel=3)


def _grad_enabled() -> Any:
    """``torch.enable_grad()``, or nothing to do when gradients are on already (the usual case)."""
    return contextlib.nullcontext() if torch.is_grad_enabled() else torch.enable_grad()
