"""Docstrings of the public API: Args / Returns / Example sections, and the shared argument texts filled in.

Shared arguments (inputs, baselines, target, ...) are described once in ``intellego/_docs.py``; these tests read
the docstrings as ``help()`` and the documentation site show them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing

import pytest

from intellego._docs import SHARED

PACKAGES = ["attr", "metrics", "viz", "insights", "robust", "concept", "influence", "module", "scale"]
# The main methods of a class, checked beside its constructor.
METHODS = ("attribute", "perturb", "evaluate", "influence", "self_influence", "interpret", "compute_cavs")


def section(doc: str | None, name: str) -> bool:
    return re.search(rf"^\s*{name}:\s*$", doc or "", re.M) is not None


def parameters(fn) -> list[str]:
    try:
        return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
    except (TypeError, ValueError):
        return []


def returns_value(fn) -> bool:
    try:
        return inspect.signature(fn).return_annotation not in (None, "None")
    except (TypeError, ValueError):
        return True


def gaps(obj) -> list[str]:
    """The sections ``obj``'s docstrings lack."""
    missing = []
    if inspect.isclass(obj):
        doc, init = inspect.getdoc(obj) or "", vars(obj).get("__init__")
        if getattr(obj, "_is_protocol", False):
            init = None  # a Protocol's __init__ is typing's placeholder, not a constructor users call
        if not section(doc, "Examples?"):
            missing.append("Example")
        documented = section(doc, "Args") or section(init.__doc__ if init else None, "Args") or (
            dataclasses.is_dataclass(obj) and section(doc, "Attributes"))  # a dataclass documents its fields
        if init is not None and parameters(init) and not documented:
            missing.append("Args(init)")
        for name in METHODS:
            fn = vars(obj).get(name)
            if inspect.isfunction(fn):
                if parameters(fn) and not section(fn.__doc__, "Args"):
                    missing.append(f"{name}:Args")
                if returns_value(fn) and not section(fn.__doc__, "Returns"):
                    missing.append(f"{name}:Returns")
    elif typing.get_origin(obj) is not None:
        pass  # a type alias (``StatValue = Union[...]``): a name for annotations, nothing to call or construct
    elif callable(obj):
        if parameters(obj) and not section(obj.__doc__, "Args"):
            missing.append("Args")
        if returns_value(obj) and not section(obj.__doc__, "Returns"):
            missing.append("Returns")
        if not section(obj.__doc__, "Examples?"):
            missing.append("Example")
    return missing


def public():
    for package in PACKAGES:
        module = importlib.import_module(f"intellego.{package}")
        for name in module.__all__:
            yield f"{package}.{name}", getattr(module, name)


def test_every_public_name_has_args_returns_and_an_example():
    missing = {name: gaps(obj) for name, obj in public()}
    missing = {name: sections for name, sections in missing.items() if sections}
    assert not missing, f"docstrings without these sections: {missing}"


def test_help_of_integrated_gradients_explains_the_shared_arguments():
    from intellego.attr import IntegratedGradients

    doc = inspect.getdoc(IntegratedGradients.attribute)
    for text in ("inputs", "baselines", "target", "additional_forward_args", "n_steps", "method",
                 "internal_batch_size", "return_convergence_delta"):
        key = text.upper()
        assert SHARED[key].split(":", 1)[1].strip()[:40] in " ".join(doc.split()), text
    assert section(doc, "Args") and section(doc, "Returns") and section(doc, "Examples?")
    assert len(doc) > 3000


@pytest.mark.parametrize("package", PACKAGES)
def test_no_placeholder_is_left_unfilled(package):
    module = importlib.import_module(f"intellego.{package}")
    placeholder = re.compile(r"^\s*\{[A-Z_]+\}\s*$", re.M)
    for name in module.__all__:
        obj = getattr(module, name)
        docs = [obj.__doc__]
        if inspect.isclass(obj):
            docs += [m.__doc__ for m in vars(obj).values() if inspect.isfunction(m)]
        for doc in docs:
            assert not placeholder.search(doc or ""), f"{package}.{name}: unfilled placeholder in\n{doc}"


def test_the_same_argument_reads_the_same_in_every_class():
    from intellego.attr import DeepLift, FeatureAblation, IntegratedGradients, LayerConductance, Saliency

    text = " ".join(SHARED["TARGET"].split())
    for cls in (DeepLift, FeatureAblation, IntegratedGradients, LayerConductance, Saliency):
        assert text in " ".join(inspect.getdoc(cls.attribute).split()), cls.__name__
