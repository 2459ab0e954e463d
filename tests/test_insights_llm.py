"""The LLM heat-map page of Insights: one row per target token, colours by sign and size, words when known,
escaped text, offline (no script, no request allowed); and the same payload in the explorer's config for the
web app, the notebook widget and the static export (drawn in a browser in test_insights_llm_browser.py)."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

import intellego.attr as ia
from _llm_models import random_lm, tokenizer
from intellego.errors import IntellegoError
from intellego.insights import explore_llm
from intellego.insights.cli import main
from intellego.insights.example import build
from intellego.insights.export import render_html
from intellego.insights.llm_view import export_llm_html, llm_entries, llm_payload, render_llm_html
from intellego.insights.server import InsightsServer
from intellego.insights.widget import InsightsWidget


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


# ---------------------------------------------------------------------------- the explorer's LLM view (plumbing)


def _worded():
    r = _result()
    return ia.LLMAttributionResult(input_tokens=r.input_tokens, output_tokens=r.output_tokens, seq_attr=r.seq_attr,
                                   token_attr=r.token_attr, input_words=[0, 0])


def test_entries_name_results_and_sum_tokens_into_words():
    plain, worded = _result(), _worded()
    entries = llm_entries([plain, worded], names=["a", "b"])
    assert [e["name"] for e in entries] == ["a", "b"] and entries[0]["target"] == "on a mat"
    assert entries[0]["tokens"] == llm_payload(plain) and entries[0]["words"] is None  # one token per word
    words = entries[1]["words"]
    assert words["inputs"] == ["thecat"]
    for word_row, token_row in zip(words["rows"], entries[1]["tokens"]["rows"]):
        assert word_row["values"] == [pytest.approx(sum(token_row["values"]))]
    assert [e["name"] for e in llm_entries({"x": plain, "y": worded})] == ["x", "y"]
    assert [e["name"] for e in llm_entries(plain, first=3)] == ["result 3"]


def test_not_finite_values_travel_as_null_and_stay_out_of_the_scale():
    r = ia.LLMAttributionResult(input_tokens=["a", "b"], output_tokens=["c"], seq_attr=[float("nan"), -2.0],
                                token_attr=[[float("inf"), 0.5]])
    data = llm_payload(r)
    assert data["rows"][0]["values"] == [None, -2.0] and data["rows"][1]["values"] == [None, 0.5]
    assert data["scale"] == 2.0
    json.dumps(data, allow_nan=False)  # what the server and the export require
    assert "background:#ccc" in render_llm_html(r)


def test_session_shows_llm_results_in_its_config_for_every_host(tmp_path):
    plain, worded = _result(), _worded()
    vis = build("tabular", n=8).add_llm(plain).add_llm([worded], names=["worded"])
    config = vis.session.config()
    assert config["llm"] == llm_entries(plain) + llm_entries(worded, names=["worded"])
    assert InsightsWidget(vis.session).config["llm"] == config["llm"]
    server = InsightsServer(vis.session, port=0).start()
    try:
        ask = urllib.request.Request(server.base_url + "/api/config", headers={"X-Intellego-Token": server.token})
        assert json.load(urllib.request.urlopen(ask))["llm"] == config["llm"]
    finally:
        server.stop()
    saved = _export_data(vis.export(tmp_path / "x.html", runs=[{"method": "Saliency"}], count=2))
    assert saved["config"]["llm"] == config["llm"] and len(saved["runs"]) == 1


def test_a_session_of_llm_results_only_has_no_runs_and_refuses_requests(tmp_path):
    vis = explore_llm({"tiny LM": _result()}, title="prompts")
    session = vis.session
    config = session.config()
    assert config["models"] == [] and config["methods"] == [] and config["title"] == "prompts"
    assert [e["name"] for e in config["llm"]] == ["tiny LM"]
    with pytest.raises(IntellegoError, match="LLM results only"):
        session.submit({"method": "Saliency"})
    saved = _export_data(vis.export(tmp_path / "llm.html"))
    assert saved["runs"] == [] and saved["config"]["runs"] == [] and saved["config"]["llm"] == config["llm"]
    with pytest.raises(IntellegoError, match="LLM results only"):
        vis.export(tmp_path / "bad.html", runs=[{"method": "Saliency"}])


def test_llm_entry_errors():
    with pytest.raises(IntellegoError, match=r"results\[1\] must be an LLMAttributionResult"):
        llm_entries([_result(), {"seq_attr": [1.0]}])
    with pytest.raises(IntellegoError, match="names must be None when results is a mapping"):
        llm_entries({"a": _result()}, names=["b"])
    with pytest.raises(IntellegoError, match="at least one"):
        explore_llm([])
    with pytest.raises(IntellegoError, match=r"results\['a'\] must be an LLMAttributionResult, got int 5"):
        llm_entries({"a": 5})
    for bad in (None, 3, "a result", 2.5):
        with pytest.raises(IntellegoError, match="results must be an LLMAttributionResult, a list of them"):
            explore_llm(bad)
    session = build("tabular", n=8).session
    with pytest.raises(IntellegoError, match="one label per result"):
        session.add_llm([_result()], names=["a", "b"])
    assert session.llm == []
    with pytest.raises(IntellegoError, match="runs must hold at least one request"):
        render_html(session, runs=[])


def _export_data(path):
    text = path.read_text()
    return json.loads(text.split('id="intellego-data">', 1)[1].split("</script>", 1)[0])


def test_the_llm_demo_on_the_command_line(tmp_path, one_thread):
    """``intellego --data llm --export PATH``: the tiny LM trained on six sentences completes "ann likes" with
    "red apples", and its three results (perturbation over words, longer prompt, gradients over tokens) are saved."""
    out = tmp_path / "llm.html"
    assert main(["--data", "llm", "--export", str(out)]) == 0
    entries = _export_data(out)["config"]["llm"]
    assert [e["target"] for e in entries] == ["red apples", "likes green pears", "green pears"]
    assert entries[0]["tokens"]["inputs"] == ["ann", "likes"] and entries[2]["tokens"]["inputs"][-2:] == ["bob", "eats"]
    assert all(len(e["tokens"]["rows"]) == 1 + len(e["target"].split()) for e in entries)
