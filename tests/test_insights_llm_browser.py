"""LLM results in the explorer, in a real headless Chromium: the served app (beside a classification session)
and the offline static export (LLM results only) draw the prompt coloured for the chosen target token, and
choosing another target token recolours it with that token's attributions (from ``llm_view.llm_payload``)."""

from __future__ import annotations

import math

import pytest

import intellego.attr as ia
from _llm_models import random_lm, tokenizer
from intellego.insights import explore_llm
from intellego.insights.assets import asset
from intellego.insights.example import build
from intellego.insights.llm_view import llm_payload
from intellego.insights.server import InsightsServer
from intellego.insights.widget import InsightsWidget
from test_insights_browser import HARNESS, browser, open_offline, open_page  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.browser

READY = "() => { const r = document.querySelector('.intellego-insights'); " \
        "return r && !r.classList.contains('ii-busy') && r.querySelector('.ii-llm-prompt'); }"
PROMPT = """() => [...document.querySelectorAll('.ii-llm-prompt .ii-llm-token')].map((e) => [e.textContent,
  e.dataset.value, getComputedStyle(e).backgroundColor])"""


def _results():
    """FeatureAblation and ShapleyValues of the shipped tiny LM (random weights) over a four-word prompt."""
    tok, model = tokenizer(), random_lm(1)
    inp = ia.TextTemplateInput("{} {} {} {}", values=["the", "cat", "sat", "on"], baselines=["a", "dog", "ran", "far"])
    ablation = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target="a red mat")
    shapley = ia.LLMAttribution(ia.ShapleyValues(model), tok).attribute(inp, target="a red mat")
    return ablation, shapley


def _prompt(page):
    """(token, value, background colour) of each prompt token as drawn."""
    return [(t, float(v), c) for t, v, c in page.evaluate(PROMPT)]


def _choose(page, row):
    page.select_option("select[name=llm_target]", str(row))
    return _prompt(page)


def _close(drawn, expected):
    return len(drawn) == len(expected) and all(math.isclose(d, e, rel_tol=1e-12, abs_tol=1e-12)
                                               for d, e in zip(drawn, expected))


def _check_target_switch(page, result):
    """Each target token's row is drawn with its own values; switching recolours the prompt and moves the
    outline in the heat map."""
    payload = llm_payload(result)
    drawn = {}
    for row in range(len(payload["rows"])):
        shown = _choose(page, row)
        assert [t for t, _, _ in shown] == result.input_tokens
        assert _close([v for _, v, _ in shown], payload["rows"][row]["values"])
        assert page.get_attribute(".ii-llm-matrix tr.ii-selected", "data-row") == str(row)
        assert page.locator("button.ii-llm-target.ii-selected").inner_text() == (
            "whole target" if row == 0 else result.output_tokens[row - 1])
        drawn[row] = [c for _, _, c in shown]
    assert len({tuple(c) for c in drawn.values()}) == len(drawn)  # every target token colours differently
    return drawn


