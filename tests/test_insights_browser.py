"""Insights end to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A missing browser fails these tests: they are not skipped.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import pytest

from intellego.errors import IntellegoError
from intellego.insights.assets import asset
from intellego.insights.example import build
from intellego.insights.server import InsightsServer
from intellego.insights.widget import InsightsWidget

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = "() => { const r = document.querySelector('.intellego-insights'); " \
       "return r && !r.classList.contains('ii-busy') && r.querySelector('.ii-card'); }"
# distinct colours and a checksum of every canvas matching a selector
CANVASES = """(selector) => [...document.querySelectorAll(selector)].map((c) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const colours = new Set(); let sum = 0;
  for (let i = 0; i < d.length; i += 4) {
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    sum += d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7;
  }
  return [colours.size, sum];
})"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    def on_console(message):
        # warnings too, except the one the tests' own pixel readback causes
        if message.type == "error" or (message.type == "warning" and "willReadFrequently" not in message.text):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.set_default_timeout(20000)
    return page, problems


def open_offline(browser, path):
    """A page with ``path`` loaded and every other request blocked: ``(page, problems, blocked)``, ``blocked``
    listing the URLs the page tried to reach."""
    page, problems = open_page(browser)
    url = path.resolve().as_uri()
    blocked: list[str] = []

    def only_the_file(route):
        if route.request.url == url:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(url)
    return page, problems, blocked


def fetch(page):
    page.click("button[name=fetch]")
    page.wait_for_function(IDLE)


def heat_maps(page):
    return page.evaluate(CANVASES, ".ii-heat")


def test_web_app_filters_switches_methods_and_draws(browser):
    server = InsightsServer(build("shapes", n=64).session, port=0).start()
    page, problems = open_page(browser)
    try:
        page.goto(server.url)
        page.wait_for_function(IDLE)
        assert "token" not in page.url  # the token leaves the address bar

        page.check("input[name=class][value=circle]")
        page.select_option("select[name=method]", "Saliency")
        fetch(page)
        assert page.locator(".ii-message").inner_text().startswith("Saliency(abs=true)")
        labels = page.locator(".ii-card .ii-true").all_inner_texts()
        assert len(labels) == 4 and all(t == "true: circle" for t in labels)
        saliency = heat_maps(page)
        assert len(saliency) == 4 and all(colours > 20 for colours, _ in saliency)
        widths = page.eval_on_selector_all(".ii-contrib .ii-fill",
                                           "els => els.map(e => e.getBoundingClientRect().width)")
        assert len(widths) == 4 and all(w > 0 for w in widths)

        page.select_option("select[name=method]", "IntegratedGradients")
        page.fill(".ii-args input[name=n_steps]", "8")
        fetch(page)
        message = page.locator(".ii-message").inner_text()
        assert message.startswith("IntegratedGradients(n_steps=8, method=gausslegendre)")
        ig = heat_maps(page)
        assert all(colours > 20 for colours, _ in ig) and [s for _, s in ig] != [s for _, s in saliency]

        page.fill(".ii-args input[name=n_steps]", "0")
        page.click("button[name=fetch]")
        error = page.locator(".ii-error")
        error.wait_for(state="visible")
        assert "'n_steps' must be between 1 and 300, got 0" in error.inner_text()
        assert heat_maps(page) == ig  # the last good result stays

        page.fill(".ii-args input[name=n_steps]", "4")
        page.select_option("select[name=prediction]", "correct")
        fetch(page)
        assert error.is_hidden() and page.locator(".ii-badge.ii-correct").count() == 4

        before = heat_maps(page)
        page.select_option("select[name=cmap]", "viridis")
        page.select_option("select[name=sign]", "positive")
        assert [s for _, s in heat_maps(page)] != [s for _, s in before]
        page.click("button[name=next]")
        page.wait_for_function(IDLE)
        assert page.locator(".ii-message").inner_text().find("samples 5–8") > 0
        assert problems == []
    finally:
        page.close()
        server.stop()


def test_static_export_works_offline_from_a_file(browser, tmp_path):
    vis = build("shapes", n=16)
    path = vis.export(tmp_path / "insights.html", runs=[{"method": "Saliency"}, {"method": "InputXGradient",
                                                                             "classes": ["square"]}], count=4)
    page, problems, blocked = open_offline(browser, path)
    try:
        page.wait_for_function(IDLE)
        first = heat_maps(page)
        assert len(first) == 4 and all(colours > 20 for colours, _ in first)
        page.select_option("select[name=cmap]", "magma")
        recoloured = heat_maps(page)
        assert all(a[1] != b[1] for a, b in zip(first, recoloured))
        page.select_option("select[name=sign]", "absolute")
        assert heat_maps(page) != recoloured
        shown = page.locator(".ii-index").all_inner_texts()
        page.select_option("select[name=count]", "2")
        page.click("button[name=fetch]")
        page.wait_for_function(IDLE)
        page.click("button[name=next]")
        page.wait_for_function(IDLE)
        assert page.locator(".ii-index").all_inner_texts() == shown[2:4]
        page.select_option("select[name=run]", "1")
        page.wait_for_function(IDLE)
        assert page.locator(".ii-message").inner_text().startswith("InputXGradient()")
        assert set(page.locator(".ii-true").all_inner_texts()) == {"true: square"}
        assert blocked == [] and problems == []
    finally:
        page.close()


