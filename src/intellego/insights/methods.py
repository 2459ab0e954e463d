"""The attribution methods the explorer offers, their arguments, and how a request becomes a call.

Every method is looked up in :mod:`intellego.attr` by name; one that does not exist there is not offered.
Arguments are declared once (type, default, range) and checked before any model runs, so an unknown key
or an out-of-range value becomes a message instead of a hung request.

Example:
    >>> spec = METHOD_SPECS["IntegratedGradients"]
    >>> spec.check({"n_steps": 8})["n_steps"]
    8
    >>> spec.check({"n_steps": 0})
    Traceback (most recent call last):
    ...
    intellego.errors.IntellegoError: IntegratedGradients: argument 'n_steps' must be between 1 and 300, got 0
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from .feature_types import BaseFeature

__all__ = ["Arg", "MethodSpec", "METHOD_SPECS", "available_methods", "Context"]


@dataclass(frozen=True)
class Arg:
    """One argument of a method as the explorer shows it: ``int``, ``float``, ``bool`` or ``choice``."""

    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    image_only: bool = False

    def check(self, value: Any, method: str) -> Any:
        """The value, converted to the argument's type, or :class:`IntellegoError` saying what is wrong."""
        where = f"{method}: argument {self.name!r}"
        if self.kind == "bool":
            require(isinstance(value, bool), f"{where} must be true or false, got {describe(value)}")
            return value
        if self.kind == "choice":
            require(value in self.choices, f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(is_number and math.isfinite(value), f"{where} must be a finite number, got {describe(value)}")
        if self.kind == "int":
            require(float(value).is_integer(), f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        require((self.low is None or value >= self.low) and (self.high is None or value <= self.high),
                f"{where} must be between {_num(self.low)} and {_num(self.high)}, got {_num(value)}")
        return value

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "default": self.default, "low": self.low,
                "high": self.high, "choices": list(self.choices), "help": self.help}


def _num(x: float | None) -> str:
    return "any" if x is None else (str(int(x)) if float(x).is_integer() else repr(x))


@dataclass
class Context:
    """What a call needs besides the arguments: features, one sample's inputs and baselines, a seed."""

    features: list[BaseFeature]
    inputs: tuple[Tensor, ...]
    baselines: list[tuple[Tensor, ...]]
    seed: int = 0

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(x.shape[1:]) for x in self.inputs]

    def groups(self, patch: int) -> tuple[Tensor, ...]:
        """Feature masks with ids that are distinct across inputs, each ``(1, *shape)``."""
        out, offset = [], 0
        for feature, shape in zip(self.features, self.shapes()):
            ids = feature.groups(patch, shape) + offset
            offset = int(ids.max()) + 1
            out.append(ids.unsqueeze(0))
        return tuple(out)