def test_served_app_shows_llm_results_beside_the_samples(browser):  # noqa: F811
    ablation, shapley = _results()
    vis = build("tokens", n=8).add_llm({"FeatureAblation": ablation, "ShapleyValues": shapley})
    server = InsightsServer(vis.session, port=0).start()
    page, problems = open_page(browser)
    try:
        page.goto(server.url)
        page.wait_for_function(READY)
        page.wait_for_function("() => document.querySelector('.ii-card')")  # the samples are still there
        assert page.locator(".ii-llm-result header .ii-index").inner_text() == "FeatureAblation"
        drawn = _check_target_switch(page, ablation)
        matrix = page.eval_on_selector_all(".ii-llm-matrix tr", "rows => rows.map((r) => [...r.querySelectorAll("
                                           "'.ii-llm-cell')].map((c) => getComputedStyle(c).backgroundColor))")
        assert matrix == [drawn[row] for row in range(len(matrix))]  # the heat map: one row per target token

        page.click(".ii-llm-matrix tr[data-row='1']")  # a click on a row chooses its target token
        assert page.input_value("select[name=llm_target]") == "1" and [c for _, _, c in _prompt(page)] == drawn[1]
        page.click("button.ii-llm-target[data-row='3']")
        assert page.input_value("select[name=llm_target]") == "3" and [c for _, _, c in _prompt(page)] == drawn[3]
        page.select_option("select[name=llm_scale]", "row")  # each row on its own scale: its largest is full
        shown = _prompt(page)
        values = llm_payload(ablation)["rows"][3]["values"]
        assert [c for _, _, c in shown] != drawn[3] and shown[max(range(4), key=lambda j: abs(values[j]))][2].endswith(
            ", 0.7)")
        page.select_option("select[name=llm_scale]", "shared")
        assert [c for _, _, c in _prompt(page)] == drawn[3]
        page.select_option("select[name=cmap]", "PiYG")
        assert [c for _, _, c in _prompt(page)] != drawn[3]

        page.select_option("select[name=llm_result]", "1")
        assert page.locator(".ii-llm-result header .ii-index").inner_text() == "ShapleyValues"
        _check_target_switch(page, shapley)
        assert page.is_disabled("select[name=llm_unit]")  # no word spans several tokens here
        assert problems == []
    finally:
        page.close()
        server.stop()


def test_static_export_of_llm_results_only_works_offline_by_tokens_and_words(browser, tmp_path):  # noqa: F811
    ablation, _ = _results()
    worded = ia.LLMAttributionResult(input_tokens=ablation.input_tokens, output_tokens=ablation.output_tokens,
                                     seq_attr=ablation.seq_attr, token_attr=ablation.token_attr,
                                     input_words=[0, 0, 1, 2])  # "the" and "cat" taken as one word
    path = explore_llm([ablation, worded], names=["tiny LM", "<b>worded</b>"]).export(tmp_path / "llm.html")
    page, problems, blocked = open_offline(browser, path)
    try:
        page.wait_for_function(READY)
        assert page.locator(".ii-card").count() == 0 and page.locator("button[name=fetch]").count() == 0
        _check_target_switch(page, ablation)

        page.select_option("select[name=llm_result]", "1")
        assert page.locator(".ii-llm-result header .ii-index").inner_text() == "<b>worded</b>"  # text, not markup
        _check_target_switch(page, worded)
        page.select_option("select[name=llm_unit]", "words")
        words = worded.aggregate_words()
        shown = _choose(page, 2)
        assert [t for t, _, _ in shown] == ["thecat", "sat", "on"] == words.input_tokens
        token_row = llm_payload(worded)["rows"][2]["values"]
        assert _close([v for _, v, _ in shown], [token_row[0] + token_row[1], token_row[2], token_row[3]])
        _check_target_switch(page, words)
        assert blocked == [] and problems == []
    finally:
        page.close()


def test_notebook_widget_shows_llm_results(browser):  # noqa: F811
    """The widget's front end (a fake anywidget model, as in test_insights_browser) on a session of LLM
    results only: drawn from the synced config, with no request sent to the kernel."""
    import json

    ablation, _ = _results()
    widget = InsightsWidget(explore_llm(ablation).session)
    sent: list[dict] = []
    page, problems = open_page(browser)
    files = {"http://harness.test/": (HARNESS.format(css=asset("app.css"), config=json.dumps(widget.config)),
                                      "text/html"),
             "http://harness.test/app.js": (widget._esm, "text/javascript")}
    page.route("**/*", lambda route: route.fulfill(body=files[route.request.url][0],
                                                   content_type=files[route.request.url][1])
               if route.request.url in files else route.abort())
    page.expose_function("pySend", lambda msg: sent.append(msg))
    page.expose_function("pyPoll", lambda: [])
    try:
        page.goto("http://harness.test/")
        page.wait_for_function(READY)
        assert page.locator(".ii-llm-result header .ii-index").inner_text() == "result 1"
        _check_target_switch(page, ablation)
        assert sent == [] and problems == []
    finally:
        page.close()