def test_tokens_are_coloured_in_the_export(browser, tmp_path):
    path = build("tokens", n=8).export(tmp_path / "tokens.html", runs=[{"method": "IntegratedGradients"}], count=2)
    page, problems = open_page(browser)
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_function(IDLE)
        colours = page.eval_on_selector_all(".ii-token", "els => els.map(e => getComputedStyle(e).backgroundColor)")
        assert len(colours) >= 8 and len(set(colours)) > 4
        page.select_option("select[name=cmap]", "PiYG")
        assert page.eval_on_selector_all(".ii-token", "els => els.map(e => getComputedStyle(e).backgroundColor)"
                                         ) != colours
        assert problems == []
    finally:
        page.close()


HARNESS = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<style>{css}</style></head><body><div id="el"></div>
<script type="module">
import widget from "./app.js";
// A fake anywidget model: what JupyterLab would provide, with Python's side reached through Playwright.
const listeners = {{}};
const config = {config};
const model = {{
  get: (key) => (key === "config" ? config : undefined),
  set() {{}}, save_changes() {{}},
  on: (event, cb) => {{ (listeners[event] ||= []).push(cb); }},
  off: (event, cb) => {{ listeners[event] = (listeners[event] || []).filter((f) => f !== cb); }},
  send: (msg) => {{ window.pySend(msg); }},
}};
setInterval(async () => {{
  for (const msg of await window.pyPoll()) for (const cb of listeners["msg:custom"] || []) cb(msg, []);
}}, 30);
window.cleanup = widget.render({{ model, el: document.getElementById("el") }});
</script></body></html>"""


def test_widget_front_end_against_a_notebook_harness(browser):
    widget = InsightsWidget(build("tabular", n=32).session)
    replies: queue.Queue = queue.Queue()
    widget.send = lambda content, buffers=None: replies.put(json.loads(json.dumps(content)))
    received: list[dict] = []

    def py_send(msg):
        received.append(msg)
        widget._handle_custom_msg(msg, [])

    def py_poll():
        out = []
        while not replies.empty():
            out.append(replies.get())
        return out

    page, problems = open_page(browser)
    files = {"http://harness.test/": (HARNESS.format(css=asset("app.css"), config=json.dumps(widget.config)),
                                      "text/html"),
             "http://harness.test/app.js": (widget._esm, "text/javascript")}
    page.route("**/*", lambda route: route.fulfill(body=files[route.request.url][0],
                                                   content_type=files[route.request.url][1])
               if route.request.url in files else route.abort())
    page.expose_function("pySend", py_send)
    page.expose_function("pyPoll", py_poll)
    try:
        page.goto("http://harness.test/")
        page.wait_for_function(IDLE)
        assert received[0]["type"] == "run" and received[0]["request"]["offset"] == 0
        rows = page.locator(".ii-card").first.locator(".ii-columns .ii-bar")
        assert rows.count() == 10 and rows.first.inner_text().startswith("x0 = ")
        assert page.locator(".ii-contrib .ii-bar").count() == 4

        page.select_option("select[name=method]", "GradientShap")
        page.fill(".ii-args input[name=n_samples]", "3")
        fetch(page)
        assert received[-1]["request"]["arguments"] == {"n_samples": 3, "stdevs": 0.0}
        assert page.locator(".ii-message").inner_text().startswith("GradientShap(n_samples=3, stdevs=0)")

        def refuse(request, on_update=None):
            raise IntellegoError("the kernel refused this request")

        original, widget._session.submit = widget._session.submit, refuse
        page.click("button[name=fetch]")
        page.locator(".ii-error").wait_for(state="visible")
        assert "the kernel refused this request" in page.locator(".ii-error").inner_text()
        widget._session.submit = original
        page.select_option("select[name=method]", "Saliency")
        fetch(page)
        assert page.locator(".ii-error").is_hidden()
        assert page.locator(".ii-message").inner_text().startswith("Saliency(abs=true)")
        page.evaluate("window.cleanup()")
        assert page.locator(".ii-card").count() == 0
        assert problems == []
    finally:
        page.close()


def _labels(page, selector):
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def _dark_pixels(png: bytes, background=(245, 247, 250)) -> int:
    """Pixels of a screenshot that stand out from the bar track's background (by more than 60 in one channel)."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(rgb - np.array(background)).max(-1) > 60).sum())


