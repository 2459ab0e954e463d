"""docs/porting.md: the table of deliberate differences from Captum names tests that exist, so it cannot rot."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "porting.md"
NODE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _differences_section() -> str:
    """The text of docs/porting.md from "## Deliberate differences" to the next section heading."""
    return DOC.read_text().split("## Deliberate differences", 1)[1].split("\n## ", 1)[0]


def _table_rows() -> list[str]:
    section = _differences_section()
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| Area | Captum 0.9 | intellego | Why | Pinned by |"), lines[0]
    return lines[2:]  # after the header and the separator


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test")}


def test_every_row_names_tests_that_exist():
    rows = _table_rows()
    assert len(rows) >= 30
    missing = []
    cache: dict[str, set[str]] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 5, f"a row of docs/porting.md does not have 5 cells: {row[:120]}"
        nodes = NODE.findall(cells[4])
        assert nodes, f"a row of docs/porting.md names no test: {row[:120]}"
        for file, name in nodes:
            path = ROOT / file
            if file not in cache:
                cache[file] = _tests_in(path) if path.exists() else set()
            if name not in cache[file]:
                missing.append(f"{file}::{name}")
    assert not missing, f"docs/porting.md names tests that do not exist: {missing}"


def test_there_is_one_table_of_differences():
    text = DOC.read_text()
    headers = [ln for ln in text.splitlines() if ln.startswith("| Area |")]
    assert len(headers) == 1
    assert headers[0] in _differences_section()
