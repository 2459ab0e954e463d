"""The tutorial of docs/influence_functions.md runs, and its printed claims hold."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "influence_functions_tutorial.py"


def test_tutorial_runs_and_finds_flipped_labels():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(SCRIPT), run_name="__main__")
    text = out.getvalue()
    aucs = [float(a) for a in re.findall(r"AUC (\d\.\d+)", text)]
    assert len(aucs) == 3 and all(a > 0.7 for a in aucs), text
    assert "prompt 'the cat' ->" in text
    assert len(re.findall(r"^\s+[+-]\d+\.\d+\s+\w", text, flags=re.M)) == 3, text