Builder = Callable[[Context, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class MethodSpec:
    """An offered method: its class name in ``intellego.attr``, its arguments and its call builder."""

    name: str
    args: tuple[Arg, ...]
    build: Builder
    needs_groups: bool = False
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def visible_args(self, features: list[BaseFeature]) -> tuple[Arg, ...]:
        has_image = any(f.kind == "image" for f in features)
        return tuple(a for a in self.args if has_image or not a.image_only)

    def check(self, arguments: Any, features: list[BaseFeature] | None = None) -> dict[str, Any]:
        """Defaults filled in, every value checked; unknown names rejected."""
        require(isinstance(arguments, dict), f"{self.name}: arguments must be an object, got {describe(arguments)}")
        args = self.args if features is None else self.visible_args(features)
        known = {a.name: a for a in args}
        unknown = sorted(set(arguments) - set(known))
        require(not unknown, f"{self.name}: unknown argument(s) {unknown}; known: {sorted(known) or 'none'}")
        return {a.name: a.check(arguments[a.name], self.name) if a.name in arguments else a.default
                for a in args}

    def to_json(self, features: list[BaseFeature]) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary,
                "args": [a.to_json() for a in self.visible_args(features)]}


def _first(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return {"baselines": ctx.baselines[0]}


def _ig(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return {"baselines": ctx.baselines[0], "n_steps": args["n_steps"], "method": args["method"]}


def _gradient_shap(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    distribution = tuple(torch.cat(group) for group in zip(*ctx.baselines))
    return {"baselines": distribution, "n_samples": args["n_samples"], "stdevs": args["stdevs"],
            "generator": torch.Generator().manual_seed(ctx.seed)}


def _occlusion(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    shapes = ctx.shapes()
    windows = tuple(f.window(args["window"], s) for f, s in zip(ctx.features, shapes))
    strides = tuple(f.window(args["stride"], s) for f, s in zip(ctx.features, shapes))
    if len(windows) == 1:  # one input: the plain per-input form, which every implementation accepts
        return {"sliding_window_shapes": windows[0], "strides": strides[0], "baselines": ctx.baselines[0]}
    return {"sliding_window_shapes": windows, "strides": strides, "baselines": ctx.baselines[0]}


def _ablation(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return {"baselines": ctx.baselines[0], "feature_mask": ctx.groups(args.get("patch", 1))}


def _surrogate(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return {**_ablation(ctx, args), "n_samples": args["n_samples"],
            "generator": torch.Generator().manual_seed(ctx.seed)}


_N_STEPS = Arg("n_steps", "int", 25, 1, 300, help="points on the path from baseline to input")
_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
_PATCH = Arg("patch", "int", 4, 1, 512, help="side of the square image patches that are removed together",
             image_only=True)

METHOD_SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in [
    MethodSpec("IntegratedGradients", (_N_STEPS, Arg("method", "choice", "gausslegendre", choices=_RULES)), _ig,
               summary="path integral of gradients from the baseline"),
    MethodSpec("GradientShap", (Arg("n_samples", "int", 10, 1, 200, help="random points per sample"),
                                Arg("stdevs", "float", 0.0, 0.0, 10.0, help="noise added to the input")),
               _gradient_shap, summary="expected gradients over baselines"),
    MethodSpec("Saliency", (Arg("abs", "bool", True, help="absolute value of the gradient"),),
               lambda ctx, args: {"abs": args["abs"]}, summary="gradient of the score"),
    MethodSpec("InputXGradient", (), lambda ctx, args: {}, summary="input times gradient"),
    MethodSpec("DeepLift", (), _first, summary="rescale rule against the baseline"),
    MethodSpec("GuidedBackprop", (), lambda ctx, args: {}, summary="gradient with negative signals stopped"),
    MethodSpec("Deconvolution", (), lambda ctx, args: {}, summary="deconvnet backward pass"),
    MethodSpec("Occlusion", (Arg("window", "int", 4, 1, 512, help="side of the occluding window"),
                             Arg("stride", "int", 2, 1, 512, help="step between windows")),
               _occlusion, summary="score drop when a window is replaced by the baseline"),
    MethodSpec("FeatureAblation", (_PATCH,), _ablation, needs_groups=True,
               summary="score drop when one group is replaced by the baseline"),
    MethodSpec("ShapleyValueSampling", (Arg("n_samples", "int", 10, 1, 500, help="random feature orders"),
                                        Arg("patch", "int", 8, 1, 512, image_only=True,
                                            help="side of the image patches used as features")),
               _surrogate, needs_groups=True, summary="Shapley values from sampled feature orders"),
    MethodSpec("KernelShap", (Arg("n_samples", "int", 100, 4, 5000, help="coalitions evaluated"),
                              Arg("patch", "int", 8, 1, 512, image_only=True,
                                  help="side of the image patches used as features")),
               _surrogate, needs_groups=True, summary="Shapley values by weighted regression"),
    MethodSpec("Lime", (Arg("n_samples", "int", 100, 4, 5000, help="perturbed samples"),
                        Arg("patch", "int", 8, 1, 512, image_only=True,
                            help="side of the image patches used as features")),
               _surrogate, needs_groups=True, summary="local linear surrogate"),
]}


def available_methods(features: list[BaseFeature]) -> list[str]:
    """Names of the specs whose class exists in :mod:`intellego.attr` now and that suit ``features``."""
    from .. import attr

    names = []
    for name, spec in METHOD_SPECS.items():
        if not isinstance(getattr(attr, name, None), type):
            continue
        if spec.needs_groups and not all(f.groupable for f in features):
            continue
        names.append(name)
    return names


def call(method: str, forward: Any, inputs: tuple[Tensor, ...], target: Any, additional: Any,
         kwargs: dict[str, Any]) -> tuple[Tensor, ...]:
    """Run ``intellego.attr.<method>(forward).attribute`` with the keywords its signature accepts."""
    from .. import attr

    cls = getattr(attr, method, None)
    if not isinstance(cls, type):
        raise IntellegoError(f"method {method!r} is not available in intellego.attr")
    params = inspect.signature(cls.attribute).parameters  # type: ignore[attr-defined]
    accepted = {k: v for k, v in kwargs.items() if k in params}
    if "target" in params:
        accepted["target"] = target
    if additional is not None:
        accepted["additional_forward_args"] = additional
    out = cls(forward).attribute(inputs, **accepted)
    if isinstance(out, Tensor):
        return (out,)
    return tuple(out)
