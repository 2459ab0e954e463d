"""scripts/captum_tutorials.py's check of printed numbers: the driver catches what a cell and the processes it
starts print, and the comparison pairs printed lines and compares their numbers."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from _tutorial_prints import compare  # noqa: E402

_FORKED = '''import multiprocessing as mp
print("parent", 1.5)
def rank(value):
    print("rank 1:", value)
p = mp.get_context("fork").Process(target=rank, args=(0.25,))
p.start()
p.join()
'''


def test_driver_records_the_prints_of_the_cell_and_of_its_forked_ranks(tmp_path: Path) -> None:
    program = {"prelude": "", "cells": [_FORKED, "print('second cell', 7)", "x = 2"], "skip": [], "notebook": "t"}
    (tmp_path / "program.json").write_text(json.dumps(program))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, str(SCRIPTS / "_tutorial_driver.py"), "program.json", "result.pkl"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    with (tmp_path / "result.pkl").open("rb") as fh:
        cells = pickle.load(fh)
    assert [c["stdout"] for c in cells] == ["parent 1.5\nrank 1: 0.25\n", "second cell 7\n", ""]


def test_printed_numbers_within_the_rounding_of_their_digits_agree() -> None:
    # 0.12345 and 0.12346 print as 0.1234 / 0.1235 (torch's 4 decimals): a difference of one last digit
    count, diffs, unpaired = compare("tensor([[ 0.1234, -2.0000]])\n", "tensor([[0.1235, -2.0000]])\n")
    assert (count, diffs, unpaired) == (2, [], 0)


def test_printed_numbers_that_differ_are_reported_with_their_lines() -> None:
    count, diffs, unpaired = compare("loss 0.50\nacc 97 %\n", "loss 0.53\nacc 97 %\n")
    assert count == 2 and unpaired == 0
    assert len(diffs) == 1 and diffs[0][1] == 1 and abs(diffs[0][2] - 0.03) < 1e-12
    assert "loss 0.50" in diffs[0][0] and "loss 0.53" in diffs[0][0]


def test_lines_pair_where_their_text_matches_and_the_others_are_counted() -> None:
    ours = "version 0.1\nstep 1 loss 0.5\nstep 2 loss 0.25\n"
    theirs = "step 1 loss 0.5\nextra line 3\nstep 2 loss 0.75\n"
    count, diffs, unpaired = compare(ours, theirs)
    assert (count, unpaired) == (4, 2)
    assert [d[2] for d in diffs] == [0.5]


def test_ignored_text_leaves_its_numbers_out() -> None:
    ours, theirs = "500 examples in 0.01 minutes\n", "500 examples in 0.37 minutes\n"
    assert compare(ours, theirs)[1]
    assert compare(ours, theirs, ignored=r"in [0-9.]+ minutes") == (1, [], 0)


def test_a_cell_that_raised_after_printing_has_its_prints_compared() -> None:
    from captum_tutorials import Run, printed

    ours = Run("intellego", cells=[{"status": "ok", "stdout": "p 0.5\nq 2\n"}])
    theirs = Run("captum", cells=[{"status": "error", "stdout": "p 0.75\n"}])
    head, lines = printed(ours, theirs, spec=None)
    assert head == "- printed numbers compared: 1, differing: 1, unpaired lines: 1"
    assert len(lines) == 2 and "p 0.75" in lines[0]
