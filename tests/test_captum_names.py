"""Porting is a change of import lines: every public name of captum.attr and captum.metrics exists here."""

from __future__ import annotations

import pytest

import intellego.attr
import intellego.metrics

ca = pytest.importorskip("captum.attr")
cm = pytest.importorskip("captum.metrics")


def test_every_captum_attr_name_exists():
    missing = sorted(n for n in ca.__all__ if not hasattr(intellego.attr, n))
    assert not missing, missing


def test_every_captum_metrics_name_exists():
    missing = sorted(n for n in dir(cm) if not n.startswith("_") and not hasattr(intellego.metrics, n))
    assert not missing, missing