def test_labels_are_distinct_the_legend_follows_the_view_and_gray_bars_show(browser):
    """One label per field ("attribution method" beside the integration rule's "method" argument), a colour
    legend redrawn with the colour map and sign mode, and contribution bars visible with the gray map (its
    top end is white, the track's colour)."""
    server = InsightsServer(build("shapes", n=16).session, port=0).start()
    page, problems = open_page(browser)
    try:
        page.goto(server.url)
        page.wait_for_function(IDLE)
        page.select_option("select[name=method]", "IntegratedGradients")
        fields = _labels(page, ".ii-controls .ii-field > span")
        assert "attribution method" in fields and "method" in fields and len(fields) == len(set(fields)), fields

        legend = page.evaluate(CANVASES, ".ii-legend-bar")
        assert len(legend) == 1 and legend[0][0] > 20
        assert _labels(page, ".ii-legend-labels span") == ["negative", "0", "positive"]
        page.select_option("select[name=sign]", "positive")
        assert _labels(page, ".ii-legend-labels span") == ["0", "positive"]
        page.select_option("select[name=cmap]", "gray")
        gray = page.evaluate(CANVASES, ".ii-legend-bar")
        assert gray != legend and gray[0][0] > 20

        fills = page.locator(".ii-contrib .ii-fill")
        assert fills.count() > 0
        for i in range(fills.count()):
            box = fills.nth(i).bounding_box()
            if box and box["width"] >= 4:
                assert _dark_pixels(fills.nth(i).screenshot()) > box["width"], f"bar {i} does not show"
        assert problems == []
    finally:
        page.close()
        server.stop()


def test_cancel_is_shown_as_cancelled_not_as_an_error(browser):
    vis = build("shapes", n=32)
    session = vis.session
    slow = {"on": False}
    model = session.models[0]

    def paced(*args):
        if slow["on"]:
            time.sleep(0.2)
        return model(*args)

    session.models[0] = paced
    server = InsightsServer(session, port=0).start()
    page, problems = open_page(browser)
    try:
        page.goto(server.url)
        page.wait_for_function(IDLE)
        before = page.locator(".ii-index").all_inner_texts()
        slow["on"] = True
        page.select_option("select[name=method]", "IntegratedGradients")
        page.fill(".ii-args input[name=n_steps]", "40")  # not in the result cache
        page.click("button[name=fetch]")
        page.wait_for_function("() => !document.querySelector('button[name=cancel]').disabled")
        page.click("button[name=cancel]")
        page.wait_for_function(IDLE)
        assert page.locator(".ii-error").is_hidden()
        assert page.locator(".ii-phase").inner_text() == "cancelled"
        assert page.locator(".ii-message").inner_text().startswith("Cancelled")
        assert page.locator(".ii-index").all_inner_texts() == before  # the previous results stay
        assert problems == []
    finally:
        slow["on"] = False
        page.close()
        server.stop()


def test_static_export_filters_its_saved_samples_by_class_and_correctness(browser, tmp_path):
    path = build("shapes", n=24).export(tmp_path / "insights.html", runs=[{"method": "Saliency"}], count=12)
    text = path.read_text()
    data = json.loads(text.split('id="intellego-data">', 1)[1].split("</script>", 1)[0])
    saved = data["runs"][0]["samples"]
    page, problems = open_page(browser)
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_function(IDLE)
        page.select_option("select[name=count]", "12")
        fetch(page)
        assert page.locator(".ii-card").count() == len(saved)
        wanted = saved[0]["label"]
        page.check(f"input[name=class][value={wanted}]")
        page.wait_for_function(IDLE)
        expected = [f"#{s['index']}" for s in saved if s["label"] == wanted]
        assert page.locator(".ii-index").all_inner_texts() == expected
        assert set(page.locator(".ii-true").all_inner_texts()) == {f"true: {wanted}"}
        page.uncheck(f"input[name=class][value={wanted}]")
        kind = "correct" if saved[0]["correct"] else "incorrect"
        page.select_option("select[name=prediction]", kind)
        page.wait_for_function(IDLE)
        expected = [f"#{s['index']}" for s in saved if s["correct"] == (kind == "correct")]
        assert page.locator(".ii-index").all_inner_texts() == expected
        assert page.locator(f".ii-badge.ii-{kind}").count() == len(expected)
        if len(expected) < len(saved):
            told = page.locator(".ii-message").inner_text()
            assert f"{len(expected)} of the {len(saved)} saved samples match" in told
        assert problems == []
    finally:
        page.close()
