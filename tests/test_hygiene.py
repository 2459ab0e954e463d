"""Every public attribution class leaves model and inputs untouched, after success and after an error."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

import intellego.attr as attr
from _hygiene import Case, as_tensors, assert_same, snapshot

CASES: dict[str, Case] = {}
for path in sorted(Path(__file__).parent.glob("hygiene_*.py")):
    CASES.update(importlib.import_module(path.stem).CASES)


def _public_classes() -> list[str]:
    return [n for n in attr.__all__ if isinstance(getattr(attr, n), type) and n not in {
        "Attribution", "GradientAttribution", "PerturbationAttribution", "InternalAttribution",
        "LayerAttribution", "NeuronAttribution"} and not n.endswith("Base") and n not in NOT_ALGORITHMS]


NOT_ALGORITHMS = {"TokenReferenceBase", "InterpretableEmbeddingBase", "Summarizer", "SummarizerSingleTensor",
                  "ClassSummarizer", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "Min", "Max", "Sum",
                  "InterpretableInput", "TextTemplateInput", "TextTokenInput", "ImageMaskInput", "ProductBaselines",
                  "LLMAttributionResult", "VLLMProvider"}


def test_every_public_class_has_a_hygiene_case():
    covered = set(CASES) | {c for case in CASES.values() for c in case.covers}
    missing = [n for n in _public_classes() if n not in covered]
    assert not missing, f"no hygiene case for {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_call_leaves_model_and_inputs_unchanged(name):
    model, inputs = CASES[name].make()
    tensors = as_tensors(inputs)
    before = snapshot(model, tensors)
    CASES[name].call(model, inputs)
    assert_same(before, snapshot(model, tensors))


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.bad is not None))
def test_failed_call_leaves_model_and_inputs_unchanged(name):
    model, inputs = CASES[name].make()
    tensors = as_tensors(inputs)
    before = snapshot(model, tensors)
    with pytest.raises((ValueError, RuntimeError, AssertionError, TypeError, IndexError)):
        CASES[name].bad(model, inputs)
    assert_same(before, snapshot(model, tensors))
    assert torch.is_grad_enabled()
