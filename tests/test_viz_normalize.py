"""Normalisation of attribution maps: parity with Captum's ``_normalize_attr``, clipping, zero maps, errors."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch

import _viz  # noqa: F401  (headless matplotlib for Captum's module)
from intellego.errors import IntellegoError
from intellego.viz.normalize import (
    SIGNS,
    VisualizeSign,
    check_choice,
    cumulative_sum_threshold,
    normalize_attr,
)

captum_viz = pytest.importorskip("captum.attr._utils.visualization")


@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize("outlier_perc", [0.5, 2, 10, 37.5])
@pytest.mark.parametrize("shape", [(7, 5), (16, 16), (3, 9, 4)])
def test_parity_with_captum(sign, outlier_perc, shape):
    rng = np.random.default_rng(zlib.crc32(repr((sign, outlier_perc, shape)).encode()))
    attr = rng.standard_normal(shape) * rng.exponential(size=shape)
    ours = normalize_attr(attr, sign, outlier_perc)
    theirs = captum_viz._normalize_attr(attr, sign, outlier_perc)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("percentile", [0, 1, 50, 98, 100])
def test_threshold_parity_with_captum(percentile):
    values = np.abs(np.random.default_rng(percentile).standard_normal(300))
    assert cumulative_sum_threshold(values, percentile) == captum_viz._cumulative_sum_threshold(values, percentile)


def test_outlier_perc_clips_the_largest_values_holding_that_share():
    # The scale is the first sorted value whose cumulative sum reaches (100 - outlier_perc)% of the total (55).
    attr = np.arange(1.0, 11.0)
    np.testing.assert_allclose(normalize_attr(attr, "positive", 0), attr / 10)
    clipped = normalize_attr(attr, "positive", 20)  # 80% of 55 = 44 is first reached by 1..9 (45): scale 9
    np.testing.assert_allclose(clipped, np.minimum(attr / 9, 1.0))
    assert (clipped == 1.0).sum() == 2
    clipped = normalize_attr(attr, "positive", 40)  # 60% = 33 first reached by 1..8 (36): scale 8
    np.testing.assert_allclose(clipped, np.minimum(attr / 8, 1.0))


def test_signs():
    attr = np.array([-4.0, -1.0, 0.0, 2.0])
    np.testing.assert_allclose(normalize_attr(attr, "all", 0), [-1.0, -0.25, 0.0, 0.5])
    np.testing.assert_allclose(normalize_attr(attr, "positive", 0), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(normalize_attr(attr, "negative", 0), [1.0, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(normalize_attr(attr, "absolute_value", 0), [1.0, 0.25, 0.0, 0.5])
    np.testing.assert_allclose(normalize_attr(torch.tensor(attr), VisualizeSign.all, 0), [-1.0, -0.25, 0.0, 0.5])


def test_all_zero_warns_and_gives_a_blank_map():
    with pytest.warns(UserWarning, match="all attributions are zero"):
        out = normalize_attr(np.zeros((3, 4)), "absolute_value")
    assert out.shape == (3, 4) and not out.any()
    with pytest.warns(UserWarning, match="sign='positive'"):
        out = normalize_attr(-np.ones(5), "positive")
    assert not out.any()


def test_captum_asserts_on_an_all_zero_map():
    """Captum divides by the zero threshold's assertion: ``AssertionError`` instead of a blank map."""
    with pytest.raises(AssertionError, match="scale factor = 0"):
        captum_viz._normalize_attr(np.zeros((3, 4)), "absolute_value", 2)


def test_outlier_perc_0_scales_by_the_maximum():
    values = np.abs(np.random.default_rng(26).standard_normal(50))
    np.testing.assert_allclose(normalize_attr(values, "absolute_value", 0), values / values.max())


def test_captum_fails_on_outlier_perc_0_by_rounding():
    """Captum compares cumulative sums with ``total * 0.01 * 100``, which can round above the total; no index
    then qualifies and it raises ``IndexError`` for this ordinary array (we scale by the maximum)."""
    values = np.abs(np.random.default_rng(26).standard_normal(50))
    with pytest.raises(IndexError):
        captum_viz._normalize_attr(values, "absolute_value", 0)


def test_outlier_perc_100_clips_every_nonzero_value_without_dividing_by_zero():
    attr = np.array([0.0, 0.0, -3.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(normalize_attr(attr, "all", 100), [0.0, 0.0, -1.0, 1.0])


@pytest.mark.parametrize("bad", [{"sign": "both"}, {"sign": 3}, {"outlier_perc": -1}, {"outlier_perc": 101},
                                 {"outlier_perc": "2"}])
def test_bad_arguments(bad):
    with pytest.raises(IntellegoError, match=next(iter(bad))):
        normalize_attr(np.ones(3), **{"sign": "all", "outlier_perc": 2, **bad})


def test_non_finite_and_empty_inputs():
    with pytest.raises(IntellegoError, match="NaN"):
        normalize_attr(np.array([1.0, np.nan]))
    with pytest.raises(IntellegoError, match="empty"):
        normalize_attr(np.zeros((0, 3)))
    with pytest.raises(IntellegoError, match="method"):
        check_choice("hist", ("heat_map",), "method")
