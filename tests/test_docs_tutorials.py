"""The site's tutorials (docs/tutorials/*.py) run, find what their pages say, and draw the committed pictures.

Each tutorial writes its pictures into a temporary folder here; they must match the PNGs committed in docs/img
(which `make docs-pictures` redraws), so a picture on the site cannot drift from the code beside it.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"


def run(name: str, out: Path) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return runpy.run_path(str(DOCS / "tutorials" / f"{name}.py"))["main"](out)
    finally:
        torch.set_num_threads(threads)


def same_picture(fresh: Path) -> None:
    import matplotlib.image as mpimg

    committed = DOCS / "img" / fresh.name
    assert committed.exists(), f"{committed} is not committed: run `make docs-pictures`"
    a, b = mpimg.imread(fresh), mpimg.imread(committed)
    assert a.shape == b.shape, f"{fresh.name}: drawn {a.shape}, committed {b.shape}: run `make docs-pictures`"
    assert float(np.abs(a - b).mean()) < 0.01, f"{fresh.name} differs from the committed one: `make docs-pictures`"


def pages_show(name: str, *pictures: str) -> None:
    page = next(p for p in (DOCS / "tutorials").glob("*.md") if f'--8<-- "{name}.py"' in p.read_text())
    for picture in pictures:
        assert f"../img/{picture}" in page.read_text(), f"{page.name} does not show {picture}"


def test_worked_example_ig_vs_occlusion(tmp_path):
    result = run("attribution_worked_example", tmp_path)
    from intellego.data import make_shapes
    from intellego.models import load_shapes_cnn

    data = make_shapes(256, seed=0)
    with torch.no_grad():
        pred = load_shapes_cnn()(data.images).argmax(1)
    assert pred[result["right"]] == data.labels[result["right"]]
    assert pred[result["wrong"]] != data.labels[result["wrong"]]
    assert result["delta"] < 0.05  # completeness of Integrated Gradients at 64 Gauss-Legendre steps
    picked = data.masks[[result["right"], result["wrong"]]].float().mean().item()
    assert result["on_object"]["Integrated Gradients"] > 2 * picked  # IG concentrates on the object
    names = sorted(p.name for p in result["pictures"])
    assert names == ["worked_incorrect.png", "worked_methods.png", "worked_styles.png"]
    for picture in result["pictures"]:
        same_picture(picture)
    pages_show("attribution_worked_example", *names)


def test_insights_tutorial_runs_three_hosts(tmp_path):
    result = run("insights_three_hosts", tmp_path)
    assert len(result["samples"]) == 2 and not any(s["correct"] for s in result["samples"])
    assert "IntegratedGradients" in {m["name"] for m in result["config"]["methods"]}
    html = result["export"].read_text()
    assert "Content-Security-Policy" in html  # the export forbids every network request
    assert (DOCS / "img" / "insights_export.html").exists()
    pages_show("insights_three_hosts")


def test_text_tutorial_finds_the_sentiment_words(tmp_path):
    result = run("text_attribution", tmp_path)
    assert result["accuracy"] == 1.0
    assert float(result["share"].mean()) > 2 * result["key_fraction"]  # the deciding words carry the attribution
    assert set(result["ablation"]) == {"ann", "red"} and result["ablation"]["red"] > 0  # "red" made "apples" likely
    assert result["tokens"] == ["ann", "likes"] and tuple(result["token_attr"].shape) == (2, 2)
    assert "<table" in (tmp_path / "text_sentiment.html").read_text()
    same_picture(tmp_path / "text_llm_tokens.png")
    pages_show("text_attribution", "text_llm_tokens.png")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_metrics_tutorial_ranks_methods(tmp_path):
    result = run("metrics_evaluation", tmp_path)
    table = result["table"]
    assert table.methods == ["Integrated Gradients", "Saliency", "Occlusion 8x8"]
    assert table.metrics == ["deletion", "insertion", "sensitivity", "relevance_mass"]
    for name in ("Integrated Gradients", "Saliency"):
        assert result["areas"][(name, "insertion")] > result["areas"][(name, "deletion")]
    assert table.get("Occlusion 8x8", "sensitivity") < table.get("Saliency", "sensitivity")  # coarse maps are stable
    assert bool(torch.isfinite(result["infidelity"]).all())
    same_picture(tmp_path / "metrics_curves.png")
    pages_show("metrics_evaluation", "metrics_curves.png")
    page = (DOCS / "tutorials" / "metrics.md").read_text()
    assert table.to_markdown() in page, "docs/tutorials/metrics.md does not show the table the tutorial prints"


def test_llm_prompt_words_tutorial(tmp_path):
    result = run("llm_prompt_words", tmp_path)
    assert result["completion"] == ["red", "apples"]
    assert result["shapley"]["ann"] > 0  # the subject makes the model say "red apples"
    contrast = result["contrast"]
    assert contrast["ann"] > abs(contrast["likes"])  # and it is what separates "red apples" from "green pears"
    assert result["owen_prompts"] < 2**len(result["words"]) and bool(torch.isfinite(result["owen"]).all())
    same_picture(tmp_path / "llm_prompt_words.png")
    page = (DOCS / "llm.md").read_text()
    assert '--8<-- "llm_prompt_words.py"' in page and "img/llm_prompt_words.png" in page


def test_scale_tutorial_resumes_and_matches_a_direct_call(tmp_path):
    result = run("scale_dataset", tmp_path)
    report, rerun, results = result["report"], result["rerun"], result["results"]
    assert report.skipped == 0 and len(report.written) == report.num_shards == 3
    assert rerun.skipped == 3 and rerun.written == [] and rerun.examples == 0  # the rerun computed nothing
    assert torch.equal(results.index, torch.arange(len(result["labels"])))
    assert torch.equal(results.labels, result["labels"])
    torch.testing.assert_close(results.attributions, result["direct"], rtol=0, atol=1e-6)
    for c, mean in result["means"].items():  # the summaries' class means are the means of the stored maps
        maps = results.attributions[results.labels == c]
        torch.testing.assert_close(mean, maps.mean(0), rtol=1e-5, atol=1e-7)
        variance = report.class_summaries[c]["sample_variance"]  # float64, folded shard by shard
        torch.testing.assert_close(variance, maps.double().var(0), rtol=1e-5, atol=1e-9)
    assert sorted(result["means"]) == sorted(set(result["labels"].tolist()))
    torch.testing.assert_close(result["self_influence"], result["tracin_direct"])
    same_picture(tmp_path / "scale_class_means.png")
    pages_show("scale_dataset", "scale_class_means.png")
