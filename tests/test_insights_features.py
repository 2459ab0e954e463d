"""Captum Insights' feature API in ``intellego.insights.features``: BaseFeature, ImageFeature, TextFeature,
GeneralFeature, EmptyFeature and FeatureOutput, with Captum's ``visualization_type()`` and ``visualize()`` outputs.

Captum 0.9 no longer ships ``captum.insights``; the expected outputs below follow Captum Insights' documented
behaviour (its last ``attr_vis/features.py``): text scores are the per-token sums divided by their largest
magnitude, general scores the attributions divided by their L2 norm, both times 100; images are base64 PNGs of
``visualize_image_attr``'s original image and absolute-value heat map. Running that source next to ours gave
equal records and pixel-identical PNGs.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

from intellego.errors import IntellegoError
from intellego.insights import AttributionVisualizer, Batch
from intellego.insights.features import (
    BaseFeature,
    EmptyFeature,
    FeatureOutput,
    GeneralFeature,
    ImageFeature,
    TextFeature,
)

G = torch.Generator().manual_seed(0)


def test_feature_output_is_captums_record() -> None:
    out = FeatureOutput(name="n", base=1, modified=2, type="text", contribution=0.5)
    assert out._fields == ("name", "base", "modified", "type", "contribution")
    assert out == ("n", 1, 2, "text", 0.5) and FeatureOutput("n", 1, 2, "text", 0.5) == out


def test_visualization_types() -> None:
    assert [c.visualization_type() for c in (ImageFeature, TextFeature, GeneralFeature, EmptyFeature)] == [
        "image", "text", "general", "empty"]
    with pytest.raises(NotImplementedError):
        BaseFeature.visualization_type()
    with pytest.raises(NotImplementedError):
        BaseFeature("b").visualize(torch.ones(1), torch.ones(1), 0.0)


def test_text_feature_scores_tokens_by_their_largest_magnitude() -> None:
    attribution = torch.randn(1, 5, 4, generator=G)
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    words = lambda t: " ".join(str(i) for i in t.squeeze(0).tolist())  # noqa: E731
    out = TextFeature("sentence", None, None, words).visualize(attribution, ids, 0.3)
    per_token = attribution[0].sum(1)
    scores = [v * 100 for v in (per_token / per_token.abs().max()).tolist()]  # scaled in Python, as Captum does
    assert out == FeatureOutput("sentence", "3 1 4 1 5", scores, "text", 0.3)
    assert max(abs(v) for v in out.modified) == pytest.approx(100.0)
    raw = TextFeature("t", None, None).visualize(torch.tensor([[1.0, -2.0]]), ids, 1.0)
    assert raw.base is ids and raw.modified == [50.0, -100.0]  # no transform: the data itself; 1-d scores as is


def test_general_feature_scales_by_l2_norm_and_formats_values() -> None:
    out = GeneralFeature("scores", ["a", "b", "c"]).visualize(torch.tensor([[3.0, 0.0, -4.0]]),
                                                               torch.tensor([[1.0, 2.0, 3.456]]), 0.2)
    assert out[:2] == ("scores", ["a: 1.00", "b: 2.00", "c: 3.46"]) and out[3:] == ("general", 0.2)
    assert out.modified == pytest.approx([60.0, 0.0, -80.0], rel=1e-6)
    zero = GeneralFeature("g", ["a"]).visualize(torch.zeros(1, 1), torch.ones(1, 1), 0.0)
    assert zero.modified == [0.0]  # all-zero attributions stay zero


def test_empty_feature_shows_nothing() -> None:
    assert EmptyFeature().visualize(torch.ones(1, 2), torch.ones(1, 2), 0.1) == FeatureOutput(
        "empty", None, None, "empty", 0.1)
    f = EmptyFeature("extra", input_transforms=[lambda t: t * 2])
    assert f.name == "extra" and torch.equal(f.transform(torch.ones(2)), torch.full((2,), 2.0))


def _png(b64: str) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")


def test_image_feature_sends_image_and_heat_map_as_png() -> None:
    pytest.importorskip("matplotlib")
    image, attribution = torch.rand(1, 3, 8, 8, generator=G), torch.randn(1, 3, 8, 8, generator=G)
    out = ImageFeature("photo", None, None).visualize(attribution, image, 0.7)
    assert (out.name, out.type, out.contribution) == ("photo", "image", 0.7)
    base, heat = _png(out.base), _png(out.modified)
    assert base.shape == heat.shape == (600, 600, 4)  # Captum's 6x6 inch figure at 100 dpi
    assert not np.array_equal(base, heat)
    flipped = ImageFeature("photo", None, None).visualize(-attribution, image, 0.7)
    assert np.array_equal(_png(flipped.modified), heat)  # absolute-value heat map
    shown = ImageFeature("photo", None, None, visualization_transform=lambda t: 1 - t).visualize(
        attribution, image, 0.7)
    assert not np.array_equal(_png(shown.base), base) and np.array_equal(_png(shown.modified), heat)


def test_image_feature_needs_one_image() -> None:
    with pytest.raises(IntellegoError, match=r"ImageFeature 'photo': data must be one image \(1, C, H, W\) or "
                                             r"\(C, H, W\), got tensor of shape \(2, 3, 4, 4\)"):
        ImageFeature("photo", None, None).visualize(torch.ones(2, 3, 4, 4), torch.ones(2, 3, 4, 4), 0.0)


def test_captum_positional_constructors() -> None:
    to_model = lambda t: t * 2  # noqa: E731
    image = ImageFeature("Photo", [lambda t: t * 0], [to_model])
    text = TextFeature("Question", None, to_model, None)
    assert image.input_transforms == [to_model] and len(image.baseline_transforms) == 1
    assert text.input_transforms == [to_model] and text.visualization_transform is None
    assert GeneralFeature("g", ["x", "y"]).categories == ["x", "y"]


def test_attr_vis_path_reexports_the_same_objects() -> None:
    from intellego.insights.attr_vis import features as path

    for name in ("BaseFeature", "ImageFeature", "TextFeature", "GeneralFeature", "EmptyFeature", "FeatureOutput"):
        assert getattr(path, name) is globals()[name]


def test_visualizer_runs_with_an_empty_feature() -> None:
    model = torch.nn.Bilinear(2, 3, 2)
    vis = AttributionVisualizer([lambda a, b: model(a, b)], ["no", "yes"],
                                [GeneralFeature("a", ["p", "q"]), EmptyFeature()],
                                [Batch((torch.randn(4, 2), torch.randn(4, 3)), torch.tensor([0, 1, 1, 0]))])
    samples = vis.session.run({"method": "Saliency", "count": 2})["samples"]
    assert len(samples) == 2
