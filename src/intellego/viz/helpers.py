"""Small drawing and HTML helpers that Captum's visualization module exposes as public names.

``draw_mask_border`` / ``draw_mask_legend`` annotate a matplotlib axis with the outline and label of a boolean
region (a segment of an image); ``format_classname``, ``format_special_tokens`` and ``format_tooltip`` build the
pieces of the text-attribution HTML table.

Example:
    >>> format_special_tokens("<s>"), format_special_tokens("word")
    ('#s', 'word')
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ..errors import require
from .normalize import to_numpy

__all__ = ["draw_mask_border", "draw_mask_legend", "format_classname", "format_special_tokens", "format_tooltip"]


def _bool_mask(mask: Any) -> np.ndarray:
    m = np.asarray(to_numpy(mask, "mask"))
    require(m.ndim == 2, f"mask must be a 2-D (height, width) array, got shape {m.shape}")
    return m.astype(bool)


def draw_mask_border(ax: Any, mask: Any, border_width: int = 1, border_color: Any = "black") -> None:
    """Outline the region where ``mask`` is true on ``ax`` (an image drawn with ``imshow``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots(); m = np.zeros((6, 6), bool); m[1:4, 2:5] = True
        >>> draw_mask_border(ax, m, border_width=2, border_color="red"); plt.close(fig)
    """
    m = _bool_mask(mask)
    if m.any() and not m.all():
        ax.contour(m.astype(float), levels=[0.5], colors=[border_color], linewidths=border_width)


def draw_mask_legend(ax: Any, mask: Any, label: str, fontsize: int = 10, text_color: str = "white",
                     bbox_facecolor: str = "black", bbox_alpha: float = 0.6) -> None:
    """Write ``label`` in a box at the centre of the region where ``mask`` is true (nothing if it is empty).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots(); m = np.zeros((6, 6), bool); m[1:4, 2:5] = True
        >>> draw_mask_legend(ax, m, "segment 1"); len(ax.texts); plt.close(fig)
        1
    """
    m = _bool_mask(mask)
    if not m.any():
        return
    rows, cols = np.nonzero(m)
    ax.text(cols.mean(), rows.mean(), label, fontsize=fontsize, color=text_color, ha="center", va="center",
            bbox={"facecolor": bbox_facecolor, "alpha": bbox_alpha, "edgecolor": "none"})


def format_classname(classname: str | int) -> str:
    """A bold table cell holding a class name (HTML-escaped)."""
    return f'<td><text style="padding-right:2em"><b>{html.escape(str(classname))}</b></text></td>'


def format_special_tokens(token: str) -> str:
    """Render a markup-like special token such as ``<pad>`` as ``#pad`` so HTML shows it; others unchanged."""
    if token.startswith("<") and token.endswith(">") and len(token) > 2:
        return "#" + token[1:-1]
    return token


def format_tooltip(item: str, text: str) -> str:
    """Wrap ``item`` (HTML) in a span that shows ``text`` as a tooltip on hover."""
    return f'<span class="tooltip" title="{html.escape(str(text), quote=True)}">{item}</span>'
