"""Text attributions as HTML: every token escaped, colours by sign, Captum's record type."""

from __future__ import annotations

import html.parser

import pytest
import torch

from intellego.attr import visualization as viz
from intellego.errors import IntellegoError
from intellego.viz.text import importance_color

captum_viz = pytest.importorskip("captum.attr._utils.visualization")

EVIL = ["<script>alert(1)</script>", "x<img src=y onerror=alert(2)>", "a&b", '"quoted"']


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _parse(markup):
    parser = _Tags()
    parser.feed(markup)
    return parser


def _record(tokens, scores, **kw):
    fields = dict(pred_prob=0.91, pred_class="pos", true_class="pos", attr_class="pos", attr_score=1.5,
                  convergence_score=0.0)
    fields.update(kw)
    return viz.VisualizationDataRecord(torch.tensor(scores), raw_input_ids=tokens, **fields)


def test_every_token_is_escaped():
    out = viz.visualize_text([_record(EVIL, [0.5, -0.5, 0.1, 0.0], true_class="<b>neg</b>")], display=False)
    parsed = _parse(out.data)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" in parsed.tags  # only our <b>
    text = "".join(parsed.text)
    for token in EVIL + ["<b>neg</b>"]:
        assert token in text  # shown literally
    assert "&lt;script&gt;" in out.data and "<script>" not in out.data


def test_captum_leaves_markup_in_tokens_unescaped():
    """Captum rewrites tokens that start with '<' and end with '>' to '#...' and inserts others raw, so a
    token such as ``x<img src=y onerror=...>`` becomes a live tag in the notebook."""
    cell = captum_viz.format_word_importances(["x<img src=y onerror=alert(2)>"], [0.5])
    assert "img" in _parse(cell).tags
    assert "img" not in _parse(viz.format_word_importances(["x<img src=y onerror=alert(2)>"], [0.5])).tags


def test_table_rows_colours_and_legend(tmp_path):
    records = [_record(["good", "bad"], [1.0, -1.0]), _record(["meh"], [0.0], pred_prob=torch.tensor(0.5))]
    out = viz.visualize_text(records, display=False, path=tmp_path / "t.html")
    assert out.data.count("<tr>") == 3 and out.data.count("</tr>") == 3
    assert "pos (0.91)" in out.data and "pos (0.50)" in out.data and "1.50" in out.data
    assert importance_color(1.0) in out.data and importance_color(-1.0) in out.data
    assert "Legend" in out.data and "Legend" not in viz.visualize_text(records, legend=False, display=False).data
    assert out._repr_html_() == out.data
    assert (tmp_path / "t.html").read_text().startswith("<!DOCTYPE html>")


def test_colours():
    assert importance_color(0.5) == "hsl(120, 75%, 75%)"
    assert importance_color(-0.5) == "hsl(0, 75%, 80%)"
    assert importance_color(3.0) == importance_color(1.0)
    for v in (-1.0, -0.3, 0.0, 0.2, 1.0):
        assert importance_color(v) == captum_viz._get_color(v)  # same palette as Captum


def test_bad_input():
    with pytest.raises(IntellegoError, match="2 tokens but only 1"):
        viz.visualize_text([_record(["a", "b"], [0.1])], display=False)
    with pytest.raises(IntellegoError, match="1-d"):
        viz.format_word_importances(["a"], torch.ones(1, 1))
    with pytest.raises(IntellegoError, match="VisualizationDataRecord"):
        viz.visualize_text(["not a record"], display=False)
    assert viz.format_word_importances(["a"], []) == "<td></td>"
