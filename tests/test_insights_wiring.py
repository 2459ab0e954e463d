"""How the insights and viz modules depend on each other: the export does not import the server, the demos and
the command line do not import each other, no import cycle in either package, one implementation behind each
public feature path, and one image-layout rule shared by the figures and the explorer."""

from __future__ import annotations

import ast
import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from intellego.insights import feature_types
from intellego.insights.feature_types import ImageFeature
from intellego.viz.image import as_image_array, channels_at_end

SRC = Path(__file__).resolve().parent.parent / "src" / "intellego"


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (relative or absolute, at any depth in the file)."""
    root = SRC / package
    names = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:
                    found |= {module.split(".")[0]} if module else {a.name for a in node.names}
                elif module.startswith(f"intellego.{package}."):
                    found.add(module.split(".")[2])
        graph[path.stem] = found & names - {path.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


@pytest.mark.parametrize("package", ["insights", "viz"])
def test_no_import_cycle(package):
    assert _cycle(_imports(package)) is None


def test_the_export_and_the_demos_stand_alone():
    graph = _imports("insights")
    assert "server" not in graph["export"] and "assets" in graph["export"] and "assets" in graph["server"]
    assert "__main__" not in graph["example"] and "cli" not in graph["example"]
    assert graph["__main__"] == {"cli"}


def test_the_demo_module_still_runs_as_the_command_line(tmp_path):
    out = tmp_path / "x.html"
    done = subprocess.run([sys.executable, "-m", "intellego.insights.example", "--data", "tabular", "--samples", "8",
                           "--count", "2", "--methods", "Saliency", "--export", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.exists() and "intellego-data" in out.read_text()


def test_one_module_named_features_per_public_path():
    """The implementation is ``feature_types``; ``insights.features`` (intellego's path) and
    ``insights.attr_vis.features`` (Captum's) re-export its objects, and nothing else is called ``features``."""
    from intellego.insights import features
    from intellego.insights.attr_vis import features as captum_path

    for name in features.__all__:
        assert getattr(features, name) is getattr(feature_types, name) is getattr(captum_path, name)
    named = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("features.py"))
    assert named == ["insights/attr_vis/features.py", "insights/features.py"]


# Per-example image shapes where the two guessers disagreed before (ImageFeature's view took (5, 6, 7) as
# channels-last for the picture and channels-first for the heat map), and the plain cases.
SHAPES = [(5, 6, 7), (3, 8, 3), (1, 6, 4), (8, 9, 3), (3, 8, 9), (1, 8, 9), (8, 9, 1), (2, 6, 7)]


@pytest.mark.parametrize("shape", SHAPES)
def test_one_image_layout_rule_for_figures_and_the_explorer(shape):
    """The explorer's picture, its heat map and the figures' array agree on height and width for every shape."""
    raw, attr = torch.rand(shape), torch.randn(shape)
    hw = as_image_array(raw, "x").shape[:2]
    view = ImageFeature("img", [], []).view(raw, attr)
    assert tuple(view["image"]["shape"][:2]) == hw
    assert tuple(view["heat"]["shape"]) == hw
    last = channels_at_end(shape)
    assert ImageFeature("img", [], []).spatial_dims(shape) == ((0, 1) if last else (1, 2))
    expected = attr.sum(-1) if last else attr.sum(0)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(view["heat"]["b64"]), dtype=np.float32)
                               .reshape(hw), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module", ["intellego", "intellego.insights"])
def test_python_dash_m_runs_the_intellego_command(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: intellego") and "--export" in done.stdout
