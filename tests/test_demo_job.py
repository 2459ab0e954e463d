"""The main job (`make demo`) runs end to end: accuracy, mass inside masks, metrics table, figure, export."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from intellego.demo import main, mass_inside  # noqa: E402


def test_mass_inside_counts_positive_mass_in_the_mask():
    attr = torch.zeros(1, 3, 2, 2)
    attr[0, :, 0, 0] = 1.0
    attr[0, :, 1, 1] = -5.0  # negative evidence is not mass
    attr[0, :, 0, 1] = 1.0
    mask = torch.tensor([[[[True, False], [False, True]]]])
    assert mass_inside(attr, mask).tolist() == [0.5]


def test_demo_prints_its_report_and_writes_figure_and_export(tmp_path, capsys):
    export = tmp_path / "insights.html"
    assert main(["--n", "32", "--out", str(tmp_path), "--export", str(export)]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert "accuracy" in out and "IntegratedGradients" in out and "relevance_mass" in out
    steps = [line.split("]")[0] + "]" for line in out.splitlines() if line.startswith("[")]
    assert steps == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], out
    # the slow steps show progress on stderr: the metrics table over its 5 methods x 8 metrics to the end, the
    # figure and the export with their elapsed time
    assert re.search(r"evaluate \(methods x metrics\): 100%.* 40/40 ", err), err[-2000:]
    assert "drawing" in err and "exporting" in err
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = export.read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
