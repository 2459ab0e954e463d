"""``LRP`` and ``LayerLRP``: layer-wise relevance propagation as gradients under a rule map, with rules as data.

Relevance is carried as ``R = activation * gradient``: a rule turns the gradient at a layer's output into
the one at its input so that ``R_in = x * W'^T (R_out / (z' + eps * sign(z')))`` for the layer's modified
forward ``z'`` (epsilon: the layer itself; gamma: ``w + gamma * w+``; alpha1-beta0 / z+: positive parts).
Activations pass relevance unchanged. Rules are chosen per module name or type from a map passed to
``LRP(model, rules=...)`` (a Captum-style ``module.rule`` attribute is read, never written); canonizers merge a
BatchNorm into the linear layer before it and give residual additions the epsilon rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from ..core.grad import ForwardSpec
from ..core.hooks import walk_modules
from ..core.inputs import pack, require_float, unpack
from ..engines.blocks import innermost_module, lrp_blocks
from ..engines.rules import rule_gradients, warn_unruled
from ..errors import IntellegoError, describe, require
from ._base import GradientAttribution, public_call
from ._fanout import fan_out_targets
from ._layer_engine import LayerMethod
from .lrp_rules import (
    LAYER_OPS,
    PASS_OPS,
    Alpha1_Beta0_Rule,
    BatchNormCanonizer,
    EpsilonRule,
    GammaRule,
    IdentityRule,
    PropagationRule,
    ZPlusRule,
    pass_relevance,
)

__all__ = ["LRP", "LayerLRP", "PropagationRule", "EpsilonRule", "GammaRule", "Alpha1_Beta0_Rule", "ZPlusRule",
           "IdentityRule", "Addition_Module", "LRPRuleError"]


class LRPRuleError(IntellegoError, TypeError):
    """A module has no LRP rule, or its ``rule`` attribute is not a :class:`PropagationRule`; a ``TypeError``
    as in Captum (and an :class:`~intellego.errors.IntellegoError`)."""


class Addition_Module(nn.Module):  # noqa: N801 (Captum's name)
    """``x1 + x2`` as a module (Captum's ``Addition_Module`` for skip connections): LRP gives it the epsilon
    rule by default, and a ``rule`` set on it applies to its addition.

    Example:
        >>> import torch
        >>> Addition_Module()(torch.ones(2), torch.ones(2)).tolist()
        [2.0, 2.0]
    """

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 + x2

# ---------------------------------------------------------------------------------------------------- rule map
_ALLOWED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
            nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Tanh,
            nn.GELU, nn.SiLU, nn.Hardtanh, nn.Hardswish, nn.Mish, nn.SELU, nn.CELU, nn.Softsign, nn.Tanhshrink,
            nn.PReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Flatten, nn.Unflatten,
            nn.Identity, nn.Sequential, nn.ModuleList, nn.ModuleDict, Addition_Module,
            # modern blocks (see intellego.engines.blocks): LayerNorm, gates, padding, position tables
            nn.Embedding, nn.LayerNorm, nn.Sigmoid, nn.Hardsigmoid, nn.Softmax, nn.ZeroPad1d, nn.ZeroPad2d,
            nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)
# Captum passes relevance through these unchanged even when they carry a ``rule`` attribute
_CAPTUM_NON_LINEAR = (nn.ReLU, nn.Dropout, nn.Tanh)


_MISSING = object()


def _captum_rule(m: nn.Module) -> Any:
    """A Captum-style ``module.rule`` (read, never written), or None."""
    rule = m.__dict__.get("rule", _MISSING)
    if rule is _MISSING:  # a class attribute or property; submodules, parameters and buffers are never rules
        return getattr(m, "rule", None) if hasattr(type(m), "rule") else None
    return rule


class _LRPRules:
    """``(kind, modules) -> rule``: the innermost running module named or typed in ``rules`` decides; then a
    Captum-style ``module.rule``; then the defaults (epsilon for layers, pass-through for activations)."""

    def __init__(self, model: nn.Module, rules: Mapping[Any, PropagationRule], canonize: bool) -> None:
        self.model = model
        self.rules = dict(rules)
        self.default = EpsilonRule()
        self.batch_norm = BatchNormCanonizer(self.default) if canonize else self.default
        self.blocks = lrp_blocks(LRPRuleError, lambda: self.names)  # products, gates, LayerNorm, attention
        # each module's own rule, looked up once per attribution call (a missing ``rule`` attribute costs an
        # exception inside ``nn.Module.__getattr__``); names are built only where rules are keyed by name
        by_name = any(isinstance(k, str) for k in self.rules)
        if by_name:
            self.own = {m: self.rules.get(n, self.rules.get(type(m), _captum_rule(m))) for m, n in self.names.items()}
        else:
            self.own = {m: self.rules.get(type(m), _captum_rule(m)) for m in walk_modules(model)}

    @functools.cached_property
    def names(self) -> dict[nn.Module, str]:
        return {m: n for n, m in self.model.named_modules()}

    def _rule(self, m: nn.Module) -> Any:
        rule = self.own.get(m, _MISSING)
        if rule is _MISSING:  # a module that is not in the model (a callable wrapping other modules)
            return self.rules.get(type(m), _captum_rule(m))
        return rule

    def track(self) -> tuple[nn.Module, ...]:
        """The modules whose calls must be tracked: those with a rule (the others never decide one)."""
        return tuple(m for m, rule in self.own.items() if isinstance(rule, PropagationRule))

    def __call__(self, kind: str, modules: list[nn.Module]) -> Any:
        for m in reversed(modules):
            rule = self._rule(m)
            if isinstance(rule, PropagationRule) and (kind in LAYER_OPS or isinstance(rule, IdentityRule)):
                return rule
        if modules and kind not in LAYER_OPS:  # a rule on the leaf module running a non-linear operation (Captum's
            leaf = modules[-1]  # way: ``model.sigmoid.rule = EpsilonRule()``), except where Captum ignores it
            rule = self._rule(leaf)
            if isinstance(rule, PropagationRule) and not isinstance(leaf, _CAPTUM_NON_LINEAR) \
                    and all(c is None for c in leaf._modules.values()):
                return rule
        if kind == "relu":
            return None
        if kind in PASS_OPS:
            return pass_relevance
        if kind == "batch_norm":
            return self.batch_norm
        if kind in LAYER_OPS:
            return self.default
        block = self.blocks.get(kind)
        if block is not None:
            return block
        # the module running the operation, read from the stack: no module needs tracking for this message
        running = innermost_module(self.names)
        where = f" in {self.names[running]!r}" if running is not None else ""
        raise LRPRuleError(f"LRP has no rule for the operation {kind!r}{where}; pass one in LRP(model, rules=...) "
                             "or remove the operation")

    def check(self, model: nn.Module) -> None:
        _check_rule_attributes(model, lambda: self.names)
        for key, rule in self.rules.items():
            require(isinstance(rule, PropagationRule),
                    f"rules[{key!r}] must be a PropagationRule (EpsilonRule, GammaRule...), got {describe(rule)}")
            require(isinstance(key, type) or key in self.names.values(),
                    f"rules key {key!r} is neither a module type nor the name of a module of the model")
        for m, rule in self.own.items():
            leaf = all(c is None for c in m._modules.values())
            # torch's own layers are known: those without a rule are refused before any work. Other modules
            # (the user's, a library's) are judged by the operations they run (an error names the first one
            # without a rule)
            builtin = type(m).__module__.startswith("torch.nn.")
            if leaf and builtin and not isinstance(m, _ALLOWED) and not isinstance(rule, PropagationRule):
                name = self.names[m]
                raise LRPRuleError(
                    f"LRP has no rule for module {name!r} of type {type(m).__name__}; pass one with "
                    f"LRP(model, rules={{{type(m).__name__}: EpsilonRule()}}) if that rule is right for it")


def _check_rule_attributes(model: nn.Module, names: Callable[[], dict[nn.Module, str]]) -> None:
    """Refuse a ``module.rule`` that is not a rule (checked when LRP is built, as Captum does, and at each call)."""
    for m in walk_modules(model):
        rule = _captum_rule(m)
        if rule is not None and not isinstance(rule, PropagationRule):
            raise LRPRuleError(
                f"module {names()[m]!r} of type {type(m).__name__} has a rule attribute that is not an "
                f"intellego PropagationRule (EpsilonRule, GammaRule...): {describe(rule)}; set "
                "intellego.attr.lrp rules, None for the default, or pass LRP(model, rules=...)")


class LRP(GradientAttribution):
    """Layer-wise Relevance Propagation (Bach et al., 2015) with rules chosen per module.

    Args:
        model: an ``nn.Module``.
        rules: keyword-only map from module names (as in ``model.named_modules()``) or module types to
            rules; a rule for a container applies to the operations inside it unless an inner module has one.
            Defaults: :class:`EpsilonRule` for linear, convolution, batch norm, pooling and residual additions;
            activations (ReLU, LeakyReLU, ELU, Tanh, GELU, SiLU) pass relevance unchanged.
        canonize: keyword-only; fold each BatchNorm (eval mode) into the linear/conv layer before it.

    Example:
        >>> import torch
        >>> from intellego.attr import LRP
        >>> from intellego.attr.lrp import GammaRule
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 1, bias=False))
        >>> x = torch.rand(2, 3)
        >>> attr, delta = LRP(model, rules={"0": GammaRule()}).attribute(x, return_convergence_delta=True)
        >>> bool(delta.abs().max() < 1e-5)
        True
    """

    def __init__(self, model: nn.Module, *, rules: Mapping[Any, PropagationRule] | None = None,
                 canonize: bool = True) -> None:
        super().__init__(model)
        require(isinstance(model, nn.Module), f"LRP needs an nn.Module model, got {describe(model)}")
        _check_rule_attributes(model, lambda: {m: n for n, m in model.named_modules()})
        self.model = model
        self.rules = dict(rules or {})
        self.canonize = canonize

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  return_convergence_delta: bool = False, verbose: bool = False) -> Any:
        """Compute the attributions.

        Returns:
            Relevance of each input feature (same structure as ``inputs``); with ``return_convergence_delta`` also
            ``output - sum(relevance)`` per example.
        """
        xs, was_tuple = pack(inputs)
        require_float(xs)
        rule_map = _LRPRules(self.model, self.rules, self.canonize)
        rule_map.check(self.model)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        res = rule_gradients(spec, xs, rule_map, track=rule_map.track(), note_unruled=True)
        warn_unruled(type(self).__name__, res.unruled, "the output")
        relevance = tuple(x * g for x, g in zip(xs, res.grads))
        result = unpack(relevance, was_tuple)
        if not return_convergence_delta:
            return result
        n = xs[0].shape[0]
        return result, (res.scores - sum(r.reshape(n, -1).sum(1) for r in relevance)).detach()

    def compute_convergence_delta(self, attributions: Any, output: Tensor) -> Tensor:  # type: ignore[override]
        """``output - sum(attributions)`` per example (relevance is conserved by LRP-0 on bias-free nets)."""
        attrs, _ = pack(attributions, "attributions")
        n = attrs[0].shape[0]
        return output.flatten() - sum(a.reshape(n, -1).sum(1) for a in attrs)


class LayerLRP(LayerMethod, GradientAttribution):
    """Layer-wise relevance at a layer: the layer's value times the LRP-modified gradient with respect to it.

    Rules are chosen as in :class:`~intellego.attr.LRP` (keyword-only ``rules`` by module name or type).
    A list of layers gives a list of relevances (and of deltas).

    Example:
        >>> import torch
        >>> from intellego.attr import LayerLRP
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 1, bias=False))
        >>> rel, delta = LayerLRP(model, model[1]).attribute(torch.rand(2, 3), return_convergence_delta=True)
        >>> rel.shape, bool(delta.abs().max() < 1e-5)
        (torch.Size([2, 4]), True)
    """

    def __init__(self, model: Any, layer: Any, *, rules: Any = None, canonize: bool = True) -> None:
        super().__init__(model, layer)
        self.model = model
        self._lrp = LRP(model, rules=rules, canonize=canonize)

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    @public_call
    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
                  return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
                  verbose: bool = False, *, targets: list[Any] | None = None) -> Any:
        """Compute the attributions.

        Returns:
            Relevance shaped like the layer's value (a list for a list of layers); ``(relevance, delta)`` with
            ``delta = output - sum(relevance)`` per example when asked; ``targets`` as in
            :class:`~intellego.attr.LayerAttribution`.
        """
        if targets is not None:
            return fan_out_targets(targets, target, lambda x, _b, t, a: self.attribute(
                x, t, a, return_convergence_delta, attribute_to_layer_input, verbose), inputs, None,
                additional_forward_args)
        xs, _ = pack(inputs)
        require_float(xs)
        rule_map = _LRPRules(self.model, self._lrp.rules, self._lrp.canonize)
        rule_map.check(self.model)
        spec = ForwardSpec.build(self.forward_func, target, additional_forward_args, xs[0].shape[0])
        layers = self.layer if self._many else [self.layer]
        results, deltas = [], []
        for layer in layers:
            res = rule_gradients(spec, xs, rule_map, layer=layer, layer_input=attribute_to_layer_input,
                                 track=tuple(self.model.modules()), note_unruled=True)
            warn_unruled(type(self).__name__, res.unruled, "the output")
            require(res.layer is not None, "internal: the rule engine returned no layer values")
            rel = tuple(v * g for v, g in zip(res.layer or (), res.grads))
            n = xs[0].shape[0]
            results.append(unpack(rel, len(rel) > 1))
            deltas.append((res.scores - sum(r.reshape(n, -1).sum(1) for r in rel)).detach())
        out = results if self._many else results[0]
        if not return_convergence_delta:
            return out
        return out, (deltas if self._many else deltas[0])
