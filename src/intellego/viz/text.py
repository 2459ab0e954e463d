"""Token attributions as an HTML table (Captum's ``VisualizationDataRecord`` and ``visualize_text``).

Every token and label is HTML-escaped, so text such as ``<script>`` shows as text instead of running; tokens
are shown as given (Captum rewrites ``<pad>`` to ``#pad`` and leaves other markup unescaped). The result is a
small object that notebooks render (``_repr_html_``) and whose ``.data`` is the HTML string, like IPython's
``HTML``; no IPython is needed.

Example:
    >>> rec = VisualizationDataRecord([0.5, -1.0], 0.9, 1, 1, 1, 0.4, ["good", "<b>"], 0.0)
    >>> "&lt;b&gt;" in visualize_text([rec], display=False).data
    True
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import require
from .normalize import to_numpy

__all__ = ["VisualizationDataRecord", "HTML", "visualize_text", "format_word_importances", "importance_color"]


class VisualizationDataRecord:
    """One row of :func:`visualize_text`: a text's tokens, their attributions and the prediction.

    Args:
        word_attributions: One attribution per token, scaled to ``[-1, 1]`` for the colours.
        pred_prob: The predicted class's probability.
        pred_class: The predicted class.
        true_class: The true class.
        attr_class: The class the attributions explain.
        attr_score: The attributions' total.
        raw_input_ids: The tokens, as strings.
        convergence_score: A convergence delta, or None.

    Example:
        >>> rec = VisualizationDataRecord([0.5, -1.0], 0.9, "pos", "pos", "pos", -0.5, ["good", "bad"], None)
        >>> rec.raw_input_ids, rec.attr_score
        (['good', 'bad'], -0.5)
    """

    __slots__ = ["word_attributions", "pred_prob", "pred_class", "true_class", "attr_class", "attr_score",
                 "raw_input_ids", "convergence_score"]

    def __init__(self, word_attributions: Any, pred_prob: float, pred_class: Any, true_class: Any,
                 attr_class: Any, attr_score: float, raw_input_ids: Sequence[str], convergence_score: Any) -> None:
        self.word_attributions = word_attributions
        self.pred_prob = pred_prob
        self.pred_class = pred_class
        self.true_class = true_class
        self.attr_class = attr_class
        self.attr_score = attr_score
        self.raw_input_ids = raw_input_ids
        self.convergence_score = convergence_score


class HTML:
    """An HTML fragment that notebooks display; ``.data`` holds the markup.

    Args:
        data: The markup.

    Example:
        >>> HTML("<p>hi</p>").data
        '<p>hi</p>'
    """

    def __init__(self, data: str) -> None:
        self.data = data

    def _repr_html_(self) -> str:
        return self.data

    def __str__(self) -> str:
        return self.data

    def save(self, path: str | os.PathLike) -> Path:
        """Write a standalone HTML page holding the fragment."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>{self.data}"
                          "</body></html>\n", encoding="utf-8")
        return target


def importance_color(value: float) -> str:
    """A CSS colour for an importance in ``[-1, 1]`` (clipped): white at 0, greener up, redder down.

    Example:
        >>> importance_color(0.0), importance_color(1.0), importance_color(-5.0)
        ('hsl(0, 75%, 100%)', 'hsl(120, 75%, 50%)', 'hsl(0, 75%, 60%)')
    """
    v = max(-1.0, min(1.0, float(value)))
    if v > 0:
        return f"hsl(120, 75%, {100 - int(50 * v)}%)"
    return f"hsl(0, 75%, {100 - int(40 * -v)}%)"


def format_word_importances(words: Sequence[str], importances: Any) -> str:
    """A ``<td>`` cell with each (escaped) word highlighted by its importance; extra importances are ignored.

    Example:
        >>> format_word_importances(["a<b"], [1.0]).count("a&lt;b")
        1
    """
    if importances is None or len(importances) == 0:
        return "<td></td>"
    values = to_numpy(importances, "word_attributions")
    require(values.ndim == 1, f"word_attributions must be 1-d, got shape {values.shape}")
    require(len(words) <= len(values),
            f"got {len(words)} tokens but only {len(values)} word_attributions")
    marks = [
        f'<mark style="background-color: {importance_color(v)}; opacity: 1.0; line-height: 1.75" '
        f'title="{v:.4g}"><font color="black"> {html.escape(str(w))} </font></mark>'
        for w, v in zip(words, values)
    ]
    return "<td>" + "".join(marks) + "</td>"


def _cell(value: Any) -> str:
    return f'<td><text style="padding-right: 2em"><b>{html.escape(str(value))}</b></text></td>'


def _legend() -> str:
    keys = "".join(
        f'<span style="display: inline-block; width: 10px; height: 10px; border: 1px solid; '
        f'background-color: {importance_color(v)}"></span> {label} '
        for v, label in ((-1, "Negative"), (0, "Neutral"), (1, "Positive"))
    )
    return ('<div style="border-top: 1px solid; margin-top: 5px; padding-top: 5px; display: inline-block">'
            f"<b>Legend: </b>{keys}</div>")


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    return bool(ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None)


def visualize_text(datarecords: Iterable[VisualizationDataRecord], legend: bool = True, *,
                   display: bool | None = None, path: str | os.PathLike | None = None) -> HTML:
    """An HTML table: true, predicted and attributed label, attribution score and the highlighted tokens.

    Args:
        datarecords: :class:`VisualizationDataRecord` objects, one row each.
        legend: Add a colour legend.
        display: Show it in the running notebook; None does so only inside IPython.
        path: Also write a standalone ``.html`` page there.

    Returns:
        An :class:`HTML` object (``.data`` is the markup).

    Example:
        >>> rec = VisualizationDataRecord([1.0], 0.7, "pos", "pos", "pos", 1.0, ["fine"], 0.0)
        >>> visualize_text([rec], display=False).data.count("<tr>")
        2
    """
    rows = []
    for record in datarecords:
        require(isinstance(record, VisualizationDataRecord),
                f"datarecords must hold VisualizationDataRecord objects, got {type(record).__name__}")
        rows.append("<tr>" + _cell(record.true_class) + _cell(f"{record.pred_class} ({record.pred_prob:.2f})")
                    + _cell(record.attr_class) + _cell(f"{record.attr_score:.2f}")
                    + format_word_importances(record.raw_input_ids, record.word_attributions) + "</tr>")
    header = ("<tr><th>True Label</th><th>Predicted Label</th><th>Attribution Label</th>"
              "<th>Attribution Score</th><th>Word Importance</th></tr>")
    out = HTML((_legend() if legend else "") + '<table style="width: 100%">' + header + "".join(rows)
               + "</table>")
    if path is not None:
        out.save(path)
    if display or (display is None and _in_notebook()):
        from IPython.display import display as show

        show(out)
    return out
