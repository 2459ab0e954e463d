"""The Captum port: every ``captum.robust`` import path works under ``intellego.robust`` and names the same object,
and every Captum signature binds unchanged (ours only adds keyword-only parameters)."""

from __future__ import annotations

import importlib
import inspect

import pytest

import intellego.robust as robust

ALIASES = {
    "intellego.robust._core.fgsm": "FGSM",
    "intellego.robust._core.pgd": "PGD",
    "intellego.robust._core.perturbation": "Perturbation",
    "intellego.robust._core.metrics.attack_comparator": "AttackComparator",
    "intellego.robust._core.metrics.min_param_perturbation": "MinParamPerturbation",
}

# (class, method, parameter) -> why our default differs
ALLOWED = {
    ("AttackComparator", "evaluate", "perturbations_per_eval"):
        "None stacks as many candidates per model call as the memory budget allows; an explicit value is honoured "
        "and results do not depend on it",
}


@pytest.mark.parametrize("path", sorted(ALIASES))
def test_captum_paths_are_aliases(path):
    module = importlib.import_module(path)
    name = ALIASES[path]
    assert getattr(module, name) is getattr(robust, name)
    assert module.__all__ == [name]


def test_captum_public_names_exist():
    captum_robust = pytest.importorskip("captum.robust")
    assert set(captum_robust.__all__) <= set(robust.__all__)


def _problems(cls_name: str, method: str, ours, theirs) -> list[str]:
    po = list(inspect.signature(ours).parameters.values())
    pc = [p for p in inspect.signature(theirs).parameters.values() if p.kind is not p.VAR_KEYWORD]
    problems = []
    for i, p in enumerate(pc):
        q = po[i] if i < len(po) else None
        if q is None or (q.name, q.kind) != (p.name, p.kind):
            problems.append(f"{cls_name}.{method} position {i}: Captum {p.name}, ours {q and q.name}")
        elif p.default != q.default and p.default is not q.default and (cls_name, method, p.name) not in ALLOWED:
            problems.append(f"{cls_name}.{method} {p.name}: default {q.default!r}, Captum {p.default!r}")
    for q in po[len(pc):]:
        if q.kind not in (q.KEYWORD_ONLY, q.VAR_KEYWORD):
            problems.append(f"{cls_name}.{method}: extra parameter {q.name} must be keyword-only")
    return problems


@pytest.mark.parametrize("name", ["FGSM", "PGD", "AttackComparator", "MinParamPerturbation"])
def test_signatures_bind_like_captums(name):
    captum_robust = pytest.importorskip("captum.robust")
    ours, theirs = getattr(robust, name), getattr(captum_robust, name)
    methods = [m for m in ("__init__", "perturb", "evaluate", "add_attack", "summary", "reset") if hasattr(theirs, m)]
    problems = [p for m in methods for p in _problems(name, m, getattr(ours, m), getattr(theirs, m))]
    assert not problems, problems
