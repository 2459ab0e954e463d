"""``explain``: one friendly call over the attribution classes, returning an object that can plot itself."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from . import attr
from .errors import IntellegoError

__all__ = ["explain", "Explanation", "METHODS"]

_PRIMARY = ("Saliency", "InputXGradient", "IntegratedGradients", "GradientShap", "DeepLift", "DeepLiftShap",
            "GuidedBackprop", "Deconvolution", "LRP", "Occlusion", "FeatureAblation", "FeaturePermutation",
            "ShapleyValueSampling", "ShapleyValues", "KernelShap", "Lime")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


METHODS: dict[str, str] = {_snake(n): n for n in _PRIMARY} | {"smoothgrad": "NoiseTunnel"}


@dataclass
class Explanation:
    """What :func:`explain` returns: attributions (structured like the inputs) and how they were made."""

    attributions: Any
    method: str
    target: Any
    inputs: Any
    delta: Tensor | None = None

    def plot(self, index: int = 0, **kwargs: Any) -> Any:
        """Draw example ``index`` as a heat map over its input (needs the ``viz`` extra)."""
        from .viz import plot_explanation

        return plot_explanation(self, index=index, **kwargs)


def _method_class(name: str) -> type:
    key = name.lower().replace("-", "_").replace(" ", "_")
    cls_name = METHODS.get(key) or (name if hasattr(attr, name) else None)
    if cls_name is None:
        raise IntellegoError(f"method must be one of {sorted(METHODS)} or an intellego.attr class name, got {name!r}")
    return getattr(attr, cls_name)


def explain(model: Any, inputs: Any, method: str = "integrated_gradients", target: Any = None, **kwargs: Any
            ) -> Explanation:
    """Attribute ``model``'s output for ``target`` to ``inputs`` with ``method`` in one call.

    ``method`` is a short name from :data:`METHODS` (or any ``intellego.attr`` class name); extra keyword
    arguments go to the method's ``attribute``. ``smoothgrad`` is NoiseTunnel over Saliency.
    """
    cls = _method_class(method)
    algorithm = cls(attr.Saliency(model)) if cls is attr.NoiseTunnel else cls(model)
    params = inspect.signature(algorithm.attribute).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "target" in params or takes_kwargs:
        kwargs["target"] = target
    want_delta = algorithm.has_convergence_delta() and "return_convergence_delta" in params
    if want_delta:
        kwargs.setdefault("return_convergence_delta", True)
    if cls is attr.GradientShap and "baselines" not in kwargs:
        raise IntellegoError("gradient_shap needs baselines=: a tensor holding a distribution of reference inputs")
    out = algorithm.attribute(inputs, **kwargs)
    delta = None
    if want_delta and kwargs.get("return_convergence_delta"):
        out, delta = out
    return Explanation(out, method, target, inputs, delta)
