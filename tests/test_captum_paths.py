"""Captum's module paths import under intellego: ``from captum.attr._core.lime import X`` ports by renaming.

The plan comes from walking Captum's installed tree (tests/_captum_paths.py); these tests check that every alias
module on disk is exactly the plan, that each alias is intellego's own public object (no second implementation),
and that every Captum path or name left out carries a reason.
"""

from __future__ import annotations

import ast
import importlib

import pytest

pytest.importorskip("captum")

import _captum_paths as paths  # noqa: E402

PLAN = paths.build_plan()


@pytest.mark.parametrize("module", sorted(PLAN.aliases))
def test_alias_module_reexports_our_public_object(module: str) -> None:
    ours = importlib.import_module(module)
    for name, home in PLAN.aliases[module].items():
        assert getattr(ours, name) is getattr(importlib.import_module(home), name), f"{module}.{name}"
    assert sorted(ours.__all__) == sorted(n for n in PLAN.aliases[module] if not n.startswith("_"))


def test_files_on_disk_are_the_plan() -> None:
    """No stale, missing or hand-edited alias module: each generated file imports exactly the planned names."""
    generated = {p for p in paths.SRC.rglob("*.py") if paths.MARKER in p.read_text()}
    planned = {paths.target_file(m, PLAN) for m in PLAN.aliases | dict.fromkeys(PLAN.packages)}
    assert generated == planned, "run `python tests/_captum_paths.py` to regenerate"
    for module, entries in PLAN.aliases.items():
        tree = ast.parse(paths.target_file(module, PLAN).read_text())
        imported = {(a.asname or a.name): node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                    for a in node.names}
        assert imported == entries, module


def test_tutorial_imports_port_by_renaming() -> None:
    """The private paths Captum's own tutorials import."""
    from intellego._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression
    from intellego.attr import Lime, visualization
    from intellego.attr import SkLearnLasso as Lasso2
    from intellego.attr._core.lime import get_exp_kernel_similarity_function
    from intellego.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
    from intellego.attr._utils.visualization import _normalize_attr, visualize_image_attr

    assert SkLearnLasso is Lasso2 and SkLearnLinearRegression.__name__ == "SkLearnLinearRegression"
    assert visualize_image_attr is visualization.visualize_image_attr
    assert _normalize_attr is visualization._normalize_attr
    assert Lime.__module__.startswith("intellego") and callable(get_exp_kernel_similarity_function("euclidean"))
    rules = importlib.import_module("intellego.attr.lrp_rules")
    assert (EpsilonRule, GammaRule, Alpha1_Beta0_Rule) == (rules.EpsilonRule, rules.GammaRule, rules.Alpha1_Beta0_Rule)


def test_every_captum_class_module_is_supported() -> None:
    """Every class exported by captum.attr and captum.metrics is importable from its defining module's path."""
    import captum.attr as ca

    for name in ca.__all__:
        obj = getattr(ca, name)
        where = getattr(obj, "__module__", "")
        if not where.startswith("captum.attr._") or name not in vars(importlib.import_module(where)):
            continue
        ours = importlib.import_module("intellego" + where[len("captum"):])
        assert getattr(ours, name) is getattr(importlib.import_module("intellego.attr"), name), f"{where}.{name}"


def test_skipped_paths_and_names_have_reasons() -> None:
    skipped = {**PLAN.skipped_modules, **PLAN.skipped_names}
    for where, reason in sorted(skipped.items()):
        print(f"skipped {where}: {reason}")
        assert reason and where.startswith("captum")
    assert PLAN.skipped_modules["captum.robust"].startswith("intellego.robust keeps its own")
    unexplained = sorted(w for w, r in PLAN.skipped_names.items() if r == "no intellego counterpart")
    assert not unexplained, f"give these a reason in NAME_REASONS (or an intellego object): {unexplained}"
    assert len(PLAN.supported()) >= 45
