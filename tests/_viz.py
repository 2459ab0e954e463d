"""Shared set-up for the visualisation tests: headless matplotlib and a way to read rendered pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def canvas_pixels(fig) -> np.ndarray:
    """The figure rendered by Agg, as an (H, W, 4) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def drawn(ax) -> np.ndarray:
    """The RGBA array of the one image drawn on ``ax``."""
    images = ax.get_images()
    assert len(images) == 1
    return np.asarray(images[0].get_array())
