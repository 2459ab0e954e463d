"""The LLM heat-map page of Insights: one row per target token, colours by sign and size, words when known,
escaped text, offline (no script, no request allowed)."""

from __future__ import annotations

import re

import pytest

import intellego.attr as ia
from _llm_models import random_lm, tokenizer
from intellego.errors import IntellegoError
from intellego.insights.llm_view import export_llm_html, llm_payload, render_llm_html


def _result():
    tok, model = tokenizer(), random_lm(1)
    inp = ia.TextTemplateInput("{} {} sat", values=["the", "cat"], baselines=["a", "dog"])
    return ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target="on a mat")


def test_payload_rows_per_target_token_and_shared_scale():
    res = _result()
    data = llm_payload(res)
    assert [r["label"] for r in data["rows"]] == ["(target)", "on", "a", "mat"]
    assert data["rows"][0]["values"] == res.seq_attr.tolist()
    assert data["scale"] == max(abs(v) for r in data["rows"] for v in r["values"])


def test_page_colours_follow_the_sign_and_the_page_is_offline(tmp_path):
    r = ia.LLMAttributionResult(input_tokens=["<b>ann", "likes"], output_tokens=["red"], seq_attr=[2.0, -1.0],
                                token_attr=[[2.0, -1.0]], input_words=[0, 0])
    page = export_llm_html([r, _result()], tmp_path / "llm.html", names=["toy", "tiny LM"]).read_text()
    assert "&lt;b&gt;ann" in page and "<b>ann" not in page
    assert "rgba(0,128,0,1.000)" in page and "rgba(220,20,60,0.500)" in page
    assert "<script" not in page and "default-src 'none'" in page
    assert page.count("<section>") == 2 and "by words" in page  # the toy result knows its words
    assert not re.search(r"https?://", page)


def test_errors():
    with pytest.raises(IntellegoError, match="at least one"):
        render_llm_html([])
    with pytest.raises(IntellegoError, match="one label per result"):
        render_llm_html([_result()], names=["a", "b"])
    with pytest.raises(IntellegoError, match="LLMAttributionResult"):
        llm_payload({"seq_attr": [1.0]})
