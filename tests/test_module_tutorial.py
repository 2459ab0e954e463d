"""The intellego.module tutorial (docs/tutorials/module_select_features.py) runs and finds what docs/module.md says."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "tutorials" / "module_select_features.py"


def test_tutorial_runs_and_finds_the_planted_sensors(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = runpy.run_path(str(SCRIPT))["main"]()
    finally:
        torch.set_num_threads(threads)
    assert result["accuracy"] > 0.95
    assert result["selected"] == [2, 5, 11, 17] and result["strict"] == [2, 5, 11, 17]
    assert set(result["racks"][:4]) == {0, 1, 2, 4} and result["rack_probs"][4] < 0.5  # rack 3: no used sensor
    assert result["hand"] == [2, 5, 11, 17] and len(result["hand_weak"]) == 20  # an absolute weight needs tuning
    assert "selected sensors: [2, 5, 11, 17]" in capsys.readouterr().out
