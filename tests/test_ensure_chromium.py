"""scripts/ensure_chromium.sh: on a machine without Chromium, `make test` leaves out exactly the browser tests."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ensure_chromium.sh"


def _browser_tests() -> set[str]:
    """Every test that needs Chromium: a module marked ``browser`` as a whole, or a function marked alone."""
    found = set()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        rel = f"tests/{path.name}"
        for node in tree.body:
            text = ast.unparse(node)
            if isinstance(node, ast.Assign) and "pytestmark" in text and "browser" in text:
                found.add(rel)
            elif isinstance(node, ast.FunctionDef) and any("browser" in ast.unparse(d) for d in node.decorator_list):
                found.add(f"{rel}::{node.name}")
    return found


def _run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_without_permission_it_deselects_every_browser_test_and_names_the_command(tmp_path):
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text("#!/bin/sh\nexit 1\n")
    fake_apt.chmod(0o755)
    out = _run(CHROMIUM=str(tmp_path / "no-chromium"), APT_GET=str(fake_apt), INTELLEGO_REQUIRE_BROWSER="")
    args = out.stdout.split()
    deselected = {args[i + 1] for i, a in enumerate(args) if a == "--deselect"}
    assert deselected == _browser_tests(), (deselected, _browser_tests())
    assert "install -y chromium" in out.stderr


def test_in_ci_it_deselects_nothing(tmp_path):
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text("#!/bin/sh\nexit 1\n")
    fake_apt.chmod(0o755)
    out = _run(CHROMIUM=str(tmp_path / "no-chromium"), APT_GET=str(fake_apt), INTELLEGO_REQUIRE_BROWSER="1")
    assert out.stdout.strip() == ""
    assert "will fail" in out.stderr


def test_present_chromium_needs_nothing(tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    out = _run(CHROMIUM=str(browser))
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""
