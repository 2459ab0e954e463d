"""``visualize_image_attr(None, image, method="original_image")`` as Captum's tutorials call it (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _viz import drawn
from intellego.attr import visualization as viz
from intellego.errors import IntellegoError

captum_viz = pytest.importorskip("captum.attr._utils.visualization")


def _image(h=6, w=9, seed=0):
    return np.random.default_rng(seed).random((h, w, 3))


def test_original_image_needs_no_attribution():
    """Showing the image needs no attribution, so ``attr=None`` draws it; Captum 0.9 fails there
    (AttributeError: 'NoneType' object has no attribute 'shape')."""
    img = _image()
    fig, ax = viz.visualize_image_attr(None, img, method="original_image", title="Original Image", use_pyplot=False)
    np.testing.assert_allclose(drawn(ax)[..., :3], img)
    assert ax.get_title() == "Original Image"
    # the same pixels as with an attribution map, and a channels-first tensor works too
    _, ax2 = viz.visualize_image_attr(img - 0.5, img, method="original_image", use_pyplot=False)
    np.testing.assert_allclose(drawn(ax2), drawn(ax))
    _, ax3 = viz.visualize_image_attr(None, torch.tensor(img).permute(2, 0, 1), method="original_image",
                                      use_pyplot=False)
    np.testing.assert_allclose(drawn(ax3), drawn(ax))
    with pytest.raises(AttributeError, match="shape"):
        captum_viz.visualize_image_attr(None, img, method="original_image", use_pyplot=False)


def test_original_image_in_multiple_without_attribution():
    img = _image(seed=1)
    _, axes = viz.visualize_image_attr_multiple(None, img, ["original_image"], ["all"], use_pyplot=False)
    ax = axes[0] if isinstance(axes, (list, tuple, np.ndarray)) else axes
    np.testing.assert_allclose(drawn(ax)[..., :3], img)


def test_no_attribution_for_a_method_that_draws_one_is_named():
    with pytest.raises(IntellegoError, match=r"attr is None: method='heat_map' draws attributions; only "
                                             r"'original_image' shows the image without them"):
        viz.visualize_image_attr(None, _image(), method="heat_map", use_pyplot=False)
    with pytest.raises(IntellegoError, match="method='original_image' needs original_image"):
        viz.visualize_image_attr(None, None, method="original_image", use_pyplot=False)
