"""Time-series figures: colour bands and coloured curves carry the normalised attributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _viz import matplotlib
from intellego.attr import visualization as viz
from intellego.errors import IntellegoError
from intellego.viz.normalize import normalize_attr
from intellego.viz.timeseries import step_edges

captum_viz = pytest.importorskip("captum.attr._utils.visualization")
plt = pytest.importorskip("matplotlib.pyplot")


def _series(n=40, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)).cumsum(axis=0), rng.standard_normal((n, c))


def _band_colours(ax):
    bands = [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 1
    return bands[0].get_facecolors()


def test_overlay_individual_band_is_the_colormap_of_each_channels_map():
    data, attr = _series()
    fig, axes = viz.visualize_timeseries_attr(attr, data, sign="all", outlier_perc=0, alpha_overlay=0.4,
                                              channel_labels=["a", "b", "c"], use_pyplot=False)
    assert len(axes) == 3 and [ax.get_ylabel() for ax in axes] == ["a", "b", "c"]
    norm = normalize_attr(attr.T, "all", 0)  # normalised jointly over all channels, as in Captum
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("x", ["red", "white", "green"])
    for c, ax in enumerate(axes):
        colours = _band_colours(ax)
        np.testing.assert_allclose(colours[:, :3], cmap((norm[c] + 1) / 2)[:, :3], atol=1e-6)
        np.testing.assert_allclose(colours[:, 3], 0.4)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), data[:, c])
        lo, hi = ax.get_ylim()
        assert lo <= data[:, c].min() and hi >= data[:, c].max()  # the band does not stretch the y axis


def test_overlay_combined_sums_channels_into_one_band():
    data, attr = _series()
    fig, ax = viz.visualize_timeseries_attr(attr, data, method="overlay_combined", outlier_perc=0,
                                            channel_labels=["a", "b", "c"], use_pyplot=False)
    assert len(ax.lines) == 3 and ax.get_legend() is not None
    expected = matplotlib.colormaps["Blues"](normalize_attr(attr.sum(axis=1), "absolute_value", 0))
    np.testing.assert_allclose(_band_colours(ax)[:, :3], expected[:, :3], atol=1e-6)


def test_colored_graph_colours_segments_by_attribution():
    data = np.linspace(0.0, 1.0, 5)[:, None]
    attr = np.array([0.0, 0.0, 1.0, 1.0, 0.0])[:, None]
    fig, ax = viz.visualize_timeseries_attr(attr, data, method="colored_graph", sign="positive", outlier_perc=0,
                                            use_pyplot=False)
    (lines,) = ax.collections
    greens = matplotlib.colormaps["Greens"]
    expected = (greens(attr[:-1, 0]) + greens(attr[1:, 0])) / 2
    np.testing.assert_allclose(lines.get_colors(), expected)
    lo, hi = ax.get_ylim()
    assert lo < 0.0 and hi > 1.0  # positive data are not cut off


def test_tensors_channels_first_and_uneven_x_values():
    data, attr = _series(n=12, c=2)
    x = np.array([0, 1, 2, 4, 8, 9, 10, 11, 15, 16, 20, 21], dtype=float)
    _, axes = viz.visualize_timeseries_attr(torch.tensor(attr.T), torch.tensor(data.T), x_values=x,
                                            channels_last=False, use_pyplot=False)
    band = [c for c in axes[0].collections][0]
    lefts = [path.vertices[:, 0].min() for path in band.get_paths()]
    np.testing.assert_allclose(lefts, step_edges(x)[:-1])
    np.testing.assert_allclose(step_edges(x)[[0, -1]], [-0.5, 21.5])


def test_no_pyplot_figure_without_use_pyplot(tmp_path):
    data, attr = _series()
    before = set(plt.get_fignums())
    viz.visualize_timeseries_attr(attr, data, use_pyplot=False, show_colorbar=True, title="t",
                                  path=tmp_path / "ts.svg")
    assert set(plt.get_fignums()) == before
    assert (tmp_path / "ts.svg").read_bytes().startswith(b"<?xml")


@pytest.mark.skipif(hasattr(matplotlib.cm, "get_cmap"), reason="matplotlib still has cm.get_cmap")
def test_captum_timeseries_fails_on_current_matplotlib():
    """Captum calls ``matplotlib.cm.get_cmap``, removed in matplotlib 3.9: every call raises AttributeError."""
    data, attr = _series()
    with pytest.raises(AttributeError, match="get_cmap"):
        captum_viz.visualize_timeseries_attr(attr, data, use_pyplot=False)


def test_bad_input_and_zero_attributions():
    data, attr = _series()
    with pytest.raises(IntellegoError, match="same shape"):
        viz.visualize_timeseries_attr(attr[:-1], data, use_pyplot=False)
    with pytest.raises(IntellegoError, match="method must be one of"):
        viz.visualize_timeseries_attr(attr, data, method="overlay", use_pyplot=False)
    with pytest.raises(IntellegoError, match="sign must be one of"):
        viz.visualize_timeseries_attr(attr, data, sign="pos", use_pyplot=False)
    with pytest.raises(IntellegoError, match="x_values must have 40"):
        viz.visualize_timeseries_attr(attr, data, x_values=np.arange(3), use_pyplot=False)
    with pytest.raises(IntellegoError, match="channel_labels"):
        viz.visualize_timeseries_attr(attr, data, channel_labels=["a"], use_pyplot=False)
    with pytest.raises(IntellegoError, match="shape"):
        viz.visualize_timeseries_attr(np.ones((2, 3, 4)), np.ones((2, 3, 4)), use_pyplot=False)
    with pytest.warns(UserWarning, match="all attributions are zero"):
        _, axes = viz.visualize_timeseries_attr(np.zeros_like(attr), data, use_pyplot=False)
    np.testing.assert_allclose(_band_colours(axes[0])[:, :3], np.tile(matplotlib.colormaps["Blues"](0.0)[:3],
                                                                      (40, 1)))
    with pytest.warns(UserWarning, match="channels"):
        viz.visualize_timeseries_attr(np.ones((2, 5)), np.ones((2, 5)), use_pyplot=False)
