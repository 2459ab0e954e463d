"""The library never imports captum: Captum is a test and benchmark oracle only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "intellego"


def test_no_source_file_imports_captum():
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}:{node.lineno}" for n in names if n.split(".")[0] == "captum"]
    assert not offenders, offenders


def test_importing_every_module_loads_no_captum():
    code = (
        "import importlib, pkgutil, sys, intellego\n"
        "for m in pkgutil.walk_packages(intellego.__path__, 'intellego.'):\n"
        "    if not m.name.endswith(('__main__', '.example', '.train')):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'captum']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
