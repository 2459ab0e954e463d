"""The tutorial of docs/influence.md runs, and its printed claims hold."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "influence_mislabelled.py"


def test_tutorial_finds_the_mislabelled_shapes():
    threads = torch.get_num_threads()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    text = out.getvalue()
    assert float(re.search(r"true labels (\d\.\d+)", text).group(1)) > 0.85, text
    found = [int(n) for n in re.findall(r"(\d+) of (?:the )?60", text)]
    aucs = [float(a) for a in re.findall(r"AUC (\d\.\d+)", text)]
    assert len(found) == 2 and min(found) >= 30, text  # 60 labels are flipped; chance would find 6
    assert len(aucs) == 2 and min(aucs) > 0.85, text
    shown = re.findall(r"labelled (\w+)\s+shows a (\w+)", text)
    assert len(shown) == 5 and sum(a != b for a, b in shown) >= 4, text
