"""Comparison grids, ``Explanation.plot`` and the lazy matplotlib import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import intellego
from _viz import PNG_MAGIC, drawn, matplotlib
from intellego import attr
from intellego.errors import IntellegoError
from intellego.viz import compare_methods, normalize_image_attr, plot_explanation, render_image_attr


def _cnn(channels=3, classes=4):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, classes))


def test_grid_of_methods_and_raw_maps(tmp_path):
    model, x = _cnn(), torch.rand(3, 3, 10, 14)
    target = torch.tensor([0, 2, 1])
    ig = attr.IntegratedGradients(model)
    methods = {
        "IG": (ig, {"n_steps": 8}),
        "Saliency": attr.Saliency,  # a class, built on the model
        "x*grad": lambda inputs, t: attr.InputXGradient(model).attribute(inputs, target=t),
        "given": torch.ones_like(x),
    }
    result = compare_methods(model, x, methods, target=target, class_names="abcd", path=tmp_path / "grid.png",
                             sign="positive")
    assert (tmp_path / "grid.png").read_bytes().startswith(PNG_MAGIC)
    assert result.axes.shape == (3, 5)
    assert [ax.get_title() for ax in result.axes[0]] == ["input", "IG", "Saliency", "x*grad", "given"]
    assert result.axes[1, 0].get_ylabel().startswith("target c\npred ")
    expected_ig = ig.attribute(x, target=target, n_steps=8)
    torch.testing.assert_close(result.attributions["IG"], expected_ig)
    for name, a in result.attributions.items():
        assert result.maps[name].shape == (3, 10, 14)
        for i in range(3):
            np.testing.assert_allclose(result.maps[name][i], normalize_image_attr(a[i], "positive"))
    # the drawn cell is the blended map over the input, from the raw maps
    cell = drawn(result.axes[2, 1])
    expected = render_image_attr(result.maps["IG"][2], x[2].permute(1, 2, 0).numpy(), "blended_heat_map",
                                 "positive", outlier_perc=0, alpha_overlay=0.6)
    np.testing.assert_allclose(cell, expected, atol=1e-6)
    np.testing.assert_allclose(drawn(result.axes[0, 0])[..., :3], x[0].permute(1, 2, 0).numpy(), atol=1e-6)
    assert result.save(tmp_path / "grid.pdf").read_bytes().startswith(b"%PDF-")


def test_grayscale_non_square_inputs_and_svg(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(7 * 12, 2))
    x = torch.rand(2, 7, 12)
    result = compare_methods(model, x, {"saliency": attr.Saliency(model)}, target=1, path=tmp_path / "g.svg",
                             method="heat_map")
    assert result.maps["saliency"].shape == (2, 7, 12)
    assert drawn(result.axes[1, 1]).shape == (7, 12, 4)
    assert (tmp_path / "g.svg").read_bytes().startswith(b"<?xml")


def test_occlusion_windows_when_available():
    occlusion = getattr(attr, "Occlusion", None)
    if occlusion is None:
        pytest.skip("intellego.attr.Occlusion is not exported yet")
    model, x = _cnn(), torch.rand(2, 3, 8, 8)
    result = compare_methods(model, x, {
        "occlusion 4x4": (occlusion(model), {"sliding_window_shapes": (3, 4, 4), "strides": (3, 2, 2)}),
        "occlusion 2x2": (occlusion(model), {"sliding_window_shapes": (3, 2, 2)}),
    }, target=0)
    assert set(result.maps) == {"occlusion 4x4", "occlusion 2x2"}


def test_shapes_demo_figure(tmp_path):
    from intellego.demo import demo_figure
    from intellego.models import ShapesCNN

    path = demo_figure(tmp_path / "demo" / "comparison.png", n_images=2, model=ShapesCNN().eval())
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100


def test_bad_input():
    model, x = _cnn(), torch.rand(2, 3, 6, 6)
    with pytest.raises(IntellegoError, match="non-empty dict"):
        compare_methods(model, x, {})
    with pytest.raises(IntellegoError, match=r"methods\['bad'\] must give attributions shaped like"):
        compare_methods(model, x, {"bad": torch.ones(2, 3, 5, 6)})
    with pytest.raises(IntellegoError, match=r"methods\['bad'\] must be an attribution"):
        compare_methods(model, x, {"bad": 3})
    with pytest.raises(IntellegoError, match="pass a model"):
        compare_methods(None, x, {"cls": attr.Saliency})
    with pytest.raises(IntellegoError, match="images must be shaped like inputs"):
        compare_methods(model, x, {"s": attr.Saliency}, images=torch.rand(2, 3, 6, 5))
    with pytest.raises(IntellegoError, match="inputs must be a batch of images"):
        compare_methods(model, torch.rand(6), {"s": attr.Saliency})
    with pytest.raises(IntellegoError, match="sign must be one of"):
        compare_methods(model, x, {"s": attr.Saliency}, sign="both")


def test_all_zero_method_warns_and_draws_blank():
    model, x = _cnn(), torch.rand(1, 3, 6, 6)
    with pytest.warns(UserWarning, match="all attributions are zero"):
        result = compare_methods(model, x, {"zero": torch.zeros_like(x)}, target=0, method="heat_map")
    assert not result.maps["zero"].any()


def test_explanation_plot_images_series_and_features():
    model = _cnn()
    x = torch.rand(2, 3, 6, 9)
    fig, ax = intellego.explain(model, x, target=1, n_steps=4).plot(index=1, use_pyplot=False)
    assert drawn(ax).shape == (6, 9, 4) and "integrated_gradients" in ax.get_title()
    fig, ax = intellego.explain(model, x * 10 - 5, "saliency", target=1).plot(use_pyplot=False)
    np.testing.assert_allclose(drawn(ax), render_image_attr(  # not an image: a plain heat map
        intellego.explain(model, x * 10 - 5, "saliency", target=1).attributions[0], method="heat_map",
        channels_last=False))
    conv1d = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    series = torch.randn(1, 2, 20)
    conv1d(series)
    _, axes = intellego.explain(conv1d, series, "saliency", target=0).plot(use_pyplot=False)
    assert len(axes) == 2
    mlp = torch.nn.Linear(5, 2)
    _, ax = intellego.explain(mlp, torch.randn(3, 5), "input_x_gradient", target=0).plot(
        use_pyplot=False, feature_names=list("abcde"))
    assert len(ax.patches) == 5
    with pytest.raises(IntellegoError, match="index"):
        intellego.explain(mlp, torch.randn(3, 5), "saliency", target=0).plot(index=3, use_pyplot=False)


def test_plot_explanation_tuple_inputs():
    model = torch.nn.Bilinear(3, 4, 1)
    a, b = torch.randn(2, 3), torch.randn(2, 4)
    exp = intellego.explain(model, (a, b), "saliency", target=0)
    _, ax = plot_explanation(exp, input_index=1, use_pyplot=False)
    assert len(ax.patches) == 4


def test_matplotlib_is_imported_lazily():
    code = ("import sys, intellego, intellego.viz, intellego.attr.visualization, intellego.viz.normalize as n; "
            "n.normalize_attr([1.0, 2.0]); print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
