"""Image figures: the pixels each method draws, layouts, saving, Captum parity and bad input."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from _viz import PNG_MAGIC, canvas_pixels, drawn, matplotlib
from intellego.attr import visualization as viz
from intellego.errors import IntellegoError
from intellego.viz import normalize_image_attr, render_image_attr

captum_viz = pytest.importorskip("captum.attr._utils.visualization")
cmaps = matplotlib.colormaps


def _signed_map(h=6, w=9):
    """Left half negative, right half positive, growing with the column."""
    cols = np.linspace(-1.0, 1.0, w)
    return np.tile(cols, (h, 1))


def _image(h=6, w=9, seed=0):
    return np.random.default_rng(seed).random((h, w, 3))


def test_positive_renders_no_negative_colour():
    attr = _signed_map()
    fig, ax = viz.visualize_image_attr(attr, sign="positive", use_pyplot=False, outlier_perc=0)
    rgba = drawn(ax)
    assert (rgba[..., 1] >= rgba[..., 0]).all()  # Greens: never more red than green
    np.testing.assert_allclose(rgba[:, :5], np.broadcast_to(cmaps["Greens"](0.0), (6, 5, 4)))  # negatives blank
    pixels = canvas_pixels(fig).astype(int)
    assert not ((pixels[..., 0] - pixels[..., 1]) > 30).any()
    fig_all, _ = viz.visualize_image_attr(attr, sign="all", use_pyplot=False, outlier_perc=0)
    pixels = canvas_pixels(fig_all).astype(int)
    assert ((pixels[..., 0] - pixels[..., 1]) > 100).sum() > 100  # the same map with sign="all" does show red


def test_heat_map_colours_are_the_colormap_of_the_normalised_map():
    attr = _signed_map()
    _, ax = viz.visualize_image_attr(attr, sign="all", use_pyplot=False, outlier_perc=0)
    rgba = drawn(ax)
    np.testing.assert_allclose(rgba[0, 0], matplotlib.colors.to_rgba("red"))
    np.testing.assert_allclose(rgba[0, -1], matplotlib.colors.to_rgba("green"))
    np.testing.assert_allclose(rgba[0, 4], matplotlib.colors.to_rgba("white"), atol=1e-2)
    _, ax = viz.visualize_image_attr(np.abs(attr), cmap="magma", use_pyplot=False, outlier_perc=0)
    np.testing.assert_allclose(drawn(ax), cmaps["magma"](np.abs(attr)))


def test_masked_image_zeroes_pixels_below_the_threshold():
    attr, image = _signed_map(), _image()
    _, ax = viz.visualize_image_attr(attr, image, "masked_image", "positive", outlier_perc=0, use_pyplot=False)
    rgba = drawn(ax)
    assert not rgba[:, :5, :3].any()  # attributions <= 0: black
    np.testing.assert_allclose(rgba[:, -1, :3], image[:, -1])  # the largest attribution keeps the pixel
    np.testing.assert_allclose(rgba[:, 6, :3], image[:, 6] * attr[:, 6, None])  # scaled in between
    assert (rgba[..., 3] == 1).all()


def test_alpha_scaling_sets_alpha_from_the_normalised_values():
    attr, image = _signed_map(), _image()
    _, ax = viz.visualize_image_attr(attr, image, "alpha_scaling", "absolute_value", outlier_perc=0,
                                     use_pyplot=False)
    rgba = drawn(ax)
    np.testing.assert_allclose(rgba[..., 3], np.abs(attr))
    np.testing.assert_allclose(rgba[..., :3], image)


def test_outlier_perc_clips_the_map_as_documented():
    attr = np.ones((4, 4))
    attr[0, 0] = 100.0  # holds 100/115 = 87% of the total magnitude
    np.testing.assert_allclose(normalize_image_attr(attr, outlier_perc=0), attr / 100.0)
    clipped = normalize_image_attr(attr, outlier_perc=90)  # the outlier is clipped: everything is 1
    np.testing.assert_allclose(clipped, np.ones((4, 4)))
    rgba = render_image_attr(attr, sign="absolute_value", outlier_perc=90)
    np.testing.assert_allclose(rgba, np.broadcast_to(cmaps["Blues"](1.0), (4, 4, 4)))


def test_blended_heat_map_mixes_grayscale_image_and_map():
    attr, image = _signed_map(), _image()
    gray = image.mean(axis=2, keepdims=True)
    heat = render_image_attr(attr, sign="all", outlier_perc=0)[..., :3]
    for alpha in (0.0, 0.3, 1.0):
        out = render_image_attr(attr, image, "blended_heat_map", "all", outlier_perc=0, alpha_overlay=alpha)
        np.testing.assert_allclose(out[..., :3], (1 - alpha) * gray + alpha * heat)
        assert (out[..., 3] == 1).all()
    out = render_image_attr(attr, image, "blended_heat_map", "all", alpha_overlay=0.0)
    assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])  # pure gray


def test_original_image_in_both_value_ranges_and_grayscale():
    image = _image()
    as_bytes = (image * 255).round().astype(np.uint8)
    np.testing.assert_allclose(render_image_attr(image, as_bytes, "original_image")[..., :3], as_bytes / 255.0)
    np.testing.assert_allclose(render_image_attr(image, image, "original_image")[..., :3], image)
    gray = image[..., 0]
    out = render_image_attr(gray, gray, "original_image")
    np.testing.assert_allclose(out[..., :3], np.repeat(gray[..., None], 3, axis=2))


def test_grayscale_and_non_square_blended():
    gray = np.random.default_rng(1).random((5, 11))
    fig, ax = viz.visualize_image_attr(gray - 0.5, gray, "blended_heat_map", "all", use_pyplot=False)
    assert drawn(ax).shape == (5, 11, 4)
    fig, ax = viz.visualize_image_attr(gray[..., None], gray[..., None], "masked_image", "positive",
                                       use_pyplot=False)
    assert drawn(ax).shape == (5, 11, 4)


def test_captum_fails_on_a_2d_grayscale_blended_heat_map():
    """Captum averages the image over axis 2, so an (H, W) grayscale image raises ``AxisError``."""
    gray = np.random.default_rng(1).random((5, 11))
    with pytest.raises(np.exceptions.AxisError):
        captum_viz.visualize_image_attr(gray, gray, "blended_heat_map", use_pyplot=False)


def test_tensor_layouts_draw_the_same_pixels():
    image = _image(7, 5)
    attr = image - 0.4
    expected = render_image_attr(attr, image, "blended_heat_map", "all")
    chw = torch.tensor(attr).permute(2, 0, 1)
    chw_image = torch.tensor(image).permute(2, 0, 1).float()
    for a, x in [(chw, chw_image), (chw[None], chw_image[None]), (torch.tensor(attr), torch.tensor(image))]:
        np.testing.assert_allclose(render_image_attr(a, x, "blended_heat_map", "all"), expected, atol=1e-6)
    forced = render_image_attr(np.moveaxis(attr, 2, 0), np.moveaxis(image, 2, 0), "blended_heat_map", "all",
                               channels_last=False)
    np.testing.assert_allclose(forced, expected)


def test_heat_map_parity_with_captum():
    attr = np.random.default_rng(3).standard_normal((8, 6, 3))
    for sign in ("all", "positive", "negative", "absolute_value"):
        _, cap_ax = captum_viz.visualize_image_attr(attr, sign=sign, use_pyplot=False)
        theirs = np.asarray(cap_ax.get_images()[0].get_array())
        np.testing.assert_allclose(normalize_image_attr(attr, sign), theirs, atol=1e-12)


def test_figure_options():
    fig = matplotlib.figure.Figure()
    ax = fig.subplots()
    out_fig, out_ax = viz.visualize_image_attr(_signed_map(), plt_fig_axis=(fig, ax), title="IG", use_pyplot=False,
                                               show_colorbar=True)
    assert out_fig is fig and out_ax is ax and ax.get_title() == "IG"
    assert len(fig.axes) == 2  # the colour bar
    fig, _ = viz.visualize_image_attr(_signed_map(), _image(), "original_image", show_colorbar=True,
                                      use_pyplot=False, fig_size=(3, 2))
    assert len(fig.axes) == 2 and not fig.axes[1].axison  # an empty, hidden slot
    assert tuple(fig.get_size_inches()) == (3, 2)


def test_multiple():
    attr, image = _signed_map(), _image()
    fig, axes = viz.visualize_image_attr_multiple(attr, image, ["original_image", "heat_map", "masked_image"],
                                                  ["all", "all", "positive"], ["a", "b", "c"], use_pyplot=False,
                                                  outlier_perc=0)
    assert [a.get_title() for a in axes] == ["a", "b", "c"]
    np.testing.assert_allclose(drawn(axes[2]), render_image_attr(attr, image, "masked_image", "positive", 0))
    _, one = viz.visualize_image_attr_multiple(attr, image, ["heat_map"], ["all"], use_pyplot=False)
    assert isinstance(one, matplotlib.axes.Axes)
    with pytest.raises(IntellegoError, match="equal length"):
        viz.visualize_image_attr_multiple(attr, image, ["heat_map"], ["all", "all"], use_pyplot=False)
    with pytest.raises(IntellegoError, match="titles"):
        viz.visualize_image_attr_multiple(attr, image, ["heat_map"], ["all"], ["x", "y"], use_pyplot=False)
    with pytest.raises(IntellegoError, match="sign"):
        viz.visualize_image_attr_multiple(attr, image, ["heat_map", "heat_map"], ["all", "al"], use_pyplot=False)


def test_pyplot_mode_works_headless_without_warnings():
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, _ = viz.visualize_image_attr(_signed_map())  # use_pyplot=True, Agg: no show() warning
    assert set(plt.get_fignums()) - before == {fig.number}
    plt.close(fig)
    viz.visualize_image_attr(_signed_map(), use_pyplot=False)
    assert set(plt.get_fignums()) == before


@pytest.mark.parametrize("suffix,magic", [(".png", PNG_MAGIC), (".svg", b"<?xml"), (".pdf", b"%PDF-")])
def test_saving_writes_valid_files(tmp_path, suffix, magic):
    path = tmp_path / "sub" / f"fig{suffix}"
    viz.visualize_image_attr(_signed_map(), _image(), "blended_heat_map", "all", use_pyplot=False, path=path)
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".png":
        pixels = matplotlib.image.imread(io.BytesIO(data))
        assert pixels.ndim == 3 and pixels.shape[2] == 4 and pixels.shape[0] > 50
    elif suffix == ".svg":
        assert b"</svg>" in data
    else:
        assert data.rstrip().endswith(b"%%EOF")


def test_bad_input():
    attr, image = _signed_map(), _image()
    with pytest.raises(IntellegoError, match=r"height and width \(6, 9\).*\(6, 8\)"):
        viz.visualize_image_attr(attr, image[:, :8], "blended_heat_map", use_pyplot=False)
    with pytest.raises(IntellegoError, match="channels"):
        viz.visualize_image_attr(np.ones((6, 9, 2)), image, "blended_heat_map", use_pyplot=False)
    with pytest.raises(IntellegoError, match="method must be one of"):
        viz.visualize_image_attr(attr, image, "heatmap", use_pyplot=False)
    with pytest.raises(IntellegoError, match="sign must be one of"):
        viz.visualize_image_attr(attr, image, sign="abs", use_pyplot=False)
    with pytest.raises(IntellegoError, match="needs original_image"):
        viz.visualize_image_attr(attr, None, "masked_image", use_pyplot=False)
    with pytest.raises(IntellegoError, match="cannot show both signs"):
        viz.visualize_image_attr(attr, image, "alpha_scaling", "all", use_pyplot=False)
    with pytest.raises(IntellegoError, match="shape"):
        viz.visualize_image_attr(np.ones((2, 3, 4, 5)), use_pyplot=False)
    with pytest.raises(IntellegoError, match="colormap"):
        viz.visualize_image_attr(attr, cmap="not-a-map", use_pyplot=False)
    with pytest.raises(IntellegoError, match=r"path must end in one of"):
        viz.visualize_image_attr(attr, use_pyplot=False, path="figure.nope")


def test_all_zero_attributions_warn_and_draw_a_blank_map():
    image = _image()
    with pytest.warns(UserWarning, match="all attributions are zero"):
        _, ax = viz.visualize_image_attr(np.zeros((6, 9)), image, "heat_map", use_pyplot=False)
    np.testing.assert_allclose(drawn(ax), np.broadcast_to(cmaps["Blues"](0.0), (6, 9, 4)))
    with pytest.warns(UserWarning, match="all attributions are zero"):
        rgba = render_image_attr(np.zeros((6, 9)), image, "masked_image", "positive")
    assert not rgba[..., :3].any()
