"""The robust tutorial scripts run (small sizes) and docs/robust.md shows their code as it is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


pytestmark = pytest.mark.usefixtures("one_thread")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / "tutorials" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shapes_tutorial_runs(capsys):
    table = load("robust_shapes").main(n=16, steps=3)
    out = capsys.readouterr().out
    assert "robust accuracy" in out and "minimal FGSM epsilon" in out and "DeepFool" in out
    attacked = {k: v for k, v in table.items() if k not in ("clean", "median DeepFool L2")}
    assert len(attacked) == 6 and all(0.0 <= v <= table["clean"] for v in attacked.values())
    assert table["PGD L2 0.5"] <= table["PGD L2 0.5, Captum's sign steps"]
    assert table["median DeepFool L2"] > 0


def test_l2_table_script_runs():
    pytest.importorskip("captum.robust")
    pytest.importorskip("torchattacks")
    table = load("robust_l2_table").main(n=16, radii=(0.5,), steps=5)
    row = table[0.5]
    assert row["intellego"] <= row["captum"]
    assert abs(row["intellego"] - row["torchattacks"]) <= 1 / 16


@pytest.mark.parametrize("name", ["robust_shapes", "robust_l2_table"])
def test_docs_page_shows_the_tutorial_code(name):
    page = (DOCS / "robust.md").read_text()
    code = (DOCS / "tutorials" / f"{name}.py").read_text()
    body = code.split('"""', 2)[2].strip()  # the script after its docstring
    assert body in page, f"docs/robust.md does not show the current code of docs/tutorials/{name}.py"
